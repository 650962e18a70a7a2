"""The local node runner: makes simulated cloud instances "boot" as local processes.

It watches an instance source (EC2 on moto server by default) for the instances tagged by one
hub. When one is running, it fetches the instance's boot script (user-data) and runs it as a
process on this machine, as cloud-init would on a real instance — so the real bootstrap path
(credential redemption, single-user server start, port report) is exercised with no cloud
account. When the instance is stopped, terminated or disappears, the process group is ended.
Each boot script runs once per boot: at launch, and again each time a stopped instance is started
(the node image runs its user-data at every boot, so a resumed node redeems the fresh credential
its new user-data holds). A stopped instance's processes end (its memory is lost) and its root
disk stays; a terminated instance's disk is removed.

Each node also gets an instance metadata service of its own (IMDSv2, simulators/imds.py) at
``HYBRID_IMDS_ENDPOINT``; a spot interruption notice posted there (``spot_interruption``) is
followed, at its time, by the runner reclaiming the instance through the cloud's API, as AWS does.

Nodes bind 127.0.0.1 and get a port of their own (HYBRID_NODE_PORT). Nodes run as the runner's
user; when that is root, ``--allow-root`` passes ``--allow-root`` to jupyterhub-singleuser.

Instance sources are pluggable: ``--source ec2`` is built in; ``--source NAME`` imports
``simulators.NAME_source`` and uses its ``SOURCE`` class; ``--source pkg.mod:Class``
imports any class. A source subclasses :class:`InstanceSource`.

CLI: ``python -m simulators.noderunner --endpoint-url http://127.0.0.1:5000 --hub-id demo --workdir DIR``.
"""

from __future__ import annotations

import argparse
import base64
import importlib
import json
import logging
import os
import pwd
import re
import shlex
import shutil
import signal
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from simulators.imds import InstanceMetadata, post_interruption, post_rebalance, reclaim_due
from simulators.imds import in_seconds as moment_in
from simulators.processes import ManagedProcess, child_env, free_port, stop_together

log = logging.getLogger("hybrid-node-runner")


@dataclass(frozen=True)
class SourceInstance:
    """One instance as the source sees it. ``state`` "running" means: boot it now."""

    id: str
    state: str


class InstanceSource:
    """Where the runner learns which simulated instances exist. Subclass it for another cloud.

    Implement :meth:`list_instances` and :meth:`boot_script`; add CLI options in
    :meth:`add_arguments` and build the source from them in :meth:`from_args`.
    """

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        """Add the source's own command-line options."""

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> "InstanceSource":
        raise NotImplementedError

    def list_instances(self) -> list[SourceInstance]:
        """Every instance of this hub, in any state. Raise on API errors (nothing is ended then)."""
        raise NotImplementedError

    def boot_script(self, instance_id: str) -> str | None:
        """The instance's user-data as text, or None if it has none."""
        raise NotImplementedError

    def home_volume(self, instance_id: str) -> str | None:
        """The id of the volume attached as this instance's home, if any (from the last listing).

        The runner gives each volume a directory of its own that outlives the instance, as a
        cloud keeps a detached volume; without one, the node gets a root disk of its own that
        goes when the instance is terminated.
        """
        return None

    def storage_step(self, volumes_dir: Path) -> None:
        """Keep the runner's volume directories as the cloud keeps its disks (called each look):
        a new snapshot becomes a copy of its volume's directory, a deleted volume's directory
        goes, a volume made from a snapshot starts as the snapshot's copy. Default: nothing."""

    def ready_to_boot(self, instance_id: str) -> bool:
        """False while the node's boot would still wait for something (a home volume the hub
        attaches after launch: the boot script's mount waits for the disk). Default: True."""
        return True

    def power_off(self, instance_id: str) -> None:
        """The node's operating system powered off (the boot script ran ``poweroff``): do what
        the cloud does then. Default: nothing (the instance stays as it is)."""

    def lifecycle(self, instance_id: str) -> str:
        """What the instance's metadata calls its market: "spot" or "on-demand" (from the last listing)."""
        return "on-demand"

    def reclaim(self, instance_id: str, action: str) -> None:
        """The time of a spot interruption notice has come: do what the cloud does then
        (``action`` is the notice's: terminate, stop or hibernate). Default: nothing."""


