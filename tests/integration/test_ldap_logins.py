"""LDAPS logins on a real hub against a real slapd: LDAP groups become JupyterHub groups and
decide which HybridSpawner profiles a researcher sees and may start; the server's certificate
is checked (a certificate from an unknown CA fails the login with a log line that says why)."""

from __future__ import annotations

import json
import re
import shutil

import pytest
import requests

from simulators.ldap import GROUPS, PEOPLE, make_ca
from tests.fixtures.ec2_hybrid import ec2_hybrid_hub, live_instances

pytestmark = pytest.mark.integration

PROFILES = [
    {"slug": "cpu", "display_name": "CPU VM", "backend": "ec2", "default": True,
     "overrides": {"instance_types": ["t3.micro"]}},
    {"slug": "gpu", "display_name": "GPU VM", "backend": "ec2", "allowed_groups": ["gpu-users"],
     "overrides": {"instance_types": ["t3.small"]}},
]

LDAP_CONFIG = """
c.JupyterHub.spawner_class = "hybrid"
c.HybridSpawner.profiles = {profiles!r}
c.JupyterHub.authenticator_class = "hybrid_spawner.auth.ldap.HybridLDAPAuthenticator"
c.LDAPAuthenticator.server_address = "127.0.0.1"
c.LDAPAuthenticator.server_port = {port}
c.LDAPAuthenticator.tls_strategy = "on_connect"
c.LDAPAuthenticator.tls_kwargs = {{"ca_certs_file": {trust!r}}}
c.LDAPAuthenticator.bind_dn_template = ["uid={{username}},{people}"]
c.HybridLDAPAuthenticator.group_search_base = {groups!r}
"""


@pytest.fixture(scope="module")
def ldap_hub(moto_server, slapd, tmp_path_factory):
    directory = tmp_path_factory.mktemp("ldap-hub")
    # The hub trusts what is in this file, read at every connection: a test swaps in another CA.
    trust = directory / "trusted-ca.pem"
    shutil.copy(slapd.ca_cert, trust)
    config = LDAP_CONFIG.format(profiles=PROFILES, port=slapd.port, trust=str(trust), people=PEOPLE, groups=GROUPS)
    with ec2_hybrid_hub(moto_server.url, directory, config) as world:
        world.trust = trust
        world.slapd = slapd
        yield world


def log_in(hub, user: str, password: str) -> tuple[requests.Session, requests.Response]:
    s = requests.Session()
    page = s.get(f"{hub.url}/hub/login", timeout=30)
    xsrf = re.search(r'name="_xsrf" value="([^"]+)"', page.text).group(1)
    r = s.post(f"{hub.url}/hub/login", data={"username": user, "password": password, "_xsrf": xsrf}, timeout=60)
    return s, r


def test_ldap_groups_become_hub_groups_at_login(ldap_hub):
    hub = ldap_hub.hub
    for user, groups in (("ada", ["gpu-users", "researchers"]), ("grace", ["researchers"])):
        _, r = log_in(hub, user, f"{user}-password")
        assert r.ok and "/hub/login" not in r.url, (user, r.status_code, r.text[:300])
        _, model = hub.api("GET", f"/users/{user}", expect=200)
        assert sorted(model["groups"]) == groups, model
    assert "LDAP login of ada: groups gpu-users, researchers" in hub.log_text()


def test_a_wrong_password_or_unknown_user_is_refused(ldap_hub):
    hub = ldap_hub.hub
    for user, password in (("ada", "not-her-password"), ("nobody-here", "whatever")):
        _, r = log_in(hub, user, password)
        assert r.status_code == 403 and "Invalid username or password" in r.text, (user, r.status_code)
    status, _ = hub.api("GET", "/users/nobody-here")
    assert status == 404, "a failed login must not create a hub user"
    assert "Failed to bind user 'ada'" in hub.log_text()


def test_the_gpu_profile_is_offered_only_to_the_gpu_group(ldap_hub):
    hub = ldap_hub.hub
    pages = {}
    for user in ("ada", "grace"):
        s, r = log_in(hub, user, f"{user}-password")
        assert r.ok
        page = s.get(f"{hub.url}/hub/spawn/{user}", timeout=30)
        assert page.status_code == 200, page.text[:300]
        pages[user] = page.text
    assert 'value="gpu"' in pages["ada"] and 'value="cpu"' in pages["ada"]
    assert 'value="cpu"' in pages["grace"] and "gpu" not in pages["grace"].lower().replace("gpu-users", "")


def test_outside_the_gpu_group_the_rest_api_cannot_force_the_gpu_profile(ldap_hub):
    hub, ec2 = ldap_hub.hub, ldap_hub.ec2
    log_in(hub, "grace", "grace-password")
    _, token = hub.api("POST", "/users/grace/tokens", {"note": "forcing the GPU profile"}, expect=201)
    status, body = hub.api("POST", "/users/grace/server", {"profile": "gpu"}, token=token["token"])
    assert status == 400, body
    assert "not available to user" in json.dumps(body) and "gpu" in json.dumps(body)
    assert not live_instances(ec2, ldap_hub.hub_id, "grace"), "a refused spawn launched an instance"
    model = hub.server_model("grace")
    assert model is None or not (model.get("ready") or model.get("pending"))


