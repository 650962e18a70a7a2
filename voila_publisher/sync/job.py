"""A sync or restore job's progress, as the REST API and the command line report it.

Transfer threads update it concurrently, the event loop reads it: every change goes
through one lock, and ``to_json`` returns a consistent snapshot (the Job shape of
docs/contracts.md).
"""

from __future__ import annotations

import threading
import uuid
from datetime import datetime, timezone

from voila_publisher.sync import metrics


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class Job:
    MAX_ERRORS = 200  # a broken bucket can fail thousands of files; the first ones say why

    def __init__(self, kind: str):
        assert kind in ("sync", "restore")
        self.id = uuid.uuid4().hex[:12]
        self.kind = kind
        self.state = "running"
        self.files_total = self.files_done = 0
        self.bytes_total = self.bytes_done = 0
        self.uploaded = self.downloaded = self.skipped = self.deleted = 0
        self.conflicts: list[str] = []
        # Restores that keep the bucket's version of a conflict beside it: {"path", "copy"}.
        self.conflict_copies: list[dict] = []
        self.errors: list[dict] = []
        self.message = "listing files"
        self.started = _now()
        self.finished: str | None = None
        self.reason: str | None = None  # short code of a fatal error
        self._lock = threading.Lock()
        self._done = threading.Event()
        # Set to stop starting new transfers (server shutdown); transfers in flight complete.
        self.cancel_event = threading.Event()

    def update(self, **changes) -> None:
        with self._lock:
            for name, value in changes.items():
                setattr(self, name, value)

    def add(self, **increments) -> None:
        with self._lock:
            for name, value in increments.items():
                setattr(self, name, getattr(self, name) + value)
        if "bytes_done" in increments:
            metrics.record_bytes(self.kind, increments["bytes_done"])

    def error(self, path: str, message: str) -> None:
        metrics.record_error(self.kind)
        with self._lock:
            if len(self.errors) < self.MAX_ERRORS:
                self.errors.append({"path": path, "message": message})

    def conflict(self, path: str) -> None:
        with self._lock:
            self.conflicts.append(path)

    def conflict_copy(self, path: str, copy: str) -> None:
        with self._lock:
            self.conflict_copies.append({"path": path, "copy": copy})

    def finish(self, message: str, *, failed: bool = False, reason: str | None = None) -> None:
        with self._lock:
            first = self.finished is None
            # A job stopped whole without a file error (interrupted, an internal error) is one error.
            unexplained = failed and not self.errors
            self.state = "error" if failed or self.errors else "done"
            self.message = message
            self.reason = reason
            self.finished = _now()
        if first:
            metrics.record_job(self.kind, self.state)
            if unexplained:
                metrics.record_error(self.kind)
        self._done.set()

    def cancel(self) -> None:
        self.cancel_event.set()

    @property
    def running(self) -> bool:
        return not self._done.is_set()

    def wait(self, timeout: float | None = None) -> bool:
        return self._done.wait(timeout)

    def to_json(self) -> dict:
        with self._lock:
            return {
                "id": self.id,
                "kind": self.kind,
                "state": self.state,
                "files_total": self.files_total,
                "files_done": self.files_done,
                "bytes_total": self.bytes_total,
                "bytes_done": self.bytes_done,
                "uploaded": self.uploaded,
                "downloaded": self.downloaded,
                "skipped": self.skipped,
                "deleted": self.deleted,
                "conflicts": list(self.conflicts),
                "conflict_copies": list(self.conflict_copies),
                "errors": list(self.errors),
                "message": self.message,
                "reason": self.reason,
                "started": self.started,
                "finished": self.finished,
            }
