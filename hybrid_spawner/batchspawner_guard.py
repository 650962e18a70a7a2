"""Keep batchspawner's ``/hub/api/batchspawner`` endpoint out of reach.

Importing ``batchspawner`` registers a handler that ``setattr``s every key of the posted JSON
onto the caller's spawner — with a user's own server token, a user could rewrite
``batch_submit_cmd`` or ``exec_prefix`` and run commands as root on the hub. Our Slurm jobs
report their port through the node bootstrap (``/hub/api/hybrid/port``) instead, so the
endpoint is removed and a refusing handler is put *first* in the hub's handler list: tornado
uses the first matching route, so it stays closed even if ``batchspawner`` is imported again
later by an admin's configuration.
"""

from __future__ import annotations

BATCHSPAWNER_PATH = r"/api/batchspawner"


def _make_refusing_handler():
    from jupyterhub.apihandlers.base import APIHandler
    from tornado import web

    class BatchspawnerEndpointDisabled(APIHandler):
        """Answers 404 to every method; never touches a spawner."""

        def check_xsrf_cookie(self):
            return None

        def _refuse(self, *args, **kwargs):
            self.log.warning("refused a request to the disabled batchspawner API from %s", self.request.remote_ip)
            raise web.HTTPError(404, "the batchspawner API is disabled; jobs report through /hub/api/hybrid/port")

        get = post = put = patch = delete = _refuse

    return BatchspawnerEndpointDisabled


def close_batchspawner_endpoint() -> None:
    """Remove batchspawner's handler and shadow its path (idempotent)."""
    import batchspawner  # noqa: F401  (registers its handler; we import it to remove it)
    from jupyterhub import apihandlers, handlers

    apihandlers.default_handlers[:] = [h for h in apihandlers.default_handlers if h[0] != BATCHSPAWNER_PATH]
    if not any(h[0] == BATCHSPAWNER_PATH for h in handlers.default_handlers):
        handlers.default_handlers.insert(0, (BATCHSPAWNER_PATH, _make_refusing_handler()))
