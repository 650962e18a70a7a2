"""Hub side of spot interruption notices: the node's secret to report one, the check of what it
reports, and the sentence the researcher reads at the next spawn.

A spot server's node (bootstrap/spot_watch.py) reports AWS's interruption notice to
``POST /hub/api/hybrid/interruption`` with a notice secret handed out in the bootstrap answer
(never in user-data). Like the refresh secret (refresh.py), the hub keeps only its hash, in memory
and in the spawner's state, so a hub restarted between the notice and the reclaim still takes the
node's later report. The node sends a time, a state and numbers; the hub writes the sentence, so
a node cannot put text of its own on anyone's page.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from typing import Any, Callable

from hybrid_spawner.bootstrap.credentials import CredentialRejected
from voila_publisher.notices.notice import validate_notice as shared_validate

MAX_REPORTS = 20  # per secret: a node reports a notice twice (at once, after the sync)


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def validate_notice(raw: Any) -> dict:
    """The interruption notice a node may report, checked field by field (ValueError otherwise).
    Its shape is the one the node also posts to its server, defined in one place."""
    notice = shared_validate(raw)
    if notice["kind"] != "interruption":
        raise ValueError("the hub takes interruption notices only")
    return notice


def _clock(iso: str) -> str:
    return f"{iso[11:16]} UTC"


def stop_reason(notice: dict) -> str:
    """Why the server ended, for ``last_stop_message`` (after "instance i-... was")."""
    sync = notice["sync"]
    verb = {"terminate": "reclaimed", "stop": "stopped", "hibernate": "hibernated"}[notice["action"]]
    head = f"{verb} by AWS (spot interruption) at {_clock(notice['time'])}"
    files = "1 file" if sync["files"] == 1 else f"{sync['files']:,} files"
    if sync["state"] == "done":
        tail = f"your notebooks were synced to the bucket at {_clock(sync['finished'] or notice['time'])} ({files})"
    elif sync["state"] == "error":
        errors = "1 file" if sync["errors"] == 1 else f"{sync['errors']:,} files"
        tail = f"the final sync left {files} in the bucket; {errors} could not be sent"
    elif sync["state"] == "not-configured":
        tail = "no bucket is set up for this server, so its files were not synced"
    elif sync["state"] == "running":
        tail = "the final sync to the bucket had started; files it had not sent are lost"
    else:
        tail = "the final sync to the bucket did not finish; files written since your last sync may be lost"
    return f"{head}; {tail}."


@dataclass
class _Reporter:
    label: str
    record: Callable[[dict], None]
    reports: int = 0


class InterruptionRegistry:
    """Notice secrets of this hub process's spot servers, by hash."""

    def __init__(self):
        self._by_hash: dict[str, _Reporter] = {}

    def issue(self, label: str, record: Callable[[dict], None]) -> tuple[str, str]:
        """A new notice secret for one spawner; returns (secret, its hash). Show the secret once."""
        secret = secrets.token_urlsafe(32)
        hashed = _digest(secret)
        self._by_hash[hashed] = _Reporter(label, record)
        return secret, hashed

    def restore(self, hashed: str, label: str, record: Callable[[dict], None]) -> None:
        """Re-register a hash kept in the spawner's state (after a hub restart)."""
        if hashed:
            self._by_hash.setdefault(hashed, _Reporter(label, record))

    def forget(self, hashed: str | None) -> None:
        if hashed:
            self._by_hash.pop(hashed, None)

    def report(self, secret: Any, raw: Any) -> tuple[str, dict]:
        """Pass a checked notice to its spawner; returns (label, notice).

        Raises CredentialRejected (unknown secret, or too many reports) or ValueError.
        """
        if not isinstance(secret, str) or not secret:
            raise CredentialRejected("missing notice secret")
        entry = self._by_hash.get(_digest(secret))
        if entry is None:
            raise CredentialRejected("unknown or revoked notice secret")
        notice = validate_notice(raw)
        entry.reports += 1
        if entry.reports > MAX_REPORTS:
            raise CredentialRejected("too many notice reports", entry.label)
        entry.record(notice)
        return entry.label, notice

    def __len__(self) -> int:
        return len(self._by_hash)


#: The hub process's registry; the hub endpoint and every spawner use this one.
registry = InterruptionRegistry()


def save_state(spawner) -> None:
    """Write the server's state to the hub's database now (the reason must outlive a hub
    restart before the reclaim). The state is the top-level spawner's: a HybridSpawner holds
    its backend spawner's state inside its own."""
    user = getattr(spawner, "user", None)
    spawners = getattr(user, "spawners", None)
    top = dict.get(spawners, spawner.name) if isinstance(spawners, dict) else None
    top = top or spawner
    orm = getattr(top, "orm_spawner", None)
    if orm is None or getattr(user, "db", None) is None:
        return
    orm.state = top.get_state()
    user.db.commit()
