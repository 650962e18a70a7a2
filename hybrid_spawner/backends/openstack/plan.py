"""Pure planning for OpenStack servers: what to ask Nova for, and how to read its answers.

Nothing here talks to the network, so every rule is unit-tested in milliseconds. The spawner
(``openstack.py``) resolves names to ids through openstacksdk and then calls
:func:`create_server_attrs`; the status cache reads listings through :func:`observe_server`.
"""

from __future__ import annotations

import base64
import re
import uuid
from dataclasses import dataclass, field

# Metadata keys every hub-owned server carries (visible to the project's users; never secret).
META_HUB = "hybrid-hub"
META_OWNER = "hybrid-owner"
META_SERVER = "hybrid-server"
# Nova filters listings by tag (not by metadata), so the hub id also goes into one tag.
TAG_PREFIX = "hybrid-hub:"
NOVA_META_MAX = 255
NOVA_TAG_MAX = 60
NOVA_USER_DATA_MAX = 65535  # bytes of base64 text Nova accepts
SERVER_NAME_MAX = 63  # a DNS label: Nova derives the hostname from the name


class PlanError(ValueError):
    """A setting or user choice that cannot make a valid server request (admin/user fixable)."""


@dataclass(frozen=True)
class ServerPlan:
    """Everything the admin's traits and the user's choice say about one server."""

    name: str
    image: str  # name or id
    flavor: str  # name or id
    networks: tuple[str, ...]  # names or ids; the first one carries the notebook server's address
    security_groups: tuple[str, ...] = ()
    key_name: str = ""
    availability_zone: str = ""
    boot_volume_size: int = 0  # GiB; 0 boots from the image on the hypervisor's disk
    delete_volume_on_termination: bool = True
    metadata: dict = field(default_factory=dict)
    tags: tuple[str, ...] = ()
    user_data: str = ""
    home_volume_id: str = ""  # an existing Cinder volume attached at boot (the persistent home)


@dataclass(frozen=True)
class ResolvedIds:
    """Ids looked up from the plan's names (by the network code)."""

    image_id: str
    flavor_id: str
    network_ids: tuple[str, ...]


def looks_like_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
        return True
    except ValueError:
        return False


def hub_tag(hub_id: str) -> str:
    tag = TAG_PREFIX + hub_id
    if not hub_id or len(tag) > NOVA_TAG_MAX or "," in hub_id or "/" in hub_id:
        raise PlanError(
            f"hub id {hub_id!r} cannot be a Nova tag: it must be 1-{NOVA_TAG_MAX - len(TAG_PREFIX)} "
            "characters without ',' or '/'"
        )
    return tag


def server_name(template: str, *, username: str, servername: str, hub_id: str) -> str:
    """Expand the admin's name template into a DNS-safe server name."""
    try:
        raw = template.format(username=username, servername=servername, hub_id=hub_id)
    except (KeyError, IndexError, ValueError) as e:
        raise PlanError(
            f"server_name_template {template!r} is invalid ({e}); use {{username}}, {{servername}}, {{hub_id}}"
        ) from None
    name = re.sub(r"[^a-z0-9-]+", "-", raw.lower()).strip("-")
    name = re.sub(r"-{2,}", "-", name)[:SERVER_NAME_MAX].strip("-")
    if not name:
        raise PlanError(f"server_name_template {template!r} gives an empty name for user {username!r}")
    return name


def server_metadata(*, hub_id: str, owner: str, servername: str, extra: dict | None = None) -> dict:
    """Owner, hub and server name as Nova metadata, plus the admin's extra keys (ours win)."""
    meta = {str(k): str(v) for k, v in (extra or {}).items()}
    meta.update({META_HUB: hub_id, META_OWNER: owner, META_SERVER: servername})
    for key, value in meta.items():
        if not 1 <= len(key) <= NOVA_META_MAX or len(value) > NOVA_META_MAX:
            raise PlanError(f"metadata {key!r}: Nova allows keys of 1-255 and values of up to 255 characters")
    return meta


def validate_plan(plan: ServerPlan) -> None:
    """Raise PlanError naming the setting to fix; a valid plan passes silently."""
    if not plan.image.strip():
        raise PlanError("no image configured: set OpenStackSpawner.image to a Glance image name or id")
    if not plan.flavor.strip():
        raise PlanError("no flavor configured: set OpenStackSpawner.flavor to a Nova flavor name or id")
    if not plan.networks or not all(n.strip() for n in plan.networks):
        raise PlanError("no network configured: set OpenStackSpawner.networks to the tenant's private network(s)")
    if plan.boot_volume_size < 0:
        raise PlanError(f"boot_volume_size must be 0 (boot from image) or a size in GiB, not {plan.boot_volume_size}")
    if len(base64.b64encode(plan.user_data.encode())) > NOVA_USER_DATA_MAX:
        raise PlanError("the node bootstrap script is larger than Nova's 64 KiB user_data limit")
    for tag in plan.tags:
        if not 1 <= len(tag) <= NOVA_TAG_MAX or "," in tag or "/" in tag:
            raise PlanError(f"tag {tag!r} is not a valid Nova tag (1-60 characters, no ',' or '/')")


