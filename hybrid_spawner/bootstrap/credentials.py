"""Single-use, expiring bootstrap credentials: the hub keeps only their hashes.

A credential is single-use and expires (``ttl``); a replayed, expired or unknown credential is
refused with a reason that names the spawner, never the secret. The report secret handed out at
redemption is scoped to that one spawner and also works once. The flow is drawn in
:mod:`hybrid_spawner.bootstrap`.

Resume keys: a node that can be resumed with its disk but not given new user-data (an OpenStack
server unshelved: Nova keeps the user-data it was created with, whose credential is spent) gets
a *resume key* at each redemption and keeps it on its own disk. To resume it, the spawner issues
a fresh credential as for any start and *arms* it under the key's hash; the booting node trades
the key for that credential's answer, once, and gets a new key. The hub keeps only hashes.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import secrets
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from hybrid_spawner.bootstrap.progress import validate_restore_progress

log = logging.getLogger("JupyterHub")


class CredentialRejected(Exception):
    """A credential or report secret the hub will not honour; ``reason`` is safe to log."""

    def __init__(self, reason: str, label: str = "?"):
        super().__init__(reason)
        self.reason = reason
        self.label = label


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def validate_port(value: Any) -> int:
    """The only thing a node may tell the hub: a TCP port, as a JSON integer in 1..65535."""
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 65535:
        raise ValueError("port must be an integer between 1 and 65535")
    return value


@dataclass
class NodeBootstrap:
    """The hub-side record of one node's bootstrap.

    ``payload`` is called at redemption (not before: the API token may be minted late) and
    returns ``{"environment": {...}, "command": [...], "port": int}``. ``label`` names the
    spawner in log lines. The caller awaits :meth:`wait_redeemed` / :meth:`wait_port` and must
    call :meth:`close` when the spawn ends, however it ends.
    """

    label: str
    payload: Callable[[], dict]
    expires_at: float
    registry: "BootstrapRegistry"
    credential_hash: str = ""
    report_hash: str | None = None
    redeemed: asyncio.Event = field(default_factory=asyncio.Event)
    port: asyncio.Future = field(default_factory=lambda: asyncio.get_event_loop().create_future())
    # Called with each validated restore-progress report (restore_on_start), until the port.
    on_progress: Callable[[dict], None] | None = None
    # A resumable node gets a resume key at redemption; the spawner keeps this hash of it.
    resumable: bool = False
    resume_hash: str | None = None

    async def wait_redeemed(self) -> None:
        await self.redeemed.wait()

    async def wait_port(self) -> int:
        return await asyncio.shield(self.port)

    def close(self) -> None:
        """Forget both secrets; any later use gets 403."""
        self.registry._forget(self)
        if not self.port.done():
            self.port.cancel()


class BootstrapRegistry:
    """Hub-process memory of pending bootstraps, keyed by secret hashes (never the secrets)."""

    # How many spent credential hashes to remember, so that a replay is logged as a replay.
    SPENT_MEMORY = 4096

    def __init__(self, clock: Callable[[], float] = time.monotonic):
        self._clock = clock
        self._by_credential: dict[str, NodeBootstrap] = {}
        self._by_report: dict[str, NodeBootstrap] = {}
        self._spent: dict[str, str] = {}
        self._armed: dict[str, tuple[NodeBootstrap, str]] = {}  # resume-key hash -> (entry, credential)

    def issue(self, label: str, payload: Callable[[], dict], ttl: float) -> tuple[NodeBootstrap, str]:
        """Create a bootstrap; returns it and the credential (shown once, to put in the script)."""
        credential = secrets.token_urlsafe(32)
        entry = NodeBootstrap(label=label, payload=payload, expires_at=self._clock() + ttl, registry=self)
        entry.credential_hash = _digest(credential)
        self._by_credential[entry.credential_hash] = entry
        return entry, credential

    def redeem(self, credential: Any) -> dict:
        """Trade a credential for the node's configuration, once. Raises CredentialRejected."""
        if not isinstance(credential, str) or not credential:
            raise CredentialRejected("missing credential")
        digest = _digest(credential)
        entry = self._by_credential.pop(digest, None)
        if entry is None:
            label = self._spent.get(digest)
            if label is not None:
                raise CredentialRejected("replayed credential", label)
            raise CredentialRejected("unknown credential")
        self._remember_spent(digest, entry.label)
        if self._clock() > entry.expires_at:
            raise CredentialRejected("expired credential", entry.label)
        answer = dict(entry.payload())
        report_secret = secrets.token_urlsafe(32)
        entry.report_hash = _digest(report_secret)
        self._by_report[entry.report_hash] = entry
        entry.redeemed.set()
        answer["report_secret"] = report_secret
        if entry.resumable:
            resume_key = secrets.token_urlsafe(32)
            entry.resume_hash = _digest(resume_key)
            answer["resume_key"] = resume_key
        return answer

    def arm_resume(self, resume_hash: str, entry: NodeBootstrap, credential: str) -> None:
        """Let the node holding the key of ``resume_hash`` redeem ``credential`` (once)."""
        self._armed[resume_hash] = (entry, credential)

    def disarm(self, resume_hash: str) -> None:
        self._armed.pop(resume_hash, None)

    def redeem_resume(self, resume_key: Any) -> dict:
        """A resumed node trades its resume key for the fresh credential armed for it, once."""
        if not isinstance(resume_key, str) or not resume_key:
            raise CredentialRejected("missing resume key")
        armed = self._armed.pop(_digest(resume_key), None)
        if armed is None:
            raise CredentialRejected("unknown, spent or unarmed resume key")
        return self.redeem(armed[1])

    def report_port(self, secret: Any, port: Any) -> tuple[NodeBootstrap, int]:
        """Accept the node's port once. Raises CredentialRejected or ValueError (bad port)."""
        if not isinstance(secret, str) or not secret:
            raise CredentialRejected("missing report secret")
        entry = self._by_report.get(_digest(secret))
        if entry is None:
            raise CredentialRejected("unknown or spent report secret")
        port = validate_port(port)
        del self._by_report[entry.report_hash]
        if not entry.port.done():
            entry.port.set_result(port)
        return entry, port

    def report_progress(self, secret: Any, progress: Any) -> NodeBootstrap:
        """Pass a restore-progress report on; the report secret stays valid for the port.

        Raises CredentialRejected or ValueError (a malformed report).
        """
        if not isinstance(secret, str) or not secret:
            raise CredentialRejected("missing report secret")
        entry = self._by_report.get(_digest(secret))
        if entry is None:
            raise CredentialRejected("unknown or spent report secret")
        clean = validate_restore_progress(progress)
        if entry.on_progress is not None:
            entry.on_progress(clean)
        return entry

    def _remember_spent(self, digest: str, label: str) -> None:
        self._spent[digest] = label
        while len(self._spent) > self.SPENT_MEMORY:
            self._spent.pop(next(iter(self._spent)))

    def _forget(self, entry: NodeBootstrap) -> None:
        if self._by_credential.get(entry.credential_hash) is entry:
            del self._by_credential[entry.credential_hash]
            self._remember_spent(entry.credential_hash, entry.label)
        if entry.report_hash and self._by_report.get(entry.report_hash) is entry:
            del self._by_report[entry.report_hash]
        for key, (armed, _credential) in list(self._armed.items()):
            if armed is entry:
                del self._armed[key]

    def pending_count(self) -> int:
        return len(self._by_credential) + len(self._by_report)


#: The hub process's registry; the hub handlers and every spawner use this one.
registry = BootstrapRegistry()
