"""Published notebooks are hostile code: dashboards that attack the public host, on a real
nginx + publisher + Voila whose kernels run in the bubblewrap sandbox.

Every attack must be refused for the expected reason (not because the probe itself broke), the
attacking page must still render for its viewers, the other dashboards must be unchanged and
the host must keep serving.
"""

from __future__ import annotations

import errno
import hashlib
import os
import pwd
import socket
import stat
import time

import pytest
import requests

from simulators.processes import wait_until
from simulators.voila_host import PUBLISHER_USER, PublicHost
from tests.fixtures.attacks import BIG_ALLOCATION, FORK_BOMB, STUBBORN_LOOP, parse_marked_json, probe_cell
from tests.fixtures.publish import LIVE, PLANTED_ENV, WAIT_FOR_STATIC_PAGES, PublisherApi, make_notebook

pytestmark = pytest.mark.integration

CPU_LIMIT = 8
MAX_PROCESSES = 32
EXECUTION_TIMEOUT = 10


@pytest.fixture(scope="module")
def host(tmp_path_factory):
    config = (
        f"c.PublisherService.kernel_cpu_limit = {CPU_LIMIT}\n"
        f"c.PublisherService.kernel_max_processes = {MAX_PROCESSES}\n"
        f"c.PublisherService.kernel_memory_limit = {1024**3}\n"
        f"c.PublisherService.execution_timeout = {EXECUTION_TIMEOUT}\n"
        + WAIT_FOR_STATIC_PAGES
    )
    h = PublicHost(tmp_path_factory.mktemp("attacked-host"), extra_config=config, env=PLANTED_ENV)
    h.start()
    yield h
    h.stop()


@pytest.fixture(scope="module")
def api(host) -> PublisherApi:
    return PublisherApi(host)


@pytest.fixture(scope="module")
def hub_like(tmp_path_factory):
    """What a hub on the same machine has: a config file holding a token, and a listening API port."""
    directory = tmp_path_factory.mktemp("hub")
    os.chmod(directory, 0o755)
    config = directory / "jupyterhub_config.py"
    config.write_text("c.JupyterHub.services = [{'name': 'admin', 'api_token': 'hub-admin-token-planted'}]\n")
    os.chmod(config, 0o644)  # even world-readable, it must not be visible from a kernel
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    yield {"config": str(config), "port": server.getsockname()[1]}
    server.close()


@pytest.fixture(scope="module")
def victim(api, host):
    """Bob's dashboard, which attackers try to read and deface."""
    r = api.put("bob", "victim", make_notebook(("code", "print('bob says', 6 * 7)")))
    assert r.status_code == 201, r.text
    return {"dir": host.dashboards_dir / "bob" / "victim", "digest": _tree_digest(host.dashboards_dir / "bob")}


def _tree_digest(directory) -> str:
    h = hashlib.sha256()
    for root, dirs, files in sorted(os.walk(directory)):
        dirs.sort()
        for name in sorted(files):
            path = os.path.join(root, name)
            h.update(path.encode())
            with open(path, "rb") as f:
                h.update(f.read())
    return h.hexdigest()


def _assert_victim_intact(api, host, victim):
    assert _tree_digest(host.dashboards_dir / "bob") == victim["digest"], "bob's dashboard files changed"
    page = api.render("bob", "victim")
    assert page.status_code == 200 and "bob says 42" in page.text


def _refused(result: dict, *reasons) -> bool:
    """The attempt failed, and for one of the expected reasons (exception class or errno name)."""
    if result.get("ok"):
        return False
    code = result.get("errno")
    return result.get("type") in reasons or (code is not None and errno.errorcode.get(code) in reasons)


