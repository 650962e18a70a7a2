"""OpenStackSpawner's backend hooks driven directly against the fake (no hub)."""

from __future__ import annotations

import ipaddress
import threading
from types import SimpleNamespace

import pytest

from hybrid_spawner.backends.openstack import spawner as openstack_module
from hybrid_spawner.backends.openstack import connection
from hybrid_spawner.backends.openstack.spawner import OpenStackSpawner
from hybrid_spawner.backends.openstack.status import OpenStackStatusCache
from hybrid_spawner.status import NodeState
from hybrid_spawner.remote import SpawnFailed

pytestmark = [pytest.mark.integration, pytest.mark.asyncio]


def make_spawner(os_cloud, user="zed", **traits) -> OpenStackSpawner:
    settings = dict(cloud="fake", clouds_yaml=str(os_cloud.clouds_yaml), image="jupyter-node-2024", flavor="m1.tiny",
                    networks=["research-private"], hub_id="unit-hub", build_poll_interval=0.2)
    settings.update(traits)
    return OpenStackSpawner(
        user=SimpleNamespace(name=user, url=f"/user/{user}/", escaped_name=user),
        hub=SimpleNamespace(api_url="http://127.0.0.1:9/hub/api/", base_url="/hub/"),
        **settings,
    )


async def launch(spawner, script="#!/bin/sh\ntrue\n"):
    await spawner.check_options()
    node_id = await spawner.launch_node(script)
    spawner.node_id = node_id
    return node_id


async def test_launch_wait_and_idempotent_terminate(openstack_cloud, monkeypatch):
    fake = openstack_cloud.fake
    loop_thread, sdk_threads = threading.get_ident(), []

    def recording_connect(settings):
        sdk_threads.append(threading.get_ident())
        return connection.connect(settings)

    monkeypatch.setattr(openstack_module, "connect", recording_connect)
    spawner = make_spawner(openstack_cloud)
    node_id = await launch(spawner)
    ip = await spawner.wait_for_address(node_id)
    assert ipaddress.ip_address(ip) in ipaddress.ip_network("127.42.0.0/24")
    messages = [e["message"] for e in spawner._events]
    assert any("is building" in m for m in messages) and any(f"private IP {ip}" in m for m in messages)
    await spawner.terminate_node(node_id)
    assert fake.servers() == []  # terminate waits until Nova has really deleted it
    await spawner.terminate_node(node_id)  # already gone: still success
    await spawner.terminate_node("00000000-0000-0000-0000-000000000000")
    # Every SDK call ran in a worker thread, never on the event loop's thread.
    assert len(sdk_threads) > 5 and loop_thread not in sdk_threads


async def test_nova_hiccup_while_building_is_retried(openstack_cloud):
    fake = openstack_cloud.fake
    spawner = make_spawner(openstack_cloud)
    node_id = await launch(spawner)
    fake.fail_requests(f"/compute/v2.1/servers/{node_id}", status=503, method="GET", count=2)
    assert (await spawner.wait_for_address(node_id)).startswith("127.42.0.")
    await spawner.terminate_node(node_id)


async def test_missing_flavor_or_network_is_named_and_nothing_is_created(openstack_cloud):
    for traits, words in [({"flavor": "m9.huge"}, "flavor 'm9.huge' does not exist"),
                          ({"networks": ["nowhere"]}, "network 'nowhere' does not exist"),
                          ({"networks": []}, "set OpenStackSpawner.networks"),
                          ({"cloud": "", "auth": {}}, "needs either `cloud`")]:
        with pytest.raises(SpawnFailed) as err:
            await make_spawner(openstack_cloud, **traits).check_options()
        assert words in err.value.jupyterhub_message
    assert openstack_cloud.fake.servers() == []


async def test_invalid_hub_id_is_refused_when_configured(openstack_cloud):
    from traitlets import TraitError

    with pytest.raises(TraitError, match="cannot be a Nova tag"):
        make_spawner(openstack_cloud, hub_id="a/b")


async def test_boot_from_volume_and_placement_options(openstack_cloud):
    spawner = make_spawner(openstack_cloud, boot_volume_size=20, availability_zone="nova",
                           security_groups=["jupyter-nodes"], key_name="research-key")
    await launch(spawner)
    [server] = openstack_cloud.fake.servers()
    assert server["image_id"] == ""
    assert server["block_device_mapping"][0]["volume_size"] == 20
    assert server["availability_zone"] == "nova" and server["security_groups"] == ["jupyter-nodes"]
    await spawner.terminate_node(spawner.node_id)


async def test_explicit_password_and_application_credential_auth(openstack_cloud):
    entries = openstack_cloud.fake.cloud_entries()
    for entry in ("fake", "fake-appcred"):
        spawner = make_spawner(openstack_cloud, cloud="", clouds_yaml="", auth=entries[entry]["auth"])
        await spawner.check_options()  # resolves image, flavor and network through Keystone auth


async def test_status_cache_sees_only_this_hubs_servers(openstack_cloud):
    ours, theirs = make_spawner(openstack_cloud), make_spawner(openstack_cloud, user="yan", hub_id="other-hub")
    our_id, their_id = await launch(ours), await launch(theirs)
    await ours.wait_for_address(our_id)
    cache = ours.status_cache()
    assert isinstance(cache, OpenStackStatusCache) and cache is make_spawner(openstack_cloud, user="x").status_cache()
    found = cache.fetch_all(frozenset())
    assert set(found) == {our_id}
    assert found[our_id].state is NodeState.RUNNING and found[our_id].address.startswith("127.42.0.")
    for spawner, node_id in ((ours, our_id), (theirs, their_id)):
        await spawner.terminate_node(node_id)


async def test_create_whose_answer_is_lost_leaves_no_server(openstack_cloud):
    fake = openstack_cloud.fake
    fake.fail_requests("/compute/v2.1/servers", status=502, method="POST", count=1, after=True)
    spawner = make_spawner(openstack_cloud)
    with pytest.raises(Exception) as err:
        await launch(spawner)
    assert "502" in str(err.value)
    assert fake.servers() == []
