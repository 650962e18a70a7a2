"""Bad input to EC2Spawner: a clear message on the spawn page and in the progress, no traceback,
no secret, and nothing created in the cloud."""

from __future__ import annotations

import pytest

from tests.integration.test_ec2_spawn import login, spawn_and_watch, spawn_form_action

pytestmark = pytest.mark.integration

CASES = {
    "no-region": ({"region": ""}, "no AWS region is configured (set EC2Spawner.region)"),
    "odd-region": ({"region": "mars"}, "'mars' is not an AWS region name"),
    "unknown-region": ({"region": "xx-nowhere-9"}, "'xx-nowhere-9' is not a known AWS region"),
    "no-subnet": ({"subnet_ids": ["subnet-0123456789abcdef0"]}, "subnet subnet-0123456789abcdef0 does not exist in us-east-1"),
    "odd-subnet": ({"subnet_ids": ["research"]}, "'research' is not a subnet id"),
    "no-ami": ({"image": "ami-0123456789abcdef0"}, "image ami-0123456789abcdef0 does not exist in us-east-1"),
    "odd-ami": ({"image": "ubuntu-22.04"}, "'ubuntu-22.04' is neither an AMI id"),
    "no-ssm": ({"image": "resolve:ssm:/hybrid/test/missing"}, "SSM parameter resolve:ssm:/hybrid/test/missing does not exist"),
    "no-sg": ({"security_group_ids": ["sg-0123456789abcdef0"]}, "security group sg-0123456789abcdef0 does not exist"),
}


@pytest.mark.parametrize("user", sorted(CASES))
def test_bad_setting_fails_clearly_and_creates_nothing(ec2_world, user):
    overrides, expected = CASES[user]
    ec2_world.override(user, **overrides)
    events = spawn_and_watch(ec2_world, user)
    final = events[-1]
    assert final.get("failed"), events
    assert expected in final["message"], final["message"]
    assert "Traceback" not in final["message"]
    assert ec2_world.instances(user) == []


def test_refused_credentials_fail_clearly(ec2_world, moto_requiring_auth):
    ec2_world.override("bad-creds", endpoint_url=moto_requiring_auth.url, image="ami-0123456789abcdef0")
    final = spawn_and_watch(ec2_world, "bad-creds")[-1]
    assert final.get("failed") and "AWS rejected the hub's credentials" in final["message"], final
    assert "testing" not in final["message"]  # the (dummy) secret key
    assert ec2_world.instances("bad-creds") == []


def test_hub_log_has_no_traceback_for_bad_input(ec2_world):
    # Runs after the REST spawns above, each logged in one line. (It runs before the form test:
    # JupyterHub's own form handler logs every failed form spawn with a traceback.)
    log = ec2_world.hub.log_text()
    assert "Error starting" in log and "Traceback" not in log


def test_spawn_page_shows_the_message(ec2_world):
    hub = ec2_world.hub
    ec2_world.override("page-user", image="resolve:ssm:/hybrid/test/missing")
    hub.ensure_user("page-user")
    s = login(hub, "page-user")
    page = s.get(f"{hub.url}/hub/spawn/page-user", timeout=30)
    r = s.post(hub.url + spawn_form_action(page.text), data={}, timeout=60)
    assert "SSM parameter resolve:ssm:/hybrid/test/missing does not exist" in r.text
    assert "Traceback" not in r.text
    assert ec2_world.instances("page-user") == []
