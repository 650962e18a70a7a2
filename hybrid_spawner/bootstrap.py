"""Node bootstrap: how a freshly booted node gets its secrets without them ever touching user-data.

The flow, shared by every backend (EC2, OpenStack, Slurm)::

    spawner                        hub (this module)                      node
    -------                        -----------------                      ----
    registry.issue(...)  ------>   keeps sha256(credential) only
    render_bootstrap_script(...)   (hub URL + credential, nothing else) -> user-data / job script
                                   POST /hub/api/hybrid/bootstrap  <----  {"credential": ...}
                                   -> 200 {"environment", "command",     (JUPYTERHUB_API_TOKEN ...)
                                           "port", "report_secret"}
                                   POST /hub/api/hybrid/port        <----  {"secret": ..., "port": N}
    await bootstrap.wait_port() <- resolved with the validated port

A credential is single-use and expires (``ttl``); a replayed, expired or unknown credential gets
403 and a hub log line that names the reason and the spawner, never the secret. The report secret
handed out at redemption is scoped to that one spawner and also works once.

Handler registration: importing this module appends the two handlers to
``jupyterhub.handlers.default_handlers`` (the hub prefixes them with ``/hub``), the same way
batchspawner registers its API handler. Importing any hybrid spawner class imports this module,
and JupyterHub resolves ``c.JupyterHub.spawner_class`` while loading its configuration, before it
builds its handler list: an admin who only sets ``spawner_class`` gets the endpoints.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import secrets
import shlex
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import jinja2

BOOTSTRAP_PATH = "/api/hybrid/bootstrap"
PORT_PATH = "/api/hybrid/port"
TEMPLATES = Path(__file__).parent / "templates"
DEFAULT_TEMPLATE = "node_bootstrap.sh.j2"

log = logging.getLogger("JupyterHub")


class CredentialRejected(Exception):
    """A credential or report secret the hub will not honour; ``reason`` is safe to log."""

    def __init__(self, reason: str, label: str = "?"):
        super().__init__(reason)
        self.reason = reason
        self.label = label


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def validate_port(value: Any) -> int:
    """The only thing a node may tell the hub: a TCP port, as a JSON integer in 1..65535."""
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 65535:
        raise ValueError("port must be an integer between 1 and 65535")
    return value


@dataclass
class NodeBootstrap:
    """The hub-side record of one node's bootstrap.

    ``payload`` is called at redemption (not before: the API token may be minted late) and
    returns ``{"environment": {...}, "command": [...], "port": int}``. ``label`` names the
    spawner in log lines. The caller awaits :meth:`wait_redeemed` / :meth:`wait_port` and must
    call :meth:`close` when the spawn ends, however it ends.
    """

    label: str
    payload: Callable[[], dict]
    expires_at: float
    registry: "BootstrapRegistry"
    credential_hash: str = ""
    report_hash: str | None = None
    redeemed: asyncio.Event = field(default_factory=asyncio.Event)
    port: asyncio.Future = field(default_factory=lambda: asyncio.get_event_loop().create_future())

    async def wait_redeemed(self) -> None:
        await self.redeemed.wait()

    async def wait_port(self) -> int:
        return await asyncio.shield(self.port)

    def close(self) -> None:
        """Forget both secrets; any later use gets 403."""
        self.registry._forget(self)
        if not self.port.done():
            self.port.cancel()


class BootstrapRegistry:
    """Hub-process memory of pending bootstraps, keyed by secret hashes (never the secrets)."""

    # How many spent credential hashes to remember, so that a replay is logged as a replay.
    SPENT_MEMORY = 4096

    def __init__(self, clock: Callable[[], float] = time.monotonic):
        self._clock = clock
        self._by_credential: dict[str, NodeBootstrap] = {}
        self._by_report: dict[str, NodeBootstrap] = {}
        self._spent: dict[str, str] = {}

    def issue(self, label: str, payload: Callable[[], dict], ttl: float) -> tuple[NodeBootstrap, str]:
        """Create a bootstrap; returns it and the credential (shown once, to put in the script)."""
        credential = secrets.token_urlsafe(32)
        entry = NodeBootstrap(label=label, payload=payload, expires_at=self._clock() + ttl, registry=self)
        entry.credential_hash = _digest(credential)
        self._by_credential[entry.credential_hash] = entry
        return entry, credential

    def redeem(self, credential: Any) -> dict:
        """Trade a credential for the node's configuration, once. Raises CredentialRejected."""
        if not isinstance(credential, str) or not credential:
            raise CredentialRejected("missing credential")
        digest = _digest(credential)
        entry = self._by_credential.pop(digest, None)
        if entry is None:
            label = self._spent.get(digest)
            if label is not None:
                raise CredentialRejected("replayed credential", label)
            raise CredentialRejected("unknown credential")
        self._remember_spent(digest, entry.label)
        if self._clock() > entry.expires_at:
            raise CredentialRejected("expired credential", entry.label)
        answer = dict(entry.payload())
        report_secret = secrets.token_urlsafe(32)
        entry.report_hash = _digest(report_secret)
        self._by_report[entry.report_hash] = entry
        entry.redeemed.set()
        answer["report_secret"] = report_secret
        return answer

    def report_port(self, secret: Any, port: Any) -> tuple[NodeBootstrap, int]:
        """Accept the node's port once. Raises CredentialRejected or ValueError (bad port)."""
        if not isinstance(secret, str) or not secret:
            raise CredentialRejected("missing report secret")
        entry = self._by_report.get(_digest(secret))
        if entry is None:
            raise CredentialRejected("unknown or spent report secret")
        port = validate_port(port)
        del self._by_report[entry.report_hash]
        if not entry.port.done():
            entry.port.set_result(port)
        return entry, port

    def _remember_spent(self, digest: str, label: str) -> None:
        self._spent[digest] = label
        while len(self._spent) > self.SPENT_MEMORY:
            self._spent.pop(next(iter(self._spent)))

    def _forget(self, entry: NodeBootstrap) -> None:
        if self._by_credential.get(entry.credential_hash) is entry:
            del self._by_credential[entry.credential_hash]
            self._remember_spent(entry.credential_hash, entry.label)
        if entry.report_hash and self._by_report.get(entry.report_hash) is entry:
            del self._by_report[entry.report_hash]

    def pending_count(self) -> int:
        return len(self._by_credential) + len(self._by_report)


