"""REST API of notebook sync (see docs/contracts.md): thin tornado handlers over SyncService.

    GET  /hybrid/sync            configuration state, current and last sync
    POST /hybrid/sync            start a sync (or join the running one) -> 202 Job
    GET  /hybrid/sync/{id}       a sync's progress
    POST /hybrid/restore         start a restore -> 202 Job
    GET  /hybrid/restore/{id}    a restore's progress
    GET  /hybrid/home            the server's home: kind, fill level, files not yet synced
    POST /hybrid/stop            ask the hub to stop this server (with this server's hub token)

Authenticated, authorized (resource "hybrid_sync") and XSRF-checked like every Jupyter API;
errors are JSON ``{"message", "reason"}``.
"""

from __future__ import annotations

import json

from jupyter_server.auth.decorator import authorized
from jupyter_server.base.handlers import APIHandler
from jupyter_server.utils import url_path_join
from tornado import web

from voila_publisher.paths import PathOutsideRoot
from voila_publisher.sync.config import BucketSync
from voila_publisher.sync.service import Busy, NotConfigured, SyncService

AUTH_RESOURCE = "hybrid_sync"


class SyncBaseHandler(APIHandler):
    auth_resource = AUTH_RESOURCE

    @property
    def service(self) -> SyncService:
        return self.settings["hybrid_sync_service"]

    def read_options(self, *flags: str) -> tuple[list[str] | None, dict[str, bool]]:
        """The request body's ``paths`` and boolean ``flags`` (default false), validated."""
        raw = self.request.body or b"{}"
        try:
            body = json.loads(raw)
        except ValueError:
            raise web.HTTPError(400, "the request body must be JSON", reason="bad-request") from None
        if not isinstance(body, dict):
            raise web.HTTPError(400, "the request body must be a JSON object", reason="bad-request")
        paths = body.get("paths")
        if paths is not None and (not isinstance(paths, list) or not all(isinstance(p, str) for p in paths)):
            raise web.HTTPError(400, '"paths" must be a list of paths relative to the notebook root', reason="bad-request")
        values = {}
        for flag in flags:
            values[flag] = body.get(flag, False)
            if not isinstance(values[flag], bool):
                raise web.HTTPError(400, f'"{flag}" must be true or false', reason="bad-request")
        return paths, values

    def start(self, kind: str, paths, **options) -> None:
        try:
            job = self.service.start(kind, paths, **options)
        except PathOutsideRoot as e:
            raise web.HTTPError(400, str(e), reason="path-outside-root") from None
        except NotConfigured as e:
            raise web.HTTPError(409, str(e), reason="not-configured") from None
        except Busy as e:
            raise web.HTTPError(409, str(e), reason="busy") from None
        self.set_status(202)
        self.finish(json.dumps(job.to_json()))

    def write_job(self, kind: str, job_id: str) -> None:
        job = self.service.get(kind, job_id)
        if job is None:
            raise web.HTTPError(404, f"no {kind} job {job_id!r} (finished jobs are kept until the server restarts)", reason="not-found")
        self.finish(json.dumps(job.to_json()))


class SyncHandler(SyncBaseHandler):
    @web.authenticated
    @authorized
    def get(self):
        self.finish(json.dumps(self.service.status()))

    @web.authenticated
    @authorized
    def post(self):
        paths, options = self.read_options("delete")
        self.start("sync", paths, **options)


class SyncJobHandler(SyncBaseHandler):
    @web.authenticated
    @authorized
    def get(self, job_id):
        self.write_job("sync", job_id)


class RestoreHandler(SyncBaseHandler):
    @web.authenticated
    @authorized
    def post(self):
        paths, options = self.read_options("overwrite", "keep_conflict_copies")
        self.start("restore", paths, **options)


class RestoreJobHandler(SyncBaseHandler):
    @web.authenticated
    @authorized
    def get(self, job_id):
        self.write_job("restore", job_id)


class HomeHandler(SyncBaseHandler):
    """GET /hybrid/home: the kind of home, its fill level and the files the bucket lacks."""

    @web.authenticated
    @authorized
    async def get(self):
        self.finish(json.dumps(await self.service.home()))


class StopHandler(SyncBaseHandler):
    """POST /hybrid/stop: ask the hub to stop this server (Lab's "Stop My Server…")."""

    @web.authenticated
    @authorized
    async def post(self):
        from voila_publisher.sync.stop import StopRefused, stop_own_server

        try:
            status = await stop_own_server()
        except StopRefused as e:
            raise web.HTTPError(409, str(e), reason="stop-refused") from None
        self.set_status(202)
        self.finish(json.dumps({"stopping": True, "hub_status": status}))


def _install_final_sync(server_app, service: SyncService) -> None:
    """Run the final sync in the server's shutdown sequence, before kernels and the loop stop.

    Only ExtensionApp subclasses get a stop hook from jupyter-server; this module extension
    wraps the server's extension cleanup step instead.
    """
    original = server_app.cleanup_extensions

    async def cleanup_extensions():
        try:
            await service.final_sync()
        except Exception:
            server_app.log.exception("hybrid sync: final sync failed")
        await original()

    server_app.cleanup_extensions = cleanup_extensions


def setup_handlers(server_app) -> None:
    config = BucketSync(parent=server_app)
    root = server_app.root_dir
    service = SyncService(config, root, log=server_app.log)
    web_app = server_app.web_app
    web_app.settings["hybrid_sync_service"] = service
    base = url_path_join(web_app.settings["base_url"], "hybrid")
    job_id = r"(?P<job_id>[0-9a-f]{1,64})"
    web_app.add_handlers(
        ".*$",
        [
            (url_path_join(base, "sync"), SyncHandler),
            (url_path_join(base, "sync", job_id), SyncJobHandler),
            (url_path_join(base, "restore"), RestoreHandler),
            (url_path_join(base, "restore", job_id), RestoreJobHandler),
            (url_path_join(base, "home"), HomeHandler),
            (url_path_join(base, "stop"), StopHandler),
        ],
    )
    _install_final_sync(server_app, service)
    server_app.io_loop.add_callback(service.start_periodic)
    missing = config.missing()
    if missing:
        server_app.log.info("hybrid sync: disabled: %s", missing)
    else:
        server_app.log.info("hybrid sync: to s3://%s/%s", config.bucket, service.prefix)