def create_server_attrs(plan: ServerPlan, ids: ResolvedIds) -> dict:
    """Keyword arguments for ``conn.compute.create_server`` (the Nova POST /servers body)."""
    validate_plan(plan)
    attrs: dict = {
        "name": plan.name,
        "flavor_id": ids.flavor_id,
        "networks": [{"uuid": n} for n in ids.network_ids],
        "metadata": dict(plan.metadata),
        "tags": list(plan.tags),
    }
    if plan.boot_volume_size:
        # Nova creates the root volume from the image; imageRef stays empty for a volume boot.
        attrs["image_id"] = ""
        attrs["block_device_mapping"] = [{
            "boot_index": 0, "uuid": ids.image_id, "source_type": "image", "destination_type": "volume",
            "volume_size": plan.boot_volume_size, "delete_on_termination": plan.delete_volume_on_termination,
        }]
    else:
        attrs["image_id"] = ids.image_id
    if plan.home_volume_id:
        # Attached at boot, not after: the node's bootstrap finds its home disk already there.
        attrs.setdefault("block_device_mapping", []).append({
            "uuid": plan.home_volume_id, "source_type": "volume", "destination_type": "volume",
            "boot_index": -1, "delete_on_termination": False,
        })
    if plan.security_groups:
        attrs["security_groups"] = [{"name": g} for g in plan.security_groups]
    if plan.key_name:
        attrs["key_name"] = plan.key_name
    if plan.availability_zone:
        attrs["availability_zone"] = plan.availability_zone
    if plan.user_data:
        attrs["user_data"] = base64.b64encode(plan.user_data.encode()).decode()
    return attrs


# -- reading Nova's answers -----------------------------------------------------------------
def private_ip(addresses: dict | None, network: str | None = None) -> str | None:
    """The first fixed IPv4 address on ``network`` (a network name; None: on any network), or
    None while Neutron has not bound a port. Floating and IPv6 addresses never count."""
    addresses = addresses or {}
    networks = [addresses.get(network) or []] if network is not None else addresses.values()
    for entries in networks:
        for entry in entries:
            if entry.get("version", 4) == 4 and entry.get("OS-EXT-IPS:type", "fixed") == "fixed":
                return entry.get("addr")
    return None


def fault_message(server_name: str, fault: dict | None, status: str) -> str:
    """What the researcher reads when Nova gives up on their server."""
    reason = (fault or {}).get("message") or f"the server went to status {status}"
    return f"OpenStack could not start {server_name}: {reason.strip()}"


def quota_message(nova_message: str) -> str:
    return (
        f"The research project's OpenStack quota is exhausted ({nova_message.strip()}). "
        "Stop another server or ask the project admin for more quota."
    )


def is_capacity_fault(fault: dict | None) -> bool:
    """Nova's scheduler found no host for the flavor (the fault of a server in ERROR)."""
    return "no valid host" in ((fault or {}).get("message") or "").lower()


def is_quota_error(status_code: int | None, message: str) -> bool:
    return status_code in (403, 413) and "quota exceeded" in (message or "").lower()


# Nova statuses that mean the server will not serve notebooks again without an admin.
GONE_STATUSES = frozenset({"ERROR", "DELETED", "SOFT_DELETED", "SHUTOFF", "SHELVED", "SHELVED_OFFLOADED", "SUSPENDED"})
PENDING_STATUSES = frozenset({"BUILD", "REBUILD", "REBOOT", "HARD_REBOOT", "MIGRATING", "RESIZE", "VERIFY_RESIZE"})


def classify_status(status: str | None, task_state: str | None = None) -> str:
    """'running', 'pending' or 'gone' for a Nova server status (a deleting server is gone)."""
    status = (status or "").upper()
    if status in ("SHELVED", "SHELVED_OFFLOADED") and task_state in ("unshelving", "spawning"):
        return "pending"  # being unshelved: on its way back, not gone
    if task_state == "deleting" or status in GONE_STATUSES:
        return "gone"
    if status in PENDING_STATUSES:
        return "pending"
    if status == "ACTIVE":
        return "running"
    return "pending"  # PAUSED, RESCUE, UNKNOWN ...: not a reason to declare the server dead


#: what a start does with a shelved (parked) server, by its Nova status and task
UNSHELVE = "unshelve"
WAIT = "wait"
REPLACE = "replace"


def unshelve_step(status: str | None, task_state: str | None) -> str:
    """SHELVED / SHELVED_OFFLOADED with no task: unshelve it; shelving or unshelving: wait;
    anything else (ACTIVE again, deleted, in error) cannot be resumed with a fresh credential:
    a new server replaces it."""
    status = (status or "").upper()
    if task_state and (task_state.startswith("shelving") or task_state in ("unshelving", "spawning")):
        return WAIT
    if status in ("SHELVED", "SHELVED_OFFLOADED"):
        return UNSHELVE
    return REPLACE
