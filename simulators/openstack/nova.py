"""Nova (Compute API v2.1) with microversions: versions, servers, flavors, keypairs, zones, limits.

Answers follow the Compute API reference: the microversion is negotiated from the
``OpenStack-API-Version: compute X.Y`` (or legacy ``X-OpenStack-Nova-API-Version``) header and
echoed back in both headers; faults are wrapped as ``{"badRequest": {...}}``,
``{"itemNotFound": {...}}``, ``{"forbidden": {...}}``; creating a server answers 202 with a
Location header; deleting answers 204; a failed build shows status ERROR and a ``fault``.
"""

from __future__ import annotations

import base64
import binascii
import re
import uuid

from simulators.openstack import keystone
from simulators.openstack.app import Request, Response, Router, json_response
from simulators.openstack.state import QuotaExceeded, Server, iso

PREFIX = "/compute/v2.1"
MIN_VERSION = (2, 1)
MAX_VERSION = (2, 96)
FAULT_NAMES = {400: "badRequest", 403: "forbidden", 404: "itemNotFound", 409: "conflictingRequest"}
POWER_RUNNING, POWER_NOSTATE, POWER_SHUTDOWN = 1, 0, 4
TAG_RE = re.compile(r"^[^,/]{1,60}$")


def fault(status: int, message: str) -> Response:
    return json_response(status, {FAULT_NAMES.get(status, "computeFault"): {"code": status, "message": message}})


def vstr(v: tuple[int, int]) -> str:
    return f"{v[0]}.{v[1]}"


def version_doc(base: str) -> dict:
    return {
        "id": "v2.1", "status": "CURRENT", "version": vstr(MAX_VERSION), "min_version": vstr(MIN_VERSION),
        "updated": "2013-07-23T11:33:21Z",
        "links": [{"rel": "self", "href": f"{base}{PREFIX}/"}],
        "media-types": [{"base": "application/json", "type": "application/vnd.openstack.compute+json;version=2.1"}],
    }


def negotiate(req: Request) -> Response | None:
    """Set req.microversion from the request headers, or answer 400/406 as Nova does."""
    wanted = None
    for item in (req.headers.get("openstack-api-version") or "").split(","):
        parts = item.strip().split()
        if len(parts) == 2 and parts[0].lower() == "compute":
            wanted = parts[1]
    wanted = wanted or req.headers.get("x-openstack-nova-api-version")
    if not wanted:
        req.microversion = MIN_VERSION
        return None
    if wanted == "latest":
        req.microversion = MAX_VERSION
        return None
    m = re.fullmatch(r"(\d+)\.(\d+)", wanted.strip())
    if not m:
        return fault(400, f"API Version String {wanted} is of invalid format. Must be of format MajorNum.MinorNum.")
    v = (int(m[1]), int(m[2]))
    if not MIN_VERSION <= v <= MAX_VERSION:
        return fault(406, f"Version {wanted} is not supported by the API. Minimum is {vstr(MIN_VERSION)} "
                          f"and maximum is {vstr(MAX_VERSION)}.")
    req.microversion = v
    return None


def versioned(handler):
    """Authenticate, negotiate the microversion and stamp the version headers on the answer."""

    def wrapped(req: Request) -> Response:
        resp = keystone.authenticate(req) or negotiate(req) or handler(req)
        v = vstr(req.microversion)
        resp.headers.update({
            "x-compute-request-id": f"req-{uuid.uuid4()}",
            "OpenStack-API-Version": f"compute {v}", "X-OpenStack-Nova-API-Version": v,
            "Vary": "OpenStack-API-Version, X-OpenStack-Nova-API-Version",
        })
        return resp

    return wrapped


def is_admin(req: Request) -> bool:
    return req.token is not None and "admin" in req.token.roles


# -- flavors ------------------------------------------------------------------------------
def flavor_view(req: Request, flavor: dict, detail: bool) -> dict:
    link = f"{req.base_url}{PREFIX}/flavors/{flavor['id']}"
    view = {"id": flavor["id"], "name": flavor["name"], "links": [{"rel": "self", "href": link}]}
    if req.microversion >= (2, 55):
        view["description"] = flavor["description"]
    if detail:
        view.update({k: v for k, v in flavor.items() if k not in ("description", "extra_specs")})
        if req.microversion >= (2, 61):
            view["extra_specs"] = flavor["extra_specs"]
    return view