def test_inside_the_gpu_group_the_gpu_profile_starts(ldap_hub):
    hub, ec2 = ldap_hub.hub, ldap_hub.ec2
    log_in(hub, "ada", "ada-password")
    status, body = hub.spawn("ada", options={"profile": "gpu"})
    assert status in (201, 202), body
    hub.wait_ready("ada", timeout=120)
    (instance_id,) = live_instances(ec2, ldap_hub.hub_id, "ada")
    described = ec2.describe_instances(InstanceIds=[instance_id])["Reservations"][0]["Instances"][0]
    assert described["InstanceType"] == "t3.small"
    hub.stop_server("ada")
    assert not live_instances(ec2, ldap_hub.hub_id, "ada")


def test_a_server_certificate_from_an_unknown_ca_fails_the_login_with_a_clear_log_line(ldap_hub, tmp_path):
    hub = ldap_hub.hub
    stranger, _ = make_ca(tmp_path, "some-other-ca")
    shutil.copy(stranger, ldap_hub.trust)
    try:
        _, r = log_in(hub, "ada", "ada-password")
        assert r.status_code == 403, (r.status_code, r.text[:300])
    finally:
        shutil.copy(ldap_hub.slapd.ca_cert, ldap_hub.trust)
    log = hub.log_text()
    assert f"the certificate of the LDAP server 127.0.0.1:{ldap_hub.slapd.port} could not be verified" in log
    assert "tls_kwargs['ca_certs_file']" in log and "CERTIFICATE_VERIFY_FAILED" in log
    assert "(('" not in log, "the reason is given in plain words, not as nested tuples"
    # With the right CA back, the same login works: nothing was left broken.
    _, r = log_in(hub, "ada", "ada-password")
    assert r.ok and "/hub/login" not in r.url


def test_the_directory_decides_at_the_next_login(ldap_hub):
    """Moved from gpu-users in the directory: ada loses the GPU profile, grace gains it."""
    hub, slapd = ldap_hub.hub, ldap_hub.slapd
    slapd.set_group_members("gpu-users", ["grace"])
    try:
        for user, groups, offered in (("ada", ["researchers"], False), ("grace", ["gpu-users", "researchers"], True)):
            s, r = log_in(hub, user, f"{user}-password")
            assert r.ok
            _, model = hub.api("GET", f"/users/{user}", expect=200)
            assert sorted(model["groups"]) == groups, model
            page = s.get(f"{hub.url}/hub/spawn/{user}", timeout=30).text
            assert ('value="gpu"' in page) is offered, user
        status, body = hub.api("POST", "/users/ada/server", {"profile": "gpu"})
        assert status == 400 and "not available to user" in json.dumps(body)
        assert not live_instances(ldap_hub.ec2, ldap_hub.hub_id, "ada")
    finally:
        slapd.set_group_members("gpu-users", ["ada"])


def test_a_certificate_for_another_name_is_refused_though_its_ca_is_trusted(caplog):
    """The name check, against a real slapd whose certificate names only elsewhere.test."""
    import asyncio
    import logging
    import tempfile
    from pathlib import Path

    from hybrid_spawner.auth.ldap import HybridLDAPAuthenticator
    from simulators.ldap import LocalSlapd

    directory = Path(tempfile.mkdtemp(prefix="hybrid-slapd-misnamed-"))
    server = LocalSlapd(directory, alt_names="DNS:elsewhere.test")
    try:
        server.start()
        log = logging.getLogger("test-ldap-names")
        auth = HybridLDAPAuthenticator(
            log=log, server_address="127.0.0.1", server_port=server.port, tls_strategy="on_connect",
            tls_kwargs={"ca_certs_file": str(server.ca_cert)}, bind_dn_template=[f"uid={{username}},{PEOPLE}"],
            group_search_base=GROUPS,
        )
        with caplog.at_level(logging.INFO, logger="test-ldap-names"):
            refused = asyncio.run(auth.authenticate(None, {"username": "ada", "password": "ada-password"}))
            assert refused is None
            assert (f"the certificate of the LDAP server 127.0.0.1:{server.port} is not for that name "
                    "(it names DNS:elsewhere.test). Set LDAPAuthenticator.server_address") in caplog.text
            # Told to accept the name the certificate carries (ldap3's valid_names): the login and
            # the groups come through, so the refusal above was the name and nothing else.
            auth.tls_kwargs = {"ca_certs_file": str(server.ca_cert), "valid_names": ["elsewhere.test"]}
            model = asyncio.run(auth.authenticate(None, {"username": "ada", "password": "ada-password"}))
        assert model["name"] == "ada" and model["groups"] == ["gpu-users", "researchers"], model
    finally:
        server.stop()
        shutil.rmtree(directory, ignore_errors=True)
