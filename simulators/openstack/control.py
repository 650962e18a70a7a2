"""The fake's own control API under ``/_fake`` (not OpenStack): lets tests inject build
failures, quotas and HTTP errors, change timing, and look at everything the cloud holds."""

from __future__ import annotations

from simulators.openstack.app import Request, Response, Router, json_response
from simulators.openstack.state import Fail


def _body(req: Request) -> dict:
    body = req.json()
    return body if isinstance(body, dict) else {}


def inject_faults(req: Request) -> Response:
    """The next ``count`` servers created end in ERROR with ``message`` as Nova's fault."""
    body = _body(req)
    message = body.get("message", "No valid host was found. There are not enough hosts available.")
    with req.cloud.lock:
        req.cloud.pending_faults.extend([message] * int(body.get("count", 1)))
    return Response(204)


def set_quotas(req: Request) -> Response:
    with req.cloud.lock:
        req.cloud.quotas.update({k: int(v) for k, v in _body(req).items() if k in req.cloud.quotas})
        return json_response(200, dict(req.cloud.quotas))


def add_fail(req: Request) -> Response:
    body = _body(req)
    fail = Fail(body.get("method", "*"), body.get("path_prefix", "/"), int(body.get("status", 503)),
                int(body.get("count", -1)), bool(body.get("after", False)))
    with req.cloud.lock:
        req.cloud.fails.append(fail)
    return Response(204)


def clear_fails(req: Request) -> Response:
    with req.cloud.lock:
        req.cloud.fails.clear()
    return Response(204)


def set_timing(req: Request) -> Response:
    body = _body(req)
    with req.cloud.lock:
        for key in ("build_seconds", "delete_seconds"):
            if key in body:
                setattr(req.cloud, key, float(body[key]))
    return Response(204)


def dump_servers(req: Request) -> Response:
    cloud = req.cloud
    out = []
    for s in cloud.visible_servers():
        status, task_state, _ = cloud.status(s)
        ips = [ip["ip_address"] for pid in s.port_ids if pid in cloud.ports for ip in cloud.ports[pid]["fixed_ips"]]
        out.append({"id": s.id, "name": s.name, "status": status, "task_state": task_state, "metadata": s.metadata,
                    "tags": s.tags, "user_data": s.user_data, "ips": ips, "deleting": s.deleted_at is not None,
                    "flavor": s.flavor["name"], "image_id": s.image_id, "key_name": s.key_name,
                    "availability_zone": s.availability_zone, "security_groups": s.security_groups,
                    "block_device_mapping": s.block_device_mapping, "locked": s.locked})
    return json_response(200, {"servers": out})


def requests_seen(req: Request) -> Response:
    with req.cloud.lock:
        seen = [{"method": m, "path": p, "query": q, "user": u} for m, p, q, u in req.cloud.requests
                if not p.startswith("/_fake")]
        if req.method == "DELETE":
            req.cloud.requests.clear()
    return json_response(200, {"requests": seen})


def cloud_description(c, base_url: str) -> dict:
    """What a client needs to know about the fake (users, ids, the Keystone URL)."""
    return {
        "auth_url": f"{base_url}/identity/v3", "region": c.region, "project_id": c.project_id,
        "project_name": c.project_name, "domain_name": c.domain_name,
        "users": {u.name: u.password for u in c.users.values()},
        "application_credentials": [{"id": a.id, "name": a.name, "secret": a.secret} for a in c.app_creds.values()],
        "networks": {n["name"]: n["id"] for n in c.networks.values()},
        "images": {i["name"]: i["id"] for i in c.images.values()},
        "flavors": {f["name"]: f["id"] for f in c.flavors.values()},
    }


def clouds_yaml_entries(c: dict) -> dict:
    """clouds.yaml entries for a description: ``fake`` (password), ``fake-appcred``, ``fake-admin``."""
    common = {"region_name": c["region"], "identity_api_version": 3, "interface": "public"}

    def password(user: str) -> dict:
        return {"auth_type": "password",
                "auth": {"auth_url": c["auth_url"], "username": user, "password": c["users"][user],
                         "project_name": c["project_name"], "user_domain_name": c["domain_name"],
                         "project_domain_name": c["domain_name"]},
                **common}

    cred = c["application_credentials"][0]
    return {
        "fake": password("demo"),
        "fake-admin": password("admin"),
        "fake-appcred": {"auth_type": "v3applicationcredential",
                         "auth": {"auth_url": c["auth_url"], "application_credential_id": cred["id"],
                                  "application_credential_secret": cred["secret"]}, **common},
    }


def describe(req: Request) -> Response:
    return json_response(200, cloud_description(req.cloud, req.base_url))


def reset(req: Request) -> Response:
    c = req.cloud
    with c.lock:
        for s in list(c.servers.values()):
            for pid in s.port_ids:
                c.ports.pop(pid, None)
        c.servers.clear()
        c.pending_faults.clear()
        c.fails.clear()
        c.requests.clear()
        c.quotas.update({"instances": 10, "cores": 20, "ram": 51200})
        c.volumes.clear()
        c.volume_quota_gb = 1000
        c.zones[:] = ["nova"]
    return Response(204)


def set_zones(req: Request) -> Response:
    """``{"zones": ["nova", "az2"]}``: the availability zones servers and volumes may use."""
    zones = _body(req).get("zones")
    if not isinstance(zones, list) or not zones or not all(isinstance(z, str) and z for z in zones):
        return json_response(400, {"error": "zones must be a non-empty list of names"})
    with req.cloud.lock:
        req.cloud.zones[:] = zones
    return Response(204)


def dump_volumes(req: Request) -> Response:
    from simulators.openstack.volumes import volume_view

    with req.cloud.lock:
        return json_response(200, {"volumes": [volume_view(req.cloud, v) for v in req.cloud.volumes.values()]})


def register(router: Router) -> None:
    router.add("GET", "/_fake/health", lambda r: json_response(200, {"ok": True}))
    router.add("GET", "/_fake/config", describe)
    router.add("POST", "/_fake/faults", inject_faults)
    router.add("PUT", "/_fake/quotas", set_quotas)
    router.add("POST", "/_fake/fail", add_fail)
    router.add("DELETE", "/_fake/fail", clear_fails)
    router.add("PUT", "/_fake/timing", set_timing)
    router.add("GET", "/_fake/servers", dump_servers)
    router.add("GET", "/_fake/requests", requests_seen)
    router.add("DELETE", "/_fake/requests", requests_seen)
    router.add("POST", "/_fake/reset", reset)
    router.add("PUT", "/_fake/zones", set_zones)
    router.add("GET", "/_fake/volumes", dump_volumes)
