"""The local node runner's Nova instance source: OpenStack servers "boot" as local processes.

Plugs into :mod:`simulators.noderunner`. The source lists the hub's servers through
the real Nova API, as a project admin (Nova shows ``user_data`` to admins only, from
microversion 2.3), in one tagged listing per look. Each ACTIVE server's user-data runs once,
listening on the server's own fixed IP (see :func:`with_bind_address`): the fake's ``research-private`` subnet is a loopback range
(127.42.0.0/24), so the hub reaches the node at the address Nova reports, as it would on a
real tenant network.

Run: ``python -m simulators.noderunner_openstack --cloud fake-admin --clouds-yaml FILE
--hub-id HUB --workdir DIR [--allow-root]`` (the same as ``python -m simulators.noderunner --source
simulators.noderunner_openstack:NovaInstanceSource ...``).
"""

from __future__ import annotations

import argparse
import base64
import binascii
import json
import os
import shlex
import sys
from pathlib import Path

from hybrid_spawner.backends.openstack.plan import classify_status, hub_tag, private_ip
from simulators.noderunner import InstanceSource, SourceInstance
from simulators.processes import ManagedProcess, child_env


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
        from hybrid_spawner.backends.openstack.connection import ConnectionSettings

        self.settings = ConnectionSettings.build(cloud=cloud, clouds_yaml=clouds_yaml)
        self.tag = hub_tag(hub_id)
        self.seen: dict[str, tuple[str | None, str | None]] = {}  # id -> (fixed IP, user_data)
        self.volumes: dict[str, list[str]] = {}  # id -> attached volume ids

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--cloud", default="fake-admin", help="clouds.yaml entry of a project admin")
        parser.add_argument("--clouds-yaml", default="", help="clouds.yaml path (default: openstacksdk's search path)")

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> "NovaInstanceSource":
        return cls(args.cloud, args.clouds_yaml, args.hub_id)

    def list_instances(self) -> list[SourceInstance]:
        from hybrid_spawner.backends.openstack.connection import connect

        found, seen, volumes = [], {}, {}
        for server in connect(self.settings).compute.servers(details=True, tags=self.tag):
            seen[server.id] = (private_ip(server.addresses), server.user_data)
            volumes[server.id] = [v["id"] for v in server.attached_volumes or [] if v.get("id")]
            found.append(SourceInstance(server.id, runner_state(server.status, server.task_state)))
        self.seen, self.volumes = seen, volumes
        return found

    def home_volume(self, instance_id: str) -> str | None:
        """The volume Nova attached to the server (the persistent home): its first data volume."""
        attached = self.volumes.get(instance_id) or []
        return attached[0] if attached else None

    def power_off(self, instance_id: str) -> None:
        """A server whose OS shut down is SHUTOFF in Nova (as after os-stop)."""
        from hybrid_spawner.backends.openstack.connection import connect

        connect(self.settings).compute.stop_server(instance_id)

    def boot_script(self, instance_id: str) -> str | None:
        address, user_data = self.seen.get(instance_id, (None, None))
        script = decode_user_data(user_data)
        if not script or not address:
            return None
        return with_bind_address(script, address)


def runner_state(status: str | None, task_state: str | None) -> str:
    """The runner's view of a Nova status: a stopped or shelved server keeps its disk and boots
    again when it is started or unshelved ("stopped"); the hub's own classification calls both
    gone, which is right for a server but not for its disk."""
    if (status or "").upper() in ("SHUTOFF", "SHELVED", "SHELVED_OFFLOADED") and task_state != "deleting":
        return "stopped"
    return classify_status(status, task_state)


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


class NovaNodeRunnerProcess(ManagedProcess):
    """The runner with this source as a child process; ready once it has looked once."""

    def __init__(self, workdir, *, clouds_yaml, hub_id: str, cloud: str = "fake-admin",
                 interval: float = 0.5, log_dir=None, allow_root: bool | None = None):
        self.workdir = Path(workdir)
        self.status_path = self.workdir / "status.json"
        argv = [sys.executable, "-m", "simulators.noderunner_openstack", "--cloud", cloud,
                "--clouds-yaml", clouds_yaml, "--hub-id", hub_id, "--workdir", self.workdir,
                "--interval", interval, "--status-file", self.status_path,
                *(["--allow-root"] if (os.geteuid() == 0 if allow_root is None else allow_root) else [])]
        super().__init__("noderunner-openstack", argv, log_dir=log_dir or self.workdir.parent,
                         env=child_env(), ready=self.status_path.exists)

    def status(self) -> dict:
        """The runner's last look: nodes booted (pid, port), finished, errors."""
        return json.loads(self.status_path.read_text())


def main(argv=None) -> int:
    """``python -m simulators.noderunner_openstack ARGS``: the shared runner with this source."""
    from simulators.noderunner import main as runner_main

    args = sys.argv[1:] if argv is None else list(argv)
    return runner_main(["--source", "simulators.noderunner_openstack:NovaInstanceSource", *args])


if __name__ == "__main__":
    raise SystemExit(main())
