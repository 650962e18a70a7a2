"""Quarantine on OpenStack: the server keeps running in a security group with no rules (Neutron's
default egress rules of a new group deleted), locked so that nobody but an admin can act on or
delete it, and marked with the incident in its metadata. Nova has no per-server role to remove;
the nodes hold no OpenStack credentials. Every call runs in a worker thread via the spawner.
"""

from __future__ import annotations

import dataclasses

from hybrid_spawner.backends.openstack.plan import META_HUB

META_INCIDENT = "hybrid-incident"


def quarantine_group_name(hub_id: str) -> str:
    return f"hybrid-quarantine-{hub_id}"[:255]


def _isolate(conn, node_id: str, hub_id: str, incident_id: str) -> list[str]:
    done = []
    server = conn.compute.get_server(node_id)
    if (server.metadata or {}).get(META_HUB) != hub_id:
        raise PermissionError(f"server {node_id} does not carry this hub's metadata; not touching it")
    name = quarantine_group_name(hub_id)
    group = conn.network.find_security_group(name, ignore_missing=True)
    if group is None:
        group = conn.network.create_security_group(
            name=name, description="Quarantine: no traffic in or out (hybrid_spawner incident response)")
        for rule in list(conn.network.security_group_rules(security_group_id=group.id)):
            conn.network.delete_security_group_rule(rule)
        done.append(f"created the quarantine security group {group.id} (no rules in or out)")
    conn.compute.add_security_group_to_server(server, group)
    previous = [g["name"] for g in (server.security_groups or []) if g["name"] != name]
    for old in previous:
        conn.compute.remove_security_group_from_server(server, conn.network.find_security_group(old))
    done.append(f"moved {node_id} into {name} (was {', '.join(previous) or 'none'})")
    conn.compute.set_server_metadata(server, **{META_INCIDENT: incident_id})
    done.append(f"marked {node_id} {META_INCIDENT}={incident_id}")
    conn.compute.lock_server(server, locked_reason=f"incident {incident_id}")
    done.append(f"locked {node_id} (only an admin can act on or delete it)")
    return done


async def isolate(spawner, node_id: str, incident_id: str, record) -> None:
    for action in await spawner._call(_isolate, node_id, spawner.hub_id, incident_id):
        record(action)


def context(spawner) -> dict:
    return {"connection": dataclasses.asdict(spawner.connection_settings()), "hub_id": spawner.hub_id}


async def end(where: dict, node_id: str) -> str:
    """Unlock and delete the server (needs a role allowed to unlock, see docs/incidents.md)."""
    import asyncio

    from hybrid_spawner.backends.openstack.connection import ConnectionSettings, connect

    settings = ConnectionSettings(**where["connection"])

    def work():
        conn = connect(settings)
        server = conn.compute.find_server(node_id, ignore_missing=True)
        if server is None:
            return f"{node_id} was already gone"
        conn.compute.unlock_server(server)
        conn.compute.delete_server(server)
        return f"deleted {node_id}"

    return await asyncio.to_thread(work)
