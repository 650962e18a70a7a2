"""Carries out sync and restore plans: listing, hashing, transfers, manifest bookkeeping.

Blocking by design (threads and a shared connection pool); the server calls it from a
worker thread, the command line directly. Planning itself lives in ``plan.py``.

Guarantees:
- an object becomes visible only complete: one PUT, or a multipart upload that is completed
  only after every part arrived (and aborted otherwise);
- every transfer is checked: Content-MD5 on the way up (the server rejects a mismatch; the
  store also compares the ETag where it is an MD5), stored MD5 or ETag-that-is-an-MD5 on the
  way down, before the file replaces anything;
- the manifest is flushed during the transfer, so an interrupted sync resumes where it stopped;
- a restore writes to a hidden temporary file of bounded name length (any name that can be
  synced can be restored) and renames it into place.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import threading
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path

from voila_publisher.paths import is_within
from voila_publisher.sync.hashing import etag_is_digest, file_md5, is_plain_md5_etag
from voila_publisher.sync.listing import LocalFile, LocalListing, list_local, resolve_selection
from voila_publisher.sync.manifest import Manifest, ManifestEntry, manifest_path
from voila_publisher.sync.plan import (
    files_to_hash,
    objects_to_confirm,
    objects_to_inspect,
    conflict_copy_path,
    plan_restore,
    plan_sync,
    remote_view,
)
from voila_publisher.sync.config import BucketSync
from voila_publisher.sync.job import Job
from voila_publisher.sync.store import Cancelled, ObjectStore, RemoteObject, StoreError, open_store

DOWNLOAD_BLOCK = 1024 * 1024
# A restore's temporary file: hidden, excluded from sync, and short whatever the target's name
# (".{name}.XXXXXXXX.hybrid-restore" made a 255-byte name unrestorable: the limit is 255).
RESTORE_TMP_PREFIX = "."
RESTORE_TMP_SUFFIX = ".hybrid-restore"


class SyncEngine:
    """Syncs ``root`` with ``s3://bucket/prefix`` for one user. One job at a time per engine."""

    def __init__(self, config: BucketSync, root, username: str, store: ObjectStore | None = None):
        self.config = config
        self.root = Path(root)
        self.prefix = config.prefix_for(username)
        self._store = store
        self._store_lock = threading.Lock()
        directory = config.manifest_dir or self.root / ".hybrid-sync"
        self.manifest_file = manifest_path(directory, config.endpoint_url, config.bucket, self.prefix)

    @property
    def store(self) -> ObjectStore:
        # Created on first use and kept: a running server reuses warm connections.
        with self._store_lock:
            if self._store is None:
                self._store = open_store(self.config)
            return self._store

    # -- shared steps ---------------------------------------------------------------------------

    def _list_both(self, selection) -> tuple[LocalListing, dict[str, RemoteObject], list[str]]:
        with ThreadPoolExecutor(1) as pool:
            local_future = pool.submit(list_local, self.root, self.config.all_excludes, selection)
            objects = self.store.list(self.prefix)
            local = local_future.result()
        view = remote_view(objects, self.prefix, self.config.all_excludes, selection)
        return local, view.objects, view.unsafe_keys

    def _survey(self, job: Job, pool, selection, manifest: Manifest):
        """Everything a plan needs: both listings, the manifest, and the missing hashes."""
        local, remote, unsafe = self._list_both(selection)
        known = manifest.snapshot()
        job.update(message="comparing")
        hashes = self._resolve_unknowns(pool, local.files, remote, known)
        return local, remote, unsafe, known, hashes

    def _resolve_unknowns(self, pool, local, remote, manifest) -> dict[str, str]:
        """Read the MD5 metadata of foreign multipart objects and hash unvouched local files;
        then ask the store about 32-hex ETags that differ from the local content (an SSE-KMS
        ETag is no MD5: the content may well be the same)."""
        self._inspect(pool, remote, objects_to_inspect(local, remote, manifest))

        def hash_one(path):
            try:
                return path, file_md5(self.root / path)
            except OSError:
                return path, None  # vanished or unreadable: it will be treated as changed

        hashes = {p: h for p, h in pool.map(hash_one, files_to_hash(local, remote, manifest)) if h}
        self._inspect(pool, remote, objects_to_confirm(local, remote, manifest, hashes))
        return hashes

    def _inspect(self, pool, remote, paths) -> None:
        for path, md5 in zip(paths, pool.map(lambda p: self.store.head_md5(self.prefix + p), paths)):
            obj = remote[path]
            remote[path] = RemoteObject(obj.size, obj.etag, md5.lower() if md5 else None, etag_not_md5=not md5)

    def _run_transfers(self, job: Job, pool, paths, transfer, manifest: Manifest, cancel: threading.Event):
        fatal: StoreError | None = None
        futures = {pool.submit(self._guarded, transfer, p, cancel): p for p in paths}
        for future in as_completed(futures):
            path = futures[future]
            try:
                future.result()
            except Cancelled:
                continue
            except StoreError as e:
                if e.fatal:
                    if fatal is None:
                        fatal = e
                    cancel.set()
                else:
                    job.error(path, e.message)
            except OSError as e:
                job.error(path, f"{e.strerror or e}")
            job.add(files_done=1)
            manifest.save_if_due()
        return fatal

    @staticmethod
    def _guarded(transfer, path, cancel: threading.Event):
        if cancel.is_set():
            raise Cancelled()
        return transfer(path)

    def _fail(self, job: Job, error: StoreError, what: str) -> Job:
        job.error("", error.message)
        job.finish(f"{what} stopped: {error.message}", failed=True, reason=error.reason)
        return job

    def _interrupted(self, job: Job, what: str) -> Job:
        left = job.files_total - job.files_done
        job.finish(f"{what} interrupted with {left} files left for the next {what}", failed=True, reason="interrupted")
        return job

    # -- sync (local -> bucket) -------------------------------------------------------------------

    def sync(self, job: Job, paths: list[str] | None = None, delete: bool = False) -> Job:
        """Upload what changed. Raises PathOutsideRoot before doing anything for a bad path."""
        selection = resolve_selection(self.root, paths)
        manifest = Manifest.load(self.manifest_file)
        cancel = job.cancel_event
        pool = ThreadPoolExecutor(self.config.concurrency, thread_name_prefix="hybrid-sync")
        self._parts = ThreadPoolExecutor(self.config.concurrency, thread_name_prefix="hybrid-sync-part")
        self._multipart = self.store.large_uploader(
            self._parts,
            threading.BoundedSemaphore(self.config.concurrency),
            self.config.multipart_chunksize,
            self.config.multipart_single_pass,
        )
        try:
            try:
                local, remote, _, known, hashes = self._survey(job, pool, selection, manifest)
            except StoreError as e:
                return self._fail(job, e, "sync")
            plan = plan_sync(
                local.files,
                remote,
                known,
                hashes,
                delete=delete,
                listing_complete=not local.errors,
                max_file_size=self.config.max_file_size,
            )
            for path, entry in plan.learned.items():
                manifest.record(path, entry)
            for path, message in local.errors:
                job.error(path, f"not readable, not synced: {message}")
            for path in plan.too_large:
                job.error(path, f"larger than c.BucketSync.max_file_size ({self.config.max_file_size} bytes), not synced")
            job.update(
                files_total=len(plan.transfer) + len(plan.delete),
                bytes_total=sum(local.files[p].size for p in plan.transfer),
                skipped=len(plan.skip),
                conflicts=list(plan.conflicts),
                message=f"uploading {len(plan.transfer)} files",
            )
            fatal = self._run_transfers(
                job, pool, plan.transfer, lambda p: self._upload(job, p, manifest), manifest, cancel
            )
            if fatal is None and not cancel.is_set() and plan.delete:
                job.update(message=f"deleting {len(plan.delete)} remote files")
                fatal = self._run_transfers(job, pool, plan.delete, lambda p: self._delete(job, p, manifest), manifest, cancel)
            if fatal is not None:
                return self._fail(job, fatal, "sync")
            if cancel.is_set():
                return self._interrupted(job, "sync")
            if delete and local.errors:
                job.error("", "some local files could not be read, so no remote file was deleted")
            job.finish(self._summary(job, "uploaded"))
            return job
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
            self._parts.shutdown(wait=True, cancel_futures=True)
            manifest.save()

    def _upload(self, job: Job, path: str, manifest: Manifest) -> None:
        abs_path = self.root / path
        key = self.prefix + path
        before = os.stat(abs_path)
        if before.st_size >= self.config.multipart_threshold:
            md5, etag = self._multipart.upload(job, abs_path, key)
        else:
            with open(abs_path, "rb") as f:
                data = f.read()
            digest = hashlib.md5(data).digest()
            md5 = digest.hex()
            etag = self.store.put(key, data, digest)  # verified by the store (Content-MD5)
            job.add(bytes_done=len(data))
        job.add(uploaded=1)
        after = LocalFile.of(os.stat(abs_path))
        if after == LocalFile.of(before):
            manifest.record(path, ManifestEntry(after.size, after.mtime_ns, md5, etag, after.ctime_ns, after.ino))
        else:
            manifest.forget(path)  # changed while it was sent: the next sync looks at it again

    def _delete(self, job: Job, path: str, manifest: Manifest) -> None:
        self.store.delete(self.prefix + path)
        manifest.forget(path)
        job.add(deleted=1)

    # -- restore (bucket -> local) ------------------------------------------------------------------

    def restore(
        self, job: Job, paths: list[str] | None = None, overwrite: bool = False, keep_conflict_copies: bool = False
    ) -> Job:
        """Download the bucket's files; a local file that would be lost is reported as a conflict.

        With ``keep_conflict_copies`` the bucket's version of each conflict is also written beside
        the local file (:func:`conflict_copy_path`), so nothing of either side is out of reach.
        """
        selection = resolve_selection(self.root, paths)
        manifest = Manifest.load(self.manifest_file)
        cancel = job.cancel_event
        pool = ThreadPoolExecutor(self.config.concurrency, thread_name_prefix="hybrid-restore")
        try:
            try:
                local, remote, unsafe, known, hashes = self._survey(job, pool, selection, manifest)
            except StoreError as e:
                return self._fail(job, e, "restore")
            for key in unsafe:
                job.error(key, "object key would land outside the notebook root; not restored")
            plan = plan_restore(local.files, remote, known, hashes, overwrite=overwrite)
            for path, entry in plan.learned.items():
                manifest.record(path, entry)
            copies = self._conflict_copies(plan.conflicts, remote, local.files) if keep_conflict_copies else {}
            job.update(
                files_total=len(plan.transfer) + len(copies),
                bytes_total=sum(remote[p].size for p in plan.transfer) + sum(remote[p].size for p in copies.values()),
                skipped=len(plan.skip),
                conflicts=list(plan.conflicts),
                message=f"downloading {len(plan.transfer)} files",
            )
            fatal = self._run_transfers(
                job,
                pool,
                plan.transfer,
                lambda p: self._download(job, p, remote[p], local.files.get(p), overwrite, manifest),
                manifest,
                cancel,
            )
            if fatal is None and copies and not cancel.is_set():
                fatal = self._run_transfers(
                    job, pool, sorted(copies),
                    lambda c: self._download_copy(job, copies[c], c, remote[copies[c]]), manifest, cancel,
                )
            if fatal is not None:
                return self._fail(job, fatal, "restore")
            if cancel.is_set():
                return self._interrupted(job, "restore")
            job.finish(self._summary(job, "downloaded"))
            return job
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
            manifest.save()

    @staticmethod
    def _conflict_copies(conflicts, remote, local_files) -> dict[str, str]:
        """copy path -> conflicting path, for the copies not already on disk (same version, same name)."""
        copies = {}
        for path in conflicts:
            copy = conflict_copy_path(path, remote[path].etag)
            if copy not in local_files and copy not in remote:
                copies[copy] = path
        return copies

    def _download_copy(self, job: Job, path: str, copy: str, obj: RemoteObject) -> None:
        """The bucket's version of ``path`` written to ``copy``, never over an existing file."""
        target = self.root / copy
        tmp, _md5, _etag = self._fetch_verified(job, path, obj, target)
        try:
            os.link(tmp, target)  # fails if the name appeared meanwhile: theirs stays
        except FileExistsError:
            return
        finally:
            os.unlink(tmp)
        job.conflict_copy(path, copy)
        job.add(downloaded=1)

    def _download(self, job: Job, path: str, obj: RemoteObject, listed, overwrite: bool, manifest: Manifest) -> None:
        target = self.root / path
        tmp, md5, etag = self._fetch_verified(job, path, obj, target)
        try:
            if not overwrite and self._changed_since_listing(target, listed):
                job.conflict(path)
                return  # someone wrote the file while it downloaded: keep theirs
            os.replace(tmp, target)
            tmp = None
            st = LocalFile.of(os.stat(target))
            manifest.record(path, ManifestEntry(st.size, st.mtime_ns, md5, etag, st.ctime_ns, st.ino))
            job.add(downloaded=1)
        finally:
            if tmp is not None and os.path.exists(tmp):
                os.unlink(tmp)

    def _fetch_verified(self, job: Job, path: str, obj: RemoteObject, target: Path) -> tuple[str, str, str]:
        """Download ``path`` into a hidden temporary file beside ``target`` and check its MD5.

        Returns (temporary file, md5, etag); the caller moves the file into place or removes it.
        """
        if not is_within(os.path.realpath(self.root), os.path.realpath(target.parent)):
            raise StoreError("outside-root", f"{path}: its directory is a link out of the notebook root; not restored")
        target.parent.mkdir(parents=True, exist_ok=True)
        resp = self.store.get(self.prefix + path)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=RESTORE_TMP_PREFIX, suffix=RESTORE_TMP_SUFFIX)
        try:
            digest = hashlib.md5()
            with os.fdopen(fd, "wb") as f:
                try:
                    for block in resp.stream(DOWNLOAD_BLOCK):
                        f.write(block)
                        digest.update(block)
                        job.add(bytes_done=len(block))
                finally:
                    resp.release_conn()
            md5 = digest.hexdigest()
            etag = (resp.headers.get("ETag") or obj.etag).strip('"').lower()
            etag_md5 = etag if is_plain_md5_etag(etag) and etag_is_digest(resp.headers) and not obj.etag_not_md5 else ""
            expected = (resp.headers.get("x-amz-meta-md5") or obj.md5 or etag_md5).lower()
            if expected and md5 != expected:
                raise StoreError("checksum-mismatch", f"{path}: downloaded content has MD5 {md5}, the bucket says {expected}")
        except BaseException:
            os.unlink(tmp)
            raise
        return tmp, md5, etag

    @staticmethod
    def _changed_since_listing(target: Path, listed) -> bool:
        try:
            st = os.stat(target)
        except FileNotFoundError:
            return False
        return listed is None or LocalFile.of(st) != listed

    @staticmethod
    def _summary(job: Job, verb: str) -> str:
        snap = job.to_json()
        parts = [f"{snap[verb]} {verb}", f"{snap['skipped']} unchanged"]
        if snap["deleted"]:
            parts.append(f"{snap['deleted']} deleted")
        if snap["conflicts"]:
            parts.append(f"{len(snap['conflicts'])} conflicts left untouched")
        if snap["conflict_copies"]:
            parts.append(f"{len(snap['conflict_copies'])} bucket copies kept beside them")
        if snap["errors"]:
            parts.append(f"{len(snap['errors'])} errors")
        return ", ".join(parts)