#: The hub process's registry; the handlers below and every spawner use this one.
registry = BootstrapRegistry()


# -- the node's configuration ----------------------------------------------------------------
def spawner_payload(spawner) -> dict:
    """What a node needs to start the single-user server for ``spawner`` (read at redemption)."""
    return {
        "environment": spawner.get_env(),
        "command": list(spawner.cmd) + list(spawner.get_args()),
        "port": int(spawner.port or 0),
    }


def hub_api_url(spawner) -> str:
    """The hub API URL as nodes reach it (honours ``hub_connect_url``), without trailing slash."""
    return spawner.get_env()["JUPYTERHUB_API_URL"].rstrip("/")


# -- the script ---------------------------------------------------------------------------
_env = jinja2.Environment(
    loader=jinja2.FileSystemLoader(str(TEMPLATES)),
    autoescape=False,
    keep_trailing_newline=True,
    undefined=jinja2.StrictUndefined,
)
_env.filters["shquote"] = lambda v: shlex.quote(str(v))


def render_bootstrap_script(
    api_url: str,
    credential: str,
    *,
    template: str = DEFAULT_TEMPLATE,
    python: str = "python3",
    run_as: str = "",
    ttl: float = 0,
    extra: dict | None = None,
) -> str:
    """The node's boot script (user-data, Nova user_data, or a batch job script).

    It carries the hub's bootstrap URL and the credential, nothing else secret. ``template``
    is a file in ``hybrid_spawner/templates`` or an absolute path (an admin's own); ``extra``
    adds template variables (the Slurm backend passes its ``#SBATCH`` lines this way).
    """
    context = {
        "bootstrap_url": api_url.rstrip("/") + "/hybrid/bootstrap",
        "credential": credential,
        "python": python,
        "run_as": run_as,
        "ttl_minutes": max(1, round(ttl / 60)) if ttl else None,
        **(extra or {}),
    }
    if Path(template).is_absolute():
        tmpl = _env.from_string(Path(template).read_text())
    else:
        tmpl = _env.get_template(template)
    return tmpl.render(**context)


# -- hub handlers -------------------------------------------------------------------------
def _make_handlers():
    from jupyterhub.apihandlers.base import APIHandler
    from tornado import web

    class _NodeHandler(APIHandler):
        """Authenticated by the secret in the body alone, never by a hub token or cookie."""

        def check_xsrf_cookie(self):
            # A node is a script, not a browser: there is no cookie to protect.
            return None

        def _body(self) -> dict:
            try:
                body = json.loads(self.request.body or b"{}")
            except ValueError:
                raise web.HTTPError(400, "body must be JSON") from None
            if not isinstance(body, dict):
                raise web.HTTPError(400, "body must be a JSON object")
            return body

        def _refuse(self, what: str, exc: CredentialRejected):
            self.log.warning(
                "hybrid bootstrap: refused %s from %s: %s (spawner %s)",
                what,
                self.request.remote_ip,
                exc.reason,
                exc.label,
            )
            raise web.HTTPError(403, "credential refused")

    class BootstrapHandler(_NodeHandler):
        async def post(self):
            body = self._body()
            try:
                answer = registry.redeem(body.get("credential"))
            except CredentialRejected as e:
                self._refuse("bootstrap credential", e)
            self.set_header("Cache-Control", "no-store")
            self.write(json.dumps(answer))

    class PortHandler(_NodeHandler):
        async def post(self):
            body = self._body()
            try:
                entry, port = registry.report_port(body.get("secret"), body.get("port"))
            except CredentialRejected as e:
                self._refuse("port report", e)
            except ValueError as e:
                self.log.warning("hybrid bootstrap: invalid port report from %s", self.request.remote_ip)
                raise web.HTTPError(400, str(e)) from None
            self.log.info("hybrid bootstrap: %s reported port %d", entry.label, port)
            self.set_status(204)

    return [(BOOTSTRAP_PATH, BootstrapHandler), (PORT_PATH, PortHandler)]


def register_hub_handlers() -> None:
    """Add the node endpoints to JupyterHub's handler list (idempotent)."""
    from jupyterhub import handlers

    if any(h[0] == BOOTSTRAP_PATH for h in handlers.default_handlers):
        return
    handlers.default_handlers.extend(_make_handlers())


register_hub_handlers()
