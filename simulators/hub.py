"""A real JupyterHub (with configurable-http-proxy) in a directory of its own.

Used by the demo and the integration tests. The hub gets free ports, a sqlite database in
its directory, ``cleanup_servers = False`` (remote servers must outlive a hub restart) and an
admin service token for driving the REST API.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import textwrap
import time
import urllib.error
import urllib.request
from pathlib import Path

from simulators.processes import ManagedProcess, ProcessFailed, child_env, end_processes_working_in, free_port, http_ok, venv_bin_dir

BASE_CONFIG = """\
# Written by simulators.hub; the caller's configuration follows the base part.
# Everything the hub writes (database, cookie secret, logs) is for the hub's account alone:
# user code may run on this machine (Slurm jobs, simulated nodes).
import os as _os
_os.umask(0o077)
c = get_config()  # noqa
c.JupyterHub.ip = "127.0.0.1"
c.JupyterHub.port = {port}
c.JupyterHub.hub_ip = "127.0.0.1"
c.JupyterHub.hub_port = {hub_port}
c.ConfigurableHTTPProxy.api_url = "http://127.0.0.1:{proxy_api_port}"
c.JupyterHub.db_url = "sqlite:///{dir}/jupyterhub.sqlite"
c.JupyterHub.cookie_secret_file = "{dir}/jupyterhub_cookie_secret"
c.JupyterHub.pid_file = "{dir}/jupyterhub.pid"
c.JupyterHub.cleanup_servers = False
c.JupyterHub.log_level = "DEBUG"
c.JupyterHub.authenticator_class = "dummy"
c.DummyAuthenticator.password = {password!r}
c.Authenticator.allow_all = True
c.Authenticator.admin_users = {{"admin"}}
c.JupyterHub.allow_named_servers = True
c.JupyterHub.services = [{{"name": "test-admin", "api_token": {admin_token!r}}}]
c.JupyterHub.load_roles = [{{"name": "admin", "services": ["test-admin"]}}]
"""


def write_private(path: Path, text: str) -> None:
    """Write ``text`` to a file only its owner can read (0600 from creation, never wider)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)  # an existing file keeps its mode through O_CREAT
    with os.fdopen(fd, "w") as f:
        f.write(text)


class HubAPIError(RuntimeError):
    def __init__(self, status: int, body: str):
        super().__init__(f"hub API answered {status}: {body[:500]}")
        self.status = status
        self.body = body


# What a hub's log says when one of its ports was taken by another process after it was chosen.
PORT_TAKEN = re.compile(r"api_request to proxy failed: 403|[Aa]ddress already in use|EADDRINUSE")


