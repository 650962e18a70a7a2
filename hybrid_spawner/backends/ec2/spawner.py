"""EC2Spawner: each notebook server on its own private EC2 instance, booted through the node bootstrap.

``c.JupyterHub.spawner_class = "hybrid-ec2"``. The instance gets a boot script as user-data that
holds only the hub URL and a single-use credential (see :mod:`hybrid_spawner.bootstrap`);
everything else — API token, environment — is fetched by the node from the hub over the private
network. Request building lives in :mod:`.plan` (pure), status polling in :mod:`.status`, boto3
clients in :mod:`.client`.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import os
import time
import uuid

import botocore.exceptions
from botocore.parsers import ResponseParserError
from traitlets import Bool, Callable, Dict, Enum, Float, Integer, List, Unicode, default

from hybrid_spawner import parking
from hybrid_spawner.backends.ec2 import home_volume, plan
from hybrid_spawner.backends.ec2.home import EC2HomeVolume
from hybrid_spawner.backends.ec2.client import aws_client, known_regions
from hybrid_spawner.backends.ec2.status import EC2StatusCache
from hybrid_spawner.home_bounds import HomeRequestRefused, check_home_request
from hybrid_spawner.remote import BackendFull, RemoteSpawner, SpawnFailed


class EC2Spawner(EC2HomeVolume, RemoteSpawner):
    """Spawn each server on a private EC2 instance (RunInstances with a bootstrap user-data)."""

    backend = "ec2"

    region = Unicode(
        config=True,
        help="""AWS region of the instances, e.g. eu-west-1. Defaults to AWS_REGION /
        AWS_DEFAULT_REGION of the hub's environment.""",
    )

    @default("region")
    def _default_region(self):
        return os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or ""

    endpoint_url = Unicode(
        "",
        config=True,
        help="""EC2/SSM endpoint URL. Leave empty for AWS; set it for a VPC interface endpoint
        or a local simulation such as moto server (http://127.0.0.1:5000).""",
    )
    image = Unicode(
        "",
        config=True,
        help="""The node image: an AMI id (ami-0123...) or resolve:ssm:/parameter/name. The SSM
        form is read at every spawn, so an EC2 Image Builder pipeline that publishes its latest
        AMI id to that parameter rolls nodes forward with no hub change. The image needs
        Python 3 with jupyterhub-singleuser and this package (see docs/ec2.md).""",
    )
    instance_types = List(
        Unicode(),
        default_value=["t3.medium"],
        config=True,
        help="""Instance types in order of preference. When EC2 has no capacity for one
        (InsufficientInstanceCapacity) or it is not offered in the zone (Unsupported), the
        next one is tried, in every subnet.""",
    )
    instance_type = Unicode(
        "",
        config=True,
        help="""Instance type to try first, before instance_types (which then serve as the
        fallback list). Empty: instance_types alone. This is the setting a profile option lets
        the researcher choose, e.g. {"instance_type": {"trait": "instance_type", "choices":
        ["t3.medium", "t3.large"]}}.""",
    )
    spot = Bool(
        False,
        config=True,
        help="""Ask for spot capacity (one-time, terminated on reclaim) instead of on-demand.
        Spot costs much less but AWS may reclaim it with two minutes' notice; the spawn page
        says which market the server got. A profile can offer it as a choice, e.g.
        {"market": {"choices": {"spot": {"overrides": {"spot": true}}, "on-demand": {}}}}.""",
    )
    spot_fallback = Enum(
        list(plan.SPOT_FALLBACKS),
        default_value="on-demand",
        config=True,
        help="""What to try when spot capacity is missing (InsufficientInstanceCapacity,
        SpotMaxPriceTooLow ...): "on-demand" (the same instance type on-demand, then the next
        type), "next-type" (spot for every instance type first, then on-demand) or "none"
        (spot only: the spawn fails, or a burst chain moves on).""",
    )
    spot_notice_interval = Float(
        2.0,
        config=True,
        help="""Seconds between two looks of a spot server's node at its instance metadata
        (IMDSv2) for AWS's interruption notice and rebalance recommendation. On the notice the
        node syncs the home to the bucket at once, JupyterLab tells the researcher when the
        server ends, and the hub records why (the next spawn says so). AWS gives two minutes;
        the look itself is a local HTTP request. 0 turns the watch off. On-demand servers are
        never watched.""",
    )
    stop_action = Enum(
        ["terminate", "stop"],
        default_value="terminate",
        config=True,
        help="""What stopping the server does to its instance. "terminate" (default): the
        instance and its root disk are gone (what was synced stays in the bucket). "stop": the
        instance is stopped with its EBS disks (StopInstances; the disks still cost money, the
        compute does not) and the next start of the same server and profile resumes it
        (StartInstances) with a fresh single-use boot credential; the spawn page says so. The
        idle culler's stops do the same. Stopped instances older than stopped_max_age are
        terminated by the reconciler. A node that powers itself off (its server died) is then
        stopped too, not terminated. Spot instances are always terminated (one-time spot
        capacity cannot be stopped). The node image must run its user-data at every boot
        (docs/node-image.md).""",
    )
    resume_stopping_timeout = Float(
        180,
        config=True,
        help="""Seconds a start waits for a parked instance that is still "stopping" before it
        gives up (the instance stays stopped for the next try).""",
    )
    home_volume_size = Integer(
        0,
        config=True,
        help="""GB of the persistent home: one EBS volume per user and named server, created at
        the first start (tagged owner, hub id, server name), attached to each new instance and
        mounted as the home by the boot script (formatted only when blank), kept when the server
        stops. The instance is launched in the volume's availability zone; when that zone has no
        capacity, the volume moves by snapshot to a zone of subnet_ids that has. 0: no volume,
        the home is the instance's own disk (use restore_on_start or stop_action = "stop").
        A profile may set it within home_volume_max_size. Needs subnet_ids.""",
    )
    home_volume_max_size = Integer(
        100, config=True, help="""Largest home_volume_size a profile may ask for (GB); 0: no limit."""
    )
    home_volume_type = Unicode("gp3", config=True, help="""EBS type of new home volumes (gp3, gp2, io2 ...).""")
    home_volume_types_allowed = List(
        Unicode(),
        config=True,
        help="""EBS types a profile may choose for home_volume_type; empty: any.""",
    )
    home_volume_encrypted = Bool(True, config=True, help="""Encrypt home volumes (and their snapshots).""")
    home_volume_kms_key_id = Unicode(
        "",
        config=True,
        help="""KMS key (id, alias ARN or key ARN) for home volumes; empty: the account's default
        EBS key. The hub's role then needs the KMS grants in jupyter_config/iam/hub-role-kms.json.""",
    )
    home_volume_timeout = Float(
        300, config=True, help="""Seconds to wait for EBS to create, release or move a home volume."""
    )
    home_mount_command = Unicode(
        "hybrid-mount-home",
        config=True,
        help="""Command the boot script runs (as root) to wait for the attached home, format it
        only when blank and mount it: called as COMMAND DEVICE MOUNTPOINT [ACCOUNT]. The image
        recipe installs jupyter_config/node-image/mount-home.sh under this name.""",
    )
    home_mount_point = Unicode(
        "/home",
        config=True,
        help="""Where the home volume is mounted on the node. With node_user set, the account's
        directory below it (e.g. /home/jovyan) is created on a new volume and given to it.""",
    )
    home_volume_archive_after = Float(
        0,
        config=True,
        help="""Seconds a detached home volume may stay unused (since its last attach or stop)
        before the reconciler snapshots it and deletes the volume (snapshot storage costs about
        a quarter of gp3 per GB-month); the next start restores it from the snapshot and says
        so. 0 (default): never. Hub-wide: read from the hub's EC2Spawner settings, e.g.
        30 * 86400. Needs the Reconciler enabled.""",
    )
    delete_home_volume_with_user = Bool(
        False,
        config=True,
        help="""When the hub deletes a user (JupyterHub's delete_forever), delete their home
        volumes and snapshots too. Off by default: a deleted account's data is kept until an
        admin removes it.""",
    )
    subnet_ids = List(
        Unicode(),
        config=True,
        help="""Private subnet ids to launch into, in order of preference (one per availability
        zone gives capacity fallback across zones). Instances get no public IP. Empty uses the
        region's default VPC (not recommended).""",
    )
    security_group_ids = List(
        Unicode(),
        config=True,
        help="""Security groups of the instance. They must allow the hub to reach the node's
        port and the node to reach the hub's API (hub_connect_url).""",
    )
    instance_profile = Unicode(
        "",
        config=True,
        help="""IAM instance profile (name or ARN) the node runs with, e.g. one that grants S3
        access to the notebook bucket. Empty attaches none.""",
    )
    root_volume_size = Integer(
        0, config=True, help="Root volume size in GiB; 0 keeps the image's size."
    )
    root_volume_type = Unicode("gp3", config=True, help="EBS type of the root volume (gp3, gp2, io2 ...).")
    root_volume_encrypted = Bool(True, config=True, help="Encrypt the root volume (account default KMS key).")
    extra_tags = Dict(
        config=True,
        help="""Extra tags for instances and volumes, e.g. {"project": "genomics",
        "cost-center": "42"}. Name, jupyterhub/owner, jupyterhub/hub-id and
        jupyterhub/server-name are always set by the spawner. Never put secrets in tags.""",
    )
    key_name = Unicode("", config=True, help="EC2 key pair for SSH access to nodes; empty for none.")
    imdsv2_required = Bool(
        True,
        config=True,
        help="""Require IMDSv2 session tokens on the instance metadata service
        (HttpTokens=required), which blocks SSRF-style credential theft.""",
    )
    hub_id = Unicode(
        "jupyterhub",
        config=True,
        help="""Identifies this hub's instances (tag jupyterhub/hub-id). Status polling lists
        exactly the instances with this tag, so give every hub sharing an AWS account a
        distinct value.""",
    )
    port = Integer(
        8888,
        config=True,
        help="""Port of the single-user server on the node (open it to the hub in the security
        group). 0 lets each node pick a free port and report it.""",
    )
    client_customizer = Callable(
        None,
        allow_none=True,
        config=True,
        help="""Called as f(client, service_name) on each boto3 client the spawner creates, e.g.
        to register botocore event handlers (request tracing, fault injection in tests).""",
    )

    # state beyond the base class (stored as "instance_type" and "market")
    launched_instance_type = Unicode(None, allow_none=True)
    launched_market = Unicode(None, allow_none=True)

    def _instance_types(self) -> list[str]:
        return plan.instance_type_order(self.instance_type, self.instance_types)

    # ------------------------------------------------------------------ clients
    def _client(self, service: str):
        return aws_client(service, self.region, self.endpoint_url, self.client_customizer)

    async def _call(self, service: str, method: str, **kwargs):
        """One AWS call in a worker thread (never on the hub's event loop). A read whose answer
        arrives garbled (cut off by a proxy or a reset) is simply asked again; botocore's own
        retries cover throttling, 5xx and lost connections, not answers it cannot parse."""
        client = await asyncio.to_thread(self._client, service)
        reads = method.startswith(("describe_", "get_"))
        for attempt in range(3 if reads else 1):
            try:
                return await asyncio.to_thread(getattr(client, method), **kwargs)
            except ResponseParserError:
                if attempt == 2 or not reads:
                    raise
                await asyncio.sleep(0.25 * 2**attempt)

    def status_cache(self) -> EC2StatusCache:
        return EC2StatusCache.shared(
            (self.region, self.endpoint_url, self.hub_id),
            functools.partial(aws_client, "ec2", self.region, self.endpoint_url, self.client_customizer),
            self.hub_id,
            self.status_refresh_interval,
        )

    # ------------------------------------------------------------------ backend contract
    async def check_options(self) -> None:
        self._image_id = self._root_device = None
        if self.home_volume_size:
            try:
                self._home_request = check_home_request(
                    self.home_volume_size, self.home_volume_type,
                    max_size_gb=self.home_volume_max_size, allowed_types=list(self.home_volume_types_allowed))
            except HomeRequestRefused as e:
                raise SpawnFailed(f"Home volume refused: {e}.", status=400) from None
        problems = plan.option_problems(
            self.region, self.image, self._instance_types(), self.subnet_ids, self.security_group_ids
        )
        if self.home_volume_size and not self.subnet_ids:
            problems.append("a home volume needs subnet_ids (its availability zone decides the subnet)")
        if not problems and self.region not in await asyncio.to_thread(known_regions):
            problems.append(f"{self.region!r} is not a known AWS region (EC2Spawner.region)")
        if problems:
            raise SpawnFailed("Could not start the server: " + "; ".join(problems) + ".")
        if self.security_group_ids:
            # RunInstances with a network interface does not always say which group is wrong.
            await self._call("ec2", "describe_security_groups", GroupIds=list(self.security_group_ids))
        self._image_id = await self._resolve_image()
        images = (await self._call("ec2", "describe_images", ImageIds=[self._image_id]))["Images"]
        if not images:
            raise SpawnFailed(f"Could not start the server: image {self._image_id} does not exist in {self.region}.")
        self._root_device = images[0].get("RootDeviceName")

    async def _resolve_image(self) -> str:
        if not self.image.startswith(plan.SSM_PREFIX):
            return self.image
        name = self.image[len(plan.SSM_PREFIX) :]
        self.emit(7, f"Looking up the current image in SSM parameter {name}")
        value = (await self._call("ssm", "get_parameter", Name=name))["Parameter"]["Value"].strip()
        if not value.startswith("ami-"):
            raise SpawnFailed(f"Could not start the server: SSM parameter {name} holds no AMI id.")
        self.log.info("%s: %s resolved to %s", self._log_name, name, value)
        return value

    def _launch_spec(self, script: str) -> plan.LaunchSpec:
        return plan.LaunchSpec(
            image_id=self._image_id,
            user_data=script,
            tags=plan.instance_tags(self.user.name, self.name, self.hub_id, self.extra_tags),
            security_group_ids=list(self.security_group_ids),
            instance_profile=self.instance_profile,
            key_name=self.key_name,
            imdsv2_required=self.imdsv2_required,
            root_device_name=self._root_device,
            root_volume_size=self.root_volume_size,
            root_volume_type=self.root_volume_type,
            root_volume_encrypted=self.root_volume_encrypted,
            shutdown_behavior="stop" if self.stop_action == "stop" else "terminate",
        )

    async def launch_node(self, script: str) -> str:
        spec = self._launch_spec(script)
        if self.home_volume_size:
            return await self._launch_with_home(spec)  # home.py: in the home volume's zone
        return await self._launch_in(spec, list(self.subnet_ids))

    async def _launch_in(self, spec: plan.LaunchSpec, subnet_ids: list[str]) -> str:
        """RunInstances over the instance types, markets and ``subnet_ids`` until one has
        capacity; BackendFull when none has."""
        last_error = None
        for attempt in plan.launch_attempts(self._instance_types(), subnet_ids, self.spot, self.spot_fallback):
            request = plan.run_instances_request(spec, attempt, client_token=uuid.uuid4().hex)
            where = f" in {attempt.subnet_id}" if attempt.subnet_id else ""
            self.log.info("%s: RunInstances %s %s%s", self._log_name, attempt.market, attempt.instance_type, where)
            try:
                reply = await self._run_instances(request)
            except botocore.exceptions.ClientError as e:
                code = e.response.get("Error", {}).get("Code", "")
                errors = plan.SPOT_CAPACITY_ERRORS if attempt.market == plan.SPOT else plan.CAPACITY_ERRORS
                if code not in errors:
                    raise
                last_error = code
                kind = "spot " if attempt.market == plan.SPOT else ""
                self.emit(15, f"No {kind}{attempt.instance_type} capacity{where} ({code}); trying the next option")
                continue
            instance = reply["Instances"][0]
            self.launched_instance_type = instance["InstanceType"]
            # Named on the spawn page only when spot was asked for: then which one it got matters.
            self.launched_market = attempt.market if self.spot else None
            if self.spot and attempt.market == plan.ON_DEMAND:
                self.emit(20, f"No spot capacity; started {attempt.instance_type} on-demand instead")
            return instance["InstanceId"]
        raise BackendFull(
            f"Could not start the server: EC2 has no capacity for {', '.join(self._instance_types())} "
            f"right now ({last_error}). Try again later."
        )

    async def _run_instances(self, request: dict, tries: int = 3) -> dict:
        """RunInstances, retried on garbled replies; the ClientToken makes a retry launch nothing twice."""
        for attempt in range(tries):
            try:
                return await self._call("ec2", "run_instances", **request)
            except ResponseParserError:
                if attempt == tries - 1:
                    raise
                self.log.warning("%s: unreadable RunInstances reply; retrying with the same client token", self._log_name)
                await asyncio.sleep(0.5 * 2**attempt)

    async def wait_for_address(self, node_id: str) -> str:
        delay = 0.25
        while True:
            try:
                reply = await self._call("ec2", "describe_instances", InstanceIds=[node_id])
                instances = [i for r in reply["Reservations"] for i in r["Instances"]]
            except botocore.exceptions.ClientError as e:
                if e.response.get("Error", {}).get("Code") != "InvalidInstanceID.NotFound":
                    raise
                instances = []  # not visible yet (eventual consistency)
            if instances:
                state = instances[0]["State"]["Name"]
                if state == "running" and instances[0].get("PrivateIpAddress"):
                    if self.home_volume_id:
                        await self._attach_home(node_id)
                    return instances[0]["PrivateIpAddress"]
                if state not in ("pending", "running"):
                    reason = instances[0].get("StateReason", {}).get("Message", state)
                    raise SpawnFailed(f"Instance {node_id} did not start: {reason}.")
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)

    async def terminate_node(self, node_id: str) -> None:
        try:
            await self._call("ec2", "terminate_instances", InstanceIds=[node_id])
        except botocore.exceptions.ClientError as e:
            if e.response.get("Error", {}).get("Code") != "InvalidInstanceID.NotFound":
                raise

    def interruption_watch(self) -> dict | None:
        if self.launched_market == plan.SPOT and self.spot_notice_interval > 0:
            return {"interval": self.spot_notice_interval}
        return None

    # ------------------------------------------------------------------ stop and resume
    def _stoppable(self) -> bool:
        return self.stop_action == "stop" and self.launched_market != plan.SPOT

    def default_home_kind(self) -> str:
        return "persistent" if self.home_volume_size else "ephemeral"

    def script_context(self) -> dict:
        if not self.home_volume_size:
            return {}
        # The device path carries the volume id, known only at launch: the boot script is
        # rendered before, so it names the tag the node reads instead (see node_bootstrap.sh.j2).
        return {"home_mount_command": self.home_mount_command, "home_mount_point": self.home_mount_point}

    async def stop(self, now=False):
        home = self.home_volume_id
        await super().stop(now=now)
        if home and self.home_volume_size:
            await self._mark_home_used(home)

    async def delete_forever(self):
        """JupyterHub deletes the user: stopped instances go; home volumes only if the admin said so."""
        await super().delete_forever()
        if self.home_volume_size and self.delete_home_volume_with_user:
            await self._delete_homes()

    async def park_node(self, node_id: str) -> bool:
        if not self._stoppable():
            if self.stop_action == "stop":
                self.log.info("%s: %s is a spot instance, which cannot be stopped; terminating it", self._log_name, node_id)
            return False
        await self._call("ec2", "stop_instances", InstanceIds=[node_id])
        return True

    def parks_when_gone(self, seen) -> bool:
        return self._stoppable() and seen.detail.split(":")[0] in ("stopping", "stopped")

    async def _describe_instance(self, node_id: str) -> dict | None:
        try:
            reply = await self._call("ec2", "describe_instances", InstanceIds=[node_id])
        except botocore.exceptions.ClientError as e:
            if e.response.get("Error", {}).get("Code") != "InvalidInstanceID.NotFound":
                raise
            return None
        found = [i for r in reply["Reservations"] for i in r["Instances"]]
        return found[0] if found else None

    async def resume_node(self, parked: dict, script: str) -> str | None:
        node_id = parked[parking.NODE_ID]
        deadline = time.monotonic() + self.resume_stopping_timeout
        told = False
        while True:
            instance = await self._describe_instance(node_id)
            state = instance["State"]["Name"] if instance else None
            step = plan.resume_step(state)
            if step == plan.RESUME:
                break
            if step == plan.LAUNCH_NEW:
                self.emit(8, f"Your stopped instance {node_id} is gone ({state or 'not found'}); starting a new one")
                return None
            if time.monotonic() > deadline:
                raise SpawnFailed(f"Your stopped instance {node_id} is still {state} after "
                                  f"{self.resume_stopping_timeout:.0f} s; try again in a minute (it is kept).")
            if step == plan.STOP_FIRST:
                # Started outside JupyterHub: its boot script is spent. Stop it, keeping the disk.
                self.emit(8, f"Your instance {node_id} was started outside JupyterHub; stopping it to resume it")
                await self._call("ec2", "stop_instances", InstanceIds=[node_id])
            elif not told:
                self.emit(8, f"Waiting for your instance {node_id} to finish stopping")
                told = True
            await asyncio.sleep(1.0)
        kind = instance.get("InstanceType")
        allowed = self._instance_types()
        if kind not in allowed:
            # The profile's types changed since the stop: the disk stays, the size follows the profile.
            self.emit(9, f"Changing your stopped instance from {kind} to {allowed[0]} (the profile's type)")
            await self._call("ec2", "modify_instance_attribute", InstanceId=node_id, InstanceType={"Value": allowed[0]})
            kind = allowed[0]
        # A fresh single-use credential: the one in the launch's user-data is spent and expired.
        # ModifyInstanceAttribute takes user-data base64-encoded (RunInstances' is encoded by boto3).
        await self._call("ec2", "modify_instance_attribute", InstanceId=node_id,
                         UserData={"Value": base64.b64encode(script.encode())})
        self.emit(10, f"Resuming your stopped instance {node_id} ({kind}), stopped {parking.waited(parked, time.time())} ago")
        try:
            await self._call("ec2", "start_instances", InstanceIds=[node_id])
        except botocore.exceptions.ClientError as e:
            code = e.response.get("Error", {}).get("Code", "")
            if code in plan.CAPACITY_ERRORS:
                raise BackendFull(f"Could not resume your stopped instance {node_id}: EC2 has no {kind} capacity "
                                  f"right now ({code}). Its disk is kept; try again later.") from None
            raise
        self.launched_instance_type, self.launched_market = kind, None
        tags = {t["Key"]: t["Value"] for t in instance.get("Tags") or []}
        self.home_volume_id = tags.get(home_volume.TAG_HOME_VOLUME)  # still attached while stopped
        return node_id

    def _image_text(self) -> str:
        resolved = getattr(self, "_image_id", None)
        if resolved and resolved != self.image:
            return f"{resolved} (from {self.image})"
        return self.image

    def describe_node(self) -> str:
        kind = self.launched_instance_type
        if kind and self.launched_market:
            return f"instance {self.node_id} ({kind}, {self.launched_market})"
        return f"instance {self.node_id} ({kind})" if kind else f"instance {self.node_id}"

    def describe_error(self, error: BaseException) -> str | None:
        context = {
            "region": self.region,
            "image": self._image_text(),
            "subnets": ", ".join(self.subnet_ids) or "(default)",
            "groups": ", ".join(self.security_group_ids),
        }
        if isinstance(error, botocore.exceptions.ClientError):
            err = error.response.get("Error", {})
            return plan.client_error_message(err.get("Code", "?"), err.get("Message", ""), **context)
        if isinstance(error, botocore.exceptions.NoCredentialsError):
            return "Could not start the server: the hub has no AWS credentials (instance profile, environment or config file)."
        if isinstance(error, (botocore.exceptions.EndpointConnectionError, botocore.exceptions.ConnectTimeoutError)):
            return f"Could not start the server: cannot reach EC2 in {self.region} ({self.endpoint_url or 'AWS'})."
        if isinstance(error, botocore.exceptions.ParamValidationError):
            return f"Could not start the server: invalid EC2 request ({error})."
        if isinstance(error, botocore.exceptions.BotoCoreError):
            return f"Could not start the server: AWS client error ({type(error).__name__})."
        return None

    # ------------------------------------------------------------------ state
    def backend_state(self) -> dict:
        state = {"instance_type": self.launched_instance_type, "market": self.launched_market}
        if self.home_volume_id:
            state["home_volume"] = self.home_volume_id
        return state

    def load_backend_state(self, state: dict) -> None:
        self.launched_instance_type = state.get("instance_type")
        self.launched_market = state.get("market")
        self.home_volume_id = state.get("home_volume")

    def clear_backend_state(self) -> None:
        self.launched_instance_type = self.launched_market = self.home_volume_id = None
