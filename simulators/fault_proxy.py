"""A fault-injecting HTTP proxy for the tests and the soak: what a misbehaving cloud looks like.

It sits between a client (the hub, the sync engine) and one upstream (the moto server, the
OpenStack fake, SeaweedFS) on a loopback port of its own, forwards every request unchanged, and
applies the first matching :class:`Fault`:

- ``latency``: wait, then forward;
- ``status``: answer with an HTTP status (and a body) instead of forwarding;
- ``throttle``: answer as the cloud throttles, in its own error shape (EC2's
  ``RequestLimitExceeded``, S3's ``SlowDown``, both HTTP 503), without forwarding;
- ``reset``: close the connection before answering (the request may or may not have reached the
  upstream, as in real life: ``after=True`` forwards first, so the work is done and the answer lost);
- ``truncate``: forward, then send the headers and half of the body and close.

A fault matches on the method, a path substring and a body substring (EC2 and STS put the action
in the body: ``Action=RunInstances``), fires ``count`` times (-1: until cleared) or with a
probability. toxiproxy works at the TCP level and cannot tell one API action from another; this
proxy can, which is what a test of "RunInstances is throttled" needs.

Runs in a thread of the calling process (``FaultProxy(upstream).start()``), or as a process:
``python -m simulators.fault_proxy --upstream http://127.0.0.1:5000 --port 0``.
"""

from __future__ import annotations

import asyncio
import random
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from urllib.parse import urlsplit

_EC2_THROTTLE = (b'<?xml version="1.0" encoding="UTF-8"?>\n<Response><Errors><Error><Code>RequestLimitExceeded</Code>'
                 b"<Message>Request limit exceeded.</Message></Error></Errors><RequestID>fault-proxy</RequestID></Response>")
_S3_THROTTLE = (b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>SlowDown</Code><Message>Please reduce your request '
                b"rate.</Message><RequestId>fault-proxy</RequestId></Error>")
THROTTLE_BODIES = {"ec2": (_EC2_THROTTLE, "text/xml"), "s3": (_S3_THROTTLE, "application/xml")}


@dataclass
class Fault:
    kind: str  # latency | status | throttle | reset | truncate
    method: str = "*"
    path: str = ""  # substring of the request target
    body: str = ""  # substring of the request body (e.g. "Action=RunInstances")
    count: int = -1  # how many times it fires; -1: until cleared
    probability: float = 1.0
    seconds: float = 0.0  # latency
    status: int = 500
    flavour: str = "ec2"  # throttle body: ec2 | s3
    after: bool = False  # reset after forwarding (the upstream did the work, the answer is lost)
    fired: int = field(default=0, init=False)

    def matches(self, method: str, target: str, body: bytes) -> bool:
        if self.count == 0 or (self.method != "*" and self.method != method):
            return False
        if self.path not in target or (self.body and self.body.encode() not in body):
            return False
        return random.random() < self.probability


