"""HTTP handlers of the publisher service: the publishing API, the dashboard route, the gallery.

They see only a :class:`~voila_publisher.host.context.HostContext`; the service itself
(configuration, Voila, lifecycle) is :mod:`voila_publisher.host.app`.
"""

from __future__ import annotations

import asyncio
import json
import tornado.web
from tornado.httputil import parse_body_arguments

from hybrid_spawner._version import __version__

from voila_publisher import notebooks
from voila_publisher.errors import PublishError
from voila_publisher.host.context import HostContext
from voila_publisher.host.store import PUBLIC, VISIBILITIES, StoredDashboard
from voila_publisher.tokens import InvalidToken, token_owner_any

# Where nginx's internal location for rendering lives; must match jupyter_config/nginx/.
INTERNAL_RENDER_PREFIX = "/_voila_render/"
#: nginx's internal location serving the static pages directory (PublisherService.static_dir).
INTERNAL_STATIC_PREFIX = "/_static_page/"


def dashboard_json(record: StoredDashboard, public_url: str, *, for_owner: bool = False) -> dict:
    """The contract's Dashboard object (docs/contracts.md).

    ``for_owner`` adds ``path``, the notebook's path on the owner's server, which lets the Lab
    match dashboards to notebooks; the public gallery never shows it.

    An unlisted dashboard's link is its only secret: it appears for the owner alone (others
    never get an unlisted record at all, see ``visible_to``).
    """
    url_path = f"/unlisted/{record.link_key}/" if record.unlisted else f"/dashboards/{record.owner}/{record.slug}/"
    extra = {"path": record.source_path} if for_owner and record.source_path else {}
    return {
        "owner": record.owner,
        "slug": record.slug,
        "title": record.title,
        "url": (public_url.rstrip("/") + url_path) if public_url else url_path,
        "version": record.version,
        "published": record.published,
        "visibility": record.visibility,
        **extra,
    }


def visible_to(record: StoredDashboard, caller: str | None) -> bool:
    """Public dashboards are everyone's to see; unlisted ones exist only for their owner."""
    return not record.unlisted or record.owner == caller


class BaseHandler(tornado.web.RequestHandler):
    @property
    def log(self):
        return self.host.log

    @property
    def host(self) -> HostContext:
        return self.settings["host"]

    def write_error(self, status_code, **kwargs):
        exc = kwargs.get("exc_info", (None, None, None))[1]
        if isinstance(exc, PublishError):
            body = {"message": exc.message, "reason": exc.reason}
        elif isinstance(exc, tornado.web.HTTPError) and exc.log_message:
            body = {"message": exc.log_message % exc.args if exc.args else exc.log_message, "reason": "http-error"}
        else:
            body = {"message": self._reason, "reason": "internal-error" if status_code >= 500 else "http-error"}
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(body))

    def fail(self, status: int, reason: str, message: str):
        raise PublishError(status, reason, message)

    def send_error_json(self, exc: PublishError):
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
            return token_owner_any((self.host.secret, *self.host.previous_secrets), token.strip())
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
        except PublishError as e:
            self.send_error_json(e)


class DashboardListHandler(ApiHandler):
    async def get(self):
        await self._run(self._list)

    async def _list(self):
        caller = self.caller()
        owner = self.get_query_argument("owner", None)
        if owner is not None:
            try:
                notebooks.check_owner(owner)
            except notebooks.InvalidName as e:
                self.fail(400, "invalid-name", str(e))
        records = [r for r in await asyncio.to_thread(self.host.store.list, owner) if visible_to(r, caller)]
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps([dashboard_json(r, self.host.public_url, for_owner=r.owner == caller) for r in records]))


