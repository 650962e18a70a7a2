"""The process helpers the demo and every integration test rely on."""

import sys

import pytest

from simulators.processes import ManagedProcess, ProcessFailed, free_port, port_open, tcp_open


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


SLOW_TO_STOP = """
import signal, sys, time
def leave(*_):
    time.sleep(0.5)  # a server flushing its state before it exits
    sys.exit(0)
signal.signal(signal.SIGTERM, leave)
print("ready", flush=True)
while True:
    time.sleep(1)
"""


def test_stop_together_lets_every_process_shut_down_within_one_deadline(tmp_path):
    """Ten processes that each need 0.5 s to exit, one 3 s deadline: stopped one after another
    the last ones would be killed (5 s in all); signalled together, all exit cleanly."""
    from simulators.processes import stop_together

    procs = [
        ManagedProcess(f"slow-{i}", [sys.executable, "-c", SLOW_TO_STOP], log_dir=tmp_path,
                       ready=lambda i=i: "ready" in (tmp_path / f"slow-{i}.log").read_text())
        for i in range(10)
    ]
    for p in procs:
        p.start()
    stop_together(procs, timeout=3)
    assert [p.proc.returncode for p in procs] == [0] * 10


def test_stop_together_kills_what_ignores_sigterm(tmp_path):
    from simulators.processes import stop_together

    stubborn = ManagedProcess(
        "stubborn",
        [sys.executable, "-c", "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print('ready', flush=True); time.sleep(60)"],
        log_dir=tmp_path, ready=lambda: "ready" in (tmp_path / "stubborn.log").read_text(),
    )
    stubborn.start()
    stop_together([stubborn], timeout=0.5)
    assert stubborn.proc.returncode == -9 and not stubborn.running
