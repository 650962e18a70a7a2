"""What an operator does to a running server, as the Compute and Networking API references
describe it: server actions (lock / unlock, addSecurityGroup / removeSecurityGroup, os-stop /
os-start, shelve / unshelve), server metadata, and creating security groups and deleting their rules.

The rules a real cloud enforces and a quarantine depends on are enforced here too: a locked
server refuses actions and deletion from a non-admin (409); a group a server does not have cannot
be removed (404); a new security group comes with Neutron's default egress rules, so "no traffic
out" needs them deleted.
"""

from __future__ import annotations

import time

from simulators.openstack import keystone
from simulators.openstack.app import Request, Response, Router, json_response
from simulators.openstack.neutron import PREFIX as NEUTRON
from simulators.openstack.nova import PREFIX as NOVA
from simulators.openstack.nova import fault, is_admin, versioned
from simulators.openstack.state import iso, new_id


def _group(cloud, ref: str) -> dict | None:
    return cloud.security_groups.get(ref) or next((g for g in cloud.security_groups.values() if g["name"] == ref), None)


def _sync_ports(cloud, server) -> None:
    """Neutron ports carry the groups by id; Nova shows them by name."""
    ids = [g["id"] for g in (_group(cloud, name) for name in server.security_groups) if g]
    for pid in server.port_ids:
        if pid in cloud.ports:
            cloud.ports[pid]["security_groups"] = list(ids)


def server_action(req: Request) -> Response:
    cloud = req.cloud
    server = cloud.get_server(req.match["id"])
    if server is None or server.deleted_at:
        return fault(404, f"Instance {req.match['id']} could not be found.")
    body = req.json() or {}
    if not isinstance(body, dict) or len(body) != 1:
        return fault(400, "Invalid request body: exactly one action is expected.")
    (action, arg), = body.items()
    arg = arg or {}
    if server.locked and action != "unlock" and not is_admin(req):
        return fault(409, f"Instance {server.id} is locked")
    with cloud.lock:
        if action == "lock":
            server.locked = True
            server.locked_reason = arg.get("locked_reason") if req.microversion >= (2, 73) else None
        elif action == "unlock":
            server.locked, server.locked_reason = False, None
        elif action == "addSecurityGroup":
            group = _group(cloud, arg.get("name", ""))
            if group is None:
                return fault(404, f"Security group {arg.get('name')} not found for project {cloud.project_id}.")
            if group["name"] not in server.security_groups:
                server.security_groups.append(group["name"])
        elif action == "removeSecurityGroup":
            group = _group(cloud, arg.get("name", ""))
            if group is None or group["name"] not in server.security_groups:
                return fault(404, f"Security group {arg.get('name')} not associated with the instance {server.id}")
            server.security_groups.remove(group["name"])
        elif action in ("os-stop", "os-start"):
            # Nova: os-stop needs ACTIVE (or ERROR), os-start needs SHUTOFF; otherwise 409.
            status = cloud.status(server)[0]
            if action == "os-stop" and status not in ("ACTIVE", "ERROR"):
                return fault(409, f"Cannot 'stop' instance {server.id} while it is in vm_state {status.lower()}")
            if action == "os-start" and status != "SHUTOFF":
                return fault(409, f"Cannot 'start' instance {server.id} while it is in vm_state {status.lower()}")
            server.stopped = action == "os-stop"
        elif action in ("shelve", "unshelve"):
            # Nova: shelve needs ACTIVE or SHUTOFF (also PAUSED, SUSPENDED), unshelve a shelved
            # server; otherwise 409. Shelving snapshots the root disk and frees the host; the
            # volumes stay attached; unshelve boots the server from that snapshot again.
            status, task, _vm = cloud.status(server)
            if action == "shelve" and (status not in ("ACTIVE", "SHUTOFF") or task is not None):
                return fault(409, f"Cannot 'shelve' instance {server.id} while it is in vm_state {status.lower()}")
            if action == "unshelve" and (status not in ("SHELVED", "SHELVED_OFFLOADED") or task is not None):
                return fault(409, f"Cannot 'unshelve' instance {server.id} while it is in vm_state {status.lower()}")
            if action == "shelve":
                server.shelved_at, server.unshelved_at = time.time(), None
            else:
                server.shelved_at, server.unshelved_at, server.stopped = None, time.time(), False
        else:
            return fault(400, f"Unsupported server action {action!r} in this fake.")
        _sync_ports(cloud, server)
        server.updated = time.time()
    return Response(202)


