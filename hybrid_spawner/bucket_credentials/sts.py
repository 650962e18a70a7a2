"""STS AssumeRole of a node-data role with a session policy that names one user's prefix.

Where it works (docs/security.md has the table): AWS S3; SeaweedFS 4.x with its IAM config
(AssumeRole with an inline session policy and ``s3:prefix`` conditions, tested here against
``weed`` 4.48); MinIO and Ceph RGW, whose STS AssumeRole accepts an inline ``Policy``.
"""

from __future__ import annotations

import datetime as dt

from traitlets import Int, Unicode

from hybrid_spawner.bucket_credentials.issuer import BucketCredentials, CredentialIssuer, IssueFailed
from hybrid_spawner.bucket_credentials.policy import compact, session_name, session_policy


class STSIssuer(CredentialIssuer):
    """Per-user session credentials from ``sts:AssumeRole`` with an inline session policy."""

    role_arn = Unicode(
        "",
        config=True,
        help="""ARN of the node-data role the hub assumes for each user, e.g.
        arn:aws:iam::123456789012:role/jupyter-node-data. Its trust policy must name the hub's
        role only; its policy reaches users/* and the session policy narrows each session to
        one user's prefix (docs/security.md has all three documents).""",
    )
    duration = Int(
        3600,
        config=True,
        help="""Lifetime of one user's credentials in seconds (STS allows 900 up to the role's
        maximum session duration, 3600 by default). Nodes refresh them through the hub before
        they expire, so a short lifetime costs one hub request per lifetime per node.""",
    )
    sts_endpoint_url = Unicode(
        "",
        config=True,
        help="""STS endpoint. Empty: AWS's regional endpoint. For SeaweedFS, MinIO and Ceph RGW,
        the store's own URL (they answer STS on the S3 port).""",
    )
    profile = Unicode(
        "",
        config=True,
        help="""Named profile of the hub's AWS configuration whose credentials call STS. Empty:
        the hub's default chain (its instance profile on EC2). The hub's identity needs only
        sts:AssumeRole on role_arn; it never needs S3 rights itself.""",
    )
    partition = Unicode("aws", config=True, help="ARN partition of the bucket (aws, aws-cn, aws-us-gov).")

    def check(self) -> None:
        super().check()
        if not self.role_arn:
            raise IssueFailed("c.STSIssuer.role_arn is not set: name the node-data role the hub assumes")
        if not 900 <= self.duration <= 43200:
            raise IssueFailed(f"c.STSIssuer.duration must be between 900 and 43200 seconds, not {self.duration}")

    def _client(self):
        import boto3

        session = boto3.Session(profile_name=self.profile or None, region_name=self.region or None)
        return session.client("sts", endpoint_url=self.sts_endpoint_url or None)

    def issue_blocking(self, username: str, prefix: str) -> BucketCredentials:
        import botocore.exceptions

        policy = session_policy(self.bucket, prefix, self.partition)
        try:
            answer = self._client().assume_role(
                RoleArn=self.role_arn,
                RoleSessionName=session_name(username),
                Policy=compact(policy),
                DurationSeconds=self.duration,
            )
        except botocore.exceptions.ClientError as e:
            code = e.response.get("Error", {}).get("Code", "error")
            raise IssueFailed(f"STS refused AssumeRole of {self.role_arn} for {username}: {code}") from None
        except (botocore.exceptions.BotoCoreError, OSError) as e:
            raise IssueFailed(f"STS is unreachable or unconfigured ({type(e).__name__})") from None
        creds = answer["Credentials"]
        expiration = creds["Expiration"]
        if isinstance(expiration, str):
            expiration = dt.datetime.fromisoformat(expiration.replace("Z", "+00:00"))
        self.log.info("bucket credentials: issued %s for %s until %s", session_name(username), prefix, expiration)
        return BucketCredentials(
            access_key_id=creds["AccessKeyId"],
            secret_access_key=creds["SecretAccessKey"],
            session_token=creds["SessionToken"],
            expiration=expiration,
            bucket=self.bucket,
            prefix=prefix,
            endpoint_url=self.endpoint_url,
            region=self.region,
        )
