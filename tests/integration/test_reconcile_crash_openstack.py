"""SIGKILL the hub during an OpenStack spawn (the fake Nova, the Nova node runner), restart it on
the same database: the server Nova created before the state was saved (not booted, or booting)
is deleted after the grace period, a ready server is kept and still answers, the user starts again.
"""

from __future__ import annotations

import os
import signal
import threading

import pytest

from simulators.openstack.stack import HUB_CONFIG, openstack_stack, spawn_and_follow
from simulators.processes import wait_until
from tests.integration.test_reconcile_crash import kill_hub

pytestmark = pytest.mark.integration

GRACE = 3
RECONCILE = f"""
from hybrid_spawner.reconcile import runner as _reconcile
c.Reconciler.mode = "terminate"
c.Reconciler.grace_period = {GRACE}
c.Reconciler.interval = 1
c.Reconciler.backends = ["openstack"]
_reconcile.enable(c)
"""


@pytest.fixture(scope="module")
def ostack(openstack_fake, tmp_path_factory):
    openstack_fake.reset()
    with openstack_stack(openstack_fake, tmp_path_factory.mktemp("reconcile-os"), HUB_CONFIG + RECONCILE) as stack:
        yield stack
    openstack_fake.reset()


def servers_of(fake, user: str) -> list[dict]:
    return [s for s in fake.servers() if (s.get("metadata") or {}).get("hybrid-owner") == user]


@pytest.mark.parametrize("phase", ["launched", "booting", "ready"])
def test_a_hub_killed_during_an_openstack_spawn_leaves_no_orphan(ostack, phase):
    hub, fake = ostack.hub, ostack.fake
    user = f"oscrash-{phase}"
    hub.ensure_user(user)
    if phase == "launched":
        os.kill(ostack.runner.proc.pid, signal.SIGSTOP)  # the server never boots
    try:
        poster = threading.Thread(target=hub.spawn, args=(user,), daemon=True)
        poster.start()
        if phase == "ready":
            hub.wait_ready(user)
        else:
            wait_until(lambda: servers_of(fake, user), 30, "Nova's server created")
            if phase == "booting":  # the node process runs, its server is not up yet
                wait_until(lambda: ostack.runner.status()["nodes"].get(servers_of(fake, user)[0]["id"]), 30,
                           "the node booting")
            assert (hub.server_model(user) or {}).get("pending") == "spawn"
        [server] = servers_of(fake, user)
        kill_hub(hub)
        poster.join(30)
        hub.start()
        if phase == "launched":  # the node runner stays paused: only the reconciler can end it
            wait_until(lambda: servers_of(fake, user) == [], GRACE + 30, "the orphan deleted")
    finally:
        if phase == "launched":
            os.kill(ostack.runner.proc.pid, signal.SIGCONT)

    if phase == "ready":
        assert hub.server_model(user)["ready"]
        assert hub.get_via_proxy(f"/user/{user}/api/status")[0] == 200
        _, report = hub.api("GET", "/hybrid/reconcile", expect=200)
        wait_until(lambda: len(hub.api("GET", "/hybrid/reconcile")[1]["passes"]) >= len(report["passes"]) + GRACE + 2,
                   60, "passes beyond the grace period")
        assert [s["id"] for s in servers_of(fake, user)] == [server["id"]]
        assert hub.get_via_proxy(f"/user/{user}/api/status")[0] == 200
        hub.stop_server(user)
    elif phase == "booting":
        # The reconciler deletes the unclaimed server, or the node, refused by the new hub (or
        # its server ended without one), powers off and the reconciler deletes the SHUTOFF server.
        wait_until(lambda: servers_of(fake, user) == [], GRACE + 60, "the orphan gone")
    else:
        # (logged once Nova confirms the deletion, a moment after the server left the listing)
        wait_until(lambda: f"reconcile: terminated orphan openstack node {server['id']}" in hub.log_text(), 30,
                   "the reconciler's log line")
    assert spawn_and_follow(hub, user)[-1].get("ready")
    hub.stop_server(user)
    assert servers_of(fake, user) == []
