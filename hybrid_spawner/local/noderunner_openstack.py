"""Boot Nova servers locally: run each ACTIVE server's user-data as a local process.

The demo's and the tests' stand-in for a hypervisor. The source lists the project's servers
through the real Nova API (as a project admin: Nova shows ``user_data`` to admins only, from
microversion 2.3), and the runner starts each ACTIVE server's user-data script with
``HYBRID_NODE_BIND_IP`` set to the server's fixed IP (a loopback address in the fake's
default subnet), and stops the process when the server is deleted.

Run: ``python -m hybrid_spawner.local.noderunner_openstack --cloud fake-admin --clouds-yaml FILE --workdir DIR``
"""

from __future__ import annotations

import argparse
import base64
import binascii
import logging
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from ..openstack_request import classify_status
from .processes import child_env

log = logging.getLogger("hybrid-noderunner-openstack")


@dataclass(frozen=True)
class LocalInstance:
    """A server that should be running here: its id, fixed IP and decoded boot script."""

    id: str
    address: str
    user_data: str


def first_fixed_ipv4(addresses: dict | None) -> str | None:
    for entries in (addresses or {}).values():
        for e in entries:
            if e.get("version", 4) == 4 and e.get("OS-EXT-IPS:type", "fixed") == "fixed":
                return e.get("addr")
    return None


def decode_user_data(value: str | None) -> str | None:
    if not value:
        return None
    try:
        return base64.b64decode(value, validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return None


class NovaInstanceSource:
    """Lists the project's ACTIVE servers with their user-data (blocking, openstacksdk)."""

    name = "openstack"

    def __init__(self, cloud: str, clouds_yaml: str = "", tag: str = ""):
        from ..openstack_connection import ConnectionSettings, connect

        self._settings = ConnectionSettings.build(cloud=cloud, clouds_yaml=clouds_yaml)
        self._connect = connect
        self.tag = tag

    def running(self) -> list[LocalInstance]:
        conn = self._connect(self._settings)
        query = {"tags": self.tag} if self.tag else {}
        found = []
        for server in conn.compute.servers(details=True, **query):
            if classify_status(server.status, server.task_state) != "running":
                continue
            script = decode_user_data(server.user_data)
            address = first_fixed_ipv4(server.addresses)
            if script and address:
                found.append(LocalInstance(server.id, address, script))
        return found


class LocalNodes:
    """The processes standing in for booted servers, one process group each."""

    def __init__(self, workdir: Path, extra_env: dict | None = None):
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.extra_env = extra_env or {}
        self.procs: dict[str, subprocess.Popen] = {}
        self.finished: set[str] = set()  # a node whose boot script ended does not boot again

    def sync(self, wanted: list[LocalInstance]) -> None:
        wanted_ids = {i.id for i in wanted}
        for node_id in [n for n in self.procs if n not in wanted_ids]:
            self.stop(node_id)
        for inst in wanted:
            proc = self.procs.get(inst.id)
            if proc is None and inst.id not in self.finished:
                self.boot(inst)
            elif proc is not None and proc.poll() is not None:
                log.info("node %s: boot script exited with %s", inst.id, proc.returncode)
                del self.procs[inst.id]
                self.finished.add(inst.id)

    def boot(self, inst: LocalInstance) -> None:
        script = self.workdir / f"{inst.id}.user-data"
        script.write_text(inst.user_data)
        script.chmod(0o700)
        env = child_env({"HYBRID_NODE_BIND_IP": inst.address, **self.extra_env})
        with open(self.workdir / f"{inst.id}.log", "ab") as out:
            self.procs[inst.id] = subprocess.Popen(
                ["/bin/bash", str(script)], stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                env=env, cwd=self.workdir, start_new_session=True,
            )
        log.info("node %s: booted at %s (pid %d)", inst.id, inst.address, self.procs[inst.id].pid)

    def stop(self, node_id: str, timeout: float = 10.0) -> None:
        proc = self.procs.pop(node_id)
        self.finished.add(node_id)
        if proc.poll() is None:
            try:
                os.killpg(proc.pid, signal.SIGTERM)
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(5)
            except ProcessLookupError:
                pass
        log.info("node %s: stopped", node_id)

    def stop_all(self) -> None:
        for node_id in list(self.procs):
            self.stop(node_id)


def run(source: NovaInstanceSource, nodes: LocalNodes, interval: float, stop_flag: list) -> None:
    while not stop_flag:
        try:
            nodes.sync(source.running())
        except Exception as e:  # a cloud hiccup must not kill the booted nodes
            log.warning("listing servers failed: %s", e)
        time.sleep(interval)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Run OpenStack servers' user-data as local processes")
    parser.add_argument("--cloud", required=True, help="clouds.yaml entry of a project admin (sees user_data)")
    parser.add_argument("--clouds-yaml", default="", help="path of clouds.yaml (default: openstacksdk's search path)")
    parser.add_argument("--workdir", required=True, help="where boot scripts and node logs go")
    parser.add_argument("--tag", default="", help="only boot servers with this Nova tag")
    parser.add_argument("--interval", type=float, default=0.5, help="seconds between listings")
    parser.add_argument("--env", action="append", default=[], metavar="K=V", help="extra node environment")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    extra = dict(item.split("=", 1) for item in args.env)
    nodes = LocalNodes(Path(args.workdir), extra)
    stop_flag: list = []

    def on_signal(*_):
        stop_flag.append(True)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        run(NovaInstanceSource(args.cloud, args.clouds_yaml, args.tag), nodes, args.interval, stop_flag)
    finally:
        nodes.stop_all()
    return 0


if __name__ == "__main__":
    sys.exit(main())
