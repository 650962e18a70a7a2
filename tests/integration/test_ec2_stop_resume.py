"""EC2Spawner.stop_action = "stop" on a real hub (HybridSpawner profiles, moto server, the node
runner): a stop keeps the instance with its disk, the next start resumes it with a fresh
credential, across a hub restart; another profile gets its own instance; a node whose server
dies is stopped and resumed; spot instances are terminated; the reconciler terminates what waited
longer than stopped_max_age."""

from __future__ import annotations

import base64
import json
import os
import re
import signal
import time

import pytest

from simulators.processes import wait_until
from tests.fixtures.bootstrap_calls import post_bootstrap
from tests.fixtures.contents import contents
from tests.fixtures.hybrid_ec2 import hybrid_ec2_hub
from tests.integration.test_node_dies import descendants

pytestmark = pytest.mark.integration

CONFIG = """
c.JupyterHub.spawner_class = "hybrid"
c.HybridSpawner.profiles = [
    {"slug": "cpu", "display_name": "CPU", "backend": "ec2", "default": True,
     "overrides": {"instance_types": ["t3.micro"], "stop_action": "stop"}},
    {"slug": "cpu-large", "display_name": "CPU large", "backend": "ec2",
     "overrides": {"instance_types": ["t3.small"], "stop_action": "stop"}},
    {"slug": "brief", "display_name": "Kept 3 s", "backend": "ec2",
     "overrides": {"instance_types": ["t3.micro"], "stop_action": "stop", "stopped_max_age": 3}},
    {"slug": "spot", "display_name": "Spot", "backend": "ec2",
     "overrides": {"instance_types": ["t3.micro"], "stop_action": "stop", "spot": True}},
]
c.HybridSpawner.poll_interval = 2
# The spawn request answers at once (202), so the progress stream replays every event.
c.JupyterHub.tornado_settings = {"slow_spawn_timeout": 0}
# Only the expiry is under test here: passes on demand (POST /hub/api/hybrid/reconcile).
from hybrid_spawner.reconcile import runner as _reconcile
c.Reconciler.interval = 3600
c.Reconciler.backends = ["ec2"]
_reconcile.enable(c)
"""


@pytest.fixture(scope="module")
def world(moto_server, tmp_path_factory):
    directory = tmp_path_factory.mktemp("stop-resume")
    with hybrid_ec2_hub(moto_server.url, directory, CONFIG) as w:
        w.disks = directory / "nodes" / "disks"
        w.status = directory / "nodes" / "noderunner-status.json"
        yield w


def start(w, user: str, profile: str) -> tuple[list[dict], str]:
    """Start ``user``'s server on ``profile``; returns (progress events, the user's token)."""
    w.hub.ensure_user(user)
    _, body = w.hub.api("POST", f"/users/{user}/tokens", {"note": "stop and resume"}, expect=201)
    status, answer = w.hub.spawn(user, options={"profile": profile})
    assert status in (201, 202), answer
    events = w.hub.progress_events(user, timeout=180)
    assert events and events[-1].get("ready"), events
    return events, body["token"]


def state(w, user: str) -> dict:
    _, model = w.hub.api("GET", f"/users/{user}?include_stopped_servers=1", expect=200)
    return model["servers"][""]["state"]


def instance(w, node_id: str) -> dict:
    return w.ec2.describe_instances(InstanceIds=[node_id])["Reservations"][0]["Instances"][0]


def credential_in(w, node_id: str) -> str:
    value = w.ec2.describe_instance_attribute(InstanceId=node_id, Attribute="userData")["UserData"]["Value"]
    return re.search(r"HYBRID_BOOTSTRAP_CREDENTIAL='?([A-Za-z0-9_\-]+)", base64.b64decode(value).decode()).group(1)


def wait_state(w, node_id: str, name: str, timeout: float = 60) -> None:
    wait_until(lambda: instance(w, node_id)["State"]["Name"] == name, timeout, f"{node_id} {name}")


def stop(w, user: str) -> None:
    w.hub.stop_server(user)


def test_a_stopped_server_resumes_its_instance_with_its_disk_and_a_fresh_credential(world):
    w, user = world, "rhea"
    events, token = start(w, user, "cpu")
    node = state(w, user)["child_state"]["node_id"]
    first_credential = credential_in(w, node)
    assert contents(w.hub, user, "notes.txt", "written before the stop\n", token)[0] in (200, 201)
    disk = w.disks / node
    assert (disk / "notes.txt").exists()  # on the instance's own disk

    stop(w, user)
    wait_state(w, node, "stopped")
    parked = state(w, user)["parked_nodes"]["cpu"]
    assert parked["backend"] == "ec2" and parked["node"]["node_id"] == node
    wait_until(lambda: node not in json.loads(w.status.read_text())["nodes"], 30, "the node's processes ended")
    assert (disk / "notes.txt").read_text() == "written before the stop\n"  # a stopped disk is kept

    events, token = start(w, user, "cpu")
    messages = [e.get("message", "") for e in events]
    assert any(m.startswith(f"Resuming your stopped instance {node} (t3.micro), stopped ") for m in messages), messages
    assert not any("Requesting a node" in m for m in messages), messages
    assert state(w, user)["child_state"]["node_id"] == node
    assert len([i for i in w.ec2.describe_instances(Filters=[
        {"Name": "tag:jupyterhub/owner", "Values": [user]}])["Reservations"]]) == 1  # nothing launched
    assert contents(w.hub, user, "notes.txt", token=token)[1]["content"] == "written before the stop\n"
    fresh = credential_in(w, node)
    assert fresh != first_credential
    assert post_bootstrap(w.hub, {"credential": first_credential}) == 403  # the launch's credential is spent, never reused
    assert post_bootstrap(w.hub, {"credential": fresh}) == 403  # and the fresh one was single-use too
    stop(w, user)
    wait_state(w, node, "stopped")


