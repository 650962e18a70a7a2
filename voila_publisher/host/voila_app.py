"""Voila, plus a private endpoint through which the publisher tells it which dashboards to pre-heat.

Voila's own pre-heating keeps a pool of kernels per notebook *path* that have already run the
notebook. That is only safe here because every published version has a path of its own
(``{owner}/{slug}/v000007/{slug}.ipynb``, never rewritten): a pooled kernel can only ever be
handed to a request for the exact version it rendered, and the public URL is routed to the
current version by the publisher. So a republish cannot be answered from a stale pool.

The publisher sends the complete list of current versions (``PUT {base_url}_publisher/pools``,
a JSON list of paths) after every change and at start; Voila starts a pool for each new path
and shuts down the pools of every path no longer listed (old versions, unpublished
dashboards). Nothing is pre-heated by default, so old versions on disk cost no kernels.

``POST {base_url}_publisher/prerender`` runs one version in the sandbox and answers its static
page (:mod:`voila_publisher.host.prerender`). Both endpoints answer only requests carrying the
control token (read from a file at start) and are not routed by nginx.
"""

from __future__ import annotations

import asyncio
import hmac
import json
from pathlib import Path

from jupyter_core.utils import ensure_async
from jupyter_server.utils import url_path_join
from tornado import web
from traitlets import Integer, Unicode
from voila.app import Voila
from voila.tornado.handler import TornadoVoilaHandler

from voila_publisher.host.prerender import prerender
from voila_publisher.host.sandbox_kernel import SandboxKernelManager
from voila_publisher.host.store import is_version_dir


class ControlHandler(web.RequestHandler):
    """The publisher's private endpoints: only requests carrying the control token."""

    def initialize(self, app: "PublisherVoila"):
        self.app = app

    def check_xsrf_cookie(self):
        return  # token-authenticated control API, no cookies

    def prepare(self):
        expected = self.app.control_token
        given = self.request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
        if not expected or not hmac.compare_digest(given.encode(), expected.encode()):
            raise web.HTTPError(403)


class PoolsHandler(ControlHandler):
    def get(self):
        km = self.app.kernel_manager
        self.finish({"pools": {path: len(pool) for path, pool in km._pools.items() if pool}})

    async def put(self):
        wanted = json.loads(self.request.body or b"[]")
        if not isinstance(wanted, list) or not all(isinstance(p, str) and p.endswith(".ipynb") and ".." not in p for p in wanted):
            raise web.HTTPError(400, "expected a JSON list of notebook paths")
        started, stopped = await self.app.reconcile_pools(set(wanted))
        wait = float(self.get_query_argument("wait", "0") or 0)
        if wait > 0 and started:
            await self.app.wait_prerendered(started, min(wait, 300.0))
        self.finish({"started": sorted(started), "stopped": sorted(stopped)})


class PrerenderHandler(ControlHandler):
    """``POST {base_url}_publisher/prerender`` with ``{"notebook": "owner/slug/v000007/slug.ipynb"}``:
    run that version once in the sandbox and answer ``{"html": ...}`` or ``{"html": null, "reason": ...}``
    (see voila_publisher.host.prerender)."""

    async def post(self):
        try:
            body = json.loads(self.request.body or b"{}")
            path = body["notebook"]
            title = str(body.get("title", ""))
        except (ValueError, KeyError, TypeError):
            raise web.HTTPError(400, "expected {\"notebook\": path}") from None
        notebook = Path(self.app.root_dir, path)
        if not isinstance(path, str) or not path.endswith(".ipynb") or not is_version_dir(self.app.root_dir, notebook.parent) or not notebook.is_file():
            raise web.HTTPError(400, "not a notebook of a dashboard version")
        async with self.app.prerender_slots:
            result = await prerender(notebook, self.app.sandboxed_kernel_manager(), self.app.prerender_timeout, title)
        self.finish({"html": result.html, "reason": result.reason, "thumbnail": result.thumbnail})


class BoundedVoilaHandler(TornadoVoilaHandler):
    """Voila's render handler, refusing with 503 (before any kernel starts or any byte of the page
    is sent) when ``max_live_kernels`` kernels are already running: a crowd of viewers of live
    dashboards gets a clear "busy" page instead of exhausting the host's memory."""

    # Renders under way: their kernels may not be registered yet, so a crowd arriving at once
    # would all pass a check of the running kernels alone. (A render's kernel counts twice while
    # it renders: the bound errs on the safe side.)
    rendering = 0

    def prepare(self):
        limit = self.settings.get("publisher_max_live_kernels", 0)
        if limit and len(self.kernel_manager.list_kernel_ids()) + BoundedVoilaHandler.rendering >= limit:
            self.set_status(503)
            self.set_header("Retry-After", "30")
            self.set_header("Content-Type", "text/html; charset=utf-8")
            self.finish(BUSY_PAGE)
            return
        BoundedVoilaHandler.rendering += 1
        self._counted = True
        return super().prepare()

    def on_finish(self):
        self._release()
        super().on_finish()

    def on_connection_close(self):
        self._release()
        super().on_connection_close()

    def _release(self):
        if getattr(self, "_counted", False):
            self._counted = False
            BoundedVoilaHandler.rendering -= 1


