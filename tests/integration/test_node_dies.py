"""A node whose server dies mid-run: the node powers itself off (the boot script's last line), the
cloud ends it as its shutdown behaviour says, and the hub stops the server and tells the
researcher. Before, the VM ran on behind a dead server: the hub saw a running instance, the
researcher got 503 until the idle culler or an admin stopped it, and the instance kept costing.

Killed by SIGKILL from outside, as the kernel's OOM killer or a crash would end it: the single-user
server alone, and the whole node agent with it."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from simulators.processes import wait_until
from tests.integration.test_ec2_spawn import only_instance, spawn_and_watch

pytestmark = pytest.mark.integration


def descendants(pid: int) -> list[tuple[int, str]]:
    """(pid, command line) of every process below ``pid``."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            try:
                cmdline = (Path("/proc") / str(child) / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                continue
            found.append((child, cmdline))
            todo.append(child)
    return found


@pytest.mark.parametrize("victim", ["jupyterhub-singleuser", "hybrid_spawner.node_agent"])
def test_a_node_whose_server_dies_powers_off_and_the_hub_says_so(ec2_world, victim):
    world = ec2_world
    user = "dies-" + victim.split(".")[-1].split("-")[-1]
    assert spawn_and_watch(world, user)[-1].get("ready")
    instance = only_instance(world, user)["InstanceId"]
    node = world.node_pid(instance)
    (pid,) = [p for p, cmd in descendants(node) if victim in cmd and "runuser" not in cmd]
    os.kill(pid, signal.SIGKILL)

    # The boot script's `poweroff` ran; the instance's shutdown behaviour (terminate) ended it.
    wait_until(lambda: not world.live_instances(user), 60, "the node to power off and terminate")
    assert (world.runner.workdir / "power" / instance / "powered-off").exists()
    world.hub.wait_stopped(user, timeout=60)
    assert f"instance {instance} powered itself off" in (world.runner.workdir / "noderunner.log").read_text()

    # The researcher is told at the next start, which works.
    events = spawn_and_watch(world, user)
    assert any(e.get("message", "").startswith("Your previous server stopped:") and instance in e["message"]
               for e in events), [e.get("message") for e in events]
    assert events[-1].get("ready")
    world.hub.stop_server(user)
    assert not world.live_instances(user)