def find_flavor(req: Request, ref: str) -> dict | None:
    ref = ref.rstrip("/").rsplit("/", 1)[-1]
    return req.cloud.flavors.get(ref)


def list_flavors(detail: bool):
    def handler(req: Request) -> Response:
        flavors = sorted(req.cloud.flavors.values(), key=lambda f: (f["ram"], f["id"]))
        return json_response(200, {"flavors": [flavor_view(req, f, detail) for f in flavors]})

    return handler


def show_flavor(req: Request) -> Response:
    flavor = find_flavor(req, req.match["id"])
    if flavor is None:
        return fault(404, f"Flavor {req.match['id']} could not be found.")
    return json_response(200, {"flavor": flavor_view(req, flavor, True)})


# -- servers -----------------------------------------------------------------------------
def server_view(req: Request, s: Server, detail: bool = True) -> dict:
    cloud = req.cloud
    link = f"{req.base_url}{PREFIX}/servers/{s.id}"
    base = {"id": s.id, "name": s.name, "links": [{"rel": "self", "href": link},
                                                  {"rel": "bookmark", "href": link.replace("/v2.1", "")}]}
    if not detail:
        return base
    status, task_state, vm_state = cloud.status(s)
    addresses: dict[str, list] = {}
    if task_state not in ("scheduling",):
        for pid in s.port_ids:
            port = cloud.ports.get(pid)
            if port is None:
                continue
            net = cloud.networks[port["network_id"]]
            addresses.setdefault(net["name"], []).extend(
                {"version": 4, "addr": ip["ip_address"], "OS-EXT-IPS:type": "fixed",
                 "OS-EXT-IPS-MAC:mac_addr": port["mac_address"]} for ip in port["fixed_ips"]
            )
    flavor = s.flavor
    if req.microversion >= (2, 47):
        flavor_field = {"vcpus": flavor["vcpus"], "ram": flavor["ram"], "disk": flavor["disk"],
                        "ephemeral": flavor["OS-FLV-EXT-DATA:ephemeral"], "swap": flavor["swap"],
                        "original_name": flavor["name"], "extra_specs": flavor["extra_specs"]}
    else:
        flavor_field = {"id": flavor["id"], "links": [{"rel": "bookmark", "href": f"{req.base_url}/compute/flavors/{flavor['id']}"}]}
    launched = iso(s.created + s.build_seconds) if status == "ACTIVE" or (s.deleted_at and not s.fault) else None
    view = {
        **base,
        "status": status, "tenant_id": cloud.project_id, "user_id": s.user_id, "metadata": dict(s.metadata),
        "hostId": "" if s.fault else uuid.uuid5(uuid.NAMESPACE_DNS, cloud.project_id + "compute-1").hex,
        "image": {"id": s.image_id, "links": [{"rel": "bookmark", "href": f"{req.base_url}/compute/images/{s.image_id}"}]}
        if s.image_id else "",
        "flavor": flavor_field, "created": iso(s.created), "updated": iso(s.updated),
        "addresses": addresses, "accessIPv4": "", "accessIPv6": "", "OS-DCF:diskConfig": "MANUAL",
        "OS-EXT-AZ:availability_zone": "" if s.fault else s.availability_zone, "config_drive": "",
        "key_name": s.key_name, "OS-SRV-USG:launched_at": launched, "OS-SRV-USG:terminated_at": None,
        "security_groups": [{"name": g} for g in s.security_groups] if not s.fault else [],
        "OS-EXT-STS:task_state": task_state, "OS-EXT-STS:vm_state": vm_state,
        "OS-EXT-STS:power_state": {"ACTIVE": POWER_RUNNING, "SHUTOFF": POWER_SHUTDOWN, "SHELVED_OFFLOADED": POWER_SHUTDOWN}.get(status, POWER_NOSTATE),
        "os-extended-volumes:volumes_attached": [
            {"id": b["volume_id"], "delete_on_termination": b.get("delete_on_termination", False)}
            for b in s.block_device_mapping if status == "ACTIVE"
        ] + [  # volumes attached later (simulators/openstack/volumes.py)
            {"id": v["id"], "delete_on_termination": False}
            for v in cloud.volumes.values() if any(a["server_id"] == s.id for a in v["_attachments"])
        ],
    }
    if status in ("BUILD", "ACTIVE"):
        view["progress"] = 100 if status == "ACTIVE" else 0
    if status == "ERROR" and s.fault:
        view["fault"] = {"code": 500, "created": iso(s.created + s.build_seconds), "message": s.fault}
        if is_admin(req):
            view["fault"]["details"] = "Traceback (most recent call last): ... nova.exception.NoValidHost"
    mv = req.microversion
    if mv >= (2, 9):
        view["locked"] = s.locked
    if mv >= (2, 19):
        view["description"] = None
    if mv >= (2, 26):
        view["tags"] = list(s.tags)
    if mv >= (2, 63):
        view["trusted_image_certificates"] = None
    if mv >= (2, 71):
        view["server_groups"] = []
    if mv >= (2, 73):
        view["locked_reason"] = s.locked_reason
    if mv >= (2, 96):
        view["pinned_availability_zone"] = None
    if is_admin(req):
        view.update({
            "OS-EXT-SRV-ATTR:host": None if s.fault else "compute-1",
            "OS-EXT-SRV-ATTR:hypervisor_hostname": None if s.fault else "compute-1.local",
            "OS-EXT-SRV-ATTR:instance_name": f"instance-{int(s.created * 1000) % 0xFFFFFFFF:08x}",
        })
        if mv >= (2, 3):
            view.update({
                "OS-EXT-SRV-ATTR:user_data": s.user_data, "OS-EXT-SRV-ATTR:hostname": s.name.lower(),
                "OS-EXT-SRV-ATTR:reservation_id": f"r-{s.id[:8]}", "OS-EXT-SRV-ATTR:launch_index": 0,
                "OS-EXT-SRV-ATTR:kernel_id": "", "OS-EXT-SRV-ATTR:ramdisk_id": "",
                "OS-EXT-SRV-ATTR:root_device_name": "/dev/vda",
            })
    return view