class EC2InstanceSource(InstanceSource):
    """Instances carrying the hub tag on an EC2 endpoint (moto server)."""

    def __init__(self, endpoint_url: str, region: str, hub_id: str):
        import boto3
        from botocore.config import Config

        from hybrid_spawner.backends.ec2.plan import TAG_HUB

        self.hub_id = hub_id
        self.hub_filter = [{"Name": f"tag:{TAG_HUB}", "Values": [hub_id]}]
        self.homes: dict[str, tuple[str, bool]] = {}  # instance -> (home volume, attached now)
        # Short timeouts: a hung call must not stall the loop that boots and ends every node.
        config = Config(connect_timeout=5, read_timeout=15, retries={"mode": "standard", "max_attempts": 2})
        self.client = boto3.session.Session().client(
            "ec2", region_name=region, endpoint_url=endpoint_url or None, config=config
        )
        self._lifecycles: dict[str, str] = {}

    @classmethod
    def add_arguments(cls, parser):
        parser.add_argument("--endpoint-url", default=os.environ.get("HYBRID_EC2_ENDPOINT_URL", ""))
        parser.add_argument("--region", default=os.environ.get("AWS_DEFAULT_REGION", "us-east-1"))

    @classmethod
    def from_args(cls, args):
        return cls(args.endpoint_url, args.region, args.hub_id)

    def list_instances(self):
        from hybrid_spawner.backends.ec2.home_volume import TAG_HOME_VOLUME

        found, homes = [], {}
        for page in self.client.get_paginator("describe_instances").paginate(Filters=self.hub_filter):
            for reservation in page["Reservations"]:
                for i in reservation["Instances"]:
                    found.append(SourceInstance(i["InstanceId"], i["State"]["Name"]))
                    self._lifecycles[i["InstanceId"]] = i.get("InstanceLifecycle") or "on-demand"
                    volume = {t["Key"]: t["Value"] for t in i.get("Tags") or []}.get(TAG_HOME_VOLUME)
                    if volume:
                        attached = {m.get("Ebs", {}).get("VolumeId") for m in i.get("BlockDeviceMappings") or []}
                        homes[i["InstanceId"]] = (volume, volume in attached)
        self.homes = homes
        return found

    def home_volume(self, instance_id):
        volume, attached = self.homes.get(instance_id, (None, False))
        return volume if attached else None

    def storage_step(self, volumes_dir):
        from hybrid_spawner.backends.ec2.plan import TAG_HUB
        from simulators.moto_server import SOURCE_VOLUME_TAG

        mine = [{"Name": f"tag:{TAG_HUB}", "Values": [self.hub_id]}]
        snapshots_dir = volumes_dir.parent / "snapshots"
        volumes = self.client.describe_volumes(Filters=mine)["Volumes"]
        snapshots = self.client.describe_snapshots(OwnerIds=["self"], Filters=mine)["Snapshots"]
        for snap in snapshots:
            copy, source = snapshots_dir / snap["SnapshotId"], volumes_dir / snap["VolumeId"]
            if not copy.exists() and source.exists():  # the volume's blocks at snapshot time
                shutil.copytree(source, copy, symlinks=True)
        for volume in volumes:
            target, snap = volumes_dir / volume["VolumeId"], volume.get("SnapshotId")
            source = {t["Key"]: t["Value"] for t in volume.get("Tags") or []}.get(SOURCE_VOLUME_TAG)
            if not snap or target.exists():
                continue
            if (snapshots_dir / snap).exists():
                shutil.copytree(snapshots_dir / snap, target, symlinks=True)
            elif source and (volumes_dir / source).exists():  # a snapshot deleted before we looked
                shutil.copytree(volumes_dir / source, target, symlinks=True)
        existing = {v["VolumeId"] for v in volumes}
        for directory in list(volumes_dir.iterdir()) if volumes_dir.exists() else []:
            if directory.name.startswith("vol-") and directory.name not in existing:
                shutil.rmtree(directory, ignore_errors=True)  # a deleted EBS volume is gone
        live = {s["SnapshotId"] for s in snapshots}
        for directory in list(snapshots_dir.iterdir()) if snapshots_dir.exists() else []:
            if directory.name not in live:
                shutil.rmtree(directory, ignore_errors=True)

    def ready_to_boot(self, instance_id):
        """An instance launched with a home volume boots once the hub has attached it."""
        _volume, attached = self.homes.get(instance_id, (None, True))
        return attached

    def boot_script(self, instance_id):
        value = self.client.describe_instance_attribute(InstanceId=instance_id, Attribute="userData")
        encoded = value.get("UserData", {}).get("Value")
        return base64.b64decode(encoded).decode() if encoded else None

    def power_off(self, instance_id):
        """An OS shutdown stops or terminates the instance, as its InstanceInitiatedShutdownBehavior says."""
        value = self.client.describe_instance_attribute(InstanceId=instance_id, Attribute="instanceInitiatedShutdownBehavior")
        if value.get("InstanceInitiatedShutdownBehavior", {}).get("Value") == "terminate":
            self.client.terminate_instances(InstanceIds=[instance_id])
        else:
            self.client.stop_instances(InstanceIds=[instance_id])

    def lifecycle(self, instance_id):
        return self._lifecycles.get(instance_id, "on-demand")

    def reclaim(self, instance_id, action):
        """AWS ends a reclaimed spot instance as the notice said (one-time requests: terminate)."""
        if action in ("stop", "hibernate"):
            self.client.stop_instances(InstanceIds=[instance_id], Hibernate=action == "hibernate")
        else:
            self.client.terminate_instances(InstanceIds=[instance_id])


