"""Where this server's work lives, for the status bar: the kind of home the hub gave it, how
full it is, and how much of it the bucket does not have yet.

The hub tells the server the kind in ``$HYBRID_HOME_KIND`` (RemoteSpawner.home_kind):
``persistent`` (a volume kept across stops), ``ephemeral`` (gone with the server: only what was
synced survives), ``shared`` (a cluster filesystem). Anything else is ``unknown`` and the Lab
shows the sync state alone. "Unsynced" counts files whose stat the last sync or restore did not
record (the same test the sync uses to skip hashing), without reading any file.
"""

from __future__ import annotations

import os
import shutil

from voila_publisher.sync.listing import LocalFile, list_local
from voila_publisher.sync.manifest import UNSETTLED, ManifestEntry
from voila_publisher.sync.plan import vouched_md5

KINDS = {"persistent": "persistent volume", "ephemeral": "ephemeral", "shared": "shared filesystem"}


def home_kind(environ=os.environ) -> str:
    kind = environ.get("HYBRID_HOME_KIND", "").strip().lower()
    return kind if kind in KINDS else "unknown"


def recorded_as_is(local: LocalFile, entry: ManifestEntry | None) -> bool:
    """The last sync or restore recorded this file with this size, mtime and inode.

    Looser than the sync's own test (``vouched_md5``): an entry written within a second of the
    file's last change has no change time to compare ("unsettled"), and the sync re-hashes it
    to be sure; for a count on the status bar, the rest of the stat is enough.
    """
    if entry is None:
        return False
    if vouched_md5(local, entry) is not None:
        return True
    return entry.ctime_ns == UNSETTLED and (entry.size, entry.mtime_ns, entry.ino) == (local.size, local.mtime_ns, local.ino)


def unsynced_paths(local: dict[str, LocalFile], manifest: dict[str, ManifestEntry]) -> list[str]:
    """Local files the last sync or restore did not leave as they are now (pure)."""
    return sorted(path for path, lf in local.items() if not recorded_as_is(lf, manifest.get(path)))


def describe_home(root, excludes: list[str], manifest: dict[str, ManifestEntry], environ=os.environ) -> dict:
    """The answer of ``GET /hybrid/home`` (blocking: lists the tree; call it in a thread)."""
    kind = home_kind(environ)
    usage = shutil.disk_usage(root)
    listing = list_local(root, excludes)
    unsynced = unsynced_paths(listing.files, manifest)
    return {
        "kind": kind,
        "label": KINDS.get(kind, ""),
        "size_bytes": usage.total,
        "used_bytes": usage.total - usage.free,
        "files": len(listing.files),
        "unsynced": len(unsynced),
        "unsynced_examples": unsynced[:5],
    }
