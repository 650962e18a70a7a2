"""Per-user, short-lived bucket credentials: what a researcher's node may touch in the bucket.

Every node used to hold the same S3 rights (one instance profile, or one static key pair in the
spawner environment), so any researcher could read and overwrite everyone's notebooks. Now the
hub obtains, at each spawn, credentials that reach only ``users/<name>/`` (or the admin's
prefix template) and hands them to the node in the bootstrap redemption; the node agent
refreshes them through an authenticated hub endpoint before they expire (see
:mod:`hybrid_spawner.bootstrap`), and the sync engine re-reads them without a restart.

Rooms: :mod:`.policy` (pure: the user's prefix, the session policy, the IAM documents of
docs/security.md), :mod:`.issuer` (the issuer interface and the credentials it returns),
:mod:`.sts` (STS AssumeRole with a session policy: AWS, SeaweedFS, MinIO, Ceph RGW),
:mod:`.static` (per-user keys an admin maps from a file or a callable, for stores without STS).
"""

from hybrid_spawner.bucket_credentials.issuer import BucketCredentials, CredentialIssuer, IssueFailed
from hybrid_spawner.bucket_credentials.static import StaticKeysIssuer
from hybrid_spawner.bucket_credentials.sts import STSIssuer

__all__ = ["BucketCredentials", "CredentialIssuer", "IssueFailed", "STSIssuer", "StaticKeysIssuer"]
