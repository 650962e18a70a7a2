"""The public Voila host on this machine: publisher service, Voila (every kernel sandboxed) and nginx.

    host = PublicHost(tmp_dir).start()   # one call, free ports
    host.url                             # nginx: gallery at /, dashboards, /api/
    host.token_for("alice")              # the publish token the hub would give alice
    host.stop()

Run as root (the tests, the demo), it is laid out as docs/publish.md asks of production, so the
tests see what a real host does: nothing runs as root. The publisher runs as ``publisher`` and
alone reads its secret and writes the store; Voila runs as ``voila`` (a service of its own, read
access to the store through its group) and starts every kernel in a bubblewrap sandbox under that
account; nginx runs as ``www-data``. Run as another user (a developer's checkout), everything runs
as that user, with the publisher starting Voila, and the kernels are still sandboxed.

Used by the demo, the integration and browser tests and the benchmark.
"""

from __future__ import annotations

import grp
import os
import pwd
import secrets
import shlex
import shutil
import subprocess
import tempfile
from pathlib import Path

from voila_publisher.tokens import derive_publish_token

from simulators.nginx import NginxProcess
from simulators.accounts import ensure_account
from simulators.processes import ManagedProcess, as_user, child_env, free_port, http_ok, tcp_open, venv_bin_dir

PUBLISHER_USER = "publisher"
VOILA_USER = "voila"
NGINX_USER = "www-data"


def ensure_service_account(name: str) -> None:
    """A system account without a login or a home, as a package would create it."""
    ensure_account(name, system=True)


def _own(path: Path, user: str, group: str, mode: int) -> None:
    path.mkdir(parents=True, exist_ok=True)
    shutil.chown(path, user, group)
    os.chmod(path, mode)


class PublisherProcess(ManagedProcess):
    """``voila-publisher`` with a config file in ``directory`` (Voila started separately or as its child)."""

    def __init__(
        self, directory, *, secret: str, dashboards_dir: Path, start_voila: bool, user: str | None = None,
        public_url: str = "", versions_kept: int = 3, extra_config: str = "", control_token_file: str = "",
        voila_runtime_dir: str = "", static_dir: Path | None = None, env: dict | None = None, log_dir=None,
    ):
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.voila_port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.dashboards_dir = dashboards_dir
        self.control_token_file = Path(control_token_file or self.dir / "runtime" / "control_token")
        secret_file = self.dir / "shared_secret"
        # The secret goes through a 0600 file: never on a command line or in the child's env.
        fd = os.open(secret_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secret)
        self.config_path = self.dir / "voila_publisher_config.py"
        self.config_path.write_text(
            "c = get_config()  # noqa\n"
            f"c.PublisherService.port = {self.port}\n"
            f"c.PublisherService.voila_port = {self.voila_port}\n"
            f"c.PublisherService.dashboards_dir = {str(dashboards_dir)!r}\n"
            f"c.PublisherService.static_dir = {str(static_dir or '')!r}\n"
            f"c.PublisherService.shared_secret_file = {str(secret_file)!r}\n"
            f"c.PublisherService.public_url = {public_url!r}\n"
            f"c.PublisherService.versions_kept = {versions_kept}\n"
            f"c.PublisherService.runtime_dir = {str(self.dir / 'runtime')!r}\n"
            f"c.PublisherService.start_voila = {start_voila}\n"
            f"c.PublisherService.control_token_file = {control_token_file!r}\n"
            "c.PublisherService.cull_interval = 30\n"
            + (f"c.PublisherService.voila_env = {{'JUPYTER_RUNTIME_DIR': {voila_runtime_dir!r}}}\n" if voila_runtime_dir else "")
            + extra_config
        )
        if user:
            for path in (self.dir, secret_file, self.config_path):
                shutil.chown(path, user, user)
        env = child_env(env)
        env.pop("HYBRID_PUBLISHER_SECRET", None)
        super().__init__(
            "voila-publisher",
            as_user(user, [venv_bin_dir() / "voila-publisher", f"--config={self.config_path}"]),
            log_dir=log_dir or self.dir,
            env=env,
            cwd=self.dir,
            ready=http_ok(f"{self.url}/healthz"),
            ready_timeout=90,
        )

    def voila_command(self) -> list[str]:
        """Voila's command line, as ``voila-publisher --print-voila-command`` gives it to an admin."""
        out = subprocess.run(
            [venv_bin_dir() / "voila-publisher", f"--config={self.config_path}", "--print-voila-command"],
            capture_output=True, text=True, env=child_env(), check=True,
        ).stdout
        return shlex.split(out.strip().splitlines()[-1])


