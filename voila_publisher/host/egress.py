"""Listed hosts a dashboard kernel may reach (HTTPS through a CONNECT proxy), and nothing else.

A kernel's sandbox has no network (:mod:`voila_publisher.host.sandbox`). When the admin lists
hosts (``PublisherService.kernel_allowed_hosts``), each kernel gets a Unix socket in its
connection directory; inside the sandbox a small forwarder (``sandbox_forwarder.py``, stdlib
only) offers it as ``127.0.0.1:3128`` and ``HTTPS_PROXY`` points there. This proxy, running in
Voila's process outside the sandbox, accepts only ``CONNECT host:port`` to a listed host and
port, so a kernel can fetch public data over HTTPS from those hosts and reach nothing else.

A listed *name* never leads to a private, loopback, link-local (the cloud metadata service) or
otherwise non-public address, whatever DNS answers (DNS rebinding); a listed *address* is
reached as listed.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
from dataclasses import dataclass

DEFAULT_PORT = 443


@dataclass(frozen=True)
class AllowedHost:
    host: str  # a lower-case name, "*.name" for its subdomains, or an IP address
    port: int = DEFAULT_PORT

    @property
    def is_address(self) -> bool:
        try:
            ipaddress.ip_address(self.host)
            return True
        except ValueError:
            return False

    def matches(self, host: str, port: int) -> bool:
        host = host.lower().rstrip(".")
        if port != self.port:
            return False
        if self.host.startswith("*."):
            return host.endswith(self.host[1:]) and host != self.host[2:]
        return host == self.host


def parse_allowed(entries: list[str]) -> tuple[AllowedHost, ...]:
    """``["data.example.org", "*.tiles.example.org", "10.0.5.7:8443"]`` -> rules; ValueError names a bad entry."""
    rules = []
    for entry in entries:
        text = entry.strip().lower()
        host, port = text, DEFAULT_PORT
        if text.count(":") == 1:  # name:port or IPv4:port (IPv6 addresses are given bare)
            host, _, port_text = text.partition(":")
            if not port_text.isdigit() or not 0 < int(port_text) < 65536:
                raise ValueError(f"kernel_allowed_hosts: bad port in {entry!r}")
            port = int(port_text)
        name = host[2:] if host.startswith("*.") else host
        if not name or "/" in name or "*" in name or " " in name:
            raise ValueError(f"kernel_allowed_hosts: {entry!r} is not a host name, *.name or an address")
        rules.append(AllowedHost(host, port))
    return tuple(rules)


def public_address(address: str) -> bool:
    ip = ipaddress.ip_address(address)
    return ip.is_global and not ip.is_multicast


def destination_allowed(rules: tuple[AllowedHost, ...], host: str, port: int, resolved: list[str]) -> str:
    """"" if the kernel may connect to ``host:port`` (resolved to ``resolved``), else why not."""
    rule = next((r for r in rules if r.matches(host, port)), None)
    if rule is None:
        return f"{host}:{port} is not a listed host"
    if not rule.is_address and not all(public_address(a) for a in resolved):
        return f"{host} resolves to a non-public address"
    return ""


class EgressProxy:
    """One kernel's CONNECT proxy on a Unix socket (runs on Voila's event loop)."""

    def __init__(self, rules: tuple[AllowedHost, ...], socket_path: str, log: logging.Logger | None = None):
        self.rules = rules
        self.socket_path = socket_path
        self.log = log or logging.getLogger(__name__)
        self.server: asyncio.AbstractServer | None = None

    async def start(self) -> None:
        self.server = await asyncio.start_unix_server(self._client, path=self.socket_path)

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
            self.server = None

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
            method, target, _ = head.split(b"\r\n", 1)[0].decode("latin-1").split(" ", 2)
            if method != "CONNECT":
                return await self._refuse(writer, 405, "only HTTPS (CONNECT) goes through this proxy")
            host, _, port_text = target.rpartition(":")
            host = host.strip("[]")
            port = int(port_text)
            infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
            addresses = sorted({i[4][0] for i in infos})
            refusal = destination_allowed(self.rules, host, port, addresses)
            if refusal:
                self.log.warning("dashboard kernel egress refused: %s", refusal)
                return await self._refuse(writer, 403, refusal)
            upstream_reader, upstream_writer = await asyncio.wait_for(asyncio.open_connection(addresses[0], port), 15)
        except (ValueError, OSError, asyncio.TimeoutError, asyncio.IncompleteReadError) as e:
            return await self._refuse(writer, 502, f"cannot connect ({type(e).__name__})")
        writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
        await writer.drain()
        await asyncio.gather(_pipe(reader, upstream_writer), _pipe(upstream_reader, writer))

    @staticmethod
    async def _refuse(writer: asyncio.StreamWriter, status: int, message: str) -> None:
        body = message.encode() + b"\n"
        writer.write(b"HTTP/1.1 %d Refused\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s" % (status, len(body), body))
        try:
            await writer.drain()
        finally:
            writer.close()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        writer.close()
