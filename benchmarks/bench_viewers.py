"""Many viewers at once: the public host against plain `voila notebook.ipynb`, same run, loopback.

    .venv/bin/python benchmarks/bench_viewers.py [--viewers 500] [--quick]

Two dashboards, each published to the public host (nginx + publisher + sandboxed Voila) and
served by a plain `voila <notebook>` started for it:

* report - prints a computed number (no widgets): the host serves the page it rendered in the
           sandbox at publish time, from nginx; plain Voila starts a kernel per viewer;
* widget - shows an ipywidgets slider: both start a kernel per viewer; the host runs at most
           `max_live_kernels` of them and answers the rest with a 503 "busy" page.

All viewers arrive together (one GET each, no WebSocket). Printed per case: p50 / p99 / max page
time of the successful pages, how many succeeded, were told "busy" (503) or failed otherwise.

Bounded: plain Voila starts a kernel for every viewer (culled 5 s after it goes idle), and 500 of
them do not fit in this machine's memory (a first run reached 493 kernels and 20 of 24 GiB
before it was stopped). So a watchdog stops a plain-Voila crowd once its kernels hold
``--memory-budget`` GiB (RSS) and reports it as aborted, with how many pages it had served.
Crowds of 50 (which plain Voila survives) give the ratios.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path

import requests
from tornado.httpclient import AsyncHTTPClient, HTTPClientError

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from simulators.processes import ManagedProcess, child_env, free_port, http_ok, venv_bin_dir  # noqa: E402
from simulators.voila_host import PublicHost  # noqa: E402

REPORT = "import math, statistics\nvalues = [math.sin(i / 10) for i in range(20000)]\nprint('REPORT', round(statistics.fmean(values), 6))"
WIDGET = "import ipywidgets as w\nprint('WIDGET')\nw.IntSlider(value=3, description='n')"


def notebook(code: str) -> dict:
    return {
        "cells": [{"id": "c1", "cell_type": "code", "metadata": {}, "source": code, "outputs": [], "execution_count": None}],
        "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}},
        "nbformat": 4,
        "nbformat_minor": 5,
    }


def _process_table() -> tuple[dict[int, list[int]], dict[int, int]]:
    children: dict[int, list[int]] = {}
    rss: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(entry))
        rss[int(entry)] = int(fields[21]) * 4096
    return children, rss


def descendants(root_pid: int) -> list[int]:
    children, _ = _process_table()
    found, todo = [], list(children.get(root_pid, []))
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(children.get(pid, []))
    return found


def tree_rss_gib(root_pid: int) -> float:
    """Resident memory of ``root_pid`` and all its descendants, in GiB."""
    _, rss = _process_table()
    return sum(rss.get(pid, 0) for pid in [root_pid, *descendants(root_pid)]) / 1024**3


def stop_with_kernels(proc: ManagedProcess) -> None:
    """Kernels run in sessions of their own: a Voila stopped with hundreds of them would leave
    them behind. Kill them first (they are this benchmark's), then Voila."""
    for pid in descendants(proc.proc.pid):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    proc.stop()


async def crowd(url: str, viewers: int, marker: str, watch_pid: int | None = None, budget_gib: float = 8.0) -> dict:
    AsyncHTTPClient.configure(None, max_clients=viewers)
    client = AsyncHTTPClient()
    aborted = {}

    async def one():
        started = time.monotonic()
        try:
            r = await client.fetch(url, request_timeout=900, connect_timeout=60)
            ok = marker in r.body.decode(errors="replace")
            return ("ok" if ok else "wrong", time.monotonic() - started)
        except HTTPClientError as e:
            return ("busy" if e.code == 503 else f"http-{e.code}", time.monotonic() - started)
        except Exception as e:  # connection refused, reset, timeout
            return (type(e).__name__, time.monotonic() - started)

    async def watchdog(tasks):
        while not all(t.done() for t in tasks):
            if watch_pid and tree_rss_gib(watch_pid) > budget_gib:
                aborted["at"] = sum(1 for t in tasks if t.done() and t.result()[0] == "ok")
                for t in tasks:
                    t.cancel()
                return
            await asyncio.sleep(1)

    tasks = [asyncio.ensure_future(one()) for _ in range(viewers)]
    await watchdog(tasks)
    if aborted:
        return {"ok": aborted["at"], "busy": 0, "errors": {"aborted-memory": viewers - aborted["at"]}, "p50": None, "p99": None, "max": None}
    results = [t.result() for t in tasks]
    times = sorted(t for kind, t in results if kind == "ok")
    counts: dict[str, int] = {}
    for kind, _ in results:
        counts[kind] = counts.get(kind, 0) + 1
    q = statistics.quantiles(times, n=100) if len(times) >= 2 else times * 99
    return {"ok": counts.pop("ok", 0), "busy": counts.pop("busy", 0), "errors": counts,
            "p50": q[49] if times else None, "p99": q[98] if times else None, "max": times[-1] if times else None}


def plain_voila(work: Path, name: str, code: str) -> ManagedProcess:
    path = work / f"{name}.ipynb"
    path.write_text(json.dumps(notebook(code)))
    port = free_port()
    proc = ManagedProcess(
        f"voila-{name}",
        [venv_bin_dir() / "voila", str(path), "--no-browser", f"--port={port}", "--Voila.ip=127.0.0.1",
         "--MappingKernelManager.cull_idle_timeout=5", "--MappingKernelManager.cull_interval=2"],
        log_dir=work, env=child_env(), cwd=work, ready=http_ok(f"http://127.0.0.1:{port}/voila/static/voila.js", accept=(200, 404)),
    )
    proc.url = f"http://127.0.0.1:{port}/"
    return proc


def fmt(result: dict) -> str:
    def s(v):
        return "-" if v is None else f"{v:.2f}s"
    return f"ok {result['ok']:4d} busy {result['busy']:4d} errors {result['errors'] or 0}  p50 {s(result['p50'])} p99 {s(result['p99'])} max {s(result['max'])}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--viewers", type=int, nargs="+", default=[50, 500], help="crowd sizes")
    parser.add_argument("--memory-budget", type=float, default=8.0, help="GiB of kernels after which a plain-Voila crowd is stopped")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-viewers-"))
    rows = []

    def record(label, result):
        rows.append((label, result))
        print(f"  {label}: {fmt(result)}", flush=True)

    # Idle kernels go after 10 s, so one crowd's kernels do not fill the next crowd's bound.
    culling = "c.PublisherService.cull_idle_timeout = 10\nc.PublisherService.cull_interval = 5\nc.PublisherService.prerender_wait = 300\n"
    with PublicHost(work / "host", extra_config=culling) as host:
        token = {"Authorization": f"Bearer {host.token_for('bench')}", "Content-Type": "application/json"}
        for name, code in (("report", REPORT), ("widget", WIDGET)):
            r = requests.put(f"{host.api_url}dashboards/bench/{name}", data=json.dumps(notebook(code)), headers=token, timeout=180)
            r.raise_for_status()
            url = r.json()["url"]
            requests.get(url, timeout=120)  # the first viewer, alone, outside the measurement
            for viewers in args.viewers:
                record(f"{viewers:4d} x {name} public host", asyncio.run(crowd(url, viewers, name.upper())))
                time.sleep(20)
    for name, code in (("report", REPORT), ("widget", WIDGET)):
        for viewers in args.viewers:
            voila = plain_voila(work, f"{name}-{viewers}", code).start()
            try:
                requests.get(voila.url, timeout=120)
                record(f"{viewers:4d} x {name} plain voila", asyncio.run(crowd(voila.url, viewers, name.upper(), voila.proc.pid, args.memory_budget)))
            finally:
                stop_with_kernels(voila)
    print(f"\nviewers arriving together, loopback, {Path('/proc/cpuinfo').read_text().count('processor')} cores")
    for label, result in rows:
        print(f"  {label}: {fmt(result)}")
    by = dict(rows)
    for viewers in args.viewers:
        for name in ("report", "widget"):
            ours, plain = by[f"{viewers:4d} x {name} public host"], by[f"{viewers:4d} x {name} plain voila"]
            if ours["p50"] and plain["p50"]:
                print(f"  {viewers} x {name}: p50 host/plain = {ours['p50'] / plain['p50']:.3f}")


if __name__ == "__main__":
    main()