BUSY_PAGE = (
    "<!doctype html><title>Busy</title><h1>This dashboard is busy</h1>"
    "<p>Every live session of this host is in use. Please try again in a minute.</p>\n"
)


class PublisherVoila(Voila):
    control_token_file = Unicode("", config=True, help="File holding the token the publisher uses to manage kernel pools.")
    pool_size = Integer(1, config=True, help="Pre-heated kernels kept per current dashboard version.")
    max_live_kernels = Integer(
        0, config=True,
        help="Most kernels running at once for viewers of live dashboards (0: no limit); more viewers get a 503 "
        "'busy' page. Static dashboards use none.",
    )
    prerender_timeout = Integer(120, config=True, help="Seconds a whole dashboard may run when pre-rendered into a static page.")
    prerender_concurrency = Integer(2, config=True, help="Pre-renders running at once (each is a kernel).")

    @property
    def prerender_slots(self) -> asyncio.Semaphore:
        if not hasattr(self, "_prerender_slots"):
            self._prerender_slots = asyncio.Semaphore(self.prerender_concurrency)
        return self._prerender_slots

    def sandboxed_kernel_manager(self) -> SandboxKernelManager:
        """A kernel manager for one pre-render, configured like the viewers' kernels."""
        return SandboxKernelManager(parent=self, dashboards_root=str(Path(self.root_dir).resolve()), kernel_name="python3")

    @property
    def control_token(self) -> str:
        if not hasattr(self, "_control_token"):
            path = Path(self.control_token_file) if self.control_token_file else None
            self._control_token = path.read_text().strip() if path and path.exists() else ""
        return self._control_token

    def init_handlers(self):
        handlers = super().init_handlers()
        if self.voila_configuration.preheat_kernel:
            route = url_path_join(self.server_url, "_publisher/pools")
            handlers.insert(0, (route, PoolsHandler, {"app": self}))
        if self.control_token:
            route = url_path_join(self.server_url, "_publisher/prerender")
            handlers.insert(0, (route, PrerenderHandler, {"app": self}))
        self.app.settings["publisher_max_live_kernels"] = self.max_live_kernels
        return [(h[0], BoundedVoilaHandler, *h[2:]) if len(h) > 1 and h[1] is TornadoVoilaHandler else h for h in handlers]

    async def wait_prerendered(self, paths: set[str], timeout: float) -> None:
        """Wait (at most ``timeout``) until the pools of ``paths`` have run their notebook.

        asyncio.wait, not wait_for: a timeout must not cancel the pre-render itself.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        starts = [t for p in paths for t in self.kernel_manager._pools.get(p, [])]
        if not starts:
            return
        done, _ = await asyncio.wait(starts, timeout=timeout)
        renders = [t.result()["task"] for t in done if not t.exception()]
        remaining = deadline - loop.time()
        if renders and remaining > 0:
            await asyncio.wait(renders, timeout=remaining)

    async def reconcile_pools(self, wanted: set[str]) -> tuple[set[str], set[str]]:
        km = self.kernel_manager
        current = {path for path, config in km.kernel_pools_config.items() if path != "default" and config.get("pool_size")}
        root = Path(self.root_dir)
        started = {p for p in wanted - current if (root / p).is_file()}
        stopped = current - wanted
        # Start the new pools first: the viewer waits for those, not for the old ones to go.
        for path in started:
            km.kernel_pools_config[path] = {"pool_size": self.pool_size}
            km.fill_if_needed(delay=0, notebook_name=path)
        for path in stopped:
            km.kernel_pools_config.pop(path, None)
            for task in km._pools.pop(path, []):
                try:
                    kernel_id = (await task)["kernel_id"]
                except Exception:  # a pre-render that failed has no kernel to stop
                    continue
                if kernel_id in km:
                    # A pooled kernel holds no viewer's state: no need for a graceful shutdown.
                    await ensure_async(km.shutdown_kernel(kernel_id, now=True))
        if started or stopped:
            self.log.info("kernel pools: started %s, stopped %s", sorted(started), sorted(stopped))
        return started, stopped


main = PublisherVoila.launch_instance

if __name__ == "__main__":
    main()