def test_a_hub_restart_while_stopped_keeps_the_instance_for_the_next_start(world):
    w, user = world, "rhea"  # stopped by the previous test
    node = state(w, user)["parked_nodes"]["cpu"]["node"]["node_id"]
    w.hub.restart()
    assert instance(w, node)["State"]["Name"] == "stopped"
    events, token = start(w, user, "cpu")
    assert state(w, user)["child_state"]["node_id"] == node
    assert contents(w.hub, user, "notes.txt", token=token)[1]["content"] == "written before the stop\n"
    stop(w, user)
    wait_state(w, node, "stopped")


def test_another_profile_gets_its_own_instance_and_the_stopped_one_waits(world):
    w, user = world, "sven"
    start(w, user, "cpu")
    small = state(w, user)["child_state"]["node_id"]
    stop(w, user)
    wait_state(w, small, "stopped")

    start(w, user, "cpu-large")
    large = state(w, user)["child_state"]["node_id"]
    assert large != small and instance(w, large)["InstanceType"] == "t3.small"
    assert instance(w, small)["State"]["Name"] == "stopped"  # untouched while the other runs
    stop(w, user)
    wait_state(w, large, "stopped")
    assert set(state(w, user)["parked_nodes"]) == {"cpu", "cpu-large"}

    start(w, user, "cpu")
    assert state(w, user)["child_state"]["node_id"] == small
    stop(w, user)


def test_a_node_whose_server_dies_is_stopped_and_the_next_start_resumes_it(world):
    w, user = world, "dagny"
    start(w, user, "cpu")
    node = state(w, user)["child_state"]["node_id"]
    boot = json.loads(w.status.read_text())["nodes"][node]["pid"]
    (server,) = [p for p, cmd in descendants(boot) if "jupyterhub-singleuser" in cmd and "runuser" not in cmd]
    os.kill(server, signal.SIGKILL)  # as the kernel's OOM killer would
    wait_state(w, node, "stopped", timeout=60)  # the boot script's poweroff: shutdown behaviour stop
    w.hub.wait_stopped(user, timeout=60)
    assert state(w, user)["parked_nodes"]["cpu"]["node"]["node_id"] == node

    events, _ = start(w, user, "cpu")
    messages = [e.get("message", "") for e in events]
    assert any(m.startswith("Your previous server stopped: ") and "its disk is kept and your next start resumes it" in m
               for m in messages), messages
    assert any(m.startswith(f"Resuming your stopped instance {node}") for m in messages), messages
    stop(w, user)


def test_spot_instances_are_terminated_on_stop(world):
    w, user = world, "sol"
    start(w, user, "spot")
    node = state(w, user)["child_state"]["node_id"]
    assert instance(w, node).get("InstanceLifecycle") == "spot"
    stop(w, user)
    wait_until(lambda: instance(w, node)["State"]["Name"] in ("shutting-down", "terminated"), 30, "terminated")
    assert "parked_nodes" not in state(w, user)


def test_the_reconciler_terminates_an_instance_stopped_longer_than_its_max_age(world):
    w, user = world, "tove"
    start(w, user, "brief")
    node = state(w, user)["child_state"]["node_id"]
    stop(w, user)
    wait_state(w, node, "stopped")
    _, report = w.hub.api("POST", "/hybrid/reconcile", expect=200)
    assert not [f for f in report["findings"] if f["node_id"] == node]  # within its 3 s
    time.sleep(3.5)  # its stopped_max_age passes
    _, report = w.hub.api("POST", "/hybrid/reconcile", expect=200)
    (finding,) = [f for f in report["findings"] if f["node_id"] == node]
    assert finding["kind"] == "expired" and finding["result"] == "terminated", finding
    wait_until(lambda: instance(w, node)["State"]["Name"] in ("shutting-down", "terminated"), 30, "terminated")
    assert "parked_nodes" not in state(w, user)

    events, _ = start(w, user, "brief")  # a new instance
    assert state(w, user)["child_state"]["node_id"] != node
    assert any("Requesting a node" in e.get("message", "") for e in events)
    stop(w, user)
