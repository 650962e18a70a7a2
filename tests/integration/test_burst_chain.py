"""The burst chain on a real hub: Slurm (real daemons), then OpenStack (the fake), then EC2 (moto
server + node runner). A full step is left with its reason on the spawn page and nothing behind."""

from __future__ import annotations

import secrets
import threading
from types import SimpleNamespace

import pytest

from hybrid_spawner.backends.ec2.plan import TAG_HUB, TAG_OWNER
from simulators.hub import LocalHub
from simulators.moto import MOTO_CREDENTIALS
from simulators.noderunner import NodeRunnerProcess
from simulators.noderunner_openstack import NovaNodeRunnerProcess
from simulators.processes import ProcessFailed, wait_until
from tests.fixtures.ec2 import REGION, aws, ec2_hub_config, make_network
from tests.fixtures.slurm import user_jobs

pytestmark = pytest.mark.integration

CHAIN = """
import sys
c.JupyterHub.spawner_class = "hybrid"
c.JupyterHub.tornado_settings = {{"slow_spawn_timeout": 0}}
c.OpenStackSpawner.cloud = "fake"
c.OpenStackSpawner.clouds_yaml = {clouds_yaml!r}
c.OpenStackSpawner.image = "jupyter-node-2024"
c.OpenStackSpawner.flavor = "m1.small"
c.OpenStackSpawner.networks = ["research-private"]
c.OpenStackSpawner.security_groups = ["jupyter-nodes"]
c.OpenStackSpawner.hub_id = {hub_id!r}
c.OpenStackSpawner.node_python = sys.executable
c.OpenStackSpawner.status_refresh_interval = 1
c.OpenStackSpawner.build_poll_interval = 0.3
c.HybridSpawner.profiles = [
    {{
        "slug": "burst",
        "display_name": "Slurm, bursting to the clouds",
        "backend": "slurm",
        "default": True,
        "overrides": {{"req_partition": {partition!r}, "req_runtime": "01:00:00"}},
        "queue_timeout": 3,
        "burst": [
            {{"backend": "openstack"}},
            {{"backend": "ec2", "overrides": {{"instance_types": ["t3.micro"]}}}},
        ],
    }},
    {{
        "slug": "ec2-first",
        "display_name": "EC2 first, OpenStack when it is full",
        "backend": "ec2",
        "overrides": {{"instance_types": ["t3.nano"]}},
        "burst": ["openstack"],
    }},
]
c.HybridSpawner.max_servers_per_backend = {{"openstack": 1}}
"""


def live_instances(ec2, hub_id: str, owner: str) -> list[str]:
    reply = ec2.describe_instances(Filters=[
        {"Name": f"tag:{TAG_HUB}", "Values": [hub_id]},
        {"Name": f"tag:{TAG_OWNER}", "Values": [owner]},
        {"Name": "instance-state-name", "Values": ["pending", "running", "stopping", "stopped"]},
    ])
    return [i["InstanceId"] for r in reply["Reservations"] for i in r["Instances"]]


@pytest.fixture(scope="module")
def chain_world(make_slurm_hub, slurm_test_user, moto_server, openstack_fake, tmp_path_factory):
    directory = tmp_path_factory.mktemp("chain")
    hub_id = f"chain-hub-{secrets.token_hex(4)}"
    net = make_network(moto_server.url)
    openstack_fake.reset()
    clouds_yaml = openstack_fake.write_clouds_yaml(directory / "clouds.yaml")
    config = ec2_hub_config(moto_server.url, hub_id, directory / "overrides.json", net) + CHAIN.format(
        clouds_yaml=str(clouds_yaml), hub_id=hub_id, partition="maint"  # maint is DOWN: jobs pend
    )
    runner = NodeRunnerProcess(directory / "nodes", hub_id=hub_id, endpoint_url=moto_server.url, region=REGION)
    runner.env.update(MOTO_CREDENTIALS)
    runner.start()
    nova_runner = NovaNodeRunnerProcess(directory / "nova-nodes", clouds_yaml=clouds_yaml, hub_id=hub_id, interval=0.3,
                                        log_dir=directory)
    nova_runner.start()
    ec2 = aws("ec2", moto_server.url)
    try:
        hub = make_slurm_hub(config, name="chain-hub", env=MOTO_CREDENTIALS)
        hub.ensure_user(slurm_test_user)
        yield SimpleNamespace(hub=hub, ec2=ec2, hub_id=hub_id, fake=openstack_fake, net=net, directory=directory)
    finally:
        left = live_instances(ec2, hub_id, slurm_test_user)
        if left:
            ec2.terminate_instances(InstanceIds=left)
        runner.stop()
        nova_runner.stop()
        openstack_fake.reset()


