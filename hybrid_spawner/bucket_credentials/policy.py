"""Pure: a user's prefix in the bucket and the IAM documents that confine a node to it.

No network, no boto3. The documents here are the ones docs/security.md prints, so the page and
the code cannot drift apart (tests/unit/test_bucket_credentials.py compares them).
"""

from __future__ import annotations

import json
import re

#: What the sync does to the objects under a prefix: read, write, delete, resumable uploads.
OBJECT_ACTIONS = ("s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload", "s3:ListMultipartUploadParts")

# Characters that IAM evaluates in ARNs and StringLike conditions ("*", "?") or as policy
# variables ("${...}"): a user name containing one would widen the prefix to other users.
_WILDCARDS = re.compile(r"[*?$\[\]{}\\]")
# RoleSessionName allows [\w+=,.@-], 2..64 characters (STS API reference).
_SESSION_UNSAFE = re.compile(r"[^\w+=,.@-]")


class PrefixRefused(ValueError):
    """A user name or template that cannot be confined to a prefix; the message says why."""


def user_prefix(template: str, username: str) -> str:
    """The key prefix ``template`` gives ``username`` (``users/{username}/`` -> ``users/alice/``).

    Refuses what would not confine one user: a template without ``{username}``, names with IAM
    wildcards or policy variables, path tricks ("..", "/"), control characters.
    """
    if "{username}" not in template:
        raise PrefixRefused(f"the prefix template {template!r} must contain {{username}} (one prefix per user)")
    if not username or "/" in username or username in (".", ".."):
        raise PrefixRefused(f"user name {username!r} cannot name a bucket prefix")
    if _WILDCARDS.search(username) or any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in username):
        raise PrefixRefused(f"user name {username!r} contains a character IAM treats as a wildcard or variable")
    try:
        prefix = template.format(username=username).lstrip("/")
    except (KeyError, IndexError, ValueError):
        raise PrefixRefused(f"the prefix template {template!r} may name only {{username}}") from None
    if _WILDCARDS.search(prefix):
        raise PrefixRefused(f"the prefix template {template!r} contains an IAM wildcard or variable")
    if not prefix.endswith("/"):
        prefix += "/"
    if any(part in ("", ".", "..") for part in prefix[:-1].split("/")):
        raise PrefixRefused(f"prefix {prefix!r} has an empty, '.' or '..' segment")
    return prefix


def session_name(username: str) -> str:
    """The RoleSessionName for ``username``: names the user in CloudTrail and the store's logs."""
    name = "hub-" + _SESSION_UNSAFE.sub("-", username)
    return name[:64]


def session_policy(bucket: str, prefix: str, partition: str = "aws") -> dict:
    """The inline session policy of one user's credentials: list, read, write, delete ``prefix``.

    The effective rights of an assumed-role session are the intersection of the role's policy
    and this document, so even a role that reaches all of ``users/`` yields one user's prefix.
    ``s3:prefix`` limits what ListObjectsV2 may ask for; without the condition a user could list
    every other user's file names.
    """
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "ListOwnPrefix",
                "Effect": "Allow",
                "Action": "s3:ListBucket",
                "Resource": f"arn:{partition}:s3:::{bucket}",
                "Condition": {"StringLike": {"s3:prefix": [prefix, prefix + "*"]}},
            },
            {
                "Sid": "ReadWriteOwnPrefix",
                "Effect": "Allow",
                "Action": list(OBJECT_ACTIONS),
                "Resource": f"arn:{partition}:s3:::{bucket}/{prefix}*",
            },
        ],
    }


def node_data_role_policy(bucket: str, prefix_root: str = "users/", partition: str = "aws") -> dict:
    """The node-data role's own policy: the ceiling of every session (all users' prefixes).

    No session reaches beyond this even if the hub were tricked into a wider session policy.
    """
    root = prefix_root.lstrip("/")
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "ListUserPrefixes",
                "Effect": "Allow",
                "Action": "s3:ListBucket",
                "Resource": f"arn:{partition}:s3:::{bucket}",
                "Condition": {"StringLike": {"s3:prefix": [root + "*"]}},
            },
            {
                "Sid": "ReadWriteUserPrefixes",
                "Effect": "Allow",
                "Action": list(OBJECT_ACTIONS),
                "Resource": f"arn:{partition}:s3:::{bucket}/{root}*",
            },
        ],
    }


def node_data_trust_policy(hub_role_arn: str) -> dict:
    """Only the hub's role may assume the node-data role (never a node's instance profile)."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"AWS": hub_role_arn},
                "Action": "sts:AssumeRole",
            }
        ],
    }


def hub_assume_policy(node_data_role_arn: str) -> dict:
    """What the hub's own role needs for credentials: AssumeRole on the node-data role, nothing on S3."""
    return {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole", "Resource": node_data_role_arn}],
    }


def compact(document: dict) -> str:
    """The JSON text STS receives (session policies count against a packed-size limit)."""
    return json.dumps(document, separators=(",", ":"))
