"""``python -m jupyter_config.demo --ldap``: the demo's logins go to its own slapd over LDAPS, and
the directory's gpu-users group decides who is offered the larger profile."""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from pathlib import Path

import pytest
import requests

from jupyter_config.demo.__main__ import main as demo_main
from simulators.demo_stack import DEMO_USER, LDAP_GPU_USER, PASSWORD, DemoStack

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def ldap_demo():
    directory = Path(tempfile.mkdtemp(prefix="hybrid-demo-ldap-"))
    os.chmod(directory, 0o711)  # as the demo does: slapd runs as the openldap account
    stack = DemoStack(directory, with_slurm=False, with_openstack=False, with_ldap=True)
    try:
        yield stack.start()
    finally:
        stack.stop()
        shutil.rmtree(directory, ignore_errors=True)


def spawn_page(hub_url: str, user: str, password: str) -> requests.Response:
    s = requests.Session()
    page = s.get(f"{hub_url}/hub/login", timeout=30)
    xsrf = re.search(r'name="_xsrf" value="([^"]+)"', page.text).group(1)
    r = s.post(f"{hub_url}/hub/login", data={"username": user, "password": password, "_xsrf": xsrf}, timeout=60)
    if r.status_code != 200 or "/hub/login" in r.url:
        return r
    return s.get(f"{hub_url}/hub/spawn/{user}", timeout=30)


def test_the_demo_logs_in_against_its_slapd_and_offers_the_gpu_profile_by_group(ldap_demo):
    hub = ldap_demo.urls["hub"]
    assert ldap_demo.urls["ldap"] and "ec2-gpu" in ldap_demo.urls["profiles"]
    researcher, ada = spawn_page(hub, DEMO_USER, PASSWORD), spawn_page(hub, LDAP_GPU_USER, PASSWORD)
    assert researcher.status_code == 200 and 'value="ec2-private"' in researcher.text
    assert "ec2-gpu" not in researcher.text
    assert ada.status_code == 200 and 'value="ec2-gpu"' in ada.text
    # Not in the directory: refused, though the demo's old shared password is the same word.
    assert spawn_page(hub, "mallory", PASSWORD).status_code == 403
    config = (ldap_demo.directory / "hub" / "jupyterhub_config.py").read_text()
    assert "HybridLDAPAuthenticator" in config and "ca_certs_file" in config


def test_the_demo_refuses_ldap_without_slapd_before_starting_anything(monkeypatch, tmp_path):
    monkeypatch.setattr("simulators.ldap.slapd_available", lambda: "slapd is not installed (apt-get install slapd ldap-utils openssl)")
    with pytest.raises(RuntimeError, match="--ldap needs slapd: slapd is not installed"):
        demo_main(["--ldap", "--no-slurm", "--no-openstack", "--dir", str(tmp_path / "demo")])
    assert not (tmp_path / "demo").exists() or not any((tmp_path / "demo").iterdir()), "nothing may have started"
