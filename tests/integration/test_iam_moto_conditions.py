"""What the moto server enforces of an EC2 policy, so that docs/iam.md can say exactly which
checks run where (measured with moto 5.2; the test fails when a moto upgrade changes it).

IAM users with chosen policies call EC2 on a moto server that checks every request
(INITIAL_NO_AUTH_ACTION_COUNT, as in test_bucket_credentials_aws.py). What moto does for EC2:

- actions are enforced: a call the policy does not name is refused (AccessDenied);
- conditions are ignored: a statement with a condition applies as if it had none, even one
  that can never hold (aws:RequestedRegion of another region);
- resources are not known: an EC2 request is matched as resource "*", so a statement scoped to
  an instance ARN (exact or ``instance/*``) never matches and the call is refused.

So the hub's policy (resource ARNs and conditions) cannot run on moto: it would refuse the hub's
own TerminateInstances. Its conditions are checked by hybrid_spawner.iam_eval instead
(tests/unit/test_iam_policies.py); moto checks only that nothing outside the policy's actions
goes through. If a moto upgrade starts enforcing resources and conditions, these tests fail:
then move the condition tests onto moto and update docs/iam.md.
"""

from __future__ import annotations

import json
from pathlib import Path

import boto3
import botocore.exceptions
import pytest

from hybrid_spawner.iam_eval import Resource, authorize, substitute
from simulators.moto import MotoServer

ROOT = Path(__file__).resolve().parents[2]
ACCOUNT = "123456789012"  # moto's default account
REGION = "us-east-1"
VALUES = {"REGION": REGION, "ACCOUNT_ID": ACCOUNT, "HUB_ID": "research-hub", "SUBNET_ID": "subnet-0aaa",
          "NODE_SG_ID": "sg-0node", "VPC_ID": "vpc-0aaa", "NODE_ROLE_NAME": "NodeRole",
          "NODE_DATA_ROLE_NAME": "NodeDataRole", "AMI_PARAMETER_NAME": "/research/jupyter-node/ami",
          "BUCKET": "notebooks", "INSTANCE_TYPE": ["t3.medium"]}
ARN = f"arn:aws:ec2:{REGION}:{ACCOUNT}"


def _client(service, url, keys):
    return boto3.client(service, endpoint_url=url, region_name=REGION, **keys)


def _keys(answer) -> dict:
    c = answer["AccessKey"]
    return {"aws_access_key_id": c["AccessKeyId"], "aws_secret_access_key": c["SecretAccessKey"]}


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    server = MotoServer(tmp_path_factory.mktemp("moto-iam-ec2"))
    server.env["INITIAL_NO_AUTH_ACTION_COUNT"] = "3"  # enough to create the first admin
    server.start()
    try:
        iam = _client("iam", server.url, {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"})
        iam.create_user(UserName="admin")
        iam.put_user_policy(UserName="admin", PolicyName="all", PolicyDocument=json.dumps(
            {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}))
        admin = _keys(iam.create_access_key(UserName="admin"))
        iam = _client("iam", server.url, admin)
        iam.create_user(UserName="hub")
        policy = substitute(json.loads((ROOT / "jupyter_config" / "iam" / "hub-role.json").read_text()), VALUES)
        iam.put_user_policy(UserName="hub", PolicyName="hub-role", PolicyDocument=json.dumps(policy))
        hub = _keys(iam.create_access_key(UserName="hub"))
        ec2 = _client("ec2", server.url, admin)
        image = ec2.describe_images()["Images"][0]["ImageId"]

        def run(tags):
            spec = [{"ResourceType": "instance", "Tags": [{"Key": k, "Value": v} for k, v in tags.items()]}] if tags else []
            return ec2.run_instances(ImageId=image, InstanceType="t3.medium", MinCount=1, MaxCount=1,
                                     TagSpecifications=spec)["Instances"][0]["InstanceId"]

        yield {"admin": ec2, "hub": _client("ec2", server.url, hub), "policy": [policy], "run": run,
               "iam": iam, "url": server.url, "users": []}
    finally:
        server.stop()


def _denied(call) -> bool:
    try:
        call()
    except botocore.exceptions.ClientError as e:
        assert e.response["Error"]["Code"] in ("AccessDenied", "UnauthorizedOperation"), e.response["Error"]
        return True
    return False


def _user_calling(world, statement):
    """An EC2 client of a new IAM user whose only policy is ``statement``."""
    iam, name = world["iam"], f"u{len(world['users'])}"
    world["users"].append(name)
    iam.create_user(UserName=name)
    iam.put_user_policy(UserName=name, PolicyName="p", PolicyDocument=json.dumps(
        {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", **statement}]}))
    return _client("ec2", world["url"], _keys(iam.create_access_key(UserName=name)))


def test_moto_enforces_the_actions_of_the_hub_policy(world):
    ours = world["run"]({"jupyterhub/hub-id": "research-hub"})
    assert not _denied(lambda: world["hub"].describe_instances(InstanceIds=[ours]))  # Resource "*"
    assert _denied(lambda: world["hub"].reboot_instances(InstanceIds=[ours]))  # not granted
    assert _denied(lambda: world["hub"].delete_vpc(VpcId="vpc-0aaa"))


def test_moto_refuses_every_ec2_statement_scoped_to_a_resource_arn(world):
    """Even the hub's own, tagged instance: its TerminateInstances statement names instance ARNs."""
    ours = world["run"]({"jupyterhub/hub-id": "research-hub"})
    assert authorize(world["policy"], "ec2:TerminateInstances", [Resource(
        f"{ARN}:instance/{ours}", {"ec2:ResourceTag/jupyterhub/hub-id": "research-hub"})])["allowed"]  # AWS: allowed
    assert _denied(lambda: world["hub"].terminate_instances(InstanceIds=[ours]))  # moto: refused
    exact = _user_calling(world, {"Action": "ec2:TerminateInstances", "Resource": f"{ARN}:instance/{ours}"})
    assert _denied(lambda: exact.terminate_instances(InstanceIds=[ours]))


def test_moto_ignores_conditions_on_ec2(world):
    foreign = world["run"]({})  # someone else's instance, without the hub's tag
    tag = [{"Key": "jupyterhub/hub-id", "Value": "research-hub"}]
    # The hub's statement for CreateTags, with Resource "*": AWS would deny tagging an existing
    # instance (no ec2:CreateAction), moto lets it through.
    tag_at_launch = next(s for s in world["policy"][0]["Statement"] if s["Sid"] == "TagOnlyWhileLaunching")
    assert not authorize(world["policy"], "ec2:CreateTags", [Resource(f"{ARN}:instance/{foreign}", {
        "aws:TagKeys": ["jupyterhub/hub-id"], "aws:RequestTag/jupyterhub/hub-id": "research-hub"})])["allowed"]
    tagger = _user_calling(world, {"Action": "ec2:CreateTags", "Resource": "*", "Condition": tag_at_launch["Condition"]})
    assert not _denied(lambda: tagger.create_tags(Resources=[foreign], Tags=tag))
    # A condition that can never hold here (another region) is ignored too.
    elsewhere = _user_calling(world, {"Action": "ec2:TerminateInstances", "Resource": "*",
                                      "Condition": {"StringEquals": {"aws:RequestedRegion": "eu-west-1"}}})
    assert not _denied(lambda: elsewhere.terminate_instances(InstanceIds=[foreign]))
    state = world["admin"].describe_instances(InstanceIds=[foreign])["Reservations"][0]["Instances"][0]["State"]["Name"]
    assert state in ("shutting-down", "terminated")
