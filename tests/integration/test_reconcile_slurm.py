"""Reconciliation on a real Slurm cluster (munged, slurmctld, slurmd) and a real hub.

The hub marks each job with its comment (``jupyterhub-hybrid:<hub_id>``); the reconciler lists
the queue by that marker. Tested: a marked job no record claims is cancelled after the grace
period while a job of another hub and an unmarked job are never touched; a record whose job was
cancelled outside the hub is marked stopped with the reason; and the hub is SIGKILLed at each
phase of a spawn (job queued, job running but the server not up yet, server ready) and
restarted on the same database: no orphan job survives, no ready server is lost, the user can
start again.
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import threading

import pytest

from simulators.processes import wait_until
from tests.fixtures.slurm import user_jobs

pytestmark = pytest.mark.integration

GRACE = 4


def reconcile_config(hub_id: str) -> str:
    return f"""
c.JupyterHub.spawner_class = "hybrid"
c.HybridSpawner.profiles = [
    {{"slug": "slurm-debug", "display_name": "Slurm", "backend": "slurm", "default": True,
      "overrides": {{"req_partition": "debug", "req_runtime": "00:30:00"}}}},
    {{"slug": "slurm-maint", "display_name": "Always queued", "backend": "slurm",
      "overrides": {{"req_partition": "maint"}}}},
    {{"slug": "slurm-slow", "display_name": "Slow to start", "backend": "slurm",
      "overrides": {{"req_partition": "debug", "req_prologue": "sleep 20"}}}},
]
c.SlurmSpawner.hub_id = "{hub_id}"
from hybrid_spawner.reconcile import runner as _reconcile
c.Reconciler.mode = "terminate"
c.Reconciler.grace_period = {GRACE}
c.Reconciler.interval = 1
c.Reconciler.backends = ["slurm"]
_reconcile.enable(c)
# The hub's own poll would also notice a cancelled job; keep it out of the way so that the
# reconciler's path is the one tested.
c.Spawner.poll_interval = 3600
"""


@pytest.fixture(scope="module")
def rhub(make_slurm_hub, slurm_cluster, slurm_test_user):
    hub_id = f"slurm-hub-{secrets.token_hex(3)}"
    hub = make_slurm_hub(reconcile_config(hub_id), name="reconcile-slurm")
    hub.ensure_user(slurm_test_user)
    hub.hub_id = hub_id
    return hub


def submit_behind_the_hubs_back(cluster, user: str, comment: str | None) -> str:
    """A job the hub never submitted (queued on the DOWN partition, so it holds no CPU)."""
    argv = ["sudo", "-E", "-u", user, "sbatch", "--parsable", "--partition=maint", "--job-name=not-the-hubs"]
    if comment is not None:
        argv.append(f"--comment={comment}")
    result = subprocess.run([*argv, "--wrap", "sleep 600"], env=cluster.client_env(), capture_output=True,
                            text=True, timeout=30, cwd="/tmp")
    assert result.returncode == 0, result.stderr
    return result.stdout.strip().split(";")[0]


def passes(hub) -> list[dict]:
    return hub.api("GET", "/hybrid/reconcile", expect=200)[1]["passes"]


def findings_for(hub, job_id: str) -> list[dict]:
    return [f for p in passes(hub) for f in p["findings"] if f["node_id"] == job_id]


def test_a_marked_orphan_job_is_cancelled_and_other_jobs_are_never_touched(rhub, slurm_cluster, slurm_test_user):
    hub = rhub
    mine = submit_behind_the_hubs_back(slurm_cluster, slurm_test_user, f"jupyterhub-hybrid:{hub.hub_id}")
    foreign = submit_behind_the_hubs_back(slurm_cluster, slurm_test_user, "jupyterhub-hybrid:another-hub")
    unmarked = submit_behind_the_hubs_back(slurm_cluster, slurm_test_user, None)
    try:
        wait_until(lambda: findings_for(hub, mine), 30, "the orphan job reported")
        assert mine in slurm_cluster.job_ids()  # first seen: within the grace period
        wait_until(lambda: mine not in slurm_cluster.job_ids(), 30, "the orphan job cancelled")
        found = findings_for(hub, mine)
        assert found[0]["action"] == "wait-grace" and found[-1]["result"] == "terminated", found
        assert found[-1]["unclaimed_for"] >= GRACE
        assert f"reconcile: terminated orphan slurm node {mine}" in hub.log_text()
        # Not listed at all, still queued several passes later.
        marks = len(passes(hub))
        wait_until(lambda: len(passes(hub)) >= marks + 3, 30, "three more passes")
        assert not findings_for(hub, foreign) and not findings_for(hub, unmarked)
        assert {foreign, unmarked} <= set(slurm_cluster.job_ids())
        report = passes(hub)[-1]["backends"]["slurm"]
        assert report["error"] == "" and report["listed"] >= 0
    finally:
        subprocess.run(["scancel", mine, foreign, unmarked], env=slurm_cluster.client_env(), capture_output=True)


def test_a_record_whose_job_was_cancelled_outside_is_marked_stopped(rhub, slurm_cluster, slurm_test_user):
    hub = rhub
    hub.spawn(slurm_test_user, "", {"profile": "slurm-debug"})
    hub.wait_ready(slurm_test_user, timeout=120)
    (job,) = user_jobs(slurm_cluster, slurm_test_user)
    # The job's comment carries the hub's marker (what the listing finds it by).
    assert f"{job['id']}|jupyterhub-hybrid:{hub.hub_id}" in slurm_cluster.squeue("%i|%k")
    subprocess.run(["scancel", job["id"]], env=slurm_cluster.client_env(), check=True, capture_output=True)

    hub.wait_stopped(slurm_test_user, timeout=60)
    log = hub.log_text()
    assert f"reconcile: {slurm_test_user}/(default): marking stopped" in log
    gone = [f for p in passes(hub) for f in p["findings"] if f["kind"] == "gone" and f["user"] == slurm_test_user]
    assert gone and gone[-1]["result"] == "marked stopped" and gone[-1]["node_id"] == job["id"]


def kill_hub(hub) -> None:
    proc = hub.process.proc
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(10)


@pytest.mark.parametrize("phase", ["queued", "booting", "ready"])
def test_a_hub_killed_during_a_slurm_spawn_leaves_no_orphan_job_and_loses_no_server(rhub, slurm_cluster, slurm_test_user, phase):
    hub, user = rhub, slurm_test_user
    server = f"crash-{phase}"
    profile = {"queued": "slurm-maint", "booting": "slurm-slow", "ready": "slurm-debug"}[phase]
    poster = threading.Thread(target=hub.spawn, args=(user, server, {"profile": profile}), daemon=True)
    poster.start()
    if phase == "ready":
        hub.wait_ready(user, server, timeout=120)
    else:
        state = "PENDING" if phase == "queued" else "RUNNING"
        wait_until(lambda: user_jobs(slurm_cluster, user, states=(state,)), 60, f"the job {state}")
        assert (hub.server_model(user, server) or {}).get("pending") == "spawn"
    (job,) = user_jobs(slurm_cluster, user)
    kill_hub(hub)
    poster.join(30)

    hub.start()
    if phase == "ready":
        assert hub.server_model(user, server)["ready"]
        assert hub.get_via_proxy(f"/user/{user}/{server}/api/status")[0] == 200
        marks = len(passes(hub))
        wait_until(lambda: len(passes(hub)) >= marks + GRACE + 2, 60, "reconcile passes beyond the grace period")
        assert job["id"] in slurm_cluster.job_ids()
        assert hub.get_via_proxy(f"/user/{user}/{server}/api/status")[0] == 200
        assert not findings_for(hub, job["id"])
        hub.stop_server(user, server)
    else:
        # No record claims the job: the reconciler cancels it after the grace period (a job
        # whose agent got up first finds its credential refused by the new hub and ends itself).
        wait_until(lambda: job["id"] not in slurm_cluster.job_ids(), GRACE + 60, "the orphan job gone")
        if phase == "queued":  # it never ran: nothing but the reconciler ends it
            assert f"reconcile: terminated orphan slurm node {job['id']}" in hub.log_text()
        model = hub.server_model(user, server)
        assert model is None or not (model.get("ready") or model.get("pending")), model

    # The user starts again.
    hub.spawn(user, server, {"profile": "slurm-debug"})
    hub.wait_ready(user, server, timeout=120)
    hub.stop_server(user, server)
    wait_until(lambda: not user_jobs(slurm_cluster, user), 60, "no job left")
