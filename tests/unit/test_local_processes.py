"""The process helpers the demo and every integration test rely on."""

import sys

import pytest

from hybrid_spawner.local.processes import ManagedProcess, ProcessFailed, free_port, port_open, tcp_open


def test_free_port_is_unused():
    port = free_port()
    assert 1024 < port < 65536
    assert not port_open("127.0.0.1", port)


def test_start_waits_for_readiness_and_stop_ends_the_group(tmp_path):
    port = free_port()
    server = ManagedProcess(
        "http", [sys.executable, "-m", "http.server", "--bind", "127.0.0.1", str(port)],
        log_dir=tmp_path, ready=tcp_open("127.0.0.1", port),
    )
    with server:
        assert server.running and port_open("127.0.0.1", port)
    assert not server.running
    assert not port_open("127.0.0.1", port)


def test_a_process_that_dies_reports_its_log(tmp_path):
    dying = ManagedProcess(
        "dying", [sys.executable, "-c", "import sys; print('boom: bad config'); sys.exit(3)"],
        log_dir=tmp_path, ready=lambda: False,
    )
    with pytest.raises(ProcessFailed, match="boom: bad config"):
        dying.start()
