"""The IAM policies under jupyter_config/iam/ against the code that needs them and against the
CloudFormation template (docs/iam.md says what these tests do and do not verify).

(a) the hub policy grants exactly the EC2/SSM/STS/S3 actions the hub's code calls, found by
    parsing the code (no hand-kept list of calls);
(b) the JSON and the template's HubRole grant the same actions, statement by statement;
(c) the conditions allow and deny the requests we mean, through hybrid_spawner.iam_eval.
"""

from __future__ import annotations

import ast
import json
from pathlib import Path

import botocore.session
import pytest
import yaml
from botocore import xform_name

from hybrid_spawner.bucket_credentials.policy import node_data_role_policy, node_data_trust_policy
from hybrid_spawner.iam_eval import Resource, authorize, substitute

ROOT = Path(__file__).resolve().parents[2]
IAM = ROOT / "jupyter_config" / "iam"
TEMPLATE = ROOT / "jupyter_config" / "aws" / "research-cloud.yaml"
# The code that runs under the hub's role. stack_config.py is left out on purpose: the operator
# runs `hybrid-stack-config` with their own credentials (cloudformation:DescribeStacks).
HUB_CODE = sorted(p for d in ("hybrid_spawner", "voila_publisher") for p in (ROOT / d).rglob("*.py")
                  if p.name != "stack_config.py")
SERVICES = ("ec2", "ssm", "sts", "s3")
# S3 operations are not named like their IAM actions; these are the ones the hub's code calls.
S3_ACTIONS = {"list_object_versions": "s3:ListBucketVersions", "delete_objects": "s3:DeleteObjectVersion"}
CLIENT_NAMES = {"client", "ec2", "ssm", "sts", "s3"}


def _operations() -> dict[str, dict[str, str]]:
    session = botocore.session.get_session()
    out = {}
    for service in SERVICES:
        model = session.get_service_model(service)
        out[service] = {xform_name(name): name for name in model.operation_names}
    return out


def _calls_in(tree: ast.AST, operations) -> set[tuple[str, str]]:
    """(service, snake_name) of every SDK operation the code reaches:
    ``x._call("ec2", "run_instances", ...)``, ``client.describe_instances(...)`` or a reference
    handed to a thread (``asyncio.to_thread(client.terminate_instances, ...)``), and
    ``get_paginator("list_object_versions")``."""
    found = set()
    all_ops = {snake: service for service, ops in operations.items() for snake in ops}
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            args = [a.value for a in node.args[:2] if isinstance(a, ast.Constant) and isinstance(a.value, str)]
            if node.func.attr == "_call" and len(args) == 2 and args[0] in operations:
                found.add((args[0], args[1]))
            if node.func.attr == "get_paginator" and args and args[0] in all_ops:
                found.add((all_ops[args[0]], args[0]))
        if isinstance(node, ast.Attribute) and node.attr in all_ops:
            receiver = node.value
            is_client = (isinstance(receiver, ast.Name) and receiver.id in CLIENT_NAMES) or (
                isinstance(receiver, ast.Call) and isinstance(receiver.func, ast.Attribute)
                and receiver.func.attr in ("_client", "client"))
            if is_client:
                found.add((all_ops[node.attr], node.attr))
    return found


def called_actions() -> set[str]:
    operations = _operations()
    calls = set()
    for path in HUB_CODE:
        calls |= _calls_in(ast.parse(path.read_text(), str(path)), operations)
    actions = set()
    for service, snake in calls:
        if service == "s3":
            actions.add(S3_ACTIONS[snake])  # KeyError = a new S3 call: add it here and to the policy
        else:
            actions.add(f"{service}:{operations[service][snake]}")
    # Implied by a call's parameters: RunInstances with an IamInstanceProfile passes the node role.
    plan = (ROOT / "hybrid_spawner" / "backends" / "ec2" / "plan.py").read_text()
    if '"IamInstanceProfile"' in plan:
        actions.add("iam:PassRole")
    return actions


def _load(name):
    return json.loads((IAM / name).read_text())


def _actions(document) -> set[str]:
    out = set()
    for statement in document["Statement"]:
        a = statement["Action"]
        out |= set(a if isinstance(a, list) else [a])
    return out


