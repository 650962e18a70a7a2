"""What a node notice may say (pure). The node agent posts it; JupyterLab writes the sentence.

An interruption notice::

    {"kind": "interruption", "action": "terminate", "time": "2026-12-07T12:04:00Z",
     "noticed": "2026-12-07T12:02:01Z",
     "sync": {"state": "done", "files": 48, "uploaded": 3, "errors": 0, "finished": "2026-12-07T12:02:03Z"}}

A rebalance recommendation has ``"kind": "rebalance"`` and no action. ``sync.state`` is
``running`` while the final sync runs, then ``done``, ``error`` (some files not sent),
``timeout``, ``failed`` (the sync could not run) or ``not-configured`` (no bucket).
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

KINDS = ("interruption", "rebalance")
ACTIONS = ("terminate", "stop", "hibernate")
SYNC_STATES = ("running", "done", "error", "timeout", "failed", "not-configured")


def _utc(value: Any, field: str, optional: bool = False) -> str | None:
    if optional and value is None:
        return None
    if not isinstance(value, str) or len(value) > 40:
        raise ValueError(f"{field} must be a UTC time")
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"{field} must be a UTC time") from None
    if moment.utcoffset() != timedelta(0):
        raise ValueError(f"{field} must be a UTC time")
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _count(value: Any, field: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 10**9:
        raise ValueError(f"{field} must be a count")
    return value


def validate_notice(raw: Any) -> dict:
    """The notice, field by field; ValueError names the first field that is wrong."""
    if not isinstance(raw, dict) or raw.get("kind") not in KINDS:
        raise ValueError(f"kind must be one of {', '.join(KINDS)}")
    sync = raw.get("sync")
    if not isinstance(sync, dict) or sync.get("state") not in SYNC_STATES:
        raise ValueError(f"sync.state must be one of {', '.join(SYNC_STATES)}")
    notice = {
        "kind": raw["kind"],
        "time": _utc(raw.get("time"), "time"),
        "noticed": _utc(raw.get("noticed"), "noticed", optional=True),
        "sync": {
            "state": sync["state"],
            "files": _count(sync.get("files", 0), "sync.files"),
            "uploaded": _count(sync.get("uploaded", 0), "sync.uploaded"),
            "errors": _count(sync.get("errors", 0), "sync.errors"),
            "finished": _utc(sync.get("finished"), "sync.finished", optional=True),
        },
    }
    if raw["kind"] == "interruption":
        if raw.get("action") not in ACTIONS:
            raise ValueError(f"action must be one of {', '.join(ACTIONS)}")
        notice["action"] = raw["action"]
    return notice
