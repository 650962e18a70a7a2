"""Pure planning of a sync (local -> bucket) and of a restore (bucket -> local).

A plan is a function of three inputs only: the local listing (path -> stat), the
remote listing (path -> size, ETag, MD5 when known) and the last-sync manifest, plus the
MD5s of the few local files the manifest could not vouch for. No network, no file access,
no tornado: every decision here is unit-tested in milliseconds.

Decisions are made by content, never by size and time alone, so a same-size edit is always
uploaded: the manifest vouches for a file only while its size, mtime, change time and inode
are all as recorded, and an object's ETag is taken as its MD5 only when nothing says
otherwise (the manifest's own record of that ETag comes first: SSE-KMS ETags look like MD5s). Nothing is deleted remotely unless ``delete`` is asked for and the local listing
was complete; a file that changed on the other side since the last sync while staying
unchanged on this side is reported as a conflict instead of being overwritten.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from voila_publisher.sync.hashing import is_plain_md5_etag
from voila_publisher.paths import PathOutsideRoot, normalize_relpath
from voila_publisher.sync.listing import LocalFile, in_selection, is_excluded
from voila_publisher.sync.manifest import UNSETTLED, ManifestEntry
from voila_publisher.sync.store import RemoteObject


@dataclass
class RemoteView:
    """The user's prefix seen as relative paths."""

    objects: dict[str, RemoteObject] = field(default_factory=dict)
    unsafe_keys: list[str] = field(default_factory=list)  # keys that would land outside the root


@dataclass
class Plan:
    transfer: list[str] = field(default_factory=list)  # upload (sync) or download (restore)
    skip: list[str] = field(default_factory=list)
    delete: list[str] = field(default_factory=list)
    conflicts: list[str] = field(default_factory=list)
    too_large: list[str] = field(default_factory=list)
    # Files found identical without the manifest knowing: remember them for next time.
    learned: dict[str, ManifestEntry] = field(default_factory=dict)


def remote_view(
    objects: dict[str, RemoteObject], prefix: str, excludes: list[str], selection: list[str] | None = None
) -> RemoteView:
    """Map keys under ``prefix`` to relative paths, dropping excluded ones and folder markers."""
    view = RemoteView()
    for key, obj in objects.items():
        if not key.startswith(prefix):
            continue
        rel = key[len(prefix) :]
        if not rel or rel.endswith("/"):
            continue
        try:
            clean = normalize_relpath(rel)
        except PathOutsideRoot:
            view.unsafe_keys.append(key)
            continue
        if clean != rel or not clean:
            view.unsafe_keys.append(key)
            continue
        if is_excluded(rel, excludes) or not in_selection(rel, selection):
            continue
        view.objects[rel] = obj
    return view


def stat_of(entry: ManifestEntry) -> LocalFile:
    return LocalFile(entry.size, entry.mtime_ns, entry.ctime_ns, entry.ino)


def vouched_md5(local: LocalFile, entry: ManifestEntry | None) -> str | None:
    """The manifest's MD5 of a local file, if the file is untouched since that sync.

    Untouched means the whole stat is as recorded: a restored mtime still moves the change
    time, a file replaced by a rename has another inode (an unsettled entry never matches).
    """
    if entry is not None and entry.ctime_ns != UNSETTLED and stat_of(entry) == local:
        return entry.md5
    return None


def remote_md5(obj: RemoteObject, entry: ManifestEntry | None) -> str | None:
    """The object's content MD5 as far as it is known without reading it."""
    if obj.md5:
        return obj.md5
    if entry is not None and entry.etag == obj.etag:
        # This node sent or fetched exactly this object and checked its content then: the
        # only way to know the MD5 of an SSE-KMS object, whose ETag is not one.
        return entry.md5
    if is_plain_md5_etag(obj.etag) and not obj.etag_not_md5:
        return obj.etag
    return None


def files_to_hash(
    local: dict[str, LocalFile], remote: dict[str, RemoteObject], manifest: dict[str, ManifestEntry]
) -> list[str]:
    """Local files whose content must be read to decide, among those no manifest entry vouches
    for: a same-size remote twin (same content?), or a twin replaced since the last sync (is
    the local file still what was synced then? If so, the bucket's copy is the newer one).

    Any other file is decided without hashing.
    """
    return sorted(
        p
        for p, lf in local.items()
        if (r := remote.get(p)) is not None
        and vouched_md5(lf, entry := manifest.get(p)) is None
        and (r.size == lf.size or (entry is not None and entry.etag != r.etag))
    )


def objects_to_inspect(
    local: dict[str, LocalFile], remote: dict[str, RemoteObject], manifest: dict[str, ManifestEntry]
) -> list[str]:
    """Remote objects of a local file's size whose MD5 is not knowable from the listing
    (multipart ETags this node did not produce): their metadata must be read (HEAD)."""
    return sorted(
        p
        for p, r in remote.items()
        if (lf := local.get(p)) is not None and r.size == lf.size and remote_md5(r, manifest.get(p)) is None
    )


