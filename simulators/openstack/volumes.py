"""Cinder (Block Storage API v3) volumes and Nova's volume attachments, as the API references
describe them, for persistent homes.

- ``POST /volume/v3/{project}/volumes`` answers 202 with status ``creating``; the volume reads
  ``available`` once ``volume_build_seconds`` have passed. An unknown availability zone, a size
  that is not a positive integer or over the gigabytes quota is a 400/413 with Cinder's wording.
- ``POST /compute/v2.1/servers/{id}/os-volume_attachments`` attaches an ``available`` volume in
  the server's availability zone (Nova's ``cross_az_attach = False``): the volume reads
  ``in-use`` with the attachment; a volume already in use, still creating, or in another zone
  is a 400 naming the reason, a server still building a 409.
- ``DELETE .../os-volume_attachments/{volume}`` answers 202; the volume reads ``detaching`` for
  ``volume_detach_seconds`` and then ``available``. Deleting a server detaches its volumes the
  same way (its data stays: only the server's own disk goes).
- ``DELETE /volume/v3/{project}/volumes/{id}`` refuses a volume that is attached or detaching.
The node runner reads attachments (the server's ``os-extended-volumes:volumes_attached``) to
give a node the volume's own directory as its disk.
"""

from __future__ import annotations

import time

from simulators.openstack import keystone
from simulators.openstack.app import Request, Response, Router, json_response
from simulators.openstack.nova import fault, versioned
from simulators.openstack.state import iso, new_id

CINDER = "/volume"
NOVA = "/compute/v2.1"
MAX_VERSION = "3.70"


def cinder_fault(status: int, message: str) -> Response:
    name = {400: "badRequest", 404: "itemNotFound", 413: "overLimit"}.get(status, "computeFault")
    return json_response(status, {name: {"code": status, "message": message}})


def volume_status(cloud, volume: dict, now: float | None = None) -> str:
    """What Cinder reports right now (time drives the transitions, as in the servers' fake)."""
    now = time.time() if now is None else now
    if now < volume["_created"] + cloud.volume_build_seconds:
        return "creating"
    if volume["_attachments"]:
        return "in-use"
    if now < volume["_detached_at"] + cloud.volume_detach_seconds:
        return "detaching"
    return "available"


def volume_view(cloud, volume: dict) -> dict:
    status = volume_status(cloud, volume)
    return {
        "id": volume["id"], "name": volume["name"], "size": volume["size"], "status": status,
        "availability_zone": volume["availability_zone"], "volume_type": volume["volume_type"],
        "metadata": dict(volume["metadata"]), "description": volume["description"],
        "bootable": "false", "encrypted": volume["encrypted"], "multiattach": False,
        "created_at": iso(volume["_created"]), "updated_at": iso(volume["_updated"]),
        "user_id": volume["user_id"], "os-vol-tenant-attr:tenant_id": cloud.project_id,
        "attachments": [
            {"id": a["attachment_id"], "attachment_id": a["attachment_id"], "volume_id": volume["id"],
             "server_id": a["server_id"], "device": a["device"], "attached_at": iso(a["at"])}
            for a in volume["_attachments"]
        ] if status == "in-use" else [],
        "links": [], "snapshot_id": None, "source_volid": None, "consistencygroup_id": None,
        "replication_status": None, "migration_status": None, "group_id": None,
    }


def versions(req: Request) -> Response:
    href = f"{req.base_url}{CINDER}/v3/"
    return json_response(300, {"versions": [{
        "id": "v3.0", "status": "CURRENT", "version": MAX_VERSION, "min_version": "3.0",
        "updated": "2023-01-01T00:00:00Z", "links": [{"rel": "self", "href": href}],
        "media-types": [{"base": "application/json", "type": "application/vnd.openstack.volume+json;version=3"}],
    }]})


def version(req: Request) -> Response:
    return json_response(200, {"version": {
        "id": "v3.0", "status": "CURRENT", "version": MAX_VERSION, "min_version": "3.0",
        "updated": "2023-01-01T00:00:00Z", "links": [{"rel": "self", "href": f"{req.base_url}{CINDER}/v3/"}],
        "media-types": [{"base": "application/json", "type": "application/vnd.openstack.volume+json;version=3"}],
    }})


