"""The last-sync manifest: what each file looked like when it was last synced.

Keyed by relative path; an entry holds the file's stat at that moment (size, mtime, change
time, inode: see ``listing.LocalFile``), the MD5 of its content and the ETag of the object it
matched. While all four stat values are unchanged the MD5 is trusted, so an unchanged tree is
never re-hashed. The file is rewritten atomically (temporary file + rename) and flushed during
a sync, so an interrupted sync keeps what it did.

An entry whose change time is not clearly older than the job is recorded as unsettled (it is
hashed again next time), as git does with racily clean index entries: file timestamps tick in
coarse steps, so a same-size write in the same step after the file was read would otherwise
leave every stat value as recorded.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path

FORMAT_VERSION = 2
# Version 1 kept only size and mtime: its entries are loaded unsettled (each file is hashed
# once more), keeping what they know of each object's MD5.
READABLE_VERSIONS = (1, 2)
UNSETTLED = -1  # a change time no file has: the entry's stat never vouches for the content
# Longer than the timestamp step of any local or network filesystem in use (a jiffy on Linux).
RACY_WINDOW_NS = 1_000_000_000


@dataclass(frozen=True)
class ManifestEntry:
    size: int
    mtime_ns: int
    md5: str
    etag: str
    ctime_ns: int = 0
    ino: int = 0


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
        # Every file read by this job was read after this moment: see record().
        self._opened_ns = time.time_ns()

    @classmethod
    def load(cls, path) -> "Manifest":
        """The saved manifest, or an empty one if it is missing or unreadable (that only costs hashing)."""
        try:
            data = json.loads(Path(path).read_text())
            if data.get("version") not in READABLE_VERSIONS:
                return cls(path)
            entries = {p: ManifestEntry(*row) for p, row in data["files"].items()}
            if data["version"] == 1:
                entries = {p: replace(e, ctime_ns=UNSETTLED) for p, e in entries.items()}
        except (OSError, ValueError, KeyError, TypeError):
            return cls(path)
        return cls(path, entries)

    def snapshot(self) -> dict[str, ManifestEntry]:
        with self._lock:
            return dict(self.entries)

    def record(self, relpath: str, entry: ManifestEntry) -> None:
        """Remember ``entry``; unsettled if the file changed within a timestamp step of this job."""
        if entry.ctime_ns >= self._opened_ns - RACY_WINDOW_NS:
            entry = replace(entry, ctime_ns=UNSETTLED)
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
            rows = {p: [e.size, e.mtime_ns, e.md5, e.etag, e.ctime_ns, e.ino] for p, e in self.entries.items()}
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
