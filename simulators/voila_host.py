"""The public Voila host on this machine: publisher service (which starts Voila) + nginx.

    host = PublicHost(tmp_dir).start()   # one call, free ports, everything under tmp_dir
    host.url                             # nginx: gallery at /, dashboards, /api/
    host.token_for("alice")              # the publish token the hub would give alice
    host.stop()

Used by the demo, the integration and browser tests and the benchmark.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from voila_publisher.tokens import derive_publish_token

from simulators.nginx import NginxProcess
from simulators.processes import ManagedProcess, child_env, free_port, http_ok, venv_bin_dir


class PublisherProcess(ManagedProcess):
    """``voila-publisher`` (and the Voila it starts) with a config file in ``directory``."""

    def __init__(self, directory, *, secret: str, public_url: str = "", versions_kept: int = 3, extra_config: str = "", env: dict | None = None):
        self.dir = Path(directory)
        self.control_token_file = self.dir / "runtime" / "control_token"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.voila_port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.dashboards_dir = self.dir / "dashboards"
        secret_file = self.dir / "shared_secret"
        # The secret goes through a 0600 file: never on a command line or in the child's env.
        fd = os.open(secret_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secret)
        config = self.dir / "voila_publisher_config.py"
        config.write_text(
            "c = get_config()  # noqa\n"
            f"c.PublisherService.port = {self.port}\n"
            f"c.PublisherService.voila_port = {self.voila_port}\n"
            f"c.PublisherService.dashboards_dir = {str(self.dashboards_dir)!r}\n"
            f"c.PublisherService.shared_secret_file = {str(secret_file)!r}\n"
            f"c.PublisherService.public_url = {public_url!r}\n"
            f"c.PublisherService.versions_kept = {versions_kept}\n"
            f"c.PublisherService.runtime_dir = {str(self.dir / 'runtime')!r}\n"
            "c.PublisherService.cull_interval = 30\n" + extra_config
        )
        env = child_env(env)
        env.pop("HYBRID_PUBLISHER_SECRET", None)
        super().__init__(
            "voila-publisher",
            [venv_bin_dir() / "voila-publisher", f"--config={config}"],
            log_dir=self.dir,
            env=env,
            cwd=self.dir,
            ready=http_ok(f"{self.url}/healthz"),
            ready_timeout=90,
        )


class PublicHost:
    """Publisher + Voila + nginx in ``directory``; ``url`` is what viewers and clients use."""

    def __init__(self, directory, *, versions_kept: int = 3, allowed_networks=None, extra_config: str = "", env: dict | None = None):
        self.dir = Path(directory)
        self.secret = secrets.token_urlsafe(32)
        self.nginx_port = free_port()
        self.url = f"http://127.0.0.1:{self.nginx_port}"
        self.api_url = f"{self.url}/api/"
        self.publisher = PublisherProcess(
            self.dir / "publisher", secret=self.secret, public_url=self.url, versions_kept=versions_kept,
            extra_config=extra_config, env=env,
        )
        nginx_settings = {"allowed_networks": allowed_networks} if allowed_networks is not None else {}
        self.nginx = NginxProcess(
            self.dir / "nginx", port=self.nginx_port, publisher_port=self.publisher.port, voila_port=self.publisher.voila_port, **nginx_settings
        )

    @property
    def dashboards_dir(self) -> Path:
        return self.publisher.dashboards_dir

    def token_for(self, owner: str) -> str:
        return derive_publish_token(self.secret, owner)

    def start(self) -> "PublicHost":
        self.publisher.start()
        try:
            self.nginx.start()
        except Exception:
            self.publisher.stop()
            raise
        return self

    def stop(self) -> None:
        self.nginx.stop()
        self.publisher.stop()

    def log_text(self) -> str:
        return self.publisher.log_text() + "\n--- nginx ---\n" + self.nginx.error_log()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
