"""Benchmark of what the JupyterLab extension's build costs a developer's repeated installs
(runnable: .venv/bin/python benchmarks/bench_lab_build.py [--quick]).

scripts/install.sh (run by scripts/test.sh every time) does `pip install -e '.[test]'`, whose
build hook builds the extension. Measured here, in the same run:

1. editable install with the built extension up to date (the build is skipped);
2. the reference: the same install after a source file changed (the extension is rebuilt);
3. the bundling step alone (`jlpm build:prod`), for scale.

Prints medians and the ratio of each to the skipped install.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
TOUCHED = REPO / "labextension" / "index.ts"


def run(argv) -> float:
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    start = time.perf_counter()
    subprocess.run(argv, cwd=REPO, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def install() -> float:
    return run([BIN / "pip", "install", "-q", "--no-deps", "-e", "."])


def install_after_change() -> float:
    TOUCHED.touch()  # newer than the built output: the hook rebuilds
    return install()


def bundle() -> float:
    return run([BIN / "jlpm", "build:prod"])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="one repetition of each case")
    repeats = 1 if parser.parse_args().quick else 3

    install()  # start from an up-to-date build
    cases = [
        ("editable install, extension up to date (skipped)", install),
        ("editable install after a source change (rebuilt)", install_after_change),
        ("jlpm build:prod alone", bundle),
    ]
    results = []
    for name, fn in cases:
        results.append((name, statistics.median(fn() for _ in range(repeats))))
        if fn is bundle:
            install()  # leave the installed copy matching the build
    reference = results[0][1]
    print(f"{'case':<52} {'median s':>9} {'x skipped':>10}")
    for name, seconds in results:
        print(f"{name:<52} {seconds:>9.2f} {seconds / reference:>10.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
