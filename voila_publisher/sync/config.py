"""``c.BucketSync``: where and how the notebook tree is synced (shared by the server and the CLI).

Defaults come from the ``HYBRID_*`` environment variables that the hub hands to the node
(see docs/contracts.md), so a spawned server needs no configuration file of its own.
"""

from __future__ import annotations

import os

from traitlets import Bool, Float, Int, List, Unicode, default
from traitlets.config import Configurable

MiB = 1024 * 1024

DEFAULT_EXCLUDES = [".ipynb_checkpoints", "__pycache__", ".*"]


class BucketSync(Configurable):
    """Options of the notebook-to-bucket sync."""

    bucket = Unicode(
        help="""S3 bucket that receives the notebooks. Empty disables sync (the Lab button then
        explains that this must be set). Default: $HYBRID_SYNC_BUCKET.""",
    ).tag(config=True)

    @default("bucket")
    def _bucket_default(self):
        return os.environ.get("HYBRID_SYNC_BUCKET", "")

    prefix_template = Unicode(
        help="""Key prefix of a user's files in the bucket; ``{username}`` is replaced by the
        JupyterHub user name (or the local user outside a hub). Must end with "/".
        Default: $HYBRID_SYNC_PREFIX or "users/{username}/".""",
    ).tag(config=True)

    @default("prefix_template")
    def _prefix_default(self):
        return os.environ.get("HYBRID_SYNC_PREFIX") or "users/{username}/"

    endpoint_url = Unicode(
        help="""URL of an S3-compatible store (Ceph RGW, SeaweedFS, MinIO). Leave empty for AWS S3.
        Default: $HYBRID_S3_ENDPOINT_URL.""",
    ).tag(config=True)

    @default("endpoint_url")
    def _endpoint_default(self):
        return os.environ.get("HYBRID_S3_ENDPOINT_URL", "")

    region = Unicode(
        help="""Region of the bucket. Default: $HYBRID_S3_REGION, else $AWS_DEFAULT_REGION, else us-east-1.
        Credentials come from credentials_file on a spawned node, else from the boto3 chain.""",
    ).tag(config=True)

    @default("region")
    def _region_default(self):
        return os.environ.get("HYBRID_S3_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"

    credentials_file = Unicode(
        help="""JSON file with this user's bucket credentials, rewritten by the node agent before
        they expire and re-read by every sync (docs/security.md). Set by the hub on spawned nodes;
        empty uses the standard boto3 chain (a laptop's own profile, say).
        Default: $HYBRID_S3_CREDENTIALS_FILE.""",
    ).tag(config=True)

    @default("credentials_file")
    def _credentials_file_default(self):
        return os.environ.get("HYBRID_S3_CREDENTIALS_FILE", "")

    concurrency = Int(
        32,
        help="""Files (and parts of large files) transferred at the same time. Also the size of
        the shared HTTP connection pool. Small files are latency-bound: 16-64 is a good range.""",
    ).tag(config=True)

    multipart_threshold = Int(
        16 * MiB,
        help="Files of at least this many bytes are uploaded in parts (multipart upload).",
    ).tag(config=True)

    multipart_chunksize = Int(
        8 * MiB,
        help="Size of one part of a multipart upload (S3 needs at least 5 MiB, at most 10,000 parts).",
    ).tag(config=True)

    multipart_single_pass = Bool(
        False,
        help="""Read and hash a large file once, while its parts are sent, then attach its MD5 to
        the finished object with an in-place metadata copy (conditional on its ETag). Off by
        default: the default hashes the file first, so the MD5 is set when the upload is created
        and no object is ever visible without it, and AWS S3 needs no server-side copy. Turn it
        on for SeaweedFS/MinIO-like stores, where that copy rewrites only metadata and a large
        file is then read once instead of twice. Files over 5 GiB are always hashed first (S3's
        copy limit).""",
    ).tag(config=True)

    excludes = List(
        Unicode(),
        help="""Glob patterns of files and directories that are never synced, matched against
        every path component and against the whole relative path. Added to the built-in ones
        (.ipynb_checkpoints, __pycache__ and hidden names starting with ".").""",
    ).tag(config=True)

    max_file_size = Int(
        5 * 1024 * MiB,
        help="Files larger than this (bytes) are not uploaded and are reported as errors. 0 means no limit.",
    ).tag(config=True)

    max_attempts = Int(
        4,
        help="Attempts per request before a transfer is given up (throttling, 5xx and network errors are retried with backoff).",
    ).tag(config=True)

    periodic_interval = Float(
        0.0,
        help="Seconds between automatic background syncs while the server runs. 0 (default) turns them off.",
    ).tag(config=True)

    sync_on_stop = Bool(
        True,
        help="Run a final sync when the server is stopping (culler, hub stop, spot interruption).",
    ).tag(config=True)

    final_sync_timeout = Float(
        20.0,
        help="""Seconds the final sync at server stop may take before the server stops anyway.
        Keep it below the spawner's stop timeout so the sync is not killed half-way (nothing is
        lost then either: partial uploads are never visible).""",
    ).tag(config=True)

    manifest_dir = Unicode(
        "",
        help="""Directory of the last-sync manifest, which lets a resync skip re-hashing unchanged
        files. Default: ".hybrid-sync" under the notebook root (a hidden name, so never synced).""",
    ).tag(config=True)

    @property
    def all_excludes(self) -> list[str]:
        return DEFAULT_EXCLUDES + list(self.excludes)

    def missing(self) -> str | None:
        """What the admin still has to set for sync to work, or None when configured."""
        if not self.bucket:
            return "c.BucketSync.bucket (or $HYBRID_SYNC_BUCKET) is not set: ask your admin to configure a bucket"
        if "{username}" not in self.prefix_template and not self.prefix_template.strip("/"):
            return "c.BucketSync.prefix_template (or $HYBRID_SYNC_PREFIX) must name a per-user prefix"
        return None

    def prefix_for(self, username: str) -> str:
        prefix = self.prefix_template.format(username=username)
        prefix = prefix.lstrip("/")
        if prefix and not prefix.endswith("/"):
            prefix += "/"
        return prefix
