"""Per-user bucket credentials against a store that enforces them: SeaweedFS with its STS.

SeaweedFS (weed 4.48) evaluates STS AssumeRole session policies, ``s3:prefix`` conditions
included, and refuses session tokens past their expiry; moto does neither (its access control
reads only the role's own policies and never checks expiry), so the enforcement is proved here.
The hub's issuer (STSIssuer) makes the real AssumeRole call; the node's side is the real sync
client (S3Store with the FileCredentials the node agent keeps current).
"""

from __future__ import annotations

import datetime as dt
import json
import time
import uuid

import boto3
import botocore.exceptions
import pytest

from hybrid_spawner.bucket_credentials import IssueFailed, STSIssuer
from simulators.seaweedfs import ADMIN_CREDENTIALS, NODE_DATA_ROLE_ARN, NODE_INSTANCE_ROLE_ARN, REGION, SeaweedS3
from voila_publisher.sync.s3.client import S3Store
from voila_publisher.sync.s3.credentials import FileCredentials
from voila_publisher.sync.store import StoreError

pytestmark = pytest.mark.integration

# Every session this server grants lives this long, whatever DurationSeconds asks for.
SESSION_SECONDS = 12


@pytest.fixture(scope="module")
def sts_store(tmp_path_factory):
    server = SeaweedS3(tmp_path_factory.mktemp("seaweedfs-sts"), sts=True, sts_max_session=SESSION_SECONDS)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def hub_env(monkeypatch):
    """The hub's own identity (SeaweedFS's admin plays the hub's role) in the boto3 chain."""
    for name, value in ADMIN_CREDENTIALS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    monkeypatch.delenv("AWS_PROFILE", raising=False)


@pytest.fixture
def bucket(sts_store, hub_env):
    name = sts_store.create_bucket(f"creds-{uuid.uuid4().hex[:12]}")
    admin = sts_store.client()
    admin.put_object(Bucket=name, Key="users/bob/thesis.ipynb", Body=b"bob's notebook")
    return name


def issuer(sts_store, bucket, **traits) -> STSIssuer:
    settings = dict(
        bucket=bucket,
        endpoint_url=sts_store.url,
        sts_endpoint_url=sts_store.url,
        role_arn=NODE_DATA_ROLE_ARN,
        region=REGION,
        duration=900,
    )
    return STSIssuer(**{**settings, **traits})


def credentials_file(tmp_path, creds, name="creds.json"):
    path = tmp_path / name
    path.write_text(json.dumps(creds.for_node()))
    return path


def node_store(sts_store, bucket, path) -> S3Store:
    """The sync's own client, as a node runs it: credentials from the file only."""
    return S3Store(bucket, endpoint_url=sts_store.url, region=REGION, credentials=FileCredentials(str(path)), max_attempts=1)


def refused(call) -> StoreError:
    with pytest.raises(StoreError) as caught:
        call()
    return caught.value


async def test_a_users_credentials_reach_their_prefix_and_nothing_else(sts_store, bucket, tmp_path):
    alice = await issuer(sts_store, bucket).issue("alice")
    assert alice.prefix == "users/alice/" and alice.session_token
    assert alice.secret_access_key not in repr(alice) and alice.session_token not in repr(alice)
    store = node_store(sts_store, bucket, credentials_file(tmp_path, alice))
    data = b'{"cells": []}'
    import hashlib

    md5 = hashlib.md5(data).digest()

    # A's prefix: write, list, read, delete.
    store.put("users/alice/a.ipynb", data, md5)
    assert set(store.list("users/alice/")) == {"users/alice/a.ipynb"}
    assert store.get("users/alice/a.ipynb").data == data
    store.delete("users/alice/a.ipynb")
    assert store.list("users/alice/") == {}

    # B's prefix, and the whole bucket: every operation is refused by the store.
    for call in (
        lambda: store.list("users/bob/"),
        lambda: store.list(""),
        lambda: store.list("users/"),
        lambda: store.get("users/bob/thesis.ipynb"),
        lambda: store.put("users/bob/thesis.ipynb", b"overwritten", hashlib.md5(b"overwritten").digest()),
        lambda: store.put("users/alicex/a.ipynb", data, md5),  # a sibling that shares the name's start
        lambda: store.delete("users/bob/thesis.ipynb"),
    ):
        error = refused(call)
        assert error.reason == "access-denied" and error.status == 403, error.message
    admin = sts_store.client()
    assert admin.get_object(Bucket=bucket, Key="users/bob/thesis.ipynb")["Body"].read() == b"bob's notebook"
    assert "KeyCount" not in admin.list_objects_v2(Bucket=bucket, Prefix="users/alicex/") or \
        admin.list_objects_v2(Bucket=bucket, Prefix="users/alicex/")["KeyCount"] == 0


async def test_expired_credentials_are_refused_by_the_store_and_never_signed_with(sts_store, bucket, tmp_path):
    alice = await issuer(sts_store, bucket).issue("alice")
    left = (alice.expiration - dt.datetime.now(dt.timezone.utc)).total_seconds()
    assert 0 < left <= SESSION_SECONDS + 1
    raw = boto3.client(
        "s3", endpoint_url=sts_store.url, region_name=REGION, aws_access_key_id=alice.access_key_id,
        aws_secret_access_key=alice.secret_access_key, aws_session_token=alice.session_token,
    )
    raw.put_object(Bucket=bucket, Key="users/alice/before.ipynb", Body=b"x")
    time.sleep(left + 1.5)
    with pytest.raises(botocore.exceptions.ClientError) as caught:
        raw.put_object(Bucket=bucket, Key="users/alice/after.ipynb", Body=b"x")
    assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    # The sync's client does not even send a request with them, and says why.
    store = node_store(sts_store, bucket, credentials_file(tmp_path, alice))
    error = refused(lambda: store.list("users/alice/"))
    assert error.reason == "expired-credentials" and error.fatal and "refresh" in error.message