class LocalHub:
    """A JupyterHub process. ``config`` is Python appended to the base configuration."""

    def __init__(self, directory, config: str = "", *, env: dict | None = None, password: str = "demo"):
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        # The directory holds the admin token (config), the cookie secret and the database.
        os.chmod(self.dir, 0o700)
        self.password = password
        self.admin_token = secrets.token_hex(32)
        self.extra_env = env or {}
        self.config_path = self.dir / "jupyterhub_config.py"
        self._caller_config = textwrap.dedent(config)
        self._choose_ports()
        self.process: ManagedProcess | None = None
        self.starts = 0

    def _choose_ports(self) -> None:
        """Pick the hub's three ports and write the configuration that names them."""
        self.port = free_port()
        self.hub_port = free_port()
        self.proxy_api_port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.hub_url = f"http://127.0.0.1:{self.hub_port}/hub"
        base = BASE_CONFIG.format(
            port=self.port,
            hub_port=self.hub_port,
            proxy_api_port=self.proxy_api_port,
            dir=self.dir,
            password=self.password,
            admin_token=self.admin_token,
        )
        write_private(self.config_path, base + "\n" + self._caller_config)

    # -- lifecycle ---------------------------------------------------------------------
    def start(self, timeout: float = 60.0) -> "LocalHub":
        # A free port is free when chosen, not when the hub binds it: another hub starting on
        # this machine (a second test worker) can take it meanwhile, and JupyterHub then finds
        # that hub's proxy on "its" API port (403) or cannot bind. Only the first start may move
        # to new ports: a restarted hub keeps its address, and its proxy may still be running.
        for attempt in range(3):
            try:
                return self._start_once(timeout)
            except ProcessFailed:
                if self.starts > 1 or attempt == 2 or not PORT_TAKEN.search(self.log_text()):
                    raise
                end_processes_working_in(self.dir)
                for log in self.dir.glob("jupyterhub-*.log"):  # kept, out of log_text()'s way
                    log.rename(self.dir / f"port-clash-{attempt}-{log.name}")
                self.starts = 0
                self._choose_ports()
        raise AssertionError("unreachable")

    def _start_once(self, timeout: float) -> "LocalHub":
        self.starts += 1
        self.process = ManagedProcess(
            f"jupyterhub-{self.starts}",
            [venv_bin_dir() / "jupyterhub", "-f", self.config_path],
            log_dir=self.dir,
            cwd=self.dir,
            env=child_env(self.extra_env),
            ready=http_ok(f"{self.url}/hub/api/", accept=(200,)),
            ready_timeout=timeout,
        )
        self.process.start()
        return self

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop(timeout=20)
        # The proxy and managed services run in sessions of their own: end those a killed
        # (or slow) hub left behind, so no test leaves a daemon on the machine.
        end_processes_working_in(self.dir)

    def restart(self) -> None:
        self.stop()
        self.start()

    def log_text(self) -> str:
        """Every hub log written so far, across restarts."""
        return "\n".join(p.read_text(errors="replace") for p in sorted(self.dir.glob("jupyterhub-*.log")))

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    # -- REST API ----------------------------------------------------------------------
    def api(self, method: str, path: str, body=None, *, token: str | None = None, expect=None):
        """Call ``/hub/api{path}``; returns (status, parsed JSON or None)."""
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(f"{self.url}/hub/api{path}", data=data, method=method)
        req.add_header("Authorization", f"token {token or self.admin_token}")
        if data is not None:
            req.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                status, raw = r.status, r.read()
        except urllib.error.HTTPError as e:
            status, raw = e.code, e.read()
        text = raw.decode(errors="replace")
        if expect is not None and status not in ((expect,) if isinstance(expect, int) else expect):
            raise HubAPIError(status, text)
        try:
            return status, json.loads(text) if text else None
        except ValueError:
            return status, text

    def ensure_user(self, name: str) -> None:
        status, _ = self.api("GET", f"/users/{name}")
        if status == 404:
            self.api("POST", f"/users/{name}", expect=201)

    def server_path(self, user: str, server: str = "") -> str:
        return f"/users/{user}/servers/{server}" if server else f"/users/{user}/server"

    def spawn(self, user: str, server: str = "", options: dict | None = None):
        """POST the spawn request; returns (status, body) without waiting for readiness."""
        self.ensure_user(user)
        return self.api("POST", self.server_path(user, server), options or {})

    def server_model(self, user: str, server: str = "") -> dict | None:
        _, model = self.api("GET", f"/users/{user}", expect=200)
        return (model.get("servers") or {}).get(server)

    def wait_ready(self, user: str, server: str = "", timeout: float = 90.0) -> dict:
        """Wait until the server is ready; raise with the hub's view if it stops or times out."""
        deadline = time.monotonic() + timeout
        model = None
        while time.monotonic() < deadline:
            model = self.server_model(user, server)
            if model and model.get("ready"):
                return model
            if model is None or (not model.get("pending") and not model.get("ready")):
                # Give a just-posted spawn a moment to register before calling it failed.
                if time.monotonic() > deadline - timeout + 2:
                    raise RuntimeError(f"server {user}/{server} is not starting: {model}")
            time.sleep(0.2)
        raise TimeoutError(f"server {user}/{server} not ready after {timeout}s: {model}")

    def wait_stopped(self, user: str, server: str = "", timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            model = self.server_model(user, server)
            if model is None:
                return
            time.sleep(0.2)
        raise TimeoutError(f"server {user}/{server} still present after {timeout}s")

    def stop_server(self, user: str, server: str = "", wait: bool = True) -> None:
        status, body = self.api("DELETE", self.server_path(user, server))
        if status not in (202, 204, 400, 404):
            raise HubAPIError(status, str(body))
        if wait:
            self.wait_stopped(user, server)

    def progress_events(self, user: str, server: str = "", timeout: float = 90.0, since: float | None = None):
        """Read the spawn's progress stream (replayed from its first event) until ready or failed.

        Each event gets ``elapsed``: seconds from ``since`` (a time.monotonic(), default now).
        """
        since = time.monotonic() if since is None else since
        req = urllib.request.Request(f"{self.url}/hub/api{self.server_path(user, server)}/progress")
        req.add_header("Authorization", f"token {self.admin_token}")
        events = []
        with urllib.request.urlopen(req, timeout=timeout) as stream:
            for raw in stream:
                line = raw.decode().strip()
                if line.startswith("data:"):
                    event = json.loads(line[5:])
                    event["elapsed"] = time.monotonic() - since
                    events.append(event)
                    if event.get("ready") or event.get("failed"):
                        break
        return events

    def get_via_proxy(self, path: str, token: str | None = None):
        """GET a URL on the public proxy with the admin token; returns (status, text)."""
        req = urllib.request.Request(f"{self.url}{path}")
        req.add_header("Authorization", f"token {token or self.admin_token}")
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                return r.status, r.read().decode(errors="replace")
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode(errors="replace")
