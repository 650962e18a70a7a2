"""Incident response on a real hub with EC2 on the moto server: quarantine a node (isolated, kept,
the user held), release it; purge a user's data (bucket versions, instances, volumes, snapshots,
dashboards) with a dry run; and every refusal (scope, unknown names, running servers)."""

from __future__ import annotations

import json

import pytest
import requests

from hybrid_spawner.backends.ec2.plan import TAG_HUB, TAG_OWNER
from hybrid_spawner.incidents.ec2 import TAG_INCIDENT, quarantine_group_name
from simulators.processes import wait_until
from tests.fixtures.incidents import spawn_ready
from tests.fixtures.publish import make_notebook
from tests.integration.test_ec2_spawn import login

pytestmark = pytest.mark.integration

@pytest.fixture(scope="module")
def world(incident_world):
    return incident_world


def token_with(world, user: str, scopes: list[str]) -> str:
    """A token of the operator ``user`` (a role in the hub's configuration) holding ``scopes``."""
    _, body = world.hub.api("POST", f"/users/{user}/tokens", {"scopes": scopes}, expect=201)
    return body["token"]


def attribute(world, instance_id: str, name: str):
    return world.ec2.describe_instance_attribute(InstanceId=instance_id, Attribute=name)


def test_quarantine_isolates_and_keeps_the_node_and_holds_the_user_until_released(world):
    user = "mallory"
    world.override(user, instance_profile=world.profile)
    instance = spawn_ready(world, user)
    node = instance["InstanceId"]
    assert instance["IamInstanceProfile"]["Arn"].endswith(world.profile)

    status, incident = world.hub.api("POST", f"/hybrid/quarantine/{user}",
                                     {"server": "", "reason": "outbound scanning reported by the CERT"})
    assert status == 201, incident
    assert incident["state"] == "quarantined" and incident["node_id"] == node and incident["user"] == user

    # The node runs on, isolated: in a group with no rules either way, without its role,
    # protected from termination, its volume copied, itself tagged with the incident.
    (kept,) = [i for r in world.ec2.describe_instances(InstanceIds=[node])["Reservations"] for i in r["Instances"]]
    assert kept["State"]["Name"] == "running"
    (group,) = [g["GroupId"] for g in attribute(world, node, "groupSet")["Groups"]]
    assert f"(was {world.sg})" in " ".join(incident["actions"])
    described = world.ec2.describe_security_groups(GroupIds=[group])["SecurityGroups"][0]
    assert described["GroupName"] == quarantine_group_name(world.hub_id)
    assert described["IpPermissions"] == [] and described["IpPermissionsEgress"] == []
    associations = world.ec2.describe_iam_instance_profile_associations(
        Filters=[{"Name": "instance-id", "Values": [node]}])["IamInstanceProfileAssociations"]
    assert not [a for a in associations if a["State"] in ("associated", "associating")]
    assert attribute(world, node, "disableApiTermination")["DisableApiTermination"]["Value"] is True
    # Protection does not cover a shutdown from inside: that now stops the instance, keeping it.
    behaviour = attribute(world, node, "instanceInitiatedShutdownBehavior")
    assert behaviour["InstanceInitiatedShutdownBehavior"]["Value"] == "stop"
    snapshots = world.ec2.describe_snapshots(Filters=[{"Name": f"tag:{TAG_INCIDENT}", "Values": [incident["id"]]}])["Snapshots"]
    volumes = [m["Ebs"]["VolumeId"] for m in kept["BlockDeviceMappings"]]
    assert volumes and sorted(s["VolumeId"] for s in snapshots) == sorted(volumes)
    assert {t["Key"]: t["Value"] for t in kept["Tags"]}[TAG_INCIDENT] == incident["id"]
    with pytest.raises(Exception, match="OperationNotPermitted"):
        world.ec2.terminate_instances(InstanceIds=[node])

    # The hub records the server as stopped, without having terminated the evidence.
    world.hub.wait_stopped(user)
    assert "quarantined" in world.hub.log_text() and incident["id"] in world.hub.log_text()
    _, listed = world.hub.api("GET", "/hybrid/incidents", expect=200)
    assert incident["id"] in [i["id"] for i in listed["incidents"]]

    # Held: a new spawn is refused with the incident named, and nothing is launched.
    status, _ = world.hub.spawn(user)
    wait_until(lambda: (world.hub.server_model(user) or {}).get("pending") is None, 30, "the refused spawn to end")
    assert world.hub.server_model(user) is None or not world.hub.server_model(user).get("ready")
    assert [i["InstanceId"] for i in world.live_instances(user)] == [node]
    assert f"incident {incident['id']}" in world.hub.log_text()

    # Released with termination: protection lifted, node gone, the user may start again.
    _, released = world.hub.api("POST", f"/hybrid/incidents/{incident['id']}/release", {"terminate": True}, expect=200)
    assert released["released"] and released["actions"][-1] == f"terminated {node}"
    wait_until(lambda: not [i for i in world.live_instances(user) if i["InstanceId"] == node], 30, "the node to end")
    status, again = world.hub.api("POST", f"/hybrid/incidents/{incident['id']}/release", {"terminate": False})
    assert status == 409, again
    fresh = spawn_ready(world, user)
    assert fresh["InstanceId"] != node
    world.hub.stop_server(user)


