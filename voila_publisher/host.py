"""The public host's publisher service: upload API, gallery and dashboard routing, in front of Voila.

Run it as ``voila-publisher`` (see ``--help-all``). It

* accepts ``PUT/DELETE /api/dashboards/{owner}/{slug}`` and ``GET /api/dashboards`` from the
  private networks (nginx enforces the networks, this service the per-user tokens);
* stores each publication as a new immutable version and swaps it in atomically
  (:mod:`voila_publisher.store`);
* answers ``GET /dashboards/{owner}/{slug}/`` with an nginx internal redirect
  (``X-Accel-Redirect``) to Voila's render URL of the *current version's* file, so the public
  URL stays the same while Voila only ever sees immutable, versioned paths;
* renders the public gallery at ``/``;
* starts Voila (sources stripped, tracebacks hidden, idle kernels culled, an execution
  timeout) as a child process with a scrubbed environment: kernels run published code, so they
  must not see the shared secret or anything else of this service.

It never talks to the research bucket and holds no cloud credentials.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from pathlib import Path

import jinja2
import tornado.httpserver
import tornado.web
from tornado.httputil import parse_body_arguments
from traitlets import Bool, Dict, Integer, List, Unicode, default
from traitlets.config import Application

from hybrid_spawner._version import __version__

from . import notebooks
from .store import DashboardStore, StoredDashboard
from .tokens import InvalidToken, token_owner

TEMPLATES = Path(__file__).parent / "templates"
# Where nginx's internal location for rendering lives; must match jupyter_config/nginx/.
INTERNAL_RENDER_PREFIX = "/_voila_render/"
# Environment variables a Voila kernel may inherit; everything else (the shared secret,
# whatever the service manager set) stays with this service.
KERNEL_ENV_ALLOWED = ("PATH", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "HOME", "TMPDIR", "PYTHONPATH", "VIRTUAL_ENV")


class ApiError(Exception):
    def __init__(self, status: int, reason: str, message: str):
        super().__init__(message)
        self.status = status
        self.reason = reason
        self.message = message


def dashboard_json(record: StoredDashboard, public_url: str) -> dict:
    """The contract's Dashboard object (docs/contracts.md)."""
    path = f"/dashboards/{record.owner}/{record.slug}/"
    return {
        "owner": record.owner,
        "slug": record.slug,
        "title": record.title,
        "url": (public_url.rstrip("/") + path) if public_url else path,
        "version": record.version,
        "published": record.published,
    }


def voila_argv(
    *,
    dashboards_dir: str,
    ip: str,
    port: int,
    base_url: str,
    execution_timeout: int,
    cull_idle_timeout: int,
    cull_interval: int,
    cull_connected: bool,
    extra_args: list[str] = (),
    python: str = sys.executable,
) -> list[str]:
    """The Voila command line for serving ``dashboards_dir``; pure, so it is unit-tested."""
    return [
        python, "-m", "voila", "--no-browser",
        f"--Voila.ip={ip}",
        f"--Voila.port={port}",
        f"--Voila.base_url={base_url}",
        "--Voila.open_browser=False",
        "--VoilaConfiguration.strip_sources=True",
        "--VoilaConfiguration.show_tracebacks=False",
        # Data files are for the kernel, not for download: Voila serves none of them.
        "--VoilaConfiguration.file_denylist=.*",
        f"--VoilaExecutor.timeout={execution_timeout}",
        f"--MappingKernelManager.cull_idle_timeout={cull_idle_timeout}",
        f"--MappingKernelManager.cull_interval={cull_interval}",
        f"--MappingKernelManager.cull_connected={cull_connected}",
        *extra_args,
        dashboards_dir,
    ]


def kernel_environment(source: dict, extra: dict) -> dict:
    env = {k: v for k, v in source.items() if k in KERNEL_ENV_ALLOWED or k.startswith("LC_")}
    env.update(extra)
    return env


