"""An HTTP fake of OpenStack (Keystone v3, Nova, Neutron, Glance) for tests and the demo.

``FakeOpenStack`` runs ``python -m simulators.openstack`` as a ManagedProcess on a free port,
writes a ``clouds.yaml`` for it, and drives its ``/_fake`` control API.
"""

from __future__ import annotations

import json
import os
import sys
import urllib.request
from pathlib import Path

from simulators import REPO_ROOT
from simulators.openstack.control import clouds_yaml_entries
from simulators.processes import ManagedProcess, child_env, free_port, http_ok


class FakeOpenStack:
    def __init__(self, directory, *, cidr: str = "127.42.0.0/24", build_seconds: float = 0.5,
                 delete_seconds: float = 0.3, port: int | None = None):
        self.dir = Path(directory)
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.auth_url = f"{self.url}/identity/v3"
        self.process = ManagedProcess(
            "openstack-fake",
            [sys.executable, "-m", "simulators.openstack", "--port", self.port, "--cidr", cidr,
             "--build-seconds", build_seconds, "--delete-seconds", delete_seconds],
            log_dir=self.dir, cwd=REPO_ROOT, env=child_env(),
            ready=http_ok(f"{self.url}/_fake/health"), ready_timeout=30,
        )
        self.config: dict = {}

    def start(self) -> "FakeOpenStack":
        self.process.start()
        self.config = self.control("GET", "/config")
        return self

    def stop(self) -> None:
        self.process.stop()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    # -- control API ------------------------------------------------------------------------
    def control(self, method: str, path: str, body=None):
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(f"{self.url}/_fake{path}", data=data, method=method)
        req.add_header("Content-Type", "application/json")
        with urllib.request.urlopen(req, timeout=10) as r:
            raw = r.read()
        return json.loads(raw) if raw else None

    def reset(self) -> None:
        self.control("POST", "/reset")
        self.control("PUT", "/timing", {"build_seconds": 0.5, "delete_seconds": 0.3})

    def inject_build_failure(self, message: str = "No valid host was found. There are not enough hosts available.",
                             count: int = 1) -> None:
        self.control("POST", "/faults", {"message": message, "count": count})

    def set_quotas(self, **quotas) -> None:
        self.control("PUT", "/quotas", quotas)

    def fail_requests(self, path_prefix: str, status: int = 503, method: str = "*", count: int = -1,
                      after: bool = False) -> None:
        """Answer matching requests with ``status``; with ``after`` the request is carried out
        first (the client loses the answer to a request that succeeded)."""
        self.control("POST", "/fail", {"path_prefix": path_prefix, "status": status, "method": method,
                                       "count": count, "after": after})

    def clear_failures(self) -> None:
        self.control("DELETE", "/fail")

    def set_zones(self, *zones: str) -> None:
        self.control("PUT", "/zones", {"zones": list(zones)})

    def volumes(self) -> list[dict]:
        return self.control("GET", "/volumes")["volumes"]

    def servers(self) -> list[dict]:
        return self.control("GET", "/servers")["servers"]

    def requests(self, clear: bool = False) -> list[dict]:
        return self.control("DELETE" if clear else "GET", "/requests")["requests"]

    # -- client configuration -----------------------------------------------------------
    def cloud_entries(self) -> dict:
        """clouds.yaml entries: ``fake`` (password), ``fake-appcred`` and ``fake-admin``."""
        return clouds_yaml_entries(self.config)

    def write_clouds_yaml(self, path) -> Path:
        """JSON is valid YAML, so the file needs no YAML writer."""
        path = Path(path)
        # It holds the project admin's password: for the hub's account alone.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(json.dumps({"clouds": self.cloud_entries()}, indent=2))
        return path
