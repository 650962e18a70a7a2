"""Benchmark: resuming a stopped instance (stop_action = "stop") against launching a new one, same run.

One hub (EC2Spawner on moto server, the node runner, SeaweedFS with STS, restore_on_start) and
one researcher's prefix of 1,000 x 10 KB files. Two researchers with the same files: "fresh"
stops with terminate, so each start launches a new instance whose empty disk restores the home
from the bucket; "resumer" stops with stop, so each start resumes the same instance, whose disk
still holds the home (the restore then finds nothing to fetch). Starts alternate so that machine
load hits both alike; each is timed from the spawn POST until the server answers through the
proxy. Prints medians and the ratio resume / launch (goal <= 0.7x).

What the simulation cannot show: on AWS a fresh instance also pays its first boot (cloud-init's
per-instance work, package setup) and a new EBS volume's first reads from its snapshot, which a
resumed instance does not; the simulated boot is the same for both, so this ratio is the one the
kept disk alone earns.

    .venv/bin/python benchmarks/bench_resume.py             # 1,000 x 10 KB, 5 rounds
    .venv/bin/python benchmarks/bench_resume.py --quick     # 200 x 10 KB, 2 rounds
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
from simulators.seaweedfs import SeaweedS3, hub_sts_settings  # noqa: E402

GOAL = 0.7
CONFIG = """
c.EC2Spawner.restore_on_start = True
c.EC2Spawner.restore_timeout = 300
c.EC2Spawner.notebook_dir = ""  # the instance's own disk, as on EC2

def _stop_action(spawner):
    spawner.stop_action = "stop" if spawner.user.name == "resumer" else "terminate"

c.Spawner.pre_spawn_hook = _stop_action
"""


def time_start(hub: LocalHub, user: str, timeout: float = 300) -> tuple[float, list[str]]:
    """Seconds from the spawn POST until /user/NAME/api/status answers 200 through the proxy."""
    began = time.perf_counter()
    status, body = hub.spawn(user)
    if status not in (201, 202):
        raise RuntimeError(f"spawn of {user} answered {status}: {body}")
    while time.perf_counter() < began + timeout:
        if hub.get_via_proxy(f"/user/{user}/api/status")[0] == 200:
            elapsed = time.perf_counter() - began
            _, model = hub.api("GET", f"/users/{user}", expect=200)
            return elapsed, model["servers"][""]["state"].get("node_id", "")
        time.sleep(0.05)
    raise TimeoutError(f"{user} not ready through the proxy after {timeout}s")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="200 files and 2 rounds")
    parser.add_argument("--files", type=int, help="files in the home (default 1,000; 200 with --quick)")
    parser.add_argument("--rounds", type=int, help="starts per researcher (default 5; 2 with --quick)")
    args = parser.parse_args(argv)
    n_files = args.files or (200 if args.quick else 1_000)
    rounds = args.rounds or (2 if args.quick else 5)

    work = Path(tempfile.mkdtemp(prefix="bench-resume-"))
    os.chmod(work, 0o711)
    os.environ.update(MOTO_CREDENTIALS)
    moto = MotoServer(work).start()
    store = SeaweedS3(work / "s3", sts=True).start()
    hub = runner = None
    try:
        bucket = store.create_bucket(f"bench-resume-{secrets.token_hex(4)}")
        admin = store.client()
        body = os.urandom(10_240)
        for user in ("fresh", "resumer"):
            for i in range(n_files):
                admin.put_object(Bucket=bucket, Key=f"users/{user}/data/f{i // 50:02d}/n{i:04d}.ipynb", Body=body)
        sts_config, sts_env = hub_sts_settings(store, bucket, work)
        hub_id = f"bench-{secrets.token_hex(3)}"
        config = hub_config(moto.url, make_network(moto.url), hub_id, start_timeout=300, refresh=1) + CONFIG + sts_config
        runner = NodeRunnerProcess(work / "nodes", hub_id=hub_id, endpoint_url=moto.url, region=REGION, interval=0.1)
        runner.env.update(MOTO_CREDENTIALS)
        runner.start()
        hub = LocalHub(work / "hub", config, env={**MOTO_CREDENTIALS, **sts_env}).start()
        for user in ("fresh", "resumer"):  # warm-up: first imports; the resumer's instance gets its home
            hub.ensure_user(user)
            time_start(hub, user)
            hub.stop_server(user)
        launches, resumes, nodes = [], [], set()
        for i in range(rounds):
            for user, times in (("fresh", launches), ("resumer", resumes)):
                elapsed, node = time_start(hub, user)
                times.append(elapsed)
                if user == "resumer":
                    nodes.add(node)
                hub.stop_server(user)
            print(f"round {i + 1}/{rounds}: launch {launches[-1]:.2f}s  resume {resumes[-1]:.2f}s", flush=True)
    finally:
        for part in (hub, runner, store, moto):
            if part is not None:
                part.stop()
    if len(nodes) != 1:
        raise SystemExit(f"the resumer got {len(nodes)} different instances: not a resume")
    launch, resume = statistics.median(launches), statistics.median(resumes)
    print()
    print(f"home: {n_files} files x 10 KB; {rounds} starts each; one instance resumed every time ({nodes.pop()})")
    print(f"{'start':<44} {'median s':>9} {'min s':>7} {'max s':>7}")
    print(f"{'launch a new instance (restore from bucket)':<44} {launch:>9.2f} {min(launches):>7.2f} {max(launches):>7.2f}")
    print(f"{'resume the stopped instance':<44} {resume:>9.2f} {min(resumes):>7.2f} {max(resumes):>7.2f}")
    print(f"ratio resume / launch: {resume / launch:.2f}x (goal <= {GOAL}x)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
