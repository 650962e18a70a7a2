"""The OpenStack fake answers openstacksdk (over HTTP, through clouds.yaml) as the API reference says."""

from __future__ import annotations

import base64
import ipaddress
import json
import time
import urllib.error
import urllib.request

import openstack
import pytest
from keystoneauth1 import exceptions as ks_exc
from openstack import exceptions as os_exc

pytestmark = pytest.mark.integration


def http(method, url, body=None, headers=None):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json",
                                                                          **(headers or {})})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            raw = r.read()
            return r.status, dict(r.headers), json.loads(raw) if raw else None
    except urllib.error.HTTPError as e:
        raw = e.read()
        try:
            return e.code, dict(e.headers), json.loads(raw)
        except ValueError:
            return e.code, dict(e.headers), raw.decode()


def password_token(fake, user="demo", password=None):
    c = fake.config
    body = {"auth": {"identity": {"methods": ["password"], "password": {"user": {
        "name": user, "domain": {"name": "Default"}, "password": password or c["users"][user]}}},
        "scope": {"project": {"name": c["project_name"], "domain": {"name": "Default"}}}}}
    return http("POST", f"{fake.auth_url}/auth/tokens", body)


def wait_status(conn, server_id, wanted, timeout=20):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        server = conn.compute.get_server(server_id)
        if server.status == wanted:
            return server
        time.sleep(0.1)
    raise AssertionError(f"server {server_id} not {wanted}: {server.status}")


def create(conn, fake, name="nb-1", **extra):
    ids = fake.config
    return conn.compute.create_server(
        name=name, image_id=ids["images"]["jupyter-node-2024"], flavor_id=ids["flavors"]["m1.small"],
        networks=[{"uuid": ids["networks"]["research-private"]}], **extra)


def test_keystone_token_has_subject_header_and_catalog(openstack_cloud):
    status, headers, body = password_token(openstack_cloud.fake)
    assert status == 201
    assert headers["X-Subject-Token"]
    types = {s["type"] for s in body["token"]["catalog"]}
    assert {"identity", "compute", "network", "image"} <= types
    assert body["token"]["project"]["name"] == "research"


def test_keystone_rejects_wrong_password_with_401(openstack_cloud):
    status, headers, body = password_token(openstack_cloud.fake, password="wrong")
    assert status == 401
    assert body["error"]["title"] == "Unauthorized"
    assert "X-Subject-Token" not in headers


def test_unscoped_token_has_no_catalog_and_no_access(openstack_cloud):
    fake = openstack_cloud.fake
    body = {"auth": {"identity": {"methods": ["password"], "password": {"user": {
        "name": "demo", "domain": {"name": "Default"}, "password": fake.config["users"]["demo"]}}}}}
    status, headers, token = http("POST", f"{fake.auth_url}/auth/tokens", body)
    assert status == 201 and "catalog" not in token["token"] and "project" not in token["token"]
    status, _, _ = http("GET", f"{fake.url}/compute/v2.1/servers", headers={"X-Auth-Token": headers["X-Subject-Token"]})
    assert status == 403


def test_sdk_authenticates_with_password_and_application_credential(openstack_cloud):
    for cloud in ("fake", "fake-appcred"):
        conn = openstack.connect(cloud=cloud)
        assert {f.name for f in conn.compute.flavors()} == {"m1.tiny", "m1.small", "m1.large"}


def test_sdk_wrong_password_raises_unauthorized(openstack_cloud):
    conn = openstack.connect(cloud="fake", auth={"password": "wrong"})
    with pytest.raises(ks_exc.Unauthorized):
        list(conn.compute.flavors())


def test_services_refuse_requests_without_token(openstack_cloud):
    url = openstack_cloud.fake.url
    for path in ("/compute/v2.1/servers", "/networking/v2.0/networks", "/image/v2/images"):
        status, _, _ = http("GET", url + path)
        assert status == 401, path


def test_nova_microversion_negotiation_and_headers(openstack_cloud):
    fake = openstack_cloud.fake
    _, headers, _ = password_token(fake)
    token = headers["X-Subject-Token"]
    url = f"{fake.url}/compute/v2.1/servers/detail"
    status, h, _ = http("GET", url, headers={"X-Auth-Token": token, "OpenStack-API-Version": "compute 2.79"})
    assert status == 200 and h["OpenStack-API-Version"] == "compute 2.79"
    assert h["X-OpenStack-Nova-API-Version"] == "2.79"
    status, h, _ = http("GET", url, headers={"X-Auth-Token": token})
    assert h["OpenStack-API-Version"] == "compute 2.1"
    status, _, _ = http("GET", url, headers={"X-Auth-Token": token, "X-OpenStack-Nova-API-Version": "2.999"})
    assert status == 406
    status, _, body = http("GET", url, headers={"X-Auth-Token": token, "OpenStack-API-Version": "compute two"})
    assert status == 400 and "badRequest" in body


