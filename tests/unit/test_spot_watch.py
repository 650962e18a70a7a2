"""The node's spot watch (hybrid_spawner/bootstrap/spot_watch.py) against the IMDSv2 stand-in and
a recording stand-in for the local server and the hub, on loopback: what it calls on a notice,
and that it calls nothing on an on-demand node or where no metadata service answers."""

from __future__ import annotations

import json
import threading
import time
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from hybrid_spawner.bootstrap.spot_watch import IMDSClient, SpotWatcher
from simulators.imds import InstanceMetadata, in_seconds, post_interruption, post_rebalance
from simulators.processes import free_port

PREFIX = "/user/ana/"
TOKEN = "server-token-of-ana"
SECRET = "notice-secret-of-ana"


class Recorder(ThreadingHTTPServer):
    """The local single-user server (sync, notices) and the hub's interruption endpoint."""

    daemon_threads = True

    def __init__(self, sync_answer: int = 202):
        super().__init__(("127.0.0.1", 0), _Recording)
        self.url = f"http://127.0.0.1:{self.server_address[1]}"
        self.calls: list[dict] = []
        self.sync_answer = sync_answer
        self.thread = threading.Thread(target=self.serve_forever, daemon=True)
        self.thread.start()

    def paths(self) -> list[str]:
        return [f"{c['method']} {c['path']}" for c in self.calls]

    def close(self):
        self.shutdown()
        self.server_close()


class _Recording(BaseHTTPRequestHandler):
    server: Recorder

    def log_message(self, *args):
        return None

    def _reply(self, status: int, body=None):
        data = b"" if body is None else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _record(self, method: str) -> dict:
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length)) if length else None
        call = {"method": method, "path": self.path, "auth": self.headers.get("Authorization"), "body": body}
        self.server.calls.append(call)
        return call

    def do_POST(self):
        self._record("POST")
        if self.path == PREFIX + "hybrid/sync":
            if self.server.sync_answer == 409:
                return self._reply(409, {"message": "HYBRID_SYNC_BUCKET is not set", "reason": "not-configured"})
            started = datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")
            return self._reply(202, {"id": "abc123", "state": "running", "started": started})
        if self.path == PREFIX + "hybrid/notices":
            return self._reply(200, {"stored": True})
        if self.path == "/hub/api/hybrid/interruption":
            return self._reply(204)
        self._reply(404, {"message": "no"})

    def do_GET(self):
        self._record("GET")
        if self.path == PREFIX + "hybrid/sync/abc123":
            finished = datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")
            return self._reply(200, {"id": "abc123", "state": "done", "uploaded": 2, "skipped": 3, "errors": [],
                                     "conflicts": [], "started": finished, "finished": finished})
        self._reply(404, {"message": "no"})


@pytest.fixture
def recorder():
    server = Recorder()
    yield server
    server.close()


def watcher_for(imds_url: str, recorder: Recorder, interval: float = 0.05) -> SpotWatcher:
    lines: list[str] = []
    watcher = SpotWatcher(IMDSClient(imds_url, timeout=0.5), recorder.url + PREFIX, TOKEN,
                          recorder.url + "/hub/api/hybrid/interruption", SECRET, interval=interval, log=lines.append)
    watcher.lines = lines
    return watcher


def run_until_done(watcher: SpotWatcher, timeout: float = 20) -> float:
    began = time.monotonic()
    watcher.start()
    watcher.join(timeout)
    assert not watcher.is_alive(), watcher.lines
    return time.monotonic() - began


def test_an_on_demand_node_is_not_watched_and_nothing_is_called(tmp_path, recorder):
    imds = InstanceMetadata("i-0ondemand", tmp_path, lifecycle="on-demand").start()
    try:
        post_interruption(tmp_path, in_seconds(120))  # would be acted on, were it spot
        watcher = watcher_for(imds.url, recorder)
        run_until_done(watcher)
        assert watcher.outcome == "not-spot"
        assert recorder.calls == []
        assert "/latest/meta-data/spot/instance-action" not in imds.requests
    finally:
        imds.stop()


