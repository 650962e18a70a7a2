"""The server's sync state: one job at a time, run in a worker thread, plus periodic and final syncs.

Knows nothing of HTTP; ``sync_handlers.py`` exposes it as the REST API. Everything here is
called on the event loop, and the blocking engine always runs in a thread.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import OrderedDict
from pathlib import Path

from voila_publisher.identity import current_username
from voila_publisher.sync.listing import resolve_selection
from voila_publisher.sync.config import BucketSync
from voila_publisher.sync.engine import SyncEngine
from voila_publisher.sync.job import Job

# The node agent's report of the restore at start (hybrid_spawner/bootstrap/restore_step.py).
RESTORE_REPORT_NAME = "restore-at-start.json"
KEEP_JOBS = 50  # finished jobs kept for GET /hybrid/{sync,restore}/{id}


class Busy(Exception):
    """A job of the other kind is running."""


class NotConfigured(Exception):
    """The admin has not set what sync needs; the message says what."""


class SyncService:
    def __init__(self, config: BucketSync, root, username: str | None = None, log=None, engine: SyncEngine | None = None):
        self.config = config
        self.root = root
        self.username = username or current_username()
        self.log = log
        self._engine = engine
        self.current: Job | None = None
        self.last: dict[str, Job] = {}
        self.jobs: OrderedDict[str, Job] = OrderedDict()
        self._task: asyncio.Future | None = None
        self._periodic: asyncio.Task | None = None

    @property
    def prefix(self) -> str:
        return self.config.prefix_for(self.username)

    @property
    def engine(self) -> SyncEngine:
        if self._engine is None:
            self._engine = SyncEngine(self.config, self.root, self.username)
        return self._engine

    async def home(self) -> dict:
        """The server's home for the status bar (voila_publisher.sync.home), read in a thread."""
        from voila_publisher.sync.home import describe_home
        from voila_publisher.sync.manifest import Manifest

        def read() -> dict:
            manifest = Manifest.load(self.engine.manifest_file).snapshot() if self.config.bucket else {}
            return describe_home(self.root, self.config.all_excludes, manifest)

        answer = await asyncio.to_thread(read)
        last = self.last.get("sync")
        answer["last_sync"] = last.finished if last is not None and last.state == "done" else None
        return answer

    def restore_at_start(self) -> dict | None:
        """What the node's restore at start (restore_on_start) left for the researcher, if any.

        Written by the node agent (hybrid_spawner/bootstrap/restore_step.py) before the server
        started; only what JupyterLab shows is passed on.
        """
        path = Path(self.root) / ".hybrid-sync" / RESTORE_REPORT_NAME
        try:
            report = json.loads(path.read_text())
        except (OSError, ValueError):
            return None
        if not isinstance(report, dict):
            return None
        copies = [c for c in report.get("conflict_copies") or [] if isinstance(c, dict)]
        return {
            "state": str(report.get("state") or "error"),
            "message": str(report.get("message") or ""),
            "downloaded": int(report.get("downloaded") or 0),
            "conflict_copies": [{"path": str(c.get("path")), "copy": str(c.get("copy"))} for c in copies[:100]],
            "errors": len(report.get("errors") or []),
            "reported": float(report.get("reported") or 0),
        }

    def status(self) -> dict:
        job = self.current if self.current is not None and self.current.kind == "sync" else None
        running = job if job is not None and job.running else None
        # A job is finished as soon as its thread says so, before _run records it as last.
        last = job if job is not None and not job.running else self.last.get("sync")
        return {
            "configured": self.config.missing() is None,
            "missing": self.config.missing(),
            "bucket": self.config.bucket or None,
            "prefix": self.prefix if self.config.bucket else None,
            "current": running.to_json() if running else None,
            "last": last.to_json() if last else None,
            "restored_at_start": self.restore_at_start(),
        }

    def get(self, kind: str, job_id: str) -> Job | None:
        job = self.jobs.get(job_id)
        return job if job is not None and job.kind == kind else None

    def start(self, kind: str, paths: list[str] | None = None, **options) -> Job:
        """Start a job, or join the running one of the same kind.

        Raises NotConfigured, Busy, or PathOutsideRoot (before anything happens).
        """
        missing = self.config.missing()
        if missing:
            raise NotConfigured(missing)
        if self.current is not None and self.current.running:
            if self.current.kind == kind:
                return self.current
            raise Busy(f"a {self.current.kind} is running; try again when it has finished")
        resolve_selection(self.root, paths)
        job = Job(kind)
        self.current = job
        self.jobs[job.id] = job
        while len(self.jobs) > KEEP_JOBS:
            self.jobs.popitem(last=False)
        work = self.engine.sync if kind == "sync" else self.engine.restore
        self._task = asyncio.ensure_future(self._run(job, work, paths, options))
        return job

    async def _run(self, job: Job, work, paths, options) -> None:
        try:
            await asyncio.to_thread(work, job, paths, **options)
        except Exception as e:  # a bug must not leave the job "running" forever
            if self.log:
                self.log.exception("hybrid %s %s failed", job.kind, job.id)
            if job.running:
                job.finish(f"{job.kind} failed: {type(e).__name__}: {e}", failed=True, reason="internal-error")
        finally:
            self.last[job.kind] = job
            if self.log:
                self.log.info("hybrid %s %s: %s", job.kind, job.id, job.message)

    # -- background syncs --------------------------------------------------------------------------

    def start_periodic(self) -> None:
        if self.config.periodic_interval > 0 and self.config.missing() is None and self._periodic is None:
            self._periodic = asyncio.ensure_future(self._periodic_loop())

    async def _periodic_loop(self) -> None:
        while True:
            await asyncio.sleep(self.config.periodic_interval)
            try:
                job = self.start("sync")
                await asyncio.to_thread(job.wait)
            except Busy:
                continue  # a restore is running: try at the next tick
            except Exception:
                if self.log:
                    self.log.exception("hybrid periodic sync failed to start")

    async def final_sync(self) -> Job | None:
        """Sync once more before the server stops, bounded by ``final_sync_timeout``.

        A job already running may predate the last edits, so it is awaited and a fresh sync
        follows, both within the same time bound.
        """
        if self._periodic is not None:
            self._periodic.cancel()
        if not self.config.sync_on_stop or self.config.missing() is not None:
            return None
        deadline = time.monotonic() + self.config.final_sync_timeout
        job = None
        for _ in range(2):
            if self.current is not None and self.current.running:
                job = self.current
                await asyncio.to_thread(job.wait, max(0.0, deadline - time.monotonic()))
                if job.running:
                    break
            else:
                job = self.start("sync")
                if self.log:
                    self.log.info("hybrid sync: final sync %s before stopping", job.id)
                await asyncio.to_thread(job.wait, max(0.0, deadline - time.monotonic()))
                break
        if job.running:
            job.cancel()  # start nothing new, so the process can exit soon
            if self.log:
                self.log.warning(
                    "hybrid sync: final sync %s not done after %.0f s, stopping anyway "
                    "(finished files are in the bucket, unfinished ones were never made visible)",
                    job.id,
                    self.config.final_sync_timeout,
                )
        elif self.log:
            self.log.info("hybrid sync: final sync %s: %s", job.id, job.message)
        return job