def authed(handler):
    def wrapped(req: Request) -> Response:
        resp = keystone.authenticate(req)
        if resp is None and req.match["project"] != req.cloud.project_id:
            resp = cinder_fault(404, f"Project {req.match['project']} could not be found.")
        resp = resp or handler(req)
        resp.headers["OpenStack-API-Version"] = f"volume {MAX_VERSION}"
        return resp

    return wrapped


def create_volume(req: Request) -> Response:
    body = (req.json() or {}).get("volume")
    if not isinstance(body, dict):
        return cinder_fault(400, "Missing required element 'volume' in request body.")
    size = body.get("size")
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        return cinder_fault(400, f"Invalid input received: Volume size '{size}' must be an integer and greater than 0.")
    cloud = req.cloud
    zone = body.get("availability_zone") or cloud.zones[0]
    if zone not in cloud.zones:
        return cinder_fault(400, f"Invalid input received: Availability zone '{zone}' is invalid.")
    metadata = body.get("metadata") or {}
    if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
        return cinder_fault(400, "Invalid input received: metadata must be a map of strings.")
    with cloud.lock:
        used = sum(v["size"] for v in cloud.volumes.values())
        if used + size > cloud.volume_quota_gb:
            return cinder_fault(413, (
                "VolumeSizeExceedsAvailableQuota: Requested volume or snapshot exceeds allowed gigabytes quota. "
                f"Requested {size}G, quota is {cloud.volume_quota_gb}G and {used}G has been consumed."))
        now = time.time()
        vid = new_id()
        cloud.volumes[vid] = {
            "id": vid, "name": body.get("name") or "", "size": size, "availability_zone": zone,
            "volume_type": body.get("volume_type") or "__DEFAULT__", "metadata": dict(metadata),
            "description": body.get("description"), "encrypted": False,
            "user_id": req.token.user.id, "_created": now, "_updated": now, "_attachments": [],
            "_detached_at": 0.0,
        }
        return json_response(202, {"volume": volume_view(cloud, cloud.volumes[vid])})


def list_volumes(req: Request) -> Response:
    cloud = req.cloud
    with cloud.lock:
        found = [volume_view(cloud, v) for v in sorted(cloud.volumes.values(), key=lambda v: v["_created"])]
    for key in ("name", "status"):
        value = req.arg(key)
        if value is not None:
            found = [v for v in found if v[key] == value]
    return json_response(200, {"volumes": found})


def show_volume(req: Request) -> Response:
    cloud = req.cloud
    with cloud.lock:
        volume = cloud.volumes.get(req.match["id"])
        if volume is None:
            return cinder_fault(404, f"Volume {req.match['id']} could not be found.")
        return json_response(200, {"volume": volume_view(cloud, volume)})


def delete_volume(req: Request) -> Response:
    cloud = req.cloud
    with cloud.lock:
        volume = cloud.volumes.get(req.match["id"])
        if volume is None:
            return cinder_fault(404, f"Volume {req.match['id']} could not be found.")
        if volume_status(cloud, volume) not in ("available", "error"):
            return cinder_fault(400, (
                "Invalid volume: Volume status must be available or error or error_restoring or "
                "error_extending or error_managing and must not be migrating, attached, belong to a "
                "group, have snapshots, awaiting a transfer, or be disassociated from snapshots after "
                "volume transfer."))
        del cloud.volumes[volume["id"]]
    return Response(202)


# -- Nova: attachments ----------------------------------------------------------------------------
def attachment_view(server_id: str, volume_id: str, device: str) -> dict:
    return {"id": volume_id, "volumeId": volume_id, "serverId": server_id, "device": device}


def attach(req: Request) -> Response:
    cloud = req.cloud
    server = cloud.get_server(req.match["id"])
    if server is None or server.deleted_at:
        return fault(404, f"Instance {req.match['id']} could not be found.")
    body = (req.json() or {}).get("volumeAttachment") or {}
    vid = body.get("volumeId")
    with cloud.lock:
        volume = cloud.volumes.get(vid or "")
        if volume is None:
            return fault(404, f"Volume {vid} could not be found.")
        status, _task, vm_state = cloud.status(server)
        if status not in ("ACTIVE", "SHUTOFF"):
            return fault(409, f"Cannot 'attach_volume' instance {server.id} while it is in vm_state {vm_state}")
        current = volume_status(cloud, volume)
        if current != "available":
            return fault(400, f"Invalid volume: volume {vid} status must be 'available'. Currently in '{current}'")
        if volume["availability_zone"] != server.availability_zone:
            return fault(400, (
                f"Invalid volume: Instance {server.id} and volume {vid} are not in the same "
                f"availability_zone. Instance is in {server.availability_zone}. Volume is in "
                f"{volume['availability_zone']}"))
        attach_at_boot(cloud, vid, server.id)
        device = volume["_attachments"][-1]["device"]
    return json_response(200, {"volumeAttachment": attachment_view(server.id, vid, device)})


