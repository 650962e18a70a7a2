"""Pure rules of the OpenStack persistent home (hybrid_spawner/backends/openstack/home_volume.py)."""

from __future__ import annotations

import pytest

from hybrid_spawner.backends.openstack import home_volume as rules
from hybrid_spawner.backends.openstack.plan import PlanError, ResolvedIds, ServerPlan, create_server_attrs


@pytest.mark.parametrize(
    "size, vtype, message",
    [
        (0, "", "at least 1"), (-3, "", "at least 1"), ("20", "", "whole number"), (True, "", "whole number"),
        (2.5, "", "whole number"), (101, "", "over this hub's limit of 100 GB"), (10, "gold", "not one of 'ssd'"),
        (10, ["ssd"], "must be a name"),
    ],
)
def test_a_request_outside_the_admins_bounds_is_refused(size, vtype, message):
    with pytest.raises(PlanError, match=message):
        rules.check_request(size, vtype, max_size_gb=100, allowed_types=["ssd", ""])


def test_a_request_within_bounds_passes_and_no_limit_means_none():
    assert rules.check_request(100, "ssd", max_size_gb=100, allowed_types=["ssd"]) == rules.HomeVolumeRequest(100, "ssd")
    assert rules.check_request(5000, "any", max_size_gb=0, allowed_types=[]).size_gb == 5000


def test_the_home_is_found_by_all_of_its_metadata_and_the_oldest_wins():
    wanted = rules.volume_metadata(hub_id="hub", owner="ana", servername="")
    other_hub = {**wanted, "hybrid-hub": "another-hub"}
    volumes = [
        {"id": "b", "metadata": wanted, "status": "available", "created_at": "2026-12-02T10:00:00Z"},
        {"id": "a", "metadata": wanted, "status": "in-use", "created_at": "2026-12-01T10:00:00Z"},
        {"id": "c", "metadata": other_hub, "status": "available", "created_at": "2026-11-01T10:00:00Z"},
        {"id": "d", "metadata": {**wanted, "hybrid-server": "gpu"}, "status": "available", "created_at": "2026-10-01"},
        {"id": "e", "metadata": wanted, "status": "deleting", "created_at": "2026-09-01"},
    ]
    assert rules.pick_home(volumes, wanted)["id"] == "a"
    assert rules.pick_home(volumes[2:4], wanted) is None


def test_a_volume_in_use_or_broken_is_explained():
    busy = {"id": "v1", "status": "in-use", "attachments": [{"server_id": "s9"}]}
    assert "attached to another server (server s9); stop that server first" in rules.refuse_in_use(busy, "srv")
    assert "state 'error'" in rules.refuse_in_use({"id": "v1", "status": "error"}, "srv")
    assert rules.refuse_in_use({"id": "v1", "status": "available"}, "srv") is None
    assert rules.refuse_in_use({"id": "v1", "status": "creating"}, "srv") is None


def test_the_home_is_attached_at_boot_and_never_deleted_with_the_server():
    plan = ServerPlan(name="n", image="img", flavor="f", networks=("net",), home_volume_id="vol-1", boot_volume_size=20)
    attrs = create_server_attrs(plan, ResolvedIds("image-id", "flavor-id", ("net-id",)))
    boot, home = attrs["block_device_mapping"]
    assert boot["boot_index"] == 0 and boot["source_type"] == "image"
    assert home == {"uuid": "vol-1", "source_type": "volume", "destination_type": "volume", "boot_index": -1,
                    "delete_on_termination": False}
