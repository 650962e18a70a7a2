"""What a node needs to publish: HYBRID_PUBLISHER_URL, HYBRID_PUBLIC_URL, HYBRID_PUBLISHER_TOKEN.

Pure apart from reading the secret file. The spawner merges this into the node's environment
*after* ``Spawner.environment``, so a deployment that writes ``c.EC2Spawner.environment = {...}``
(which replaces, not extends, ``c.Spawner.environment``) no longer turns publishing off
without a word: the publish settings live in their own options (``c.RemoteSpawner.publisher_*``).

The secret file is read at every spawn, so replacing its content (a rotation, docs/operations.md)
takes effect for the next spawn without restarting the hub; the secret itself never leaves the
hub, only the token derived from it for one user.
"""

from __future__ import annotations

from pathlib import Path

from voila_publisher.tokens import derive_publish_token


class PublisherConfigError(ValueError):
    """The publish settings cannot give a node its token; the message names the setting."""


def read_secret(path: str) -> str:
    """The shared secret in ``path`` (surrounding whitespace removed)."""
    try:
        secret = Path(path).read_text().strip()
    except OSError as e:
        raise PublisherConfigError(
            f"c.RemoteSpawner.publisher_secret_file: cannot read {path!r} ({e.strerror or e})"
        ) from None
    if len(secret.encode()) < 16:
        raise PublisherConfigError(
            f"c.RemoteSpawner.publisher_secret_file: {path!r} holds no secret of at least 16 bytes"
        )
    return secret


def publisher_environment(*, publisher_url: str, public_url: str, secret_file: str, username: str) -> dict[str, str]:
    """The HYBRID_PUBLISH* variables these settings give ``username``'s node ({} for none set)."""
    env: dict[str, str] = {}
    if publisher_url:
        env["HYBRID_PUBLISHER_URL"] = publisher_url
    if public_url:
        env["HYBRID_PUBLIC_URL"] = public_url
    if secret_file:
        env["HYBRID_PUBLISHER_TOKEN"] = derive_publish_token(read_secret(secret_file), username)
    if (publisher_url or secret_file) and not (publisher_url and secret_file):
        missing = "publisher_secret_file" if publisher_url else "publisher_url"
        raise PublisherConfigError(
            f"c.RemoteSpawner.{missing} is empty: set both publisher_url and publisher_secret_file, or neither"
        )
    return env