RUN_AS = re.compile(r"^(?:exec )?runuser -u '?([a-z_][a-z0-9_.-]*)'? ", re.MULTILINE)


def give_home_to_node_account(home: Path, script: str) -> None:
    """A new home belongs to the account the boot script runs the server as (``runuser -u``),
    as a real image's home does; without one the node runs as the runner's own user."""
    found = RUN_AS.search(script)
    if not found or os.geteuid() != 0:
        return
    try:
        account = pwd.getpwnam(found.group(1))
    except KeyError:
        return  # runuser will say so in the node's log
    os.chown(home, account.pw_uid, account.pw_gid)
    home.chmod(0o700)


def load_source(name: str) -> type[InstanceSource]:
    if name == "ec2":
        return EC2InstanceSource
    if ":" in name:
        module, _, attr = name.partition(":")
        return getattr(importlib.import_module(module), attr)
    return importlib.import_module(f"simulators.{name}_source").SOURCE


class NodeRunner:
    """Runs each running instance's boot script once, and ends it with the instance."""

    def __init__(self, source: InstanceSource, workdir, *, allow_root: bool = False, status_file=None):
        self.source = source
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        # Boot scripts (single-use credentials) and node logs: the runner's alone (0700 files,
        # 0600 logs). The directory itself may be passed through (0711, not listed): a node's
        # server runs as its researcher's account in a home below it, as on a real machine.
        os.chmod(self.workdir, 0o711)
        self.allow_root = allow_root
        self.status_file = Path(status_file) if status_file else None
        self.disks_dir = self.workdir / "disks"  # each instance's root disk, removed at termination
        self.nodes: dict[str, tuple[ManagedProcess, int]] = {}
        self.finished: dict[str, int | None] = {}
        self.errors = 0
        # Each running node's instance metadata service (IMDSv2 stand-in, simulators/imds.py),
        # and when the runner reclaimed a spot instance at its notice's time.
        self.metadata: dict[str, InstanceMetadata] = {}
        self.reclaimed: dict[str, float] = {}

    def node_env(self, port: int, power_dir: Path | None = None) -> dict:
        # A fresh instance knows nothing of the runner's cloud credentials or hub session.
        env = {k: v for k, v in child_env().items() if not k.startswith(("AWS_", "JUPYTERHUB_", "HYBRID_"))}
        env.update(HYBRID_NODE_BIND_IP="127.0.0.1", HYBRID_NODE_PORT=str(port))
        if power_dir is not None:  # first on PATH: `poweroff` must never reach this machine's own
            env["PATH"] = f"{power_dir}{os.pathsep}{env.get('PATH', os.defpath)}"
        if self.allow_root:
            env["HYBRID_NODE_EXTRA_ARGS"] = "--allow-root"
        return env

    def step(self) -> None:
        """One look at the source: boot new running instances, end vanished ones."""
        try:
            instances = {i.id: i.state for i in self.source.list_instances()}
        except Exception as e:  # the endpoint is down: change nothing
            self.errors += 1
            log.warning("listing instances failed: %s", e)
            return
        for instance_id, (proc, _port) in list(self.nodes.items()):
            if instances.get(instance_id) != "running":
                log.info("instance %s is %s: ending its node", instance_id, instances.get(instance_id, "gone"))
                proc.stop(timeout=5)
            if not proc.running:
                self.finished[instance_id] = proc.proc.returncode
                del self.nodes[instance_id]
                if instances.get(instance_id) != "running" or (self.power_dir(instance_id) / "powered-off").exists():
                    # A machine that is off (stopped, terminated, powered off) runs nothing: what
                    # the node's boot script left in its process group ends with it.
                    proc._signal_group(signal.SIGKILL)
                if (self.power_dir(instance_id) / "powered-off").exists() and instances.get(instance_id) == "running":
                    log.info("instance %s powered itself off", instance_id)
                    try:
                        self.source.power_off(instance_id)
                    except Exception as e:  # the endpoint is down: the next look tries again
                        log.warning("powering off %s failed: %s", instance_id, e)
                        self.finished.pop(instance_id, None)
                        self.errors += 1
        self.spot_notices(instances)
        try:  # before any boot: a volume made from a snapshot must hold the snapshot's files
            self.source.storage_step(self.workdir / "volumes")
        except Exception as e:  # the endpoint is down: the next look tries again
            log.warning("looking at volumes and snapshots failed: %s", e)
        for instance_id, state in instances.items():
            if state in ("stopping", "stopped", "pending") and instance_id in self.finished:
                del self.finished[instance_id]  # started again later: a new boot runs its user-data
            if (state == "running" and instance_id not in self.nodes and instance_id not in self.finished
                    and self.source.ready_to_boot(instance_id)):
                self.boot(instance_id)
        self.discard_root_disks(instances)
        self.write_status()

    def notice_dir(self, instance_id: str) -> Path:
        """Where the instance's metadata service reads its spot notices (simulators/imds.py)."""
        return self.workdir / "imds" / instance_id

    def start_metadata(self, instance_id: str) -> dict:
        """The node's own metadata service; returns what the node's environment needs to reach it."""
        old = self.metadata.pop(instance_id, None)
        if old is not None:
            old.stop()
        notices = self.notice_dir(instance_id)
        for stale in notices.glob("*.json") if notices.exists() else []:
            stale.unlink()  # a notice belongs to one run of the instance
        imds = InstanceMetadata(instance_id, notices, self.source.lifecycle(instance_id)).start()
        self.metadata[instance_id] = imds
        return {"HYBRID_IMDS_ENDPOINT": imds.url}

    def spot_notices(self, instances: dict[str, str]) -> None:
        """End the metadata service of ended nodes; reclaim instances whose notice time has passed."""
        for instance_id in [i for i in self.metadata if i not in self.nodes]:
            self.metadata.pop(instance_id).stop()
        for instance_id, imds in self.metadata.items():
            action = reclaim_due(imds.notice_dir)
            if not action or instances.get(instance_id) != "running" or instance_id in self.reclaimed:
                continue
            try:
                self.source.reclaim(instance_id, action)
            except Exception as e:  # the endpoint is down: the next look tries again
                log.warning("reclaiming %s failed: %s", instance_id, e)
                self.errors += 1
                continue
            self.reclaimed[instance_id] = time.time()
            log.info("instance %s reclaimed (%s) at its spot interruption notice's time", instance_id, action)

    def power_dir(self, instance_id: str) -> Path:
        """Where the node's `poweroff` stand-in lives and leaves its mark."""
        return self.workdir / "power" / instance_id

    def discard_root_disks(self, instances: dict[str, str]) -> None:
        """A terminated instance's disk is gone, as on a real cloud (a stopped one keeps it)."""
        state_root = self.workdir / "state"
        for root in (self.disks_dir, state_root):
            for disk in list(root.iterdir()) if root.exists() else []:
                if instances.get(disk.name, "gone") in ("terminated", "gone") and disk.name not in self.nodes:
                    shutil.rmtree(disk, ignore_errors=True)

    def boot(self, instance_id: str) -> None:
        try:
            script = self.source.boot_script(instance_id)
        except Exception as e:
            log.warning("reading the boot script of %s failed: %s", instance_id, e)
            return
        if not script:
            self.finished[instance_id] = None
            return
        path = self.workdir / f"{instance_id}.user-data"
        path.write_text(script)
        path.chmod(0o700)
        port = free_port()
        power_dir = self.power_dir(instance_id)
        power_dir.mkdir(parents=True, exist_ok=True)
        (power_dir / "powered-off").unlink(missing_ok=True)
        shim = power_dir / "poweroff"
        # The node's `poweroff`: the runner, not this machine, does what the cloud would.
        shim.write_text(f"#!/bin/sh\ntouch {shlex.quote(str(power_dir / 'powered-off'))}\n")
        shim.chmod(0o755)
        # The home mount (EC2 home volume): the runner waited for the attachment before booting and
        # serves the volume's directory as the home; the boot script's call is recorded.
        mount = power_dir / "hybrid-mount-home"
        mount.write_text(f"#!/bin/sh\necho \"$@\" > {shlex.quote(str(power_dir / 'mount-home.args'))}\n")
        mount.chmod(0o755)
        # A directory of its own, like a fresh machine: the node's server must not serve the
        # runner's working directory. An attached home volume has its own, kept across instances.
        volume = self.source.home_volume(instance_id)
        home = self.workdir / "volumes" / volume if volume else self.disks_dir / instance_id
        new_home = not home.exists()
        home.mkdir(parents=True, exist_ok=True)
        home.parent.chmod(0o711)
        if new_home:
            give_home_to_node_account(home, script)
        # The node's own state outside its home (a resume key): on its root disk, like
        # /var/lib/hybrid-node, kept while stopped or shelved, gone with the instance.
        state_dir = self.workdir / "state" / instance_id
        new_state = not state_dir.exists()
        state_dir.mkdir(parents=True, exist_ok=True)
        state_dir.parent.chmod(0o711)
        if new_state:
            give_home_to_node_account(state_dir, script)
        env = self.node_env(port, power_dir)
        env["HYBRID_NODE_STATE_DIR"] = str(state_dir)
        env.update(self.start_metadata(instance_id))
        proc = ManagedProcess(f"node-{instance_id}", ["bash", path], log_dir=self.workdir, env=env, cwd=home)
        proc.start()
        proc.log_path.chmod(0o600)
        log.info("booted %s (pid %d, port %d)", instance_id, proc.proc.pid, port)
        self.nodes[instance_id] = (proc, port)

    def write_status(self) -> None:
        if self.status_file is None:
            return
        status = {
            "nodes": {i: {"pid": p.proc.pid, "port": port} for i, (p, port) in self.nodes.items()},
            "finished": self.finished,
            "errors": self.errors,
            "reclaimed": self.reclaimed,
            "time": time.time(),
        }
        tmp = self.status_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(status))
        tmp.replace(self.status_file)

    def run(self, interval: float, stop: threading.Event) -> None:
        try:
            while not stop.is_set():
                self.step()
                stop.wait(interval)
        finally:
            self.stop_all()

    def stop_all(self) -> None:
        stop_together([proc for proc, _ in self.nodes.values()], timeout=5)
        self.nodes.clear()
        for imds in self.metadata.values():
            imds.stop()
        self.metadata.clear()


