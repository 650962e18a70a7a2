"""SeaweedFS as a real S3 server on free loopback ports (used by the demo, tests and benchmarks).

``weed server`` runs a master, a volume server, a filer and the S3 gateway in one process.
Every port it opens (including the gRPC ports, which default to HTTP port + 10000, and the
Iceberg / Lance catalog ports) is chosen here so that several instances can run side by side.
Two S3 identities are configured: an admin that may do everything and a reader that may only
list and read, so that "access denied" can be exercised against the real server.

With ``sts=True`` the server also runs SeaweedFS's STS and IAM policy engine (``-s3.iam.config``):
the admin identity plays the hub and may assume :data:`NODE_DATA_ROLE_ARN`, whose policy reaches
``users/*`` of every bucket; a session policy then narrows a session to one user's prefix, and
SeaweedFS enforces it, ``s3:prefix`` conditions included (checked with weed 4.48). Session
credentials live at most ``sts_max_session`` seconds, whatever DurationSeconds asks for, so
tests can watch them expire.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from simulators.processes import ManagedProcess, child_env, free_port, http_ok, venv_bin_dir

# Dummy credentials that only this local server knows; real AWS rejects them.
ADMIN_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "hybrid-admin", "AWS_SECRET_ACCESS_KEY": "hybrid-admin-secret"}
READER_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "hybrid-reader", "AWS_SECRET_ACCESS_KEY": "hybrid-reader-secret"}
REGION = "us-east-1"
NODE_DATA_ROLE_ARN = "arn:aws:iam::role/jupyter-node-data"
# A role like an EC2 instance profile of a node: trusted, but with no S3 rights at all.
NODE_INSTANCE_ROLE_ARN = "arn:aws:iam::role/jupyter-node-instance"


def _iam_config(max_session_seconds: int) -> dict:
    """STS, the node-data role (reaches users/*; sessions narrow it) and a rightless instance role."""
    import base64
    import secrets

    from hybrid_spawner.bucket_credentials.policy import node_data_role_policy

    def role(arn, policies):
        return {
            "roleName": arn.rsplit("/", 1)[1],
            "roleArn": arn,
            "trustPolicy": {
                "Version": "2012-10-17",
                "Statement": [{"Effect": "Allow", "Principal": {"AWS": "*"}, "Action": ["sts:AssumeRole"]}],
            },
            "attachedPolicies": policies,
        }

    return {
        "sts": {
            "tokenDuration": "1h",
            "maxSessionLength": f"{max_session_seconds}s",
            "issuer": "seaweedfs-sts",
            "signingKey": base64.b64encode(secrets.token_bytes(32)).decode(),
        },
        "policy": {"defaultEffect": "Deny", "storeType": "memory"},
        "roles": [role(NODE_DATA_ROLE_ARN, ["node-data"]), role(NODE_INSTANCE_ROLE_ARN, [])],
        "policies": [{"name": "node-data", "document": node_data_role_policy("*")}],
    }


def _identities(extra=()) -> dict:
    def identity(name, creds, actions):
        return {
            "name": name,
            "credentials": [{"accessKey": creds["AWS_ACCESS_KEY_ID"], "secretKey": creds["AWS_SECRET_ACCESS_KEY"]}],
            "actions": actions,
        }

    return {
        "identities": [
            identity("admin", ADMIN_CREDENTIALS, ["Admin", "Read", "List", "Tagging", "Write"]),
            identity("reader", READER_CREDENTIALS, ["Read", "List"]),
            *(identity(name, creds, actions) for name, creds, actions in extra),
        ]
    }


def _distinct_free_ports(count: int) -> list[int]:
    ports: set[int] = set()
    while len(ports) < count:
        ports.add(free_port())
    return sorted(ports)


class SeaweedS3(ManagedProcess):
    """``weed server -s3`` in ``directory``; ``url`` is the S3 endpoint, ``env`` its credentials."""

    def __init__(
        self, directory, *, ready_timeout: float = 90.0, sts: bool = False, sts_max_session: int = 43200, identities=()
    ):
        """``identities``: extra (name, {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"}, actions)
        triples, e.g. a per-user key with ["Read:bucket/users/alice/*", "Write:...", "List:..."]."""
        self.dir = Path(directory)
        data = self.dir / "data"
        data.mkdir(parents=True, exist_ok=True)
        config = self.dir / "s3-identities.json"
        config.write_text(json.dumps(_identities(identities), indent=1))
        os.chmod(config, 0o600)
        self.sts = sts
        iam_args = []
        if sts:
            iam_config = self.dir / "iam.json"
            iam_config.write_text(json.dumps(_iam_config(sts_max_session), indent=1))
            os.chmod(iam_config, 0o600)
            iam_args = [f"-s3.iam.config={iam_config}"]
        (
            master,
            master_grpc,
            volume,
            volume_grpc,
            filer,
            filer_grpc,
            s3,
            s3_grpc,
        ) = _distinct_free_ports(8)
        self.port = s3
        self.url = f"http://127.0.0.1:{s3}"
        argv = [
            venv_bin_dir() / "weed",
            "server",
            f"-dir={data}",
            "-ip=127.0.0.1",
            "-ip.bind=127.0.0.1",
            f"-master.port={master}",
            f"-master.port.grpc={master_grpc}",
            "-master.telemetry=false",  # no traffic leaves the machine
            "-master.volumeSizeLimitMB=256",
            f"-volume.port={volume}",
            f"-volume.port.grpc={volume_grpc}",
            "-volume.max=0",
            f"-filer.port={filer}",
            f"-filer.port.grpc={filer_grpc}",
            "-s3",
            f"-s3.port={s3}",
            f"-s3.port.grpc={s3_grpc}",
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
            f"-s3.config={config}",
            *iam_args,
        ]
        super().__init__(
            "seaweedfs",
            argv,
            log_dir=self.dir,
            env=child_env(),
            cwd=self.dir,
            # An unauthenticated GET / answers 403 once the gateway (and its filer) is up.
            ready=http_ok(self.url + "/", accept=(200, 403)),
            ready_timeout=ready_timeout,
        )

    @property
    def client_env(self) -> dict:
        """Environment variables that point boto3 / the aws cli at this server as admin."""
        return {**ADMIN_CREDENTIALS, "AWS_DEFAULT_REGION": REGION, "HYBRID_S3_ENDPOINT_URL": self.url}

    def client(self, credentials: dict | None = None):
        """A boto3 S3 client for this server (admin credentials unless others are given)."""
        import boto3

        creds = credentials or ADMIN_CREDENTIALS
        return boto3.client(
            "s3",
            endpoint_url=self.url,
            region_name=REGION,
            aws_access_key_id=creds["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=creds["AWS_SECRET_ACCESS_KEY"],
        )

    def create_bucket(self, name: str) -> str:
        """Create ``name`` (a valid DNS name) and wait until it lists; returns the name."""
        import time

        client = self.client()
        client.create_bucket(Bucket=name)
        deadline = time.monotonic() + 30
        while True:
            try:
                client.list_objects_v2(Bucket=name, MaxKeys=1)
                return name
            except client.exceptions.NoSuchBucket:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

    def stop(self, timeout: float = 3.0) -> None:
        # weed takes ~10 s to drain on SIGTERM; its data is disposable here, so do not wait long.
        super().stop(timeout)


def hub_sts_settings(store: "SeaweedS3", bucket: str, directory) -> tuple[str, dict]:
    """What a test hub needs to hand out per-user STS credentials for ``bucket`` on ``store``:
    its config lines (STSIssuer on the node-data role) and its environment (a 0600 shared
    credentials file with the admin keys under the profile "hub-sts", as an instance profile
    would give them on AWS)."""
    shared = Path(directory) / "hub-aws-credentials"
    shared.write_text("[hub-sts]\n"
                      f"aws_access_key_id = {ADMIN_CREDENTIALS['AWS_ACCESS_KEY_ID']}\n"
                      f"aws_secret_access_key = {ADMIN_CREDENTIALS['AWS_SECRET_ACCESS_KEY']}\n")
    shared.chmod(0o600)
    config = f"""
c.RemoteSpawner.bucket_credentials_issuer = "hybrid_spawner.bucket_credentials.STSIssuer"
c.STSIssuer.bucket = {bucket!r}
c.STSIssuer.endpoint_url = {store.url!r}
c.STSIssuer.sts_endpoint_url = {store.url!r}
c.STSIssuer.role_arn = {NODE_DATA_ROLE_ARN!r}
c.STSIssuer.duration = 900
c.STSIssuer.profile = "hub-sts"
"""
    return config, {"AWS_SHARED_CREDENTIALS_FILE": str(shared)}
