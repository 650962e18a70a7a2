"""The EC2 persistent home through a real hub, moto server and the node runner: one EBS volume per
user and server, attached to each new instance in its zone and kept across stops; moved by
snapshot when its zone has no capacity; refusals (a size over the admin's bound, a volume in use
elsewhere) that leave nothing behind; one volume for concurrent starts; deleted with the user only
when the admin says so."""

from __future__ import annotations

import pytest

from simulators.processes import wait_until
from tests.fixtures.contents import contents
from tests.fixtures.ec2 import start_ec2_world, stop_ec2_world

pytestmark = pytest.mark.integration

EXTRA = """
c.EC2Spawner.home_volume_max_size = 10
# Homes unused for 3 s are archived by a reconcile pass (asked for by the last test only).
c.EC2Spawner.home_volume_archive_after = 3
from hybrid_spawner.reconcile import runner as _reconcile
c.Reconciler.interval = 3600
c.Reconciler.backends = ["ec2"]
_reconcile.enable(c)
c.JupyterHub.tornado_settings = {"slow_spawn_timeout": 0}

import pathlib as _pathlib
_FULL_SUBNETS = _pathlib.Path(%r)

def _customize(client, service):
    # Fault injection: a subnet listed in the file has no capacity, as a busy zone answers.
    _no_capacity_for_nano(client, service)
    if service != "ec2":
        return
    from botocore.awsrequest import AWSResponse

    def refuse(params, **kwargs):
        full = _FULL_SUBNETS.read_text().split() if _FULL_SUBNETS.exists() else []
        if (params.get("body") or {}).get("NetworkInterface.1.SubnetId") in full:
            error = {"Code": "InsufficientInstanceCapacity",
                     "Message": "We currently do not have sufficient capacity in the zone you requested."}
            return AWSResponse("", 500, {}, None), {"Error": error, "ResponseMetadata": {}}

    client.meta.events.register("before-call.ec2.RunInstances", refuse)

c.EC2Spawner.client_customizer = _customize

# JupyterHub deletes a user through a new spawner object (no pre_spawn_hook): the admin's
# setting for "leaver" is given at construction, as a hub config would give it to everyone.
from hybrid_spawner.backends.ec2.spawner import EC2Spawner as _EC2

class _LeaversHomesGo(_EC2):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.user.name in ("keeper", "leaver"):
            self.home_volume_size = 2
            self.delete_home_volume_with_user = self.user.name == "leaver"

c.JupyterHub.spawner_class = _LeaversHomesGo
"""


@pytest.fixture(scope="module")
def world(moto_server, tmp_path_factory):
    directory = tmp_path_factory.mktemp("ec2-home")
    full = directory / "full-subnets"
    w = start_ec2_world(moto_server, directory, EXTRA % str(full))
    vpc = w.ec2.describe_subnets(SubnetIds=[w.subnet])["Subnets"][0]
    other_zone = "us-east-1b" if vpc["AvailabilityZone"] != "us-east-1b" else "us-east-1c"
    w.subnet_b = w.ec2.create_subnet(VpcId=vpc["VpcId"], CidrBlock="10.42.16.0/20",
                                     AvailabilityZone=other_zone)["Subnet"]["SubnetId"]
    w.zone_a, w.zone_b = vpc["AvailabilityZone"], other_zone
    w.full = full
    w.volumes_dir = directory / "nodes" / "volumes"
    yield w
    stop_ec2_world(w)


def home(w, user: str, **more):
    w.override(user, home_volume_size=2, subnet_ids=[w.subnet, w.subnet_b], **more)


def spawn(w, user: str) -> list[dict]:
    status, body = w.hub.spawn(user)
    assert status in (201, 202), body
    return w.hub.progress_events(user, timeout=180)


def homes_of(w, user: str) -> list[dict]:
    reply = w.ec2.describe_volumes(Filters=[{"Name": "tag:jupyterhub/owner", "Values": [user]},
                                            {"Name": "tag:jupyterhub/role", "Values": ["home"]}])
    return [v for v in reply["Volumes"] if v["State"] != "deleted"]


def node_of(w, user: str) -> str:
    return w.hub.server_model(user)["state"]["node_id"]


