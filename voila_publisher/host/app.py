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
* runs Voila (sources stripped, tracebacks hidden, idle kernels culled, an execution
  timeout) with every kernel in a sandbox of its own (:mod:`voila_publisher.host.sandbox`):
  kernels run published code, so they must not see the shared secret, the store or anything
  else of this host. In production Voila is a service of its own under another account
  (``--print-voila-command`` gives its command line); ``start_voila`` starts it as a child
  for development and the demo.

It refuses to run as root.

It never talks to the research bucket and holds no cloud credentials.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import secrets
import shlex
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
from voila_publisher.host.egress import parse_allowed
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
    static_pages = Bool(
        True, config=True,
        help="Render each new version once, in the sandbox, at publish time; if its page needs no live kernel (no "
        "widgets, no failed cell) nginx serves that page to every viewer with no kernel per visit "
        "(voila_publisher.host.prerender). Dashboards with widgets are always served live by Voila.",
    )
    static_dir = Unicode(
        "", config=True,
        help="Directory of the static pages (nginx reads it: give its user read access to this one only). "
        "Default: 'static' beside dashboards_dir.",
    )
    prerender_timeout = Integer(120, config=True, help="Seconds a whole dashboard may run when rendered into a static page.")
    prerender_wait = Integer(
        15, config=True,
        help="How long a publish request waits for the static page before answering; the page is still made "
        "after that (up to prerender_timeout) and viewers get the live page until it is there. Keep it well "
        "below the notebook servers' DashboardPublisher.request_timeout (60 s).",
    )
    versions_kept = Integer(3, config=True, help="How many versions of each dashboard to keep on disk, the current one included (at least 1).")
    shared_secret = Unicode(
        "", config=True,
        help="Secret shared with the hub, from which per-user publish tokens are derived "
        "(voila_publisher.tokens). Prefer shared_secret_file or the HYBRID_PUBLISHER_SECRET environment variable.",
    )
    shared_secret_file = Unicode("", config=True, help="File holding the shared secret (mode 0600, owned by this service's user).")
    previous_secret_files = List(
        Unicode(), config=True,
        help="Files holding earlier shared secrets whose tokens are still accepted, for a rotation that breaks no "
        "running server: servers started before the hub got the new secret keep publishing with their old "
        "token. Remove a file once no server from before its rotation runs (docs/operations.md).",
    )
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

    start_voila = Bool(True, config=True, help="Start and watch Voila as a child process, under this service's account (development, the demo). "
        "In production turn it off and run Voila as a unit of its own under another account, with the command "
        "line --print-voila-command gives.")
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
    voila_env = Dict(config=True, help="Extra environment variables for Voila (its kernels get none of them, see kernel_*). Never put secrets here.")
    control_token_file = Unicode(
        "", config=True,
        help="With preheat_kernels and Voila run as its own service: a file holding the token for Voila's pool "
        "endpoint, readable by both accounts (e.g. owned by this service's user, group of Voila's, mode 0640). "
        "Empty: a new token in runtime_dir.",
    )

    # The sandbox of every dashboard kernel (voila_publisher.host.sandbox).
    kernel_memory_limit = Integer(2 * 1024**3, config=True, help="Address space of a dashboard kernel, in bytes; larger allocations fail with MemoryError.")
    kernel_cpu_limit = Integer(600, config=True, help="CPU seconds a dashboard kernel may use over its life; a runaway loop is killed after this.")
    kernel_lifetime = Integer(3600, config=True, help="Longest life of a dashboard kernel, in seconds (a viewer's page then needs a reload).")
    kernel_max_processes = Integer(64, config=True, help="Processes and threads a dashboard kernel may have (stops fork bombs).")
    kernel_tmp_size = Integer(64 * 1024**2, config=True, help="Size of each kernel's private /tmp, in bytes.")
    kernel_network = Bool(
        False, config=True,
        help="Let dashboard kernels use the host's network (off: they reach no host at all, not even loopback). "
        "Turn on only behind a firewall that limits what they may reach; see docs/publish.md.",
    )
    max_live_kernels = Integer(
        40, config=True,
        help="Most kernels running at once for viewers of live dashboards (widgets); more viewers get a 503 'busy' "
        "page instead of exhausting memory (each kernel may use up to kernel_memory_limit). 0: no limit.",
    )
    kernel_allowed_hosts = List(
        Unicode(), config=True,
        help="Hosts dashboard kernels may fetch public data from, over HTTPS only, through a proxy that allows "
        "nothing else: 'data.example.org', '*.example.org' (subdomains), 'host:8443'. A listed name never "
        "leads to a private, loopback or metadata address. Empty (default): kernels have no network.",
    )
    allow_root = Bool(False, config=True, help="Start even as root. Never in production: run this service as its own unprivileged user (docs/publish.md).")
    print_voila_command = Bool(
        False, config=True,
        help="Print the Voila command line this configuration means and exit: the ExecStart of a Voila unit of its own "
        "(start_voila=False), so Voila runs as an account that is not this service's.",
    )
    exec_voila = Bool(
        False, config=True,
        help="Become Voila, with the command line this configuration means, instead of starting the service: the "
        "ExecStart of Voila's own unit (jupyter_config/systemd/voila-dashboards.service), run as Voila's account, "
        "so the unit never holds a copy of the command line that could drift from this configuration. Needs "
        "control_token_file when static_pages or preheat_kernels is on (both processes read that token).",
    )

    classes = []
    aliases = {
        "ip": "PublisherService.ip",
        "port": "PublisherService.port",
        "dashboards-dir": "PublisherService.dashboards_dir",
        "voila-port": "PublisherService.voila_port",
        "public-url": "PublisherService.public_url",
        "config": "PublisherService.config_file",
    }
    flags = {
        "print-voila-command": ({"PublisherService": {"print_voila_command": True}}, "Print Voila's command line and exit."),
        "exec-voila": ({"PublisherService": {"exec_voila": True}}, "Run Voila (as this process) with the command line of this configuration."),
        "allow-root": ({"PublisherService": {"allow_root": True}}, "Start even as root (development only)."),
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
            # traitlets skips a config file it cannot find: the service would then run on defaults.
            if not os.access(self.config_file, os.R_OK):
                self.log.critical("cannot read the config file %s (missing, or not readable by this account)", self.config_file)
                self.exit(2)
            self.load_config_file(self.config_file)
            self.update_config(self.cli_config)  # the command line wins over the file
        try:
            parse_allowed(self.kernel_allowed_hosts)
        except ValueError as e:
            self.log.critical("%s", e)
            self.exit(2)
        if self.print_voila_command:
            print(" ".join(shlex.quote(a) for a in self.voila_command()))
            self.exit(0)
        if self.exec_voila:
            self._exec_voila()
        if os.geteuid() == 0 and not self.allow_root:
            self.log.critical(
                "refusing to run as root: published notebooks run on this host. Run voila-publisher as its own "
                "unprivileged user and Voila as another (docs/publish.md), or pass --allow-root for development."
            )
            self.exit(2)
        # New versions are group-readable (Voila's account reads them) and nobody else's.
        os.umask(0o027)
        self._secret = self.shared_secret
        if self.shared_secret_file:
            self._secret = Path(self.shared_secret_file).read_text().strip()
        if len(self._secret.encode()) < 16:
            self.log.critical("no shared secret (>= 16 bytes): set PublisherService.shared_secret_file or HYBRID_PUBLISHER_SECRET")
            self.exit(2)
        self._previous_secrets = []
        for path in self.previous_secret_files:
            try:
                previous = Path(path).read_text().strip()
            except OSError as e:
                self.log.critical("PublisherService.previous_secret_files: cannot read %s (%s)", path, e.strerror or e)
                self.exit(2)
            if len(previous.encode()) < 16:
                self.log.critical("PublisherService.previous_secret_files: %s holds no secret of at least 16 bytes", path)
                self.exit(2)
            self._previous_secrets.append(previous)
        self.store = DashboardStore(self.dashboards_dir, self.versions_kept, self.prune_grace, static_root=self.static_pages_dir)
        self.jinja = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=True)
        self.voila_process: asyncio.subprocess.Process | None = None
        self._pools_lock = asyncio.Lock()
        self._background: set[asyncio.Future] = set()  # static pages still rendering
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
            previous_secrets=tuple(self._previous_secrets),
        )

    @property
    def static_pages_dir(self) -> str:
        if not self.static_pages:
            return ""
        return self.static_dir or str(Path(self.dashboards_dir).resolve().parent / "static")

    @property
    def uses_control_token(self) -> bool:
        return self.static_pages or self.preheat_kernels

    async def _after_publish(self, record) -> None:
        if self.static_pages:
            # In the background: a slow notebook must not hold the researcher's Publish button.
            # asyncio.wait, not wait_for: the answer goes out, the rendering goes on.
            rendering = asyncio.ensure_future(self.render_static_page(record))
            self._background.add(rendering)
            rendering.add_done_callback(self._background.discard)
            await asyncio.wait([rendering], timeout=self.prerender_wait)
        if self.preheating:
            # Answer once the new version is pre-rendered, so the URL handed back opens at once.
            await self.sync_pools(wait=self.preheat_wait)

    async def render_static_page(self, record) -> None:
        """Ask Voila to run the new version once in the sandbox; keep the page if it needs no kernel."""
        url = f"http://{self.voila_ip}:{self.voila_port}{self.voila_base_url}_publisher/prerender"
        body = json.dumps({"notebook": record.notebook, "title": record.title})
        request = HTTPRequest(url, method="POST", body=body, request_timeout=self.prerender_timeout + 30,
                              headers={"Authorization": f"Bearer {self._control_token}", "Content-Type": "application/json"})
        try:
            answer = json.loads((await AsyncHTTPClient().fetch(request)).body)
        except Exception as e:  # viewers get the live page, as without static pages
            self.log.warning("no static page for %s/%s version %d: %s", record.owner, record.slug, record.version, e)
            return
        await self._keep_thumbnail(record, answer.get("thumbnail") or "")
        if answer.get("html") is None:
            self.log.info("%s/%s version %d stays live: %s", record.owner, record.slug, record.version, answer.get("reason"))
            return
        saved = await asyncio.to_thread(self.store.save_static_page, record.owner, record.slug, record.version, answer["html"].encode())
        if saved:
            self.log.info("%s/%s version %d is served as a static page", record.owner, record.slug, record.version)

    async def _keep_thumbnail(self, record, encoded: str) -> None:
        if not encoded or len(encoded) > 4 * 1024 * 1024:  # a card's picture, not a poster
            return
        try:
            png = base64.b64decode(encoded, validate=False)
        except ValueError:
            return
        await asyncio.to_thread(self.store.save_thumbnail, record.owner, record.slug, record.version, png)

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

    def voila_command(self) -> list[str]:
        """Voila's command line for this configuration (the sandbox settings included)."""
        return voila_argv(
            dashboards_dir=str(Path(self.dashboards_dir).resolve()),
            ip=self.voila_ip, port=self.voila_port, base_url=self.voila_base_url,
            execution_timeout=self.execution_timeout, cull_idle_timeout=self.cull_idle_timeout,
            cull_interval=self.cull_interval, cull_connected=self.cull_connected,
            preheat_pool_size=self.preheat_pool_size if self.preheat_kernels else 0,
            control_token_file=self._control_token_path() if self.uses_control_token else "",
            extra_args=list(self.voila_extra_args),
            sandbox={
                "sandbox_memory_bytes": self.kernel_memory_limit,
                "sandbox_cpu_seconds": self.kernel_cpu_limit,
                "sandbox_wall_clock_seconds": self.kernel_lifetime,
                "sandbox_max_processes": self.kernel_max_processes,
                "sandbox_tmp_bytes": self.kernel_tmp_size,
                "sandbox_network": self.kernel_network,
                "sandbox_allowed_hosts": list(self.kernel_allowed_hosts),
            },
            prerender_timeout=self.prerender_timeout,
            max_live_kernels=self.max_live_kernels,
        )

    def _exec_voila(self):
        """Replace this process with Voila (its own unit, its own account); never returns."""
        if self.uses_control_token and not self.control_token_file:
            self.log.critical(
                "--exec-voila: set PublisherService.control_token_file (a file both accounts read): with static_pages "
                "or preheat_kernels the publisher and Voila share that token"
            )
            self.exit(2)
        if os.geteuid() == 0 and not self.allow_root:
            self.log.critical("refusing to run Voila as root: published notebooks run in it. Use the voila account.")
            self.exit(2)
        argv = self.voila_command()
        os.chdir(self.dashboards_dir)
        os.execve(argv[0], argv, kernel_environment(os.environ, self.voila_env))

    async def _start_voila(self):
        argv = self.voila_command()
        self.voila_process = await asyncio.create_subprocess_exec(
            *argv, env=kernel_environment(os.environ, self.voila_env), cwd=self.dashboards_dir
        )
        self.log.info("started Voila (pid %d) on %s:%d serving %s", self.voila_process.pid, self.voila_ip, self.voila_port, self.dashboards_dir)

    def _prune_in_background(self):
        async def prune():
            removed = await asyncio.to_thread(self.store.prune)
            if removed:
                self.log.info("removed %d replaced dashboard versions", removed)

        asyncio.ensure_future(prune())

    def _control_token_path(self) -> str:
        """The file Voila reads the pool endpoint's token from (written here unless the admin gave one)."""
        if self.control_token_file:
            return self.control_token_file
        directory = self.runtime_dir or getattr(self, "_runtime_tmp", "") or tempfile.mkdtemp(prefix="voila-publisher-")
        self._runtime_tmp = directory
        return os.path.join(directory, "control_token")

    def _load_control_token(self) -> None:
        path = self._control_token_path()
        if self.control_token_file:
            self._control_token = Path(path).read_text().strip()
            return
        self._control_token = secrets.token_urlsafe(32)
        os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(self._control_token)

    @property
    def preheating(self) -> bool:
        return self.preheat_kernels

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
        if self.uses_control_token:
            self._load_control_token()
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
