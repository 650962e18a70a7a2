"""The TLS public host (jupyter_config/nginx/public-host-tls.conf) with real nginx and a real publisher.

What it proves, on loopback addresses standing in for the host's two interfaces (127.0.0.1:
public, behind the "load balancer"; 127.0.0.2: the private address the notebook servers use):

* the public HTTPS server never serves /api/, whatever address or X-Forwarded-For a request
  has: behind a load balancer every visitor arrives from a private address;
* /api/ answers on the private address, as its default server, even with a Debian-like stock
  default site enabled on the same port;
* the viewer's address is taken from X-Forwarded-For only when the load balancer sends it;
* during a secret rotation the publisher accepts tokens of the new and the previous secret.
"""

from __future__ import annotations

import http.client
import json
import os
import ssl
import subprocess
from pathlib import Path

import pytest

from simulators import nginx
from simulators.processes import ManagedProcess, free_port, wait_until, port_open
from simulators.voila_host import PublisherProcess
from voila_publisher.tokens import derive_publish_token

pytestmark = pytest.mark.integration

NEW = "rotated-secret-" + "n" * 24
OLD = "earlier-secret-" + "o" * 24
PUBLIC, PRIVATE, ELSEWHERE = "127.0.0.1", "127.0.0.2", "127.0.0.3"


def test_checked_in_tls_config_matches_the_template():
    assert nginx.TLS_CONF.read_text() == nginx.render_public_host_conf(standalone=False, **nginx.TLS_SETTINGS), (
        "regenerate it: python -m simulators.nginx"
    )


@pytest.fixture(scope="module")
def tls_host(tmp_path_factory):
    d = tmp_path_factory.mktemp("tls-host")
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=dashboards.example.org",
         "-keyout", str(d / "privkey.pem"), "-out", str(d / "fullchain.pem")],
        check=True, capture_output=True,
    )
    old_file = d / "previous_secret"
    old_file.write_text(OLD)
    os.chmod(old_file, 0o600)
    publisher = PublisherProcess(
        d / "publisher", secret=NEW, dashboards_dir=d / "dashboards", start_voila=False, log_dir=d,
        extra_config=(
            f"c.PublisherService.previous_secret_files = [{str(old_file)!r}]\n"
            "c.PublisherService.static_pages = False\n"
            # The routing is under test here; test_public_host_sandbox runs the publisher as its own account.
            + ("c.PublisherService.allow_root = True\n" if os.geteuid() == 0 else "")
        ),
    )
    publisher.ready = lambda: port_open("127.0.0.1", publisher.port)  # /healthz also wants Voila, not run here
    publisher.ready_timeout = 60
    publisher.start()
    public_port, private_port = free_port(), free_port()
    settings = {
        **nginx.TLS_SETTINGS,
        # The production file's shape, on test addresses: only addresses, ports and paths differ.
        "listen": f"{PUBLIC}:{public_port} ssl default_server",
        "tls": {"certificate": str(d / "fullchain.pem"), "key": str(d / "privkey.pem")},
        "real_ip_from": (f"{PUBLIC}/32",),  # the "load balancer"
        "api_listen": f"{PRIVATE}:{private_port} default_server",
        "redirect_listen": str(private_port),
        "publisher": f"127.0.0.1:{publisher.port}",
        "voila": f"127.0.0.1:{free_port()}",
        "static_root": str(d / "static"),
        "worker_user": "root" if os.geteuid() == 0 else "",
    }
    conf = nginx.render_public_host_conf(standalone=True, prefix=d, **settings)
    # Debian's stock site, still enabled: the default server for every other address on the port.
    stock = f"server {{ listen {private_port} default_server; server_name _; return 200 'stock default site\\n'; }}\n"
    conf = conf.rstrip().rstrip("}") + stock + "}\n"
    (d / "nginx.conf").write_text(conf)
    check = subprocess.run([nginx.nginx_binary(), "-t", "-c", str(d / "nginx.conf"), "-p", f"{d}/", "-e", str(d / "error.log")],
                           capture_output=True, text=True)
    assert check.returncode == 0, check.stderr
    server = ManagedProcess(
        "nginx", [nginx.nginx_binary(), "-c", d / "nginx.conf", "-p", f"{d}/", "-e", d / "error.log", "-g", "daemon off;"],
        log_dir=d, ready=lambda: port_open(PUBLIC, public_port) and port_open(PRIVATE, private_port), ready_timeout=20,
    )
    try:
        server.start()
    except Exception:
        publisher.stop()
        raise
    yield {"dir": d, "public_port": public_port, "private_port": private_port}
    server.stop()
    publisher.stop()


