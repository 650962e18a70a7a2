"""What the sync engine needs from an object store, and nothing about S3.

The engine (:mod:`voila_publisher.sync.engine`) talks to an :class:`ObjectStore`; the S3
implementation is :class:`voila_publisher.sync.s3.client.S3Store`, the only code that speaks S3.
A second target (GCS, Azure Blob, a WebDAV share) implements this protocol in a room beside
``s3/`` and one branch of :func:`open_store`; the planner and the engine stay as they are.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    import threading
    from concurrent.futures import ThreadPoolExecutor

    from voila_publisher.sync.config import BucketSync
    from voila_publisher.sync.job import Job


@dataclass(frozen=True)
class RemoteObject:
    size: int
    etag: str  # lower-case, without quotes
    md5: str | None = None  # content MD5 when known beyond the ETag (object metadata)
    # Set once the store said this object's ETag is not its MD5 (SSE-KMS, SSE-C) and no
    # stored MD5 exists: a 32-hex ETag must then not be compared with local content.
    etag_not_md5: bool = False


class StoreError(Exception):
    """A request failed. ``fatal`` errors (bucket, credentials, endpoint) stop the whole job."""

    def __init__(self, reason: str, message: str, *, fatal: bool = False, status: int | None = None):
        super().__init__(message)
        self.reason = reason
        self.message = message
        self.fatal = fatal
        self.status = status


class Cancelled(Exception):
    """The job was stopped (a fatal store error, or the server shutting down) before this transfer began."""


class LargeUploader(Protocol):
    def upload(self, job: "Job", abs_path: Path, key: str) -> tuple[str, str]:
        """Upload one large file, verified and never half-visible; returns (content MD5, ETag)."""


class ObjectStore(Protocol):
    """One bucket (or container) of one account; every method blocks and is thread-safe."""

    def where(self) -> str:
        """``s3://bucket`` (plus the endpoint when not the default) for messages."""

    def list(self, prefix: str) -> dict[str, RemoteObject]:
        """Every object under ``prefix``, keyed by the full key."""

    def head_md5(self, key: str) -> str | None:
        """The content MD5 of ``key``: stored with it, or its ETag where that is the MD5; None
        when the store cannot tell (or the object is gone)."""

    def put(self, key: str, data: bytes, md5_digest: bytes) -> str:
        """Store ``data`` whole; the store checks ``md5_digest`` (StoreError "checksum-mismatch"
        otherwise). Returns the ETag, which need not be the MD5 (encrypted buckets)."""

    def get(self, key: str):
        """A streaming response with ``headers``, ``stream(n)`` and ``release_conn()``."""

    def delete(self, key: str) -> None: ...

    def large_uploader(
        self, parts: "ThreadPoolExecutor", slots: "threading.Semaphore", chunksize: int, single_pass: bool
    ) -> LargeUploader:
        """The uploader for files above the multipart threshold, sharing a sync's part threads
        and memory slots."""

    def close(self) -> None: ...


def open_store(config: "BucketSync") -> ObjectStore:
    """The store a ``c.BucketSync`` configuration names (S3 and S3-compatible stores today)."""
    from voila_publisher.sync.s3.client import S3Store
    from voila_publisher.sync.s3.credentials import FileCredentials

    return S3Store(
        config.bucket,
        endpoint_url=config.endpoint_url,
        region=config.region,
        pool_size=config.concurrency,
        max_attempts=config.max_attempts,
        credentials=FileCredentials(config.credentials_file) if config.credentials_file else None,
    )
