"""The reference topology from one template: cfn-lint clean, deployable on the moto server, shaped
like the reference deployment's table 1, and turned into a hub configuration that spawns."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

from hybrid_spawner.backends.ec2.plan import TAG_HUB
from simulators.ec2sim import REGION, aws_client
from simulators.hub import LocalHub
from simulators.moto import MOTO_CREDENTIALS
from simulators.noderunner import NodeRunnerProcess
from simulators.processes import venv_bin_dir, wait_until
from tests.fixtures.topology import TEMPLATE, template_resources

pytestmark = pytest.mark.integration


def test_the_template_is_cfn_lint_clean():
    linter = Path(sys.executable).parent / "cfn-lint"
    result = subprocess.run([str(linter), "--format", "parseable", str(TEMPLATE)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def _ingress(group: dict) -> list[tuple]:
    rules = []
    for p in group["IpPermissions"]:
        for r in p.get("IpRanges", []):
            rules.append((p["IpProtocol"], p.get("FromPort"), r["CidrIp"]))
        for pair in p.get("UserIdGroupPairs", []):
            rules.append((p["IpProtocol"], p.get("FromPort"), pair["GroupId"]))
    return sorted(rules, key=str)


def test_the_deployed_stack_is_the_reference_topology(topology_stack):
    out, ec2 = topology_stack.outputs, aws_client("ec2", topology_stack.endpoint)
    groups = {g["GroupId"]: g for g in ec2.describe_security_groups(
        GroupIds=[out["NodeSecurityGroupId"], out["HubSecurityGroupId"], out["PublicHostSecurityGroupId"],
                  out["VpnGatewaySecurityGroupId"]])["SecurityGroups"]}
    vpn, hub, node, public = (out["VpnGatewaySecurityGroupId"], out["HubSecurityGroupId"],
                              out["NodeSecurityGroupId"], out["PublicHostSecurityGroupId"])
    # Table 1 with the hub added: the hub from the VPN only; the nodes' server from the hub only;
    # the publisher API from the research subnet only; nothing at all from the public host's group.
    assert _ingress(groups[hub]) == sorted([("tcp", 8000, vpn), ("tcp", 22, vpn), ("tcp", 8081, node)], key=str)
    assert _ingress(groups[node]) == sorted([("tcp", 8888, hub), ("tcp", 22, vpn)], key=str)
    assert _ingress(groups[public]) == sorted(
        [("tcp", 80, "0.0.0.0/0"), ("tcp", 443, "0.0.0.0/0"), ("tcp", 8080, "10.0.3.0/24"), ("tcp", 22, vpn)], key=str)
    assert ("udp", 1194, "0.0.0.0/0") in _ingress(groups[vpn])
    assert ("tcp", 22, "0.0.0.0/0") not in _ingress(groups[vpn])

    # Routes: DMZ and production to the internet gateway; research only through the NAT, with
    # the bucket through the gateway endpoint.
    tables = topology_stack.route_tables()
    by_subnet = {a["SubnetId"]: t for t in tables for a in t["Associations"] if a.get("SubnetId")}
    defaults = {s: next(r for r in t["Routes"] if r.get("DestinationCidrBlock") == "0.0.0.0/0")
                for s, t in by_subnet.items()}
    assert set(defaults) == {out["PublicSubnetId"], out["DmzSubnetId"], out["ResearchSubnetId"]}
    assert defaults[out["PublicSubnetId"]]["GatewayId"].startswith("igw-")
    assert defaults[out["DmzSubnetId"]]["GatewayId"].startswith("igw-")
    assert defaults[out["ResearchSubnetId"]].get("NatGatewayId", "").startswith("nat-")
    assert not defaults[out["ResearchSubnetId"]].get("GatewayId", "").startswith("igw-")
    endpoints = ec2.describe_vpc_endpoints(Filters=[{"Name": "vpc-id", "Values": [out["VpcId"]]}])["VpcEndpoints"]
    assert [e["ServiceName"] for e in endpoints] == [f"com.amazonaws.{REGION}.s3"]
    assert endpoints[0]["RouteTableIds"] == [by_subnet[out["ResearchSubnetId"]]["RouteTableId"]]

    # The bucket: encrypted (as deployed), versioned and not public (as declared: moto 5.2's
    # CloudFormation applies a bucket's encryption but not these two properties).
    s3 = aws_client("s3", topology_stack.endpoint)
    rules = s3.get_bucket_encryption(Bucket=out["BucketName"])["ServerSideEncryptionConfiguration"]["Rules"]
    assert rules[0]["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"
    declared = template_resources()["NotebookBucket"]["Properties"]
    assert declared["VersioningConfiguration"] == {"Status": "Enabled"}
    policy = template_resources()["NotebookBucketPolicy"]["Properties"]["PolicyDocument"]["Statement"]
    assert policy[0]["Effect"] == "Deny" and policy[0]["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    assert declared["PublicAccessBlockConfiguration"] == dict.fromkeys(
        ["BlockPublicAcls", "BlockPublicPolicy", "IgnorePublicAcls", "RestrictPublicBuckets"], True)

    # The node image parameter names the image the stack was given.
    ssm = aws_client("ssm", topology_stack.endpoint)
    assert ssm.get_parameter(Name=out["NodeImageParameterName"])["Parameter"]["Value"] == topology_stack.node_image


def test_the_roles_grant_what_the_design_says(topology_stack):
    iam = aws_client("iam", topology_stack.endpoint)
    node_role = topology_stack.role_name("NodeRole")
    assert iam.list_role_policies(RoleName=node_role)["PolicyNames"] == []
    assert iam.list_attached_role_policies(RoleName=node_role)["AttachedPolicies"] == []

    hub_role = topology_stack.role_name("HubRole")
    statements = {}
    for name in iam.list_role_policies(RoleName=hub_role)["PolicyNames"]:
        document = iam.get_role_policy(RoleName=hub_role, PolicyName=name)["PolicyDocument"]
        if isinstance(document, str):  # moto's CloudFormation stores the document as Python's repr of it
            document = ast.literal_eval(document)
        for s in document["Statement"]:
            statements[s["Sid"]] = s
    launch = statements["LaunchOnlyTaggedNodesOfAllowedTypes"]["Condition"]["StringEquals"]
    assert launch[f"aws:RequestTag/{TAG_HUB}"] == topology_stack.hub_id
    assert statements["TagOnlyWhileLaunching"]["Condition"]["StringEquals"] == {"ec2:CreateAction": ["RunInstances", "CreateVolume"]}
    end = statements["EndOnlyThisHubsNodes"]
    assert end["Condition"]["StringEquals"] == {f"ec2:ResourceTag/{TAG_HUB}": topology_stack.hub_id}
    actions = {a for st in statements.values() for a in ([st["Action"]] if isinstance(st["Action"], str) else st["Action"])}
    assert not [a for a in actions if a.endswith("*")], actions
    # S3: only the purge's version listing and deletion, under users/ only.
    s3 = [st for st in statements.values() if "s3:" in str(st["Action"])]
    assert {a for st in s3 for a in ([st["Action"]] if isinstance(st["Action"], str) else st["Action"])} == {
        "s3:ListBucketVersions", "s3:DeleteObjectVersion"}
    assert all("users/" in str(st.get("Condition", "")) + str(st["Resource"]) for st in s3)
    # Every statement that changes an instance is bound to this hub's tag (or to the launch).
    for sid, st in statements.items():
        resources = str(st["Resource"])
        if "instance/*" in resources and not sid.startswith("Describe"):
            condition = str(st.get("Condition", ""))
            assert topology_stack.hub_id in condition or "RunInstances" in condition, sid
    # The hub may assume the node-data role and nothing else; the node-data role's ceiling is users/.
    data_role = topology_stack.role_name("NodeDataRole")
    trust = iam.get_role(RoleName=data_role)["Role"]["AssumeRolePolicyDocument"]["Statement"][0]
    assert trust["Principal"]["AWS"].endswith(hub_role)


def run_stack_config(endpoint: str, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, **MOTO_CREDENTIALS}
    return subprocess.run([sys.executable, "-m", "hybrid_spawner.stack_config", "--region", REGION,
                           "--endpoint-url", endpoint, *args], capture_output=True, text=True, env=env, timeout=60, check=False)


def test_a_hub_configured_from_the_stack_spawns_into_it(topology_stack, tmp_path):
    stack = topology_stack
    generated = tmp_path / "jupyterhub_config_stack.py"
    result = run_stack_config(stack.endpoint, "--stack", stack.name, "--output", str(generated))
    assert result.returncode == 0, result.stderr
    # The admin's own file loads the generated one; only what a one-machine simulation needs
    # (nodes on 127.0.0.1, the local hub's address, the local STS) follows it.
    config = f"""