class BaseHandler(tornado.web.RequestHandler):
    @property
    def log(self):
        return self.service.log

    @property
    def service(self) -> "PublisherService":
        return self.settings["publisher"]

    def write_error(self, status_code, **kwargs):
        exc = kwargs.get("exc_info", (None, None, None))[1]
        if isinstance(exc, ApiError):
            body = {"message": exc.message, "reason": exc.reason}
        elif isinstance(exc, tornado.web.HTTPError) and exc.log_message:
            body = {"message": exc.log_message % exc.args if exc.args else exc.log_message, "reason": "http-error"}
        else:
            body = {"message": self._reason, "reason": "internal-error" if status_code >= 500 else "http-error"}
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(body))

    def fail(self, status: int, reason: str, message: str):
        raise ApiError(status, reason, message)

    def send_error_json(self, exc: ApiError):
        self.set_status(exc.status)
        if exc.status == 401:
            self.set_header("WWW-Authenticate", 'Bearer realm="voila-publisher"')
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps({"message": exc.message, "reason": exc.reason}))


class ApiHandler(BaseHandler):
    def check_xsrf_cookie(self):
        # A bearer-token API: no cookies, so no cross-site request forgery to guard against.
        return

    def caller(self) -> str:
        """The owner the request's bearer token belongs to (401 if none is valid)."""
        header = self.request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            self.fail(401, "no-token", "a publish token is required (Authorization: Bearer <token>)")
        try:
            return token_owner(self.service.secret, token.strip())
        except InvalidToken:
            self.fail(401, "invalid-token", "the publish token is not valid for this host")

    def target(self, owner: str, slug: str) -> tuple[str, str]:
        """Check the owner and slug of the URL against the caller: 400 for bad names, 403 for others' dashboards."""
        caller = self.caller()
        try:
            notebooks.check_owner(owner)
            notebooks.check_slug(slug)
        except notebooks.InvalidName as e:
            self.fail(400, "invalid-name", str(e))
        if caller != owner:
            self.fail(403, "wrong-owner", f"this token publishes for {caller!r}, not for {owner!r}")
        return owner, slug

    async def _run(self, coro_fn, *args):
        try:
            await coro_fn(*args)
        except ApiError as e:
            self.send_error_json(e)


class DashboardListHandler(ApiHandler):
    async def get(self):
        await self._run(self._list)

    async def _list(self):
        self.caller()
        owner = self.get_query_argument("owner", None)
        if owner is not None:
            try:
                notebooks.check_owner(owner)
            except notebooks.InvalidName as e:
                self.fail(400, "invalid-name", str(e))
        records = await asyncio.to_thread(self.service.store.list, owner)
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps([dashboard_json(r, self.service.public_url) for r in records]))