def request(host, port, path, *, tls=False, source=None, headers=None):
    kwargs = {"timeout": 30, "source_address": (source, 0) if source else None}
    if tls:
        conn = http.client.HTTPSConnection(host, port, context=ssl._create_unverified_context(), **kwargs)
    else:
        conn = http.client.HTTPConnection(host, port, **kwargs)
    try:
        conn.request("GET", path, headers=headers or {})
        response = conn.getresponse()
        return response.status, dict(response.getheaders()), response.read().decode(errors="replace")
    finally:
        conn.close()


def bearer(secret, owner="alice"):
    return {"Authorization": f"Bearer {derive_publish_token(secret, owner)}"}


def test_the_public_server_never_serves_the_api(tls_host):
    port = tls_host["public_port"]
    # From the load balancer (a private address), claiming a private client: still not there.
    for headers in (bearer(NEW), {**bearer(NEW), "X-Forwarded-For": "10.0.2.15"}):
        status, _, body = request(PUBLIC, port, "/api/dashboards", tls=True, headers={**headers, "Host": "dashboards.example.org"})
        assert status == 404, body
    status, headers, body = request(PUBLIC, port, "/", tls=True, headers={"Host": "dashboards.example.org"})
    assert status == 200 and "Published dashboards" in body
    assert headers.get("Strict-Transport-Security") == "max-age=31536000"
    assert headers.get("X-Frame-Options") == "DENY"


def test_the_api_is_the_private_address_default_server_beside_a_stock_default_site(tls_host):
    port = tls_host["private_port"]
    status, _, body = request(PRIVATE, port, "/api/dashboards", headers={**bearer(NEW), "Host": "10.0.2.10:8080"})
    assert status == 200, body
    assert isinstance(json.loads(body), list)
    # The same port on another address is the stock site's: the API is not there.
    status, _, body = request(PUBLIC, port, "/api/dashboards", headers={**bearer(NEW), "Host": "10.0.2.10:8080"})
    assert status == 200 and body == "stock default site\n"
    # Plain HTTP for the public name redirects to HTTPS.
    status, headers, _ = request(PUBLIC, port, "/", headers={"Host": "dashboards.example.org"})
    assert status == 301 and headers["Location"] == "https://dashboards.example.org/"
    # Without a token: refused by nginx before the publisher.
    status, _, body = request(PRIVATE, port, "/api/dashboards", headers={"Host": "10.0.2.10:8080"})
    assert status == 401 and json.loads(body)["reason"] == "no-token"


def test_tokens_of_the_new_and_the_previous_secret_work_during_a_rotation(tls_host):
    port = tls_host["private_port"]
    for secret in (NEW, OLD):
        status, _, body = request(PRIVATE, port, "/api/dashboards", headers={**bearer(secret), "Host": "10.0.2.10:8080"})
        assert status == 200, (secret[:8], body)
    status, _, body = request(PRIVATE, port, "/api/dashboards", headers={**bearer("some-other-secret-" + "x" * 20), "Host": "10.0.2.10:8080"})
    assert status == 401 and json.loads(body)["reason"] == "invalid-token"


def test_the_viewer_address_comes_from_the_load_balancer_only(tls_host):
    port, log = tls_host["public_port"], Path(tls_host["dir"]) / "access.log"
    request(PUBLIC, port, "/?from-lb", tls=True, source=PUBLIC, headers={"Host": "dashboards.example.org", "X-Forwarded-For": "203.0.113.9"})
    request(PUBLIC, port, "/?not-lb", tls=True, source=ELSEWHERE, headers={"Host": "dashboards.example.org", "X-Forwarded-For": "203.0.113.77"})

    def lines():
        return log.read_text() if log.exists() else ""

    wait_until(lambda: "not-lb" in lines(), 10, "nginx to log both requests")
    by_query = {q: next(line for line in lines().splitlines() if q in line) for q in ("from-lb", "not-lb")}
    assert by_query["from-lb"].startswith("203.0.113.9 "), by_query
    assert by_query["not-lb"].startswith(f"{ELSEWHERE} "), by_query