class DashboardHandler(ApiHandler):
    async def get(self, owner, slug):
        await self._run(self._get, owner, slug)

    async def put(self, owner, slug):
        await self._run(self._put, owner, slug)

    async def delete(self, owner, slug):
        await self._run(self._delete, owner, slug)

    async def _get(self, owner, slug):
        caller = self.caller()
        try:
            record = await asyncio.to_thread(self.host.store.get, owner, slug)
        except notebooks.InvalidName as e:
            self.fail(400, "invalid-name", str(e))
        if record is None or not visible_to(record, caller):
            self.fail(404, "not-found", f"no dashboard {owner}/{slug}")
        self.finish(dashboard_json(record, self.host.public_url, for_owner=record.owner == caller))

    async def _delete(self, owner, slug):
        owner, slug = self.target(owner, slug)
        removed = await asyncio.to_thread(self.host.store.unpublish, owner, slug)
        if not removed:
            self.fail(404, "not-found", f"no dashboard {owner}/{slug} to unpublish")
        self.log.info("unpublished %s/%s", owner, slug)
        self.host.after_unpublish()
        self.set_status(204)
        self.finish()

    async def _put(self, owner, slug):
        owner, slug = self.target(owner, slug)
        notebook_bytes, files = await asyncio.to_thread(self._upload)  # parsing a large multipart body is CPU work
        limits = self.host.limits
        if len(notebook_bytes) > limits.max_notebook_size:
            self.fail(413, "too-large", f"the notebook is {len(notebook_bytes)} bytes; this host accepts at most {limits.max_notebook_size}")
        if len(files) > limits.max_data_files:
            self.fail(413, "too-many-files", f"{len(files)} data files; this host accepts at most {limits.max_data_files}")
        data_bytes = sum(len(v) for v in files.values())
        if data_bytes > limits.max_data_size:
            self.fail(413, "too-large", f"the data files total {data_bytes} bytes; this host accepts at most {limits.max_data_size}")
        source_path = self.get_query_argument("source_path", "")
        if len(source_path) > 1024 or "\x00" in source_path:
            self.fail(400, "invalid-request", "source_path must be a path of at most 1024 characters")
        visibility = self.get_query_argument("visibility", PUBLIC)
        if visibility not in VISIBILITIES:
            self.fail(400, "invalid-request", f"visibility must be one of: {', '.join(VISIBILITIES)}")
        new_link = self.get_query_argument("new_link", "") in ("1", "true")
        nb, title = await asyncio.to_thread(self._validate, notebook_bytes, files, slug)
        record = await asyncio.to_thread(
            self.host.store.publish, owner, slug, notebook_bytes, title, files, source_path, visibility, new_link,
            notebooks.notebook_description(nb),
        )
        self.log.info("published %s/%s version %d (%d data files)", owner, slug, record.version, len(files))
        await self.host.after_publish(record)
        self.set_status(201 if record.version == 1 else 200)
        self.finish(dashboard_json(record, self.host.public_url, for_owner=True))

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
            raise PublishError(400, "invalid-notebook", str(e)) from None
        undeclared = sorted(set(files) - declared)
        if undeclared:
            raise PublishError(400, "undeclared-file", f"data files not declared in metadata.voila_publisher.data_files: {', '.join(undeclared)}")
        if f"{slug}.ipynb" in files:
            raise PublishError(400, "invalid-name", f"a data file may not be called {slug}.ipynb")
        return nb, notebooks.notebook_title(nb, slug)


class RenderRouteHandler(BaseHandler):
    """``/dashboards/{owner}/{slug}/``: tell nginx which immutable version to render."""

    async def get(self, owner, slug):
        try:
            record = await asyncio.to_thread(self.host.store.get, owner, slug)
        except notebooks.InvalidName:
            record = None
        # An unlisted dashboard is not at its public address: the same 404 as no dashboard.
        await self.route(record if record is not None and not record.unlisted else None, owner, slug)

    async def route(self, record, owner, slug):
        if record is None:
            self.set_status(404)
            self.finish(self.host.render("not_found.html", owner=owner, slug=slug))
            return
        # Never let a browser or a cache keep the mapping: a republish must show at once.
        self.set_header("Cache-Control", "no-store")
        static = await asyncio.to_thread(self.host.store.static_page, record.owner, record.slug, record.version)
        if static is not None:
            # Rendered once in the sandbox at publish time: nginx sends the file, no kernel runs.
            self.set_header("X-Accel-Redirect", INTERNAL_STATIC_PREFIX + static)
            self.set_header("X-Dashboard-Mode", "static")
        else:
            self.set_header("X-Accel-Redirect", INTERNAL_RENDER_PREFIX + record.notebook)
            self.set_header("X-Dashboard-Mode", "live")
        self.set_header("X-Dashboard-Version", str(record.version))
        self.finish()


class UnlistedRouteHandler(RenderRouteHandler):
    """``/unlisted/{link_key}/``: an unlisted dashboard, for whoever holds its current link."""

    async def get(self, link_key):
        record = await asyncio.to_thread(self.host.store.find_unlisted, link_key)
        await self.route(record, "", "")