@pytest.mark.parametrize("mode", ["prerendered", "live"])
def test_a_dashboard_that_attacks_reads_writes_and_connects_is_refused_everywhere(api, host, victim, hub_like, mode):
    """Run once at publish time (the static page's render) and once in a viewer's own kernel."""
    targets = {
        "secret_file": str(host.publisher.dir / "shared_secret"),
        "store_dir": str(host.dashboards_dir),
        "other_dashboard_file": str(victim["dir"] / "current" / "victim.ipynb"),
        "other_dashboard_dir": str(victim["dir"] / "current"),
        "own_dir_file": "defaced.txt",
        "hub_secret_file": hub_like["config"],
        "ports": {
            "hub_api": hub_like["port"],
            "publisher": host.publisher.port,
            "voila": host.publisher.voila_port,
            "nginx": host.nginx_port,
        },
        "planted_values": sorted(PLANTED_ENV.values()) + [host.secret],
    }
    metadata = {"voila_publisher": {"data_files": ["data.csv"], "live": mode == "live"}}
    notebook = make_notebook(("code", probe_cell(targets)), metadata=metadata)
    r = api.put("mallory", f"probe-{mode}", notebook, files={"data.csv": b"own,data\n"})
    assert r.status_code == 201, r.text
    page = api.render("mallory", f"probe-{mode}")
    assert page.status_code == 200, host.log_text()[-3000:]
    assert ('"kernelId"' in page.text) == (mode == "live")
    results = parse_marked_json(page.text, "PROBES")

    not_there = ("FileNotFoundError", "ENOENT")
    assert _refused(results["read_publisher_secret"], *not_there), results
    assert _refused(results["list_store"], *not_there), results
    assert _refused(results["read_other_dashboard"], *not_there), results
    assert _refused(results["write_other_dashboard"], *not_there), results
    assert _refused(results["overwrite_other_notebook"], *not_there), results
    assert _refused(results["read_hub_secret"], *not_there), results
    read_only = ("EROFS", "EACCES")
    assert _refused(results["write_own_dashboard"], *read_only), results
    assert _refused(results["write_usr"], *read_only), results
    assert _refused(results["write_root"], *read_only), results
    for name in ("hub_api", "publisher", "voila", "nginx"):
        assert _refused(results[f"connect_{name}"], "ECONNREFUSED", "ENETUNREACH", "EHOSTUNREACH"), (name, results)
    assert _refused(results["other_processes_environ"], "LookupError"), results
    assert _refused(results["own_environment_has_planted"], "LookupError"), results

    # Who the kernel is and what it sees: not root, not the publisher, alone in its PID namespace.
    assert results["uid"] not in (0, _uid(PUBLISHER_USER)) if host.separate_accounts else results["uid"] != 0
    assert len(results["pids_visible"]) < 10, results["pids_visible"]
    # The probe really ran where a dashboard runs: its own data file and a private /tmp work.
    assert results["own_data"]["ok"] and "own,data" in results["own_data"]["value"], results["own_data"]
    assert results["tmp_writable"] is True

    _assert_victim_intact(api, host, victim)
    assert not (host.dashboards_dir / "mallory" / f"probe-{mode}" / "current" / "defaced.txt").exists()


def test_a_fork_bomb_stops_at_the_process_limit(api, host, victim):
    api.put("mallory", "forkbomb", make_notebook(("code", FORK_BOMB)))
    page = api.render("mallory", "forkbomb")
    assert page.status_code == 200
    outcome = parse_marked_json(page.text, "FORKBOMB")
    assert outcome["error"] == "BlockingIOError", outcome  # EAGAIN from RLIMIT_NPROC
    assert outcome["children"] < MAX_PROCESSES
    _assert_victim_intact(api, host, victim)


def test_a_ten_gigabyte_allocation_fails_inside_the_kernel(api, host, victim):
    api.put("mallory", "alloc", make_notebook(("code", BIG_ALLOCATION), ("code", "print('still', 'alive')")))
    page = api.render("mallory", "alloc")
    assert page.status_code == 200
    assert parse_marked_json(page.text, "ALLOC") == {"error": "MemoryError"}
    assert "still alive" in page.text  # the kernel survived its own failed allocation
    _assert_victim_intact(api, host, victim)


def test_an_endless_loop_that_ignores_interrupts_is_killed_by_the_cpu_limit(api, host, victim):
    before = _kernel_pids()
    api.put("mallory", "loop", make_notebook(("code", "print('before the loop')"), ("code", STUBBORN_LOOP)))
    started = time.monotonic()
    page = api.render("mallory", "loop")
    # The viewer gets the page once Voila's execution timeout gives up on the cell ...
    assert page.status_code == 200
    assert "before the loop" in page.text
    assert time.monotonic() - started < EXECUTION_TIMEOUT + 60
    # The spinning kernel does not outlive its CPU allowance ...
    spinning = _kernel_pids() - before
    wait_until(lambda: not (spinning & _kernel_pids()), timeout=CPU_LIMIT + 60, what="the looping kernel to be killed")
    # ... and the host serves the other dashboards as before.
    _assert_victim_intact(api, host, victim)
    assert requests.get(f"{host.publisher.url}/healthz", timeout=10).status_code == 200


def test_nothing_on_the_public_host_runs_as_root_and_the_secret_is_the_publishers_alone(api, host):
    if not host.separate_accounts:
        pytest.skip("separate service accounts need the tests to run as root")
    api.put("alice", "open-kernel", make_notebook(("code", "x = 1"), metadata=LIVE))
    assert api.render("alice", "open-kernel").status_code == 200  # a kernel is alive now
    tree = _descendants([p.proc.pid for p in host.processes()])
    assert len(tree) >= 5, tree  # publisher, Voila, nginx master and worker, a kernel
    owners = {pid: _proc_uid(pid) for pid in tree}
    assert 0 not in owners.values(), {pid: _cmdline(pid) for pid, uid in owners.items() if uid == 0}
    assert any("ipykernel" in _cmdline(pid) for pid in tree)

    secret = host.publisher.dir / "shared_secret"
    info = secret.stat()
    assert info.st_uid == _uid(PUBLISHER_USER) and stat.S_IMODE(info.st_mode) == 0o600
    store = host.dashboards_dir.stat()
    assert store.st_uid == _uid(PUBLISHER_USER)
    assert stat.S_IMODE(store.st_mode) & 0o007 == 0  # nobody outside the publisher and Voila's group
    for root, dirs, files in os.walk(host.dashboards_dir):
        for name in dirs + files:
            mode = os.lstat(os.path.join(root, name)).st_mode
            if not stat.S_ISLNK(mode):
                assert stat.S_IMODE(mode) & 0o002 == 0, os.path.join(root, name)


