"""openstacksdk connections for the hub, and what its errors mean to a researcher or an admin.

Connections are blocking objects: create and use them in worker threads only. One connection
is shared per distinct settings (cloud name / explicit auth / region), so a hub with a hundred
users authenticates once, not a hundred times.
"""

from __future__ import annotations

import hashlib
import json
import threading
from dataclasses import dataclass

from hybrid_spawner.backends.openstack.plan import is_quota_error, quota_message

APP_NAME = "jupyter-hybrid-cloud"
APP_CRED_KEYS = ("application_credential_id", "application_credential_name", "application_credential_secret")


@dataclass(frozen=True)
class ConnectionSettings:
    """Either ``cloud`` (a clouds.yaml entry) or ``auth`` (explicit Keystone v3 settings)."""

    cloud: str = ""
    clouds_yaml: str = ""  # empty: openstacksdk's usual search path (OS_CLIENT_CONFIG_FILE, ~/.config/openstack ...)
    auth_json: str = "{}"  # the auth dict as sorted JSON (hashable); holds secrets: never log it
    auth_type: str = ""
    region_name: str = ""
    interface: str = ""

    @classmethod
    def build(cls, *, cloud="", clouds_yaml="", auth=None, auth_type="", region_name="", interface=""):
        return cls(cloud, clouds_yaml, json.dumps(auth or {}, sort_keys=True), auth_type, region_name, interface)

    @property
    def auth(self) -> dict:
        return json.loads(self.auth_json)

    def describe(self) -> str:
        """Names the target without any secret (for messages and logs)."""
        if self.cloud:
            return f"cloud {self.cloud!r}"
        url = self.auth.get("auth_url", "?")
        return f"Keystone at {url}"

    def cache_key(self) -> str:
        """A stable identifier that does not reveal the secrets it is derived from."""
        return hashlib.sha256(repr(self).encode()).hexdigest()[:16]

    def validate(self) -> None:
        if not self.cloud and not self.auth:
            raise ValueError(
                "OpenStackSpawner needs either `cloud` (an entry of clouds.yaml) or `auth` "
                "(auth_url plus username/password/project or an application credential)"
            )
        if not self.cloud and "auth_url" not in self.auth:
            raise ValueError("OpenStackSpawner.auth must contain auth_url (the Keystone v3 endpoint)")

    def effective_auth_type(self) -> str:
        if self.auth_type:
            return self.auth_type
        return "v3applicationcredential" if any(k in self.auth for k in APP_CRED_KEYS) else "password"


_connections: dict[ConnectionSettings, object] = {}
_lock = threading.Lock()


def connect(settings: ConnectionSettings):
    """The shared (blocking) Connection for ``settings``; call from a worker thread."""
    import openstack
    from openstack.config import loader

    with _lock:
        conn = _connections.get(settings)
        if conn is not None:
            return conn
        settings.validate()
        options = {"region_name": settings.region_name} if settings.region_name else {}
        if settings.interface:
            options["interface"] = settings.interface
        if settings.cloud:
            config = loader.OpenStackConfig(
                config_files=[settings.clouds_yaml] if settings.clouds_yaml else None,
                load_envvars=False, app_name=APP_NAME,
            )
            region = config.get_one(cloud=settings.cloud, **options)
            conn = openstack.connection.Connection(config=region)
        else:
            conn = openstack.connect(
                load_yaml_config=False, load_envvars=False, app_name=APP_NAME,
                auth_type=settings.effective_auth_type(), auth=settings.auth, **options,
            )
        _connections[settings] = conn
        return conn


def forget(settings: ConnectionSettings) -> None:
    """Drop a cached connection (after an authentication failure, so fixed credentials apply)."""
    with _lock:
        _connections.pop(settings, None)


def is_transient(error: BaseException) -> bool:
    """True for errors worth retrying: Nova/Keystone 5xx and 429, or an unreachable endpoint."""
    from keystoneauth1 import exceptions as ks
    from openstack import exceptions as osx

    if isinstance(error, (ks.ConnectFailure, ks.ConnectTimeout)):
        return True
    return isinstance(error, osx.HttpException) and (error.status_code or 0) in (429, 500, 502, 503, 504)


def describe_sdk_error(error: BaseException, settings: ConnectionSettings) -> str | None:
    """A sentence for an expected openstacksdk / keystoneauth error, or None if unexpected.

    Only the exception class, HTTP status and the service's own message are used: never the
    request, whose headers or body may carry a token or password.
    """
    from keystoneauth1 import exceptions as ks
    from openstack import exceptions as osx

    target = settings.describe()
    if isinstance(error, osx.ConfigException):
        where = settings.clouds_yaml or "the clouds.yaml search path (OS_CLIENT_CONFIG_FILE, ~/.config/openstack, /etc/openstack)"
        return f"OpenStack is misconfigured on the hub: {target} is not defined in {where}."
    if isinstance(error, ks.Unauthorized):
        return (f"OpenStack refused the hub's credentials for {target} (HTTP 401). The admin must fix the "
                "password or application credential.")
    if isinstance(error, (ks.ConnectFailure, ks.ConnectTimeout, ks.DiscoveryFailure)):
        return f"The hub cannot reach OpenStack ({target}): {type(error).__name__}. Try again later."
    if isinstance(error, ks.EndpointNotFound):
        return f"OpenStack {target} has no usable endpoint in its service catalog: {error}"
    if isinstance(error, ks.MissingRequiredOptions):
        return f"OpenStack settings for {target} are incomplete: {error}"
    if isinstance(error, osx.HttpException):
        message = (error.details or error.message or "").strip()
        if is_quota_error(error.status_code, message):
            return quota_message(message)
        if error.status_code in (400, 403, 404, 409):
            return f"OpenStack refused the request (HTTP {error.status_code}): {message}"
        return f"OpenStack answered HTTP {error.status_code}: {message}. Try again later."
    return None