c.JupyterHub.spawner_class = "hybrid-ec2"
load_subconfig({str(generated)!r})
c.STSIssuer.sts_endpoint_url = {stack.endpoint!r}
c.STSIssuer.endpoint_url = {stack.endpoint!r}
c.EC2Spawner.node_python = {str(venv_bin_dir() / "python")!r}
c.EC2Spawner.cmd = [{str(venv_bin_dir() / "jupyterhub-singleuser")!r}]
c.EC2Spawner.start_timeout = 120
c.EC2Spawner.status_refresh_interval = 1
c.EC2Spawner.port = 0
c.EC2Spawner.node_address_override = "127.0.0.1"
"""
    runner = NodeRunnerProcess(tmp_path / "nodes", hub_id=stack.hub_id, endpoint_url=stack.endpoint, region=REGION)
    runner.env.update(MOTO_CREDENTIALS)
    hub = LocalHub(tmp_path / "hub", config + "c.JupyterHub.hub_connect_url = ''\n", env=MOTO_CREDENTIALS)
    ec2 = aws_client("ec2", stack.endpoint)
    runner.start()
    try:
        hub.start()
        hub.ensure_user("ada")
        hub.spawn("ada")
        hub.wait_ready("ada", timeout=120)
        reply = ec2.describe_instances(Filters=[{"Name": f"tag:{TAG_HUB}", "Values": [stack.hub_id]},
                                                {"Name": "instance-state-name", "Values": ["pending", "running"]}])
        (instance,) = [i for r in reply["Reservations"] for i in r["Instances"]]
        assert instance["SubnetId"] == stack.outputs["ResearchSubnetId"]
        assert [g["GroupId"] for g in instance["NetworkInterfaces"][0]["Groups"]] == [stack.outputs["NodeSecurityGroupId"]]
        assert instance["IamInstanceProfile"]["Arn"].endswith("/" + stack.outputs["NodeInstanceProfileName"])
        assert instance["ImageId"] == stack.node_image, "the node image comes from the stack's SSM parameter"
        assert instance["InstanceType"] == "t3.large", "the stack's preferred node type"
        hub.stop_server("ada")
        wait_until(lambda: not [i for r in ec2.describe_instances(InstanceIds=[instance["InstanceId"]])["Reservations"]
                                for i in r["Instances"] if i["State"]["Name"] in ("pending", "running")],
                   30, "the node to be terminated")
    finally:
        hub.stop()
        runner.stop()


def test_stack_config_refuses_a_missing_or_foreign_stack_and_writes_nothing(moto_server, tmp_path):
    target = tmp_path / "jupyterhub_config_stack.py"
    missing = run_stack_config(moto_server.url, "--stack", "no-such-stack", "--output", str(target))
    assert missing.returncode == 2 and "no-such-stack" in missing.stderr, missing.stderr
    cfn = aws_client("cloudformation", moto_server.url)
    foreign = "unrelated-" + os.urandom(3).hex()
    cfn.create_stack(StackName=foreign, TemplateBody='{"Resources": {"Queue": {"Type": "AWS::SQS::Queue"}}}')
    wait_until(lambda: cfn.describe_stacks(StackName=foreign)["Stacks"][0]["StackStatus"] == "CREATE_COMPLETE",
               30, "the unrelated stack")
    refused = run_stack_config(moto_server.url, "--stack", foreign, "--output", str(target))
    assert refused.returncode == 2 and "ResearchSubnetId" in refused.stderr, refused.stderr
    assert not target.exists()
