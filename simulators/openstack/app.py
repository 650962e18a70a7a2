"""HTTP plumbing of the fake: request/response objects, a regex router and the threaded server."""

from __future__ import annotations

import json
import re
import sys
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from simulators.openstack.state import Cloud, Token


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    raw: bytes
    base_url: str
    cloud: Cloud
    match: re.Match | None = None
    token: Token | None = None
    microversion: tuple[int, int] = (2, 1)

    def json(self):
        try:
            return json.loads(self.raw or b"null")
        except ValueError:
            return None

    def arg(self, name: str) -> str | None:
        values = self.query.get(name)
        return values[-1] if values else None


@dataclass
class Response:
    status: int
    body: object = None  # dict -> JSON; str -> text; None -> empty
    headers: dict[str, str] = field(default_factory=dict)


def json_response(status: int, body, **headers) -> Response:
    return Response(status, body, dict(headers))


class Router:
    def __init__(self):
        self.routes: list[tuple[str, re.Pattern, object]] = []

    def add(self, method: str, pattern: str, handler) -> None:
        self.routes.append((method, re.compile(pattern + r"/?$"), handler))

    def dispatch(self, req: Request, not_found) -> Response:
        allowed = False
        for method, pattern, handler in self.routes:
            m = pattern.match(req.path)
            if not m:
                continue
            if method != req.method:
                allowed = True
                continue
            req.match = m
            return handler(req)
        if allowed:
            return Response(405, "405 Method Not Allowed", {"Content-Type": "text/plain"})
        return not_found(req)


def make_handler(cloud: Cloud, router: Router, not_found):
    class RequestHandler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "openstack-fake/1.0"

        def _handle(self):
            parts = urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            host = self.headers.get("Host") or f"{self.server.server_address[0]}:{self.server.server_address[1]}"
            req = Request(
                method=self.command, path=parts.path, query=parse_qs(parts.query, keep_blank_values=True),
                headers={k.lower(): v for k, v in self.headers.items()}, raw=raw,
                base_url=f"http://{host}", cloud=cloud,
            )
            caller = cloud.token(req.headers.get("x-auth-token"))
            with cloud.lock:
                cloud.requests.append((req.method, req.path, parts.query, caller.user.name if caller else None))
            fail = None if parts.path.startswith("/_fake") else cloud.take_fail(req.method, req.path)
            if fail is None or fail.after:
                try:
                    resp = router.dispatch(req, not_found)
                except Exception as e:  # a bug in the fake must show, not hang the client
                    import traceback

                    traceback.print_exc()
                    resp = json_response(500, {"computeFault": {"code": 500, "message": f"fake error: {e}"}})
            if fail is not None:
                resp = json_response(fail.status, {"error": {"code": fail.status, "message": "injected failure"}})
            self._send(resp)

        def _send(self, resp: Response):
            headers = {"X-Openstack-Request-Id": f"req-{time.monotonic_ns():x}", **resp.headers}
            if isinstance(resp.body, (dict, list)):
                data = json.dumps(resp.body).encode()
                headers.setdefault("Content-Type", "application/json")
            elif isinstance(resp.body, str):
                data = resp.body.encode()
                headers.setdefault("Content-Type", "text/plain; charset=UTF-8")
            else:
                data = b""
            self.send_response(resp.status)
            for k, v in headers.items():
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)

        do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = _handle

        def log_message(self, fmt, *args):
            sys.stderr.write("%s %s\n" % (time.strftime("%H:%M:%S"), fmt % args))

    return RequestHandler


class FakeHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
