"""Publishing from the single-user server to the public Voila host (no tornado handlers here).

``DashboardPublisher`` holds the configuration (``c.DashboardPublisher.*``, defaults from the
``HYBRID_*`` environment the hub hands to the server, see docs/contracts.md) and does the
work: check that a path is a notebook inside the server's root and small enough, strip
hidden cells and stored outputs, collect the data files the notebook declares, and send it
all to the publisher API with the user's publish token.

File reading and validation are blocking and run in a worker thread; the HTTP calls use
tornado's asynchronous client, so the server's event loop never waits on either.
"""

from __future__ import annotations

import asyncio
import json
import os
import posixpath
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote, urlencode, urlsplit

from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest
from traitlets import Bool, Float, Integer, List, Unicode, default
from traitlets.config import LoggingConfigurable

from voila_publisher import notebooks
from voila_publisher.errors import PublishError
from voila_publisher.identity import current_username
from voila_publisher.paths import PathOutsideRoot, resolve_inside


@dataclass
class PreparedUpload:
    owner: str
    slug: str
    notebook: bytes
    files: dict[str, bytes] = field(default_factory=dict)
    removed_cells: int = 0
    source_path: str = ""  # the notebook's API path on this server


class DashboardPublisher(LoggingConfigurable):
    publisher_url = Unicode(
        config=True,
        help="Base URL of the publisher API on the public Voila host, ending in /api/ "
        "(e.g. http://10.0.2.10/api/). Default: $HYBRID_PUBLISHER_URL, set by the hub.",
    )
    token = Unicode(
        config=True,
        help="This user's publish token, derived by the hub from the secret it shares with the public host "
        "(voila_publisher.tokens.derive_publish_token). Default: $HYBRID_PUBLISHER_TOKEN. Never logged.",
    )
    public_url = Unicode(
        config=True,
        help="Public base URL of the Voila host as viewers see it (https://dashboards.example.org); "
        "dashboard links handed to the user start with it. Default: $HYBRID_PUBLIC_URL; empty: the host's own answer.",
    )
    owner = Unicode(
        config=True,
        help="Whose dashboards these are (the publish token must be this user's). Default: $JUPYTERHUB_USER, else the Unix user.",
    )
    max_notebook_size = Integer(
        10 * 1024 * 1024, config=True,
        help="Largest notebook file that may be published, in bytes (413 above). Keep it at or below the host's limit.",
    )
    max_data_size = Integer(
        20 * 1024 * 1024, config=True,
        help="Largest total size of the data files a notebook declares in metadata.voila_publisher.data_files, in bytes.",
    )
    strip_hidden_tags = List(
        Unicode(), list(notebooks.DEFAULT_HIDDEN_TAGS), config=True,
        help="Cell tags that mark cells to remove before publishing. Removed cells never leave this server, "
        "so they are not executed on the public host either.",
    )
    strip_hidden_by_default = Bool(True, config=True, help="Remove tagged cells when a publish request does not say.")
    clear_outputs = Bool(
        True, config=True,
        help="Drop stored outputs before sending: Voila executes the notebook anew, and stored outputs may contain data.",
    )
    request_timeout = Float(60.0, config=True, help="Seconds to wait for the publisher API.")

    @default("publisher_url")
    def _publisher_url_default(self):
        return os.environ.get("HYBRID_PUBLISHER_URL", "")

    @default("token")
    def _token_default(self):
        return os.environ.get("HYBRID_PUBLISHER_TOKEN", "")

    @default("public_url")
    def _public_url_default(self):
        return os.environ.get("HYBRID_PUBLIC_URL", "")

    @default("owner")
    def _owner_default(self):
        return current_username()

    # -- configuration state -------------------------------------------------------------
    @property
    def missing(self) -> str | None:
        """What the admin must set before publishing works, for the Lab button's tooltip."""
        absent = []
        if not self.publisher_url:
            absent.append("HYBRID_PUBLISHER_URL (c.DashboardPublisher.publisher_url)")
        if not self.token:
            absent.append("HYBRID_PUBLISHER_TOKEN (c.DashboardPublisher.token)")
        if not absent:
            return None
        return "Publishing is not set up: the admin must set " + " and ".join(absent) + " for this server."

    @property
    def configured(self) -> bool:
        return self.missing is None

    def _require_configured(self):
        if not self.configured:
            raise PublishError(503, "not-configured", self.missing)

    # -- preparing an upload (blocking: run in a thread) --------------------------------
    def prepare(self, root_dir: str, path: str, strip_hidden: bool | None = None) -> PreparedUpload:
        """Read, check and clean the notebook at API path ``path`` under ``root_dir``."""
        root = Path(root_dir).resolve()
        nb_path = _resolve_inside(root, path, what="notebook")
        if not nb_path.name.lower().endswith(".ipynb"):
            raise PublishError(400, "not-a-notebook", f"{path} is not a notebook (.ipynb)")
        if not nb_path.is_file():
            raise PublishError(404, "not-found", f"no notebook at {path}")
        size = nb_path.stat().st_size
        if size > self.max_notebook_size:
            raise PublishError(413, "too-large", f"{path} is {size} bytes; at most {self.max_notebook_size} can be published")
        try:
            slug = notebooks.slug_from_path(nb_path.name)
            owner = notebooks.check_owner(self.owner)
        except notebooks.InvalidName as e:
            raise PublishError(400, "invalid-name", str(e)) from None
        try:
            nb = notebooks.parse_notebook(nb_path.read_bytes())
            declared = notebooks.declared_data_files(nb)
        except (notebooks.InvalidNotebook, notebooks.InvalidName) as e:
            raise PublishError(400, "invalid-notebook", f"{path}: {e}") from None
        removed = 0
        if self.strip_hidden_by_default if strip_hidden is None else strip_hidden:
            removed = notebooks.strip_hidden_cells(nb, self.strip_hidden_tags)
        if self.clear_outputs:
            notebooks.clear_outputs(nb)
        files = self._read_data_files(root, nb_path.parent, declared)
        return PreparedUpload(
            owner=owner, slug=slug, notebook=notebooks.serialize(nb), files=files, removed_cells=removed,
            source_path=path.strip("/"),
        )

    def _read_data_files(self, root: Path, nb_dir: Path, names: list[str]) -> dict[str, bytes]:
        files, total = {}, 0
        for name in names:
            relative = posixpath.join(str(nb_dir.relative_to(root)).replace(os.sep, "/"), name)
            data_path = _resolve_inside(root, relative, what="data file")
            if not data_path.is_file():
                raise PublishError(400, "missing-data-file", f"the notebook declares {name}, which does not exist next to it")
            total += data_path.stat().st_size
            if total > self.max_data_size:
                raise PublishError(413, "too-large", f"the declared data files exceed {self.max_data_size} bytes")
            files[name] = data_path.read_bytes()
        return files

    # -- talking to the publisher API ---------------------------------------------------
    def _api(self, *parts: str, query: dict | None = None) -> str:
        url = self.publisher_url.rstrip("/") + "/dashboards"
        for p in parts:
            url += "/" + quote(p, safe="")
        return url + ("?" + urlencode(query) if query else "")

    def _with_public_url(self, dashboard: dict) -> dict:
        if self.public_url:
            # Keep the host's path (a public or an unlisted address), on the address viewers use.
            path = urlsplit(dashboard.get("url", "")).path or f"/dashboards/{dashboard['owner']}/{dashboard['slug']}/"
            dashboard = {**dashboard, "url": f"{self.public_url.rstrip('/')}{path}"}
        return dashboard

    async def _call(self, method: str, url: str, body: bytes | None = None, headers: dict | None = None):
        request = HTTPRequest(
            url, method=method, body=body,
            headers={"Authorization": f"Bearer {self.token}", **(headers or {})},
            request_timeout=self.request_timeout, connect_timeout=min(10.0, self.request_timeout),
            allow_nonstandard_methods=True,
        )
        try:
            return await AsyncHTTPClient().fetch(request)
        except HTTPClientError as e:
            raise _error_from_host(e) from None
        except (OSError, asyncio.TimeoutError) as e:
            raise PublishError(502, "publisher-unreachable", f"the public Voila host is unreachable ({e.__class__.__name__})") from None

    async def publish(self, root_dir: str, path: str, strip_hidden: bool | None = None, *, visibility: str = "public", new_link: bool = False) -> dict:
        """Publish ``path``; ``visibility="unlisted"`` keeps it out of the gallery, reachable only by
        its link (kept across republishes unless ``new_link``, which revokes the old one)."""
        self._require_configured()
        upload = await asyncio.to_thread(self.prepare, root_dir, path, strip_hidden)
        if upload.files:
            body, content_type = _multipart(upload)
        else:
            body, content_type = upload.notebook, "application/json"
        query = {"source_path": upload.source_path, "visibility": visibility}
        if new_link:
            query["new_link"] = "1"
        url = self._api(upload.owner, upload.slug, query=query)
        response = await self._call("PUT", url, body, {"Content-Type": content_type})
        dashboard = self._with_public_url(json.loads(response.body))
        self.log.info("published %s as %s (version %s, %d hidden cells removed)", path, dashboard["url"], dashboard["version"], upload.removed_cells)
        return dashboard

    async def unpublish(self, slug: str) -> None:
        self._require_configured()
        self._check_slug(slug)
        await self._call("DELETE", self._api(self.owner, slug))
        self.log.info("unpublished %s", slug)

    async def versions(self, slug: str) -> list[dict]:
        """The versions of this user's dashboard still on the host, newest first."""
        self._require_configured()
        self._check_slug(slug)
        response = await self._call("GET", self._api(self.owner, slug, "versions"))
        return json.loads(response.body)

    async def rollback(self, slug: str, version: int) -> dict:
        """Make an earlier version's content current again (as a new version)."""
        self._require_configured()
        self._check_slug(slug)
        if isinstance(version, bool) or not isinstance(version, int) or version < 1:
            raise PublishError(400, "invalid-request", "version must be a positive whole number")
        response = await self._call("POST", self._api(self.owner, slug, "versions", query={"rollback": str(version)}), b"")
        dashboard = self._with_public_url(json.loads(response.body))
        self.log.info("rolled %s back to version %d (now version %s)", slug, version, dashboard["version"])
        return dashboard

    @staticmethod
    def _check_slug(slug: str) -> None:
        try:
            notebooks.check_slug(slug)
        except notebooks.InvalidName as e:
            raise PublishError(400, "invalid-name", str(e)) from None

    async def list(self) -> list[dict]:
        self._require_configured()
        response = await self._call("GET", self._api(query={"owner": self.owner}))
        return [self._with_public_url(d) for d in json.loads(response.body) if d.get("owner") == self.owner]


