"""The last-sync manifest: what each file looked like when it was last synced.

Keyed by relative path; an entry holds the file's size and mtime at that moment, the MD5 of
its content and the ETag of the object it matched. While size and mtime are unchanged the
MD5 is trusted, so an unchanged tree is never re-hashed. The file is rewritten atomically
(temporary file + rename) and flushed during a sync, so an interrupted sync keeps what it did.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

FORMAT_VERSION = 1


@dataclass(frozen=True)
class ManifestEntry:
    size: int
    mtime_ns: int
    md5: str
    etag: str


def manifest_path(directory, endpoint_url: str, bucket: str, prefix: str) -> Path:
    """One manifest per destination, so syncing to two buckets never mixes their states."""
    digest = hashlib.sha256(f"{endpoint_url}\n{bucket}\n{prefix}".encode()).hexdigest()[:16]
    return Path(directory) / f"manifest-{digest}.json"


class Manifest:
    def __init__(self, path, entries: dict[str, ManifestEntry] | None = None):
        self.path = Path(path)
        self.entries: dict[str, ManifestEntry] = dict(entries or {})
        self._lock = threading.Lock()
        self._dirty = False
        self._last_save = time.monotonic()

    @classmethod
    def load(cls, path) -> "Manifest":
        """The saved manifest, or an empty one if it is missing or unreadable (that only costs hashing)."""
        try:
            data = json.loads(Path(path).read_text())
            if data.get("version") != FORMAT_VERSION:
                return cls(path)
            entries = {p: ManifestEntry(*row) for p, row in data["files"].items()}
        except (OSError, ValueError, KeyError, TypeError):
            return cls(path)
        return cls(path, entries)

    def snapshot(self) -> dict[str, ManifestEntry]:
        with self._lock:
            return dict(self.entries)

    def record(self, relpath: str, entry: ManifestEntry) -> None:
        with self._lock:
            self.entries[relpath] = entry
            self._dirty = True

    def forget(self, relpath: str) -> None:
        with self._lock:
            if self.entries.pop(relpath, None) is not None:
                self._dirty = True

    def save_if_due(self, interval: float = 2.0) -> None:
        if time.monotonic() - self._last_save >= interval:
            self.save()

    def save(self) -> None:
        with self._lock:
            if not self._dirty:
                return
            rows = {p: [e.size, e.mtime_ns, e.md5, e.etag] for p, e in self.entries.items()}
            self._dirty = False
            self._last_save = time.monotonic()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".manifest-", suffix=".tmp")
        try:
            with os.fdopen(fd, "w") as f:
                json.dump({"version": FORMAT_VERSION, "files": rows}, f, separators=(",", ":"))
            os.replace(tmp, self.path)
        except BaseException:
            with self._lock:
                self._dirty = True
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise
