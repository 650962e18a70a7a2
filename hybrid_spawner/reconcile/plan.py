"""Pure reconciliation planning: records + listings + clock -> findings and actions.

No network, no hub, no clock of its own: the runner passes everything in, so every rule here is
unit-tested in milliseconds (tests/unit/test_reconcile_plan.py).

Rules (why, in one line each):
- a listed node no record claims is an *orphan*: a hub that died between the launch call and
  saving its state leaves exactly this, and nothing else would ever stop it (jupyterhub#4575);
- an orphan is only acted on after ``grace`` seconds of being seen unclaimed in every pass: a
  spawn in flight has launched its node but not yet saved the id;
- while any spawn is pending on that backend an orphan is never terminated (the node may be the
  pending spawn's), whatever its age: the next pass decides;
- a record whose node is missing from a *successful* listing, or listed as gone, is *gone*: the
  hub marks the server stopped with the reason. A failed listing says nothing (unknown is not
  gone), so a backend whose listing failed yields no findings at all;
- a node stopped with its disks for a server's next start (``stop_action = "stop"``) is claimed
  by that server's record; once it has waited longer than its ``stopped_max_age`` it is
  terminated (``expired_parked``), and the server's next start launches a new node.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

MODES = ("report", "terminate")

#: actions
TERMINATE = "terminate"
REPORT = "report"
WAIT_GRACE = "wait-grace"
WAIT_SPAWN = "wait-spawn-in-flight"
MARK_STOPPED = "mark-stopped"
END_PARKED = "terminate-stopped-too-long"


@dataclass(frozen=True)
class Record:
    """One server record of the hub: whose, which backend and node, and whether a spawn is pending."""

    user: str
    server: str
    backend: str
    node_id: str | None
    pending: bool = False
    parked: tuple = ()  # (key, backend, node_id, expires_at) of nodes stopped for a next start


@dataclass(frozen=True)
class Listed:
    """One node a backend lists under this hub's tag (``gone``: stopped/terminated/completed)."""

    node_id: str
    detail: str
    gone: bool = False


@dataclass(frozen=True)
class Finding:
    kind: str  # "orphan" | "gone"
    backend: str
    node_id: str
    action: str
    detail: str
    user: str = ""
    server: str = ""
    unclaimed_for: float = 0.0

    def as_dict(self) -> dict:
        return asdict(self)


def plan(records: list[Record], listings: dict[str, list[Listed] | None], first_seen: dict[tuple[str, str], float],
         now: float, mode: str, grace: float) -> tuple[list[Finding], dict[tuple[str, str], float]]:
    """The findings of one pass and the new ``first_seen`` map (orphan -> when first seen unclaimed).

    ``listings[backend]`` is None when that backend's listing failed this pass.
    """
    if mode not in MODES:
        raise ValueError(f"unknown reconcile mode {mode!r}; choose one of {', '.join(MODES)}")
    if grace < 0:
        raise ValueError("the reconcile grace period must be zero or more seconds")
    claimed = {(r.backend, r.node_id) for r in records if r.node_id}
    claimed |= {(backend, node_id) for r in records for _key, backend, node_id, _expires in r.parked}
    pending_backends = {r.backend for r in records if r.pending}
    pending_anywhere = any(r.pending and not r.backend for r in records)  # backend not chosen yet
    findings: list[Finding] = []
    seen_now: dict[tuple[str, str], float] = {}
    for backend, listed in sorted(listings.items()):
        if listed is None:
            # Keep the clocks of this backend's orphans: a failed listing must not restart them.
            seen_now.update({k: v for k, v in first_seen.items() if k[0] == backend})
            continue
        for node in listed:
            key = (backend, node.node_id)
            if key in claimed or node.gone:
                continue
            since = first_seen.get(key, now)
            seen_now[key] = since
            age = now - since
            if backend in pending_backends or pending_anywhere:
                action = WAIT_SPAWN
            elif age < grace:
                action = WAIT_GRACE
            else:
                action = TERMINATE if mode == "terminate" else REPORT
            findings.append(Finding("orphan", backend, node.node_id, action, node.detail, unclaimed_for=age))
        by_id = {n.node_id: n for n in listed}
        for r in records:
            if r.backend != backend or not r.node_id or r.pending:
                continue
            node = by_id.get(r.node_id)
            if node is None:
                detail = f"{r.node_id} is no longer listed by {backend}"
            elif node.gone:
                detail = f"{r.node_id} is {node.detail}"
            else:
                continue
            findings.append(Finding("gone", backend, r.node_id, MARK_STOPPED, detail, r.user, r.server))
    return findings, seen_now


def expired_parked(records: list[Record], wall_now: float) -> list[Finding]:
    """Stopped nodes kept past their ``stopped_max_age`` (``wall_now``: seconds since the epoch,
    the clock the spawner stamped them with). ``Finding.detail`` carries the record's key."""
    found = []
    for r in records:
        for key, backend, node_id, expires in r.parked:
            if expires is not None and wall_now >= float(expires):
                found.append(Finding("expired", backend, node_id, END_PARKED, key, r.user, r.server))
    return found