def test_incident_endpoints_refuse_bad_input_and_change_nothing(world):
    user = "trudy"
    instance = spawn_ready(world, user)
    node = instance["InstanceId"]
    before = world.hub.api("GET", "/hybrid/incidents", expect=200)[1]["incidents"]

    assert world.hub.api("POST", "/hybrid/quarantine/nobody-here", {"reason": "x"})[0] == 404
    assert world.hub.api("POST", f"/hybrid/quarantine/{user}", {"server": "nosuch", "reason": "x"})[0] == 404
    assert world.hub.api("POST", f"/hybrid/quarantine/{user}", {"reason": "  "})[0] == 400
    assert world.hub.api("POST", f"/hybrid/quarantine/{user}", {"reason": "r" * 501})[0] == 400
    assert world.hub.api("POST", f"/hybrid/quarantine/{user}", {"server": 3, "reason": "x"})[0] == 400
    for raw in (b"not json", b'["a list"]'):
        answer = requests.post(f"{world.hub.url}/hub/api/hybrid/quarantine/{user}", data=raw, timeout=30,
                               headers={"Authorization": f"token {world.hub.admin_token}"})
        assert answer.status_code == 400 and "body must be" in answer.text, answer.text
    world.hub.ensure_user("idle-ivan")
    status, body = world.hub.api("POST", "/hybrid/quarantine/idle-ivan", {"reason": "x"})
    assert status == 409 and "no running server" in str(body), body
    assert world.hub.api("GET", "/hybrid/incidents/inc-00000000-000000")[0] == 404
    assert world.hub.api("POST", "/hybrid/incidents/inc-00000000-000000/release", {})[0] == 404

    # A token scoped to this user's servers only, or without admin scopes, isolates nobody.
    for operator, scopes in (("ops-reader", ["read:users"]), ("ops-trudy", [f"admin:servers!user={user}"])):
        token = token_with(world, operator, scopes)
        status, body = world.hub.api("POST", f"/hybrid/quarantine/{user}", {"reason": "x"}, token=token)
        assert status == 403, (scopes, body)
        assert world.hub.api("GET", "/hybrid/incidents", token=token)[0] == 403

    assert world.hub.api("GET", "/hybrid/incidents", expect=200)[1]["incidents"] == before
    assert world.hub.server_model(user)["ready"]
    assert attribute(world, node, "disableApiTermination")["DisableApiTermination"]["Value"] is False
    world.hub.stop_server(user)


def test_the_admin_page_lists_running_servers_and_incidents_for_admins_only(world):
    user = "oscar"
    spawn_ready(world, user)
    page = login(world.hub, "admin").get(f"{world.hub.url}/hub/hybrid/incidents", timeout=30)
    assert page.status_code == 200, page.text[:300]
    assert "<h1>Incidents</h1>" in page.text and f"data-user='{user}'" in page.text
    refused = login(world.hub, "ops-reader").get(f"{world.hub.url}/hub/hybrid/incidents", timeout=30)
    assert refused.status_code == 403 and f"data-user='{user}'" not in refused.text
    world.hub.stop_server(user)