class DashboardVersionsHandler(ApiHandler):
    """``GET /api/dashboards/{owner}/{slug}/versions``: the versions on disk, for their owner;
    ``POST .../versions?rollback=N``: publish version N's content again as the new version."""

    async def get(self, owner, slug):
        await self._run(self._get, owner, slug)

    async def post(self, owner, slug):
        await self._run(self._rollback, owner, slug)

    async def _get(self, owner, slug):
        owner, slug = self.target(owner, slug)
        current = await asyncio.to_thread(self.host.store.get, owner, slug)
        if current is None:
            self.fail(404, "not-found", f"no dashboard {owner}/{slug}")
        records = await asyncio.to_thread(self.host.store.version_records, owner, slug)
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps([
            {"version": r.version, "published": r.published, "title": r.title, "current": r.version == current.version}
            for r in reversed(records)
        ]))

    async def _rollback(self, owner, slug):
        owner, slug = self.target(owner, slug)
        try:
            version = int(self.get_query_argument("rollback", ""))
        except ValueError:
            self.fail(400, "invalid-request", "give the version to return to: ?rollback=<number>")
        try:
            record = await asyncio.to_thread(self.host.store.rollback, owner, slug, version)
        except (KeyError, FileNotFoundError):
            self.fail(404, "not-found", f"{owner}/{slug} has no version {version} on this host (only the last few versions are kept)")
        self.log.info("rolled %s/%s back to version %d as version %d", owner, slug, version, record.version)
        await self.host.after_publish(record)
        self.finish(dashboard_json(record, self.host.public_url, for_owner=True))


class ThumbnailRouteHandler(BaseHandler):
    """``/dashboards/{owner}/{slug}/thumbnail.png``: the current version's first image, for its
    gallery card (public dashboards only)."""

    async def get(self, owner, slug):
        try:
            record = await asyncio.to_thread(self.host.store.get, owner, slug)
        except notebooks.InvalidName:
            record = None
        thumbnail = None
        if record is not None and not record.unlisted:
            thumbnail = await asyncio.to_thread(self.host.store.thumbnail, owner, slug, record.version)
        if thumbnail is None:
            raise tornado.web.HTTPError(404)
        self.set_header("Cache-Control", "no-cache")
        self.set_header("X-Accel-Redirect", INTERNAL_STATIC_PREFIX + thumbnail)
        self.finish()


def gallery_cards(records: list[StoredDashboard], query: str = "", author: str = "", thumbnails: set = frozenset()) -> list[dict]:
    """The public dashboards a gallery request shows: unlisted never, then by author and by words
    (every word of ``query`` in the title, description or author, any case)."""
    words = query.lower().split()
    cards = []
    for r in records:
        if r.unlisted or (author and r.owner != author):
            continue
        haystack = f"{r.title} {r.description} {r.owner}".lower()
        if all(w in haystack for w in words):
            cards.append({**dashboard_json(r, ""), "description": r.description, "has_thumbnail": (r.owner, r.slug) in thumbnails})
    return cards


class GalleryHandler(BaseHandler):
    async def get(self):
        query = self.get_query_argument("q", "")[:200]
        author = self.get_query_argument("author", "")[:100]
        records = await asyncio.to_thread(self.host.store.list, None)
        public = [r for r in records if not r.unlisted]

        def with_thumbnails():
            return {(r.owner, r.slug) for r in public if self.host.store.thumbnail(r.owner, r.slug, r.version)}

        thumbnails = await asyncio.to_thread(with_thumbnails)
        cards = gallery_cards(public, query, author, thumbnails)
        authors = sorted({r.owner for r in public})
        self.set_header("Cache-Control", "no-cache")
        self.finish(self.host.render(
            "gallery.html", dashboards=cards, title=self.host.gallery_title, query=query, author=author,
            authors=authors, total=len(public),
        ))


class HealthHandler(BaseHandler):
    async def get(self):
        voila_ok = await self.host.voila_serving()
        self.set_status(200 if voila_ok else 503)
        self.finish({"publisher": "ok", "voila": "ok" if voila_ok else "down", "version": __version__})


def make_app(host: HostContext, log_function=None) -> tornado.web.Application:
    """The service's routes; nginx decides which of them the public reaches (docs/publish.md)."""
    part = r"([^/]+)"
    return tornado.web.Application(
        [
            (r"/", GalleryHandler),
            (r"/healthz", HealthHandler),
            (r"/api/dashboards/?", DashboardListHandler),
            (rf"/api/dashboards/{part}/{part}/?", DashboardHandler),
            (rf"/api/dashboards/{part}/{part}/versions", DashboardVersionsHandler),
            (rf"/dashboards/{part}/{part}/", RenderRouteHandler),
            (r"/unlisted/([A-Za-z0-9_-]+)/", UnlistedRouteHandler),
            (rf"/dashboards/{part}/{part}/thumbnail\.png", ThumbnailRouteHandler),
        ],
        host=host,
        log_function=log_function,
    )
