"""A hub restart (cleanup_servers = False) keeps running EC2 servers and launches nothing new."""

from __future__ import annotations

import os

import pytest

from simulators.processes import wait_until

from tests.integration.test_ec2_spawn import only_instance, spawn_and_watch

pytestmark = pytest.mark.integration


def test_hub_restart_keeps_both_servers_without_new_instances(ec2_world):
    world, hub = ec2_world, ec2_world.hub
    assert spawn_and_watch(world, "ida")[-1].get("ready")
    assert spawn_and_watch(world, "jack", "big")[-1].get("ready")
    instances = {only_instance(world, "ida")["InstanceId"], only_instance(world, "jack", "big")["InstanceId"]}
    pids = {i: world.node_pid(i) for i in instances}
    launches = hub.log_text().count("RunInstances")

    hub.restart()
    log_mark = len(hub.log_text())

    assert hub.server_model("ida")["ready"] and hub.server_model("jack", "big")["ready"]
    assert hub.get_via_proxy("/user/ida/api/status")[0] == 200
    assert hub.get_via_proxy("/user/jack/big/api/status")[0] == 200
    # Let the restarted hub's shared status cache refresh and its poll loop run a few times.
    wait_until(lambda: hub.log_text()[log_mark:].count("EC2StatusCache: refreshed") >= 3, 60, "status refreshes")
    assert hub.server_model("ida")["ready"] and hub.server_model("jack", "big")["ready"]

    assert hub.log_text().count("RunInstances") == launches, "a restart must not launch instances"
    mine = world.instances("ida") + world.instances("jack")
    assert {i["InstanceId"] for i in mine} == instances
    assert all(i["State"]["Name"] == "running" for i in mine)
    for instance_id, pid in pids.items():
        os.kill(pid, 0)  # the same node processes still run

    hub.stop_server("ida")
    hub.stop_server("jack", "big")
    assert world.live_instances("ida") == world.live_instances("jack") == []
