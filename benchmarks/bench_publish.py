"""Publish-to-first-render through nginx, against a cold `voila notebook.ipynb` render.

    .venv/bin/python benchmarks/bench_publish.py [--quick] [--runs N]

Measured in the same run, on this machine:

* reference   - start `voila notebook.ipynb` and GET its page until the notebook's output
                appears (what a researcher does by hand to show a notebook);
* publish     - PUT the notebook to the publisher API through nginx, then GET its public URL
                until the page carries this publication's output (a fresh marker per run, so
                a stale page can never count as a success);
* republish   - the same for a new version of an existing dashboard;
* a later viewer - another viewer's page of the current version (a new kernel, or a
                pre-heated one when the host runs with preheating).

Publish and republish are split into the API's answer (with preheating it waits for the
new version's pre-render), the viewer's first page after that answer, and the total.

Prints medians and the ratio to the reference. The public host runs once for all runs,
without and then with kernel preheating (PublisherService.preheat_kernels).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from simulators.processes import ManagedProcess, child_env, free_port, venv_bin_dir  # noqa: E402
from simulators.voila_host import PublicHost  # noqa: E402

DEADLINE = 120.0


def notebook(marker: str) -> dict:
    code = (
        "import statistics, math\n"
        "values = [math.sin(i / 10) for i in range(20000)]\n"
        f"print('{marker}', round(statistics.fmean(values), 6))"
    )
    return {
        "cells": [
            {"id": "a1", "cell_type": "markdown", "metadata": {}, "source": "# Benchmark dashboard"},
            {"id": "a2", "cell_type": "code", "metadata": {}, "source": code, "outputs": [], "execution_count": None},
        ],
        "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}},
        "nbformat": 4,
        "nbformat_minor": 5,
    }


def wait_for_output(url: str, marker: str, session: requests.Session) -> None:
    deadline = time.monotonic() + DEADLINE
    while time.monotonic() < deadline:
        try:
            r = session.get(url, timeout=DEADLINE)
            if r.status_code == 200 and marker in r.text:
                return
        except requests.ConnectionError:
            pass
        time.sleep(0.02)
    raise RuntimeError(f"{url} never showed {marker}")


def cold_voila_render(work: Path) -> float:
    marker = f"cold-{uuid.uuid4().hex[:8]}"
    nb_path = work / f"{marker}.ipynb"
    nb_path.write_text(json.dumps(notebook(marker)))
    port = free_port()
    proc = ManagedProcess(
        "voila-cold",
        [venv_bin_dir() / "voila", "--no-browser", f"--port={port}", "--Voila.ip=127.0.0.1", nb_path],
        log_dir=work, env=child_env(), cwd=work,
    )
    start = time.monotonic()
    proc.start()
    try:
        wait_for_output(f"http://127.0.0.1:{port}/", marker, requests.Session())
        return time.monotonic() - start
    finally:
        proc.stop()


def publish_and_render(host: PublicHost, owner: str, slug: str, session: requests.Session) -> tuple[float, float]:
    """(seconds until the PUT is answered, seconds until the public page shows this version)."""
    marker = f"pub-{uuid.uuid4().hex[:8]}"
    start = time.monotonic()
    r = session.put(
        f"{host.api_url}dashboards/{owner}/{slug}", data=json.dumps(notebook(marker)),
        headers={"Authorization": f"Bearer {host.token_for(owner)}", "Content-Type": "application/json"}, timeout=60,
    )
    r.raise_for_status()
    answered = time.monotonic() - start
    wait_for_output(f"{host.url}/dashboards/{owner}/{slug}/", marker, session)
    return answered, time.monotonic() - start


def view(host: PublicHost, owner: str, slug: str, session: requests.Session) -> float:
    start = time.monotonic()
    r = session.get(f"{host.url}/dashboards/{owner}/{slug}/", timeout=DEADLINE)
    r.raise_for_status()
    return time.monotonic() - start


def measure_host(work: Path, runs: int, preheat: bool) -> dict[str, list[float]]:
    extra = "c.PublisherService.preheat_kernels = True\n" if preheat else ""
    results: dict[str, list[float]] = {}

    def record(kind: str, answered: float, rendered: float):
        results.setdefault(f"{kind}: API answer", []).append(answered)
        results.setdefault(f"{kind}: viewer's first page", []).append(rendered - answered)
        results.setdefault(f"{kind}: total to first render", []).append(rendered)

    with PublicHost(work / ("host-preheat" if preheat else "host"), extra_config=extra) as host:
        session = requests.Session()
        publish_and_render(host, "bench", "warmup", session)  # imports and caches, as on a live host
        for i in range(runs):
            slug = f"dash-{i}-{uuid.uuid4().hex[:6]}"
            record("publish", *publish_and_render(host, "bench", slug, session))
            time.sleep(2.0)  # the next viewer comes a moment later
            results.setdefault("a later viewer's page", []).append(view(host, "bench", slug, session))
            time.sleep(2.0)
            record("republish", *publish_and_render(host, "bench", slug, session))
    return results


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="3 runs instead of 7")
    parser.add_argument("--runs", type=int, default=None)
    args = parser.parse_args(argv)
    runs = args.runs or (3 if args.quick else 7)
    with tempfile.TemporaryDirectory(prefix="bench-publish-") as tmp:
        work = Path(tmp)
        reference = [cold_voila_render(work) for _ in range(runs)]
        plain = measure_host(work, runs, preheat=False)
        heated = measure_host(work, runs, preheat=True)
    ref = statistics.median(reference)
    print(f"\nbench_publish: medians over {runs} runs, seconds; ratio to the cold voila render\n")
    print(f"{'measurement':<42} {'no preheat':>10} {'x ref':>6} {'preheat':>9} {'x ref':>6}")
    print("-" * 77)
    print(f"{'cold `voila notebook.ipynb` (reference)':<42} {ref:>10.3f} {1:>6.2f}")
    for name in plain:
        a, b = statistics.median(plain[name]), statistics.median(heated[name])
        print(f"{name:<42} {a:>10.3f} {a / ref:>6.2f} {b:>9.3f} {b / ref:>6.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