def test_the_parser_finds_each_form_of_call():
    code = ast.parse(
        "await spawner._call('ec2', 'run_instances', ImageId=x)\n"
        "await asyncio.to_thread(client.terminate_instances, InstanceIds=[i])\n"
        "self._client().assume_role(RoleArn=r)\n"
        "s3.get_paginator('list_object_versions')\n"
        "self.describe_node()\n"  # not a client: must not count
    )
    assert _calls_in(code, _operations()) == {("ec2", "run_instances"), ("ec2", "terminate_instances"),
                                              ("sts", "assume_role"), ("s3", "list_object_versions")}


def test_the_hub_policy_grants_exactly_the_actions_the_code_calls():
    called = called_actions()
    granted = _actions(_load("hub-role.json"))
    # Sanity: the parse saw the launch and the status path, or it is looking at nothing.
    assert {"ec2:RunInstances", "ec2:DescribeInstances", "ssm:GetParameter", "sts:AssumeRole"} <= called
    assert called - granted == set(), "called by the code but not granted"
    assert granted - called == set(), "granted but never called (least privilege)"


def test_the_kms_policy_is_only_for_ebs_through_ec2():
    kms = _load("hub-role-kms.json")
    assert _actions(kms) == {"kms:CreateGrant", "kms:GenerateDataKeyWithoutPlaintext", "kms:Decrypt", "kms:DescribeKey"}
    for statement in kms["Statement"]:
        assert statement["Condition"]["StringEquals"]["kms:ViaService"] == "ec2.REGION.amazonaws.com"


def test_the_node_data_role_is_what_the_code_builds():
    assert _load("node-data-role.json") == node_data_role_policy("BUCKET")
    trust = node_data_trust_policy("arn:aws:iam::ACCOUNT_ID:role/HUB_ROLE_NAME")
    assert _actions(_load("node-data-role-trust.json")) == _actions(trust)


# -- (b) the template ---------------------------------------------------------------------------
class _CfnLoader(yaml.SafeLoader):
    pass


def _tag(loader, suffix, node):
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    return {f"!{suffix}": value}


_CfnLoader.add_multi_constructor("!", _tag)


def _template_hub_statements() -> list[dict]:
    resources = yaml.load(TEMPLATE.read_text(), Loader=_CfnLoader)["Resources"]
    statements = [s for p in resources["HubRole"]["Properties"]["Policies"] for s in p["PolicyDocument"]["Statement"]]
    for resource in resources.values():
        if resource["Type"] == "AWS::IAM::Policy" and {"!Ref": "HubRole"} in resource["Properties"]["Roles"]:
            statements += resource["Properties"]["PolicyDocument"]["Statement"]
    return statements


def _shape(statement) -> tuple:
    actions = statement["Action"]
    actions = frozenset(actions if isinstance(actions, list) else [actions])
    keys = frozenset((op, key) for op, keys in statement.get("Condition", {}).items() for key in keys)
    return actions, keys


def test_the_json_and_the_template_grant_the_same_actions_under_the_same_condition_keys():
    template = {s["Sid"]: _shape(s) for s in _template_hub_statements()}
    json_policy = {s["Sid"]: _shape(s) for s in _load("hub-role.json")["Statement"]}
    assert template == json_policy


# -- (c) the conditions -------------------------------------------------------------------------
VALUES = {"REGION": "eu-west-1", "ACCOUNT_ID": "111122223333", "HUB_ID": "research-hub",
          "SUBNET_ID": "subnet-0aaa", "NODE_SG_ID": "sg-0node", "VPC_ID": "vpc-0aaa",
          "NODE_ROLE_NAME": "NodeRole", "NODE_DATA_ROLE_NAME": "NodeDataRole",
          "AMI_PARAMETER_NAME": "/research/jupyter-node/ami", "BUCKET": "notebooks",
          "INSTANCE_TYPE": ["t3.medium", "t3.large"],
          "KMS_KEY_ARN": "arn:aws:kms:eu-west-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"}
ARN = "arn:aws:ec2:eu-west-1:111122223333"


@pytest.fixture
def hub():
    return [substitute(_load("hub-role.json"), VALUES)]


