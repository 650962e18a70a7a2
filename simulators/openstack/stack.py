"""The whole OpenStack path on one machine: a JupyterHub using OpenStackSpawner, the fake
cloud and the local node runner. Used by the integration tests and the benchmark."""

from __future__ import annotations

import json
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from simulators.hub import LocalHub
from simulators.processes import ManagedProcess

from simulators.noderunner_openstack import NovaNodeRunnerProcess
from simulators.openstack import FakeOpenStack

HUB_CONFIG = """
import sys
c.JupyterHub.spawner_class = "hybrid-openstack"
# Answer the spawn POST at once, so callers can follow the progress stream from the start.
c.JupyterHub.tornado_settings = {{"slow_spawn_timeout": 0}}
c.OpenStackSpawner.cloud = "fake"
c.OpenStackSpawner.clouds_yaml = {clouds_yaml!r}
c.OpenStackSpawner.image = "jupyter-node-2024"
c.OpenStackSpawner.flavor = "m1.small"
c.OpenStackSpawner.networks = ["research-private"]
c.OpenStackSpawner.security_groups = ["jupyter-nodes"]
c.OpenStackSpawner.key_name = "research-key"
c.OpenStackSpawner.hub_id = {hub_id!r}
c.OpenStackSpawner.node_python = sys.executable
c.OpenStackSpawner.start_timeout = 120
c.OpenStackSpawner.http_timeout = 120
c.OpenStackSpawner.status_refresh_interval = 1
c.OpenStackSpawner.build_poll_interval = 0.5
c.OpenStackSpawner.extra_metadata = {{"project": "genomics"}}
c.Spawner.poll_interval = 1

# Users named after a misconfiguration get it, so one hub covers the bad-settings cases.
def misconfigure(spawner):
    if spawner.user.name == "wrongcloud":
        spawner.cloud = "no-such-cloud"
    elif spawner.user.name == "badcreds":
        spawner.cloud = "fake-badpass"
    elif spawner.user.name == "badimage":
        spawner.image = "no-such-image"
c.Spawner.pre_spawn_hook = misconfigure
"""


@dataclass
class OpenStackStack:
    hub: LocalHub
    fake: FakeOpenStack
    runner: ManagedProcess
    clouds_yaml: Path
    nodes_dir: Path


@contextmanager
def openstack_stack(fake: FakeOpenStack, base: Path, hub_config: str = HUB_CONFIG, hub_id: str = "test-hub"):
    """Start the node runner and a hub against a running ``fake``; stop both on exit."""
    base = Path(base)
    base.mkdir(parents=True, exist_ok=True)
    entries = fake.cloud_entries()
    bad = {**entries["fake"], "auth": {**entries["fake"]["auth"], "password": "not-the-password"}}
    clouds_yaml = base / "clouds.yaml"
    clouds_yaml.write_text(json.dumps({"clouds": {**entries, "fake-badpass": bad}}, indent=2))
    nodes_dir = base / "nodes"
    runner = NovaNodeRunnerProcess(nodes_dir, clouds_yaml=clouds_yaml, hub_id=hub_id, interval=0.3, log_dir=base)
    runner.start()
    hub = LocalHub(base / "hub", hub_config.format(clouds_yaml=str(clouds_yaml), hub_id=hub_id))
    try:
        hub.start()
        yield OpenStackStack(hub, fake, runner, clouds_yaml, nodes_dir)
    finally:
        hub.stop()
        runner.stop()


def request_spawn(hub: LocalHub, user: str) -> float:
    """POST the spawn (answered at once: slow_spawn_timeout is 0); returns when it was posted."""
    started = time.monotonic()
    status, body = hub.spawn(user)
    if status not in (201, 202):
        raise RuntimeError(f"spawn of {user} answered {status}: {body}")
    return started


def spawn_and_follow(hub: LocalHub, user: str, timeout: float = 90.0) -> list[dict]:
    """Spawn and follow the progress to its end; ``elapsed`` counts from the POST."""
    return hub.progress_events(user, timeout=timeout, since=request_spawn(hub, user))
