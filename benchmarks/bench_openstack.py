"""Benchmark of the OpenStack backend on the local fake (runnable: python benchmarks/bench_openstack.py).

1. Status refresh for N servers: the shared cache's one tagged Nova listing against the
   reference of one GET per server (what a per-spawner poll() would cost).
2. Spawn to ready through a real hub: OpenStackSpawner (fake Nova + local node runner) against
   the reference of JupyterHub's own SimpleLocalProcessSpawner, measured in the same run on the
   same machine; with the time to each progress step.

Prints medians and ratios. ``--quick`` uses fewer servers and repetitions.
"""

from __future__ import annotations

import argparse
import base64
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hybrid_spawner.backends.openstack.connection import ConnectionSettings, connect  # noqa: E402
from hybrid_spawner.backends.openstack.status import OpenStackStatusCache  # noqa: E402
from hybrid_spawner.backends.openstack.plan import hub_tag  # noqa: E402
from simulators.hub import LocalHub  # noqa: E402
from simulators.openstack import FakeOpenStack  # noqa: E402
from simulators.openstack.stack import openstack_stack, spawn_and_follow  # noqa: E402

REFERENCE_HUB = """
c.JupyterHub.spawner_class = "simple"
c.JupyterHub.tornado_settings = {"slow_spawn_timeout": 0}
c.Spawner.args = ["--allow-root"]
c.Spawner.http_timeout = 60
"""


def median_time(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def bench_refresh(fake: FakeOpenStack, base: Path, servers: int, repeats: int) -> list[tuple]:
    fake.reset()
    fake.control("PUT", "/timing", {"build_seconds": 0, "delete_seconds": 0})
    fake.set_quotas(instances=-1, cores=-1, ram=-1)
    clouds = fake.write_clouds_yaml(base / "clouds.yaml")
    settings = ConnectionSettings.build(cloud="fake", clouds_yaml=str(clouds))
    conn = connect(settings)
    ids = fake.config
    for i in range(servers):
        conn.compute.create_server(
            name=f"bench-{i}", image_id=ids["images"]["debian-12"], flavor_id=ids["flavors"]["m1.tiny"],
            networks=[{"uuid": ids["networks"]["research-private"]}], tags=[hub_tag("bench")],
            metadata={"hybrid-hub": "bench"}, user_data=base64.b64encode(b"#!/bin/sh\n").decode())
    cache = OpenStackStatusCache(1.0, lambda: connect(settings), "bench")
    server_ids = list(cache.fetch_all(frozenset()))
    assert len(server_ids) == servers
    batched = median_time(lambda: cache.fetch_all(frozenset()), repeats)
    per_server = median_time(lambda: [conn.compute.get_server(s) for s in server_ids], repeats)
    fake.reset()
    return [(f"status refresh, {servers} servers: one tagged listing", batched, batched / per_server),
            (f"status refresh, {servers} servers: one GET per server (reference)", per_server, 1.0)]


def bench_spawn(fake: FakeOpenStack, base: Path, spawns: int) -> list[tuple]:
    fake.reset()
    steps = {"ACTIVE + private IP": "is ACTIVE", "node booted, server starting": "notebook server is starting"}
    timings: dict[str, list[float]] = {name: [] for name in steps}
    timings["ready (OpenStackSpawner)"] = []
    with openstack_stack(fake, base / "openstack") as stack:
        for i in range(spawns):
            events = spawn_and_follow(stack.hub, f"bench{i}")
            if not events[-1].get("ready"):
                raise RuntimeError(f"spawn failed: {events[-1]}")
            for name, words in steps.items():
                timings[name].append(next(e["elapsed"] for e in events if words in e.get("message", "")))
            timings["ready (OpenStackSpawner)"].append(events[-1]["elapsed"])
            stack.hub.stop_server(f"bench{i}")
    reference = []
    with LocalHub(base / "reference", REFERENCE_HUB) as hub:
        for i in range(spawns):
            events = spawn_and_follow(hub, f"ref{i}")
            if not events[-1].get("ready"):
                raise RuntimeError(f"reference spawn failed: {events[-1]}")
            reference.append(events[-1]["elapsed"])
            hub.stop_server(f"ref{i}")
    ref = statistics.median(reference)
    rows = [(f"spawn -> {name}", statistics.median(v), statistics.median(v) / ref) for name, v in timings.items()]
    rows.append(("spawn -> ready (SimpleLocalProcessSpawner, reference)", ref, 1.0))
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer servers and repetitions")
    args = parser.parse_args()
    servers, repeats, spawns = (10, 3, 1) if args.quick else (50, 10, 3)
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        with FakeOpenStack(base / "fake") as fake:
            rows = bench_refresh(fake, base, servers, repeats) + bench_spawn(fake, base, spawns)
    print(f"\n{'measurement':<70} {'median s':>9} {'ratio':>7}")
    for name, seconds, ratio in rows:
        print(f"{name:<70} {seconds:>9.3f} {ratio:>7.2f}")
    print(f"(refresh: median of {repeats}; spawn: median of {spawns}; ratio: time / its group's reference row)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
