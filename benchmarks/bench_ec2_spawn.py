"""Spawn latency: hub POST to "ready through the proxy", EC2Spawner vs LocalProcessSpawner.

EC2Spawner runs on moto server with the node runner, so its number includes the real node
bootstrap (user-data -> credential redemption -> single-user start -> port report) and the
EC2 API calls (SSM, DescribeSecurityGroups, DescribeImages, RunInstances, DescribeInstances).
Both hubs run in the same process tree on the same machine; spawns alternate between them so
that machine load affects both alike. Prints medians and the ratio (target: <= 1.3x).

    .venv/bin/python benchmarks/bench_ec2_spawn.py [--rounds N] [--quick]
"""

from __future__ import annotations

import argparse
import os
import secrets
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from simulators.ec2sim import REGION, hub_config, make_network  # noqa: E402
from simulators.hub import LocalHub  # noqa: E402
from simulators.moto import MOTO_CREDENTIALS, MotoServer  # noqa: E402
from simulators.noderunner import NodeRunnerProcess  # noqa: E402
from simulators.processes import venv_bin_dir  # noqa: E402

ROOT_ARGS = '["--allow-root"]' if os.geteuid() == 0 else "[]"
# SimpleLocalProcessSpawner is LocalProcessSpawner without a Unix account per hub user.
LOCAL_CONFIG = """
c.JupyterHub.spawner_class = "jupyterhub.spawner.SimpleLocalProcessSpawner"
c.SimpleLocalProcessSpawner.home_dir_template = "{homes}/{{username}}"
c.Spawner.cmd = [{singleuser!r}]
c.Spawner.args = {args}
"""


def time_spawn(hub: LocalHub, user: str, timeout: float = 120) -> float:
    """Seconds from the spawn POST until /user/NAME/api/status answers 200 through the proxy."""
    hub.ensure_user(user)
    start = time.perf_counter()
    status, body = hub.spawn(user)
    if status not in (201, 202):
        raise RuntimeError(f"spawn of {user} answered {status}: {body}")
    deadline = start + timeout
    while time.perf_counter() < deadline:
        if hub.get_via_proxy(f"/user/{user}/api/status")[0] == 200:
            elapsed = time.perf_counter() - start
            hub.stop_server(user)
            return elapsed
        time.sleep(0.05)
    raise TimeoutError(f"{user} not ready through the proxy after {timeout}s")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=7, help="spawns per spawner (default 7)")
    parser.add_argument("--quick", action="store_true", help="2 rounds, for a smoke run")
    args = parser.parse_args()
    rounds = 2 if args.quick else max(5, args.rounds)

    work = Path(tempfile.mkdtemp(prefix="bench-ec2-spawn-"))
    os.environ.update(MOTO_CREDENTIALS)
    moto = MotoServer(work).start()
    hub_id = f"bench-{secrets.token_hex(3)}"
    runner = ec2_hub = local_hub = None
    try:
        network = make_network(moto.url)
        runner = NodeRunnerProcess(work / "nodes", hub_id=hub_id, endpoint_url=moto.url, region=REGION, interval=0.1)
        runner.start()
        ec2_hub = LocalHub(work / "ec2-hub", hub_config(moto.url, network, hub_id), env=MOTO_CREDENTIALS).start()
        local_config = LOCAL_CONFIG.format(
            homes=work / "homes", singleuser=str(venv_bin_dir() / "jupyterhub-singleuser"), args=ROOT_ARGS
        )
        local_hub = LocalHub(work / "local-hub", local_config).start()
        # One warm-up spawn each (first imports, proxy and database warm-up), not counted.
        time_spawn(ec2_hub, "warmup")
        time_spawn(local_hub, "warmup")
        ec2_times, local_times = [], []
        for i in range(rounds):
            ec2_times.append(time_spawn(ec2_hub, f"u{i}"))
            local_times.append(time_spawn(local_hub, f"u{i}"))
            print(f"round {i + 1}/{rounds}: EC2Spawner {ec2_times[-1]:.2f}s  LocalProcessSpawner {local_times[-1]:.2f}s",
                  flush=True)
    finally:
        for part in (ec2_hub, local_hub, runner, moto):
            if part is not None:
                part.stop()

    ec2_median, local_median = statistics.median(ec2_times), statistics.median(local_times)
    print()
    print(f"{'spawner':<38} {'n':>3} {'median s':>9} {'min s':>7} {'max s':>7}")
    print(f"{'LocalProcessSpawner (reference)':<38} {rounds:>3} {local_median:>9.2f} {min(local_times):>7.2f} {max(local_times):>7.2f}")
    print(f"{'EC2Spawner (moto + node runner)':<38} {rounds:>3} {ec2_median:>9.2f} {min(ec2_times):>7.2f} {max(ec2_times):>7.2f}")
    print(f"ratio EC2 / local: {ec2_median / local_median:.2f}x (target <= 1.30x)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