def test_the_home_volume_keeps_work_across_stops_on_new_instances(world):
    w, user = world, "hana"
    home(w, user)
    events = spawn(w, user)
    assert events[-1].get("ready"), events
    messages = [e["message"] for e in events]
    assert any(m.startswith(f"Creating your home volume (2 GB, gp3, encrypted) in {w.zone_a}") for m in messages), messages
    [volume] = homes_of(w, user)
    first = node_of(w, user)
    tags = {t["Key"]: t["Value"] for t in volume["Tags"]}
    assert tags["jupyterhub/hub-id"] == w.hub_id and tags["jupyterhub/server-name"] == "" and volume["Encrypted"]
    assert volume["State"] == "in-use" and volume["Attachments"][0]["InstanceId"] == first
    assert f"Attached your home volume {volume['VolumeId']}" in messages
    args = (w.runner.workdir / "power" / first / "mount-home.args").read_text().split()
    assert args == ["wait", "/home"]  # the boot script waited for the disk and mounted it

    assert contents(w.hub, user, "thesis.txt", "chapter 1\n")[0] in (200, 201)
    assert (w.volumes_dir / volume["VolumeId"] / "thesis.txt").read_text() == "chapter 1\n"
    w.hub.stop_server(user)
    wait_until(lambda: homes_of(w, user)[0]["State"] == "available", 60, "the home detached at termination")
    assert w.live_instances(user) == []

    events = spawn(w, user)
    assert events[-1].get("ready"), events
    assert any(m.startswith(f"Found your home volume {volume['VolumeId']} (2 GB, {w.zone_a})") for m in
               [e["message"] for e in events])
    second = node_of(w, user)
    assert second != first and [v["VolumeId"] for v in homes_of(w, user)] == [volume["VolumeId"]]
    status, body = contents(w.hub, user, "thesis.txt")
    assert status == 200 and body["content"] == "chapter 1\n"
    w.hub.stop_server(user)


def test_a_zone_without_capacity_moves_the_home_there_by_snapshot(world):
    w, user = world, "zoe"
    home(w, user)
    assert spawn(w, user)[-1].get("ready")
    [before] = homes_of(w, user)
    assert contents(w.hub, user, "field.txt", "site 4\n")[0] in (200, 201)
    w.hub.stop_server(user)
    wait_until(lambda: homes_of(w, user)[0]["State"] == "available", 60, "detached")

    w.full.write_text(w.subnet)  # the home's zone is full now
    try:
        events = spawn(w, user)
    finally:
        w.full.unlink()
    assert events[-1].get("ready"), events
    messages = [e["message"] for e in events]
    assert any(m.startswith(f"Moving your home volume {before['VolumeId']} from {w.zone_a} to {w.zone_b}") for m in messages), messages
    [after] = homes_of(w, user)
    assert after["VolumeId"] != before["VolumeId"] and after["AvailabilityZone"] == w.zone_b
    assert f"Your home volume is now {after['VolumeId']} in {w.zone_b}" in messages
    instance = w.ec2.describe_instances(InstanceIds=[node_of(w, user)])["Reservations"][0]["Instances"][0]
    assert instance["Placement"]["AvailabilityZone"] == w.zone_b
    status, body = contents(w.hub, user, "field.txt")
    assert status == 200 and body["content"] == "site 4\n"  # the work moved with it
    snapshots = w.ec2.describe_snapshots(OwnerIds=["self"], Filters=[{"Name": "tag:jupyterhub/owner", "Values": [user]}])
    assert snapshots["Snapshots"] == []  # the move's snapshot is gone once the new volume is there
    w.hub.stop_server(user)


def test_a_size_over_the_admins_bound_is_refused_with_nothing_created(world):
    w, user = world, "bigvol"
    w.override(user, home_volume_size=500, subnet_ids=[w.subnet, w.subnet_b])
    events = spawn(w, user)
    assert events[-1].get("failed"), events
    assert "500 GB is over this hub's limit of 10 GB" in events[-1]["message"]
    assert homes_of(w, user) == [] and w.live_instances(user) == []


