"""Neutron (Networking API v2.0): networks, subnets, ports and security groups, read-mostly.

List calls accept the reference's attribute filters (``?name=...&device_id=...``); a missing
resource answers 404 with the ``{"NeutronError": {"type", "message", "detail"}}`` body.
"""

from __future__ import annotations

from simulators.openstack import keystone
from simulators.openstack.app import Request, Response, Router, json_response

PREFIX = "/networking"
COLLECTIONS = {
    # url segment: (state attribute, singular, NeutronError type)
    "networks": ("networks", "network", "NetworkNotFound"),
    "subnets": ("subnets", "subnet", "SubnetNotFound"),
    "ports": ("ports", "port", "PortNotFound"),
    "security-groups": ("security_groups", "security_group", "SecurityGroupNotFound"),
}
LABELS = {"network": "Network", "subnet": "Subnet", "port": "Port", "security_group": "Security group"}


def authed(handler):
    def wrapped(req: Request) -> Response:
        return keystone.authenticate(req) or handler(req)

    return wrapped


def _filter(req: Request, items: list[dict]) -> list[dict]:
    out = []
    for item in items:
        ok = True
        for key, values in req.query.items():
            if key in ("fields", "limit", "marker", "sort_key", "sort_dir", "page_reverse"):
                continue
            if key == "fixed_ips":
                continue
            if key not in item:
                ok = False
                break
            wanted = [str(v).lower() if isinstance(item[key], bool) else v for v in values]
            have = str(item[key]).lower() if isinstance(item[key], bool) else str(item[key])
            if have not in wanted:
                ok = False
                break
        if ok:
            out.append(item)
    fields = req.query.get("fields")
    if fields:
        out = [{k: v for k, v in item.items() if k in fields} for item in out]
    return out


def list_handler(segment: str):
    attr, _, _ = COLLECTIONS[segment]

    def handler(req: Request) -> Response:
        cloud = req.cloud
        if segment == "ports":
            cloud.visible_servers()  # reap deleted servers (and their ports) first
        with cloud.lock:
            items = list(getattr(cloud, attr).values())
        return json_response(200, {attr: _filter(req, items)})

    return handler


def show_handler(segment: str):
    attr, singular, error = COLLECTIONS[segment]

    def handler(req: Request) -> Response:
        item = getattr(req.cloud, attr).get(req.match["id"])
        if item is None:
            return json_response(404, {"NeutronError": {
                "type": error, "message": f"{LABELS[singular]} {req.match['id']} could not be found.", "detail": ""}})
        return json_response(200, {singular: item})

    return handler


def register(router: Router) -> None:
    router.add("GET", PREFIX, lambda r: json_response(200, {"versions": [
        {"id": "v2.0", "status": "CURRENT", "links": [{"rel": "self", "href": f"{r.base_url}{PREFIX}/v2.0/"}]}]}))
    router.add("GET", PREFIX + "/v2.0", authed(lambda r: json_response(200, {"resources": [
        {"name": s, "collection": a, "links": [{"rel": "self", "href": f"{r.base_url}{PREFIX}/v2.0/{seg}"}]}
        for seg, (a, s, _) in COLLECTIONS.items()]})))
    for segment in COLLECTIONS:
        router.add("GET", f"{PREFIX}/v2.0/{segment}", authed(list_handler(segment)))
        router.add("GET", f"{PREFIX}/v2.0/{segment}/(?P<id>[^/]+)", authed(show_handler(segment)))
