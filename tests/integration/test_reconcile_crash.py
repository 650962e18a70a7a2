"""SIGKILL the hub at each phase of an EC2 spawn, restart it on the same database, and check:
no orphan instance survives the reconciler's grace period, no running server is lost (a ready
server still answers through the proxy), and the user can start again.

Phases: ``launched`` (RunInstances answered, the spawn still pending and its state not saved;
the node runner is paused so that the instance never boots, as a slow image would), ``booting``
(the node process runs, the spawn still pending), ``ready``.

A node that boots after the crash finds the hub refusing its spent credential and exits, or its
server ends without the hub; either way the boot script powers the node off and EC2 terminates it
(shutdown behaviour "terminate"); whichever comes first, the reconciler or that fail-safe, the
instance must be gone after the grace period.
"""

from __future__ import annotations

import os
import signal
import threading

import pytest

from simulators.processes import wait_until
from tests.integration.test_ec2_spawn import spawn_and_watch
from tests.integration.test_reconcile_ec2 import GRACE, passes, rworld  # noqa: F401 (the fixture)

pytestmark = pytest.mark.integration


def kill_hub(hub) -> None:
    """SIGKILL the hub process alone (its proxy keeps running, as after a real crash)."""
    proc = hub.process.proc
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(10)


def pending(hub, user: str) -> bool:
    return (hub.server_model(user) or {}).get("pending") == "spawn"


@pytest.mark.parametrize("phase", ["launched", "booting", "ready"])
def test_a_hub_killed_during_a_spawn_leaves_no_orphan_and_loses_no_server(rworld, phase):  # noqa: F811
    world, hub = rworld, rworld.hub
    user = f"crash-{phase}"
    hub.ensure_user(user)
    if phase == "launched":
        os.kill(world.runner.proc.pid, signal.SIGSTOP)
    poster = threading.Thread(target=hub.spawn, args=(user,), daemon=True)
    poster.start()
    if phase == "ready":
        hub.wait_ready(user)
    else:
        wait_until(lambda: world.live_instances(user), 30, "the instance launched")
        if phase == "booting":
            world.node_pid(world.live_instances(user)[0]["InstanceId"])
        assert pending(hub, user), "the spawn must still be pending when the hub dies"
    launched = [i["InstanceId"] for i in world.live_instances(user)]
    assert len(launched) == 1
    kill_hub(hub)
    poster.join(30)

    try:
        hub.start()
        if phase == "launched":  # the node runner stays paused: only the reconciler can end it
            wait_until(lambda: world.live_instances(user) == [], GRACE + 30, "the orphan terminated")
    finally:
        if phase == "launched":
            os.kill(world.runner.proc.pid, signal.SIGCONT)
    if phase == "ready":
        assert hub.server_model(user)["ready"]
        assert hub.get_via_proxy(f"/user/{user}/api/status")[0] == 200
        # Several passes later, beyond the grace period: still running, nothing found.
        marks = len(passes(world))
        wait_until(lambda: len(passes(world)) >= marks + GRACE + 2, 60, "reconcile passes beyond the grace period")
        assert [i["InstanceId"] for i in world.live_instances(user)] == launched
        assert hub.get_via_proxy(f"/user/{user}/api/status")[0] == 200
        assert not [f for p in passes(world) for f in p["findings"] if f["node_id"] in launched]
    else:
        # The record never claimed the instance: the reconciler ends it after the grace period.
        wait_until(lambda: world.live_instances(user) == [], GRACE + 30, "the orphan terminated")
        by_reconciler = f"reconcile: terminated orphan ec2 node {launched[0]}" in hub.log_text()
        if phase == "launched":
            assert by_reconciler  # the node never booted: nothing but the reconciler ends it
        else:
            node_log = (world.runner.workdir / f"node-{launched[0]}.log").read_text()
            # or the node's server ended with the hub gone and the node powered itself off
            powered_off = f"instance {launched[0]} powered itself off" in (world.runner.workdir / "noderunner.log").read_text()
            assert by_reconciler or "hub refused the bootstrap credential" in node_log or powered_off
        model = hub.server_model(user)
        assert model is None or not (model.get("ready") or model.get("pending")), model

    # The user starts again (after a stop when the server survived).
    if phase == "ready":
        hub.stop_server(user)
    assert spawn_and_watch(world, user)[-1].get("ready")
    hub.stop_server(user)
    assert world.live_instances(user) == []
