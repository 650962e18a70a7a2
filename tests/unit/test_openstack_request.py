"""Pure planning of Nova server requests (no network)."""

from __future__ import annotations

import base64

import pytest

from hybrid_spawner.backends.openstack import plan as req

IDS = req.ResolvedIds(image_id="img-1", flavor_id="fl-1", network_ids=("net-1", "net-2"))


def plan(**kw) -> req.ServerPlan:
    base = dict(name="jupyter-alice", image="jupyter-node-2024", flavor="m1.small",
                networks=("research-private",), user_data="#!/bin/bash\necho boot\n",
                metadata={"hybrid-hub": "h1"}, tags=("hybrid-hub:h1",))
    base.update(kw)
    return req.ServerPlan(**base)


def test_create_attrs_boot_from_image():
    attrs = req.create_server_attrs(plan(security_groups=("jupyter-nodes",), key_name="research-key",
                                         availability_zone="nova"), IDS)
    assert attrs["image_id"] == "img-1" and "block_device_mapping" not in attrs
    assert attrs["flavor_id"] == "fl-1"
    assert attrs["networks"] == [{"uuid": "net-1"}, {"uuid": "net-2"}]
    assert attrs["security_groups"] == [{"name": "jupyter-nodes"}]
    assert attrs["key_name"] == "research-key" and attrs["availability_zone"] == "nova"
    assert base64.b64decode(attrs["user_data"]).decode() == "#!/bin/bash\necho boot\n"
    assert attrs["metadata"] == {"hybrid-hub": "h1"} and attrs["tags"] == ["hybrid-hub:h1"]


def test_create_attrs_omit_unset_optionals():
    attrs = req.create_server_attrs(plan(), IDS)
    for key in ("security_groups", "key_name", "availability_zone"):
        assert key not in attrs


def test_create_attrs_boot_from_volume():
    attrs = req.create_server_attrs(plan(boot_volume_size=40, delete_volume_on_termination=False), IDS)
    assert attrs["image_id"] == ""
    assert attrs["block_device_mapping"] == [{
        "boot_index": 0, "uuid": "img-1", "source_type": "image", "destination_type": "volume",
        "volume_size": 40, "delete_on_termination": False}]


@pytest.mark.parametrize("change, words", [
    ({"image": " "}, "OpenStackSpawner.image"),
    ({"flavor": ""}, "OpenStackSpawner.flavor"),
    ({"networks": ()}, "OpenStackSpawner.networks"),
    ({"networks": ("",)}, "OpenStackSpawner.networks"),
    ({"boot_volume_size": -1}, "boot_volume_size"),
    ({"user_data": "x" * 60000}, "64 KiB"),
    ({"tags": ("a/b",)}, "not a valid Nova tag"),
])
def test_invalid_plans_name_the_setting(change, words):
    with pytest.raises(req.PlanError, match=words):
        req.create_server_attrs(plan(**change), IDS)


def test_server_name_is_dns_safe_and_bounded():
    assert req.server_name("jupyter-{username}-{servername}", username="Alice.B@uni", servername="",
                           hub_id="h") == "jupyter-alice-b-uni"
    long = req.server_name("jupyter-{username}", username="x" * 100, servername="", hub_id="h")
    assert len(long) == req.SERVER_NAME_MAX
    with pytest.raises(req.PlanError, match="server_name_template"):
        req.server_name("jupyter-{user}", username="a", servername="", hub_id="h")
    with pytest.raises(req.PlanError, match="empty name"):
        req.server_name("{servername}", username="a", servername="", hub_id="h")


def test_metadata_has_owner_hub_server_and_ours_win():
    meta = req.server_metadata(hub_id="h1", owner="alice", servername="gpu",
                               extra={"project": "genomics", "hybrid-owner": "mallory"})
    assert meta == {"project": "genomics", "hybrid-hub": "h1", "hybrid-owner": "alice", "hybrid-server": "gpu"}
    with pytest.raises(req.PlanError, match="255"):
        req.server_metadata(hub_id="h1", owner="alice", servername="", extra={"k": "v" * 256})


def test_hub_tag_rules():
    assert req.hub_tag("abc") == "hybrid-hub:abc"
    for bad in ("", "a,b", "a/b", "x" * 60):
        with pytest.raises(req.PlanError, match="Nova tag"):
            req.hub_tag(bad)


def test_private_ip_reads_the_chosen_network_only():
    addresses = {
        "dmz": [{"version": 4, "addr": "192.0.2.5", "OS-EXT-IPS:type": "fixed"}],
        "research-private": [
            {"version": 6, "addr": "fd00::5", "OS-EXT-IPS:type": "fixed"},
            {"version": 4, "addr": "203.0.113.9", "OS-EXT-IPS:type": "floating"},
            {"version": 4, "addr": "10.0.0.12", "OS-EXT-IPS:type": "fixed"},
        ],
    }
    assert req.private_ip(addresses, "research-private") == "10.0.0.12"
    assert req.private_ip(addresses, "other") is None
    assert req.private_ip({}, "research-private") is None


def test_messages_and_quota_detection():
    msg = req.fault_message("jupyter-alice", {"message": "No valid host was found. "}, "ERROR")
    assert msg == "OpenStack could not start jupyter-alice: No valid host was found."
    assert "status ERROR" in req.fault_message("s", None, "ERROR")
    nova = "Quota exceeded for instances: Requested 1, but already used 10 of 10 instances"
    assert req.is_quota_error(403, nova) and not req.is_quota_error(403, "Policy forbids")
    assert not req.is_quota_error(400, nova)
    assert nova in req.quota_message(nova) and "project admin" in req.quota_message(nova)


@pytest.mark.parametrize("status, task, expected", [
    ("ACTIVE", None, "running"), ("BUILD", "spawning", "pending"), ("ERROR", None, "gone"),
    ("ACTIVE", "deleting", "gone"), ("SHUTOFF", None, "gone"), ("UNKNOWN", None, "pending"),
    ("REBOOT", "rebooting", "pending"), (None, None, "pending"),
])
def test_classify_status(status, task, expected):
    assert req.classify_status(status, task) == expected


def test_looks_like_uuid():
    assert req.looks_like_uuid("0f5e3a4c-9d2b-4f7a-8c1e-6b3d5a7f9e2c")
    assert not req.looks_like_uuid("debian-12")