def launch(tags: dict, instance_type="t3.medium", image_owner="111122223333", subnet="subnet-0aaa"):
    """The resources RunInstances authorizes for one of our launches (plan.run_instances_request:
    instance and volume tagged, one interface in the subnet with the node group)."""
    tagged = {f"aws:RequestTag/{k}": v for k, v in tags.items()} | {"aws:TagKeys": list(tags)}
    return [
        Resource(f"{ARN}:instance/*", {"ec2:InstanceType": instance_type, **tagged}),
        Resource(f"{ARN}:volume/*", {"ec2:VolumeType": "gp3", "ec2:Encrypted": "true", **tagged}),
        Resource(f"{ARN}:subnet/{subnet}"),
        Resource(f"{ARN}:security-group/sg-0node"),
        Resource(f"{ARN}:network-interface/*"),
        Resource(f"arn:aws:ec2:eu-west-1::image/ami-0123", {"ec2:Owner": image_owner}),
    ]


HUB_TAGS = {"jupyterhub/hub-id": "research-hub", "jupyterhub/user": "ada"}


def test_a_launch_with_the_hub_tag_is_allowed(hub):
    result = authorize(hub, "ec2:RunInstances", launch(HUB_TAGS))
    assert result["allowed"], result["decisions"]


def test_one_statement_for_instance_and_volume_would_deny_every_launch(hub):
    """Why the template has LaunchOnlyTaggedVolumes: ec2:InstanceType is no key of a volume."""
    merged = json.loads(json.dumps(hub))
    first = merged[0]["Statement"][0]
    first["Resource"] = [first["Resource"], f"{ARN}:volume/*"]
    merged[0]["Statement"] = [s for s in merged[0]["Statement"] if s["Sid"] != "LaunchOnlyTaggedVolumes"]
    result = authorize(merged, "ec2:RunInstances", launch(HUB_TAGS))
    assert result["decisions"][f"{ARN}:volume/*"] == "ImplicitDeny"


@pytest.mark.parametrize("change, denied", [
    ({"tags": {"jupyterhub/user": "ada"}}, ("instance/*", "volume/*")),
    ({"tags": {"jupyterhub/hub-id": "other-hub"}}, ("instance/*", "volume/*")),
    ({"instance_type": "p4d.24xlarge"}, ("instance/*",)),
    ({"image_owner": "999988887777"}, ("image/ami-0123",)),
    ({"subnet": "subnet-0dmz"}, ("subnet/subnet-0dmz",)),
])
def test_launches_outside_the_rules_are_denied(hub, change, denied):
    kwargs = {"tags": HUB_TAGS, **change}
    result = authorize(hub, "ec2:RunInstances", launch(**kwargs))
    assert not result["allowed"]
    # Denied for the resource that breaks the rule, and for no other.
    assert {arn.rsplit(":", 1)[1] for arn, d in result["decisions"].items() if d != "Allow"} == set(denied)


def test_tagging_at_launch_is_allowed_and_outside_launch_is_not(hub):
    at_launch = Resource(f"{ARN}:instance/i-new", {"ec2:CreateAction": "RunInstances", "aws:TagKeys": ["jupyterhub/hub-id"],
                                                   "aws:RequestTag/jupyterhub/hub-id": "research-hub"})
    assert authorize(hub, "ec2:CreateTags", [at_launch])["allowed"]
    # The hole of issue 18: tag someone else's instance with our id, then terminate it.
    foreign = Resource(f"{ARN}:instance/i-foreign", {"aws:TagKeys": ["jupyterhub/hub-id"],
                                                     "aws:RequestTag/jupyterhub/hub-id": "research-hub"})
    assert not authorize(hub, "ec2:CreateTags", [foreign])["allowed"]
    # Our own node may get the incident mark, and nothing else.
    own = {"ec2:ResourceTag/jupyterhub/hub-id": "research-hub"}
    assert authorize(hub, "ec2:CreateTags", [Resource(f"{ARN}:instance/i-ours", {**own, "aws:TagKeys": ["hybrid/incident"]})])["allowed"]
    assert not authorize(hub, "ec2:CreateTags", [Resource(f"{ARN}:instance/i-ours", {
        **own, "aws:TagKeys": ["hybrid/incident", "jupyterhub/user"]})])["allowed"]


