"""Spot capacity through moto server's RunInstances InstanceMarketOptions on a real hub: a spot
server, and spot capacity missing falling back to on-demand with the spawn page saying so."""

from __future__ import annotations

import threading

import pytest

from simulators.processes import wait_until
from tests.fixtures.hybrid_ec2 import hybrid_ec2_hub, live_instances

pytestmark = pytest.mark.integration

CONFIG = """
c.JupyterHub.spawner_class = "hybrid"
c.JupyterHub.tornado_settings = {"slow_spawn_timeout": 0}
c.HybridSpawner.profiles = [
    {"slug": "spot", "display_name": "Spot VM", "backend": "ec2", "default": True,
     "overrides": {"spot": True, "instance_types": ["t3.micro"]}},
    {"slug": "spot-scarce", "display_name": "Spot VM of a scarce type", "backend": "ec2",
     "overrides": {"spot": True, "instance_types": ["t3.small"]}},
]

def _no_spot_for_small(client, service):
    # Fault injection: no spot capacity for t3.small, as AWS answers when the spot pool is empty.
    if service != "ec2":
        return
    from botocore.awsrequest import AWSResponse

    def refuse(params, **kwargs):
        body = params.get("body") or {}
        if body.get("InstanceType") == "t3.small" and body.get("InstanceMarketOptions.MarketType") == "spot":
            error = {"Code": "InsufficientInstanceCapacity",
                     "Message": "There is no Spot capacity available that matches your request."}
            return AWSResponse("", 500, {}, None), {"Error": error, "ResponseMetadata": {}}

    client.meta.events.register("before-call.ec2.RunInstances", refuse)

c.EC2Spawner.client_customizer = _no_spot_for_small
"""


@pytest.fixture(scope="module")
def world(moto_server, tmp_path_factory):
    with hybrid_ec2_hub(moto_server.url, tmp_path_factory.mktemp("spot"), CONFIG) as w:
        yield w


def spawn_and_follow(hub, user: str, options: dict) -> list[dict]:
    answer = {}
    poster = threading.Thread(target=lambda: answer.update(r=hub.spawn(user, options=options)))
    poster.start()
    poster.join(30)
    assert answer["r"][0] in (201, 202), answer
    return hub.progress_events(user, timeout=120)


def owned(world, user: str) -> list[dict]:
    return [i for i in live_instances(world.ec2, world.hub_id)
            if {t["Key"]: t["Value"] for t in i.get("Tags", [])}.get("jupyterhub/owner") == user]


def test_a_spot_profile_gets_a_spot_instance_and_says_so(world):
    events = spawn_and_follow(world.hub, "saver", {"profile": "spot"})
    messages = [e.get("message", "") for e in events]
    assert events[-1].get("ready"), messages
    assert any(m.startswith("Launched instance i-") and m.endswith("(t3.micro, spot)") for m in messages), messages
    (instance,) = owned(world, "saver")
    assert instance.get("InstanceLifecycle") == "spot"
    assert world.hub.server_model("saver")["state"]["child_state"]["market"] == "spot"
    world.hub.stop_server("saver")
    wait_until(lambda: not owned(world, "saver"), 60, "the spot instance to end")


def test_missing_spot_capacity_falls_back_to_on_demand_and_says_so(world):
    events = spawn_and_follow(world.hub, "unlucky", {"profile": "spot-scarce"})
    messages = [e.get("message", "") for e in events]
    assert events[-1].get("ready"), messages
    assert any(m.startswith("No spot t3.small capacity") and "InsufficientInstanceCapacity" in m for m in messages), messages
    assert "No spot capacity; started t3.small on-demand instead" in messages, messages
    assert any(m.startswith("Launched instance i-") and m.endswith("(t3.small, on-demand)") for m in messages), messages
    (instance,) = owned(world, "unlucky")  # exactly one instance: the refused spot request left none
    assert instance.get("InstanceLifecycle") is None and instance["InstanceType"] == "t3.small"
    assert world.hub.server_model("unlucky")["state"]["child_state"]["market"] == "on-demand"
    world.hub.stop_server("unlucky")
    wait_until(lambda: not owned(world, "unlucky"), 60, "the instance to end")
