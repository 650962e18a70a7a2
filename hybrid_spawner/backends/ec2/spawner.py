"""EC2Spawner: each notebook server on its own private EC2 instance, booted through the node bootstrap.

``c.JupyterHub.spawner_class = "hybrid-ec2"``. The instance gets a boot script as user-data that
holds only the hub URL and a single-use credential (see :mod:`hybrid_spawner.bootstrap`);
everything else — API token, environment — is fetched by the node from the hub over the private
network. Request building lives in :mod:`.plan` (pure), status polling in :mod:`.status`, boto3
clients in :mod:`.client`.
"""

from __future__ import annotations

import asyncio
import functools
import os
import uuid

import botocore.exceptions
from botocore.parsers import ResponseParserError
from traitlets import Bool, Callable, Dict, Enum, Float, Integer, List, Unicode, default

from hybrid_spawner.backends.ec2 import plan
from hybrid_spawner.backends.ec2.client import aws_client, known_regions
from hybrid_spawner.backends.ec2.status import EC2StatusCache
from hybrid_spawner.remote import BackendFull, RemoteSpawner, SpawnFailed


class EC2Spawner(RemoteSpawner):
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
        problems = plan.option_problems(
            self.region, self.image, self._instance_types(), self.subnet_ids, self.security_group_ids
        )
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

    async def launch_node(self, script: str) -> str:
        spec = plan.LaunchSpec(
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
        )
        last_error = None
        for attempt in plan.launch_attempts(self._instance_types(), self.subnet_ids, self.spot, self.spot_fallback):
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
        return {"instance_type": self.launched_instance_type, "market": self.launched_market}

    def load_backend_state(self, state: dict) -> None:
        self.launched_instance_type = state.get("instance_type")
        self.launched_market = state.get("market")

    def clear_backend_state(self) -> None:
        self.launched_instance_type = self.launched_market = None
