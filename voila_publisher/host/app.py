"""The public host's publisher service: upload API, gallery and dashboard routing, in front of Voila.

Run it as ``voila-publisher`` (see ``--help-all``); its HTTP handlers are in
:mod:`voila_publisher.host.handlers`, Voila's command line in :mod:`voila_publisher.host.voila_command`. It

* accepts ``PUT/DELETE /api/dashboards/{owner}/{slug}`` and ``GET /api/dashboards`` from the
  private networks (nginx enforces the networks, this service the per-user tokens);
* stores each publication as a new immutable version and swaps it in atomically
  (:mod:`voila_publisher.host.store`);
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
import secrets
import shutil
import signal
import tempfile
from pathlib import Path

import jinja2
import tornado.httpserver
import tornado.ioloop
import tornado.web
from tornado.httpclient import AsyncHTTPClient, HTTPRequest
from traitlets import Bool, Dict, Integer, List, Unicode, default
from traitlets.config import Application

from hybrid_spawner._version import __version__

from voila_publisher.host.context import HostContext, UploadLimits
from voila_publisher.host.handlers import make_app
from voila_publisher.host.store import DashboardStore
from voila_publisher.host.voila_command import kernel_environment, voila_argv

TEMPLATES = Path(__file__).parent / "templates"


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
    prune_grace = Integer(
        300, config=True,
        help="Seconds a replaced version stays on disk even beyond versions_kept, so that viewers routed to it "
        "just before a republish still get its page and data files.",
    )
    max_notebook_size = Integer(
        10 * 1024 * 1024, config=True,
        help="Largest notebook accepted, in bytes (413 with a JSON message above). The service reads bodies up to "
        "max_notebook_size + max_data_size + 4 MiB; set nginx's client_max_body_size between that sum and it.",
    )
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
    preheat_kernels = Bool(
        False, config=True,
        help="Keep kernels that have already run the current version of every dashboard, so a viewer's first page "
        "comes at once. Safe with republishing (each version has its own path, see voila_publisher.host.voila_app), "
        "but costs one idle kernel (tens of MB) per published dashboard, and the page shows the output computed "
        "when the kernel was pre-heated, not at the viewer's request.",
    )
    runtime_dir = Unicode(
        "", config=True,
        help="Private directory for runtime files (the token Voila's pool endpoint checks). Default: a new temporary directory.",
    )
    preheat_wait = Integer(
        30, config=True,
        help="With preheat_kernels, how long a publish request waits for the new version's kernel to finish "
        "pre-rendering before answering (the answer comes anyway after this many seconds).",
    )
    preheat_pool_size = Integer(1, config=True, help="Pre-heated kernels per dashboard when preheat_kernels is on.")
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
            self.update_config(self.cli_config)  # the command line wins over the file
        self._secret = self.shared_secret
        if self.shared_secret_file:
            self._secret = Path(self.shared_secret_file).read_text().strip()
        if len(self._secret.encode()) < 16:
            self.log.critical("no shared secret (>= 16 bytes): set PublisherService.shared_secret_file or HYBRID_PUBLISHER_SECRET")
            self.exit(2)
        self.store = DashboardStore(self.dashboards_dir, self.versions_kept, self.prune_grace)
        self.jinja = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=True)
        self.voila_process: asyncio.subprocess.Process | None = None
        self._pools_lock = asyncio.Lock()
        self._control_token = ""

    def render_template(self, name: str, **context) -> str:
        return self.jinja.get_template(name).render(**context)

    def host_context(self) -> HostContext:
        """What the HTTP handlers may use (see voila_publisher.host.context)."""
        return HostContext(
            store=self.store,
            secret=self._secret,
            public_url=self.public_url,
            gallery_title=self.gallery_title,
            limits=UploadLimits(self.max_notebook_size, self.max_data_size, self.max_data_files),
            log=self.log,
            render=self.render_template,
            after_publish=self._after_publish,
            after_unpublish=self.pools_changed,
            voila_serving=self.voila_serving,
        )

    async def _after_publish(self) -> None:
        if self.preheating:
            # Answer once the new version is pre-rendered, so the URL handed back opens at once.
            await self.sync_pools(wait=self.preheat_wait)

    def make_app(self) -> tornado.web.Application:
        return make_app(self.host_context(), log_function=self._log_request)

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
            preheat_pool_size=self.preheat_pool_size if self.preheat_kernels else 0,
            control_token_file=self._write_control_token() if self.preheat_kernels else "",
            extra_args=list(self.voila_extra_args),
        )
        kwargs = {"user": self.voila_user} if self.voila_user else {}
        self.voila_process = await asyncio.create_subprocess_exec(
            *argv, env=kernel_environment(os.environ, self.voila_env), cwd=self.dashboards_dir, **kwargs
        )
        self.log.info("started Voila (pid %d) on %s:%d serving %s", self.voila_process.pid, self.voila_ip, self.voila_port, self.dashboards_dir)

    def _prune_in_background(self):
        async def prune():
            removed = await asyncio.to_thread(self.store.prune)
            if removed:
                self.log.info("removed %d replaced dashboard versions", removed)

        asyncio.ensure_future(prune())

    def _write_control_token(self) -> str:
        self._control_token = secrets.token_urlsafe(32)
        directory = self.runtime_dir or tempfile.mkdtemp(prefix="voila-publisher-")
        os.makedirs(directory, mode=0o700, exist_ok=True)
        path = os.path.join(directory, "control_token")
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(self._control_token)
        if self.voila_user:
            shutil.chown(directory, self.voila_user)
            shutil.chown(path, self.voila_user)
        return path

    @property
    def preheating(self) -> bool:
        return self.preheat_kernels and self.start_voila

    def pools_changed(self) -> None:
        """After an unpublish: tell Voila which versions to keep pre-heated (in the background)."""
        if self.preheating:
            asyncio.ensure_future(self.sync_pools())

    async def sync_pools(self, wait: float = 0) -> None:
        # One sync at a time; each sends the whole current list, so the last one wins.
        async with self._pools_lock:
            wanted = [r.notebook for r in await asyncio.to_thread(self.store.list, None)]
            url = f"http://{self.voila_ip}:{self.voila_port}{self.voila_base_url}_publisher/pools?wait={wait}"
            request = HTTPRequest(url, method="PUT", body=json.dumps(wanted), request_timeout=30 + wait,
                                  headers={"Authorization": f"Bearer {self._control_token}"})
            try:
                await AsyncHTTPClient().fetch(request)
            except Exception as e:  # dashboards still render, only without a pre-heated kernel
                self.log.warning("could not update Voila's kernel pools: %s", e)

    async def _preheat_when_voila_serves(self):
        for _ in range(600):
            if await self.voila_serving():
                await self.sync_pools()
                return
            await asyncio.sleep(0.1)

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
            self.make_app(), max_body_size=self.max_notebook_size + self.max_data_size + 4 * 1024 * 1024, xheaders=True
        )
        server.listen(self.port, self.ip)
        pruner = tornado.ioloop.PeriodicCallback(self._prune_in_background, 60_000)
        pruner.start()
        self.log.info("voila-publisher %s on http://%s:%d, dashboards in %s", __version__, self.ip, self.port, self.dashboards_dir)
        watcher = None
        if self.start_voila:
            await self._start_voila()
            watcher = asyncio.ensure_future(self._watch_voila(stopping))
            if self.preheat_kernels:
                asyncio.ensure_future(self._preheat_when_voila_serves())
        await stopping.wait()
        server.stop()
        pruner.stop()
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
