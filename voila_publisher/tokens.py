"""Per-user publish tokens, derived by the hub from a secret it shares with the public host.

The hub puts ``HYBRID_PUBLISHER_TOKEN = derive_publish_token(secret, username)`` into each
user's environment; the publisher service on the public host holds the same secret and can
check a token without any database, and tell *whose* token it is. That lets it answer
"no valid token" (401) apart from "a valid token, but for another owner" (403).

A token reads ``hp1.<owner, base64url>.<HMAC-SHA256, base64url>``. The owner is visible in
the token on purpose (it is not a secret); the MAC is what proves the hub issued it.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac

TOKEN_VERSION = "hp1"
# Bind the MAC to its purpose, so the same shared secret can never mint tokens that some
# other component would accept.
_CONTEXT = b"voila-publisher/publish-token/v1\x00"
MIN_SECRET_BYTES = 16


class InvalidToken(ValueError):
    """The token is missing, malformed or not signed with the shared secret."""


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _secret_bytes(secret: str | bytes) -> bytes:
    key = secret.encode() if isinstance(secret, str) else bytes(secret)
    if len(key) < MIN_SECRET_BYTES:
        raise ValueError(f"the publish token secret must be at least {MIN_SECRET_BYTES} bytes long")
    return key


def _mac(key: bytes, owner: str) -> bytes:
    return hmac.new(key, _CONTEXT + owner.encode("utf-8"), hashlib.sha256).digest()


def derive_publish_token(secret: str | bytes, owner: str) -> str:
    """The publish token of ``owner`` (a JupyterHub user name) under ``secret``."""
    if not owner:
        raise ValueError("a publish token needs an owner")
    key = _secret_bytes(secret)
    return f"{TOKEN_VERSION}.{_b64(owner.encode('utf-8'))}.{_b64(_mac(key, owner))}"


def token_owner(secret: str | bytes, token: str) -> str:
    """The owner a valid token was issued for; raises :class:`InvalidToken` otherwise.

    The exception text never contains the token.
    """
    key = _secret_bytes(secret)
    parts = (token or "").split(".")
    if len(parts) != 3 or parts[0] != TOKEN_VERSION:
        raise InvalidToken("not a publish token")
    try:
        owner = _unb64(parts[1]).decode("utf-8")
        mac = _unb64(parts[2])
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise InvalidToken("not a publish token") from None
    if not owner or not hmac.compare_digest(mac, _mac(key, owner)):
        raise InvalidToken("the publish token was not issued by this hub")
    return owner


def token_owner_any(secrets_: "list[str | bytes] | tuple[str | bytes, ...]", token: str) -> str:
    """The owner of a token valid under any of ``secrets_`` (the current secret first).

    What a host accepts while a secret is rotated: tokens of servers started before the
    rotation (old secret) and after it (new secret). Raises :class:`InvalidToken` if none fits.
    """
    if not secrets_:
        raise ValueError("no secret to check a publish token against")
    error: InvalidToken | None = None
    for secret in secrets_:
        try:
            return token_owner(secret, token)
        except InvalidToken as e:
            error = error or e
    raise error


def spawner_token(secret: str | bytes):
    """For the hub's config: ``c.Spawner.environment = {"HYBRID_PUBLISHER_TOKEN": spawner_token(secret)}``.

    JupyterHub calls environment values that are callables with the spawner, so each user's
    server gets its own token and the secret itself never leaves the hub.
    """
    _secret_bytes(secret)  # fail at hub start, not at the first spawn

    def token_for(spawner) -> str:
        return derive_publish_token(secret, spawner.user.name)

    return token_for
