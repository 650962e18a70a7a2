"""N simultaneous spawn requests (default 50): time to ready with EC2Spawner against the same
count of LocalProcessSpawner spawns, same run, same machine, same light single-user stand-in.

EC2Spawner runs on the moto server with the node runner booting every instance's real user-data
(the real node agent, the real bootstrap redemption); LocalProcessSpawner starts the stand-in
directly on the hub machine. Both hubs get all N POSTs at once (concurrent_spawn_limit off) and
each user's time is from its POST to the hub reporting the server ready. The ratio says what the
remote path (a cloud call, a boot, a credential redemption, a port report) costs over a local
process; on AWS the boot itself adds the instance's real start time, which no simulator shows.

    .venv/bin/python benchmarks/bench_concurrent_spawns.py [--spawns 50]
"""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from simulators.ec2sim import REGION, hub_config, make_network  # noqa: E402
from simulators.hub import LocalHub  # noqa: E402
from simulators.moto import MOTO_CREDENTIALS, MotoServer  # noqa: E402
from simulators.noderunner import NodeRunnerProcess  # noqa: E402
from simulators.processes import venv_bin_dir  # noqa: E402

STANDIN = Path(__file__).with_name("standin_server.py")
COMMON = """
c.JupyterHub.concurrent_spawn_limit = 0
c.JupyterHub.active_server_limit = 0
c.JupyterHub.tornado_settings = {{"slow_spawn_timeout": 0}}
c.Spawner.cmd = [{python!r}, {standin!r}]
c.EC2Spawner.cmd = [{python!r}, {standin!r}]  # the EC2 settings name the real singleuser; the same stand-in for both
c.Spawner.start_timeout = 300
c.Spawner.http_timeout = 300
"""
LOCAL = """
from jupyterhub.spawner import LocalProcessSpawner


class SameAccountLocalProcessSpawner(LocalProcessSpawner):
    # The benchmark's users have no Unix accounts: every stand-in runs as the hub's own account
    # (the same account the simulated EC2 nodes' processes run under).
    def make_preexec_fn(self, name):
        return None

    def user_env(self, env):
        env["USER"] = self.user.name
        return env


c.JupyterHub.spawner_class = SameAccountLocalProcessSpawner
"""


def spawn_all_at_once(hub: LocalHub, users: list[str]) -> tuple[list[float], list[str]]:
    """POST every spawn at the same moment; returns each ready user's seconds to ready and the
    users that did not get there (with the reason)."""
    for user in users:
        hub.ensure_user(user)
    barrier = threading.Barrier(len(users))
    times: dict[str, float] = {}
    failures: list[str] = []

    def one(user: str) -> None:
        barrier.wait()
        started = time.monotonic()
        status, body = hub.spawn(user)
        if status not in (201, 202):
            failures.append(f"{user}: {status} {body}")
            return
        try:
            hub.wait_ready(user, timeout=300)
            times[user] = time.monotonic() - started
        except Exception as error:  # noqa: BLE001 - reported with the figures
            failures.append(f"{user}: {error}")

    threads = [threading.Thread(target=one, args=(u,)) for u in users]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(400)
    return sorted(times.values()), failures


def stop_all(hub: LocalHub, users: list[str]) -> None:
    for user in users:
        hub.stop_server(user, wait=False)
    for user in users:
        hub.wait_stopped(user, timeout=120)


def pct(values: list[float], q: float) -> float:
    return values[min(len(values) - 1, int(q * len(values)))] if values else float("nan")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--spawns", type=int, default=50)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-concurrent-spawns-"))
    os.environ.update(MOTO_CREDENTIALS)
    python, common = str(venv_bin_dir() / "python"), COMMON.format(python=str(venv_bin_dir() / "python"), standin=str(STANDIN))
    users = [f"c{i:03d}" for i in range(args.spawns)]
    results = {}
    moto = MotoServer(work).start()
    runner = hub = local = None
    try:
        network = make_network(moto.url)
        hub_id = f"bench-{secrets.token_hex(3)}"
        runner = NodeRunnerProcess(work / "nodes", hub_id=hub_id, endpoint_url=moto.url, region=REGION, interval=0.5)
        runner.env.update(MOTO_CREDENTIALS)
        runner.start()
        hub = LocalHub(work / "ec2-hub", hub_config(moto.url, network, hub_id, start_timeout=300, refresh=2) + common,
                       env=MOTO_CREDENTIALS).start()
        results["EC2Spawner (moto + node runner)"] = spawn_all_at_once(hub, users)
        stop_all(hub, users)
        hub.stop()
        hub = None
        local = LocalHub(work / "local-hub", LOCAL + common).start()
        results["LocalProcessSpawner (reference)"] = spawn_all_at_once(local, users)
        stop_all(local, users)
    finally:
        for part in (hub, local, runner, moto):
            if part is not None:
                part.stop()
        shutil.rmtree(work, ignore_errors=True)
    print(f"\n{args.spawns} spawn requests at once, seconds from POST to ready  (python {python})")
    print(f"{'spawner':<36} {'ready':>6} {'median':>8} {'p95':>8} {'max':>8}")
    for name, (times, failures) in results.items():
        print(f"{name:<36} {len(times):>6} {statistics.median(times) if times else float('nan'):>8.2f} "
              f"{pct(times, 0.95):>8.2f} {max(times, default=float('nan')):>8.2f}")
        for failure in failures[:5]:
            print(f"   failed: {failure}")
    (ec2, _), (local_times, _) = results.values()
    if ec2 and local_times:
        print(f"ratio EC2/local: median {statistics.median(ec2) / statistics.median(local_times):.2f}x, "
              f"p95 {pct(ec2, 0.95) / pct(local_times, 0.95):.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
