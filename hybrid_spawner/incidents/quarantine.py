"""Quarantine, backend-neutral: record first, isolate, then let the hub forget the node.

The order matters: the incident (which blocks the user's spawns) is written before the first
change to the node, so the user cannot start a new server while theirs is being isolated; each
step is recorded as it takes effect; the hub then records the server as stopped *without*
stopping the node (its spawner forgets the node first), and the node stays for forensics.
"""

from __future__ import annotations

import importlib
import time

from hybrid_spawner import metrics
from hybrid_spawner.incidents.store import IncidentStore

# Backend name -> module with ``isolate(spawner, node_id, incident_id, record)`` and ``end``.
ISOLATORS = {
    "ec2": "hybrid_spawner.incidents.ec2",
    "openstack": "hybrid_spawner.incidents.openstack",
    "slurm": "hybrid_spawner.incidents.slurm",
}


class IncidentError(Exception):
    """Refused or failed; ``status`` is the HTTP status the admin endpoint answers with."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


def backend_spawner(spawner):
    """The spawner that owns the node: HybridSpawner delegates to a child of the chosen backend."""
    return getattr(spawner, "child", None) or spawner


def isolator(backend: str):
    name = ISOLATORS.get(backend)
    if name is None:
        raise IncidentError(501, f"quarantine is not available for the {backend!r} backend")
    try:
        return importlib.import_module(name)
    except ImportError:
        raise IncidentError(501, f"quarantine is not available for the {backend!r} backend") from None


async def quarantine(store: IncidentStore, spawner, *, user: str, server: str, reason: str, admin: str,
                     stop_server) -> dict:
    """Isolate the node of ``user``'s server ``server``; ``stop_server()`` then makes the hub
    record the server as stopped. Returns the incident record."""
    node_owner = backend_spawner(spawner)
    node_id = getattr(node_owner, "node_id", None)
    if not spawner.active or not node_id:
        raise IncidentError(409, f"{user} has no running server {server!r} to quarantine")
    module = isolator(getattr(node_owner, "backend", "?"))
    incident = store.create(user=user, server=server, backend=node_owner.backend, node_id=node_id,
                            reason=reason, by=admin, state="isolating", where=module.context(node_owner))
    actions: list[str] = []

    def record(action: str) -> None:
        actions.append(action)
        store.update(incident["id"], actions=list(actions))

    try:
        await module.isolate(node_owner, node_id, incident["id"], record)
    except Exception as error:
        store.update(incident["id"], state="isolation-failed", error=str(error))
        raise IncidentError(502, f"isolating {node_id} failed after {len(actions)} step(s): {error}. "
                                 f"{user} stays blocked (incident {incident['id']}).") from None
    metrics.record_quarantine(node_owner.backend)
    node_owner.last_stop_message = (
        f"Your server was isolated for a security review (incident {incident['id']}). "
        "Contact the hub's administrators."
    )
    node_owner._forget_node()  # the hub's stop below must not terminate the evidence
    await stop_server()
    return store.update(incident["id"], state="quarantined")


async def release(store: IncidentStore, incident_id: str, *, admin: str, terminate: bool) -> dict:
    """Lift the user's spawn block; with ``terminate``, end the quarantined node too."""
    incident = store.get(incident_id)
    if incident is None:
        raise IncidentError(404, f"no incident {incident_id!r}")
    if incident.get("released"):
        raise IncidentError(409, f"incident {incident_id} was already released")
    actions = list(incident.get("actions", []))
    if terminate:
        module = isolator(incident["backend"])
        actions.append(await module.end(incident["where"], incident["node_id"]))
    return store.update(incident_id, released=time.time(), released_by=admin, actions=actions,
                        state="released")
