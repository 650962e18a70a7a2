"""Per-user keys an admin maps (file or callable), for S3-compatible stores without STS.

The store itself must confine each key to its user's prefix (e.g. a SeaweedFS identity with
actions ``Read:bucket/users/alice/*``, ``Write:...``, ``List:...``; a Ceph RGW user with a bucket
policy per prefix). The hub only hands each node its own user's key, never a shared one.
"""

from __future__ import annotations

import json
import stat
from pathlib import Path

from traitlets import Any, Unicode

from hybrid_spawner.bucket_credentials.issuer import BucketCredentials, CredentialIssuer, IssueFailed


class StaticKeysIssuer(CredentialIssuer):
    """Each user's own long-lived key pair, looked up at every spawn (rotations need no restart)."""

    keys_file = Unicode(
        "",
        config=True,
        help="""JSON file mapping user name to {"access_key_id": ..., "secret_access_key": ...}.
        Re-read at every spawn. It must not be readable by group or others (chmod 600): a
        spawn is refused otherwise.""",
    )
    keys = Any(
        None,
        config=True,
        help="""Instead of keys_file: a callable (user name -> dict with access_key_id and
        secret_access_key, or None for "no key") that looks the key up, e.g. in a vault.""",
    )

    def check(self) -> None:
        super().check()
        if not self.keys_file and self.keys is None:
            raise IssueFailed("set c.StaticKeysIssuer.keys_file or c.StaticKeysIssuer.keys")

    def _lookup(self, username: str):
        if self.keys is not None:
            return self.keys(username)
        path = Path(self.keys_file)
        try:
            mode = path.stat().st_mode
            if mode & (stat.S_IRWXG | stat.S_IRWXO):
                raise IssueFailed(f"{path} is readable by others: chmod 600 it (it holds every user's key)")
            table = json.loads(path.read_text())
        except OSError as e:
            raise IssueFailed(f"cannot read c.StaticKeysIssuer.keys_file {path}: {e.strerror}") from None
        except ValueError:
            raise IssueFailed(f"c.StaticKeysIssuer.keys_file {path} is not JSON") from None
        if not isinstance(table, dict):
            raise IssueFailed(f"c.StaticKeysIssuer.keys_file {path} must map user names to keys")
        return table.get(username)

    def issue_blocking(self, username: str, prefix: str) -> BucketCredentials:
        entry = self._lookup(username)
        if entry is None:
            raise IssueFailed(f"no bucket key for user {username!r} in the static key map")
        if not isinstance(entry, dict) or not entry.get("access_key_id") or not entry.get("secret_access_key"):
            raise IssueFailed(f"the bucket key of user {username!r} needs access_key_id and secret_access_key")
        return BucketCredentials(
            access_key_id=str(entry["access_key_id"]),
            secret_access_key=str(entry["secret_access_key"]),
            session_token="",
            expiration=None,
            bucket=self.bucket,
            prefix=prefix,
            endpoint_url=self.endpoint_url,
            region=self.region,
        )