class FaultProxy:
    def __init__(self, upstream: str, host: str = "127.0.0.1", port: int = 0):
        parts = urlsplit(upstream)
        self.upstream = (parts.hostname or "127.0.0.1", parts.port or 80)
        self.host, self.port = host, port
        self.faults: list[Fault] = []
        self.seen: Counter = Counter()  # (method, action or path) -> requests
        self.fired: Counter = Counter()  # fault kind -> times applied
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server = None
        self._thread: threading.Thread | None = None

    # -- control --------------------------------------------------------------------------
    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def add(self, fault: Fault) -> Fault:
        with self._lock:
            self.faults.append(fault)
        return fault

    def clear(self) -> None:
        with self._lock:
            self.faults.clear()

    def calls(self, action: str) -> int:
        """How many requests carried ``action`` (an EC2/STS action or a path)."""
        with self._lock:
            return sum(n for (_, key), n in self.seen.items() if key == action)

    def _pick(self, method: str, target: str, body: bytes) -> Fault | None:
        with self._lock:
            for fault in self.faults:
                if fault.matches(method, target, body):
                    fault.fired += 1
                    if fault.count > 0:
                        fault.count -= 1
                    self.fired[fault.kind] += 1
                    return fault
        return None

    # -- lifecycle --------------------------------------------------------------------------
    def start(self) -> FaultProxy:
        ready = threading.Event()

        def run():
            self._loop = asyncio.new_event_loop()
            self._server = self._loop.run_until_complete(
                asyncio.start_server(self._serve, self.host, self.port, limit=2**20))
            self.port = self._server.sockets[0].getsockname()[1]
            ready.set()
            self._loop.run_forever()

        self._thread = threading.Thread(target=run, name="fault-proxy", daemon=True)
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError("the fault proxy did not start")
        return self

    def stop(self) -> None:
        if self._loop is None:
            return

        async def close():
            self._server.close()
            await self._server.wait_closed()

        asyncio.run_coroutine_threadsafe(close(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    # -- the proxy ----------------------------------------------------------------------------
    async def _read_request(self, reader) -> tuple[bytes, bytes] | None:
        head = await reader.readuntil(b"\r\n\r\n")
        headers = {}
        for line in head.split(b"\r\n")[1:]:
            if b":" in line:
                name, _, value = line.partition(b":")
                headers[name.strip().lower()] = value.strip()
        if headers.get(b"transfer-encoding", b"").lower() == b"chunked":
            body = b""
            while True:
                size_line = await reader.readuntil(b"\r\n")
                size = int(size_line.split(b";")[0], 16)
                chunk = await reader.readexactly(size + 2)
                body += chunk[:-2]
                if size == 0:
                    break
            # Re-frame with a length: the upstream gets the same body.
            lines = [ln for ln in head.split(b"\r\n") if ln and not ln.lower().startswith(b"transfer-encoding")]
            head = b"\r\n".join(lines + [b"Content-Length: " + str(len(body)).encode()]) + b"\r\n\r\n"
            return head, body
        body = await reader.readexactly(int(headers.get(b"content-length", b"0") or 0))
        return head, body

    @staticmethod
    def _with_close(head: bytes) -> bytes:
        lines = [ln for ln in head.split(b"\r\n") if ln and not ln.lower().startswith(b"connection:")]
        return b"\r\n".join(lines + [b"Connection: close"]) + b"\r\n\r\n"

    async def _forward(self, head: bytes, body: bytes) -> bytes:
        reader, writer = await asyncio.open_connection(*self.upstream, limit=2**20)
        try:
            writer.write(self._with_close(head) + body)
            await writer.drain()
            return await reader.read()  # Connection: close -> the upstream ends the answer
        finally:
            writer.close()

    async def _serve(self, reader, writer) -> None:
        try:
            request = await self._read_request(reader)
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError, ValueError):
            writer.close()
            return
        head, body = request
        method, target = (head.split(b" ", 2) + [b"", b""])[:2]
        method, target = method.decode(errors="replace"), target.decode(errors="replace")
        action = next((p.split(b"=", 1)[1].decode() for p in body.split(b"&") if p.startswith(b"Action=")), "")
        with self._lock:
            self.seen[(method, action or target.split("?")[0])] += 1
        fault = self._pick(method, target, body)
        try:
            if fault is not None and fault.kind == "latency":
                await asyncio.sleep(fault.seconds)
                fault = None
            if fault is not None and fault.kind == "reset" and not fault.after:
                writer.transport.abort()
                return
            if fault is not None and fault.kind in ("status", "throttle"):
                if fault.kind == "throttle":
                    payload, ctype = THROTTLE_BODIES[fault.flavour]
                    status, reason = 503, "Slow Down"
                else:  # what a load balancer in front of the API sends
                    payload = f"<html><body><h1>{fault.status} Server Error</h1></body></html>".encode()
                    ctype, status, reason = "text/html", fault.status, "Server Error"
                writer.write(f"HTTP/1.1 {status} {reason}\r\nContent-Type: {ctype}\r\nContent-Length: {len(payload)}\r\n"
                             "Connection: close\r\n\r\n".encode() + payload)
                await writer.drain()
                writer.close()
                return
            answer = await self._forward(head, body)
            if fault is not None and fault.kind == "reset":  # after=True: done upstream, answer lost
                writer.transport.abort()
                return
            if fault is not None and fault.kind == "truncate":
                split = answer.find(b"\r\n\r\n") + 4
                answer = answer[: split + max(0, (len(answer) - split) // 2)]
            writer.write(answer)
            await writer.drain()
            writer.close()
        except (ConnectionError, OSError):
            writer.transport.abort()


def main(argv=None) -> int:
    import argparse

    parser = argparse.ArgumentParser(description="Fault-injecting HTTP proxy (loopback only).")
    parser.add_argument("--upstream", required=True)
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args(argv)
    proxy = FaultProxy(args.upstream, port=args.port).start()
    print(proxy.url, flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        proxy.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
