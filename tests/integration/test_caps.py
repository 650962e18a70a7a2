"""Caps on a real hub (HybridSpawner, EC2 on moto server, the node runner): racing spawns for
the last slot, an instance started outside the hub counting, the per-user cap, release on stop."""

from __future__ import annotations

import html
import re
import threading
from urllib.parse import urljoin

import pytest
import requests

from hybrid_spawner.backends.ec2.plan import TAG_HUB, TAG_OWNER
from simulators.processes import wait_until
from tests.fixtures.hybrid_ec2 import hybrid_ec2_hub, live_instances

pytestmark = pytest.mark.integration

CAPS = """
c.JupyterHub.spawner_class = "hybrid"
c.HybridSpawner.profiles = [
    {"slug": "cloud", "display_name": "Cloud VM", "backend": "ec2", "default": True,
     "overrides": {"instance_types": ["t3.micro"]}},
]
c.HybridSpawner.max_servers_per_backend = {"ec2": 2}
c.HybridSpawner.max_servers_per_user = 1
c.HybridSpawner.cap_listing_max_age = 0.5
"""


def live(ec2, hub_id: str) -> list[dict]:
    return live_instances(ec2, hub_id)


def owner_of(instance: dict) -> str:
    return {t["Key"]: t["Value"] for t in instance.get("Tags", [])}.get(TAG_OWNER, "")


@pytest.fixture(scope="module")
def capped(moto_server, tmp_path_factory):
    with hybrid_ec2_hub(moto_server.url, tmp_path_factory.mktemp("caps"), CAPS) as world:
        yield world


def launch_outside_the_hub(world) -> str:
    """An instance started by a script, not by JupyterHub, that carries the hub's tag."""
    reply = world.ec2.run_instances(
        ImageId=world.net["ami"], InstanceType="t3.micro", MinCount=1, MaxCount=1, SubnetId=world.net["subnet"],
        TagSpecifications=[{"ResourceType": "instance", "Tags": [
            {"Key": TAG_HUB, "Value": world.hub_id}, {"Key": TAG_OWNER, "Value": "batch-script"}]}],
    )
    return reply["Instances"][0]["InstanceId"]


def test_twenty_spawns_racing_for_the_last_slot_give_one_server(capped):
    hub = capped.hub
    outside = launch_outside_the_hub(capped)  # takes one of the two EC2 slots
    users = [f"racer{i:02d}" for i in range(20)]
    for user in users:
        hub.ensure_user(user)
    answers: dict[str, tuple] = {}
    go = threading.Barrier(len(users))

    def request(user):
        go.wait()
        answers[user] = hub.spawn(user)

    threads = [threading.Thread(target=request, args=(u,)) for u in users]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)

    started = [u for u, (status, _) in answers.items() if status in (201, 202)]
    refused = {u: body for u, (status, body) in answers.items() if status == 429}
    assert len(started) == 1 and len(refused) == 19, answers
    for body in refused.values():
        assert "EC2 is full: 2 servers are running there and the cap is 2, 1 of them started outside JupyterHub" in (
            body["message"]
        ), body
    (winner,) = started
    hub.wait_ready(winner, timeout=120)
    instances = live(capped.ec2, capped.hub_id)
    assert sorted(owner_of(i) for i in instances) == sorted(["batch-script", winner]), instances
    for user in refused:
        assert hub.server_model(user) is None

    # Through the spawn form: the page shows the reason, nothing is launched.
    page = post_spawn_form(hub, next(iter(refused)))
    assert "EC2 is full: 2 servers are running there and the cap is 2" in html.unescape(page), page[-3000:]
    assert len(live(capped.ec2, capped.hub_id)) == 2

    # The per-user cap (1): the winner's second, named server is refused, nothing launched.
    status, body = hub.spawn(winner, "second")
    assert status == 429 and "You already have 1 running servers ((default)) and the cap per user is 1" in body["message"]
    assert len(live(capped.ec2, capped.hub_id)) == 2

    # Stopping the winner frees its slot; ending the outside instance frees the other one.
    hub.stop_server(winner)
    wait_until(lambda: len(live(capped.ec2, capped.hub_id)) == 1, 60, "the winner's instance to end")
    loser = next(iter(refused))
    status, body = hub.spawn(loser)
    assert status in (201, 202), body
    hub.wait_ready(loser, timeout=120)
    capped.ec2.terminate_instances(InstanceIds=[outside])
    hub.stop_server(loser)
    wait_until(lambda: not live(capped.ec2, capped.hub_id), 60, "every instance to end")


def post_spawn_form(hub, user: str) -> str:
    """Log in as ``user``, post the spawn form for the default profile, return the page shown."""
    browser = requests.Session()
    login = browser.get(f"{hub.url}/hub/login", timeout=30)
    xsrf = re.search(r'name="_xsrf" value="([^"]+)"', login.text).group(1)
    r = browser.post(f"{hub.url}/hub/login", data={"username": user, "password": hub.password, "_xsrf": xsrf},
                     allow_redirects=False, timeout=30)
    assert r.status_code == 302, r.text[:300]
    form = browser.get(f"{hub.url}/hub/spawn/{user}", timeout=30)
    action = html.unescape(re.search(r'<form[^>]*id="spawn_form"[^>]*action="([^"]+)"', form.text, re.S).group(1))
    answer = browser.post(urljoin(hub.url, action), files={"profile": (None, "cloud")}, timeout=60)
    return answer.text
