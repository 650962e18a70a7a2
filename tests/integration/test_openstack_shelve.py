"""OpenStackSpawner.stop_action = "shelve" through a real hub, the fake Nova and the node runner:
a stop shelves the server (its disk kept, its host freed), the next start unshelves it; the node
still holds the user-data it was created with, whose credential is spent, and proves itself with
the resume key it kept on its own disk, for which the hub armed a fresh credential; the key
changes at each resume and an old one opens nothing; a hub restart while shelved changes nothing."""

from __future__ import annotations

import base64
import json
import re

import pytest

from simulators.openstack.stack import HUB_CONFIG, openstack_stack, spawn_and_follow
from simulators.processes import wait_until
from tests.fixtures.bootstrap_calls import post_bootstrap
from tests.fixtures.contents import contents

pytestmark = pytest.mark.integration

SHELVE_CONFIG = HUB_CONFIG + """
c.OpenStackSpawner.stop_action = "shelve"
"""


@pytest.fixture(scope="module")
def stack(openstack_fake, tmp_path_factory):
    openstack_fake.reset()
    with openstack_stack(openstack_fake, tmp_path_factory.mktemp("openstack-shelve"), SHELVE_CONFIG,
                         hub_id="shelve-hub") as s:
        yield s
    openstack_fake.reset()


def server_of(fake, user: str) -> dict:
    [server] = [s for s in fake.servers() if (s.get("metadata") or {}).get("hybrid-owner") == user]
    return server


def resume_key(stack, server_id: str) -> str:
    return (stack.nodes_dir / "state" / server_id / "resume-key").read_text()


def state(hub, user: str) -> dict:
    _, model = hub.api("GET", f"/users/{user}?include_stopped_servers=1", expect=200)
    return model["servers"][""]["state"]


def test_a_stop_shelves_the_server_and_the_next_start_unshelves_it_with_a_fresh_credential(stack):
    hub, fake, user = stack.hub, stack.fake, "shelly"
    assert spawn_and_follow(hub, user)[-1].get("ready")
    server = server_of(fake, user)
    first_key = resume_key(stack, server["id"])  # kept on the node's disk at the first boot
    assert contents(hub, user, "notes.txt", "on the local disk\n")[0] in (200, 201)

    hub.stop_server(user)
    wait_until(lambda: server_of(fake, user)["status"] == "SHELVED_OFFLOADED", 30, "the server shelved")
    parked = state(hub, user)["parked_node"]
    assert parked["node_id"] == server["id"] and parked["resume_hash"] and first_key not in json.dumps(parked)

    events = spawn_and_follow(hub, user)
    assert events[-1].get("ready"), events
    messages = [e["message"] for e in events]
    assert any(m.startswith(f"Resuming your shelved server {server['name']}, shelved ") for m in messages), messages
    assert server_of(fake, user)["id"] == server["id"] and server_of(fake, user)["status"] == "ACTIVE"
    status, body = contents(hub, user, "notes.txt")
    assert status == 200 and body["content"] == "on the local disk\n"  # the disk came back

    second_key = resume_key(stack, server["id"])
    assert second_key != first_key  # a new key at each resume
    assert post_bootstrap(hub, {"resume_key": first_key}) == 403  # the old one opens nothing
    assert post_bootstrap(hub, {"resume_key": second_key}) == 403  # nor the new one: nothing is armed now
    user_data = base64.b64decode(server_of(fake, user)["user_data"]).decode()
    credential = re.search(r"HYBRID_BOOTSTRAP_CREDENTIAL='?([A-Za-z0-9_\-]+)", user_data).group(1)
    assert post_bootstrap(hub, {"credential": credential}) == 403  # the user-data's credential stays spent


def test_a_hub_restart_while_shelved_keeps_the_server_for_the_next_start(stack):
    hub, fake, user = stack.hub, stack.fake, "shelly"
    hub.stop_server(user)
    wait_until(lambda: server_of(fake, user)["status"] == "SHELVED_OFFLOADED", 30, "the server shelved")
    server = server_of(fake, user)
    hub.restart()
    events = spawn_and_follow(hub, user)
    assert events[-1].get("ready"), events
    assert server_of(fake, user)["id"] == server["id"]
    status, body = contents(hub, user, "notes.txt")
    assert status == 200 and body["content"] == "on the local disk\n"
    hub.stop_server(user)
