"""The AWS side on moto server with IAM enforcement: the call shape of STSIssuer, who may assume
the node-data role, and a node's instance role without S3 rights.

moto evaluates the caller's identity policies and the role's trust policy, but not the session
policy of AssumeRole nor expiry (checked in moto 5.2.5's access control), so the per-prefix
enforcement itself is proved against SeaweedFS (test_bucket_credentials.py). Here: the session
policy that reaches AWS is exactly policy.session_policy, the hub's STS identity needs nothing
but sts:AssumeRole, and the instance role a researcher can read from the metadata service is
refused by S3.
"""

from __future__ import annotations

import json
import urllib.request

import boto3
import botocore.exceptions
import pytest

from hybrid_spawner.bucket_credentials import IssueFailed, STSIssuer
from hybrid_spawner.bucket_credentials import policy
from simulators.moto import MotoServer

pytestmark = pytest.mark.integration

ACCOUNT = "123456789012"
BUCKET = "research-notebooks"
NODE_DATA = f"arn:aws:iam::{ACCOUNT}:role/jupyter-node-data"
NODE_INSTANCE = f"arn:aws:iam::{ACCOUNT}:role/jupyter-node"
HUB = f"arn:aws:iam::{ACCOUNT}:user/jupyterhub"


def client(service, url, keys):
    return boto3.client(service, endpoint_url=url, region_name="us-east-1", **keys)


def keys_of(answer) -> dict:
    c = answer.get("AccessKey") or answer["Credentials"]
    out = {"aws_access_key_id": c["AccessKeyId"], "aws_secret_access_key": c["SecretAccessKey"]}
    if "SessionToken" in c:
        out["aws_session_token"] = c["SessionToken"]
    return out


@pytest.fixture(scope="module")
def aws(tmp_path_factory):
    server = MotoServer(tmp_path_factory.mktemp("moto-iam"))
    server.env["INITIAL_NO_AUTH_ACTION_COUNT"] = "3"  # enough to create the first admin
    server.start()
    try:
        dummy = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
        iam = client("iam", server.url, dummy)
        iam.create_user(UserName="admin")
        iam.put_user_policy(UserName="admin", PolicyName="all", PolicyDocument=json.dumps(
            {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}))
        admin = keys_of(iam.create_access_key(UserName="admin"))
        iam = client("iam", server.url, admin)  # from here on every request is checked
        s3 = client("s3", server.url, admin)
        s3.create_bucket(Bucket=BUCKET)
        s3.put_object(Bucket=BUCKET, Key="users/bob/thesis.ipynb", Body=b"bob's")
        iam.create_user(UserName="jupyterhub")
        iam.put_user_policy(UserName="jupyterhub", PolicyName="assume-node-data",
                            PolicyDocument=json.dumps(policy.hub_assume_policy(NODE_DATA)))
        hub = keys_of(iam.create_access_key(UserName="jupyterhub"))
        iam.create_role(RoleName="jupyter-node-data", AssumeRolePolicyDocument=json.dumps(policy.node_data_trust_policy(HUB)))
        iam.put_role_policy(RoleName="jupyter-node-data", PolicyName="users",
                            PolicyDocument=json.dumps(policy.node_data_role_policy(BUCKET)))
        # The nodes' instance role: trusted by EC2 (and, to play the metadata service here, the
        # admin), with no policy at all.
        trust = {"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com", "AWS": f"arn:aws:iam::{ACCOUNT}:user/admin"},
             "Action": "sts:AssumeRole"}]}
        iam.create_role(RoleName="jupyter-node", AssumeRolePolicyDocument=json.dumps(trust))
        yield {"url": server.url, "admin": admin, "hub": hub}
    finally:
        server.stop()


@pytest.fixture
def as_hub(aws, monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", aws["hub"]["aws_access_key_id"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", aws["hub"]["aws_secret_access_key"])
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    monkeypatch.delenv("AWS_PROFILE", raising=False)


async def test_the_hub_assumes_the_node_data_role_with_the_users_session_policy(aws, as_hub):
    issuer = STSIssuer(bucket=BUCKET, role_arn=NODE_DATA, sts_endpoint_url=aws["url"], duration=900)
    creds = await issuer.issue("alice")
    assert creds.access_key_id.startswith("ASIA") and creds.session_token and creds.prefix == "users/alice/"
    sessions = json.loads(urllib.request.urlopen(aws["url"] + "/moto-api/data.json", timeout=10).read())["sts"]["AssumedRole"]
    mine = [s for s in sessions if s["access_key_id"] == creds.access_key_id]
    assert len(mine) == 1 and mine[0]["session_name"] == "hub-alice" and mine[0]["role_arn"] == NODE_DATA
    assert json.loads(mine[0]["policy"]) == policy.session_policy(BUCKET, "users/alice/")


async def test_the_hub_identity_reaches_no_notebook_itself_and_may_assume_only_the_node_data_role(aws, as_hub):
    s3 = client("s3", aws["url"], aws["hub"])
    with pytest.raises(botocore.exceptions.ClientError) as e:
        s3.get_object(Bucket=BUCKET, Key="users/bob/thesis.ipynb")
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    with pytest.raises(IssueFailed, match="AccessDenied"):
        await STSIssuer(bucket=BUCKET, role_arn=NODE_INSTANCE, sts_endpoint_url=aws["url"]).issue("alice")


def test_a_nodes_instance_role_has_no_s3_access_and_cannot_assume_the_node_data_role(aws):
    sts = client("sts", aws["url"], aws["admin"])
    instance = keys_of(sts.assume_role(RoleArn=NODE_INSTANCE, RoleSessionName="i-0123456789abcdef0"))
    s3 = client("s3", aws["url"], instance)
    for call in (
        lambda: s3.list_objects_v2(Bucket=BUCKET, Prefix="users/bob/"),
        lambda: s3.get_object(Bucket=BUCKET, Key="users/bob/thesis.ipynb"),
        lambda: s3.put_object(Bucket=BUCKET, Key="users/bob/x.ipynb", Body=b"x"),
        lambda: s3.delete_object(Bucket=BUCKET, Key="users/bob/thesis.ipynb"),
    ):
        with pytest.raises(botocore.exceptions.ClientError) as e:
            call()
        assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    with pytest.raises(botocore.exceptions.ClientError) as e:
        client("sts", aws["url"], instance).assume_role(RoleArn=NODE_DATA, RoleSessionName="steal")
    assert e.value.response["Error"]["Code"] == "AccessDenied"
