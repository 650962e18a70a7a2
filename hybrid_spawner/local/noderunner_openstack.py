"""The local node runner's Nova instance source: OpenStack servers "boot" as local processes.

Plugs into :mod:`hybrid_spawner.local.noderunner`. The source lists the hub's servers through
the real Nova API, as a project admin (Nova shows ``user_data`` to admins only, from
microversion 2.3), in one tagged listing per look. Each ACTIVE server's user-data runs once,
listening on the server's own fixed IP (see :func:`with_bind_address`): the fake's ``research-private`` subnet is a loopback range
(127.42.0.0/24), so the hub reaches the node at the address Nova reports, as it would on a
real tenant network.

Run: ``python -m hybrid_spawner.local.noderunner_openstack --cloud fake-admin --clouds-yaml FILE
--hub-id HUB --workdir DIR [--allow-root]`` (the same as ``hybrid-node-runner --source
hybrid_spawner.local.noderunner_openstack:NovaInstanceSource ...``).
"""

from __future__ import annotations

import argparse
import base64
import binascii
import shlex

from ..openstack_request import classify_status, hub_tag
from .noderunner import InstanceSource, SourceInstance


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
        address, user_data = self.seen.get(instance_id, (None, None))
        script = decode_user_data(user_data)
        if not script or not address:
            return None
        return with_bind_address(script, address)


def with_bind_address(script: str, address: str) -> str:
    """The script with the node's own address exported first (after the ``#!`` line).

    On a real server the node agent listens on the NIC that carries the fixed IP; here the
    runner's processes share one host, so each node is told which loopback address is "its" IP.
    """
    lines = script.splitlines(keepends=True)
    head = lines[:1] if lines and lines[0].startswith("#!") else []
    export = f"export HYBRID_NODE_BIND_IP={shlex.quote(address)}\n"
    return "".join(head + [export] + lines[len(head):])


SOURCE = NovaInstanceSource


def main(argv=None) -> int:
    """``python -m hybrid_spawner.local.noderunner_openstack ARGS``: the shared runner with this source."""
    import sys

    from .noderunner import main as runner_main

    args = sys.argv[1:] if argv is None else list(argv)
    return runner_main(["--source", "hybrid_spawner.local.noderunner_openstack:NovaInstanceSource", *args])


if __name__ == "__main__":
    raise SystemExit(main())
