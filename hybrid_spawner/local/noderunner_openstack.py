"""The local node runner's Nova instance source: OpenStack servers "boot" as local processes.

Plugs into :mod:`hybrid_spawner.local.noderunner`. The source lists the hub's servers through
the real Nova API, as a project admin (Nova shows ``user_data`` to admins only, from
microversion 2.3), in one tagged listing per look. Each ACTIVE server's user-data runs once,
bound to the server's own fixed IP: the fake's ``research-private`` subnet is a loopback range
(127.42.0.0/24), so the hub reaches the node at the address Nova reports, as it would on a
real tenant network.

Run: ``python -m hybrid_spawner.local.noderunner_openstack --cloud fake-admin
--clouds-yaml FILE --hub-id HUB --workdir DIR [--allow-root]``
"""

from __future__ import annotations

import argparse
import base64
import binascii
import logging
import signal
import threading

from ..openstack_request import classify_status, hub_tag
from .noderunner import InstanceSource, NodeRunner, SourceInstance


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


class NovaInstanceSource(InstanceSource):
    """The servers tagged for one hub, with their fixed IPs and user-data (blocking)."""

    def __init__(self, cloud: str, clouds_yaml: str, hub_id: str):
        from ..openstack_connection import ConnectionSettings

        self.settings = ConnectionSettings.build(cloud=cloud, clouds_yaml=clouds_yaml)
        self.tag = hub_tag(hub_id)
        self.seen: dict[str, tuple[str | None, str | None]] = {}  # id -> (fixed IP, user_data)

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--cloud", default="fake-admin", help="clouds.yaml entry of a project admin")
        parser.add_argument("--clouds-yaml", default="", help="clouds.yaml path (default: openstacksdk's search path)")

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> "NovaInstanceSource":
        return cls(args.cloud, args.clouds_yaml, args.hub_id)

    def list_instances(self) -> list[SourceInstance]:
        from ..openstack_connection import connect

        found, seen = [], {}
        for server in connect(self.settings).compute.servers(details=True, tags=self.tag):
            seen[server.id] = (first_fixed_ipv4(server.addresses), server.user_data)
            found.append(SourceInstance(server.id, classify_status(server.status, server.task_state)))
        self.seen = seen
        return found

    def boot_script(self, instance_id: str) -> str | None:
        return decode_user_data(self.seen.get(instance_id, (None, None))[1])

    def address(self, instance_id: str) -> str:
        return self.seen.get(instance_id, (None, None))[0] or "127.0.0.1"


SOURCE = NovaInstanceSource


class NovaNodeRunner(NodeRunner):
    """A NodeRunner whose nodes listen on their server's fixed IP instead of 127.0.0.1."""

    _booting: str | None = None

    def boot(self, instance_id: str) -> None:
        self._booting = instance_id
        try:
            super().boot(instance_id)
        finally:
            self._booting = None

    def node_env(self, port: int) -> dict:
        env = super().node_env(port)
        if self._booting is not None:
            env["HYBRID_NODE_BIND_IP"] = self.source.address(self._booting)
        return env


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Run the hub's OpenStack servers' user-data as local processes")
    parser.add_argument("--hub-id", required=True, help="OpenStackSpawner.hub_id of the hub")
    parser.add_argument("--workdir", required=True, help="where boot scripts and node logs go")
    parser.add_argument("--status-file", help="JSON file rewritten after every look")
    parser.add_argument("--interval", type=float, default=0.5, help="seconds between looks")
    parser.add_argument("--allow-root", action="store_true", help="pass --allow-root to the single-user servers")
    NovaInstanceSource.add_arguments(parser)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    runner = NovaNodeRunner(NovaInstanceSource.from_args(args), args.workdir, allow_root=args.allow_root,
                            status_file=args.status_file)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    runner.run(args.interval, stop)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
