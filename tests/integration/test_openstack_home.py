"""The OpenStack persistent home through a real hub, the fake Nova + Cinder and the node runner:
one Cinder volume per user and server, attached at boot, kept across stops; what a home without
a volume loses at a stop, as on a real cloud; and the refusals that leave nothing behind."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request

import pytest

from simulators.openstack.stack import HUB_CONFIG, openstack_stack, spawn_and_follow

pytestmark = pytest.mark.integration

HOME_CONFIG = HUB_CONFIG + """
c.OpenStackSpawner.home_volume_size = 2
c.OpenStackSpawner.home_volume_max_size = 10

def home_settings(spawner):
    misconfigure(spawner)
    if spawner.user.name == "bigvol":  # a profile asking for more than the admin allows
        spawner.home_volume_size = 500
    elif spawner.user.name == "nohome":
        spawner.home_volume_size = 0
c.Spawner.pre_spawn_hook = home_settings
"""


@pytest.fixture(scope="module")
def stack(openstack_fake, tmp_path_factory):
    openstack_fake.reset()
    with openstack_stack(openstack_fake, tmp_path_factory.mktemp("openstack-home"), HOME_CONFIG, hub_id="home-hub") as s:
        yield s
    openstack_fake.reset()


def contents(hub, user: str, path: str, body: dict | None = None):
    """The user's server's contents API through the hub's proxy (PUT with ``body``, else GET)."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(f"{hub.url}/user/{user}/api/contents/{path}", data=data,
                                     method="PUT" if body is not None else "GET")
    request.add_header("Authorization", f"token {hub.admin_token}")
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as e:
        return e.code, None


def volumes_of(fake, user: str) -> list[dict]:
    return [v for v in fake.volumes() if v["metadata"].get("hybrid-owner") == user]


def servers_of(fake, user: str) -> list[dict]:
    return [s for s in fake.servers() if (s.get("metadata") or {}).get("hybrid-owner") == user]


def wait_for(predicate, timeout=20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.2)
    return predicate()


def test_the_home_volume_keeps_work_across_stops(stack):
    hub, fake = stack.hub, stack.fake
    events = spawn_and_follow(hub, "alice")
    assert events[-1].get("ready"), events
    messages = [e["message"] for e in events]
    assert any(m.startswith("Creating your home volume (2 GB)") for m in messages), messages
    [volume] = volumes_of(fake, "alice")
    assert volume["status"] == "in-use" and volume["size"] == 2
    assert volume["metadata"]["hybrid-hub"] == "home-hub" and volume["metadata"]["hybrid-role"] == "home"
    [server] = servers_of(fake, "alice")
    assert volume["attachments"][0]["server_id"] == server["id"]
    assert volume["availability_zone"] == server["availability_zone"]
    status, _ = contents(hub, "alice", "thesis.txt", {"type": "file", "format": "text", "content": "chapter 1"})
    assert status in (200, 201)
    assert (stack.nodes_dir / "volumes" / volume["id"] / "thesis.txt").read_text() == "chapter 1"
    status, home = json.loads(hub.get_via_proxy("/user/alice/hybrid/home")[1]), None
    assert status["kind"] == "persistent"

    hub.stop_server("alice")
    assert wait_for(lambda: not servers_of(fake, "alice"))
    assert wait_for(lambda: volumes_of(fake, "alice")[0]["status"] == "available")
    # The server's own disk went with it; the volume's directory stayed.
    assert wait_for(lambda: not (stack.nodes_dir / "disks" / server["id"]).exists())

    events = spawn_and_follow(hub, "alice")
    assert events[-1].get("ready"), events
    assert any(f"Found your home volume {volume['id']}" in e["message"] for e in events)
    assert [v["id"] for v in volumes_of(fake, "alice")] == [volume["id"]]  # one volume, reused
    status, model = contents(hub, "alice", "thesis.txt?content=1")
    assert status == 200 and model["content"] == "chapter 1"
    hub.stop_server("alice")


def test_without_a_volume_a_stop_loses_the_servers_disk(stack):
    hub, fake = stack.hub, stack.fake
    assert spawn_and_follow(hub, "nohome")[-1].get("ready")
    assert volumes_of(fake, "nohome") == []
    status, _ = contents(hub, "nohome", "draft.txt", {"type": "file", "format": "text", "content": "unsaved work"})
    assert status in (200, 201)
    home = json.loads(hub.get_via_proxy("/user/nohome/hybrid/home")[1])
    assert home["kind"] == "ephemeral"
    hub.stop_server("nohome")
    assert spawn_and_follow(hub, "nohome")[-1].get("ready")
    status, _ = contents(hub, "nohome", "draft.txt")
    assert status == 404  # a new server, a new disk: what was not synced is gone
    hub.stop_server("nohome")


def test_a_home_volume_over_the_admins_limit_is_refused_and_nothing_is_created(stack):
    hub, fake = stack.hub, stack.fake
    events = spawn_and_follow(hub, "bigvol")
    assert events[-1].get("failed"), events
    assert "500 GB is over this hub's limit of 10 GB" in events[-1]["message"]
    assert volumes_of(fake, "bigvol") == [] and servers_of(fake, "bigvol") == []


def test_a_home_volume_in_use_elsewhere_stops_the_spawn_and_leaves_nothing(stack, monkeypatch):
    import openstack

    hub, fake = stack.hub, stack.fake
    assert spawn_and_follow(hub, "carol")[-1].get("ready")
    [volume] = volumes_of(fake, "carol")
    hub.stop_server("carol")
    assert wait_for(lambda: volumes_of(fake, "carol")[0]["status"] == "available")
    # Someone attaches the volume to a server of their own in the same project.
    monkeypatch.setenv("OS_CLIENT_CONFIG_FILE", str(stack.clouds_yaml))
    conn = openstack.connect(cloud="fake")
    image = conn.image.find_image("debian-12")
    other = conn.compute.create_server(name="someone-elses", image_id=image.id,
                                       flavor_id=conn.compute.find_flavor("m1.tiny").id,
                                       networks=[{"uuid": conn.network.find_network("research-private").id}])
    other = conn.compute.wait_for_server(other, interval=0.2, wait=30)
    conn.compute.create_volume_attachment(other, volume_id=volume["id"])
    try:
        events = spawn_and_follow(hub, "carol")
        assert events[-1].get("failed"), events
        assert f"Your home volume {volume['id']} is attached to another server" in events[-1]["message"]
        assert servers_of(fake, "carol") == []  # nothing started
        assert [v["id"] for v in volumes_of(fake, "carol")] == [volume["id"]]
    finally:
        conn.compute.delete_server(other)
