"""Pure builders for the EC2 launch: tags, the RunInstances request, the fallback plan, messages.

Nothing here talks to AWS, so every decision is unit-tested in milliseconds; ``ec2.py`` only
sends what these functions build.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Iterator

SSM_PREFIX = "resolve:ssm:"
TAG_HUB = "jupyterhub/hub-id"
TAG_OWNER = "jupyterhub/owner"
TAG_SERVER = "jupyterhub/server-name"

# Errors after which another instance type (or subnet) may succeed.
CAPACITY_ERRORS = frozenset(
    {"InsufficientInstanceCapacity", "Unsupported", "InsufficientCapacity", "InsufficientFreeAddressesInSubnet"}
)
# Spot requests refused for lack of spot capacity (or price): the on-demand fallback may succeed.
SPOT_CAPACITY_ERRORS = CAPACITY_ERRORS | frozenset(
    {"InsufficientSpotInstanceCapacity", "SpotMaxPriceTooLow", "MaxSpotInstanceCountExceeded"}
)
SPOT = "spot"
ON_DEMAND = "on-demand"
SPOT_FALLBACKS = ("on-demand", "next-type", "none")
_REGION = re.compile(r"^[a-z]{2}(-[a-z]+)+-\d{1,2}$")
_AMI = re.compile(r"^ami-[0-9a-f]{8,17}$")
_SUBNET = re.compile(r"^subnet-[0-9a-f]{8,17}$")
_SG = re.compile(r"^sg-[0-9a-f]{8,17}$")


def valid_region(region: str) -> bool:
    return bool(_REGION.match(region or ""))


def option_problems(region: str, image: str, instance_types, subnet_ids, security_group_ids) -> list[str]:
    """Admin-configuration mistakes that need no API call to spot, as messages naming the trait."""
    problems = []
    if not region:
        problems.append("no AWS region is configured (set EC2Spawner.region)")
    elif not valid_region(region):
        problems.append(f"{region!r} is not an AWS region name such as eu-west-1 (EC2Spawner.region)")
    if not image:
        problems.append("no image is configured (set EC2Spawner.image to an AMI id or resolve:ssm:/parameter)")
    elif not image.startswith(SSM_PREFIX) and not _AMI.match(image):
        problems.append(f"{image!r} is neither an AMI id (ami-...) nor resolve:ssm:/parameter (EC2Spawner.image)")
    elif image.startswith(SSM_PREFIX) and not image[len(SSM_PREFIX) :]:
        problems.append("EC2Spawner.image names no SSM parameter after resolve:ssm:")
    if not instance_types:
        problems.append("EC2Spawner.instance_types is empty")
    problems += [f"{s!r} is not a subnet id (subnet-...) (EC2Spawner.subnet_ids)" for s in subnet_ids if not _SUBNET.match(s)]
    problems += [
        f"{g!r} is not a security group id (sg-...) (EC2Spawner.security_group_ids)"
        for g in security_group_ids
        if not _SG.match(g)
    ]
    return problems


def instance_name(user: str, server: str) -> str:
    return f"jupyter-{user}-{server}" if server else f"jupyter-{user}"


def instance_tags(user: str, server: str, hub_id: str, extra: dict[str, str]) -> list[dict]:
    """Tags for the instance and its volumes; ours win over ``extra`` so the poller finds them."""
    tags = dict(extra)
    tags.update({"Name": instance_name(user, server), TAG_OWNER: user, TAG_HUB: hub_id, TAG_SERVER: server})
    return [{"Key": k, "Value": str(v)} for k, v in tags.items()]


@dataclass(frozen=True)
class Attempt:
    instance_type: str
    subnet_id: str | None
    market: str = ON_DEMAND  # "spot" or "on-demand"


def instance_type_order(preferred: str, fallbacks) -> list[str]:
    """``preferred`` (a researcher's pick, when there is one) first, then the fallback list
    without repeating it."""
    first = [preferred] if preferred else []
    return first + [t for t in fallbacks if t != preferred]


def launch_attempts(instance_types, subnet_ids, spot: bool = False, spot_fallback: str = "on-demand") -> Iterator[Attempt]:
    """The order in which to try: each instance type in every subnet, then the next type.

    With ``spot``, spot capacity is asked for first; ``spot_fallback`` says what comes when it
    is missing: "on-demand" (the same type on-demand, then the next type's spot), "next-type"
    (spot for every type first, then on-demand for every type) or "none" (spot only).
    """
    subnets = list(subnet_ids) or [None]
    if not spot:
        markets_per_type, trailing = [ON_DEMAND], []
    elif spot_fallback == "on-demand":
        markets_per_type, trailing = [SPOT, ON_DEMAND], []
    elif spot_fallback == "next-type":
        markets_per_type, trailing = [SPOT], [ON_DEMAND]
    else:
        markets_per_type, trailing = [SPOT], []
    for itype in instance_types:
        for market in markets_per_type:
            for subnet in subnets:
                yield Attempt(itype, subnet, market)
    for market in trailing:
        for itype in instance_types:
            for subnet in subnets:
                yield Attempt(itype, subnet, market)


@dataclass
class LaunchSpec:
    """Everything RunInstances needs besides the instance type and subnet of an attempt."""

    image_id: str
    user_data: str
    tags: list[dict]
    security_group_ids: list[str]
    instance_profile: str = ""
    key_name: str = ""
    imdsv2_required: bool = True
    root_device_name: str | None = None
    root_volume_size: int = 0
    root_volume_type: str = "gp3"
    root_volume_encrypted: bool = True
    shutdown_behavior: str = "terminate"  # what an OS shutdown does; "stop" keeps the disks


def run_instances_request(spec: LaunchSpec, attempt: Attempt, client_token: str) -> dict:
    """The keyword arguments of ``ec2.run_instances`` for one attempt.

    ``UserData`` is passed as text: boto3 base64-encodes it. ``ClientToken`` makes a retried
    request idempotent (no second instance if a response was lost).
    """
    req = {
        "ImageId": spec.image_id,
        "InstanceType": attempt.instance_type,
        "MinCount": 1,
        "MaxCount": 1,
        "UserData": spec.user_data,
        "ClientToken": client_token,
        # One-time spot instances cannot be stopped: only "terminate" is accepted for them.
        "InstanceInitiatedShutdownBehavior": "terminate" if attempt.market == SPOT else spec.shutdown_behavior,
        "TagSpecifications": [
            {"ResourceType": "instance", "Tags": spec.tags},
            {"ResourceType": "volume", "Tags": spec.tags},
        ],
        "MetadataOptions": {"HttpEndpoint": "enabled", "HttpTokens": "required" if spec.imdsv2_required else "optional"},
    }
    if attempt.subnet_id:
        net = {"DeviceIndex": 0, "SubnetId": attempt.subnet_id, "AssociatePublicIpAddress": False}
        if spec.security_group_ids:
            net["Groups"] = list(spec.security_group_ids)
        req["NetworkInterfaces"] = [net]
    elif spec.security_group_ids:
        req["SecurityGroupIds"] = list(spec.security_group_ids)
    if attempt.market == SPOT:
        # One-time spot capacity that ends with the server: a reclaim terminates the instance
        # (the hub's status cache then reports the server gone, with EC2's reason).
        req["InstanceMarketOptions"] = {
            "MarketType": "spot",
            "SpotOptions": {"SpotInstanceType": "one-time", "InstanceInterruptionBehavior": "terminate"},
        }
    if spec.instance_profile:
        key = "Arn" if spec.instance_profile.startswith("arn:") else "Name"
        req["IamInstanceProfile"] = {key: spec.instance_profile}
    if spec.key_name:
        req["KeyName"] = spec.key_name
    if spec.root_volume_size and spec.root_device_name:
        req["BlockDeviceMappings"] = [
            {
                "DeviceName": spec.root_device_name,
                "Ebs": {
                    "VolumeSize": int(spec.root_volume_size),
                    "VolumeType": spec.root_volume_type,
                    "Encrypted": bool(spec.root_volume_encrypted),
                    "DeleteOnTermination": True,
                },
            }
        ]
    return req


# -- turning AWS errors into sentences a user can act on ------------------------------------
_MESSAGES = {
    "InvalidSubnetID.NotFound": "subnet {subnets} does not exist in {region} (EC2Spawner.subnet_ids)",
    "InvalidSubnet": "subnet {subnets} is not usable in {region} (EC2Spawner.subnet_ids)",
    "InvalidGroup.NotFound": "security group {groups} does not exist in {region} (EC2Spawner.security_group_ids)",
    "InvalidAMIID.NotFound": "image {image} does not exist in {region} (EC2Spawner.image)",
    "InvalidAMIID.Malformed": "image {image} is not a valid AMI id (EC2Spawner.image)",
    "InvalidAMIID.Unavailable": "image {image} is not available (EC2Spawner.image)",
    "ParameterNotFound": "SSM parameter {image} does not exist in {region} (EC2Spawner.image)",
    "ValidationException": "SSM parameter name in {image} is invalid (EC2Spawner.image)",
    "AuthFailure": "AWS rejected the hub's credentials",
    "InvalidClientTokenId": "AWS rejected the hub's credentials",
    "UnrecognizedClientException": "AWS rejected the hub's credentials",
    "SignatureDoesNotMatch": "AWS rejected the hub's credentials",
    "UnauthorizedOperation": "the hub's AWS role may not launch this instance (check its IAM policy)",
    "AccessDeniedException": "the hub's AWS role may not read {image} (check its IAM policy)",
    "InvalidKeyPair.NotFound": "key pair does not exist in {region} (EC2Spawner.key_name)",
    "InvalidParameterValue": "EC2 rejected a launch parameter: {aws_message}",
    "InvalidParameterCombination": "EC2 rejected a launch parameter: {aws_message}",
    "403": "AWS refused the hub's request (HTTP 403); check the hub's credentials and IAM policy",
    "InstanceLimitExceeded": "the AWS account's instance limit is reached; ask the hub admin",
    "VcpuLimitExceeded": "the AWS account's vCPU limit is reached; ask the hub admin",
}


def client_error_message(code: str, aws_message: str, **context) -> str:
    """A user-facing sentence for an AWS error code (AWS messages carry no credentials)."""
    template = _MESSAGES.get(code)
    aws_message = (aws_message or "").strip()[:300]
    if template is None:
        return f"EC2 refused the request ({code}: {aws_message})"
    return "Could not start the server: " + template.format(aws_message=aws_message, **context) + "."


#: what a start does with a parked (stopped) instance, by the instance's EC2 state
RESUME = "resume"
WAIT_STOPPED = "wait-until-stopped"
STOP_FIRST = "stop-first"
LAUNCH_NEW = "launch-new"


def resume_step(state_name: str | None) -> str:
    """The next step for a parked instance in EC2 state ``state_name`` (None: not found).

    Only a stopped instance can be given new user-data and started; one that is still stopping
    is waited for; one started outside JupyterHub is stopped first (its boot script is spent, and
    its disk holds the researcher's work); a terminated one is gone and a new one is launched.
    """
    if state_name == "stopped":
        return RESUME
    if state_name == "stopping":
        return WAIT_STOPPED
    if state_name in ("pending", "running"):
        return STOP_FIRST
    return LAUNCH_NEW