def test_without_a_metadata_service_the_watch_gives_up_quietly(recorder):
    watcher = watcher_for(f"http://127.0.0.1:{free_port()}", recorder)  # nothing listens there
    elapsed = run_until_done(watcher)
    assert watcher.outcome == "no-metadata" and elapsed < 5
    assert recorder.calls == []
    assert any("no instance metadata service" in line for line in watcher.lines)


def test_on_the_interruption_notice_it_syncs_and_tells_the_server_and_the_hub(tmp_path, recorder):
    imds = InstanceMetadata("i-0spot", tmp_path, lifecycle="spot").start()
    try:
        watcher = watcher_for(imds.url, recorder)
        watcher.start()
        time.sleep(0.3)
        assert watcher.is_alive() and recorder.calls == []  # no notice: looking, nothing else
        notice = post_interruption(tmp_path, in_seconds(120))
        watcher.join(20)
        assert watcher.outcome == "interruption", watcher.lines
    finally:
        watcher.stopped.set()
        imds.stop()
    assert recorder.paths() == [
        f"POST {PREFIX}hybrid/notices",  # the researcher, at once
        "POST /hub/api/hybrid/interruption",  # the hub, at once
        f"POST {PREFIX}hybrid/sync",
        f"GET {PREFIX}hybrid/sync/abc123",
        f"POST {PREFIX}hybrid/notices",  # again, with what the sync did
        "POST /hub/api/hybrid/interruption",
    ]
    to_server = [c for c in recorder.calls if c["path"].startswith(PREFIX)]
    to_hub = [c for c in recorder.calls if c["path"].startswith("/hub/")]
    # The server's token goes to the server only; the notice secret to the hub only.
    assert all(c["auth"] == f"token {TOKEN}" for c in to_server)
    assert all(c["auth"] is None and c["body"]["secret"] == SECRET for c in to_hub)
    assert SECRET not in json.dumps([c["body"] for c in to_server])
    first, last = to_server[0]["body"], to_server[-1]["body"]
    assert (first["kind"], first["action"], first["time"]) == ("interruption", "terminate", notice["time"])
    assert first["sync"]["state"] == "running"
    assert last["sync"]["state"] == "done" and last["sync"]["files"] == 5 and last["sync"]["uploaded"] == 2
    assert to_hub[-1]["body"]["notice"] == last


def test_a_rebalance_recommendation_syncs_and_tells_the_researcher_only(tmp_path, recorder):
    imds = InstanceMetadata("i-0spot", tmp_path, lifecycle="spot").start()
    watcher = watcher_for(imds.url, recorder)
    try:
        watcher.start()
        post_rebalance(tmp_path)
        deadline = time.monotonic() + 10
        while len(recorder.calls) < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.3)  # the same recommendation, seen again, is not acted on twice
    finally:
        watcher.stopped.set()
        watcher.join(5)
        imds.stop()
    assert watcher.outcome == "stopped"
    assert recorder.paths() == [f"POST {PREFIX}hybrid/sync", f"GET {PREFIX}hybrid/sync/abc123", f"POST {PREFIX}hybrid/notices"]
    assert recorder.calls[-1]["body"]["kind"] == "rebalance" and recorder.calls[-1]["body"]["sync"]["state"] == "done"


def test_a_server_without_a_bucket_is_said_so(tmp_path):
    recorder = Recorder(sync_answer=409)
    imds = InstanceMetadata("i-0spot", tmp_path, lifecycle="spot").start()
    try:
        post_interruption(tmp_path, in_seconds(120))
        watcher = watcher_for(imds.url, recorder)
        run_until_done(watcher)
    finally:
        imds.stop()
        recorder.close()
    assert watcher.outcome == "interruption"
    assert recorder.calls[-1]["body"]["notice"]["sync"]["state"] == "not-configured"