def test_a_home_attached_elsewhere_is_refused_with_nothing_launched(world):
    w, user = world, "carol"
    home(w, user)
    assert spawn(w, user)[-1].get("ready")
    w.hub.stop_server(user)
    wait_until(lambda: homes_of(w, user)[0]["State"] == "available", 60, "detached")
    [volume] = homes_of(w, user)
    stray = w.ec2.run_instances(ImageId=w.ami, MinCount=1, MaxCount=1, SubnetId=w.subnet)["Instances"][0]["InstanceId"]
    w.ec2.attach_volume(VolumeId=volume["VolumeId"], InstanceId=stray, Device="/dev/sdh")
    try:
        events = spawn(w, user)
        assert events[-1].get("failed"), events
        assert f"Your home volume {volume['VolumeId']} is attached to instance {stray}" in events[-1]["message"]
        assert w.live_instances(user) == [] and len(homes_of(w, user)) == 1
    finally:
        w.ec2.terminate_instances(InstanceIds=[stray])


def test_the_moto_server_refuses_what_aws_refuses(world):
    w = world
    [volume] = homes_of(w, "hana")
    in_b = w.ec2.run_instances(ImageId=w.ami, MinCount=1, MaxCount=1, SubnetId=w.subnet_b)["Instances"][0]["InstanceId"]
    try:
        with pytest.raises(Exception, match="ZoneMismatch"):
            w.ec2.attach_volume(VolumeId=volume["VolumeId"], InstanceId=in_b, Device="/dev/sdh")
    finally:
        w.ec2.terminate_instances(InstanceIds=[in_b])


def test_two_concurrent_starts_make_one_volume(world):
    w, user = world, "twin"
    home(w, user)
    w.hub.ensure_user(user)
    answers = [w.hub.api("POST", w.hub.server_path(user), {}) for _ in range(2)]
    assert sorted(a[0] for a in answers)[0] in (201, 202), answers
    w.hub.wait_ready(user, timeout=180)
    assert len(homes_of(w, user)) == 1
    w.hub.stop_server(user)


def test_deleting_a_user_deletes_their_home_only_when_the_admin_says_so(world):
    w = world
    for user, delete in (("keeper", False), ("leaver", True)):
        home(w, user, delete_home_volume_with_user=delete)
        assert spawn(w, user)[-1].get("ready")
        w.hub.stop_server(user)
        wait_until(lambda u=user: homes_of(w, u)[0]["State"] == "available", 60, "detached")
        w.hub.api("DELETE", f"/users/{user}", expect=204)
    assert len(homes_of(w, "keeper")) == 1
    wait_until(lambda: homes_of(w, "leaver") == [], 30, "the deleted user's home deleted")


def test_a_home_unused_past_its_limit_is_archived_to_a_snapshot_and_restored_at_the_next_start(world):
    """Runs last: its reconcile pass archives every home unused for 3 s."""
    import time

    w, user = world, "arch"
    home(w, user)
    assert spawn(w, user)[-1].get("ready")
    [volume] = homes_of(w, user)
    assert contents(w.hub, user, "draft.txt", "kept in the archive\n")[0] in (200, 201)
    w.hub.stop_server(user)
    wait_until(lambda: homes_of(w, user)[0]["State"] == "available", 60, "detached")
    tags = {t["Key"]: t["Value"] for t in homes_of(w, user)[0]["Tags"]}
    assert tags["jupyterhub/last-used"].endswith("Z")  # stamped at the stop
    time.sleep(4.5)  # past the 3 s (the stamps have whole seconds)
    _, report = w.hub.api("POST", "/hybrid/reconcile", expect=200)
    mine = [a for a in report["archived_homes"]["ec2"] if a["owner"] == user]
    assert [a["volume"] for a in mine] == [volume["VolumeId"]], report["archived_homes"]
    assert homes_of(w, user) == []
    snapshot = w.ec2.describe_snapshots(SnapshotIds=[mine[0]["snapshot"]])["Snapshots"][0]
    snap_tags = {t["Key"]: t["Value"] for t in snapshot["Tags"]}
    assert snap_tags["jupyterhub/role"] == "home" and snap_tags["jupyterhub/owner"] == user and "jupyterhub/archived-at" in snap_tags

    events = spawn(w, user)
    assert events[-1].get("ready"), events
    assert f"Restoring your home volume from its snapshot {snapshot['SnapshotId']}" in [e["message"] for e in events]
    status, body = contents(w.hub, user, "draft.txt")
    assert status == 200 and body["content"] == "kept in the archive\n"
    assert w.ec2.describe_snapshots(OwnerIds=["self"], Filters=[
        {"Name": "tag:jupyterhub/owner", "Values": [user]}])["Snapshots"] == []  # one copy of the home, not two
    w.hub.stop_server(user)
