"""Faults between the hub and the clouds, and between the sync and the bucket, through a real
proxy (simulators/fault_proxy.py): throttling in the cloud's own error shape, 5xx, lost answers,
truncated answers, latency. Every outcome is either success or a clear message, and never an
orphan instance, a lost file or a deleted remote object."""

from __future__ import annotations

import hashlib
import os
from types import SimpleNamespace

import pytest

from simulators.fault_proxy import Fault, FaultProxy
from simulators.processes import wait_until
from tests.fixtures.ec2 import start_ec2_world, stop_ec2_world
from voila_publisher.sync.config import BucketSync
from voila_publisher.sync.engine import SyncEngine
from voila_publisher.sync.job import Job

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def proxied(moto_server, tmp_path_factory):
    """A hub whose EC2 and SSM calls go through the fault proxy to the moto server."""
    proxy = FaultProxy(moto_server.url).start()
    world = start_ec2_world(moto_server, tmp_path_factory.mktemp("faults"), hub_endpoint=proxy.url)
    yield SimpleNamespace(world=world, proxy=proxy)
    proxy.clear()
    stop_ec2_world(world)
    proxy.stop()


def spawn_outcome(world, user: str) -> tuple[bool, str]:
    world.hub.ensure_user(user)
    world.hub.spawn(user)
    events = world.hub.progress_events(user, timeout=120)
    return bool(events and events[-1].get("ready")), " | ".join(e.get("message", "") for e in events)


def test_throttled_and_failing_launches_are_retried_to_one_instance(proxied):
    world, proxy = proxied.world, proxied.proxy
    before = proxy.calls("RunInstances")
    proxy.add(Fault("throttle", body="Action=RunInstances", count=2))
    proxy.add(Fault("status", status=500, body="Action=DescribeInstances", count=2))
    ready, messages = spawn_outcome(world, "tess")
    assert ready, messages
    assert proxy.calls("RunInstances") - before == 3  # two throttled, one through
    assert len(world.live_instances("tess")) == 1
    world.hub.stop_server("tess")
    assert not world.live_instances("tess")


def test_a_lost_launch_answer_launches_nothing_twice(proxied):
    # RunInstances reaches EC2, the answer is lost on the way back; the retry carries the same
    # client token, so EC2 answers with the instance it already launched.
    world, proxy = proxied.world, proxied.proxy
    proxy.add(Fault("reset", body="Action=RunInstances", count=1, after=True))
    ready, messages = spawn_outcome(world, "uma")
    assert ready, messages
    assert len(world.live_instances("uma")) == 1, world.live_instances("uma")
    world.hub.stop_server("uma")


def test_truncated_and_slow_answers_still_spawn(proxied):
    world, proxy = proxied.world, proxied.proxy
    proxy.add(Fault("truncate", body="Action=RunInstances", count=1))
    proxy.add(Fault("latency", seconds=1.5, body="Action=DescribeInstances", count=3))
    ready, messages = spawn_outcome(world, "vera")
    assert ready, messages
    assert len(world.live_instances("vera")) == 1
    world.hub.stop_server("vera")


def test_a_cloud_that_keeps_throttling_fails_the_spawn_clearly_and_leaves_nothing(proxied):
    world, proxy = proxied.world, proxied.proxy
    proxy.add(Fault("throttle", body="Action=RunInstances"))
    try:
        ready, messages = spawn_outcome(world, "walt")
    finally:
        proxy.clear()
    assert not ready
    assert "RequestLimitExceeded" in messages or "rate" in messages.lower() or "throttl" in messages.lower(), messages
    wait_until(lambda: (world.hub.server_model("walt") or {}).get("pending") is None, 30, "the failed spawn to end")
    assert not world.live_instances("walt")


# -- the sync against a bucket behind the proxy --------------------------------------------
USER = "ana"


def tree(root, count: int = 40) -> dict[str, bytes]:
    files = {f"notebooks/n{i:02d}.ipynb": os.urandom(3000 + i) for i in range(count)}
    for rel, data in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return files


def remote(seaweedfs, bucket) -> dict[str, bytes]:
    client = seaweedfs.client()
    keys = [o["Key"] for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=f"users/{USER}/")
            for o in page.get("Contents", [])]
    return {k.removeprefix(f"users/{USER}/"): client.get_object(Bucket=bucket, Key=k)["Body"].read() for k in keys}


def sync(seaweedfs_proxy_url: str, bucket: str, root, **options) -> dict:
    config = BucketSync(bucket=bucket, endpoint_url=seaweedfs_proxy_url, region="us-east-1", concurrency=4)
    job = Job("sync")
    SyncEngine(config, root, USER).sync(job, **options)
    return job.to_json()


def test_sync_through_resets_and_truncated_answers_stores_every_file_intact(seaweedfs, s3_bucket, tmp_path):
    files = tree(tmp_path / "nb")
    with FaultProxy(seaweedfs.url) as proxy:
        proxy.add(Fault("reset", method="PUT", count=3))
        proxy.add(Fault("reset", method="PUT", count=2, after=True))
        proxy.add(Fault("truncate", method="GET", count=2))
        proxy.add(Fault("throttle", flavour="s3", method="PUT", count=3))
        first = sync(proxy.url, s3_bucket, tmp_path / "nb")
        if first["state"] != "done":  # a clear error, then the next sync finishes the job
            assert first.get("reason") and first.get("message"), first
            second = sync(proxy.url, s3_bucket, tmp_path / "nb")
            assert second["state"] == "done", second
        assert proxy.fired["reset"] >= 1 and proxy.fired["throttle"] >= 1
    stored = remote(seaweedfs, s3_bucket)
    assert sorted(stored) == sorted(files)
    for rel, data in files.items():
        assert hashlib.md5(stored[rel]).digest() == hashlib.md5(data).digest(), rel


def test_a_bucket_that_keeps_failing_gives_a_clear_error_and_deletes_nothing(seaweedfs, s3_bucket, tmp_path):
    files = tree(tmp_path / "nb", count=10)
    assert sync(seaweedfs.url, s3_bucket, tmp_path / "nb")["state"] == "done"
    (tmp_path / "nb" / "notebooks" / "n00.ipynb").unlink()  # deleted locally: stays remote unless asked
    (tmp_path / "nb" / "notebooks" / "n01.ipynb").write_bytes(b"changed")
    with FaultProxy(seaweedfs.url) as proxy:
        proxy.add(Fault("status", status=503, method="PUT"))
        result = sync(proxy.url, s3_bucket, tmp_path / "nb")
    assert result["state"] == "error" and result.get("message"), result
    stored = remote(seaweedfs, s3_bucket)
    assert sorted(stored) == sorted(files)  # nothing deleted
    assert stored["notebooks/n01.ipynb"] == files["notebooks/n01.ipynb"]  # the old copy intact, not half-written
