"""Benchmark: restore on start against `aws s3 sync` downloading the same prefix, same run.

A fresh node's home is empty: both tools bring a user's prefix (default 1,000 x 10 KB files in
20 folders) from the same SeaweedFS into a new empty directory, alternating so that load from
other processes hits both alike. Ours is the command the node agent runs before the server
opens (`jupyter-hybrid-sync --restore --keep-conflict-copies --progress --json`, which also
checks every file's MD5). Prints medians and the ratio ours / aws cli (goal <= 0.5x).

    .venv/bin/python benchmarks/bench_restore.py            # 1,000 x 10 KB, 5 rounds
    .venv/bin/python benchmarks/bench_restore.py --quick    # 300 x 10 KB, 3 rounds
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from simulators.processes import child_env, venv_bin_dir  # noqa: E402
from simulators.seaweedfs import SeaweedS3  # noqa: E402

BUCKET = "bench-restore"
USER = "bench"
GOAL = 0.5


def timed(argv, env) -> float:
    started = time.perf_counter()
    out = subprocess.run(argv, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    if out.returncode != 0:
        raise SystemExit(f"{argv[0]} failed ({out.returncode}):\n{out.stdout[-2000:]}\n{out.stderr[-2000:]}")
    return elapsed


def count_files(root: Path) -> int:
    return sum(1 for p in root.rglob("*") if p.is_file() and ".hybrid-sync" not in p.parts)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="300 files and 3 rounds")
    parser.add_argument("--files", type=int, help="number of files (default 1,000; 300 with --quick)")
    parser.add_argument("--size", type=int, default=10_240, help="bytes per file")
    parser.add_argument("--rounds", type=int, help="rounds (default 5; 3 with --quick)")
    args = parser.parse_args(argv)
    n_files = args.files or (300 if args.quick else 1_000)
    rounds = args.rounds or (3 if args.quick else 5)

    work = Path(tempfile.mkdtemp(prefix="bench-restore-"))
    s3 = SeaweedS3(work / "seaweedfs").start()
    try:
        s3.create_bucket(BUCKET)
        env = child_env({**s3.client_env, "AWS_EC2_METADATA_DISABLED": "true", "HYBRID_SYNC_BUCKET": BUCKET,
                         "HYBRID_S3_ENDPOINT_URL": s3.url})
        source = work / "source"
        for i in range(n_files):
            path = source / f"project-{i % 20:02d}" / f"notebook-{i:05d}.ipynb"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(os.urandom(args.size))
        bin_dir = venv_bin_dir()
        timed([bin_dir / "jupyter-hybrid-sync", "--root", source, "--user", USER,
               f"--BucketSync.manifest_dir={work / 'manifest'}"], env)

        times = {"aws": [], "ours": []}
        for r in range(rounds):
            aws_dir, our_dir = work / f"aws-{r}", work / f"ours-{r}"
            times["aws"].append(timed(
                [bin_dir / "aws", "s3", "sync", f"s3://{BUCKET}/users/{USER}/", aws_dir,
                 "--endpoint-url", s3.url, "--only-show-errors"], env))
            times["ours"].append(timed(
                [bin_dir / "jupyter-hybrid-sync", "--restore", "--keep-conflict-copies", "--progress", "--json",
                 "--root", our_dir, "--user", USER], env))
            for directory in (aws_dir, our_dir):
                found = count_files(directory)
                if found != n_files:
                    raise SystemExit(f"{directory.name}: {found} files restored, expected {n_files}")
                shutil.rmtree(directory)

        aws_m, ours_m = statistics.median(times["aws"]), statistics.median(times["ours"])
        ratio = ours_m / aws_m
        print(f"\nrestore benchmark: {n_files} x {args.size // 1024} KB into an empty directory, {rounds} rounds, SeaweedFS")
        print(f"aws s3 sync (download): median {aws_m:.3f} s  (all: {', '.join(f'{t:.2f}' for t in times['aws'])})")
        print(f"ours (restore at start): median {ours_m:.3f} s  (all: {', '.join(f'{t:.2f}' for t in times['ours'])})")
        print(f"ratio ours / aws: {ratio:.2f}x  (goal <= {GOAL}x: {'ok' if ratio <= GOAL else 'MISSED'})")
        print(f"load average at the end: {os.getloadavg()[0]:.1f}")
    finally:
        s3.stop()
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
