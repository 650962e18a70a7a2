"""hybrid_spawner.drain against a small HTTP server answering as the hub's /hub/api/users does.

The real hub is in tests/integration/test_production_config.py (nothing pending after a spawn);
here the hub's answer is chosen, so "still pending" and the timeout are certain.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from hybrid_spawner import drain


@pytest.fixture
def fake_hub(monkeypatch):
    state = {"users": [], "seen": []}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            state["seen"].append((self.path, self.headers.get("Authorization")))
            body = json.dumps(state["users"]).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setenv("JUPYTERHUB_API_TOKEN", "admin-token")
    state["url"] = f"http://127.0.0.1:{server.server_address[1]}"
    yield state
    server.shutdown()


def test_pending_spawns_keep_it_waiting_until_the_timeout(fake_hub, capsys):
    fake_hub["users"] = [{"name": "ada", "servers": {"": {"pending": "spawn"}, "gpu": {"pending": None}}},
                         {"name": "bob", "servers": {"big": {"pending": "stop"}}}]
    assert drain.main([f"--hub-url={fake_hub['url']}", "--timeout=0.3", "--interval=0.1"]) == 1
    err = capsys.readouterr().err
    assert "ada/ (spawn)" in err and "bob/big (stop)" in err and "gpu" not in err
    assert fake_hub["seen"][0] == ("/hub/api/users?state=active", "token admin-token")


def test_nothing_pending_exits_at_once(fake_hub, capsys):
    fake_hub["users"] = [{"name": "ada", "servers": {"": {"pending": None, "ready": True}}}]
    assert drain.main([f"--hub-url={fake_hub['url']}", "--timeout=5"]) == 0
    assert "no spawn or stop in flight" in capsys.readouterr().out
