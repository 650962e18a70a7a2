"""Quarantine on OpenStack (the fake, which enforces locks and security groups as Nova and Neutron
document them) and on Slurm (real daemons): the node is isolated and kept, the hub records the
server stopped, the user is held, and a release with termination ends the node."""

from __future__ import annotations

import pytest

from hybrid_spawner.incidents.openstack import META_INCIDENT, quarantine_group_name
from simulators.processes import wait_until
from tests.fixtures.slurm import user_jobs

pytestmark = pytest.mark.integration


def quarantine(hub, user: str, reason: str) -> dict:
    status, incident = hub.api("POST", f"/hybrid/quarantine/{user}", {"reason": reason})
    assert status == 201, incident
    hub.wait_stopped(user)
    return incident


def refused_spawn(hub, user: str, incident: dict) -> None:
    hub.spawn(user)
    wait_until(lambda: (hub.server_model(user) or {}).get("pending") is None, 30, "the refused spawn to end")
    assert not (hub.server_model(user) or {}).get("ready")
    assert f"incident {incident['id']}" in hub.log_text()


def test_openstack_quarantine_locks_and_isolates_the_server(openstack_hub):
    import openstack
    from openstack.config import loader

    hub, fake, user = openstack_hub.hub, openstack_hub.fake, "eve"
    hub.ensure_user(user)
    hub.spawn(user)
    hub.wait_ready(user, timeout=120)
    (server,) = [s for s in fake.servers() if s["metadata"].get("hybrid-owner") == user and not s["deleting"]]

    incident = quarantine(hub, user, "crypto-mining reported by the tenant's monitoring")
    (kept,) = [s for s in fake.servers() if s["id"] == server["id"]]
    assert kept["status"] == "ACTIVE" and not kept["deleting"] and kept["locked"]
    assert kept["security_groups"] == [quarantine_group_name("test-hub")]
    assert kept["metadata"][META_INCIDENT] == incident["id"]

    config = loader.OpenStackConfig(config_files=[str(openstack_hub.clouds_yaml)], load_envvars=False)
    conn = openstack.connection.Connection(config=config.get_one(cloud="fake"))
    group = conn.network.find_security_group(quarantine_group_name("test-hub"))
    assert list(conn.network.security_group_rules(security_group_id=group.id)) == []
    with pytest.raises(openstack.exceptions.ConflictException, match="locked"):
        conn.compute.delete_server(server["id"])  # the project's own member cannot destroy the evidence

    refused_spawn(hub, user, incident)
    hub.api("POST", f"/hybrid/incidents/{incident['id']}/release", {"terminate": True}, expect=200)
    wait_until(lambda: not [s for s in fake.servers() if s["id"] == server["id"] and not s["deleting"]], 30,
               "the quarantined server to be deleted")


@pytest.fixture(scope="module")
def slurm_hub(make_slurm_hub):
    return make_slurm_hub('c.JupyterHub.spawner_class = "hybrid-slurm"\nc.IncidentStore.path = "incidents.json"\n',
                          name="incident-slurm-hub")


def test_slurm_quarantine_suspends_the_job_and_keeps_it(slurm_hub, slurm_cluster, slurm_test_user):
    hub, user = slurm_hub, slurm_test_user
    hub.ensure_user(user)
    hub.spawn(user)
    hub.wait_ready(user, timeout=120)
    (job,) = user_jobs(slurm_cluster, user, ("RUNNING",))

    incident = quarantine(hub, user, "suspicious outbound traffic from the compute node")
    assert [j["id"] for j in user_jobs(slurm_cluster, user, ("SUSPENDED",))] == [job["id"]]
    comments = slurm_cluster.squeue("%i|%k")
    assert f"{job['id']}|hybrid incident {incident['id']}" in comments

    refused_spawn(hub, user, incident)
    assert [j["id"] for j in user_jobs(slurm_cluster, user, ("SUSPENDED", "RUNNING", "PENDING"))] == [job["id"]]
    hub.api("POST", f"/hybrid/incidents/{incident['id']}/release", {"terminate": True}, expect=200)
    wait_until(lambda: not user_jobs(slurm_cluster, user, ("SUSPENDED", "RUNNING", "PENDING")), 30, "the job to end")
