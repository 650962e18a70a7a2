"""The JSON policies of jupyter_config/iam/ are accepted by the moto server's IAM (which checks
a policy's grammar: Version, Effect, Action and Resource forms, condition operators), and the
roles can be built from them. moto does not evaluate the conditions (or resource ARNs) for EC2
(test_iam_moto_conditions.py); that is tests/unit/test_iam_policies.py with hybrid_spawner.iam_eval (docs/iam.md)."""

from __future__ import annotations

import json
import secrets

import pytest

from hybrid_spawner.iam_eval import substitute
from simulators.ec2sim import aws_client
from tests.unit.test_iam_policies import IAM, VALUES

pytestmark = pytest.mark.integration

PERMISSIONS = ("hub-role.json", "hub-role-kms.json", "node-data-role.json")
TRUST = {"HubRole": "hub-role-trust.json", "NodeRole": "node-role-trust.json", "NodeDataRole": "node-data-role-trust.json"}


def document(name: str) -> str:
    return json.dumps(substitute(json.loads((IAM / name).read_text()), {**VALUES, "HUB_ROLE_NAME": "HubRole"}))


def test_the_policies_are_valid_iam_documents_and_make_the_roles(moto_server, aws_env):
    iam = aws_client("iam", moto_server.url)
    suffix = secrets.token_hex(3)
    arns = {}
    for name in PERMISSIONS:
        arns[name] = iam.create_policy(PolicyName=f"{name[:-5]}-{suffix}", PolicyDocument=document(name))["Policy"]["Arn"]
    for role, trust in TRUST.items():
        iam.create_role(RoleName=f"{role}-{suffix}", AssumeRolePolicyDocument=document(trust))
    iam.attach_role_policy(RoleName=f"HubRole-{suffix}", PolicyArn=arns["hub-role.json"])
    iam.attach_role_policy(RoleName=f"NodeDataRole-{suffix}", PolicyArn=arns["node-data-role.json"])
    attached = iam.list_attached_role_policies(RoleName=f"HubRole-{suffix}")["AttachedPolicies"]
    assert [p["PolicyArn"] for p in attached] == [arns["hub-role.json"]]
    assert iam.list_attached_role_policies(RoleName=f"NodeRole-{suffix}")["AttachedPolicies"] == []


def test_moto_rejects_a_broken_policy_so_the_check_above_means_something(moto_server, aws_env):
    iam = aws_client("iam", moto_server.url)
    broken = json.loads(document("hub-role.json"))
    broken["Statement"][0]["Effect"] = "Perhaps"
    with pytest.raises(iam.exceptions.MalformedPolicyDocumentException):
        iam.create_policy(PolicyName=f"broken-{secrets.token_hex(3)}", PolicyDocument=json.dumps(broken))
