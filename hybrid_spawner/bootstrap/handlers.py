"""The hub endpoints a node calls: redeem its credential, report its restore progress and its
port, refresh its bucket credentials, report a spot interruption notice.

Registration: :func:`register_hub_handlers` appends the handlers to
``jupyterhub.handlers.default_handlers`` (the hub prefixes them with ``/hub``), the same way
batchspawner registers its API handler. :mod:`hybrid_spawner.remote` calls it when imported, and
JupyterHub resolves ``c.JupyterHub.spawner_class`` while loading its configuration, before it
builds its handler list: an admin who only sets ``spawner_class`` gets the endpoints.
"""

from __future__ import annotations

import json

from hybrid_spawner.bootstrap import interruption, refresh
from hybrid_spawner.bootstrap.credentials import CredentialRejected, registry

BOOTSTRAP_PATH = "/api/hybrid/bootstrap"
PORT_PATH = "/api/hybrid/port"
REFRESH_PATH = "/api/hybrid/bucket-credentials"
PROGRESS_PATH = "/api/hybrid/progress"
INTERRUPTION_PATH = "/api/hybrid/interruption"


# -- hub handlers -------------------------------------------------------------------------
def _make_handlers():
    from jupyterhub.apihandlers.base import APIHandler
    from tornado import web

    from hybrid_spawner.request_body import json_object

    class _NodeHandler(APIHandler):
        """Authenticated by the secret in the body alone, never by a hub token or cookie."""

        def check_xsrf_cookie(self):
            # A node is a script, not a browser: there is no cookie to protect.
            return None

        def _body(self) -> dict:
            return json_object(self.request.body)

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
                if "resume_key" in body:  # a resumed node that kept its spent user-data
                    answer = registry.redeem_resume(body.get("resume_key"))
                else:
                    answer = registry.redeem(body.get("credential"))
            except CredentialRejected as e:
                self._refuse("resume key" if "resume_key" in body else "bootstrap credential", e)
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

    class ProgressHandler(_NodeHandler):
        """A booting node's restore progress (restore_on_start), shown on the spawn page."""

        async def post(self):
            body = self._body()
            try:
                registry.report_progress(body.get("secret"), body.get("restore"))
            except CredentialRejected as e:
                self._refuse("progress report", e)
            except ValueError as e:
                raise web.HTTPError(400, str(e)) from None
            self.set_status(204)

    class BucketCredentialsHandler(_NodeHandler):
        """A running node's next bucket credentials, for the refresh secret it got at redemption."""

        async def post(self):
            from hybrid_spawner.bucket_credentials import IssueFailed

            body = self._body()
            try:
                label, answer = await refresh.registry.refresh(body.get("secret"))
            except CredentialRejected as e:
                self._refuse("bucket credential refresh", e)
            except refresh.RefreshTooSoon as e:
                self.set_header("Retry-After", str(int(refresh.registry.MIN_INTERVAL)))
                raise web.HTTPError(429, "refreshed too recently (%s)", e) from None
            except IssueFailed as e:
                self.log.warning("hybrid bootstrap: bucket credential refresh failed: %s", e)
                raise web.HTTPError(503, "the hub could not obtain new bucket credentials") from None
            self.log.info("hybrid bootstrap: refreshed bucket credentials of %s", label)
            self.set_header("Cache-Control", "no-store")
            self.write(json.dumps(answer))

    class InterruptionHandler(_NodeHandler):
        """A spot node's interruption notice (bootstrap/spot_watch.py), for the notice secret it
        got at redemption: the hub records why the server is about to end (interruption.py)."""

        async def post(self):
            body = self._body()
            try:
                label, notice = interruption.registry.report(body.get("secret"), body.get("notice"))
            except CredentialRejected as e:
                self._refuse("interruption notice", e)
            except ValueError as e:
                self.log.warning("hybrid bootstrap: invalid interruption notice from %s", self.request.remote_ip)
                raise web.HTTPError(400, str(e)) from None
            self.log.info("hybrid bootstrap: %s reported a spot interruption at %s (sync: %s)",
                          label, notice["time"], notice["sync"]["state"])
            self.set_status(204)

    return [
        (BOOTSTRAP_PATH, BootstrapHandler),
        (PORT_PATH, PortHandler),
        (PROGRESS_PATH, ProgressHandler),
        (REFRESH_PATH, BucketCredentialsHandler),
        (INTERRUPTION_PATH, InterruptionHandler),
    ]


def register_hub_handlers() -> None:
    """Add the node endpoints to JupyterHub's handler list (idempotent)."""
    from jupyterhub import handlers

    if any(h[0] == BOOTSTRAP_PATH for h in handlers.default_handlers):
        return
    handlers.default_handlers.extend(_make_handlers())
