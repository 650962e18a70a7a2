"""Multipart uploads of large files: verified, never half-visible, a changed file refused.

Two ways, chosen by ``c.BucketSync.multipart_single_pass``:
- single pass: the file is read once; each part feeds the whole-file MD5 and is hashed and
  sent on a part thread; the MD5 is attached as metadata after completion (S3 fixes metadata
  at creation, before the MD5 is known) by an in-place copy conditional on the ETag;
- hashed first: MD5s first, then the parts are read again and sent with the MD5 metadata set
  at creation (for AWS S3, where that copy would be a server-side copy, and files over 5 GiB).
"""

from __future__ import annotations

import hashlib
import os
import threading
from concurrent.futures import ThreadPoolExecutor, wait
from pathlib import Path
from typing import TYPE_CHECKING

from voila_publisher.sync.hashing import file_md5, multipart_etag, part_plan, range_md5, read_parts
from voila_publisher.sync.job import Job
from voila_publisher.sync.listing import LocalFile
from voila_publisher.sync.store import Cancelled, StoreError

if TYPE_CHECKING:
    from voila_publisher.sync.s3.client import S3Store

# S3 copies objects of at most 5 GiB in one request; larger files take the hash-first path.
SINGLE_PASS_LIMIT = 5 * 1024**3


def changed_error(key: str) -> StoreError:
    return StoreError("changed-during-sync", f"{key}: the file changed while it was read; the next sync sends it")


class MultipartUploader:
    """Uploads one large file at a time per caller; shares the part threads and memory slots of a sync."""

    def __init__(
        self, store: "S3Store", parts: ThreadPoolExecutor, slots: threading.Semaphore, chunksize: int, single_pass: bool
    ):
        self.store = store
        self.parts = parts
        # Parts read but not yet sent, across all files: bounds memory to slots x chunksize.
        self.slots = slots
        self.chunksize = chunksize
        self.single_pass = single_pass

    def upload(self, job: Job, abs_path: Path, key: str) -> tuple[str, str]:
        chunk = max(5 * 1024 * 1024, self.chunksize)
        before = os.stat(abs_path)
        if self.single_pass and before.st_size <= SINGLE_PASS_LIMIT:
            return self._single_pass(job, abs_path, key, chunk, before)
        return self._hashed_first(job, abs_path, key, chunk, before)

    def _single_pass(self, job: Job, abs_path: Path, key: str, chunk: int, before) -> tuple[str, str]:
        """One sequential read: each part feeds the whole-file MD5 here and is hashed and sent on
        a part thread. The object is completed only if the file did not change while it was
        read, and gets its MD5 metadata afterwards, conditional on its ETag."""
        upload_id = self.store.create_multipart(key)
        whole = hashlib.md5()
        failed = threading.Event()
        futures = []

        def send(number: int, data: bytes) -> tuple[bytes, str]:
            try:
                digest = hashlib.md5(data).digest()
                etag = self.store.upload_part(key, upload_id, number, data, digest)
                job.add(bytes_done=len(data))
                return digest, etag
            except BaseException:
                failed.set()
                raise
            finally:
                self.slots.release()

        try:
            with open(abs_path, "rb") as f:
                parts = read_parts(f, before.st_size, chunk)
                while True:
                    self.slots.acquire()  # before the read: memory stays bounded
                    data = None
                    try:
                        if not (failed.is_set() or job.cancel_event.is_set()):
                            data = next(parts, None)
                    finally:
                        if data is None:
                            self.slots.release()
                    if data is None:
                        break
                    whole.update(data)
                    futures.append(self.parts.submit(send, len(futures) + 1, data))
            sent = [future.result() for future in futures]  # raises the first part failure
            if job.cancel_event.is_set() and len(sent) < len(part_plan(before.st_size, chunk)):
                raise Cancelled()
            if LocalFile.of(os.stat(abs_path)) != LocalFile.of(before):
                raise changed_error(key)
            expected = multipart_etag([d for d, _ in sent])
            etag = self.store.complete_multipart(key, upload_id, [e for _, e in sent], expected)
        except BaseException as e:
            wait(futures)  # no part may land after the abort
            try:
                self.store.abort_multipart(key, upload_id)
            except StoreError:
                pass  # the store expires abandoned uploads; nothing partial is visible either way
            if isinstance(e, EOFError):
                raise changed_error(key) from None
            raise
        md5 = whole.hexdigest()
        try:
            # Both calls verify the ETag the store answers wherever it is derived from the content.
            final_etag = self.store.set_md5(key, etag, md5)
        except StoreError as e:
            if e.status == 412 or e.reason == "PreconditionFailed":
                raise StoreError(
                    "replaced-during-sync", f"{key}: another writer replaced the object while it was uploaded; theirs is kept"
                ) from None
            raise
        return md5, final_etag

    def _hashed_first(self, job: Job, abs_path: Path, key: str, chunk: int, before) -> tuple[str, str]:
        # The whole-file MD5 (stored as metadata) is one sequential pass; the part MD5s run
        # beside it on the other threads, so the two passes cost about one on two cores.
        whole = self.parts.submit(file_md5, abs_path)
        offsets = range(0, max(before.st_size, 1), chunk)
        part_digests = list(self.parts.map(lambda offset: range_md5(abs_path, offset, chunk), offsets))
        md5 = whole.result()
        if LocalFile.of(os.stat(abs_path)) != LocalFile.of(before):
            raise changed_error(key)
        upload_id = self.store.create_multipart(key, md5)
        try:

            def send(number: int) -> str:
                with open(abs_path, "rb") as f:
                    f.seek((number - 1) * chunk)
                    data = f.read(chunk)
                # The server checks each part against the digest taken before: a file that
                # changed since is rejected rather than stored as a mix of two versions.
                etag = self.store.upload_part(key, upload_id, number, data, part_digests[number - 1])
                job.add(bytes_done=len(data))
                return etag

            part_etags = list(self.parts.map(send, range(1, len(part_digests) + 1)))
            etag = self.store.complete_multipart(key, upload_id, part_etags, multipart_etag(part_digests))
        except BaseException:
            try:
                self.store.abort_multipart(key, upload_id)
            except StoreError:
                pass  # the store expires abandoned uploads; nothing partial is visible either way
            raise
        return md5, etag