def spawn_and_follow(hub, user: str, options: dict | None = None) -> list[dict]:
    answer = {}
    poster = threading.Thread(target=lambda: answer.update(r=hub.spawn(user, options=options)))
    poster.start()
    poster.join(30)
    assert answer["r"][0] in (201, 202), answer
    return hub.progress_events(user, timeout=120)


def test_a_pending_slurm_job_and_a_full_openstack_are_left_for_ec2_with_nothing_behind(
    chain_world, slurm_cluster, slurm_test_user
):
    world, user = chain_world, slurm_test_user
    world.fake.inject_build_failure()  # Nova's scheduler: "No valid host was found."
    events = spawn_and_follow(world.hub, user)
    messages = [e.get("message", "") for e in events]
    assert events[-1].get("ready"), messages
    assert "Slurm: queue full after 3 s, trying OpenStack" in messages, messages
    (openstack_note,) = [m for m in messages if m.startswith("OpenStack: ")]
    assert "No valid host was found" in openstack_note and openstack_note.endswith(", trying EC2"), openstack_note
    # the notes come in the order the backends were tried, each after that backend's own events
    order = [i for i, m in enumerate(messages) if m.startswith(("Slurm:", "OpenStack:", "Launched instance"))]
    assert [messages[i].split(" ")[0] for i in order] == ["Slurm:", "OpenStack:", "Launched"], messages
    assert any(m.startswith("Slurm job") and "is queued" in m for m in messages[: order[0]]), messages

    model = world.hub.server_model(user)
    assert model["state"]["backend"] == "ec2" and model["state"]["profile"] == "burst"
    assert len(live_instances(world.ec2, world.hub_id, user)) == 1
    # Nothing left behind: the pending job was cancelled, the failed Nova server deleted.
    (job_id,) = {m.split()[3] for m in messages if m.startswith("Launched Slurm job")}
    assert user_jobs(slurm_cluster, user) == []
    assert f"{job_id} CANCELLED" in slurm_cluster.squeue_all("%i %T"), slurm_cluster.squeue_all("%i %T")
    assert world.fake.servers() == []

    world.hub.stop_server(user)
    wait_until(lambda: not live_instances(world.ec2, world.hub_id, user), 60, "the EC2 instance to end")


def test_ec2_without_capacity_bursts_to_openstack_and_a_full_chain_says_why(chain_world, slurm_test_user):
    world, user = chain_world, slurm_test_user
    # t3.nano has no capacity (the hub's fault injection): EC2 is full, OpenStack takes the server.
    events = spawn_and_follow(world.hub, user, {"profile": "ec2-first"})
    messages = [e.get("message", "") for e in events]
    assert events[-1].get("ready"), messages
    assert any(m.startswith("EC2: EC2 has no capacity for t3.nano") and m.endswith("trying OpenStack") for m in messages), messages
    assert world.hub.server_model(user)["state"]["backend"] == "openstack"
    assert len(world.fake.servers()) == 1 and live_instances(world.ec2, world.hub_id, user) == []

    # A second server of the profile: EC2 still has no capacity and OpenStack is at its cap (1).
    status, body = world.hub.spawn(user, "second", {"profile": "ec2-first"})
    if status in (201, 202):  # answered before start() failed: the reason is in the progress
        events = world.hub.progress_events(user, "second", timeout=60)
        assert events[-1].get("failed"), events
        message = events[-1]["message"]
    else:
        message = body["message"]
    assert "No backend of this profile has room right now (EC2: EC2 has no capacity for t3.nano" in message, message
    assert "OpenStack: OpenStack is full: 1 servers are running there and the cap is 1)" in message, message
    assert len(world.fake.servers()) == 1 and live_instances(world.ec2, world.hub_id, user) == []

    world.hub.stop_server(user)
    wait_until(lambda: world.fake.servers() == [], 60, "the OpenStack server to be deleted")


def test_an_unknown_backend_in_a_chain_stops_the_hub_at_startup(tmp_path):
    config = """
c.JupyterHub.spawner_class = "hybrid"
c.HybridSpawner.profiles = [{"slug": "hpc", "backend": "slurm", "burst": ["openstack", "azure"]}]
"""
    hub = LocalHub(tmp_path / "hub", config)
    with pytest.raises(ProcessFailed):
        hub.start(timeout=60)
    hub.stop()
    assert "HybridSpawner.profiles is invalid: profile 'hpc' burst step #2: unknown backend 'azure'" in hub.log_text()
