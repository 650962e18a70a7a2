"""Who spends what, on the hub: ``GET /hub/api/hybrid/costs`` (JSON) and ``/hub/hybrid/costs``
(the admin page).

Query: ``month=YYYY-MM`` (default: the current month, UTC) and ``user=<name>``. A caller with
the ``admin:users`` scope (admins, an admin service) may read everyone's or any user's figures;
anyone else only their own (another ``user`` -> 403). A malformed month -> 400. The ledger and
price settings are HybridSpawner's (``usage_ledger``); a hub with another spawner answers 404.
"""

from __future__ import annotations

import asyncio
import json
from datetime import datetime, timezone
from pathlib import Path

from hybrid_spawner.costs.arithmetic import Month, usage
from hybrid_spawner.costs.ledger import UsageLedger

API_PATH = "/api/hybrid/costs"
PAGE_PATH = "/hybrid/costs"
TEMPLATE = Path(__file__).resolve().parents[1] / "templates" / "costs.html"


def _ledger_path(settings) -> str | None:
    """HybridSpawner.usage_ledger as this hub configures it (None: not a HybridSpawner hub)."""
    cached = settings.get("hybrid_usage_ledger")
    if cached is None:
        cls = settings.get("spawner_class")
        probe = cls(config=settings["config"]) if isinstance(cls, type) else None
        cached = settings["hybrid_usage_ledger"] = getattr(probe, "usage_ledger", "") or ""
    return cached or None


async def read_usage(settings, month: Month, user: str | None) -> dict:
    path = _ledger_path(settings)
    if path is None:
        from tornado import web

        raise web.HTTPError(404, "cost figures need c.JupyterHub.spawner_class = 'hybrid'")
    now = datetime.now(timezone.utc)

    def read():
        return usage(UsageLedger(path).sessions(month.start, month.end, user), month, now)

    figures = (await asyncio.to_thread(read)).as_dict()
    figures["user"] = user
    return figures


def _make_handlers():
    from jupyterhub.apihandlers.base import APIHandler
    from jupyterhub.handlers.base import BaseHandler
    from tornado import web

    def parse_request(handler) -> tuple[Month, str | None]:
        caller = handler.current_user
        if caller is None:
            raise web.HTTPError(403, "authentication required")
        raw = handler.get_argument("month", None)
        try:
            month = Month.parse(raw) if raw is not None else Month.of(datetime.now(timezone.utc))
        except ValueError as e:
            raise web.HTTPError(400, str(e)) from None
        wanted = handler.get_argument("user", None)
        if handler.has_scope("admin:users"):
            return month, wanted  # None: everyone
        own = caller.name if getattr(caller, "kind", "user") == "user" else None
        if own is None or (wanted is not None and wanted != own):
            raise web.HTTPError(403, "you may read only your own cost figures")
        return month, own

    class CostsAPIHandler(APIHandler):
        async def get(self):
            month, user = parse_request(self)
            self.set_header("Content-Type", "application/json")
            self.finish(json.dumps(await read_usage(self.settings, month, user)))

    class CostsPageHandler(BaseHandler):
        @web.authenticated
        async def get(self):
            if not self.has_scope("admin:users"):
                raise web.HTTPError(403, "the cost page is for admins; your own figures are on the spawn page")
            month, user = parse_request(self)
            figures = await read_usage(self.settings, month, user)
            template = self.settings["jinja2_env"].from_string(TEMPLATE.read_text())
            html = await template.render_async(**self.template_namespace, figures=figures)
            self.finish(html)

    return [(API_PATH, CostsAPIHandler), (PAGE_PATH, CostsPageHandler)]


def register_cost_handlers() -> None:
    """Add the cost endpoints to JupyterHub's handler list (idempotent)."""
    from jupyterhub import handlers

    if any(h[0] == API_PATH for h in handlers.default_handlers):
        return
    handlers.default_handlers.extend(_make_handlers())