@pytest.mark.parametrize("action", ["ec2:TerminateInstances", "ec2:StopInstances", "ec2:StartInstances"])
def test_only_this_hubs_instances_can_be_terminated_stopped_or_started(hub, action):
    ours = Resource(f"{ARN}:instance/i-ours", {"ec2:ResourceTag/jupyterhub/hub-id": "research-hub"})
    other = Resource(f"{ARN}:instance/i-other", {"ec2:ResourceTag/jupyterhub/hub-id": "other-hub"})
    untagged = Resource(f"{ARN}:instance/i-untagged")
    assert authorize(hub, action, [ours])["allowed"]
    assert not authorize(hub, action, [other])["allowed"]
    assert not authorize(hub, action, [untagged])["allowed"]
    assert not authorize(hub, "ec2:RebootInstances", [ours])["allowed"]


def test_only_the_node_role_can_be_passed_and_only_to_ec2(hub):
    node = "arn:aws:iam::111122223333:role/NodeRole"
    assert authorize(hub, "iam:PassRole", [Resource(node, {"iam:PassedToService": "ec2.amazonaws.com"})])["allowed"]
    assert not authorize(hub, "iam:PassRole", [Resource(node, {"iam:PassedToService": "lambda.amazonaws.com"})])["allowed"]
    assert not authorize(hub, "iam:PassRole", [Resource("arn:aws:iam::111122223333:role/Admin",
                                                        {"iam:PassedToService": "ec2.amazonaws.com"})])["allowed"]


def test_kms_grants_only_for_aws_resources_through_ec2():
    kms = [substitute(_load("hub-role-kms.json"), VALUES)]
    key = VALUES["KMS_KEY_ARN"]
    via_ec2 = {"kms:ViaService": "ec2.eu-west-1.amazonaws.com"}
    assert authorize(kms, "kms:CreateGrant", [Resource(key, {**via_ec2, "kms:GrantIsForAWSResource": "true"})])["allowed"]
    assert not authorize(kms, "kms:CreateGrant", [Resource(key, {**via_ec2, "kms:GrantIsForAWSResource": "false"})])["allowed"]
    assert authorize(kms, "kms:GenerateDataKeyWithoutPlaintext", [Resource(key, via_ec2)])["allowed"]
    assert not authorize(kms, "kms:Decrypt", [Resource(key)])["allowed"]  # called directly, not via EC2
    assert not authorize(kms, "kms:Decrypt", [Resource(key.replace("1234abcd", "ffffffff"), via_ec2)])["allowed"]


def test_the_image_parameter_and_the_data_role_are_the_only_other_targets(hub):
    param = "arn:aws:ssm:eu-west-1:111122223333:parameter/research/jupyter-node/ami"
    assert authorize(hub, "ssm:GetParameter", [Resource(param)])["allowed"]
    assert not authorize(hub, "ssm:GetParameter", [Resource(param.replace("ami", "db-password"))])["allowed"]
    assert authorize(hub, "sts:AssumeRole", [Resource("arn:aws:iam::111122223333:role/NodeDataRole")])["allowed"]
    assert not authorize(hub, "sts:AssumeRole", [Resource("arn:aws:iam::111122223333:role/Admin")])["allowed"]


