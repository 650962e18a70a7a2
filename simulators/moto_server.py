"""moto's server with what a fault test needs EC2 to do as AWS does.

AWS makes RunInstances idempotent on ``ClientToken``: a retried request with the token of a
launch that already happened returns that launch's reservation instead of starting more instances
(the EC2 API reference, "Ensuring idempotency"). moto 5 records the token but launches again, so a
lost answer followed by a retry would show orphans no real cloud makes. This module restores the
documented behaviour, then runs moto's own server (same arguments as ``moto_server``).

AttachVolume likewise: AWS refuses a volume already attached to an instance (``VolumeInUse``) and
a volume in another availability zone than the instance (``InvalidVolume.ZoneMismatch``); moto 5
attaches both, which would hide exactly the errors a persistent home must handle.

A volume created from a snapshot gets the tag ``simulator/source-volume`` (the snapshot's volume):
the node runner keeps each volume's files in a directory and copies the source's into the new one,
so a home moved or restored by snapshot keeps its files, as EBS does, even when the snapshot is
deleted before the runner looks.
"""

from __future__ import annotations

import sys

SOURCE_VOLUME_TAG = "simulator/source-volume"

MOTO_DEFAULT_TOKEN = "ABCDE"  # what moto's response layer passes when the request had no ClientToken


def make_run_instances_idempotent() -> None:
    from moto.ec2.models.instances import InstanceBackend

    original = InstanceBackend.run_instances
    if getattr(original, "_hybrid_idempotent", False):
        return

    def run_instances(self, image_id, count, user_data, security_group_names, **kwargs):
        token = kwargs.get("client_token")
        if token and token != MOTO_DEFAULT_TOKEN:
            for reservation in self.reservations.values():
                if any(getattr(i, "client_token", None) == token for i in reservation.instances):
                    return reservation
        return original(self, image_id, count, user_data, security_group_names, **kwargs)

    run_instances._hybrid_idempotent = True
    InstanceBackend.run_instances = run_instances


def make_attach_volume_check_use_and_zone() -> None:
    from moto.ec2.exceptions import EC2ClientError, VolumeInUseError
    from moto.ec2.models.elastic_block_store import EBSBackend

    original = EBSBackend.attach_volume
    if getattr(original, "_hybrid_checked", False):
        return

    def attach_volume(self, volume_id, instance_id, device_path, delete_on_termination=False):
        volume = self.get_volume(volume_id)
        instance = self.get_instance(instance_id)
        if volume is not None and instance is not None:
            attached = getattr(volume, "attachment", None)
            if attached is not None and getattr(attached, "status", "") == "attached":
                raise VolumeInUseError(volume_id, attached.instance.id)
            instance_zone = getattr(getattr(instance, "_placement", None), "zone", None)
            if volume.zone is not None and instance_zone and volume.zone.name != instance_zone:
                raise EC2ClientError(
                    "InvalidVolume.ZoneMismatch",
                    f"The volume '{volume_id}' is not in the same availability zone as instance '{instance_id}'",
                )
        return original(self, volume_id, instance_id, device_path, delete_on_termination)

    attach_volume._hybrid_checked = True
    EBSBackend.attach_volume = attach_volume


def make_volumes_from_snapshots_name_their_source() -> None:
    from moto.ec2.models.elastic_block_store import EBSBackend

    original = EBSBackend.create_volume
    if getattr(original, "_hybrid_sourced", False):
        return

    def create_volume(self, size, zone_name, snapshot_id=None, *args, **kwargs):
        volume = original(self, size, zone_name, snapshot_id, *args, **kwargs)
        if snapshot_id:
            source = getattr(self.get_snapshot(snapshot_id), "volume", None)
            if source is not None:
                self.create_tags([volume.id], {SOURCE_VOLUME_TAG: source.id})
        return volume

    create_volume._hybrid_sourced = True
    EBSBackend.create_volume = create_volume


def main(argv: list[str] | None = None) -> None:
    make_run_instances_idempotent()
    make_attach_volume_check_use_and_zone()
    make_volumes_from_snapshots_name_their_source()
    from moto.server import main as moto_main

    moto_main(argv if argv is not None else sys.argv[1:])


if __name__ == "__main__":
    main()
