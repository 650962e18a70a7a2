"""Node side of ``restore_on_start``: bring the user's files back from the bucket before the
notebook server opens, telling the spawn page how far it got.

Runs ``python -m voila_publisher.sync.cli --restore --keep-conflict-copies --progress --json``
in the directory the server will serve, with the server's own environment (bucket settings and
credentials file), so the restore reads exactly what the Lab's "Sync to bucket" wrote. Its
progress lines go to the hub's progress endpoint at most once a second; the finished job is
written to ``.hybrid-sync/restore-at-start.json`` under that directory, where the server
extension finds it and JupyterLab reports conflicts. A failed or slow restore never keeps the
server from starting: the researcher is told instead. Standard library only (docs/node-image.md).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from typing import Callable

REPORT_NAME = "restore-at-start.json"
POST_INTERVAL = 1.0


def restore_root(spec: dict) -> str:
    """The directory the server will serve: the spawner's notebook_dir, or the working directory."""
    root = os.path.expanduser(str(spec.get("root") or ""))
    return os.path.abspath(root or os.getcwd())


def restore_command(python: str, root: str) -> list[str]:
    return [
        python, "-m", "voila_publisher.sync.cli", "--restore", "--keep-conflict-copies",
        "--progress", "--json", f"--root={root}",
    ]


def progress_fields(line: dict, state: str | None = None) -> dict:
    """The numbers the hub accepts (hybrid_spawner.bootstrap.progress), from a progress line or a job."""
    fields = {k: int(line.get(k) or 0) for k in ("files_done", "files_total", "bytes_done", "bytes_total")}
    fields["conflicts"] = len(line.get("conflict_copies") or []) or len(line.get("conflicts") or [])
    fields["state"] = state or ("running" if line.get("state") == "running" else line.get("state", "error"))
    if fields["state"] not in ("running", "done", "error", "timeout"):
        fields["state"] = "error"
    return fields


def run_restore(spec: dict, env: dict, report: Callable[[dict], None], deadline: float) -> dict:
    """Restore into ``restore_root(spec)``; returns the finished job (or what is known of it).

    ``report`` gets the progress fields (best effort: it must not raise); ``deadline`` is a
    ``time.monotonic()`` value after which the restore is stopped and the server starts anyway.
    """
    root = restore_root(spec)
    os.makedirs(root, exist_ok=True)
    limit = min(float(spec.get("timeout") or 600.0), max(1.0, deadline - time.monotonic()))
    proc = subprocess.Popen(
        restore_command(sys.executable, root), env=env, cwd=root, stdout=subprocess.PIPE, text=True
    )
    timer = threading.Timer(limit, proc.kill)
    timer.start()
    job: dict = {}
    last_line: dict = {}
    last_post = 0.0
    try:
        for raw in proc.stdout:
            try:
                line = json.loads(raw)
            except ValueError:
                continue
            if not isinstance(line, dict):
                continue
            if "id" in line:  # the finished job (--json)
                job = line
                continue
            last_line = line
            if time.monotonic() - last_post >= POST_INTERVAL:
                report(progress_fields(line, "running"))
                last_post = time.monotonic()
        status = proc.wait()
    finally:
        timer.cancel()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    if not job:
        state = "timeout" if status in (-9, 137) else "error"
        job = dict(last_line, state=state, conflicts=[], conflict_copies=[],
                   message=f"the restore {'took longer than %.0f s' % limit if state == 'timeout' else 'failed (exit %d)' % status}")
    report(progress_fields(job))
    write_report(root, job)
    return job


def write_report(root: str, job: dict) -> None:
    """Leave the finished job where the server extension reads it (atomically, 0600)."""
    directory = os.path.join(root, ".hybrid-sync")
    os.makedirs(directory, mode=0o700, exist_ok=True)
    path = os.path.join(directory, REPORT_NAME)
    tmp = f"{path}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(dict(job, reported=time.time()), f)
    os.replace(tmp, path)
