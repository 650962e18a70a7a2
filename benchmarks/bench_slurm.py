"""Slurm spawner benchmark on a real Slurm (munged, slurmctld, slurmd started here) and real hubs.

1. Spawn latency: POST -> server ready, as the hub measures it ("took X seconds to start"),
   for our SlurmSpawner against plain batchspawner.SlurmSpawner, alternating runs in the same
   session on the same cluster. Target: ratio <= 1.0.
2. Status cost: squeue calls per status refresh with 50 running jobs, counted by an squeue
   shim, for our shared cache (all 50 servers polled) against batchspawner's per-server poll.
   Target: 1.

Run as root (jobs run as the Unix test user through sudo):
    .venv/bin/python benchmarks/bench_slurm.py [--quick] [--runs N]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from types import SimpleNamespace

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from simulators.hub import LocalHub  # noqa: E402
from simulators.processes import venv_bin_dir, wait_until  # noqa: E402
from simulators.slurm import LocalSlurm  # noqa: E402
from simulators.slurm_users import SLURM_TEST_USER, SqueueShim, assert_venv_usable_by, ensure_unix_user  # noqa: E402

BIN = venv_bin_dir()
COMMON = f"""
c.Spawner.cmd = [{str(BIN / "jupyterhub-singleuser")!r}]
c.SlurmSpawner.req_partition = "debug"
c.SlurmSpawner.start_timeout = 180
"""
OURS = COMMON + f"""
c.JupyterHub.spawner_class = "hybrid-slurm"
c.SlurmSpawner.node_python = {sys.executable!r}
"""
REFERENCE = COMMON + f"""
c.JupyterHub.spawner_class = "batchspawner.SlurmSpawner"
c.SlurmSpawner.batchspawner_singleuser_cmd = {str(BIN / "batchspawner-singleuser")!r}
"""
TOOK = re.compile(r"User \S+ took ([0-9.]+) seconds to start")


def spawn_once(hub: LocalHub, cluster: LocalSlurm, user: str) -> float:
    seen = len(TOOK.findall(hub.log_text()))
    status, body = hub.spawn(user)
    if status not in (201, 202):
        raise RuntimeError(f"spawn failed: {status} {body}")
    hub.wait_ready(user, timeout=180)
    took = TOOK.findall(hub.log_text())[seen:]
    hub.stop_server(user)
    wait_until(lambda: not any(line.split()[1] == user for line in cluster.squeue("%i %u")), 60, "job gone")
    return float(took[0])


def bench_latency(cluster: LocalSlurm, user: str, runs: int, workdir: Path) -> dict[str, list[float]]:
    env = {"SLURM_CONF": str(cluster.conf_path)}
    # batchspawner runs sbatch with the server's environment only: hand it SLURM_CONF that way.
    reference = REFERENCE + f"c.SlurmSpawner.environment = {{'SLURM_CONF': {str(cluster.conf_path)!r}}}\n"
    hubs = {
        "ours (hybrid-slurm)": LocalHub(workdir / "ours", OURS, env=env),
        "batchspawner.SlurmSpawner": LocalHub(workdir / "reference", reference, env=env),
    }
    results: dict[str, list[float]] = {name: [] for name in hubs}
    try:
        for hub in hubs.values():
            hub.start()
        for name, hub in hubs.items():  # warm-up: first job after start, first singleuser import
            spawn_once(hub, cluster, user)
        for _ in range(runs):
            for name, hub in hubs.items():
                results[name].append(spawn_once(hub, cluster, user))
    finally:
        for hub in hubs.values():
            hub.stop()
    return results


def submit_sleepers(cluster: LocalSlurm, user: str, count: int) -> list[str]:
    env = cluster.client_env()
    ids = []
    for _ in range(count):
        out = subprocess.run(
            ["sudo", "-E", "-u", user, "sbatch", "--parsable", "--partition=debug", "--output=/dev/null", "--wrap", "sleep 600"],
            env=env, capture_output=True, text=True, check=True,
        ).stdout
        ids.append(out.strip().split(";")[0])
    wait_until(lambda: len([l for l in cluster.squeue("%i %T") if l.endswith("RUNNING")]) >= count, 120, f"{count} jobs running")
    return ids


async def poll_ours(job_ids, user, shim, env, refreshes: int) -> float:
    from hybrid_spawner.backends.slurm.spawner import SlurmSpawner

    spawners = []
    for job in job_ids:
        s = SlurmSpawner(user=SimpleNamespace(name=user, url="/"), squeue_command=[str(shim.dir / "squeue")],
                         status_refresh_interval=0.5, submit_environment=env)
        s.load_state({"backend": "slurm", "node_id": job, "job_id": job})
        spawners.append(s)
    cache = spawners[0].status_cache()
    start_calls = len(shim.calls())
    start_refreshes = cache.refreshes
    while cache.refreshes - start_refreshes < refreshes:
        await asyncio.gather(*(s.poll() for s in spawners))  # every server polled each round
        await asyncio.sleep(0.25)
    assert all(r is None for r in await asyncio.gather(*(s.poll() for s in spawners))), "a running job looked gone"
    await cache.close()
    return (len(shim.calls()) - start_calls) / (cache.refreshes - start_refreshes)


async def poll_reference(job_ids, user, shim, env, refreshes: int) -> float:
    from batchspawner import SlurmSpawner as BatchSlurmSpawner

    spawners = []
    for job in job_ids:
        s = BatchSlurmSpawner(user=SimpleNamespace(name=user, url="/"), req_keepvars="",
                              batch_query_cmd=f"{shim.dir / 'squeue'} -h -j {{job_id}} -o '%T %B'")
        s.job_id = job
        spawners.append(s)
    start_calls = len(shim.calls())
    for _ in range(refreshes):  # one hub poll round = every server's poll()
        results = await asyncio.gather(*(s.poll() for s in spawners))
        assert all(r is None for r in results)
    return (len(shim.calls()) - start_calls) / refreshes


def table(title, header, rows):
    print(f"\n{title}")
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows)]
    for row in (header, ["-" * w for w in widths], *rows):
        print("  ".join(str(x).ljust(w) for x, w in zip(row, widths)))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="2 spawn runs per spawner, 10 jobs, 3 refreshes")
    parser.add_argument("--runs", type=int, default=5, help="spawn runs per spawner (default 5)")
    args = parser.parse_args()
    runs = 2 if args.quick else args.runs
    jobs = 10 if args.quick else 50
    refreshes = 3 if args.quick else 5

    user = ensure_unix_user(SLURM_TEST_USER)
    assert_venv_usable_by(user)
    workdir = Path(tempfile.mkdtemp(prefix="bench-slurm-"))
    os.chmod(workdir, 0o755)  # batchspawner runs the squeue shim as the test user
    shim = SqueueShim(workdir / "shim")
    try:
        with LocalSlurm(cpus=max(64, jobs + 8), memory_mb=max(65536, (jobs + 8) * 1024)) as cluster:
            os.environ["SLURM_CONF"] = str(cluster.conf_path)
            latency = bench_latency(cluster, user, runs, workdir)
            ids = submit_sleepers(cluster, user, jobs)
            env = {"SLURM_CONF": str(cluster.conf_path)}
            ours = asyncio.run(poll_ours(ids, user, shim, env, refreshes))
            reference = asyncio.run(poll_reference(ids, user, shim, env, refreshes))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

    names = list(latency)
    ref_median = statistics.median(latency[names[1]])
    table(
        f"Spawn latency, POST -> ready as the hub logs it ({runs} runs each, alternating, after one warm-up)",
        ["spawner", "median s", "min s", "max s", "ratio vs batchspawner"],
        [
            [n, f"{statistics.median(v):.2f}", f"{min(v):.2f}", f"{max(v):.2f}", f"{statistics.median(v) / ref_median:.2f}x"]
            for n, v in latency.items()
        ],
    )
    table(
        f"squeue calls per status refresh, {jobs} running jobs, every server polled",
        ["spawner", "squeue calls / refresh", "target"],
        [["ours (shared cache)", f"{ours:.1f}", "1"], ["batchspawner.SlurmSpawner", f"{reference:.1f}", "-"]],
    )


if __name__ == "__main__":
    main()