def _matches(req: Request, s: Server, view: dict) -> bool:
    q = req.arg
    if q("name") and not re.search(q("name"), s.name):
        return False
    if q("status") and view["status"] != q("status").upper():
        return False
    if q("image") and s.image_id != q("image"):
        return False
    if q("flavor") and s.flavor["id"] != q("flavor"):
        return False
    if q("ip"):
        ips = [a["addr"] for addrs in view["addresses"].values() for a in addrs]
        if not any(re.search(q("ip"), ip) for ip in ips):
            return False
    if req.microversion >= (2, 26):
        tags = set(s.tags)
        split = lambda v: {t for t in (v or "").split(",") if t}  # noqa: E731
        if q("tags") and not split(q("tags")) <= tags:
            return False
        if q("tags-any") and not split(q("tags-any")) & tags:
            return False
        if q("not-tags") and split(q("not-tags")) <= tags:
            return False
        if q("not-tags-any") and split(q("not-tags-any")) & tags:
            return False
    return True


def list_servers(detail: bool):
    def handler(req: Request) -> Response:
        views = []
        for s in req.cloud.visible_servers():
            view = server_view(req, s, True)
            if _matches(req, s, view):
                views.append(view if detail else server_view(req, s, False))
        marker, limit = req.arg("marker"), req.arg("limit")
        if marker:
            ids = [v["id"] for v in views]
            if marker not in ids:
                return fault(400, f"marker [{marker}] not found")
            views = views[ids.index(marker) + 1:]
        body: dict = {}
        if limit is not None:
            if not limit.isdigit():
                return fault(400, "Invalid input for query parameters limit.")
            if len(views) > int(limit):
                views = views[: int(limit)]
                next_href = f"{req.base_url}{req.path}?limit={limit}&marker={views[-1]['id']}"
                body["servers_links"] = [{"rel": "next", "href": next_href}]
        body["servers"] = views
        return json_response(200, body)

    return handler


def show_server(req: Request) -> Response:
    s = req.cloud.get_server(req.match["id"])
    if s is None:
        return fault(404, f"Instance {req.match['id']} could not be found.")
    return json_response(200, {"server": server_view(req, s)})


def delete_server(req: Request) -> Response:
    server = req.cloud.get_server(req.match["id"])
    if server is not None and server.locked and not is_admin(req):
        return fault(409, f"Instance {server.id} is locked")
    if not req.cloud.delete_server(req.match["id"]):
        return fault(404, f"Instance {req.match['id']} could not be found.")
    return Response(204)


def _image_ref(req: Request, ref: str) -> dict | None:
    image = req.cloud.images.get(ref.rstrip("/").rsplit("/", 1)[-1])
    return image if image and image["status"] == "active" else None


