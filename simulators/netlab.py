"""A VPC in network namespaces: one namespace per host and one router between them.

Each host namespace holds one address (its instance's private address, or a documentation
address for "the internet") on a veth to the router namespace, a default route through the
router, and an nftables ruleset (simulators/sg_firewall.py) standing in for its security group.
Tests start TCP listeners in hosts and probe from others; nothing leaves the namespaces made here,
and :meth:`NetLab.close` deletes them (and so every interface and rule in them).

Needs root (CAP_NET_ADMIN), ``ip`` (iproute2) and ``nft`` (nftables).
"""

from __future__ import annotations

import json
import secrets
import subprocess
import sys

ROUTER_LINK = "169.254.0.1"  # the router's address on every link; hosts route through it

_PROBE = r"""
import json, socket, sys
from concurrent.futures import ThreadPoolExecutor
targets = json.loads(sys.argv[1])
def attempt(target):
    address, port = target
    try:
        with socket.create_connection((address, port), timeout=1.5) as s:
            s.settimeout(1.5)
            return s.recv(16) == b"hello"
    except OSError:
        return False
with ThreadPoolExecutor(max_workers=32) as pool:
    print(json.dumps(list(pool.map(attempt, targets))))
"""

_LISTEN = r"""
import socket, sys, threading
def serve(port):
    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", port)); s.listen(64)
    while True:
        conn, _ = s.accept()
        try:
            conn.sendall(b"hello")
        finally:
            conn.close()
for port in map(int, sys.argv[1:]):
    threading.Thread(target=serve, args=(port,), daemon=True).start()
print("listening", flush=True)
sys.stdin.read()
"""


def _run(*command: str, input: str | None = None) -> None:
    subprocess.run(command, check=True, input=input, text=True, capture_output=True)


class NetLab:
    """Namespaces named ``<prefix>-<host>`` plus ``<prefix>-router``."""

    def __init__(self):
        self.prefix = f"hyb{secrets.token_hex(3)}"
        self.router = f"{self.prefix}-router"
        self.hosts: dict[str, str] = {}  # host name -> address
        self.listeners: list[subprocess.Popen] = []
        self._namespaces: list[str] = []

    def _ns(self, host: str) -> str:
        return f"{self.prefix}-{host}"

    def _add_namespace(self, name: str) -> None:
        _run("ip", "netns", "add", name)
        self._namespaces.append(name)
        _run("ip", "-n", name, "link", "set", "lo", "up")

    def start(self) -> NetLab:
        self._add_namespace(self.router)
        _run("ip", "netns", "exec", self.router, "sysctl", "-q", "-w", "net.ipv4.ip_forward=1")
        return self

    def router_interface(self, host: str) -> str:
        return f"r{list(self.hosts).index(host)}-{self.prefix[-6:]}"[:15]

    def add_host(self, host: str, address: str) -> None:
        namespace = self._ns(host)
        self._add_namespace(namespace)
        self.hosts[host] = address
        outer, inner = self.router_interface(host), f"h-{self.prefix[-6:]}"
        _run("ip", "link", "add", outer, "netns", self.router, "type", "veth", "peer", "name", inner, "netns", namespace)
        _run("ip", "-n", namespace, "addr", "add", f"{address}/32", "dev", inner)
        _run("ip", "-n", namespace, "link", "set", inner, "up")
        _run("ip", "-n", namespace, "route", "add", ROUTER_LINK, "dev", inner)
        _run("ip", "-n", namespace, "route", "add", "default", "via", ROUTER_LINK, "dev", inner)
        _run("ip", "-n", self.router, "addr", "add", f"{ROUTER_LINK}/32", "dev", outer)
        _run("ip", "-n", self.router, "link", "set", outer, "up")
        _run("ip", "-n", self.router, "route", "add", f"{address}/32", "dev", outer)

    def load_rules(self, host: str | None, ruleset: str) -> None:
        """Load an nftables ruleset into a host's namespace (``None``: the router's)."""
        namespace = self.router if host is None else self._ns(host)
        _run("ip", "netns", "exec", namespace, "nft", "-f", "-", input=ruleset)

    def listen(self, host: str, ports: list[int]) -> None:
        process = subprocess.Popen(
            ["ip", "netns", "exec", self._ns(host), sys.executable, "-c", _LISTEN, *map(str, ports)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )
        self.listeners.append(process)
        if process.stdout.readline().strip() != "listening":
            raise RuntimeError(f"the listener in {host} did not start")

    def probe(self, source: str, targets: list[tuple[str, int]]) -> list[bool]:
        """For each (host, port): can ``source`` open a TCP connection to it?"""
        addresses = [[self.hosts[host], port] for host, port in targets]
        out = subprocess.run(
            ["ip", "netns", "exec", self._ns(source), sys.executable, "-c", _PROBE, json.dumps(addresses)],
            check=True, capture_output=True, text=True, timeout=60,
        ).stdout
        return json.loads(out)

    def close(self) -> None:
        for process in self.listeners:
            if process.poll() is None:
                process.stdin.close()
                process.kill()
                process.wait(5)
        for namespace in reversed(self._namespaces):
            subprocess.run(["ip", "netns", "del", namespace], capture_output=True, check=False)
        self._namespaces.clear()


def netns_available() -> str:
    """Empty when this process can make namespaces and load nftables rules, else why not."""
    for tool in ("ip", "nft"):
        if subprocess.run(["sh", "-c", f"command -v {tool}"], capture_output=True, check=False).returncode:
            return f"{tool} is not installed"
    name = f"hybprobe{secrets.token_hex(3)}"
    made = subprocess.run(["ip", "netns", "add", name], capture_output=True, text=True, check=False)
    if made.returncode:
        return f"cannot create a network namespace: {made.stderr.strip()}"
    subprocess.run(["ip", "netns", "del", name], capture_output=True, check=False)
    return ""

