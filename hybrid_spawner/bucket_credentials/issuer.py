"""The issuer interface: one user's bucket credentials, obtained without blocking the hub.

An issuer is configured once per hub (``c.RemoteSpawner.bucket_credentials_issuer`` names the
class; its own options live under its class name, e.g. ``c.STSIssuer.role_arn``). The spawner
awaits :meth:`CredentialIssuer.issue` at spawn and the refresh endpoint awaits it again before
the credentials expire; the blocking work (an STS call, reading a key file) runs in a thread.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from dataclasses import dataclass

from traitlets import Unicode
from traitlets.config import LoggingConfigurable

from hybrid_spawner.bucket_credentials.policy import PrefixRefused, user_prefix


class IssueFailed(Exception):
    """No credentials for this user; the message is safe to show and log (it holds no secret)."""


@dataclass(frozen=True)
class BucketCredentials:
    """Credentials confined to ``prefix`` of ``bucket``; ``expiration`` None means they do not expire."""

    access_key_id: str
    secret_access_key: str
    session_token: str
    expiration: dt.datetime | None
    bucket: str
    prefix: str
    endpoint_url: str = ""
    region: str = ""

    def __repr__(self) -> str:  # never the secret, also not in a traceback's locals
        return f"BucketCredentials({self.access_key_id[:4]}…, s3://{self.bucket}/{self.prefix}, expires {self.expiration})"

    __str__ = __repr__

    def for_node(self) -> dict:
        """The JSON the node agent writes to its credentials file (read by voila_publisher.sync.s3.credentials)."""
        return {
            "Version": 1,
            "AccessKeyId": self.access_key_id,
            "SecretAccessKey": self.secret_access_key,
            "SessionToken": self.session_token,
            "Expiration": self.expiration.astimezone(dt.timezone.utc).isoformat() if self.expiration else None,
        }

    def node_environment(self) -> dict:
        """Where the node's sync goes: bucket, the user's exact prefix, endpoint, region (no secret)."""
        env = {"HYBRID_SYNC_BUCKET": self.bucket, "HYBRID_SYNC_PREFIX": self.prefix}
        if self.endpoint_url:
            env["HYBRID_S3_ENDPOINT_URL"] = self.endpoint_url
        if self.region:
            env["HYBRID_S3_REGION"] = self.region
        return env


class CredentialIssuer(LoggingConfigurable):
    """Base class: subclasses implement :meth:`issue_blocking`."""

    bucket = Unicode(
        "",
        config=True,
        help="""Bucket of the notebooks. The credentials reach only the user's prefix of it, and
        the node's sync uses this bucket (HYBRID_SYNC_BUCKET is set from here).""",
    )
    prefix_template = Unicode(
        "users/{username}/",
        config=True,
        help="""Prefix of one user's files; must contain {username}. The credentials reach only
        this prefix, and the node's sync is pointed at exactly it. User names with IAM wildcard
        characters (* ? $ [ ] { } \\) or "/" are refused at spawn.""",
    )
    endpoint_url = Unicode(
        "",
        config=True,
        help="""S3 endpoint the nodes use (Ceph RGW, MinIO, SeaweedFS); empty for AWS S3.""",
    )
    region = Unicode("us-east-1", config=True, help="Region of the bucket (and of STS on AWS).")

    def prefix_for(self, username: str) -> str:
        try:
            return user_prefix(self.prefix_template, username)
        except PrefixRefused as e:
            raise IssueFailed(str(e)) from None

    def check(self) -> None:
        """Refuse a configuration that cannot work, naming the option to set."""
        if not self.bucket:
            raise IssueFailed(f"c.{type(self).__name__}.bucket is not set")

    async def issue(self, username: str) -> BucketCredentials:
        """Credentials for ``username``'s prefix; the blocking part runs in a thread."""
        self.check()
        prefix = self.prefix_for(username)
        return await asyncio.to_thread(self.issue_blocking, username, prefix)

    def issue_blocking(self, username: str, prefix: str) -> BucketCredentials:
        raise NotImplementedError
