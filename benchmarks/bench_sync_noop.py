"""Benchmark: a no-op `jupyter-hybrid-sync` of a few thousand files, this checkout against another.

The quick check decides from the stat alone whether a file needs hashing; issue 16 (item 2)
made it compare change time and inode too. This measures that a sync with nothing to do
stays as fast: both commands run against the same SeaweedFS, each on its own tree and prefix
and manifest, alternated pair by pair by `farm-bench` (which reports the ratio A/B).

    .venv/bin/python benchmarks/bench_sync_noop.py --baseline /work/main/.venv/bin/jupyter-hybrid-sync
    .venv/bin/python benchmarks/bench_sync_noop.py --baseline ... --files 3000 --runs 5

A is this checkout's command, B the baseline's. Needs `farm-bench` on PATH.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from simulators.processes import child_env, venv_bin_dir  # noqa: E402
from simulators.seaweedfs import SeaweedS3  # noqa: E402

BUCKET = "bench-noop"


def make_tree(root: Path, count: int) -> None:
    for i in range(count):
        folder = root / f"project-{i // 200:02d}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"notebook-{i:05d}.ipynb").write_bytes(b'{"cells": [%d]}' % i * 40)


def sync_command(cli: Path, root: Path, user: str, manifests: Path) -> list[str]:
    return [str(cli), "--root", str(root), "--user", user, f"--BucketSync.manifest_dir={manifests}"]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--baseline", required=True, help="the jupyter-hybrid-sync command to compare with (B)")
    parser.add_argument("--files", type=int, default=3000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args(argv)
    if not shutil.which("farm-bench"):
        raise SystemExit("farm-bench is not on PATH")
    work = Path(tempfile.mkdtemp(prefix="bench-noop-"))
    s3 = SeaweedS3(work / "seaweedfs").start()
    try:
        s3.create_bucket(BUCKET)
        env = child_env({**s3.client_env, "AWS_EC2_METADATA_DISABLED": "true", "HYBRID_SYNC_BUCKET": BUCKET})
        ours = sync_command(venv_bin_dir() / "jupyter-hybrid-sync", work / "tree-a", "bench-a", work / "manifests-a")
        base = sync_command(Path(args.baseline), work / "tree-b", "bench-b", work / "manifests-b")
        for command, tree in ((ours, work / "tree-a"), (base, work / "tree-b")):
            make_tree(tree, args.files)
        time.sleep(1.2)  # past the timestamp step, so that the first sync's manifest vouches
        for command in (ours, base):
            out = subprocess.run(command, env=env, capture_output=True, text=True, cwd=work)
            if out.returncode != 0 or f"{args.files} uploaded" not in out.stdout:
                raise SystemExit(f"initial sync failed: {out.stdout}\n{out.stderr}")
        for command in (ours, base):  # both no-ops now
            out = subprocess.run(command, env=env, capture_output=True, text=True, cwd=work)
            if f"0 uploaded, {args.files} unchanged" not in out.stdout:
                raise SystemExit(f"not a no-op: {out.stdout}\n{out.stderr}")
        print(f"no-op sync of {args.files} files; A = this checkout, B = {args.baseline}", flush=True)
        result = subprocess.run(
            ["farm-bench", "-n", str(args.runs), "--timeout", "300", "--vs", " ".join(base), "--", *ours],
            env=env, cwd=work,
        )
        return result.returncode
    finally:
        s3.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
