"""End to end: a real hub (EC2Spawner on moto server) hands each node its user's bucket
credentials from SeaweedFS's STS, the node agent refreshes them through the hub before they
expire, and a long sync (over a deliberately slow link) keeps working across the refreshes.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
import uuid
from pathlib import Path

import boto3
import botocore.exceptions
import pytest

from simulators.ec2sim import REGION, aws_client, hub_config, make_network
from simulators.hub import LocalHub
from simulators.moto import MOTO_CREDENTIALS
from simulators.noderunner import NodeRunnerProcess
from simulators.seaweedfs import ADMIN_CREDENTIALS, NODE_DATA_ROLE_ARN, SeaweedS3
from voila_publisher.sync.config import BucketSync
from voila_publisher.sync.engine import SyncEngine
from voila_publisher.sync.job import Job

pytestmark = pytest.mark.integration

SESSION_SECONDS = 12  # every STS session of this store lives this long: refreshes every ~6 s

ISSUER_CONFIG = """
c.RemoteSpawner.bucket_credentials_issuer = "hybrid_spawner.bucket_credentials.STSIssuer"
c.STSIssuer.bucket = {bucket!r}
c.STSIssuer.endpoint_url = {url!r}
c.STSIssuer.sts_endpoint_url = {url!r}
c.STSIssuer.role_arn = {role!r}
c.STSIssuer.duration = 900
c.STSIssuer.profile = "hub-sts"
c.EC2Spawner.poll_interval = 2
"""


class SlowLink:
    """A TCP relay that holds each client->server chunk ``delay`` seconds: a slow network path."""

    def __init__(self, target_port: int, delay: float):
        self.target, self.delay = target_port, delay
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        self.closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while not self.closed:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.target))
            threading.Thread(target=self._pipe, args=(client, upstream, self.delay), daemon=True).start()
            threading.Thread(target=self._pipe, args=(upstream, client, 0), daemon=True).start()

    @staticmethod
    def _pipe(src, dst, delay):
        try:
            while chunk := src.recv(65536):
                if delay:
                    time.sleep(delay)
                dst.sendall(chunk)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def close(self):
        self.closed = True
        self.listener.close()


@pytest.fixture(scope="module")
def world(moto_server, tmp_path_factory):
    base = tmp_path_factory.mktemp("creds-hub")
    store = SeaweedS3(base / "s3", sts=True, sts_max_session=SESSION_SECONDS)
    store.start()
    bucket = store.create_bucket(f"notebooks-{uuid.uuid4().hex[:10]}")
    store.client().put_object(Bucket=bucket, Key="users/bob/thesis.ipynb", Body=b"bob's")
    # The hub's own STS identity, in a shared credentials file of its own (never the node's).
    shared = base / "hub-aws-credentials"
    shared.write_text(
        "[hub-sts]\n"
        f"aws_access_key_id = {ADMIN_CREDENTIALS['AWS_ACCESS_KEY_ID']}\n"
        f"aws_secret_access_key = {ADMIN_CREDENTIALS['AWS_SECRET_ACCESS_KEY']}\n"
    )
    os.chmod(shared, 0o600)
    hub_id = f"creds-hub-{uuid.uuid4().hex[:6]}"
    net = make_network(moto_server.url)
    config = hub_config(moto_server.url, net, hub_id, refresh=1) + ISSUER_CONFIG.format(
        bucket=bucket, url=store.url, role=NODE_DATA_ROLE_ARN
    )
    runner = NodeRunnerProcess(base / "nodes", hub_id=hub_id, endpoint_url=moto_server.url, region=REGION)
    runner.env.update(MOTO_CREDENTIALS)
    runner.start()
    hub = LocalHub(base / "hub", config, env={**MOTO_CREDENTIALS, "AWS_SHARED_CREDENTIALS_FILE": str(shared)})
    hub.start()
    ec2 = aws_client("ec2", moto_server.url)
    yield {"hub": hub, "store": store, "bucket": bucket, "ec2": ec2, "runner": runner, "hub_id": hub_id}
    hub.stop()
    live = ec2.describe_instances(Filters=[{"Name": "tag:jupyterhub/hub-id", "Values": [hub_id]}])
    ids = [i["InstanceId"] for r in live["Reservations"] for i in r["Instances"] if i["State"]["Name"] != "terminated"]
    if ids:
        ec2.terminate_instances(InstanceIds=ids)
    runner.stop()
    store.stop()


def server_environment(runner: NodeRunnerProcess, instance_id: str) -> dict:
    """The environment of the node's jupyterhub-singleuser (below the boot script and the agent)."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        node = runner.status()["nodes"].get(instance_id)
        stack = [node["pid"]] if node else []
        while stack:
            pid = stack.pop()
            try:
                if b"jupyterhub-singleuser" in Path(f"/proc/{pid}/cmdline").read_bytes():
                    raw = Path(f"/proc/{pid}/environ").read_bytes()
                    return dict(item.split("=", 1) for item in raw.decode().split("\0") if "=" in item)
                stack += [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
            except OSError:
                continue
        time.sleep(0.2)
    raise AssertionError("no single-user server process on the node")


def s3_as(store, creds: dict):
    return boto3.client(
        "s3", endpoint_url=store.url, region_name=REGION, aws_access_key_id=creds["AccessKeyId"],
        aws_secret_access_key=creds["SecretAccessKey"], aws_session_token=creds["SessionToken"],
    )


def test_node_gets_its_users_credentials_refreshes_them_and_a_long_sync_survives(world, tmp_path):
    hub, store, bucket = world["hub"], world["store"], world["bucket"]
    hub.spawn("alice")
    hub.wait_ready("alice", timeout=90)
    reservations = world["ec2"].describe_instances(
        Filters=[{"Name": "tag:jupyterhub/owner", "Values": ["alice"]}, {"Name": "instance-state-name", "Values": ["running"]}]
    )["Reservations"]
    instance = reservations[0]["Instances"][0]["InstanceId"]

    env = server_environment(world["runner"], instance)
    assert env["HYBRID_SYNC_BUCKET"] == bucket and env["HYBRID_SYNC_PREFIX"] == "users/alice/"
    assert env["HYBRID_S3_ENDPOINT_URL"] == store.url
    assert not any(k in env for k in ("AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "HYBRID_BOOTSTRAP_CREDENTIAL"))
    path = Path(env["HYBRID_S3_CREDENTIALS_FILE"])
    assert path.stat().st_mode & 0o077 == 0, "the credentials file must be private to the node's user"
    first = json.loads(path.read_text())

    # The secret is nowhere but on the node: not in user-data, not in the hub's log.
    user_data = world["ec2"].describe_instance_attribute(InstanceId=instance, Attribute="userData")["UserData"]["Value"]
    import base64

    script = base64.b64decode(user_data).decode()
    assert first["SecretAccessKey"] not in script and first["AccessKeyId"] not in script
    # Alice's node reaches her prefix and nothing of Bob's.
    s3 = s3_as(store, first)
    s3.put_object(Bucket=bucket, Key="users/alice/from-node.ipynb", Body=b"{}")
    for call in (
        lambda: s3.get_object(Bucket=bucket, Key="users/bob/thesis.ipynb"),
        lambda: s3.list_objects_v2(Bucket=bucket, Prefix="users/bob/"),
        lambda: s3.put_object(Bucket=bucket, Key="users/bob/thesis.ipynb", Body=b"x"),
        lambda: s3.delete_object(Bucket=bucket, Key="users/bob/thesis.ipynb"),
    ):
        with pytest.raises(botocore.exceptions.ClientError) as caught:
            call()
        assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403

    # A sync that lasts longer than one credential lifetime, reading the node's file as the
    # server's sync does: every request goes over a link that holds each chunk 0.25 s.
    root = tmp_path / "notebooks"
    root.mkdir()
    for i in range(80):
        (root / f"nb{i:03d}.ipynb").write_text(json.dumps({"cells": [], "n": i}))
    link = SlowLink(int(store.url.rsplit(":", 1)[1]), 0.25)
    seen_keys = [first["AccessKeyId"]]
    watching = threading.Event()

    def watch():
        while not watching.wait(0.2):
            try:
                key = json.loads(path.read_text())["AccessKeyId"]
            except (OSError, ValueError):
                continue  # never happens with the atomic replace; tolerated for the check's sake
            if key != seen_keys[-1]:
                seen_keys.append(key)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    config = BucketSync(bucket=bucket, endpoint_url=link.url, region=REGION, credentials_file=str(path), concurrency=2)
    started = time.monotonic()
    job = Job("sync")
    try:
        SyncEngine(config, root, "alice").sync(job)
    finally:
        watching.set()
        link.close()
    took = time.monotonic() - started
    result = job.to_json()
    assert result["state"] == "done" and result["uploaded"] == 80 and not result["errors"], result
    assert took > SESSION_SECONDS, f"the sync took {took:.1f}s: not longer than one credential lifetime"
    assert len(seen_keys) >= 3, f"expected refreshes during a {took:.1f}s sync, saw {len(seen_keys) - 1}"
    listed = store.client().list_objects_v2(Bucket=bucket, Prefix="users/alice/")["KeyCount"]
    assert listed == 81
    # The first credentials are dead now; the current ones work.
    with pytest.raises(botocore.exceptions.ClientError):
        s3.head_object(Bucket=bucket, Key="users/alice/from-node.ipynb")
    s3_as(store, json.loads(path.read_text())).head_object(Bucket=bucket, Key="users/alice/from-node.ipynb")

    log = hub.log_text()
    assert "refreshed bucket credentials of" in log
    assert first["SecretAccessKey"] not in log and first["SessionToken"] not in log

    hub.stop_server("alice")
    # The agent removes the file when the server exits cleanly; this runner SIGKILLs nodes after
    # 5 s (an EC2 termination wipes the disk anyway), so clean up what a killed agent left.
    # (Revocation of the refresh secret at stop: tests/unit/test_bucket_credentials.py.)
    if path.exists():
        path.unlink()
        path.parent.rmdir()