class DashboardHandler(ApiHandler):
    async def get(self, owner, slug):
        await self._run(self._get, owner, slug)

    async def put(self, owner, slug):
        await self._run(self._put, owner, slug)

    async def delete(self, owner, slug):
        await self._run(self._delete, owner, slug)

    async def _get(self, owner, slug):
        self.caller()
        try:
            record = await asyncio.to_thread(self.service.store.get, owner, slug)
        except notebooks.InvalidName as e:
            self.fail(400, "invalid-name", str(e))
        if record is None:
            self.fail(404, "not-found", f"no dashboard {owner}/{slug}")
        self.finish(dashboard_json(record, self.service.public_url))

    async def _delete(self, owner, slug):
        owner, slug = self.target(owner, slug)
        removed = await asyncio.to_thread(self.service.store.unpublish, owner, slug)
        if not removed:
            self.fail(404, "not-found", f"no dashboard {owner}/{slug} to unpublish")
        self.log.info("unpublished %s/%s", owner, slug)
        self.set_status(204)
        self.finish()

    async def _put(self, owner, slug):
        owner, slug = self.target(owner, slug)
        notebook_bytes, files = self._upload()
        service = self.service
        if len(notebook_bytes) > service.max_notebook_size:
            self.fail(413, "too-large", f"the notebook is {len(notebook_bytes)} bytes; this host accepts at most {service.max_notebook_size}")
        if len(files) > service.max_data_files:
            self.fail(413, "too-many-files", f"{len(files)} data files; this host accepts at most {service.max_data_files}")
        data_bytes = sum(len(v) for v in files.values())
        if data_bytes > service.max_data_size:
            self.fail(413, "too-large", f"the data files total {data_bytes} bytes; this host accepts at most {service.max_data_size}")
        nb, title = await asyncio.to_thread(self._validate, notebook_bytes, files, slug)
        record = await asyncio.to_thread(service.store.publish, owner, slug, notebook_bytes, title, files)
        self.log.info("published %s/%s version %d (%d data files)", owner, slug, record.version, len(files))
        self.set_status(201 if record.version == 1 else 200)
        self.finish(dashboard_json(record, service.public_url))

    def _upload(self) -> tuple[bytes, dict[str, bytes]]:
        """The notebook and data files of the request body (JSON notebook, or multipart)."""
        content_type = self.request.headers.get("Content-Type", "")
        if not content_type.startswith("multipart/form-data"):
            return self.request.body, {}
        arguments, parts = {}, {}
        parse_body_arguments(content_type, self.request.body, arguments, parts)
        notebook_parts = parts.get("notebook", [])
        if len(notebook_parts) != 1:
            self.fail(400, "invalid-upload", "a multipart upload needs exactly one part named 'notebook'")
        files = {}
        for part in parts.get("files", []):
            try:
                name = notebooks.check_data_file_name(part["filename"])
            except notebooks.InvalidName as e:
                self.fail(400, "invalid-name", str(e))
            files[name] = part["body"]
        return notebook_parts[0]["body"], files

    def _validate(self, notebook_bytes: bytes, files: dict, slug: str):
        try:
            nb = notebooks.parse_notebook(notebook_bytes)
            declared = set(notebooks.declared_data_files(nb))
        except (notebooks.InvalidNotebook, notebooks.InvalidName) as e:
            raise ApiError(400, "invalid-notebook", str(e)) from None
        undeclared = sorted(set(files) - declared)
        if undeclared:
            raise ApiError(400, "undeclared-file", f"data files not declared in metadata.voila_publisher.data_files: {', '.join(undeclared)}")
        if f"{slug}.ipynb" in files:
            raise ApiError(400, "invalid-name", f"a data file may not be called {slug}.ipynb")
        return nb, notebooks.notebook_title(nb, slug)


class RenderRouteHandler(BaseHandler):
    """``/dashboards/{owner}/{slug}/``: tell nginx which immutable version to render."""

    async def get(self, owner, slug):
        try:
            record = await asyncio.to_thread(self.service.store.get, owner, slug)
        except notebooks.InvalidName:
            record = None
        if record is None:
            self.set_status(404)
            self.finish(self.service.render_template("not_found.html", owner=owner, slug=slug))
            return
        # Never let a browser or a cache keep the mapping: a republish must show at once.
        self.set_header("Cache-Control", "no-store")
        self.set_header("X-Accel-Redirect", INTERNAL_RENDER_PREFIX + record.notebook)
        self.set_header("X-Dashboard-Version", str(record.version))
        self.finish()


class GalleryHandler(BaseHandler):
    async def get(self):
        records = await asyncio.to_thread(self.service.store.list, None)
        dashboards = [dashboard_json(r, "") for r in records]
        self.set_header("Cache-Control", "no-cache")
        self.finish(self.service.render_template("gallery.html", dashboards=dashboards, title=self.service.gallery_title))


class HealthHandler(BaseHandler):
    async def get(self):
        voila_ok = await self.service.voila_serving()
        self.set_status(200 if voila_ok else 503)
        self.finish({"publisher": "ok", "voila": "ok" if voila_ok else "down", "version": __version__})


