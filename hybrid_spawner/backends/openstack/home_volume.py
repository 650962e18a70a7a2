"""Pure rules of the OpenStack persistent home: one Cinder volume per user and named server,
found again by its metadata, checked against the admin's bounds, attached at boot.

The network code (spawner.py) lists, creates and waits; everything it decides is here.
"""

from __future__ import annotations

from dataclasses import dataclass

from hybrid_spawner.home_bounds import HomeRequestRefused, check_home_request
from hybrid_spawner.backends.openstack.plan import META_HUB, META_OWNER, META_SERVER, PlanError

# Marks a volume as a home (as opposed to a boot volume Nova made from an image).
META_ROLE = "hybrid-role"
ROLE_HOME = "home"


@dataclass(frozen=True)
class HomeVolumeRequest:
    size_gb: int
    volume_type: str  # "" for the cloud's default type


def check_request(size_gb, volume_type, *, max_size_gb: int, allowed_types: list[str]) -> HomeVolumeRequest:
    """The request if it is within the admin's bounds; PlanError (shown to the user) otherwise."""
    try:
        size, kind = check_home_request(size_gb, volume_type, max_size_gb=max_size_gb, allowed_types=allowed_types)
    except HomeRequestRefused as e:
        raise PlanError(str(e)) from None
    return HomeVolumeRequest(size, kind)


def volume_metadata(*, hub_id: str, owner: str, servername: str) -> dict:
    return {META_HUB: hub_id, META_OWNER: owner, META_SERVER: servername, META_ROLE: ROLE_HOME}


def volume_name(server_name: str) -> str:
    return f"{server_name}-home"[:255]


def pick_home(volumes: list[dict], wanted: dict) -> dict | None:
    """This user's and server's home among ``volumes`` (dicts with "id", "metadata", "status",
    "created_at"); the oldest if an interrupted start ever made two (the others are reported)."""
    mine = [v for v in volumes if all((v.get("metadata") or {}).get(k) == val for k, val in wanted.items())]
    mine = [v for v in mine if v.get("status") not in ("deleting", "error_deleting")]
    return min(mine, key=lambda v: (v.get("created_at") or "", v["id"])) if mine else None


def refuse_in_use(volume: dict, server_label: str) -> str | None:
    """The user's sentence when the home cannot be attached now, or None when it can."""
    status = volume.get("status")
    if status == "in-use":
        others = [a.get("server_id") for a in volume.get("attachments") or []]
        where = f" (server {', '.join(o for o in others if o)})" if any(others) else ""
        return (f"Your home volume {volume['id']} is attached to another server{where}; stop that "
                f"server first. Nothing was started for {server_label}.")
    if status in ("error", "error_restoring", "error_extending"):
        return f"Your home volume {volume['id']} is in state {status!r}; ask the hub admin. Nothing was started."
    return None