def _uid(user: str) -> int:
    return pwd.getpwnam(user).pw_uid


def _proc_uid(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("Uid:"):
                return int(line.split()[1])
    raise LookupError(pid)


def _cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def _children_map() -> dict[int, list[int]]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry))
    return children


def _descendants(roots: list[int]) -> set[int]:
    children = _children_map()
    seen, todo = set(), list(roots)
    while todo:
        pid = todo.pop()
        if pid not in seen:
            seen.add(pid)
            todo.extend(children.get(pid, []))
    return seen


def _kernel_pids() -> set[int]:
    return {int(p) for p in os.listdir("/proc") if p.isdigit() and "ipykernel_launcher" in _cmdline(int(p))}


def test_viewers_beyond_the_live_kernel_limit_get_a_busy_page_not_a_kernel(tmp_path_factory):
    h = PublicHost(tmp_path_factory.mktemp("bounded-host"), extra_config="c.PublisherService.max_live_kernels = 2\n" + WAIT_FOR_STATIC_PAGES)
    with h:
        api = PublisherApi(h)
        api.put("alice", "live", make_notebook(("code", "print('live page')"), metadata=LIVE))
        first, second = api.render("alice", "live"), api.render("alice", "live")
        assert first.status_code == second.status_code == 200 and "live page" in second.text
        third = api.render("alice", "live")
        assert third.status_code == 503, third.text[:300]
        assert "busy" in third.text and third.headers.get("Retry-After") == "30"
        # A static dashboard needs no kernel, so the crowd does not shut it out.
        api.put("alice", "report", make_notebook(("code", "print('report page')")))
        assert "report page" in api.render("alice", "report").text


EGRESS_PROBE = r'''
import json, os, socket
from urllib.parse import urlsplit
proxy = urlsplit(os.environ["HTTPS_PROXY"])
def through_proxy(target):
    with socket.create_connection((proxy.hostname, proxy.port), timeout=10) as s:
        s.sendall(f"CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n".encode())
        head = s.recv(4096).decode()
        if not head.startswith("HTTP/1.1 200"):
            return head.split("\r\n", 1)[0]
        s.sendall(b"GET / HTTP/1.0\r\n\r\n")
        return "tunnel:" + s.recv(4096).decode().split("\r\n\r\n", 1)[-1]
def direct(port):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=3).close()
        return "connected"
    except OSError as e:
        return type(e).__name__
print("EGRESS " + json.dumps({
    "listed": through_proxy(f"127.0.0.1:{LISTED}"),
    "unlisted_port": through_proxy(f"127.0.0.1:{UNLISTED}"),
    "name_to_loopback": through_proxy(f"localhost:{LISTED}"),
    "metadata": through_proxy("169.254.169.254:80"),
    "direct_to_listed": direct(LISTED),
}))
'''


def _marker_server(text: bytes):
    import threading

    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)

    def serve():
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            with conn:
                conn.recv(4096)
                conn.sendall(b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\n" + text)

    threading.Thread(target=serve, daemon=True).start()
    return server


def test_listed_hosts_are_reachable_over_https_and_nothing_else(tmp_path_factory):
    listed, unlisted = _marker_server(b"public-data-42"), _marker_server(b"internal-service")
    listed_port, unlisted_port = listed.getsockname()[1], unlisted.getsockname()[1]
    config = f"c.PublisherService.kernel_allowed_hosts = ['127.0.0.1:{listed_port}', 'localhost:{listed_port}']\n"
    try:
        with PublicHost(tmp_path_factory.mktemp("egress-host"), extra_config=config) as h:
            api = PublisherApi(h)
            code = EGRESS_PROBE.replace("UNLISTED", str(unlisted_port)).replace("LISTED", str(listed_port))
            assert api.put("alice", "fetcher", make_notebook(("code", code), metadata=LIVE)).status_code == 201
            page = api.render("alice", "fetcher")
            assert page.status_code == 200, h.log_text()[-2000:]
            result = parse_marked_json(page.text, "EGRESS")
    finally:
        listed.close()
        unlisted.close()
    assert result["listed"] == "tunnel:public-data-42"  # the listed address, over the proxy
    assert result["unlisted_port"].startswith("HTTP/1.1 403")  # same host, port not listed
    assert result["name_to_loopback"].startswith("HTTP/1.1 403")  # a listed *name* never leads to loopback
    assert result["metadata"].startswith("HTTP/1.1 403")  # the metadata service is not listed
    assert result["direct_to_listed"] in ("ConnectionRefusedError", "OSError")  # no way around the proxy
