"""The EC2 persistent home (``EC2Spawner.home_volume_size``): the network side.

One EBS volume per user and named server, found by its tags (rules in :mod:`.home_volume`):
created at the first start (or restored from its snapshot), the instance launched in the volume's
zone and the volume attached once the instance runs; the node's boot script waits for it, formats
it only when blank and mounts it. Stops leave it (terminate detaches it; stop_action = "stop"
keeps it attached to the stopped instance). When the home's zone has no capacity the volume moves
by snapshot to a zone that has. Every AWS call runs in a worker thread (``EC2Spawner._call``).
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from datetime import datetime, timedelta, timezone

import botocore.exceptions

from hybrid_spawner.backends.ec2 import home_volume as rules
from hybrid_spawner.backends.ec2 import plan
from hybrid_spawner.remote import BackendFull, SpawnFailed

# One start at a time per home in this hub: two starts racing would each create a volume.
_HOME_LOCKS: dict[tuple[str, str, str], asyncio.Lock] = {}


class EC2HomeVolume:
    """Mixed into EC2Spawner (which holds the traits): find, create, move and attach the home."""

    home_volume_id = None  # state: the attached home (also the instance's jupyterhub/home-volume tag)

    def _home_lock(self) -> asyncio.Lock:
        return _HOME_LOCKS.setdefault((self.hub_id, self.user.name, self.name or ""), asyncio.Lock())

    async def _subnet_zones(self) -> dict[str, str]:
        reply = await self._call("ec2", "describe_subnets", SubnetIds=list(self.subnet_ids))
        return {s["SubnetId"]: s["AvailabilityZone"] for s in reply["Subnets"]}

    async def _volumes(self) -> list[dict]:
        reply = await self._call("ec2", "describe_volumes", Filters=rules.home_filters(self.user.name, self.hub_id))
        return reply["Volumes"]

    async def _snapshots(self) -> list[dict]:
        reply = await self._call("ec2", "describe_snapshots", OwnerIds=["self"],
                                 Filters=rules.home_filters(self.user.name, self.hub_id))
        return reply["Snapshots"]

    def _tag_spec(self, resource: str) -> list[dict]:
        return [{"ResourceType": resource, "Tags": rules.home_tags(self.user.name, self.name or "", self.hub_id, self.extra_tags)}]

    def _new_volume_args(self, zone: str) -> dict:
        args = {"AvailabilityZone": zone, "VolumeType": self._home_request[1], "Encrypted": self.home_volume_encrypted,
                "TagSpecifications": self._tag_spec("volume")}
        if self.home_volume_kms_key_id:
            args["KmsKeyId"] = self.home_volume_kms_key_id
        return args

    # ------------------------------------------------------------------ launch
    async def _launch_with_home(self, spec: plan.LaunchSpec) -> str:
        zones = await self._subnet_zones()
        last: BackendFull | None = None
        async with self._home_lock():
            volume = await self._home_volume(zones)
            for zone in rules.zone_order(volume["AvailabilityZone"], list(self.subnet_ids), zones):
                if zone != volume["AvailabilityZone"]:
                    volume = await self._move_home(volume, zone)
                tagged = dataclasses.replace(spec, tags=[*spec.tags, {"Key": rules.TAG_HOME_VOLUME, "Value": volume["VolumeId"]}])
                subnets = rules.subnets_by_zone(list(self.subnet_ids), zones)[zone]
                try:
                    instance_id = await self._launch_in(tagged, subnets)
                except BackendFull as full:
                    last = full
                    self.emit(17, f"No capacity in {zone} for your server and its home volume")
                    continue
                self.home_volume_id = volume["VolumeId"]
                return instance_id
            raise last or SpawnFailed("Could not start the server: no zone of subnet_ids to launch in.")

    async def _home_volume(self, zones: dict[str, str]) -> dict:
        """The home, available (or attached to nothing that runs): found, restored or created."""
        volume = rules.pick_home(await self._volumes(), self.name or "")
        if volume is None:
            first_zone = zones[self.subnet_ids[0]]
            snapshot = rules.pick_snapshot(await self._snapshots(), self.name or "")
            args = self._new_volume_args(first_zone)
            if snapshot is not None:
                self.emit(12, f"Restoring your home volume from its snapshot {snapshot['SnapshotId']}")
                args["SnapshotId"] = snapshot["SnapshotId"]
            else:
                size, kind = self._home_request
                self.emit(12, f"Creating your home volume ({size} GB, {kind}"
                              f"{', encrypted' if self.home_volume_encrypted else ''}) in {first_zone}")
                args["Size"] = size
            created = await self._call("ec2", "create_volume", **args)
            volume = await self._wait_volume(created["VolumeId"], "available")
            if snapshot is not None:  # the archive has served: one copy of the home, not two
                await self._call("ec2", "delete_snapshot", SnapshotId=snapshot["SnapshotId"])
            return volume
        self.emit(12, f"Found your home volume {volume['VolumeId']} ({volume['Size']} GB, {volume['AvailabilityZone']})")
        if volume["State"] == "creating":
            volume = await self._wait_volume(volume["VolumeId"], "available")
        other = rules.attached_elsewhere(volume)
        if other is not None:
            volume = await self._wait_detached_from_ended(volume, other)
        return volume

    async def _wait_detached_from_ended(self, volume: dict, other: str) -> dict:
        """A home still attached to an instance that is ending (terminated a moment ago) is
        waited for; attached to one that runs, the start is refused (409), nothing created."""
        reply = await self._call("ec2", "describe_instances", InstanceIds=[other])
        states = [i["State"]["Name"] for r in reply["Reservations"] for i in r["Instances"]]
        if not states or states[0] not in ("shutting-down", "terminated"):
            raise SpawnFailed(rules.in_use_message(volume["VolumeId"], other), status=409)
        self.emit(13, f"Waiting for your home volume to be released by {other}")
        return await self._wait_volume(volume["VolumeId"], "available")

    async def _wait_volume(self, volume_id: str, state: str) -> dict:
        deadline = time.monotonic() + self.home_volume_timeout
        while True:
            reply = await self._call("ec2", "describe_volumes", VolumeIds=[volume_id])
            volume = reply["Volumes"][0]
            if volume["State"] == state and not rules.attached_elsewhere(volume):
                return volume
            if volume["State"] == "error" or time.monotonic() > deadline:
                raise SpawnFailed(f"Your home volume {volume_id} is {volume['State']!r}, not {state!r}, after "
                                  f"{self.home_volume_timeout:.0f} s; try again later (nothing was started).")
            await asyncio.sleep(0.5)

    async def _move_home(self, volume: dict, zone: str) -> dict:
        """Snapshot the home, make a volume from it in ``zone``, then delete the old one (and the
        snapshot). If anything fails before the old one is deleted, the old one stays the home."""
        old, old_zone = volume["VolumeId"], volume["AvailabilityZone"]
        self.emit(18, f"Moving your home volume {old} from {old_zone} to {zone} (no capacity in {old_zone}): "
                      "taking a snapshot")
        snapshot = await self._call("ec2", "create_snapshot", VolumeId=old, TagSpecifications=self._tag_spec("snapshot"),
                                    Description=f"home of {self.user.name} moving to {zone}")
        await self._wait_snapshot(snapshot["SnapshotId"])
        created = await self._call("ec2", "create_volume", SnapshotId=snapshot["SnapshotId"], **self._new_volume_args(zone))
        moved = await self._wait_volume(created["VolumeId"], "available")
        try:
            await self._call("ec2", "delete_volume", VolumeId=old)
        except botocore.exceptions.ClientError:
            await self._call("ec2", "delete_volume", VolumeId=moved["VolumeId"])  # the old one stays the home
            raise
        await self._call("ec2", "delete_snapshot", SnapshotId=snapshot["SnapshotId"])
        self.emit(19, f"Your home volume is now {moved['VolumeId']} in {zone}")
        return moved

    async def _wait_snapshot(self, snapshot_id: str) -> None:
        deadline = time.monotonic() + self.home_volume_timeout
        while True:
            reply = await self._call("ec2", "describe_snapshots", SnapshotIds=[snapshot_id])
            state = reply["Snapshots"][0]["State"]
            if state == "completed":
                return
            if state == "error" or time.monotonic() > deadline:
                raise SpawnFailed(f"Moving your home volume failed: snapshot {snapshot_id} is {state!r}. "
                                  "Your home is unchanged; try again later.")
            await asyncio.sleep(1.0)

    # ------------------------------------------------------------------ attach
    async def _attach_home(self, instance_id: str) -> None:
        """Attach the home to the running instance (its boot script waits for the disk)."""
        reply = await self._call("ec2", "describe_volumes", VolumeIds=[self.home_volume_id])
        volume = reply["Volumes"][0]
        if any(a.get("InstanceId") == instance_id for a in volume.get("Attachments") or []):
            return  # a resumed instance keeps its home attached
        await self._call("ec2", "attach_volume", VolumeId=self.home_volume_id, InstanceId=instance_id,
                         Device=rules.ATTACH_DEVICE)
        await self._mark_home_used(self.home_volume_id)
        self.emit(45, f"Attached your home volume {self.home_volume_id}")

    async def _mark_home_used(self, volume_id: str) -> None:
        """Stamp the home's last use (at attach and at stop): home_volume_archive_after counts from it."""
        stamp = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        try:
            await self._call("ec2", "create_tags", Resources=[volume_id], Tags=[{"Key": rules.TAG_LAST_USED, "Value": stamp}])
        except botocore.exceptions.ClientError as e:  # a missing stamp only delays an archive
            self.log.warning("could not stamp home volume %s as used: %s", volume_id, e)

    # ------------------------------------------------------------------ archive
    async def archive_unused_homes(self) -> list[dict]:
        """Hub-wide (the reconciler calls it; no user): each detached home unused for
        home_volume_archive_after seconds becomes a snapshot (EBS snapshot storage costs about
        a quarter of gp3) and the volume is deleted; the next start restores it. Returns
        [{"volume", "snapshot", "owner"}] of what was archived."""
        if not self.home_volume_archive_after:
            return []
        now = datetime.now(timezone.utc)
        cutoff = (now - timedelta(seconds=self.home_volume_archive_after)).strftime("%Y-%m-%dT%H:%M:%SZ")
        reply = await self._call("ec2", "describe_volumes", Filters=[
            {"Name": f"tag:{plan.TAG_HUB}", "Values": [self.hub_id]},
            {"Name": f"tag:{rules.TAG_ROLE}", "Values": [rules.ROLE_HOME]},
            {"Name": "status", "Values": ["available"]}])
        archived = []
        for volume in rules.due_for_archive(reply["Volumes"], now.strftime("%Y-%m-%dT%H:%M:%SZ"), cutoff):
            tags = [t for t in volume.get("Tags") or [] if not t["Key"].startswith("aws:")]
            tags.append({"Key": rules.TAG_ARCHIVED, "Value": now.strftime("%Y-%m-%dT%H:%M:%SZ")})
            snapshot = await self._call("ec2", "create_snapshot", VolumeId=volume["VolumeId"],
                                        Description=f"archived home {volume['VolumeId']}",
                                        TagSpecifications=[{"ResourceType": "snapshot", "Tags": tags}])
            await self._wait_snapshot(snapshot["SnapshotId"])
            await self._call("ec2", "delete_volume", VolumeId=volume["VolumeId"])
            owner = {t["Key"]: t["Value"] for t in tags}.get(plan.TAG_OWNER, "")
            self.log.info("archived home volume %s of %s to snapshot %s (unused since %s)", volume["VolumeId"],
                          owner, snapshot["SnapshotId"], rules.last_used(volume))
            archived.append({"volume": volume["VolumeId"], "snapshot": snapshot["SnapshotId"], "owner": owner})
        return archived

    # ------------------------------------------------------------------ delete
    async def _delete_homes(self) -> None:
        """The user is deleted and the admin said their storage goes too."""
        for volume in rules.of_server(await self._volumes(), self.name or ""):
            self.log.info("%s: deleting home volume %s with the user", self._log_name, volume["VolumeId"])
            await self._call("ec2", "delete_volume", VolumeId=volume["VolumeId"])
        for snapshot in rules.of_server(await self._snapshots(), self.name or ""):
            await self._call("ec2", "delete_snapshot", SnapshotId=snapshot["SnapshotId"])
