"""The fake's Cinder and Nova volume attachments through openstacksdk, against the API
reference: status transitions, and the errors for a volume in use, in another zone, or too big."""

from __future__ import annotations

import time

import openstack
import pytest
from openstack import exceptions as osx

pytestmark = pytest.mark.integration


def server(conn, name, zone=None):
    attrs = {"name": name, "image_id": conn.image.find_image("debian-12").id,
             "flavor_id": conn.compute.find_flavor("m1.tiny").id,
             "networks": [{"uuid": conn.network.find_network("research-private").id}]}
    if zone:
        attrs["availability_zone"] = zone
    return conn.compute.wait_for_server(conn.compute.create_server(**attrs), interval=0.2, wait=30)


def test_volume_lifecycle_and_refusals(openstack_cloud):
    openstack_cloud.fake.set_zones("nova", "az2")
    conn = openstack.connect(cloud="fake")
    volume = conn.block_storage.create_volume(size=1, name="home", metadata={"hybrid-role": "home"})
    assert volume.status == "creating"
    volume = conn.block_storage.wait_for_status(volume, "available", interval=0.1, wait=10)
    node = server(conn, "node-1")
    conn.compute.create_volume_attachment(node, volume=volume)
    assert conn.block_storage.get_volume(volume.id).status == "in-use"
    assert [v["id"] for v in conn.compute.get_server(node.id).attached_volumes] == [volume.id]

    other = server(conn, "node-2")
    with pytest.raises(osx.BadRequestException, match="status must be 'available'. Currently in 'in-use'"):
        conn.compute.create_volume_attachment(other, volume=volume)
    with pytest.raises(osx.BadRequestException, match="Volume status must be available"):
        conn.block_storage.delete_volume(volume.id)

    conn.compute.delete_server(node)  # Nova detaches it: the data stays
    seen = set()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and "available" not in seen:
        seen.add(conn.block_storage.get_volume(volume.id).status)
        time.sleep(0.05)
    assert "available" in seen

    far = server(conn, "node-az2", zone="az2")
    with pytest.raises(osx.BadRequestException, match="not in the same availability_zone"):
        conn.compute.create_volume_attachment(far, volume=volume)
    with pytest.raises(osx.BadRequestException, match="Availability zone 'az9' is invalid"):
        conn.block_storage.create_volume(size=1, availability_zone="az9")
    with pytest.raises(osx.HttpException, match="exceeds allowed gigabytes quota"):
        conn.block_storage.create_volume(size=5000)
    conn.block_storage.delete_volume(volume.id)
    assert [v.id for v in conn.block_storage.volumes()] == []
