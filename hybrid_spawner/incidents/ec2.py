"""Quarantine on EC2 (the automated incident isolation pattern): the node keeps running for
forensics, but reaches nothing, holds no role, cannot be terminated by mistake, and its disks are
copied as they were at the time of the incident.

Every call goes through the spawner's own client (threads, retries, endpoint), so the hub's role
needs the extra rights listed in docs/incidents.md and nothing broader.
"""

from __future__ import annotations

import botocore.exceptions

from hybrid_spawner.backends.ec2.plan import TAG_HUB, TAG_OWNER

TAG_INCIDENT = "hybrid/incident"


def quarantine_group_name(hub_id: str) -> str:
    return f"hybrid-quarantine-{hub_id}"[:255]


async def _quarantine_group(spawner, vpc_id: str) -> tuple[str, bool]:
    """This hub's quarantine group in ``vpc_id`` (created on first use): no inbound rule and,
    unlike a new group's default, no outbound rule either. Returns (group id, created)."""
    name = quarantine_group_name(spawner.hub_id)
    found = await spawner._call("ec2", "describe_security_groups", Filters=[
        {"Name": "group-name", "Values": [name]}, {"Name": "vpc-id", "Values": [vpc_id]}])
    if found["SecurityGroups"]:
        return found["SecurityGroups"][0]["GroupId"], False
    group = (await spawner._call(
        "ec2", "create_security_group", GroupName=name, VpcId=vpc_id,
        Description="Quarantine: no traffic in or out (hybrid_spawner incident response)",
        TagSpecifications=[{"ResourceType": "security-group", "Tags": [{"Key": TAG_HUB, "Value": spawner.hub_id}]}],
    ))["GroupId"]
    await spawner._call("ec2", "revoke_security_group_egress", GroupId=group,
                        IpPermissions=[{"IpProtocol": "-1", "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}])
    return group, True


async def isolate(spawner, node_id: str, incident_id: str, record) -> None:
    """Isolate ``node_id``; ``record(action)`` is called after each step that took effect, so an
    interrupted quarantine still says what it did."""
    reply = await spawner._call("ec2", "describe_instances", InstanceIds=[node_id])
    (instance,) = [i for r in reply["Reservations"] for i in r["Instances"]]
    tags = {t["Key"]: t["Value"] for t in instance.get("Tags", [])}
    if tags.get(TAG_HUB) != spawner.hub_id:
        raise PermissionError(f"instance {node_id} does not carry this hub's tag; not touching it")

    group, created = await _quarantine_group(spawner, instance["VpcId"])
    if created:
        record(f"created the quarantine security group {group} (no rules in or out)")
    before = {g["GroupId"] for g in instance.get("SecurityGroups", [])}
    before |= {g["GroupId"] for eni in instance.get("NetworkInterfaces", []) for g in eni.get("Groups", [])}
    await spawner._call("ec2", "modify_instance_attribute", InstanceId=node_id, Groups=[group])
    record(f"moved {node_id} into {group} (was {', '.join(sorted(before)) or 'none'})")

    associations = await spawner._call("ec2", "describe_iam_instance_profile_associations",
                                       Filters=[{"Name": "instance-id", "Values": [node_id]}])
    for association in associations.get("IamInstanceProfileAssociations", []):
        if association.get("State") in ("associated", "associating"):
            await spawner._call("ec2", "disassociate_iam_instance_profile", AssociationId=association["AssociationId"])
            record(f"removed the instance profile {association['IamInstanceProfile']['Arn']}")

    await spawner._call("ec2", "modify_instance_attribute", InstanceId=node_id, DisableApiTermination={"Value": True})
    record("turned on termination protection")
    # Termination protection does not cover a shutdown from inside the instance (EC2 user guide):
    # nodes launch with InstanceInitiatedShutdownBehavior=terminate and power off when their
    # server ends, so an intruder (or the server's own exit) would erase the evidence.
    # (The Attribute/Value form: moto 5 mishandles InstanceInitiatedShutdownBehavior={"Value": ...},
    # dropping the instance's security groups and keeping the old value; AWS takes both forms.)
    await spawner._call("ec2", "modify_instance_attribute", InstanceId=node_id,
                        Attribute="instanceInitiatedShutdownBehavior", Value="stop")
    record("made a shutdown from inside stop the instance instead of terminating it")

    incident_tags = [{"Key": TAG_INCIDENT, "Value": incident_id}, {"Key": TAG_HUB, "Value": spawner.hub_id},
                     {"Key": TAG_OWNER, "Value": tags.get(TAG_OWNER, "")}]
    for mapping in instance.get("BlockDeviceMappings", []):
        volume = mapping.get("Ebs", {}).get("VolumeId")
        if not volume:
            continue
        snapshot = await spawner._call(
            "ec2", "create_snapshot", VolumeId=volume, Description=f"forensic copy, incident {incident_id}",
            TagSpecifications=[{"ResourceType": "snapshot", "Tags": incident_tags}])
        record(f"snapshot {snapshot['SnapshotId']} of {volume} ({mapping.get('DeviceName', '?')})")

    await spawner._call("ec2", "create_tags", Resources=[node_id], Tags=[{"Key": TAG_INCIDENT, "Value": incident_id}])
    record(f"tagged {node_id} {TAG_INCIDENT}={incident_id}")


def context(spawner) -> dict:
    """What ending the node later needs, kept in the incident (the spawner may be gone by then)."""
    return {"region": spawner.region, "endpoint_url": spawner.endpoint_url, "hub_id": spawner.hub_id}


async def end(where: dict, node_id: str) -> str:
    """After the forensics: lift termination protection and terminate the quarantined node."""
    import asyncio

    from hybrid_spawner.backends.ec2.client import aws_client

    client = await asyncio.to_thread(aws_client, "ec2", where["region"], where.get("endpoint_url"))
    try:
        reply = await asyncio.to_thread(client.describe_instances, InstanceIds=[node_id])
        (instance,) = [i for r in reply["Reservations"] for i in r["Instances"]]
        if {t["Key"]: t["Value"] for t in instance.get("Tags", [])}.get(TAG_HUB) != where["hub_id"]:
            raise PermissionError(f"instance {node_id} does not carry this hub's tag; not touching it")
        await asyncio.to_thread(client.modify_instance_attribute, InstanceId=node_id,
                                DisableApiTermination={"Value": False})
        await asyncio.to_thread(client.terminate_instances, InstanceIds=[node_id])
    except botocore.exceptions.ClientError as error:
        if error.response.get("Error", {}).get("Code") != "InvalidInstanceID.NotFound":
            raise
        return f"{node_id} was already gone"
    return f"terminated {node_id}"
