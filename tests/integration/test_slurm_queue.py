"""The shared squeue cache against the real Slurm: one call for all jobs, states and reasons."""

from __future__ import annotations

import subprocess

import pytest

from hybrid_spawner.status import NodeState
from hybrid_spawner.backends.slurm.status import SlurmStatusCache
from simulators.processes import wait_until

pytestmark = pytest.mark.integration


def sbatch(cluster, *args) -> str:
    out = subprocess.run(
        ["sbatch", "--parsable", "--output=/dev/null", *args, "--wrap", "sleep 120"],
        env=cluster.client_env(), capture_output=True, text=True, check=True,
    ).stdout
    return out.strip().split(";")[0]


async def test_one_squeue_reports_running_pending_and_finished_jobs(slurm_cluster, squeue_shim):
    running = sbatch(slurm_cluster, "--partition=debug")
    pending = sbatch(slurm_cluster, "--partition=maint")
    finished = sbatch(slurm_cluster, "--partition=debug")
    subprocess.run(["scancel", finished], env=slurm_cluster.client_env(), check=True)
    wait_until(lambda: f"{finished} CANCELLED" in slurm_cluster.squeue_all("%i %T"), what="job cancelled")
    wait_until(lambda: any(line == f"{running} RUNNING" for line in slurm_cluster.squeue("%i %T")), what="job running")
    cache = SlurmStatusCache(60, [str(squeue_shim.dir / "squeue")], slurm_cluster.client_env())
    try:
        for job in (running, pending, finished, "999999"):
            cache.track(job)
        before = len(squeue_shim.calls("ok"))
        await cache.refresh_if_stale(0)
        assert len(squeue_shim.calls("ok")) == before + 1
        seen = {job: cache.observe(job) for job in (running, pending, finished, "999999")}
        assert seen[running].state is NodeState.RUNNING and seen[running].address == "localhost"
        assert seen[pending].state is NodeState.PENDING and "PartitionDown" in seen[pending].detail
        assert seen[finished].state is NodeState.GONE and "CANCELLED" in seen[finished].detail
        assert seen["999999"].state is NodeState.GONE
        # A failing squeue turns everything UNKNOWN, never GONE.
        squeue_shim.set_failing(True)
        await cache.refresh_if_stale(0)
        assert {cache.observe(job).state for job in (running, pending)} == {NodeState.UNKNOWN}
    finally:
        squeue_shim.set_failing(False)
        await cache.close()
        subprocess.run(["scancel", running, pending], env=slurm_cluster.client_env())