def set_metadata(req: Request) -> Response:
    cloud = req.cloud
    server = cloud.get_server(req.match["id"])
    if server is None or server.deleted_at:
        return fault(404, f"Instance {req.match['id']} could not be found.")
    if server.locked and not is_admin(req):
        return fault(409, f"Instance {server.id} is locked")
    metadata = (req.json() or {}).get("metadata")
    if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
        return fault(400, "Invalid input for field/attribute metadata.")
    with cloud.lock:
        server.metadata.update(metadata)
    return json_response(200, {"metadata": dict(server.metadata)})


def _rule(group_id: str, direction: str, ethertype: str, project: str) -> dict:
    return {"id": new_id(), "security_group_id": group_id, "direction": direction, "ethertype": ethertype,
            "protocol": None, "port_range_min": None, "port_range_max": None, "remote_ip_prefix": None,
            "remote_group_id": None, "project_id": project, "tenant_id": project, "description": ""}


def create_security_group(req: Request) -> Response:
    cloud = req.cloud
    spec = (req.json() or {}).get("security_group") or {}
    name = spec.get("name")
    if not isinstance(name, str) or not name:
        return json_response(400, {"NeutronError": {"type": "HTTPBadRequest", "message": "name is required", "detail": ""}})
    with cloud.lock:
        sid, now = new_id(), iso(time.time())
        rules = [_rule(sid, "egress", "IPv4", cloud.project_id), _rule(sid, "egress", "IPv6", cloud.project_id)]
        group = {"id": sid, "name": name, "description": spec.get("description", ""), "project_id": cloud.project_id,
                 "tenant_id": cloud.project_id, "stateful": True, "shared": False, "tags": [],
                 "security_group_rules": rules, "revision_number": 1, "created_at": now, "updated_at": now}
        cloud.security_groups[sid] = group
    return json_response(201, {"security_group": group})


def list_rules(req: Request) -> Response:
    wanted = req.arg("security_group_id")
    with req.cloud.lock:
        rules = [r for g in req.cloud.security_groups.values() for r in g["security_group_rules"]
                 if wanted in (None, r["security_group_id"])]
    return json_response(200, {"security_group_rules": rules})


def delete_rule(req: Request) -> Response:
    with req.cloud.lock:
        for group in req.cloud.security_groups.values():
            for rule in group["security_group_rules"]:
                if rule["id"] == req.match["id"]:
                    group["security_group_rules"].remove(rule)
                    group["revision_number"] += 1
                    return Response(204)
    return json_response(404, {"NeutronError": {"type": "SecurityGroupRuleNotFound",
                                                "message": f"Security group rule {req.match['id']} does not exist", "detail": ""}})


def authed(handler):
    def wrapped(req: Request) -> Response:
        return keystone.authenticate(req) or handler(req)

    return wrapped


def register(router: Router) -> None:
    router.add("POST", NOVA + r"/servers/(?P<id>[^/]+)/action", versioned(server_action))
    router.add("POST", NOVA + r"/servers/(?P<id>[^/]+)/metadata", versioned(set_metadata))
    router.add("POST", NEUTRON + "/v2.0/security-groups", authed(create_security_group))
    router.add("GET", NEUTRON + "/v2.0/security-group-rules", authed(list_rules))
    router.add("DELETE", NEUTRON + r"/v2.0/security-group-rules/(?P<id>[^/]+)", authed(delete_rule))