class NodeRunnerProcess(ManagedProcess):
    """The runner as a child process (for the demo and the tests); ready once it has looked once."""

    def __init__(self, workdir, *, hub_id: str, endpoint_url: str, region: str = "us-east-1",
                 interval: float = 0.5, allow_root: bool | None = None, source: str = "ec2", extra_args=()):
        self.workdir = Path(workdir)
        self.status_path = self.workdir / "noderunner-status.json"
        if allow_root is None:
            allow_root = os.geteuid() == 0
        argv = [sys.executable, "-m", "simulators.noderunner", "--source", source, "--hub-id", hub_id,
                "--endpoint-url", endpoint_url, "--region", region, "--workdir", self.workdir,
                "--status-file", self.status_path, "--interval", interval, *extra_args]
        if allow_root:
            argv.append("--allow-root")
        super().__init__("noderunner", argv, log_dir=self.workdir, env=child_env(), ready=self.status_path.exists)

    def status(self) -> dict:
        return json.loads(self.status_path.read_text())

    def spot_interruption(self, instance_id: str, in_seconds: float = 120, action: str = "terminate") -> dict:
        """AWS's two-minute warning (or a shorter one): the node's IMDS shows it at once, and
        the runner reclaims the instance when its time has come. Returns the notice."""
        return post_interruption(self.workdir / "imds" / instance_id, moment_in(in_seconds), action)

    def rebalance_recommendation(self, instance_id: str) -> dict:
        """AWS's rebalance recommendation for the instance: its IMDS shows it at once."""
        return post_rebalance(self.workdir / "imds" / instance_id)


def main(argv=None) -> int:
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--source", default="ec2")
    known, _ = pre.parse_known_args(argv)
    source_class = load_source(known.source)

    parser = argparse.ArgumentParser(prog="python -m simulators.noderunner", description=__doc__.split("\n\n")[0])
    parser.add_argument("--source", default="ec2", help="ec2, NAME (simulators.NAME_source) or module:Class")
    parser.add_argument("--hub-id", required=True, help="the hub's id tag value (EC2Spawner.hub_id)")
    parser.add_argument("--workdir", required=True, help="where boot scripts and node logs go")
    parser.add_argument("--status-file", help="JSON file rewritten after every look")
    parser.add_argument("--interval", type=float, default=1.0, help="seconds between looks")
    parser.add_argument("--allow-root", action="store_true", help="pass --allow-root to the single-user servers")
    source_class.add_arguments(parser)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")

    runner = NodeRunner(source_class.from_args(args), args.workdir, allow_root=args.allow_root,
                        status_file=args.status_file)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    runner.run(args.interval, stop)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