def _attached_to(cloud, server_id: str) -> list[tuple[dict, dict]]:
    return [(v, a) for v in cloud.volumes.values() for a in v["_attachments"] if a["server_id"] == server_id]


def list_attachments(req: Request) -> Response:
    cloud = req.cloud
    if cloud.get_server(req.match["id"]) is None:
        return fault(404, f"Instance {req.match['id']} could not be found.")
    with cloud.lock:
        found = [attachment_view(req.match["id"], v["id"], a["device"]) for v, a in _attached_to(cloud, req.match["id"])]
    return json_response(200, {"volumeAttachments": found})


def detach(req: Request) -> Response:
    cloud = req.cloud
    if cloud.get_server(req.match["id"]) is None:
        return fault(404, f"Instance {req.match['id']} could not be found.")
    with cloud.lock:
        for volume, attachment in _attached_to(cloud, req.match["id"]):
            if volume["id"] == req.match["volume"]:
                detach_now(volume, attachment)
                return Response(202)
    return fault(404, f"volume_id not found: {req.match['volume']}")


def refuse_at_boot(cloud, vid: str, zone: str) -> str | None:
    """Why a server cannot boot with volume ``vid`` attached (Nova's 400 text), or None."""
    volume = cloud.volumes.get(vid)
    if volume is None:
        return f"Block Device Mapping is Invalid: failed to get volume {vid}."
    status = volume_status(cloud, volume)
    if status != "available":
        return f"Invalid volume: volume {vid} status must be 'available'. Currently in '{status}'"
    if volume["availability_zone"] != zone:
        return (f"Invalid volume: Instance and volume not in same availability_zone. Instance is in "
                f"{zone}. Volume is in {volume['availability_zone']}")
    return None


def attach_at_boot(cloud, vid: str, server_id: str) -> None:
    volume = cloud.volumes[vid]
    taken = {a["device"] for v in cloud.volumes.values() for a in v["_attachments"] if a["server_id"] == server_id}
    device = next(f"/dev/vd{c}" for c in "bcdefghijklmnop" if f"/dev/vd{c}" not in taken)
    volume["_attachments"].append({"server_id": server_id, "attachment_id": new_id(), "device": device, "at": time.time()})
    volume["_updated"] = time.time()


def detach_now(volume: dict, attachment: dict) -> None:
    volume["_attachments"].remove(attachment)
    volume["_detached_at"] = volume["_updated"] = time.time()


def detach_all(cloud, server_id: str) -> None:
    """A deleted server's volumes come free (Nova detaches them as it deletes the server)."""
    with cloud.lock:
        for volume, attachment in _attached_to(cloud, server_id):
            detach_now(volume, attachment)


def register(router: Router) -> None:
    router.add("GET", CINDER, versions)
    router.add("GET", CINDER + "/v3", version)
    project = CINDER + r"/v3/(?P<project>[0-9a-f]+)"
    router.add("POST", project + "/volumes", authed(create_volume))
    router.add("GET", project + "/volumes", authed(list_volumes))
    router.add("GET", project + "/volumes/detail", authed(list_volumes))
    router.add("GET", project + r"/volumes/(?P<id>[^/]+)", authed(show_volume))
    router.add("DELETE", project + r"/volumes/(?P<id>[^/]+)", authed(delete_volume))
    router.add("POST", NOVA + r"/servers/(?P<id>[^/]+)/os-volume_attachments", versioned(attach))
    router.add("GET", NOVA + r"/servers/(?P<id>[^/]+)/os-volume_attachments", versioned(list_attachments))
    router.add("DELETE", NOVA + r"/servers/(?P<id>[^/]+)/os-volume_attachments/(?P<volume>[^/]+)", versioned(detach))
