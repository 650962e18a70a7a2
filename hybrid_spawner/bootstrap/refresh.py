"""Refresh secrets: how a running node asks the hub for its user's next bucket credentials.

At spawn the hub hands the node a refresh secret with the first credentials (in the bootstrap
redemption, never in user-data); the hub keeps only its hash, in memory and in the spawner's
state, so a hub restart (``cleanup_servers = False``) keeps refreshes working. The secret is
bound to one spawner: it yields credentials for that spawner's user and nobody else, and dies
when the server stops. A node may refresh at most once per ``MIN_INTERVAL`` seconds, so a
misbehaving node cannot turn the hub into an STS hammer.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from dataclasses import dataclass
from typing import Awaitable, Callable

from hybrid_spawner.bootstrap.credentials import CredentialRejected


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


class RefreshTooSoon(Exception):
    """A refresh within MIN_INTERVAL of the last one; the node retries later."""


@dataclass
class _Refresher:
    label: str
    fetch: Callable[[], Awaitable[dict]]
    last: float = float("-inf")


class RefreshRegistry:
    MIN_INTERVAL = 5.0

    def __init__(self, clock: Callable[[], float] = time.monotonic):
        self._clock = clock
        self._by_hash: dict[str, _Refresher] = {}

    def issue(self, label: str, fetch: Callable[[], Awaitable[dict]]) -> tuple[str, str]:
        """A new refresh secret for one spawner; returns (secret, its hash). Show the secret once."""
        secret = secrets.token_urlsafe(32)
        hashed = digest(secret)
        self._by_hash[hashed] = _Refresher(label, fetch)
        return secret, hashed

    def restore(self, hashed: str, label: str, fetch: Callable[[], Awaitable[dict]]) -> None:
        """Re-register a hash kept in the spawner's state (after a hub restart)."""
        if hashed:
            self._by_hash.setdefault(hashed, _Refresher(label, fetch))

    def forget(self, hashed: str | None) -> None:
        if hashed:
            self._by_hash.pop(hashed, None)

    async def refresh(self, secret) -> tuple[str, dict]:
        """(label, the fetch's answer) for a known secret. Raises CredentialRejected or RefreshTooSoon."""
        if not isinstance(secret, str) or not secret:
            raise CredentialRejected("missing refresh secret")
        entry = self._by_hash.get(digest(secret))
        if entry is None:
            raise CredentialRejected("unknown or revoked refresh secret")
        now = self._clock()
        if now - entry.last < self.MIN_INTERVAL:
            raise RefreshTooSoon(entry.label)
        entry.last = now
        return entry.label, await entry.fetch()

    def __len__(self) -> int:
        return len(self._by_hash)


#: The hub process's registry; the refresh endpoint and every spawner use this one.
registry = RefreshRegistry()
