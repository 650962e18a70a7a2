"""Replace batchspawner's ``/hub/api/batchspawner`` handler by one that accepts a port only.

Importing ``batchspawner`` registers a handler that ``setattr``s every key of the posted JSON
onto the caller's spawner: with the server's token (which the user can read inside their own
job) a user could rewrite ``batch_cancel_cmd`` or ``exec_prefix`` and run commands as root on
the hub. JupyterHub imports every installed spawner entry point at start-up, so this module
runs in any hub that has this package installed, whatever spawner it uses.

The replacement keeps plain ``batchspawner`` spawners working (their jobs post
``{"port": N}`` once, while the spawn is pending) and refuses everything else: any other key,
a port that is not an integer in 1..65535, a server that is not starting, and every spawner of
ours (their jobs report through ``/hub/api/hybrid/port`` with a single-use secret instead).
It is put *first* in the hub's handler list: tornado uses the first matching route, so the
original stays unreachable even if ``batchspawner`` is imported again later.
"""

from __future__ import annotations

import json

BATCHSPAWNER_PATH = r"/api/batchspawner"


def _make_port_only_handler():
    from batchspawner import BatchSpawnerBase
    from jupyterhub.apihandlers.base import APIHandler
    from tornado import web

    from hybrid_spawner.bootstrap.credentials import validate_port
    from hybrid_spawner.remote import RemoteSpawner

    class BatchspawnerPortOnly(APIHandler):
        """batchspawner's port callback without its setattr: ``{"port": N}`` and nothing else."""

        @web.authenticated
        def post(self):
            token = self.get_auth_token()
            spawner = next((s for s in self.current_user.spawners.values() if s.api_token == token), None)
            if spawner is None or isinstance(spawner, RemoteSpawner) or not isinstance(spawner, BatchSpawnerBase):
                self.log.warning("batchspawner API: refused a request from %s (not a batchspawner job)", self.request.remote_ip)
                raise web.HTTPError(404, "no batchspawner job for this token")
            data = self.get_json_body()
            if not isinstance(data, dict) or set(data) != {"port"}:
                self.log.warning("batchspawner API: refused keys other than 'port' for %s", spawner._log_name)
                raise web.HTTPError(400, "only {'port': <int>} is accepted")
            if spawner.pending != "spawn" or spawner.port:
                raise web.HTTPError(409, "the port is set once, while the server is starting")
            try:
                spawner.port = validate_port(data["port"])
            except ValueError as e:
                raise web.HTTPError(400, str(e)) from None
            self.set_status(201)
            self.finish(json.dumps({"message": "port set"}))

    return BatchspawnerPortOnly


def close_batchspawner_endpoint() -> None:
    """Remove batchspawner's setattr handler and shadow its path with ours (idempotent)."""
    import batchspawner  # noqa: F401  (registers its handler; imported here to remove it)
    from jupyterhub import apihandlers, handlers

    apihandlers.default_handlers[:] = [h for h in apihandlers.default_handlers if h[0] != BATCHSPAWNER_PATH]
    if not any(h[0] == BATCHSPAWNER_PATH for h in handlers.default_handlers):
        handlers.default_handlers.insert(0, (BATCHSPAWNER_PATH, _make_port_only_handler()))