def seed_user_data(world, public_host, user: str) -> dict:
    """Objects (with an old version and a delete marker), a stopped instance, a volume, a
    snapshot and two dashboards for ``user``; returns what a purge must find."""
    s3, ec2 = world.s3, world.ec2
    world.hub.ensure_user(user)
    s3.put_object(Bucket=world.bucket, Key=f"users/{user}/analysis.ipynb", Body=b"v1")
    s3.put_object(Bucket=world.bucket, Key=f"users/{user}/analysis.ipynb", Body=b"version 2")
    s3.put_object(Bucket=world.bucket, Key=f"users/{user}/old.csv", Body=b"a,b")
    s3.delete_object(Bucket=world.bucket, Key=f"users/{user}/old.csv")  # a delete marker; the data stays as a version
    tags = [{"Key": TAG_HUB, "Value": world.hub_id}, {"Key": TAG_OWNER, "Value": user}]
    launched = ec2.run_instances(ImageId=world.ami, MinCount=1, MaxCount=1, InstanceType="t3.micro", SubnetId=world.subnet,
                                 TagSpecifications=[{"ResourceType": "instance", "Tags": tags}])["Instances"][0]["InstanceId"]
    ec2.stop_instances(InstanceIds=[launched])
    zone = ec2.describe_subnets(SubnetIds=[world.subnet])["Subnets"][0]["AvailabilityZone"]
    volume = ec2.create_volume(AvailabilityZone=zone, Size=1, TagSpecifications=[{"ResourceType": "volume", "Tags": tags}])["VolumeId"]
    snapshot = ec2.create_snapshot(VolumeId=volume, TagSpecifications=[{"ResourceType": "snapshot", "Tags": tags}])["SnapshotId"]
    for slug in ("results", "draft"):
        notebook = make_notebook(("markdown", f"# {slug}"))
        token = public_host.token_for(user)
        answer = requests.put(f"{public_host.api_url}dashboards/{user}/{slug}", data=json.dumps(notebook).encode(),
                              headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"}, timeout=120)
        assert answer.status_code in (200, 201), answer.text
    return {"instance": launched, "volume": volume, "snapshot": snapshot, "dashboards": ["draft", "results"]}


def test_purge_lists_then_deletes_one_users_data_everywhere_and_nothing_else(world, public_host):
    user, neighbour = "erin", "erinx"  # a prefix of another user's name must not match
    mine = seed_user_data(world, public_host, user)
    theirs = seed_user_data(world, public_host, neighbour)

    status, body = world.hub.api("POST", f"/hybrid/users/{user}/data", {})
    assert status == 400 and "confirm" in str(body), body

    _, dry = world.hub.api("GET", f"/hybrid/users/{user}/data", expect=200)
    assert dry["dry_run"] is True
    assert dry["bucket"]["prefix"] == f"users/{user}/"
    assert (dry["bucket"]["versions"], dry["bucket"]["delete_markers"]) == (3, 1)
    assert dry["bucket"]["keys"] == [f"users/{user}/analysis.ipynb", f"users/{user}/old.csv"]
    assert dry["ec2"] == {"instances": [mine["instance"]], "volumes": [mine["volume"]], "snapshots": [mine["snapshot"]]}
    assert dry["dashboards"] == mine["dashboards"]
    # The dry run deleted nothing.
    versions = world.s3.list_object_versions(Bucket=world.bucket, Prefix=f"users/{user}/")
    assert len(versions.get("Versions", [])) == 3

    _, done = world.hub.api("POST", f"/hybrid/users/{user}/data", {"confirm": user}, expect=200)
    assert done["dry_run"] is False and done["bucket"]["versions"] == 3 and not done["bucket"]["errors"]
    left = world.s3.list_object_versions(Bucket=world.bucket, Prefix=f"users/{user}/")
    assert not left.get("Versions") and not left.get("DeleteMarkers")
    state = world.ec2.describe_instances(InstanceIds=[mine["instance"]])["Reservations"][0]["Instances"][0]["State"]["Name"]
    assert state in ("shutting-down", "terminated")
    assert not world.ec2.describe_volumes(Filters=[{"Name": "volume-id", "Values": [mine["volume"]]}])["Volumes"]
    assert not world.ec2.describe_snapshots(Filters=[{"Name": "snapshot-id", "Values": [mine["snapshot"]]}])["Snapshots"]
    listed = requests.get(f"{public_host.api_url}dashboards", params={"owner": user},
                          headers={"Authorization": f"Bearer {public_host.token_for(user)}"}, timeout=30).json()
    assert listed == []
    assert "deleted the data of erin" in world.hub.log_text()

    # The neighbour's data is all there.
    kept = world.s3.list_object_versions(Bucket=world.bucket, Prefix=f"users/{neighbour}/")
    assert len(kept["Versions"]) == 3 and len(kept["DeleteMarkers"]) == 1
    assert world.ec2.describe_volumes(Filters=[{"Name": "volume-id", "Values": [theirs["volume"]]}])["Volumes"]
    _, again = world.hub.api("GET", f"/hybrid/users/{neighbour}/data", expect=200)
    assert again["dashboards"] == theirs["dashboards"] and again["ec2"]["snapshots"] == [theirs["snapshot"]]

    # A second purge finds nothing: it is idempotent.
    _, empty = world.hub.api("GET", f"/hybrid/users/{user}/data", expect=200)
    assert empty["bucket"]["versions"] == 0 and empty["ec2"] == {"instances": [], "volumes": [], "snapshots": []}
    assert empty["dashboards"] == []


def test_purge_is_refused_while_running_held_or_without_both_admin_scopes(world):
    user = "peggy"
    world.s3.put_object(Bucket=world.bucket, Key=f"users/{user}/keep.ipynb", Body=b"{}")
    spawn_ready(world, user)
    status, body = world.hub.api("POST", f"/hybrid/users/{user}/data", {"confirm": user})
    assert status == 409 and "running" in str(body), body
    assert world.hub.api("GET", f"/hybrid/users/{user}/data")[0] == 409

    # Held by an incident: its snapshots are evidence.
    _, incident = world.hub.api("POST", f"/hybrid/quarantine/{user}", {"reason": "malware"}, expect=201)
    world.hub.wait_stopped(user)
    status, body = world.hub.api("POST", f"/hybrid/users/{user}/data", {"confirm": user})
    assert status == 409 and incident["id"] in str(body), body

    token = token_with(world, "ops-servers", ["admin:servers"])  # without admin:users
    assert world.hub.api("POST", f"/hybrid/users/{user}/data", {"confirm": user}, token=token)[0] == 403
    assert world.hub.api("GET", "/hybrid/users/no-such-user/data")[0] == 404

    assert world.s3.get_object(Bucket=world.bucket, Key=f"users/{user}/keep.ipynb")["Body"].read() == b"{}"
    world.hub.api("POST", f"/hybrid/incidents/{incident['id']}/release", {"terminate": True}, expect=200)