class PublisherService(Application):
    name = "voila-publisher"
    description = "Publisher service of the public Voila host: upload API, gallery, dashboard routing."
    version = __version__

    config_file = Unicode("", config=True, help="A Python config file (c.PublisherService.* = ...) to load at start.")

    ip = Unicode("127.0.0.1", config=True, help="Address the service listens on. Keep it on loopback: nginx is the only client.")
    port = Integer(8870, config=True, help="Port the service listens on (nginx's upstream 'voila_publisher').")
    dashboards_dir = Unicode(
        "/var/lib/voila-publisher/dashboards", config=True,
        help="Directory holding the published dashboards (one subdirectory per owner); Voila serves it. "
        "Give the service write access and Voila's user read access only.",
    )
    versions_kept = Integer(3, config=True, help="How many versions of each dashboard to keep on disk, the current one included (at least 1).")
    shared_secret = Unicode(
        "", config=True,
        help="Secret shared with the hub, from which per-user publish tokens are derived "
        "(voila_publisher.tokens). Prefer shared_secret_file or the HYBRID_PUBLISHER_SECRET environment variable.",
    )
    shared_secret_file = Unicode("", config=True, help="File holding the shared secret (mode 0600, owned by this service's user).")
    public_url = Unicode(
        "", config=True,
        help="Public base URL viewers use (https://dashboards.example.org); dashboard URLs in API answers start with it. "
        "Empty: answers carry paths only.",
    )
    gallery_title = Unicode("Published dashboards", config=True, help="Heading of the public gallery page.")
    max_notebook_size = Integer(10 * 1024 * 1024, config=True, help="Largest notebook accepted, in bytes (413 above). Keep nginx's client_max_body_size above max_notebook_size + max_data_size.")
    max_data_size = Integer(20 * 1024 * 1024, config=True, help="Largest total size of a dashboard's declared data files, in bytes (413 above).")
    max_data_files = Integer(20, config=True, help="Most data files one dashboard may carry.")

    start_voila = Bool(True, config=True, help="Start and watch Voila as a child process. Turn off to run Voila under its own service manager unit (then use voila_argv's options).")
    voila_ip = Unicode("127.0.0.1", config=True, help="Address Voila listens on (nginx's upstream 'voila').")
    voila_port = Integer(8866, config=True, help="Port Voila listens on.")
    voila_base_url = Unicode("/dashboards/_voila/", config=True, help="Voila's base URL; nginx proxies this prefix (static files, kernel WebSockets) to Voila. Must match the nginx config.")
    execution_timeout = Integer(60, config=True, help="Seconds a cell of a published notebook may run while the dashboard renders (VoilaExecutor.timeout).")
    cull_idle_timeout = Integer(600, config=True, help="Seconds after which an idle dashboard kernel is shut down (MappingKernelManager.cull_idle_timeout).")
    cull_interval = Integer(60, config=True, help="How often, in seconds, Voila looks for idle kernels.")
    cull_connected = Bool(False, config=True, help="Also cull idle kernels that still have a browser connected (saves memory, breaks widgets of long-open pages).")
    voila_extra_args = List(Unicode(), config=True, help="More command line arguments for Voila, e.g. ['--theme=dark'].")
    voila_env = Dict(config=True, help="Extra environment variables for Voila and its kernels. Never put secrets here: published code can read them.")
    voila_user = Unicode("", config=True, help="Unix user to run Voila (and so the published code) as; recommended in production, needs root to start.")

    classes = []
    aliases = {
        "ip": "PublisherService.ip",
        "port": "PublisherService.port",
        "dashboards-dir": "PublisherService.dashboards_dir",
        "voila-port": "PublisherService.voila_port",
        "public-url": "PublisherService.public_url",
        "config": "PublisherService.config_file",
    }

    @default("log_level")
    def _log_level_default(self):
        return "INFO"

    @default("shared_secret")
    def _secret_default(self):
        return os.environ.get("HYBRID_PUBLISHER_SECRET", "")

    @property
    def secret(self) -> str:
        return self._secret

    def initialize(self, argv=None):
        super().initialize(argv)
        if self.config_file:
            self.load_config_file(self.config_file)
        self._secret = self.shared_secret
        if self.shared_secret_file:
            self._secret = Path(self.shared_secret_file).read_text().strip()
        if len(self._secret.encode()) < 16:
            self.log.critical("no shared secret (>= 16 bytes): set PublisherService.shared_secret_file or HYBRID_PUBLISHER_SECRET")
            self.exit(2)
        self.store = DashboardStore(self.dashboards_dir, self.versions_kept)
        self.jinja = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=True)
        self.voila_process: asyncio.subprocess.Process | None = None

    def render_template(self, name: str, **context) -> str:
        return self.jinja.get_template(name).render(**context)

    def make_app(self) -> tornado.web.Application:
        part = r"([^/]+)"
        return tornado.web.Application(
            [
                (r"/", GalleryHandler),
                (r"/healthz", HealthHandler),
                (r"/api/dashboards/?", DashboardListHandler),
                (rf"/api/dashboards/{part}/{part}/?", DashboardHandler),
                (rf"/dashboards/{part}/{part}/", RenderRouteHandler),
            ],
            publisher=self,
            log_function=self._log_request,
        )

    def _log_request(self, handler):
        # Tornado's default logs the URI, never headers: tokens stay out of the log.
        self.log.info("%d %s %s %.1fms", handler.get_status(), handler.request.method, handler.request.uri, 1000 * handler.request.request_time())

    async def voila_serving(self) -> bool:
        try:
            _, writer = await asyncio.wait_for(asyncio.open_connection(self.voila_ip, self.voila_port), 1.0)
        except (OSError, asyncio.TimeoutError):
            return False
        writer.close()
        return True

    async def _start_voila(self):
        argv = voila_argv(
            dashboards_dir=str(Path(self.dashboards_dir).resolve()),
            ip=self.voila_ip, port=self.voila_port, base_url=self.voila_base_url,
            execution_timeout=self.execution_timeout, cull_idle_timeout=self.cull_idle_timeout,
            cull_interval=self.cull_interval, cull_connected=self.cull_connected,
            extra_args=list(self.voila_extra_args),
        )
        kwargs = {"user": self.voila_user} if self.voila_user else {}
        self.voila_process = await asyncio.create_subprocess_exec(
            *argv, env=kernel_environment(os.environ, self.voila_env), cwd=self.dashboards_dir, **kwargs
        )
        self.log.info("started Voila (pid %d) on %s:%d serving %s", self.voila_process.pid, self.voila_ip, self.voila_port, self.dashboards_dir)

    async def _watch_voila(self, stopping: asyncio.Event):
        code = await self.voila_process.wait()
        if not stopping.is_set():
            self.voila_died = True
            self.log.critical("Voila exited with %s; stopping so the service manager restarts both", code)
            stopping.set()

    async def serve(self):
        stopping = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stopping.set)
        server = tornado.httpserver.HTTPServer(
            self.make_app(), max_body_size=self.max_notebook_size + self.max_data_size + 1024 * 1024, xheaders=True
        )
        server.listen(self.port, self.ip)
        self.log.info("voila-publisher %s on http://%s:%d, dashboards in %s", __version__, self.ip, self.port, self.dashboards_dir)
        watcher = None
        if self.start_voila:
            await self._start_voila()
            watcher = asyncio.ensure_future(self._watch_voila(stopping))
        await stopping.wait()
        server.stop()
        if self.voila_process and self.voila_process.returncode is None:
            self.voila_process.terminate()
            try:
                await asyncio.wait_for(self.voila_process.wait(), 10)
            except asyncio.TimeoutError:
                self.voila_process.kill()
        if watcher:
            watcher.cancel()

    def start(self):
        self.voila_died = False
        asyncio.run(self.serve())
        if self.voila_died:
            self.exit(1)


def main(argv=None):
    app = PublisherService.instance()
    app.initialize(argv)
    app.start()


if __name__ == "__main__":
    main()
