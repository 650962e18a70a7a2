"""REST handlers of the single-user server for publishing (see docs/contracts.md).

    GET    /hybrid/publish          -> {"configured", "missing", "dashboards": [Dashboard]}
    POST   /hybrid/publish          {"path": "dir/nb.ipynb", "strip_hidden": bool?,
                                     "visibility": "public"|"unlisted"?, "new_link": bool?} -> Dashboard
    GET    /hybrid/publish/_slug?path=dir/nb.ipynb -> {"slug": ...} (the name it would get)
    DELETE /hybrid/publish/{slug}   -> 204
    GET    /hybrid/publish/{slug}/versions -> [{"version", "published", "title", "current"}]
    POST   /hybrid/publish/{slug}/versions {"rollback": N} -> Dashboard

Thin on purpose: the work is in :mod:`voila_publisher.publish.client`.
"""

from __future__ import annotations

import json

from jupyter_server.auth.decorator import authorized
from jupyter_server.base.handlers import APIHandler
from jupyter_server.utils import url_path_join
from tornado import web

from voila_publisher import notebooks
from voila_publisher.publish.client import DashboardPublisher, PublishError

AUTH_RESOURCE = "hybrid_publish"
SETTINGS_KEY = "hybrid_dashboard_publisher"


class BasePublishHandler(APIHandler):
    auth_resource = AUTH_RESOURCE

    @property
    def publisher(self) -> DashboardPublisher:
        return self.settings[SETTINGS_KEY]

    @property
    def root_dir(self) -> str:
        return getattr(self.contents_manager, "root_dir", None) or self.settings["server_root_dir"]

    def send_error_json(self, error: PublishError):
        self.set_status(error.status)
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps({"message": error.message, "reason": error.reason}))

    def write_error(self, status_code, **kwargs):
        # Unexpected failures: a message and a reason, never a traceback, in the answer.
        self.set_header("Content-Type", "application/json")
        exc = kwargs.get("exc_info", (None, None, None))[1]
        message = exc.log_message if isinstance(exc, web.HTTPError) and exc.log_message else self._reason
        self.finish(json.dumps({"message": message, "reason": "internal-error" if status_code >= 500 else "bad-request"}))


class PublishHandler(BasePublishHandler):
    @web.authenticated
    @authorized
    async def get(self):
        publisher = self.publisher
        dashboards = []
        if publisher.configured:
            try:
                dashboards = await publisher.list()
            except PublishError as e:
                return self.send_error_json(e)
        self.finish(json.dumps({"configured": publisher.configured, "missing": publisher.missing, "dashboards": dashboards}))

    @web.authenticated
    @authorized
    async def post(self):
        try:
            body = self.get_json_body() or {}
        except web.HTTPError:
            return self.send_error_json(PublishError(400, "invalid-request", "the request body must be JSON"))
        path = body.get("path") if isinstance(body, dict) else None
        strip_hidden = body.get("strip_hidden") if isinstance(body, dict) else None
        if not isinstance(path, str) or not path:
            return self.send_error_json(PublishError(400, "invalid-request", "give the notebook's path: {\"path\": \"dir/notebook.ipynb\"}"))
        if strip_hidden is not None and not isinstance(strip_hidden, bool):
            return self.send_error_json(PublishError(400, "invalid-request", "strip_hidden must be true or false"))
        visibility = body.get("visibility", "public")
        new_link = body.get("new_link", False)
        if visibility not in ("public", "unlisted"):
            return self.send_error_json(PublishError(400, "invalid-request", "visibility must be \"public\" or \"unlisted\""))
        if not isinstance(new_link, bool):
            return self.send_error_json(PublishError(400, "invalid-request", "new_link must be true or false"))
        try:
            dashboard = await self.publisher.publish(self.root_dir, path, strip_hidden, visibility=visibility, new_link=new_link)
        except PublishError as e:
            return self.send_error_json(e)
        self.finish(json.dumps(dashboard))


class SlugHandler(BasePublishHandler):
    """``GET /hybrid/publish/_slug?path=dir/nb.ipynb`` -> ``{"slug": ...}``: the dashboard name a
    notebook gets, so the Lab never computes it (one rule, :func:`notebooks.slug_from_path`).
    ``_slug`` can never be a dashboard name (names have no underscore)."""

    @web.authenticated
    @authorized
    async def get(self):
        path = self.get_query_argument("path", "")
        try:
            slug = notebooks.slug_from_path(path)
        except notebooks.InvalidName as e:
            return self.send_error_json(PublishError(400, "invalid-name", str(e)))
        self.finish(json.dumps({"slug": slug}))


class UnpublishHandler(BasePublishHandler):
    @web.authenticated
    @authorized
    async def delete(self, slug):
        try:
            await self.publisher.unpublish(slug)
        except PublishError as e:
            return self.send_error_json(e)
        self.set_status(204)
        self.finish()


class VersionsHandler(BasePublishHandler):
    """``GET /hybrid/publish/{slug}/versions`` -> ``[{"version", "published", "title", "current"}]``;
    ``POST`` ``{"rollback": N}`` -> Dashboard (version N's content, published again)."""

    @web.authenticated
    @authorized
    async def get(self, slug):
        try:
            self.finish(json.dumps(await self.publisher.versions(slug)))
        except PublishError as e:
            self.send_error_json(e)

    @web.authenticated
    @authorized
    async def post(self, slug):
        try:
            body = self.get_json_body() or {}
        except web.HTTPError:
            return self.send_error_json(PublishError(400, "invalid-request", "the request body must be JSON"))
        version = body.get("rollback") if isinstance(body, dict) else None
        try:
            self.finish(json.dumps(await self.publisher.rollback(slug, version)))
        except PublishError as e:
            self.send_error_json(e)


def setup_handlers(server_app) -> None:
    web_app = server_app.web_app
    web_app.settings[SETTINGS_KEY] = DashboardPublisher(parent=server_app, log=server_app.log)
    base_url = web_app.settings["base_url"]
    web_app.add_handlers(
        ".*$",
        [
            (url_path_join(base_url, "hybrid/publish"), PublishHandler),
            (url_path_join(base_url, "hybrid/publish/_slug"), SlugHandler),
            (url_path_join(base_url, r"hybrid/publish/([^/]+)"), UnpublishHandler),
            (url_path_join(base_url, r"hybrid/publish/([^/]+)/versions"), VersionsHandler),
        ],
    )