# -- the spawner's own launch requests, every attempt ---------------------------------------------
def resources_of_run_instances(req: dict, image_owner: str = "111122223333") -> list[Resource]:
    """The resources AWS authorizes for one ``ec2.run_instances(**req)`` call, read from the
    request itself (the resource types of RunInstances in the Service Authorization Reference):
    the instance and its root volume (with the request's tags), the image, the subnet and the
    groups, a network interface, the key pair when one is named, and a spot-instances-request
    when ``InstanceMarketOptions`` asks for spot capacity."""
    tags = {t["Key"]: t["Value"] for spec in req.get("TagSpecifications", []) for t in spec["Tags"]}
    tagged_types = {spec["ResourceType"] for spec in req.get("TagSpecifications", [])}

    def request_tags(resource_type):
        if resource_type not in tagged_types:
            return {}
        return {f"aws:RequestTag/{k}": v for k, v in tags.items()} | {"aws:TagKeys": list(tags)}

    out = [
        Resource(f"{ARN}:instance/*", {"ec2:InstanceType": req["InstanceType"], **request_tags("instance")}),
        Resource(f"{ARN}:volume/*", request_tags("volume")),
        Resource(f"arn:aws:ec2:eu-west-1::image/{req['ImageId']}", {"ec2:Owner": image_owner}),
        Resource(f"{ARN}:network-interface/*"),
    ]
    interfaces = req.get("NetworkInterfaces", [])
    groups = [g for net in interfaces for g in net.get("Groups", [])] + list(req.get("SecurityGroupIds", []))
    out += [Resource(f"{ARN}:subnet/{net['SubnetId']}") for net in interfaces if net.get("SubnetId")]
    out += [Resource(f"{ARN}:security-group/{g}") for g in groups]
    if req.get("KeyName"):
        out.append(Resource(f"{ARN}:key-pair/{req['KeyName']}"))
    if req.get("InstanceMarketOptions", {}).get("MarketType") == "spot":
        out.append(Resource(f"{ARN}:spot-instances-request/*"))
    return out


TWO_SUBNETS = {**VALUES, "SUBNET_ID": ["subnet-0aaa", "subnet-0bbb"]}


@pytest.mark.parametrize("spot, fallback", [(False, "on-demand"), (True, "on-demand"), (True, "next-type")])
def test_every_launch_attempt_the_spawner_makes_is_allowed(spot, fallback):
    """The requests are built by the spawner's own plan.run_instances_request, for every attempt
    of plan.launch_attempts over two instance types and two subnets: on-demand and spot (a spot
    launch is also authorized on a spot-instances-request, which the cost work added)."""
    from hybrid_spawner.backends.ec2 import plan

    policy = [substitute(_load("hub-role.json"), TWO_SUBNETS)]
    spec = plan.LaunchSpec(image_id="ami-0123", user_data="#!/bin/sh", tags=[
        {"Key": k, "Value": v} for k, v in HUB_TAGS.items()], security_group_ids=["sg-0node"],
        instance_profile="NodeRole", key_name="ops", root_device_name="/dev/xvda", root_volume_size=30)
    attempts = list(plan.launch_attempts(["t3.medium", "t3.large"], ["subnet-0aaa", "subnet-0bbb"], spot, fallback))
    assert len(attempts) == (8 if spot else 4)
    for attempt in attempts:
        req = plan.run_instances_request(spec, attempt, client_token="t")
        result = authorize(policy, "ec2:RunInstances", resources_of_run_instances(req))
        assert result["allowed"], (attempt, {a: d for a, d in result["decisions"].items() if d != "Allow"})
    # The same requests from a subnet the policy does not list, or without the hub's tag, are not.
    req = plan.run_instances_request(spec, plan.Attempt("t3.medium", "subnet-0dmz", plan.SPOT), "t")
    assert not authorize(policy, "ec2:RunInstances", resources_of_run_instances(req))["allowed"]
    untagged = plan.LaunchSpec(**{**spec.__dict__, "tags": [{"Key": "jupyterhub/user", "Value": "ada"}]})
    req = plan.run_instances_request(untagged, plan.Attempt("t3.medium", "subnet-0aaa", plan.SPOT), "t")
    assert not authorize(policy, "ec2:RunInstances", resources_of_run_instances(req))["allowed"]


def test_a_list_value_inside_a_longer_string_becomes_one_string_per_value():
    doc = {"Resource": ["arn:aws:ec2:REGION:ACCOUNT_ID:subnet/SUBNET_ID", "x"], "One": "subnet/SUBNET_ID"}
    out = substitute({"Resource": doc["Resource"]}, TWO_SUBNETS)
    assert out["Resource"] == ["arn:aws:ec2:eu-west-1:111122223333:subnet/subnet-0aaa",
                               "arn:aws:ec2:eu-west-1:111122223333:subnet/subnet-0bbb", "x"]
    # Outside a list there is nowhere to put a second string: refused rather than "['a', 'b']".
    with pytest.raises(ValueError, match="SUBNET_ID"):
        substitute({"One": "subnet/SUBNET_ID"}, TWO_SUBNETS)
