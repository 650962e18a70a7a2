"""Spot interruption notices end to end: a real hub with a spot profile (HybridSpawner, EC2 on
moto server), the node runner whose nodes each have an IMDSv2 stand-in, SeaweedFS with per-user
STS credentials. AWS's notice appears in the node's metadata; the node syncs the home at once,
tells JupyterLab's server and the hub; the runner terminates the instance at the notice's time,
as AWS does; the hub says why at the next spawn, which restores the synced files."""

from __future__ import annotations

import json
import time
from datetime import datetime, timezone

import pytest

from simulators.processes import wait_until
from simulators.spot_stack import SpotStack

pytestmark = pytest.mark.integration

FILES = {f"chapter{i:02d}/analysis.ipynb": json.dumps({"cells": [], "chapter": i}).encode() for i in range(12)}
FILES["results.csv"] = b"x,y\n1,2\n"


@pytest.fixture(scope="module")
def stack(moto_server, tmp_path_factory):
    with SpotStack(tmp_path_factory.mktemp("spot-notice"), moto_server.url) as s:
        yield s


def spawn(stack, user: str, profile: str) -> list[str]:
    began = time.monotonic()
    status, body = stack.hub.spawn(user, options={"profile": profile})
    assert status in (201, 202), body
    events = stack.hub.progress_events(user, since=began, timeout=120)
    assert events[-1].get("ready"), events
    return [e.get("message", "") for e in events]


def notices(stack, user: str) -> dict:
    status, text = stack.hub.get_via_proxy(f"/user/{user}/hybrid/notices")
    assert status == 200, text
    return json.loads(text)


def utc(iso: str) -> datetime:
    return datetime.strptime(iso, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)


def write_files(home, files: dict[str, bytes]) -> None:
    for rel, data in files.items():
        (home / rel).parent.mkdir(parents=True, exist_ok=True)
        (home / rel).write_bytes(data)


def test_a_reclaimed_spot_server_syncs_tells_and_is_explained_at_the_next_spawn(stack):
    hub, user = stack.hub, "ana"
    spawn(stack, user, "spot")
    instance = stack.running_instance(user)
    assert instance.get("InstanceLifecycle") == "spot"
    instance_id = instance["InstanceId"]
    assert notices(stack, user) == {"watched": True, "interruption": None, "rebalance": None}
    write_files(stack.home(instance_id), FILES)  # never synced: only the notice's sync can save them
    assert stack.bucket_keys(user) == set()

    notice = stack.runner.spot_interruption(instance_id, in_seconds=15)

    # The node synced the whole home, and the researcher's server holds the notice.
    wait_until(lambda: stack.bucket_keys(user) >= set(FILES), 20, "the home in the bucket")
    assert all(stack.bucket_file(user, rel) == data for rel, data in FILES.items())
    wait_until(lambda: (notices(stack, user)["interruption"] or {}).get("sync", {}).get("state") == "done", 20,
               "the server to hold the synced notice")
    # How fast is measured by benchmarks/bench_spot_notice.py, not asserted here.
    said = notices(stack, user)["interruption"]
    assert (said["action"], said["time"]) == ("terminate", notice["time"])
    assert said["sync"]["files"] == len(FILES) and said["sync"]["uploaded"] == len(FILES)

    # The hub recorded the reason in the server's state before the instance went.
    state = hub.server_model(user)["state"]["child_state"]
    assert state["interruption_notice"]["time"] == notice["time"]
    assert state["interruption_notice"]["sync"]["state"] == "done"
    assert stack.instances(user, states=("running",)), "the instance runs until the notice's time"

    # AWS (the runner) terminates the instance at the notice's time, not before.
    wait_until(lambda: not stack.instances(user, states=("pending", "running")), 60, "the reclaim")
    wait_until(lambda: instance_id in stack.runner.status()["reclaimed"], 10, "the runner's status file")
    reclaimed = stack.runner.status()["reclaimed"][instance_id]
    assert utc(notice["time"]).timestamp() <= reclaimed < utc(notice["time"]).timestamp() + 5
    hub.wait_stopped(user, timeout=60)

    # The next spawn says why, and brings the synced work back (restore_on_start).
    messages = spawn(stack, user, "spot")
    expected = (f"Your previous server stopped: instance {instance_id} (t3.micro, spot) was reclaimed by AWS "
                f"(spot interruption) at {notice['time'][11:16]} UTC; your notebooks were synced to the bucket at ")
    first = next(m for m in messages if m.startswith("Your previous server stopped"))
    assert first.startswith(expected) and first.endswith(f" UTC ({len(FILES)} files)."), messages
    assert "stopped outside JupyterHub" not in first
    home = stack.home(stack.running_instance(user)["InstanceId"])
    assert all((home / rel).read_bytes() == data for rel, data in FILES.items())
    hub.stop_server(user)


def test_the_reason_survives_a_hub_restart_before_the_reclaim(stack):
    hub, user = stack.hub, "ben"
    spawn(stack, user, "spot")
    instance_id = stack.running_instance(user)["InstanceId"]
    notice = stack.runner.spot_interruption(instance_id, in_seconds=15)
    wait_until(lambda: (hub.server_model(user)["state"]["child_state"].get("interruption_notice") or {})
               .get("sync", {}).get("state") == "done", 30, "the hub to record the notice")
    hub.restart()
    wait_until(lambda: not stack.instances(user, states=("pending", "running")), 60, "the reclaim")
    hub.wait_stopped(user, timeout=60)
    messages = spawn(stack, user, "spot")
    first = next(m for m in messages if m.startswith("Your previous server stopped"))
    assert f"was reclaimed by AWS (spot interruption) at {notice['time'][11:16]} UTC" in first, messages
    hub.stop_server(user)


def test_an_on_demand_server_is_not_watched(stack):
    hub, user = stack.hub, "cleo"
    spawn(stack, user, "on-demand")
    instance = stack.running_instance(user)
    assert instance.get("InstanceLifecycle") is None
    assert notices(stack, user) == {"watched": False, "interruption": None, "rebalance": None}
    node_log = (stack.runner.workdir / f"node-{instance['InstanceId']}.log").read_text()
    assert "reported port" in node_log and "spot notices" not in node_log
    assert "interruption_hash" not in hub.server_model(user)["state"]["child_state"]
    hub.stop_server(user)


def test_a_forged_notice_is_refused(stack):
    import urllib.error
    import urllib.request

    notice = {"kind": "interruption", "action": "terminate", "time": "2026-12-07T12:04:00Z",
              "sync": {"state": "done", "files": 1}}
    for body, code in (({"secret": "guess", "notice": notice}, 403), (b"not json", 400)):
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        request = urllib.request.Request(f"{stack.hub.url}/hub/api/hybrid/interruption", data=data, method="POST")
        with pytest.raises(urllib.error.HTTPError) as caught:
            urllib.request.urlopen(request, timeout=10)
        assert caught.value.code == code
    assert "guess" not in stack.hub.log_text()