def test_server_builds_then_is_active_on_the_network_then_deleted(openstack_cloud):
    fake = openstack_cloud.fake
    conn = openstack.connect(cloud="fake")
    user_data = base64.b64encode(b"#!/bin/sh\necho hi\n").decode()
    server = create(conn, fake, metadata={"owner": "alice"}, tags=["hybrid-hub=h1"], user_data=user_data,
                    security_groups=[{"name": "jupyter-nodes"}], key_name="research-key")
    first = conn.compute.get_server(server.id)
    assert first.status == "BUILD"
    active = wait_status(conn, server.id, "ACTIVE")
    addr = active.addresses["research-private"][0]["addr"]
    assert ipaddress.ip_address(addr) in ipaddress.ip_network("127.42.0.0/24")
    assert active.metadata == {"owner": "alice"} and active.tags == ["hybrid-hub=h1"]
    ports = list(conn.network.ports(device_id=server.id))
    assert [p.fixed_ips[0]["ip_address"] for p in ports] == [addr]
    assert [s.id for s in conn.compute.servers(details=True, tags="hybrid-hub=h1")] == [server.id]
    assert list(conn.compute.servers(details=True, tags="hybrid-hub=other")) == []
    conn.compute.delete_server(server.id)
    conn.compute.wait_for_delete(server, interval=0.1, wait=20)
    assert list(conn.network.ports(device_id=server.id)) == []
    with pytest.raises(os_exc.NotFoundException):
        conn.compute.delete_server(server.id, ignore_missing=False)


def test_user_data_is_shown_to_admins_only(openstack_cloud):
    fake = openstack_cloud.fake
    user_data = base64.b64encode(b"#!/bin/sh\n").decode()
    server = create(openstack.connect(cloud="fake"), fake, user_data=user_data)
    member = openstack.connect(cloud="fake").compute.get_server(server.id)
    admin = openstack.connect(cloud="fake-admin").compute.get_server(server.id)
    assert member.user_data is None
    assert admin.user_data == user_data


def test_injected_build_failure_ends_in_error_with_fault(openstack_cloud):
    fake = openstack_cloud.fake
    fake.inject_build_failure("No valid host was found. There are not enough hosts available.")
    conn = openstack.connect(cloud="fake")
    server = create(conn, fake)
    failed = wait_status(conn, server.id, "ERROR")
    assert failed.fault["message"].startswith("No valid host was found")
    assert failed.fault["code"] == 500
    assert failed.addresses == {}
    assert create(conn, fake, name="nb-2") and wait_status(conn, fake.servers()[0]["id"], "ACTIVE")


def test_quota_exceeded_is_nova_403(openstack_cloud):
    fake = openstack_cloud.fake
    fake.set_quotas(instances=1)
    conn = openstack.connect(cloud="fake")
    create(conn, fake)
    with pytest.raises(os_exc.ForbiddenException) as err:
        create(conn, fake, name="nb-2")
    assert "Quota exceeded for instances: Requested 1, but already used 1 of 1 instances" in str(err.value)
    assert len(fake.servers()) == 1


def test_bad_create_requests_are_400_and_create_nothing(openstack_cloud):
    fake = openstack_cloud.fake
    conn = openstack.connect(cloud="fake")
    bad = [
        ({"flavor_id": "no-such-flavor"}, "Invalid flavorRef provided."),
        ({"image_id": "no-such-image"}, "Can not find requested image"),
        ({"networks": [{"uuid": "no-such-net"}]}, "Network no-such-net could not be found."),
        ({"security_groups": [{"name": "nope"}]}, "Security group nope not found"),
        ({"key_name": "nope"}, "Invalid key_name provided."),
        ({"availability_zone": "mars"}, "availability zone is not available"),
        ({"user_data": "not base64!"}, "User data needs to be valid base 64."),
    ]
    ids = fake.config
    for override, message in bad:
        args = {"name": "x", "image_id": ids["images"]["debian-12"], "flavor_id": ids["flavors"]["m1.tiny"],
                "networks": [{"uuid": ids["networks"]["research-private"]}], **override}
        with pytest.raises(os_exc.BadRequestException) as err:
            conn.compute.create_server(**args)
        assert message in str(err.value), override
    assert fake.servers() == []


def test_boot_from_volume_has_no_image_and_a_volume(openstack_cloud):
    fake = openstack_cloud.fake
    ids = fake.config
    conn = openstack.connect(cloud="fake")
    bdm = [{"boot_index": 0, "uuid": ids["images"]["debian-12"], "source_type": "image",
            "destination_type": "volume", "volume_size": 30, "delete_on_termination": True}]
    server = conn.compute.create_server(name="bfv", image_id="", flavor_id=ids["flavors"]["m1.tiny"],
                                        networks=[{"uuid": ids["networks"]["research-private"]}],
                                        block_device_mapping=bdm)
    active = wait_status(conn, server.id, "ACTIVE")
    assert not (active.image or {}).get("id")
    assert len(active.attached_volumes) == 1


def test_glance_and_neutron_not_found_shapes(openstack_cloud):
    fake = openstack_cloud.fake
    token = password_token(fake)[1]["X-Subject-Token"]
    status, _, body = http("GET", f"{fake.url}/image/v2/images/nope", headers={"X-Auth-Token": token})
    assert status == 404 and "No image found" in body
    status, _, body = http("GET", f"{fake.url}/networking/v2.0/networks/nope", headers={"X-Auth-Token": token})
    assert status == 404 and body["NeutronError"]["type"] == "NetworkNotFound"
    conn = openstack.connect(cloud="fake")
    assert conn.image.find_image("nope") is None
    assert conn.network.find_network("research-private").name == "research-private"


def test_injected_http_failure(openstack_cloud):
    fake = openstack_cloud.fake
    conn = openstack.connect(cloud="fake")
    list(conn.compute.flavors())
    fake.fail_requests("/compute/v2.1/servers", status=503, method="GET")
    with pytest.raises(os_exc.HttpException) as err:
        list(conn.compute.servers())
    assert err.value.status_code == 503
    fake.clear_failures()
    assert list(conn.compute.servers()) == []
