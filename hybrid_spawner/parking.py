"""Stopped ("parked") nodes: what a server keeps of a node stopped with its disks, and the rules
for using it again. Pure: no cloud, no hub, no clock of its own.

With ``stop_action = "stop"`` a stop keeps the node (EC2: StopInstances, its EBS disks stay) and
the next start of the same server resumes it with a fresh boot script, instead of launching a new
one. The record lives in the spawner's state, so a hub restart keeps it; HybridSpawner keeps one
per profile, since a stopped node only fits the profile that launched it.
"""

from __future__ import annotations

import time

#: keys of a parked record
NODE_ID = "node_id"
STOPPED_AT = "stopped_at"
EXPIRES_AT = "expires_at"


def parked_record(node_id: str, max_age: float, now: float | None = None) -> dict:
    """The state kept for a node stopped at ``now`` that may wait ``max_age`` seconds (0: forever)."""
    now = time.time() if now is None else now
    return {
        NODE_ID: node_id,
        STOPPED_AT: now,
        EXPIRES_AT: now + max_age if max_age > 0 else None,
    }


def is_expired(record: dict, now: float) -> bool:
    """True once a parked node has waited longer than its ``max_age``."""
    expires = record.get(EXPIRES_AT)
    return expires is not None and now >= float(expires)


def valid_record(record) -> bool:
    """A record read back from the hub's database (anything else is ignored, never trusted)."""
    return isinstance(record, dict) and isinstance(record.get(NODE_ID), str) and bool(record[NODE_ID])


def waited(record: dict, now: float) -> str:
    """How long a node has been stopped, for people: "3 h", "2 days"."""
    seconds = max(0.0, now - float(record.get(STOPPED_AT) or now))
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 2 * 3600:
        return f"{seconds / 60:.0f} min"
    if seconds < 2 * 86400:
        return f"{seconds / 3600:.0f} h"
    return f"{seconds / 86400:.0f} days"
