"""The public host's nginx moves to another port when the one it picked was taken before it
bound it (parallel test workers picking free ports): a clean-clone run once lost 44 tests so."""

from __future__ import annotations

import socket

import pytest

from simulators import nginx as nginx_module
from simulators.nginx import NginxProcess
from simulators.processes import free_port

pytestmark = pytest.mark.integration


def test_a_port_taken_between_picking_and_binding_is_picked_again(tmp_path, monkeypatch):
    squatter = socket.socket()
    squatter.bind(("127.0.0.1", 0))
    squatter.listen()
    taken = squatter.getsockname()[1]
    picks = iter([taken])
    monkeypatch.setattr(nginx_module, "free_port", lambda: next(picks, None) or free_port())
    server = NginxProcess(tmp_path / "nginx", publisher_port=free_port(), voila_port=free_port())
    try:
        assert server.port == taken
        server.start()
        assert server.port != taken and server.running
    finally:
        server.stop()
        squatter.close()