class VoilaProcess(ManagedProcess):
    """Voila as a service of its own, under its own account (what a production host runs)."""

    def __init__(self, argv: list[str], *, port: int, user: str, home: Path, log_dir, env: dict | None = None):
        # Whatever the caller planted stays in Voila's environment: the sandbox must keep it from kernels.
        env = child_env(env)
        env.update(HOME=str(home), JUPYTER_RUNTIME_DIR=str(home / "runtime"), JUPYTER_DATA_DIR=str(home / "data"))
        super().__init__("voila", as_user(user, argv), log_dir=log_dir, env=env, cwd=home, ready=tcp_open("127.0.0.1", port), ready_timeout=90)


class PublicHost:
    """Publisher + Voila + nginx; ``url`` is what viewers and clients use."""

    def __init__(self, directory, *, versions_kept: int = 3, allowed_networks=None, extra_config: str = "", env: dict | None = None):
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.secret = secrets.token_urlsafe(32)
        self.nginx_port = free_port()
        self.url = f"http://127.0.0.1:{self.nginx_port}"
        self.api_url = f"{self.url}/api/"
        self.separate_accounts = os.geteuid() == 0
        self.voila: VoilaProcess | None = None
        if self.separate_accounts:
            for name in (PUBLISHER_USER, VOILA_USER):
                ensure_service_account(name)
            # The service accounts must be able to walk to their directories: a fresh base that
            # only lets them pass (pytest's own temporary directories are private to root).
            self.base = Path(tempfile.mkdtemp(prefix="public-host-"))
            os.chmod(self.base, 0o711)
            (self.dir / "host-root").unlink(missing_ok=True)
            (self.dir / "host-root").symlink_to(self.base)
        else:
            self.base = self.dir
        publisher_dir = self.base / "publisher"
        dashboards = self.base / "dashboards"
        static = self.base / "static"
        nginx_user = NGINX_USER if self.separate_accounts and _account_exists(NGINX_USER) else None
        voila_home = self.base / "voila"
        shared = self.base / "publisher-voila"
        control_token_file = ""
        if self.separate_accounts:
            _own(publisher_dir, PUBLISHER_USER, PUBLISHER_USER, 0o700)
            # The store: written by the publisher, read by Voila's group, nobody else.
            _own(dashboards, PUBLISHER_USER, VOILA_USER, 0o2750)
            # Static pages: written by the publisher, read by nginx's group, nothing else of the store.
            _own(static, PUBLISHER_USER, nginx_user or PUBLISHER_USER, 0o2750)
            _own(voila_home, VOILA_USER, VOILA_USER, 0o700)
            _own(shared, PUBLISHER_USER, VOILA_USER, 0o750)
            control_token_file = str(shared / "control_token")
            token = Path(control_token_file)
            token.write_text(secrets.token_urlsafe(32))
            shutil.chown(token, PUBLISHER_USER, VOILA_USER)
            os.chmod(token, 0o640)
        self.publisher = PublisherProcess(
            publisher_dir, secret=self.secret, dashboards_dir=dashboards, start_voila=not self.separate_accounts,
            user=PUBLISHER_USER if self.separate_accounts else None, public_url=self.url, versions_kept=versions_kept,
            extra_config=extra_config, control_token_file=control_token_file, static_dir=static, env=env, log_dir=self.dir,
            voila_runtime_dir="" if self.separate_accounts else str(self.base / "voila-runtime"),
        )
        if self.separate_accounts:
            self.voila = VoilaProcess(
                self.publisher.voila_command(), port=self.publisher.voila_port, user=VOILA_USER, home=voila_home,
                log_dir=self.dir, env=env,
            )
        nginx_settings = {"allowed_networks": allowed_networks} if allowed_networks is not None else {}
        nginx_dir = self.base / "nginx"
        self.nginx = NginxProcess(
            nginx_dir, port=self.nginx_port, publisher_port=self.publisher.port, voila_port=self.publisher.voila_port,
            user=nginx_user, log_dir=self.dir, static_root=str(static),
            **nginx_settings,
        )

    @property
    def dashboards_dir(self) -> Path:
        return self.publisher.dashboards_dir

    def processes(self) -> list[ManagedProcess]:
        return [p for p in (self.voila, self.publisher, self.nginx) if p is not None]

    def token_for(self, owner: str) -> str:
        return derive_publish_token(self.secret, owner)

    def start(self) -> "PublicHost":
        started = []
        try:
            for process in self.processes():
                process.start()
                started.append(process)
        except Exception:
            for process in reversed(started):
                process.stop()
            raise
        return self

    def stop(self) -> None:
        for process in reversed(self.processes()):
            process.stop()
        if self.separate_accounts:
            shutil.rmtree(self.base, ignore_errors=True)

    def log_text(self) -> str:
        parts = [self.publisher.log_text()]
        if self.voila:
            parts.append("--- voila ---\n" + self.voila.log_text())
        parts.append("--- nginx ---\n" + self.nginx.error_log())
        return "\n".join(parts)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


def _account_exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
        grp.getgrnam(name)
        return True
    except KeyError:
        return False