def _resolve_inside(root: Path, api_path: str, *, what: str) -> Path:
    """``root/api_path`` with symlinks resolved; 400 unless it stays inside ``root``."""
    if not isinstance(api_path, str) or not api_path.strip("/"):
        raise PublishError(400, "invalid-path", f"a {what} path is required")
    try:
        _, resolved = resolve_inside(root, api_path.strip("/"))
    except PathOutsideRoot as e:
        raise PublishError(400, "invalid-path", f"the {what} is outside the server's root directory ({e})") from None
    return resolved


def _error_from_host(e: HTTPClientError) -> PublishError:
    message, reason = None, "publisher-error"
    if e.response is not None and e.response.body:
        try:
            body = json.loads(e.response.body)
            message, reason = body.get("message"), body.get("reason", reason)
        except (ValueError, AttributeError):
            pass
    if e.code in (401, 403):
        # The user cannot fix this and must not be sent to a login page: it is the token the
        # admin configured that the host refuses.
        return PublishError(502, "publisher-refused-token", f"the public Voila host refused this server's publish token ({message or e.code}); ask the admin to check HYBRID_PUBLISHER_TOKEN")
    if e.code in (400, 404, 413):
        return PublishError(e.code, reason, message or f"the public Voila host answered {e.code}")
    if e.code == 599:
        return PublishError(502, "publisher-unreachable", "the public Voila host is unreachable (timeout)")
    return PublishError(502, reason, f"the public Voila host failed: {message or e.code}")


def _multipart(upload: PreparedUpload) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    chunks = []

    def part(name: str, filename: str, content_type: str, data: bytes):
        chunks.append(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; filename="{filename}"\r\n'
            f"Content-Type: {content_type}\r\n\r\n".encode()
        )
        chunks.append(data)
        chunks.append(b"\r\n")

    part("notebook", f"{upload.slug}.ipynb", "application/json", upload.notebook)
    for name, data in upload.files.items():
        part("files", name, "application/octet-stream", data)
    chunks.append(f"--{boundary}--\r\n".encode())
    return b"".join(chunks), f"multipart/form-data; boundary={boundary}"