def create_server(req: Request) -> Response:  # noqa: C901 - one validation step per field, as Nova
    cloud = req.cloud
    body = req.json()
    spec = body.get("server") if isinstance(body, dict) else None
    if not isinstance(spec, dict):
        return fault(400, "Invalid input for field/attribute server. Value: None. None is not of type 'object'")
    name = spec.get("name")
    if not isinstance(name, str) or not 1 <= len(name.strip()) <= 255:
        return fault(400, "Invalid input for field/attribute name. Value: %r." % (name,))
    if "flavorRef" not in spec:
        return fault(400, "Invalid input for field/attribute server. 'flavorRef' is a required property")
    flavor = find_flavor(req, str(spec["flavorRef"]))
    if flavor is None:
        return fault(400, "Invalid flavorRef provided.")
    bdms = spec.get("block_device_mapping_v2") or []
    boot_bdm = next((b for b in bdms if str(b.get("boot_index")) == "0"), None)
    image_id = ""
    if boot_bdm is None:
        image = _image_ref(req, str(spec.get("imageRef") or ""))
        if not spec.get("imageRef"):
            return fault(400, "Block Device Mapping is Invalid: Boot sequence for the instance and image/block "
                              "device mapping combination is not valid.")
        if image is None:
            return fault(400, "Can not find requested image")
        image_id = image["id"]
    volumes = []
    existing = []  # volumes the server gets attached at boot (a persistent home)
    for b in bdms:
        if b.get("source_type") == "volume" and str(b.get("boot_index")) != "0":
            existing.append(str(b.get("uuid") or ""))
            continue
        if b.get("source_type") == "image":
            if _image_ref(req, str(b.get("uuid") or "")) is None:
                return fault(400, "Can not find requested image")
            size = b.get("volume_size")
            if b.get("destination_type") == "volume" and (not isinstance(size, int) or size < 1):
                return fault(400, "Block Device Mapping is Invalid: Images with destination_type 'volume' need "
                                  "to have a non-zero size specified")
        volumes.append({**b, "volume_id": str(uuid.uuid4())})
    networks = spec.get("networks")
    if networks is None and req.microversion >= (2, 37):
        return fault(400, "Invalid input for field/attribute server. 'networks' is a required property")
    net_ids: list[str] = []
    if isinstance(networks, list):
        for n in networks:
            if not isinstance(n, dict):
                return fault(400, "Invalid input for field/attribute networks.")
            if n.get("port"):
                return fault(400, "The fake does not support pre-created ports.")
            if n.get("uuid") not in cloud.networks:
                return fault(400, f"Network {n.get('uuid')} could not be found.")
            net_ids.append(n["uuid"])
    elif networks in ("auto", None):  # "auto" (or no networks before 2.37): the project's network
        net_ids = [next(iter(cloud.networks))]
    elif networks != "none":
        return fault(400, "Invalid input for field/attribute networks.")
    groups = [g.get("name") for g in spec.get("security_groups") or [{"name": "default"}]]
    known = {g["name"] for g in cloud.security_groups.values()} | set(cloud.security_groups)
    for g in groups:
        if g not in known:
            return fault(400, f"Security group {g} not found for project {cloud.project_id}.")
    groups = [cloud.security_groups[g]["name"] if g in cloud.security_groups else g for g in groups]
    key_name = spec.get("key_name")
    if key_name is not None and key_name not in cloud.keypairs:
        return fault(400, "Invalid key_name provided.")
    zone = spec.get("availability_zone") or "nova"
    if zone not in cloud.zones:
        return fault(400, "The requested availability zone is not available")
    metadata = spec.get("metadata") or {}
    if not isinstance(metadata, dict) or not all(
        isinstance(k, str) and isinstance(v, str) and 1 <= len(k) <= 255 and len(v) <= 255 for k, v in metadata.items()
    ):
        return fault(400, "Invalid input for field/attribute metadata.")
    tags = spec.get("tags") or []
    if tags and req.microversion < (2, 52):
        return fault(400, "Additional properties are not allowed ('tags' was unexpected)")
    if not all(isinstance(t, str) and TAG_RE.match(t) for t in tags) or len(tags) > 50:
        return fault(400, "Invalid input for field/attribute tags.")
    user_data = spec.get("user_data")
    if user_data is not None:
        try:
            base64.b64decode(user_data, validate=True)
        except (binascii.Error, ValueError, TypeError):
            return fault(400, "User data needs to be valid base 64.")
        if len(user_data) > 65535:
            return fault(400, "Invalid input for field/attribute user_data.")
    from simulators.openstack.volumes import attach_at_boot, refuse_at_boot

    with cloud.lock:  # the volumes are checked and taken with the server, as Nova reserves them
        for vid in existing:
            refused = refuse_at_boot(cloud, vid, zone)
            if refused:
                return fault(400, refused)
        try:
            s = cloud.create_server(
                name=name, flavor=flavor, image_id=image_id, networks=net_ids, security_groups=groups,
                key_name=key_name, availability_zone=zone, metadata=dict(metadata), tags=list(tags),
                user_data=user_data, block_device_mapping=volumes, user_id=req.token.user.id,
            )
        except QuotaExceeded as e:
            return fault(403, str(e))
        for vid in existing:
            attach_at_boot(cloud, vid, s.id)
    link = f"{req.base_url}{PREFIX}/servers/{s.id}"
    body = {"server": {"id": s.id, "links": [{"rel": "self", "href": link}], "OS-DCF:diskConfig": "MANUAL",
                       "security_groups": [{"name": g} for g in groups], "adminPass": "fakeAdminPass0"}}
    return json_response(202, body, Location=link)


