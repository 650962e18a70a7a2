"""Reconciliation on a real hub with EC2Spawner on moto server (hybrid_spawner/reconcile/).

An orphan under this hub's tag is terminated after the grace period while a foreign-tagged and
an untagged instance are never touched; a record whose instance vanished is marked stopped with
the reason; the admin endpoint needs an admin; a bad mode stops the hub at startup. The crash
tests (SIGKILL the hub at each phase of a spawn) are in test_reconcile_crash.py.
"""

from __future__ import annotations

import pytest

from hybrid_spawner.backends.ec2.plan import TAG_HUB
from simulators.hub import LocalHub
from simulators.moto import MOTO_CREDENTIALS
from simulators.processes import ProcessFailed, wait_until
from tests.fixtures.ec2 import start_ec2_world, stop_ec2_world
from tests.integration.test_ec2_spawn import only_instance, spawn_and_watch

pytestmark = pytest.mark.integration

GRACE = 4

RECONCILE_CONFIG = f"""
from hybrid_spawner.reconcile import runner as _reconcile
c.Reconciler.mode = "terminate"
c.Reconciler.grace_period = {GRACE}
c.Reconciler.interval = 1
c.Reconciler.backends = ["ec2"]
_reconcile.enable(c)
# The hub's own poll would also notice a vanished instance; keep it out of the way so that the
# reconciler's path is the one tested.
c.EC2Spawner.poll_interval = 3600
"""


@pytest.fixture(scope="module")
def rworld(moto_server, tmp_path_factory):
    world = start_ec2_world(moto_server, tmp_path_factory.mktemp("reconcile"), RECONCILE_CONFIG)
    yield world
    stop_ec2_world(world)


def launch_bare(world, tags: dict | None) -> str:
    """An instance started behind the hub's back (no record claims it)."""
    kwargs = {"ImageId": world.ami, "MinCount": 1, "MaxCount": 1, "InstanceType": "t3.micro", "SubnetId": world.subnet}
    if tags:
        kwargs["TagSpecifications"] = [{"ResourceType": "instance",
                                        "Tags": [{"Key": k, "Value": v} for k, v in tags.items()]}]
    return world.ec2.run_instances(**kwargs)["Instances"][0]["InstanceId"]


def state_of(world, instance_id: str) -> str:
    reply = world.ec2.describe_instances(InstanceIds=[instance_id])
    return reply["Reservations"][0]["Instances"][0]["State"]["Name"]


def passes(world) -> list[dict]:
    return world.hub.api("GET", "/hybrid/reconcile", expect=200)[1]["passes"]


def test_an_orphan_is_terminated_after_the_grace_period_and_foreign_nodes_are_never_touched(rworld):
    world = rworld
    mine = launch_bare(world, {TAG_HUB: world.hub_id, "jupyterhub/owner": "nobody"})
    foreign = launch_bare(world, {TAG_HUB: "another-hub", "jupyterhub/owner": "nobody"})
    untagged = launch_bare(world, None)

    # First seen unclaimed: reported, not yet terminated.
    wait_until(lambda: any(f["node_id"] == mine for p in passes(world) for f in p["findings"]), 30, "the orphan reported")
    assert state_of(world, mine) == "running"
    wait_until(lambda: state_of(world, mine) in ("shutting-down", "terminated"), 30, "the orphan terminated")

    found = [f for p in passes(world) for f in p["findings"] if f["node_id"] == mine]
    assert found[0]["action"] == "wait-grace" and found[-1]["result"] == "terminated"
    assert found[-1]["unclaimed_for"] >= GRACE
    assert f"reconcile: terminated orphan ec2 node {mine}" in world.hub.log_text()
    assert reconciled(world, "terminated") >= 1  # an operator graphs it (docs/metrics.md)
    # Another hub's instance and an untagged one are not even listed.
    listed_ids = {f["node_id"] for p in passes(world) for f in p["findings"]}
    assert foreign not in listed_ids and untagged not in listed_ids
    assert state_of(world, foreign) == state_of(world, untagged) == "running"
    world.ec2.terminate_instances(InstanceIds=[foreign, untagged])


def test_a_record_whose_instance_is_gone_is_marked_stopped_with_the_reason(rworld):
    world = rworld
    assert spawn_and_watch(world, "gwen")[-1].get("ready")
    instance = only_instance(world, "gwen")["InstanceId"]
    world.ec2.terminate_instances(InstanceIds=[instance])

    world.hub.wait_stopped("gwen", timeout=30)
    log = world.hub.log_text()
    assert "reconcile: gwen/(default): marking stopped" in log and instance in log
    gone = [f for p in passes(world) for f in p["findings"] if f["kind"] == "gone" and f["user"] == "gwen"]
    assert gone and gone[-1]["result"] == "marked stopped"
    assert reconciled(world, "stopped") >= 1
    # The user sees why on the next spawn, which works.
    events = spawn_and_watch(world, "gwen")
    # (the reconciler's reason, or the spawner's own more specific one when its poll saw the end)
    assert any(e.get("message", "").startswith("Your previous server stopped:") and instance in e["message"]
               for e in events), events
    assert events[-1].get("ready")
    world.hub.stop_server("gwen")
    assert world.live_instances("gwen") == []


def test_the_report_needs_an_admin(rworld):
    hub = rworld.hub
    hub.ensure_user("nora")
    _, token = hub.api("POST", "/users/nora/tokens", {"note": "reconcile test"}, expect=201)
    for method in ("GET", "POST"):
        status, body = hub.api(method, "/hybrid/reconcile", {} if method == "POST" else None, token=token["token"])
        assert status == 403, body
    status, body = hub.api("POST", "/hybrid/reconcile", {}, expect=200)
    assert body["backends"]["ec2"]["error"] == "" and body["mode"] == "terminate"


def test_an_unknown_mode_stops_the_hub_at_startup(tmp_path):
    config = """
from hybrid_spawner.reconcile import runner as _reconcile
c.Reconciler.mode = "delete"
_reconcile.enable(c)
"""
    hub = LocalHub(tmp_path / "hub", config, env=MOTO_CREDENTIALS)
    with pytest.raises(ProcessFailed):
        hub.start(timeout=30)
    hub.stop()
    assert "The 'mode' trait of a Reconciler instance expected any of ['report', 'terminate']" in hub.log_text()


def reconciled(world, action: str) -> float:
    """hybrid_nodes_reconciled_total{backend="ec2",action=...} on the hub's /hub/metrics."""
    import re
    import urllib.request

    request = urllib.request.Request(f"{world.hub.url}/hub/metrics", headers={"Authorization": f"token {world.hub.admin_token}"})
    text = urllib.request.urlopen(request, timeout=30).read().decode()
    found = re.search(r'hybrid_nodes_reconciled_total\{action="%s",backend="ec2"\} ([0-9.]+)' % action, text)
    return float(found.group(1)) if found else 0.0
