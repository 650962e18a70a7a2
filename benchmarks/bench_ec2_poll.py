"""Status polling cost with many running EC2 servers: API calls per refresh, hub API latency.

N servers (default 200) are spawned through the hub with EC2Spawner on moto server and the
real node bootstrap; each node's single-user server is a light stand-in (standin_server.py),
since 200 notebook servers do not fit in memory — what is measured is the hub's polling cost.

Phase "polling": the shared status cache refreshes every 2 s and the hub polls every spawner
every 5 s. Phase "no polling": the same hub restarted with polling off (the servers survive the
restart). In each phase the hub API (GET /hub/api/users/NAME, sequential) is timed.

    .venv/bin/python benchmarks/bench_ec2_poll.py [--servers N] [--quick]
"""

from __future__ import annotations

import argparse
import os
import random
import re
import secrets
import statistics
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from simulators.ec2sim import REGION, hub_config, make_network  # noqa: E402
from simulators.hub import LocalHub  # noqa: E402
from simulators.moto import MOTO_CREDENTIALS, MotoServer  # noqa: E402
from simulators.noderunner import NodeRunnerProcess  # noqa: E402
from simulators.processes import venv_bin_dir  # noqa: E402

STANDIN = Path(__file__).with_name("standin_server.py")
POLLING_SWITCH = """
import os
if os.environ.get("BENCH_POLLING") == "off":
    c.EC2Spawner.status_refresh_interval = 1e9
    c.EC2Spawner.poll_interval = 0
else:
    c.EC2Spawner.status_refresh_interval = 2
    c.EC2Spawner.poll_interval = 5
c.EC2Spawner.cmd = [{python!r}, {standin!r}]
c.JupyterHub.concurrent_spawn_limit = 0
c.JupyterHub.log_level = "DEBUG"
"""
REFRESH = re.compile(r"EC2StatusCache: refreshed (\d+) nodes in ([\d.]+)s with (\d+) API call")


def spawn_all(hub: LocalHub, users: list[str]) -> list[str]:
    """Spawn one after the other (moto server is not safe under concurrent RunInstances; AWS
    is). Returns the users whose server is ready; a failed spawn is reported, not fatal."""
    ready = []
    for n, user in enumerate(users, 1):
        try:
            hub.spawn(user)
            hub.wait_ready(user, timeout=300)
            ready.append(user)
        except Exception as e:  # keep measuring with the servers that did start
            print(f"  {user}: spawn failed: {e}", flush=True)
        if n % 20 == 0:
            print(f"  {n}/{len(users)} spawned, {len(ready)} ready", flush=True)
    return ready


def api_latencies(hub: LocalHub, users: list[str], seconds: float) -> list[float]:
    """Sequential GET /hub/api/users/NAME for ``seconds``; returns each latency in ms."""
    samples = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        req = urllib.request.Request(f"{hub.url}/hub/api/users/{random.choice(users)}")
        req.add_header("Authorization", f"token {hub.admin_token}")
        t0 = time.perf_counter()
        with urllib.request.urlopen(req, timeout=30) as r:
            r.read()
        samples.append((time.perf_counter() - t0) * 1000)
    return samples


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--servers", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=30, help="measuring time per phase")
    parser.add_argument("--quick", action="store_true", help="20 servers, 10 s per phase")
    args = parser.parse_args()
    servers, seconds = (20, 10.0) if args.quick else (args.servers, args.seconds)

    work = Path(tempfile.mkdtemp(prefix="bench-ec2-poll-"))
    os.environ.update(MOTO_CREDENTIALS)
    moto = MotoServer(work).start()
    hub_id = f"bench-{secrets.token_hex(3)}"
    runner = hub = None
    users = [f"u{i:03d}" for i in range(servers)]
    try:
        network = make_network(moto.url)
        runner = NodeRunnerProcess(work / "nodes", hub_id=hub_id, endpoint_url=moto.url, region=REGION, interval=0.5)
        runner.start()
        config = hub_config(moto.url, network, hub_id, start_timeout=300) + POLLING_SWITCH.format(
            python=str(venv_bin_dir() / "python"), standin=str(STANDIN)
        )
        hub = LocalHub(work / "hub", config, env={**MOTO_CREDENTIALS, "BENCH_POLLING": "on"}).start()
        print(f"spawning {servers} servers ...", flush=True)
        t0 = time.monotonic()
        users = spawn_all(hub, users)
        print(f"  {len(users)} ready after {time.monotonic() - t0:.0f}s", flush=True)

        mark = len(hub.log_text())
        with_polling = api_latencies(hub, users, seconds)
        refreshes = [tuple(map(float, m)) for m in REFRESH.findall(hub.log_text()[mark:])]

        hub.extra_env["BENCH_POLLING"] = "off"
        hub.restart()
        running = sum(1 for u in users if (hub.server_model(u) or {}).get("ready"))
        without_polling = api_latencies(hub, users, seconds)
    finally:
        for part in (hub, runner, moto):
            if part is not None:
                part.stop()

    nodes_seen = max((int(r[0]) for r in refreshes), default=0)
    calls = [int(r[2]) for r in refreshes]
    durations = [r[1] for r in refreshes]
    print()
    print(f"servers running: {len(users)} of {servers} requested (after the restart: {running})")
    print(f"status refreshes in {seconds:.0f}s: {len(refreshes)}, instances listed per refresh: {nodes_seen}")
    if calls:
        target = -(-servers // 1000)
        print(f"EC2 API calls per refresh: median {statistics.median(calls):.0f} (max {max(calls)}) for {servers} servers"
              f" (target: one per 1000 servers = {target}); per-server polling would make {servers}")
        print(f"refresh duration: median {statistics.median(durations) * 1000:.0f} ms")
    print()
    print(f"{'hub API GET /users/NAME':<28} {'n':>6} {'p50 ms':>8} {'p99 ms':>8}")
    for name, samples in (("without polling (reference)", without_polling), ("with polling", with_polling)):
        print(f"{name:<28} {len(samples):>6} {pct(samples, 0.5):>8.1f} {pct(samples, 0.99):>8.1f}")
    print(f"ratio p50 with/without: {pct(with_polling, 0.5) / pct(without_polling, 0.5):.2f}x, "
          f"p99: {pct(with_polling, 0.99) / pct(without_polling, 0.99):.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
