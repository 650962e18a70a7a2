"""A stand-in for one instance's metadata service (IMDSv2), for the node runner's simulated nodes.

Real EC2 instances reach theirs at http://169.254.169.254; each simulated node gets one of these
on a loopback port of its own (the runner passes it as ``HYBRID_IMDS_ENDPOINT``). It behaves as
AWS documents IMDSv2 with ``HttpTokens=required`` (what EC2Spawner launches with):

* ``PUT /latest/api/token`` with ``X-aws-ec2-metadata-token-ttl-seconds`` (1..21600) returns a
  session token; without the header, or with a bad TTL: 400. A request carrying
  ``X-Forwarded-For`` is refused (403): AWS does so, so that a proxy cannot fetch tokens.
* every ``GET`` needs a valid, unexpired ``X-aws-ec2-metadata-token``: 401 otherwise.
* ``/latest/meta-data/instance-id``, ``/latest/meta-data/instance-life-cycle`` (``spot`` or
  ``on-demand``);
* ``/latest/meta-data/spot/instance-action``: 404 until AWS decides to reclaim the instance, then
  ``{"action": "terminate", "time": "2026-12-07T12:04:00Z"}``;
* ``/latest/meta-data/events/recommendations/rebalance``: 404, or ``{"noticeTime": "...Z"}``.

The notices come from files in the instance's notice directory (``post_interruption`` and
``post_rebalance`` write them; a test or an operator calls them), so a test process can trigger
them in the runner's process without any other channel. The runner reclaims the instance
through the cloud's API once the notice's time has passed (:func:`reclaim_due`), as AWS does.
"""

from __future__ import annotations

import json
import secrets
import threading
import time
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

TOKEN_PATH = "/latest/api/token"
TTL_HEADER = "X-aws-ec2-metadata-token-ttl-seconds"
TOKEN_HEADER = "X-aws-ec2-metadata-token"
MAX_TTL = 21600
INSTANCE_ACTION = "instance-action.json"
REBALANCE = "rebalance.json"


def iso_z(moment: datetime) -> str:
    """AWS's notation in IMDS: seconds, UTC, a Z."""
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _write_json(path: Path, value: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(value))
    tmp.replace(path)  # the server never reads half a notice


def post_interruption(notice_dir, at: datetime, action: str = "terminate") -> dict:
    """AWS decides to reclaim the instance at ``at`` (it gives two minutes; a test may give less)."""
    notice = {"action": action, "time": iso_z(at)}
    _write_json(Path(notice_dir) / INSTANCE_ACTION, notice)
    return notice


def post_rebalance(notice_dir, at: datetime | None = None) -> dict:
    """AWS recommends moving off the instance: its spot pool is at higher risk of interruption."""
    notice = {"noticeTime": iso_z(at or datetime.now(timezone.utc))}
    _write_json(Path(notice_dir) / REBALANCE, notice)
    return notice


def read_notice(notice_dir, name: str) -> dict | None:
    try:
        value = json.loads((Path(notice_dir) / name).read_text())
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def reclaim_due(notice_dir, now: datetime | None = None) -> str | None:
    """The notice's action once its time has passed (the cloud then acts), else None."""
    notice = read_notice(notice_dir, INSTANCE_ACTION)
    if not notice:
        return None
    try:
        moment = datetime.strptime(str(notice["time"]), "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)
    except (KeyError, ValueError):
        return None
    return str(notice.get("action") or "terminate") if (now or datetime.now(timezone.utc)) >= moment else None


class InstanceMetadata(ThreadingHTTPServer):
    """One instance's IMDS on 127.0.0.1 (a free port). ``start()``, ``url``, ``stop()``."""

    daemon_threads = True

    def __init__(self, instance_id: str, notice_dir, lifecycle: str = "on-demand", host: str = "127.0.0.1"):
        super().__init__((host, 0), _Handler)
        self.instance_id = instance_id
        self.lifecycle = lifecycle
        self.notice_dir = Path(notice_dir)
        self.notice_dir.mkdir(parents=True, exist_ok=True)
        self.url = f"http://{host}:{self.server_address[1]}"
        self._tokens: dict[str, float] = {}
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self.requests: dict[str, int] = {}  # path -> count, for tests (a watcher that hammers shows)

    def start(self) -> "InstanceMetadata":
        self._thread = threading.Thread(target=self.serve_forever, name=f"imds-{self.instance_id}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread is not None:
            self.shutdown()
            self._thread.join(5)
            self._thread = None
        self.server_close()

    # -- tokens --------------------------------------------------------------------------------
    def issue_token(self, ttl: int) -> str:
        token = secrets.token_urlsafe(32)
        with self._lock:
            now = time.monotonic()
            self._tokens = {t: until for t, until in self._tokens.items() if until > now}
            self._tokens[token] = now + ttl
        return token

    def token_valid(self, token: str | None) -> bool:
        with self._lock:
            until = self._tokens.get(token or "")
        return until is not None and until > time.monotonic()

    # -- what the instance's metadata says -----------------------------------------------------
    def document(self, path: str) -> tuple[str, str] | None:
        """(content type, body) for a metadata path, or None (404)."""
        if path == "/latest/meta-data/instance-id":
            return "text/plain", self.instance_id
        if path == "/latest/meta-data/instance-life-cycle":
            return "text/plain", self.lifecycle
        if path == "/latest/meta-data/spot/instance-action":
            notice = read_notice(self.notice_dir, INSTANCE_ACTION)
            return ("text/plain", json.dumps(notice)) if notice else None
        if path == "/latest/meta-data/events/recommendations/rebalance":
            notice = read_notice(self.notice_dir, REBALANCE)
            return ("text/plain", json.dumps(notice)) if notice else None
        return None


class _Handler(BaseHTTPRequestHandler):
    server: InstanceMetadata
    protocol_version = "HTTP/1.1"

    def log_message(self, *args) -> None:  # tokens travel in headers only, but keep the runner's log quiet
        return None

    def _answer(self, status: int, body: str = "", content_type: str = "text/plain", headers: dict | None = None):
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def _count(self) -> None:
        with self.server._lock:
            self.server.requests[self.path] = self.server.requests.get(self.path, 0) + 1

    def do_PUT(self):
        self._count()
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        if self.path != TOKEN_PATH:
            return self._answer(404 if self.path.startswith("/latest/") else 400)
        if self.headers.get("X-Forwarded-For"):
            return self._answer(403)
        try:
            ttl = int(self.headers.get(TTL_HEADER, ""))
        except ValueError:
            return self._answer(400)
        if not 1 <= ttl <= MAX_TTL:
            return self._answer(400)
        token = self.server.issue_token(ttl)
        self._answer(200, token, headers={TTL_HEADER: str(ttl)})

    def do_GET(self):
        self._count()
        if not self.server.token_valid(self.headers.get(TOKEN_HEADER)):
            return self._answer(401)
        found = self.server.document(self.path.split("?", 1)[0])
        if found is None:
            return self._answer(404)
        self._answer(200, found[1], found[0])


def in_seconds(seconds: float) -> datetime:
    """A moment ``seconds`` from now, at whole seconds as IMDS writes it (rounded up)."""
    moment = datetime.now(timezone.utc) + timedelta(seconds=seconds)
    return moment.replace(microsecond=0) + timedelta(seconds=1 if moment.microsecond else 0)