def test_a_node_instance_role_without_policies_reaches_nothing(sts_store, bucket):
    """What the instance profile of a node holds (docs/security.md): no S3 right at all."""
    # Explicit keys: boto3's default session caches the first credentials it resolved in this
    # process (another module's moto keys under xdist), whatever the environment says now.
    sts = boto3.client(
        "sts", endpoint_url=sts_store.url, region_name=REGION,
        aws_access_key_id=ADMIN_CREDENTIALS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=ADMIN_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
    )
    creds = sts.assume_role(RoleArn=NODE_INSTANCE_ROLE_ARN, RoleSessionName="i-0node")["Credentials"]
    s3 = boto3.client(
        "s3", endpoint_url=sts_store.url, region_name=REGION, aws_access_key_id=creds["AccessKeyId"],
        aws_secret_access_key=creds["SecretAccessKey"], aws_session_token=creds["SessionToken"],
    )
    for call in (
        lambda: s3.list_objects_v2(Bucket=bucket, Prefix="users/bob/"),
        lambda: s3.get_object(Bucket=bucket, Key="users/bob/thesis.ipynb"),
        lambda: s3.put_object(Bucket=bucket, Key="users/bob/x.ipynb", Body=b"x"),
        lambda: s3.delete_object(Bucket=bucket, Key="users/bob/thesis.ipynb"),
    ):
        with pytest.raises(botocore.exceptions.ClientError) as caught:
            call()
        assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403


async def test_bad_user_names_and_settings_are_refused_before_any_call(sts_store, bucket):
    for name in ("*", "al*ce", "a?", "${aws:username}", "a/b", ".."):
        with pytest.raises(IssueFailed, match="user name"):
            await issuer(sts_store, bucket).issue(name)
    with pytest.raises(IssueFailed, match="role_arn"):
        await issuer(sts_store, bucket, role_arn="").issue("alice")
    with pytest.raises(IssueFailed, match="duration"):
        await issuer(sts_store, bucket, duration=60).issue("alice")
    with pytest.raises(IssueFailed, match="STS refused AssumeRole"):
        await issuer(sts_store, bucket, role_arn="arn:aws:iam::role/no-such-role").issue("alice")


# -- stores without STS: per-user keys the store confines (SeaweedFS identities) ---------------
STATIC_BUCKET = "static-notebooks"


def user_key(name):
    return {"AWS_ACCESS_KEY_ID": f"key-{name}", "AWS_SECRET_ACCESS_KEY": f"secret-of-{name}-0123456789"}


@pytest.fixture(scope="module")
def identity_store(tmp_path_factory):
    """SeaweedFS with one identity per researcher, each allowed only its own prefix."""
    scoped = [
        (name, user_key(name), [f"{a}:{STATIC_BUCKET}/users/{name}/*" for a in ("Read", "Write", "List")])
        for name in ("alice", "bob")
    ]
    server = SeaweedS3(tmp_path_factory.mktemp("seaweedfs-identities"), identities=scoped)
    server.start()
    server.create_bucket(STATIC_BUCKET)
    server.client().put_object(Bucket=STATIC_BUCKET, Key="users/bob/thesis.ipynb", Body=b"bob's notebook")
    yield server
    server.stop()


async def test_static_per_user_keys_reach_only_their_prefix(identity_store, tmp_path):
    from hybrid_spawner.bucket_credentials import StaticKeysIssuer
    import hashlib
    import os

    keys = tmp_path / "bucket-keys.json"
    keys.write_text(json.dumps({
        name: {"access_key_id": user_key(name)["AWS_ACCESS_KEY_ID"], "secret_access_key": user_key(name)["AWS_SECRET_ACCESS_KEY"]}
        for name in ("alice", "bob")
    }))
    os.chmod(keys, 0o600)
    issuer = StaticKeysIssuer(bucket=STATIC_BUCKET, endpoint_url=identity_store.url, keys_file=str(keys))
    alice = await issuer.issue("alice")
    assert alice.expiration is None and alice.for_node()["Expiration"] is None
    store = S3Store(STATIC_BUCKET, endpoint_url=identity_store.url, region=REGION,
                    credentials=FileCredentials(str(credentials_file(tmp_path, alice))), max_attempts=1)
    data = b'{"cells": []}'
    store.put("users/alice/a.ipynb", data, hashlib.md5(data).digest())
    assert set(store.list("users/alice/")) == {"users/alice/a.ipynb"}
    assert store.get("users/alice/a.ipynb").data == data
    store.delete("users/alice/a.ipynb")
    for call in (
        lambda: store.list("users/bob/"),
        lambda: store.get("users/bob/thesis.ipynb"),
        lambda: store.put("users/bob/thesis.ipynb", b"x", hashlib.md5(b"x").digest()),
        lambda: store.delete("users/bob/thesis.ipynb"),
    ):
        assert refused(call).reason == "access-denied"
    assert identity_store.client().get_object(Bucket=STATIC_BUCKET, Key="users/bob/thesis.ipynb")["Body"].read() == b"bob's notebook"
