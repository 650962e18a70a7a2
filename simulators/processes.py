"""Start, watch and stop local helper processes (used by the demo and the tests).

Every process gets its own process group so that stopping it also stops what it started,
and its output goes to a log file so that a failing start can say why.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that nothing listens on right now (the OS picks it)."""
    with contextlib.closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


class ProcessFailed(RuntimeError):
    """A helper process exited or never became ready; the message carries its log tail."""


class ManagedProcess:
    """A child process with a log file, a readiness check and a clean stop.

    ``ready`` is a callable returning True once the process serves; ``start()`` waits for
    it and raises :class:`ProcessFailed` with the end of the log if the process dies first.
    """

    def __init__(self, name, argv, *, log_dir, env=None, cwd=None, ready=None, ready_timeout=60.0):
        self.name = name
        self.argv = [str(a) for a in argv]
        self.log_path = Path(log_dir) / f"{name}.log"
        self.env = env
        self.cwd = cwd
        self.ready = ready
        self.ready_timeout = ready_timeout
        self.proc: subprocess.Popen | None = None

    def start(self) -> "ManagedProcess":
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            self.argv,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=self.env,
            cwd=self.cwd,
            start_new_session=True,
        )
        log.close()
        if self.ready is not None:
            self.wait_ready()
        return self

    def wait_ready(self) -> None:
        deadline = time.monotonic() + self.ready_timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise ProcessFailed(f"{self.name} exited with {self.proc.returncode}:\n{self.log_tail()}")
            with contextlib.suppress(Exception):
                if self.ready():
                    return
            time.sleep(0.1)
        self.stop()
        raise ProcessFailed(f"{self.name} not ready after {self.ready_timeout:.0f}s:\n{self.log_tail()}")

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM the whole process group, then SIGKILL what is left after ``timeout``."""
        stop_together([self], timeout)

    def _signal_group(self, sig: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, sig)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


def processes_working_in(directory) -> list[int]:
    """PIDs of this machine's processes whose working directory is ``directory`` or below it.

    What a hub starts in sessions of its own (configurable-http-proxy, managed services such
    as the idle culler) outlives a hub that was killed, or that took longer to stop than its
    deadline; they all work in the hub's directory, which is how they are found.
    """
    root = os.path.realpath(directory)
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            cwd = os.readlink(f"/proc/{entry}/cwd")
        except OSError:
            continue
        cwd = cwd.removesuffix(" (deleted)")
        if cwd == root or cwd.startswith(root + os.sep):
            found.append(int(entry))
    return found


def end_processes_working_in(directory, timeout: float = 5.0) -> None:
    """SIGTERM, then SIGKILL, what :func:`processes_working_in` finds (started by our own hub)."""
    pids = processes_working_in(directory)
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while pids and time.monotonic() < deadline:
        pids = [pid for pid in pids if _alive(pid)]
        time.sleep(0.1)
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ", 1)[1][:1] != "Z"  # a zombie has ended
    except (OSError, IndexError):
        return False


def stop_together(processes, timeout: float = 10.0) -> None:
    """Stop many processes in about the time of one: SIGTERM every group first, wait for all on
    one shared deadline, then SIGKILL the groups still there.

    Stopping them one after another would take the sum of their shutdowns, and a parent that is
    itself stopped with a deadline (a node runner with hundreds of nodes) would be killed midway,
    orphaning the rest in their own sessions.
    """
    running = [p for p in processes if p.proc is not None and p.proc.poll() is None]
    for p in running:
        p._signal_group(signal.SIGTERM)
    deadline = time.monotonic() + timeout
    for p in running:
        try:
            p.proc.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            p._signal_group(signal.SIGKILL)
            p.proc.wait(5)


def http_ok(url: str, timeout: float = 1.0, accept=(200,)):
    """A readiness check: True once GET ``url`` answers with a status in ``accept``."""

    def check() -> bool:
        try:
            with urllib.request.urlopen(url, timeout=timeout) as r:
                return r.status in accept
        except urllib.error.HTTPError as e:
            return e.code in accept
        except OSError:
            return False

    return check


def tcp_open(host: str, port: int):
    """A readiness check: True once something accepts TCP connections on host:port."""
    return lambda: port_open(host, port)


def as_user(user: str | None, argv: list) -> list:
    """``argv`` run as ``user`` (with that account's groups, no capabilities), or as it is when
    ``user`` is None. Needs root."""
    if user is None:
        return list(argv)
    return ["setpriv", f"--reuid={user}", f"--regid={user}", "--init-groups", "--inh-caps=-all", "--", *argv]


def venv_bin_dir() -> Path:
    """The directory of the running interpreter's scripts (jupyterhub, moto_server, weed ...)."""
    import sys

    return Path(sys.executable).parent


def child_env(extra: dict | None = None) -> dict:
    """The current environment with this interpreter's bin directory first on PATH and the
    source checkout on PYTHONPATH (so ``python -m simulators.X`` works from any directory)."""
    from simulators import REPO_ROOT

    env = dict(os.environ)
    env["PATH"] = f"{venv_bin_dir()}{os.pathsep}{env.get('PATH', '')}"
    paths = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    if str(REPO_ROOT) not in paths:
        env["PYTHONPATH"] = os.pathsep.join([str(REPO_ROOT), *paths])
    env.update(extra or {})
    return env


def wait_until(predicate, timeout: float = 60.0, what: str = "condition", interval: float = 0.2):
    """Poll ``predicate`` until it returns something truthy and return that value.

    Raises AssertionError naming ``what`` after ``timeout`` seconds, so a test that waits on a
    slow machine fails with a sentence, not a hang.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
