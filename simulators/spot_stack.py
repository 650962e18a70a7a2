"""A hub with a spot profile on simulated EC2 (moto server), its node runner (each node with an
IMDSv2 stand-in) and a SeaweedFS bucket reached with per-user STS credentials: what the spot
notice test and benchmark share.

    with SpotStack(directory, moto_url) as stack:
        stack.hub.spawn("ana", options={"profile": "spot"})
        stack.runner.spot_interruption(instance_id, in_seconds=30)
"""

from __future__ import annotations

import secrets
import uuid
from pathlib import Path

from hybrid_spawner.backends.ec2.plan import TAG_HUB, TAG_OWNER
from simulators.ec2sim import REGION, aws_client, hub_config, make_network
from simulators.hub import LocalHub
from simulators.moto import MOTO_CREDENTIALS
from simulators.noderunner import NodeRunnerProcess
from simulators.seaweedfs import SeaweedS3, hub_sts_settings

CONFIG = """
c.JupyterHub.spawner_class = "hybrid"
c.JupyterHub.tornado_settings = {"slow_spawn_timeout": 0}
c.HybridSpawner.poll_interval = 1
c.HybridSpawner.profiles = [
    {"slug": "spot", "display_name": "Spot VM", "backend": "ec2", "default": True,
      "overrides": {"spot": True, "restore_on_start": True}},
    {"slug": "on-demand", "display_name": "On-demand VM", "backend": "ec2",
      "overrides": {"restore_on_start": True}},
]
"""


class SpotStack:
    def __init__(self, directory, moto_url: str, extra_config: str = ""):
        self.dir = Path(directory)
        self.moto_url = moto_url
        self.extra_config = extra_config
        self.store: SeaweedS3 | None = None
        self.runner: NodeRunnerProcess | None = None
        self.hub: LocalHub | None = None
        self.hub_id = f"spot-{secrets.token_hex(4)}"
        self.ec2 = aws_client("ec2", moto_url)
        self.bucket = ""

    def start(self) -> "SpotStack":
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        return self

    def _start(self) -> None:
        self.store = SeaweedS3(self.dir / "s3", sts=True)
        self.store.start()
        self.bucket = self.store.create_bucket(f"spot-{uuid.uuid4().hex[:10]}")
        sts_config, sts_env = hub_sts_settings(self.store, self.bucket, self.dir)
        net = make_network(self.moto_url)
        config = hub_config(self.moto_url, net, self.hub_id, refresh=1) + CONFIG + sts_config + self.extra_config
        self.runner = NodeRunnerProcess(self.dir / "nodes", hub_id=self.hub_id, endpoint_url=self.moto_url, region=REGION)
        self.runner.env.update(MOTO_CREDENTIALS)
        self.runner.start()
        self.hub = LocalHub(self.dir / "hub", config, env={**MOTO_CREDENTIALS, **sts_env})
        self.hub.start()

    def stop(self) -> None:
        if self.hub is not None:
            self.hub.stop()
        left = [i["InstanceId"] for i in self.instances(states=("pending", "running", "stopping", "stopped"))]
        if left:
            self.ec2.terminate_instances(InstanceIds=left)
        if self.runner is not None:
            self.runner.stop()
        if self.store is not None:
            self.store.stop()

    def __enter__(self) -> "SpotStack":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- looking at the cloud and the nodes -------------------------------------------------------
    def instances(self, owner: str | None = None, states=None) -> list[dict]:
        filters = [{"Name": f"tag:{TAG_HUB}", "Values": [self.hub_id]}]
        if owner:
            filters.append({"Name": f"tag:{TAG_OWNER}", "Values": [owner]})
        if states:
            filters.append({"Name": "instance-state-name", "Values": list(states)})
        reply = self.ec2.describe_instances(Filters=filters)
        return [i for r in reply["Reservations"] for i in r["Instances"]]

    def running_instance(self, owner: str) -> dict:
        (instance,) = self.instances(owner, states=("running",))
        return instance

    def home(self, instance_id: str) -> Path:
        """The node's disk: the directory its server serves (gone when the instance is terminated)."""
        return self.runner.workdir / "disks" / instance_id

    def bucket_keys(self, user: str) -> set[str]:
        """The user's files in the bucket, as paths below their prefix."""
        client = self.store.client()
        prefix = f"users/{user}/"
        found = set()
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix):
            found.update(item["Key"][len(prefix):] for item in page.get("Contents", []))
        return found

    def bucket_file(self, user: str, path: str) -> bytes:
        return self.store.client().get_object(Bucket=self.bucket, Key=f"users/{user}/{path}")["Body"].read()
