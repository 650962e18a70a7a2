"""The test hub launcher moves to new ports when another process took one of them between
choosing it and starting: two test workers starting hubs at once can pick the same free port,
and the second hub then finds the first one's proxy on "its" API port (which answers 403 to a
stranger's token) and exits. Seen once in a full run; here the clash is made on purpose."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from simulators.hub import LocalHub

pytestmark = pytest.mark.integration


class AnotherHubsProxy(BaseHTTPRequestHandler):
    """configurable-http-proxy's API answering a token it does not know."""

    def do_GET(self):
        self.send_response(403)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


def test_a_proxy_api_port_taken_before_the_first_start_moves_the_hub_to_free_ports(tmp_path):
    hub = LocalHub(tmp_path / "hub")
    taken = hub.proxy_api_port
    squatter = ThreadingHTTPServer(("127.0.0.1", taken), AnotherHubsProxy)
    threading.Thread(target=squatter.serve_forever, daemon=True).start()
    try:
        hub.start()
        assert hub.proxy_api_port != taken
        assert f"127.0.0.1:{taken}\"" not in hub.config_path.read_text()
        assert hub.api("GET", "/users", expect=200)[0] == 200
        clash_logs = list((tmp_path / "hub").glob("port-clash-0-jupyterhub-1.log"))
        assert clash_logs and "403" in clash_logs[0].read_text(), "the failed start's log is kept"
        address = hub.url
        hub.restart()  # a restart keeps the hub's address
        assert hub.url == address and hub.api("GET", "/users", expect=200)[0] == 200
    finally:
        squatter.shutdown()
        hub.stop()
