"""One user, two named servers side by side: one on EC2 (moto server + node runner), one on Slurm."""

from __future__ import annotations

import secrets

import pytest

from hybrid_spawner.ec2_requests import TAG_HUB, TAG_OWNER
from hybrid_spawner.local.moto import MOTO_CREDENTIALS
from hybrid_spawner.local.noderunner import NodeRunnerProcess
from hybrid_spawner.local.processes import venv_bin_dir
from tests.fixtures.ec2 import HUB_CONFIG, REGION, SSM_AMI_PARAMETER, aws, make_network
from tests.fixtures.slurm import user_jobs, wait_until

pytestmark = pytest.mark.integration

PROFILES = """
c.JupyterHub.spawner_class = "hybrid"
c.HybridSpawner.profiles = [
    {"slug": "ec2-small", "display_name": "Cloud VM", "backend": "ec2", "cost_per_hour": 0.0104,
     "overrides": {"instance_types": ["t3.micro"]}},
    {"slug": "slurm-cpu", "display_name": "HPC job", "backend": "slurm", "default": True,
     "overrides": {"req_partition": "debug"}},
]
"""


@pytest.fixture(scope="module")
def mixed(moto_server, make_slurm_hub, tmp_path_factory):
    directory = tmp_path_factory.mktemp("mixed")
    hub_id = f"test-hub-{secrets.token_hex(4)}"
    ec2_config = HUB_CONFIG.format(
        region=REGION,
        endpoint=moto_server.url,
        ssm=SSM_AMI_PARAMETER,
        hub_id=hub_id,
        python=str(venv_bin_dir() / "python"),
        singleuser=str(venv_bin_dir() / "jupyterhub-singleuser"),
        overrides=str(directory / "overrides.json"),
        **make_network(moto_server.url),
    )
    runner = NodeRunnerProcess(directory / "nodes", hub_id=hub_id, endpoint_url=moto_server.url, region=REGION)
    runner.env.update(MOTO_CREDENTIALS)
    runner.start()
    ec2 = aws("ec2", moto_server.url)
    try:
        hub = make_slurm_hub(ec2_config + PROFILES, name="mixed-hub", env=MOTO_CREDENTIALS)
        yield hub, ec2, hub_id
    finally:
        reply = ec2.describe_instances(Filters=[{"Name": f"tag:{TAG_HUB}", "Values": [hub_id]}])
        live = [i["InstanceId"] for r in reply["Reservations"] for i in r["Instances"] if i["State"]["Name"] != "terminated"]
        if live:
            ec2.terminate_instances(InstanceIds=live)
        runner.stop()


def live_instances(ec2, hub_id: str, owner: str) -> list[str]:
    reply = ec2.describe_instances(
        Filters=[
            {"Name": f"tag:{TAG_HUB}", "Values": [hub_id]},
            {"Name": f"tag:{TAG_OWNER}", "Values": [owner]},
            {"Name": "instance-state-name", "Values": ["pending", "running"]},
        ]
    )
    return [i["InstanceId"] for r in reply["Reservations"] for i in r["Instances"]]


def test_an_ec2_and_a_slurm_server_run_side_by_side(mixed, slurm_cluster, slurm_test_user):
    hub, ec2, hub_id = mixed
    for server, profile in (("cloud", "ec2-small"), ("hpc", "slurm-cpu")):
        status, body = hub.spawn(slurm_test_user, server, {"profile": profile})
        assert status in (201, 202), body
    cloud = hub.wait_ready(slurm_test_user, "cloud", timeout=120)
    hpc = hub.wait_ready(slurm_test_user, "hpc", timeout=120)

    assert cloud["user_options"] == {"profile": "ec2-small"} and hpc["user_options"] == {"profile": "slurm-cpu"}
    assert cloud["state"]["backend"] == "ec2" and cloud["state"]["child_state"]["node_id"].startswith("i-")
    assert hpc["state"]["backend"] == "slurm"
    (instance,) = live_instances(ec2, hub_id, slurm_test_user)
    assert instance == cloud["state"]["child_state"]["node_id"]
    (job,) = user_jobs(slurm_cluster, slurm_test_user, states=("RUNNING",))
    assert job["id"] == hpc["state"]["child_state"]["job_id"]
    for server in ("cloud", "hpc"):
        status, text = hub.get_via_proxy(f"/user/{slurm_test_user}/{server}/api/status")
        assert status == 200, (server, text[:300])

    # Stopping one leaves the other running.
    hub.stop_server(slurm_test_user, "hpc")
    wait_until(lambda: not user_jobs(slurm_cluster, slurm_test_user), timeout=60, what="Slurm job cancelled")
    assert hub.server_model(slurm_test_user, "cloud")["ready"]
    assert hub.get_via_proxy(f"/user/{slurm_test_user}/cloud/api/status")[0] == 200
    hub.stop_server(slurm_test_user, "cloud")
    wait_until(lambda: not live_instances(ec2, hub_id, slurm_test_user), timeout=60, what="instance terminated")