def objects_to_confirm(
    local: dict[str, LocalFile], remote: dict[str, RemoteObject], manifest: dict[str, ManifestEntry], hashes: dict[str, str]
) -> list[str]:
    """Same-size objects whose 32-hex ETag differs from the hashed local content and that the
    manifest does not know: either the content differs, or the ETag is not an MD5 (SSE-KMS,
    SSE-C) and the content may be the same. Their metadata must be read (HEAD) to tell."""
    found = []
    for p, h in hashes.items():
        r, lf, entry = remote.get(p), local.get(p), manifest.get(p)
        if r is None or lf is None or r.size != lf.size or r.md5 or r.etag_not_md5 or h == r.etag:
            continue
        if is_plain_md5_etag(r.etag) and not (entry is not None and entry.etag == r.etag):
            found.append(p)
    return sorted(found)


def untouched_since_sync(entry: ManifestEntry | None, local_md5: str | None) -> bool:
    """The local file still holds what the last sync left in it (vouched, or hashed to the same MD5)."""
    return entry is not None and local_md5 is not None and local_md5 == entry.md5


def _skipped_as_same(plan: Plan, path: str, lf: LocalFile, r: RemoteObject, entry, local_md5: str | None) -> bool:
    """Both sides hold the same content: skip, and remember it if the manifest did not know."""
    if lf.size != r.size or local_md5 is None or local_md5 != remote_md5(r, entry):
        return False
    plan.skip.append(path)
    learned = ManifestEntry(lf.size, lf.mtime_ns, local_md5, r.etag, lf.ctime_ns, lf.ino)
    if entry != learned:
        plan.learned[path] = learned
    return True


def plan_sync(
    local: dict[str, LocalFile],
    remote: dict[str, RemoteObject],
    manifest: dict[str, ManifestEntry],
    hashes: dict[str, str],
    *,
    delete: bool = False,
    listing_complete: bool = True,
    max_file_size: int = 0,
) -> Plan:
    """What to upload, skip and (only if asked) delete to make the bucket match the local tree."""
    plan = Plan()
    for path in sorted(local):
        lf = local[path]
        entry = manifest.get(path)
        r = remote.get(path)
        local_md5 = vouched_md5(lf, entry) or hashes.get(path)
        if r is not None and _skipped_as_same(plan, path, lf, r, entry, local_md5):
            continue
        if r is not None and untouched_since_sync(entry, local_md5) and entry.etag != r.etag:
            # Untouched here since the last sync, replaced in the bucket since: the bucket's
            # copy is newer. Uploading would silently discard it.
            plan.conflicts.append(path)
            continue
        if max_file_size and lf.size > max_file_size:
            plan.too_large.append(path)
            continue
        plan.transfer.append(path)
    if delete and listing_complete:
        plan.delete = sorted(p for p in remote if p not in local)
    return plan


def plan_restore(
    local: dict[str, LocalFile],
    remote: dict[str, RemoteObject],
    manifest: dict[str, ManifestEntry],
    hashes: dict[str, str],
    *,
    overwrite: bool = False,
) -> Plan:
    """What to download so the local tree gets the bucket's files without losing local work.

    A local file that differs from the bucket's copy is replaced only when ``overwrite`` is
    asked, or when it provably holds what the last sync left (the bucket's copy is
    then the newer one). Otherwise it is a conflict and stays as it is.
    """
    plan = Plan()
    for path in sorted(remote):
        r = remote[path]
        lf = local.get(path)
        if lf is None:
            plan.transfer.append(path)
            continue
        entry = manifest.get(path)
        local_md5 = vouched_md5(lf, entry) or hashes.get(path)
        if _skipped_as_same(plan, path, lf, r, entry, local_md5):
            continue
        if overwrite or (untouched_since_sync(entry, local_md5) and entry.etag != r.etag):
            plan.transfer.append(path)
        else:
            plan.conflicts.append(path)
    return plan


def conflict_copy_path(path: str, etag: str) -> str:
    """Where the bucket's version of a conflicting file is kept, beside the local one.

    ``thesis.ipynb`` -> ``thesis (bucket copy 3fa2c1d0).ipynb``: the same bucket version always
    lands on the same name (a second restore writes nothing new), a newer one on another name
    (an earlier copy is never overwritten), and the suffix stays so Jupyter still opens it.
    """
    directory, _, name = path.rpartition("/")
    stem, dot, suffix = name.rpartition(".")
    if not stem:  # no suffix, or a name like ".env"
        stem, dot, suffix = name, "", ""
    tag = "".join(c for c in etag.lower() if c in "0123456789abcdef")[:8] or "unknown"
    copy = f"{stem} (bucket copy {tag}){dot}{suffix}"
    return f"{directory}/{copy}" if directory else copy

