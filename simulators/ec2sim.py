"""A simulated EC2 research network for the demo, the tests and the benchmarks.

On a moto server: a VPC with a private research subnet, a security group for notebook nodes,
and an SSM parameter naming the node AMI (as an EC2 Image Builder pipeline would publish it).
:func:`hub_config` writes the EC2Spawner part of a hub configuration for that network, with the
settings only a one-machine simulation needs (nodes on 127.0.0.1, each on its own port).
"""

from __future__ import annotations

import secrets

import boto3

from simulators.moto import MOTO_CREDENTIALS
from simulators.processes import venv_bin_dir

REGION = "us-east-1"
SSM_AMI_PARAMETER = "/hybrid/jupyter-node/ami"


def aws_client(service: str, endpoint: str, region: str = REGION):
    return boto3.session.Session(
        aws_access_key_id=MOTO_CREDENTIALS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=MOTO_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
    ).client(service, region_name=region, endpoint_url=endpoint)


def make_network(endpoint: str, ami_parameter: str = SSM_AMI_PARAMETER) -> dict:
    """Create the network on the moto server at ``endpoint`` and name the node AMI in the SSM
    parameter ``ami_parameter``; returns the subnet, security group and AMI ids."""
    ec2, ssm = aws_client("ec2", endpoint), aws_client("ssm", endpoint)
    vpc = ec2.create_vpc(CidrBlock="10.42.0.0/16")["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.42.0.0/20")["Subnet"]["SubnetId"]
    sg = ec2.create_security_group(
        GroupName=f"jupyter-nodes-{secrets.token_hex(3)}", Description="notebook nodes", VpcId=vpc
    )["GroupId"]
    # Not the first AMI moto lists, so that using the SSM value is observable.
    ami = ec2.describe_images()["Images"][7]["ImageId"]
    ssm.put_parameter(Name=ami_parameter, Value=ami, Type="String", Overwrite=True)
    return {"subnet": subnet, "sg": sg, "ami": ami}


def hub_config(endpoint: str, network: dict, hub_id: str, *, start_timeout: int = 120, refresh: float = 5) -> str:
    """The EC2Spawner configuration (Python) of a hub on the simulated network."""
    return f"""
c.JupyterHub.spawner_class = "hybrid-ec2"
c.EC2Spawner.region = {REGION!r}
c.EC2Spawner.endpoint_url = {endpoint!r}
c.EC2Spawner.image = "resolve:ssm:{SSM_AMI_PARAMETER}"
c.EC2Spawner.subnet_ids = [{network["subnet"]!r}]
c.EC2Spawner.security_group_ids = [{network["sg"]!r}]
c.EC2Spawner.instance_types = ["t3.micro"]
c.EC2Spawner.hub_id = {hub_id!r}
c.EC2Spawner.node_python = {str(venv_bin_dir() / "python")!r}
c.EC2Spawner.cmd = [{str(venv_bin_dir() / "jupyterhub-singleuser")!r}]
c.EC2Spawner.start_timeout = {start_timeout}
c.EC2Spawner.http_timeout = 60
c.EC2Spawner.status_refresh_interval = {refresh}
# The simulation: every node runs on this machine (the node runner), each on a port of its own.
c.EC2Spawner.port = 0
c.EC2Spawner.node_address_override = "127.0.0.1"
"""
