"""Debian's nginx in front of the public Voila host, rendered from jupyter_config/nginx/.

One template serves production and local runs: ``render_public_host_conf(standalone=False)``
gives the server block an admin drops into ``/etc/nginx/conf.d/`` (checked in as
``public-host.conf``); ``NginxProcess`` renders a complete nginx.conf whose pid, logs and
temp paths live in its own directory and runs nginx in the foreground on a free port.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import jinja2

from simulators import REPO_ROOT
from simulators.processes import ManagedProcess, ProcessFailed, as_user, free_port, http_ok

NGINX_DIR = REPO_ROOT / "jupyter_config" / "nginx"
TEMPLATE = "public-host.conf.j2"
PRODUCTION_CONF = NGINX_DIR / "public-host.conf"

# RFC 1918, loopback and IPv6 unique-local/loopback: where notebook servers live.
PRIVATE_NETWORKS = ("127.0.0.0/8", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "::1/128", "fc00::/7")

PRODUCTION_SETTINGS = dict(
    # default_server: a request by the host's bare IP comes here, not to Debian's stock site
    # (remove /etc/nginx/sites-enabled/default; nginx -t names the duplicate if it stays).
    listen="80 default_server",
    server_name="dashboards.example.org",
    publisher="127.0.0.1:8870",
    voila="127.0.0.1:8866",
    voila_base_url="/dashboards/_voila/",
    render_prefix="/_voila_render/",
    static_root="/var/lib/voila-publisher/static",
    allowed_networks=PRIVATE_NETWORKS,
    client_max_body_size="32m",
    read_timeout="3600s",
    tls=None,  # {"certificate": path, "key": path}: HTTPS on `listen`
    real_ip_from=(),  # the load balancer's addresses, trusted for X-Forwarded-For
    api_listen="",  # the private address:port of a server of its own for /api/ ("" = on `listen`)
    redirect_listen="",  # a plain-HTTP listener that redirects to https
)

#: The TLS variant (public-host-tls.conf): HTTPS behind a load balancer, /api/ on the private address only.
TLS_SETTINGS = dict(
    listen="443 ssl default_server",
    tls={"certificate": "/etc/ssl/dashboards/fullchain.pem", "key": "/etc/ssl/dashboards/privkey.pem"},
    real_ip_from=("10.0.1.0/24",),
    api_listen="10.0.2.10:8080 default_server",
    redirect_listen="80",
)
TLS_CONF = NGINX_DIR / "public-host-tls.conf"


def nginx_binary() -> str:
    return shutil.which("nginx") or "/usr/sbin/nginx"


def render_public_host_conf(*, standalone: bool, prefix: str | Path | None = None, **settings) -> str:
    values = {**PRODUCTION_SETTINGS, **settings}
    if values["render_prefix"] != "/_voila_render/":
        raise ValueError("render_prefix is fixed by voila_publisher.host.handlers.INTERNAL_RENDER_PREFIX")
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(NGINX_DIR), keep_trailing_newline=True, undefined=jinja2.StrictUndefined)
    values.setdefault("worker_user", "")
    return env.get_template(TEMPLATE).render(
        standalone=standalone, prefix=str(prefix) if prefix else "", mime_types="/etc/nginx/mime.types", **values
    )


class NginxProcess(ManagedProcess):
    """nginx with the public host's config in ``directory``, listening on 127.0.0.1:``port``."""

    def __init__(self, directory, *, publisher_port: int, voila_port: int, port: int | None = None, user: str | None = None, log_dir=None, **settings):
        """``user``: run nginx (master and workers) as this account instead of the caller's (needs root)."""
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.user = user
        if user:
            shutil.chown(self.dir, user, user)
            os.chmod(self.dir, 0o700)
        self._chosen_port = port is None  # a port we picked may be taken before nginx binds it
        self._conf_settings = dict(publisher=f"127.0.0.1:{publisher_port}", voila=f"127.0.0.1:{voila_port}",
                                   worker_user="root" if os.geteuid() == 0 and not user else "", **settings)
        self.conf_path = self.dir / "nginx.conf"
        self._write_conf(port or free_port())
        super().__init__(
            "nginx",
            as_user(user, [nginx_binary(), "-c", self.conf_path, "-p", f"{self.dir}/", "-e", self.dir / "error.log", "-g", "daemon off;"]),
            log_dir=log_dir or self.dir,
            ready=http_ok(f"{self.url}/no-such-page", accept=(404,)),
            ready_timeout=20,
        )

    def _write_conf(self, port: int) -> None:
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.conf_path.write_text(render_public_host_conf(
            standalone=True, prefix=self.dir, listen=f"127.0.0.1:{port}", server_name="localhost",
            **self._conf_settings))
        if self.user:
            shutil.chown(self.conf_path, self.user, self.user)
        self.check_config()

    def start(self) -> "NginxProcess":
        """Start; when another process took the port we picked between picking and binding
        (parallel test workers), pick again, twice at most. A port the caller gave is kept."""
        for attempt in range(3):
            try:
                return super().start()
            except ProcessFailed as e:
                if not self._chosen_port or "Address already in use" not in str(e) or attempt == 2:
                    raise
            self._write_conf(free_port())
            self.ready = http_ok(f"{self.url}/no-such-page", accept=(404,))
        raise AssertionError("unreachable")

    def check_config(self) -> None:
        """``nginx -t`` on the rendered file, so a template mistake fails with nginx's words."""
        result = subprocess.run(
            as_user(self.user, [nginx_binary(), "-t", "-c", str(self.conf_path), "-p", f"{self.dir}/", "-e", str(self.dir / "error.log")]),
            capture_output=True, text=True,
        )
        if result.returncode != 0:
            raise ValueError(f"nginx rejects {self.conf_path}:\n{result.stderr}")

    def error_log(self) -> str:
        try:
            return (self.dir / "error.log").read_text(errors="replace")
        except FileNotFoundError:
            return ""


if __name__ == "__main__":  # regenerate the checked-in production configs
    PRODUCTION_CONF.write_text(render_public_host_conf(standalone=False))
    TLS_CONF.write_text(render_public_host_conf(standalone=False, **TLS_SETTINGS))
    print(f"wrote {PRODUCTION_CONF} and {TLS_CONF}")
