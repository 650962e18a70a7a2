"""Credentials from a file that the node agent rewrites: a sync picks up new ones without a restart.

On a spawned node the hub's issuer (hybrid_spawner.bucket_credentials) hands the node agent
credentials that reach only this user's prefix, and the agent replaces the file
(``$HYBRID_S3_CREDENTIALS_FILE``, JSON with AccessKeyId, SecretAccessKey, SessionToken and an ISO
8601 Expiration or null) well before they expire. Every signed request asks :meth:`frozen`, which
re-reads the file only when it changed (one ``stat`` per request, ~1 µs), so a sync that runs
across a refresh signs its later requests with the new credentials.

Credentials past their expiry are never used: the request fails with a fatal, clear error
instead of an AccessDenied that would look like a policy problem.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import threading
import time
from typing import Callable, NamedTuple

from voila_publisher.sync.store import StoreError


class Frozen(NamedTuple):
    """The same fields as botocore's ReadOnlyCredentials, which S3Store signs with."""

    access_key: str
    secret_key: str
    token: str | None


class FileCredentials:
    """The credentials in ``path``; thread-safe (one instance serves every transfer thread)."""

    def __init__(self, path: str, clock: Callable[[], float] = time.time):
        self.path = path
        self._clock = clock
        self._lock = threading.Lock()
        self._stamp = None
        self._frozen: Frozen | None = None
        self._expires_at: float | None = None

    def frozen(self) -> Frozen:
        """Current credentials; re-reads the file if it was replaced. Raises a fatal StoreError."""
        with self._lock:
            self._reload_if_changed()
            if self._expires_at is not None and self._clock() >= self._expires_at:
                raise StoreError(
                    "expired-credentials",
                    f"the bucket credentials in {self.path} expired and were not renewed: the node "
                    "could not reach the hub's refresh endpoint; restart the server if this persists",
                    fatal=True,
                )
            return self._frozen

    def reload(self) -> bool:
        """Re-read the file if it changed since the last read; True if it did."""
        with self._lock:
            return self._reload_if_changed()

    def _reload_if_changed(self) -> bool:
        try:
            st = os.stat(self.path)
        except OSError as e:
            raise StoreError(
                "no-credentials",
                f"cannot read the bucket credentials file {self.path} ($HYBRID_S3_CREDENTIALS_FILE): {e.strerror}",
                fatal=True,
            ) from None
        stamp = (st.st_ino, st.st_mtime_ns, st.st_size)
        if stamp == self._stamp:
            return False
        try:
            with open(self.path) as f:
                data = json.load(f)
            frozen = Frozen(data["AccessKeyId"], data["SecretAccessKey"], data.get("SessionToken") or None)
            expiration = data.get("Expiration")
            expires_at = dt.datetime.fromisoformat(expiration.replace("Z", "+00:00")).timestamp() if expiration else None
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            raise StoreError(
                "bad-credentials-file",
                f"the bucket credentials file {self.path} is not the JSON the node agent writes",
                fatal=True,
            ) from None
        self._stamp, self._frozen, self._expires_at = stamp, frozen, expires_at
        return True