# -- small read-only resources -------------------------------------------------------------
def list_zones(req: Request) -> Response:
    return json_response(200, {"availabilityZoneInfo": [
        {"zoneName": z, "zoneState": {"available": True}, "hosts": None} for z in req.cloud.zones]})


def list_keypairs(req: Request) -> Response:
    return json_response(200, {"keypairs": [{"keypair": k} for k in req.cloud.keypairs.values()]})


def show_keypair(req: Request) -> Response:
    k = req.cloud.keypairs.get(req.match["name"])
    if k is None:
        return fault(404, f"Keypair {req.match['name']} not found for user {req.token.user.id}")
    return json_response(200, {"keypair": k})


def limits(req: Request) -> Response:
    live = [s for s in req.cloud.visible_servers() if not s.deleted_at]
    q = req.cloud.quotas
    return json_response(200, {"limits": {"rate": [], "absolute": {
        "maxTotalInstances": q["instances"], "totalInstancesUsed": len(live),
        "maxTotalCores": q["cores"], "totalCoresUsed": sum(s.flavor["vcpus"] for s in live),
        "maxTotalRAMSize": q["ram"], "totalRAMUsed": sum(s.flavor["ram"] for s in live),
        "maxServerMeta": 128, "maxImageMeta": 128, "maxPersonality": 5, "maxPersonalitySize": 10240,
        "maxTotalKeypairs": 100, "maxServerGroups": 10, "maxServerGroupMembers": 10,
        "maxSecurityGroups": -1, "maxSecurityGroupRules": -1, "maxTotalFloatingIps": -1,
        "totalSecurityGroupsUsed": 0, "totalFloatingIpsUsed": 0, "totalServerGroupsUsed": 0,
    }}})


def register(router: Router) -> None:
    base = lambda r: json_response(200, {"versions": [  # noqa: E731
        {"id": "v2.0", "status": "SUPPORTED", "version": "", "min_version": "", "updated": "2011-01-21T11:33:21Z",
         "links": [{"rel": "self", "href": f"{r.base_url}/compute/v2/"}]},
        version_doc(r.base_url),
    ]})
    router.add("GET", "/compute", base)
    router.add("GET", PREFIX, lambda r: json_response(200, {"version": version_doc(r.base_url)}))
    router.add("GET", PREFIX + "/servers", versioned(list_servers(False)))
    router.add("GET", PREFIX + "/servers/detail", versioned(list_servers(True)))
    router.add("POST", PREFIX + "/servers", versioned(create_server))
    router.add("GET", PREFIX + r"/servers/(?P<id>[^/]+)", versioned(show_server))
    router.add("DELETE", PREFIX + r"/servers/(?P<id>[^/]+)", versioned(delete_server))
    router.add("GET", PREFIX + "/flavors", versioned(list_flavors(False)))
    router.add("GET", PREFIX + "/flavors/detail", versioned(list_flavors(True)))
    router.add("GET", PREFIX + r"/flavors/(?P<id>[^/]+)", versioned(show_flavor))
    router.add("GET", PREFIX + "/os-availability-zone", versioned(list_zones))
    router.add("GET", PREFIX + "/os-keypairs", versioned(list_keypairs))
    router.add("GET", PREFIX + r"/os-keypairs/(?P<name>[^/]+)", versioned(show_keypair))
    router.add("GET", PREFIX + "/limits", versioned(limits))
