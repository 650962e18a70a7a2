"""The OpenStack status cache: one Nova listing per refresh for every server of this hub.

Nova cannot filter a listing by metadata, so the hub's servers carry a tag
(``hybrid-hub:<hub id>``) and one ``GET /servers/detail?tags=...`` per interval serves every
spawner's ``poll()``; the metadata is checked again on the client side.
"""

from __future__ import annotations

from typing import Callable

from hybrid_spawner.backends.openstack.plan import META_HUB, META_OWNER, classify_status, hub_tag, private_ip
from hybrid_spawner.status import NodeObservation, NodeState, StatusCache

_STATES = {"running": NodeState.RUNNING, "pending": NodeState.PENDING, "gone": NodeState.GONE}


def observe_server(server) -> NodeObservation:
    """A NodeObservation from an openstacksdk Server (or anything with the same attributes)."""
    status = getattr(server, "status", None) or "UNKNOWN"
    task_state = getattr(server, "task_state", None)
    detail = status if not task_state else f"{status} ({task_state})"
    fault = getattr(server, "fault", None) or {}
    if fault.get("message"):
        detail += f": {fault['message'].strip()}"
    address = private_ip(getattr(server, "addresses", None))
    owner = (getattr(server, "metadata", None) or {}).get(META_OWNER, "")
    return NodeObservation(_STATES[classify_status(status, task_state)], detail, address, owner=owner)


class OpenStackStatusCache(StatusCache):
    """Shared per (cloud settings, hub id): see :meth:`StatusCache.shared`."""

    backend = "openstack"

    def __init__(self, interval: float, connect: Callable[[], object], hub_id: str):
        super().__init__(interval)
        self._connect = connect  # blocking; returns an openstack.connection.Connection
        self.hub_id = hub_id
        self.tag = hub_tag(hub_id)

    def fetch_all(self, node_ids: frozenset[str]) -> dict[str, NodeObservation]:
        conn = self._connect()
        found = {}
        for server in conn.compute.servers(details=True, tags=self.tag):
            if (server.metadata or {}).get(META_HUB) == self.hub_id:
                found[server.id] = observe_server(server)
        return found
