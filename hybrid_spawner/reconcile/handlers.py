"""The admin endpoint of the reconciler (in the hub, under /hub):

- ``GET  /hub/api/hybrid/reconcile``  the last passes: what each backend listed, what was found,
  what was done
- ``POST /hub/api/hybrid/reconcile``  run a pass now and answer with its report

Both need the *unfiltered* ``admin:servers`` scope: the report names every user's nodes and a
pass may terminate nodes.
"""

from __future__ import annotations

import json

RECONCILE_PATH = "/api/hybrid/reconcile"


def _make_handlers():
    from jupyterhub.apihandlers.base import APIHandler
    from jupyterhub.scopes import Scope
    from tornado import web

    from hybrid_spawner.reconcile import runner

    class ReconcileHandler(APIHandler):
        def _reconciler(self):
            if self.current_user is None:
                raise web.HTTPError(403, "authentication required")
            if self.parsed_scopes.get("admin:servers") is not Scope.ALL:
                raise web.HTTPError(403, "the reconcile report needs the unfiltered scope admin:servers")
            reconciler = runner.current()
            if reconciler is None:
                raise web.HTTPError(404, "the reconciler is not enabled in this hub's configuration")
            return reconciler

        def _answer(self, payload) -> None:
            self.set_header("Content-Type", "application/json")
            self.set_header("Cache-Control", "no-store")
            self.write(json.dumps(payload))

        async def get(self):
            reconciler = self._reconciler()
            self._answer({"mode": reconciler.mode, "grace_period": reconciler.grace_period,
                          "interval": reconciler.interval, "passes": list(reconciler.reports)})

        async def post(self):
            reconciler = self._reconciler()
            self._answer(await reconciler.run_once())

    return [(RECONCILE_PATH, ReconcileHandler)]


def register_reconcile_handlers() -> None:
    """Add the endpoint to JupyterHub's handler list (idempotent)."""
    from jupyterhub import handlers

    if any(h[0] == RECONCILE_PATH for h in handlers.default_handlers):
        return
    handlers.default_handlers.extend(_make_handlers())
