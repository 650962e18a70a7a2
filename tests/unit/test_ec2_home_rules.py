"""The pure rules of the EC2 persistent home: which volume is the home, where the instance goes,
when a volume is in use elsewhere, and the admin's bounds."""

from __future__ import annotations

import pytest

from hybrid_spawner.backends.ec2 import home_volume as rules
from hybrid_spawner.home_bounds import HomeRequestRefused, check_home_request


def vol(vid, created, server="", state="available", attachments=()):
    return {"VolumeId": vid, "CreateTime": created, "State": state, "Attachments": list(attachments),
            "Tags": [{"Key": "jupyterhub/server-name", "Value": server}]}


def test_the_home_is_the_oldest_usable_volume_of_that_server():
    volumes = [vol("vol-new", "2026-12-02"), vol("vol-old", "2026-12-01"), vol("vol-gpu", "2026-11-01", server="gpu"),
               vol("vol-dying", "2026-10-01", state="deleting")]
    assert rules.pick_home(volumes, "")["VolumeId"] == "vol-old"
    assert rules.pick_home(volumes, "gpu")["VolumeId"] == "vol-gpu"
    assert rules.pick_home(volumes, "other") is None


def test_the_newest_completed_snapshot_restores_an_archived_home():
    snaps = [{"SnapshotId": "snap-1", "StartTime": "2026-01-01", "State": "completed", "Tags": []},
             {"SnapshotId": "snap-2", "StartTime": "2026-02-01", "State": "completed", "Tags": []},
             {"SnapshotId": "snap-3", "StartTime": "2026-03-01", "State": "pending", "Tags": []}]
    assert rules.pick_snapshot(snaps, "")["SnapshotId"] == "snap-2"


def test_a_volume_attached_to_another_instance_is_in_use_elsewhere():
    attached = vol("vol-1", "x", state="in-use", attachments=[{"InstanceId": "i-other", "State": "attached"}])
    assert rules.attached_elsewhere(attached) == "i-other"
    assert rules.attached_elsewhere(attached, "i-other") is None  # its own (a resumed instance)
    detached = vol("vol-1", "x", attachments=[{"InstanceId": "i-old", "State": "detached"}])
    assert rules.attached_elsewhere(detached) is None


def test_the_instance_goes_to_the_homes_zone_first_and_other_zones_only_after():
    zones = {"subnet-a1": "eu-west-1a", "subnet-b": "eu-west-1b", "subnet-a2": "eu-west-1a", "subnet-c": "eu-west-1c"}
    order = ["subnet-a1", "subnet-b", "subnet-a2", "subnet-c"]
    assert rules.zone_order("eu-west-1b", order, zones) == ["eu-west-1b", "eu-west-1a", "eu-west-1c"]
    assert rules.zone_order("eu-west-1z", order, zones) == ["eu-west-1a", "eu-west-1b", "eu-west-1c"]
    assert rules.subnets_by_zone(order, zones)["eu-west-1a"] == ["subnet-a1", "subnet-a2"]


def test_home_tags_add_the_role_and_the_device_names_the_volume():
    tags = {t["Key"]: t["Value"] for t in rules.home_tags("ann", "", "hub-1", {"project": "x"})}
    assert tags["jupyterhub/role"] == "home" and tags["jupyterhub/owner"] == "ann" and tags["project"] == "x"
    assert rules.home_device("vol-0abc") == "/dev/disk/by-id/nvme-Amazon_Elastic_Block_Store_vol0abc"


@pytest.mark.parametrize("size, kind, message", [
    (500, "gp3", "500 GB is over this hub's limit of 100 GB"),
    (0, "gp3", "at least 1"),
    ("20", "gp3", "whole number"),
    (True, "gp3", "whole number"),
    (20, "io2", "'io2' is not one of 'gp3', 'gp2'"),
])
def test_requests_outside_the_admins_bounds_are_refused(size, kind, message):
    with pytest.raises(HomeRequestRefused, match=message):
        check_home_request(size, kind, max_size_gb=100, allowed_types=["gp3", "gp2"])
    assert check_home_request(20, "gp2", max_size_gb=100, allowed_types=["gp3", "gp2"]) == (20, "gp2")
