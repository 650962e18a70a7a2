"""OpenStack and Slurm nodes receive per-user bucket credentials the same way as EC2 nodes
(tests/integration/test_bucket_credentials_hub.py): from the hub's issuer, in the bootstrap
redemption, as a private file. The store here has no STS (SeaweedFS identities, one key per
user confined to that user's prefix), so these also cover StaticKeysIssuer through a real hub.
"""

from __future__ import annotations

import json
import os
import pwd
import time
from pathlib import Path

import boto3
import botocore.exceptions
import pytest

from simulators.seaweedfs import REGION, SeaweedS3
from simulators.slurm_users import SLURM_TEST_USER

pytestmark = pytest.mark.integration

BUCKET = "backend-notebooks"
USERS = ("alice", SLURM_TEST_USER, "bob")

ISSUER = """
c.RemoteSpawner.bucket_credentials_issuer = "hybrid_spawner.bucket_credentials.StaticKeysIssuer"
c.StaticKeysIssuer.bucket = "{bucket}"
c.StaticKeysIssuer.endpoint_url = "{url}"
c.StaticKeysIssuer.keys_file = "{keys}"
"""


def user_key(name):
    return {"AWS_ACCESS_KEY_ID": f"key-{name}", "AWS_SECRET_ACCESS_KEY": f"secret-of-{name}-0123456789"}


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    base = tmp_path_factory.mktemp("backend-creds")
    scoped = [(n, user_key(n), [f"{a}:{BUCKET}/users/{n}/*" for a in ("Read", "Write", "List")]) for n in USERS]
    server = SeaweedS3(base / "s3", identities=scoped)
    server.start()
    server.create_bucket(BUCKET)
    server.client().put_object(Bucket=BUCKET, Key="users/bob/thesis.ipynb", Body=b"bob's")
    keys = base / "bucket-keys.json"
    keys.write_text(json.dumps({n: {"access_key_id": user_key(n)["AWS_ACCESS_KEY_ID"],
                                    "secret_access_key": user_key(n)["AWS_SECRET_ACCESS_KEY"]} for n in USERS}))
    os.chmod(keys, 0o600)
    server.issuer_config = ISSUER.format(bucket=BUCKET, url=server.url, keys=keys)
    yield server
    server.stop()


def server_environment(hub, timeout: float = 30) -> dict:
    """The environment of the hub's running jupyterhub-singleuser (read from /proc, as root)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for proc in Path("/proc").iterdir():
            if not proc.name.isdigit():
                continue
            try:
                if b"jupyterhub-singleuser" not in (proc / "cmdline").read_bytes():
                    continue
                raw = (proc / "environ").read_bytes().decode(errors="replace")
            except OSError:
                continue
            env = dict(item.split("=", 1) for item in raw.split("\0") if "=" in item)
            if env.get("JUPYTERHUB_API_URL", "").startswith(hub.hub_url) and "HYBRID_S3_CREDENTIALS_FILE" in env:
                return env
        time.sleep(0.3)
    raise AssertionError("no single-user server of this hub with a credentials file")


def remove_left_credentials(env: dict) -> None:
    """The agent removes the file when its server exits cleanly; the simulators kill nodes after a
    few seconds (a real termination wipes the disk), so remove what a killed agent left."""
    path = Path(env["HYBRID_S3_CREDENTIALS_FILE"])
    deadline = time.monotonic() + 10
    while path.exists() and time.monotonic() < deadline:
        time.sleep(0.3)
    if path.exists():
        path.unlink()
        path.parent.rmdir()


def check_node_reaches_only_its_prefix(store, env: dict, user: str, owner: str) -> None:
    assert env["HYBRID_SYNC_BUCKET"] == BUCKET and env["HYBRID_SYNC_PREFIX"] == f"users/{user}/"
    assert "AWS_SECRET_ACCESS_KEY" not in env and "AWS_ACCESS_KEY_ID" not in env
    path = Path(env["HYBRID_S3_CREDENTIALS_FILE"])
    st = path.stat()
    assert st.st_mode & 0o077 == 0 and pwd.getpwuid(st.st_uid).pw_name == owner
    creds = json.loads(path.read_text())
    assert creds["AccessKeyId"] == user_key(user)["AWS_ACCESS_KEY_ID"] and creds["Expiration"] is None
    s3 = boto3.client("s3", endpoint_url=store.url, region_name=REGION, aws_access_key_id=creds["AccessKeyId"],
                      aws_secret_access_key=creds["SecretAccessKey"])
    s3.put_object(Bucket=BUCKET, Key=f"users/{user}/from-node.ipynb", Body=b"{}")
    assert s3.list_objects_v2(Bucket=BUCKET, Prefix=f"users/{user}/")["KeyCount"] == 1
    for call in (
        lambda: s3.list_objects_v2(Bucket=BUCKET, Prefix="users/bob/"),
        lambda: s3.get_object(Bucket=BUCKET, Key="users/bob/thesis.ipynb"),
        lambda: s3.put_object(Bucket=BUCKET, Key="users/bob/thesis.ipynb", Body=b"x"),
        lambda: s3.delete_object(Bucket=BUCKET, Key="users/bob/thesis.ipynb"),
    ):
        with pytest.raises(botocore.exceptions.ClientError) as e:
            call()
        assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403


def test_openstack_node_gets_its_users_key(store, openstack_fake, tmp_path):
    from simulators.openstack.stack import HUB_CONFIG, openstack_stack

    openstack_fake.reset()
    with openstack_stack(openstack_fake, tmp_path / "stack", hub_config=HUB_CONFIG + store.issuer_config) as stack:
        stack.hub.spawn("alice")
        stack.hub.wait_ready("alice", timeout=90)
        env = server_environment(stack.hub)
        check_node_reaches_only_its_prefix(store, env, "alice", owner="root")
        stack.hub.stop_server("alice")
        remove_left_credentials(env)
    openstack_fake.reset()


def test_slurm_job_gets_its_users_key(store, make_slurm_hub, slurm_cluster, slurm_test_user):
    hub = make_slurm_hub('c.JupyterHub.spawner_class = "hybrid-slurm"\n' + store.issuer_config, name="creds-slurm-hub")
    status, body = hub.spawn(slurm_test_user)
    assert status in (201, 202), body
    hub.wait_ready(slurm_test_user, timeout=120)
    # The job runs as the researcher's Unix account, which alone can read the file.
    env = server_environment(hub)
    check_node_reaches_only_its_prefix(store, env, slurm_test_user, owner=slurm_test_user)
    hub.stop_server(slurm_test_user)
    remove_left_credentials(env)
