"""Pure rules of the EC2 persistent home: one EBS volume per user and named server, found again by
its tags, kept across stops, attached to each new instance in its availability zone, moved to
another zone by snapshot when its own zone cannot take the instance.

The network code (spawner.py) lists, creates, attaches and waits; everything it decides is here.
"""

from __future__ import annotations

from hybrid_spawner.backends.ec2.plan import TAG_HUB, TAG_OWNER, TAG_SERVER, instance_tags

TAG_ROLE = "jupyterhub/role"
ROLE_HOME = "home"
#: the tag by which the node (and the node runner) knows which volume to wait for and mount
TAG_HOME_VOLUME = "jupyterhub/home-volume"
#: when the home was last attached or released (ISO 8601, UTC): what "unused for N days" counts from
TAG_LAST_USED = "jupyterhub/last-used"
#: on a snapshot that holds an archived home (the volume itself was deleted)
TAG_ARCHIVED = "jupyterhub/archived-at"
#: where the hub attaches the home (on Nitro instances it shows up as an NVMe disk whose
#: /dev/disk/by-id name carries the volume id; see home_device)
ATTACH_DEVICE = "/dev/sdh"


def home_tags(user: str, server: str, hub_id: str, extra: dict[str, str]) -> list[dict]:
    """The volume's (and its snapshots') tags: the instance's, plus its role."""
    return [*instance_tags(user, server, hub_id, extra), {"Key": TAG_ROLE, "Value": ROLE_HOME}]


def home_filters(user: str, hub_id: str) -> list[dict]:
    """DescribeVolumes / DescribeSnapshots filters for this user's homes (the server name, which
    may be empty, is matched by :func:`of_server`)."""
    return [
        {"Name": f"tag:{TAG_HUB}", "Values": [hub_id]},
        {"Name": f"tag:{TAG_OWNER}", "Values": [user]},
        {"Name": f"tag:{TAG_ROLE}", "Values": [ROLE_HOME]},
    ]


def of_server(items: list[dict], server: str) -> list[dict]:
    """The volumes or snapshots tagged for the named server ``server`` ("" is the default one)."""
    return [i for i in items if {t["Key"]: t["Value"] for t in i.get("Tags") or []}.get(TAG_SERVER, "") == server]


def pick_home(volumes: list[dict], server: str) -> dict | None:
    """The home among DescribeVolumes results: the oldest usable one (an interrupted start or
    move can leave two; the newer ones are never chosen, so the home never forks)."""
    usable = [v for v in of_server(volumes, server) if v.get("State") not in ("deleting", "deleted", "error")]
    return min(usable, key=lambda v: (str(v.get("CreateTime") or ""), v["VolumeId"])) if usable else None


def pick_snapshot(snapshots: list[dict], server: str) -> dict | None:
    """The newest completed home snapshot (what an archived home is restored from)."""
    done = [s for s in of_server(snapshots, server) if s.get("State") == "completed"]
    return max(done, key=lambda s: (str(s.get("StartTime") or ""), s["SnapshotId"])) if done else None


def attached_elsewhere(volume: dict, instance_id: str | None = None) -> str | None:
    """The instance the volume is attached to, if it is not ``instance_id``."""
    for attachment in volume.get("Attachments") or []:
        if attachment.get("State") in ("attaching", "attached", "busy") and attachment.get("InstanceId") != instance_id:
            return attachment.get("InstanceId")
    return None


def in_use_message(volume_id: str, other: str) -> str:
    return (f"Your home volume {volume_id} is attached to instance {other}; stop the server using it "
            "first. Nothing was started.")


def subnets_by_zone(subnet_ids: list[str], zones: dict[str, str]) -> dict[str, list[str]]:
    """{zone: [subnet ids in the admin's order]} for the configured subnets."""
    grouped: dict[str, list[str]] = {}
    for subnet in subnet_ids:
        grouped.setdefault(zones[subnet], []).append(subnet)
    return grouped


def zone_order(home_zone: str | None, subnet_ids: list[str], zones: dict[str, str]) -> list[str]:
    """Zones to try, the home's first: the instance goes where its home is; another zone costs
    a move by snapshot, so it comes only after the home's zone had no capacity."""
    ordered = list(subnets_by_zone(subnet_ids, zones))
    if home_zone in ordered:
        ordered.remove(home_zone)
        ordered.insert(0, home_zone)
    return ordered


def home_device(volume_id: str) -> str:
    """The stable device path of an attached EBS volume on a Nitro instance (udev's by-id link)."""
    return f"/dev/disk/by-id/nvme-Amazon_Elastic_Block_Store_{volume_id.replace('-', '')}"


def last_used(volume: dict) -> str:
    """When the home was last used: its last-used tag, else its creation time (ISO 8601)."""
    tags = {t["Key"]: t["Value"] for t in volume.get("Tags") or []}
    created = volume.get("CreateTime")
    return tags.get(TAG_LAST_USED) or (created.isoformat() if hasattr(created, "isoformat") else str(created or ""))


def due_for_archive(volumes: list[dict], now_iso: str, cutoff_iso: str) -> list[dict]:
    """Detached homes last used before ``cutoff_iso``: snapshot them (cheaper storage) and
    delete the volume; the next start restores the snapshot. Attached homes never are."""
    return [v for v in volumes if v.get("State") == "available" and not v.get("Attachments")
            and last_used(v) and last_used(v) < cutoff_iso <= now_iso]
