"""Benchmark: notebook sync against `aws s3 sync` on the same SeaweedFS, in the same run.

Two views, each as medians and ratios (ours / aws cli):
1. command line against command line: `jupyter-hybrid-sync` vs `aws s3 sync` (both pay
   interpreter start-up) for an initial sync of many small files, a no-op resync, a resync
   with 10 changed files, and one large file;
2. what the Lab button costs: POST /hybrid/sync on a running jupyter server, polled until
   done, against the same aws cli command (what teams run today).

    .venv/bin/python benchmarks/bench_sync.py            # 1,000 x 10 KB, 200 MB, 5 rounds
    .venv/bin/python benchmarks/bench_sync.py --quick    # 300 x 10 KB, 30 MB, 3 rounds

Measurements alternate between the tools so that load from other processes hits both alike.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from simulators.processes import ManagedProcess, child_env, free_port, http_ok, venv_bin_dir  # noqa: E402
from simulators.seaweedfs import SeaweedS3  # noqa: E402

BUCKET = "bench-sync"
TARGETS = {
    ("cli", "initial"): 0.5,
    ("cli", "no-op"): 0.8,
    ("cli", "10 changed"): 0.8,
    ("cli", "large file"): 1.0,
    ("button", "no-op"): 0.2,
    ("button", "10 changed"): 0.3,
}


def timed(argv, env) -> float:
    started = time.perf_counter()
    out = subprocess.run(argv, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    if out.returncode != 0:
        raise SystemExit(f"{argv[0]} failed ({out.returncode}):\n{out.stdout}\n{out.stderr}")
    return elapsed


class Tools:
    def __init__(self, s3: SeaweedS3, work: Path):
        self.s3 = s3
        self.manifests = work / "manifests"
        self.env = child_env({**s3.client_env, "AWS_EC2_METADATA_DISABLED": "true", "HYBRID_SYNC_BUCKET": BUCKET})
        self.bin = venv_bin_dir()

    def aws(self, src: Path, prefix: str) -> float:
        return timed(
            [self.bin / "aws", "s3", "sync", src, f"s3://{BUCKET}/{prefix}/", "--endpoint-url", self.s3.url, "--only-show-errors"],
            self.env,
        )

    def ours(self, src: Path, user: str) -> float:
        return timed(
            # SeaweedFS rewrites only metadata on the MD5 copy, so this store gets the single-pass
            # multipart setting docs/sync.md recommends for it (the default hashes first, for AWS).
            [self.bin / "jupyter-hybrid-sync", "--root", src, "--user", user, f"--BucketSync.manifest_dir={self.manifests}",
             "--BucketSync.multipart_single_pass=True"],
            self.env,
        )


class ButtonServer(ManagedProcess):
    """A jupyter server with the sync extension on ``root``, driven over its REST API."""

    def __init__(self, root: Path, work: Path, s3: SeaweedS3, user: str):
        self.port = free_port()
        self.token = os.urandom(16).hex()
        config_dir = work / "jupyter-config"
        config_dir.mkdir(exist_ok=True)
        (config_dir / "jupyter_server_config.json").write_text(
            json.dumps(
                {
                    "ServerApp": {"jpserver_extensions": {"voila_publisher": True}},
                    "BucketSync": {"manifest_dir": str(work / "manifests"), "sync_on_stop": False, "multipart_single_pass": True},
                }
            )
        )
        env = child_env(
            {
                **s3.client_env,
                "AWS_EC2_METADATA_DISABLED": "true",
                "HYBRID_SYNC_BUCKET": BUCKET,
                "JUPYTERHUB_USER": user,
                "JUPYTER_CONFIG_DIR": str(config_dir),
                "JUPYTER_TOKEN": self.token,
            }
        )
        argv = [
            venv_bin_dir() / "jupyter-server",
            "--no-browser",
            "--allow-root",
            "--ip=127.0.0.1",
            f"--port={self.port}",
            f"--ServerApp.root_dir={root}",
        ]
        self.base = f"http://127.0.0.1:{self.port}"
        super().__init__("jupyter-server", argv, log_dir=work, env=env, ready=http_ok(f"{self.base}/api/status", accept=(200, 403)))

    def call(self, method: str, path: str, body: dict | None = None) -> dict:
        req = urllib.request.Request(
            f"{self.base}/{path}",
            method=method,
            data=json.dumps(body).encode() if body is not None else None,
            headers={"Authorization": f"token {self.token}"},
        )
        with urllib.request.urlopen(req, timeout=300) as r:
            return json.loads(r.read())

    def sync(self) -> float:
        started = time.perf_counter()
        job = self.call("POST", "hybrid/sync", {})
        while job["state"] == "running":
            time.sleep(0.005)
            job = self.call("GET", f"hybrid/sync/{job['id']}")
        elapsed = time.perf_counter() - started
        if job["state"] != "done":
            raise SystemExit(f"button sync failed: {job['message']}")
        return elapsed


def make_small_files(root: Path, count: int, size: int) -> list[Path]:
    paths = []
    for i in range(count):
        path = root / f"project-{i % 20:02d}" / f"notebook-{i:05d}.ipynb"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(os.urandom(size))
        paths.append(path)
    return paths


def change(paths: list[Path], round_no: int) -> None:
    for path in paths:
        size = path.stat().st_size
        path.write_bytes(os.urandom(size))  # same size, new content


def median_row(view, scenario, aws_times, our_times):
    aws_m, ours_m = statistics.median(aws_times), statistics.median(our_times)
    return (view, scenario, aws_m, ours_m, ours_m / aws_m, TARGETS.get((view, scenario)))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smaller data and fewer rounds")
    args = parser.parse_args(argv)
    rounds = 3 if args.quick else 5
    n_files, file_size = (300, 10_240) if args.quick else (1_000, 10_240)
    large_mb = 30 if args.quick else 200

    work = Path(tempfile.mkdtemp(prefix="bench-sync-"))
    s3 = SeaweedS3(work / "seaweedfs").start()
    try:
        s3.create_bucket(BUCKET)
        tools = Tools(s3, work)
        small = work / "small"
        files = make_small_files(small, n_files, file_size)
        rows = []

        # View 1: command line against command line.
        initial = {"aws": [], "ours": []}
        noop = {"aws": [], "ours": []}
        changed = {"aws": [], "ours": []}
        for r in range(rounds):
            initial["aws"].append(tools.aws(small, f"cli-{r}"))
            initial["ours"].append(tools.ours(small, f"ours-{r}"))
        for r in range(rounds):
            noop["aws"].append(tools.aws(small, "cli-0"))
            noop["ours"].append(tools.ours(small, "ours-0"))
        for r in range(rounds):
            change(files[r * 10 : r * 10 + 10], r)
            time.sleep(0.01)  # let mtimes move past the objects' LastModified second for aws
            changed["aws"].append(tools.aws(small, "cli-0"))
            changed["ours"].append(tools.ours(small, "ours-0"))
        rows.append(median_row("cli", "initial", initial["aws"], initial["ours"]))
        rows.append(median_row("cli", "no-op", noop["aws"], noop["ours"]))
        rows.append(median_row("cli", "10 changed", changed["aws"], changed["ours"]))

        large_dir = work / "large"
        large_dir.mkdir()
        with open(large_dir / "dataset.bin", "wb") as f:
            for _ in range(large_mb):
                f.write(os.urandom(1024 * 1024))
        large = {"aws": [], "ours": []}
        for r in range(max(2, rounds - 2)):
            large["aws"].append(tools.aws(large_dir, f"cli-large-{r}"))
            large["ours"].append(tools.ours(large_dir, f"ours-large-{r}"))
        rows.append(median_row("cli", "large file", large["aws"], large["ours"]))

        # View 2: the button on a running server against the aws cli.
        button = ButtonServer(small, work, s3, "button").start()
        try:
            button.sync()  # the initial upload, not measured
            tools.aws(small, "cli-0")
            noop_b = {"aws": [], "ours": []}
            changed_b = {"aws": [], "ours": []}
            for r in range(rounds):
                noop_b["aws"].append(tools.aws(small, "cli-0"))
                noop_b["ours"].append(button.sync())
            for r in range(rounds):
                change(files[100 + r * 10 : 110 + r * 10], r)
                time.sleep(0.01)
                changed_b["aws"].append(tools.aws(small, "cli-0"))
                changed_b["ours"].append(button.sync())
            rows.append(median_row("button", "no-op", noop_b["aws"], noop_b["ours"]))
            rows.append(median_row("button", "10 changed", changed_b["aws"], changed_b["ours"]))
        finally:
            button.stop()

        print(f"\nsync benchmark: {n_files} x {file_size // 1024} KB files, one {large_mb} MB file, {rounds} rounds, SeaweedFS")
        print(f"{'view':8} {'scenario':12} {'aws s3 sync':>12} {'ours':>10} {'ratio':>7} {'target':>7}")
        for view, scenario, aws_m, ours_m, ratio, target in rows:
            verdict = "" if target is None else ("ok" if ratio <= target else "MISSED")
            target_text = f"<={target:.1f}" if target is not None else ""
            print(f"{view:8} {scenario:12} {aws_m:11.3f}s {ours_m:9.3f}s {ratio:6.2f}x {target_text:>7} {verdict}")
    finally:
        s3.stop()
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
