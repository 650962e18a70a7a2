"""The hub's server records as reconcile ``Record``s.

``record_from_state`` is pure (HybridSpawner keeps the backend's state under ``child_state``; a
backend spawner used directly keeps ``node_id`` at the top). ``hub_records`` reads the hub's
database and its spawner objects (for ``pending``); it runs on the hub's event loop and does
no I/O beyond the hub's own database session.
"""

from __future__ import annotations

from hybrid_spawner.parking import EXPIRES_AT, NODE_ID, valid_record
from hybrid_spawner.reconcile.plan import Record


def record_from_state(user: str, server: str, state: dict | None, pending: bool, default_backend: str = "") -> Record:
    state = state or {}
    inner = state.get("child_state") if isinstance(state.get("child_state"), dict) else state
    backend = state.get("backend") or inner.get("backend") or default_backend
    return Record(user, server, backend or "", inner.get("node_id") or None, pending,
                  parked_in_state(state, backend or default_backend))


def parked_in_state(state: dict, backend: str) -> tuple:
    """(key, backend, node_id, expires_at) of each node kept stopped for the next start:
    HybridSpawner keeps them per profile (``parked_nodes``), a backend spawner used directly
    one (``parked_node``)."""
    found = []
    nodes = state.get("parked_nodes")
    if isinstance(nodes, dict):
        for key, entry in nodes.items():
            node = entry.get("node") if isinstance(entry, dict) else None
            if valid_record(node) and isinstance(entry.get("backend"), str):
                found.append((key, entry["backend"], node[NODE_ID], node.get(EXPIRES_AT)))
    single = state.get("parked_node")
    if valid_record(single):
        found.append(("", state.get("backend") or backend, single[NODE_ID], single.get(EXPIRES_AT)))
    return tuple(found)


def hub_records(app) -> list[Record]:
    """Every server record of the hub ``app`` (a running JupyterHub), with its pending flag."""
    from jupyterhub import orm

    records = []
    for orm_user in app.db.query(orm.User):
        user = app.users[orm_user]
        for name, orm_spawner in list(orm_user.orm_spawners.items()):
            spawner = user.spawners.get(name) if hasattr(user.spawners, "get") else None
            pending = bool(getattr(spawner, "pending", None))
            default_backend = getattr(spawner, "backend", "") or ""
            records.append(record_from_state(orm_user.name, name, orm_spawner.state, pending, default_backend))
    return records
