"""The lifecycle every remote-node spawner shares: bootstrap, progress, timeouts, state, polling.

A backend (EC2, OpenStack, ...) subclasses :class:`RemoteSpawner` and implements the hooks in
the section "backend contract" below; everything else — the single-use bootstrap credential,
progress events for the spawn page, the start timeout, terminating the node on any failure,
``get_state``/``load_state`` and ``poll()`` from a shared status cache — lives here.

Lifecycle of ``start()``::

    check_options()            validate/resolve input (e.g. an SSM image parameter); nothing exists yet
    launch_node(script)        the cloud call; returns the node id           -> "launched" event
    wait_for_address(node_id)  until the node runs; returns its private IP   -> "running" event
    (node redeems the credential)                                            -> "starting" event
    (node reports its port)                                                  -> start() returns (ip, port)

If anything fails, times out (``start_timeout``) or is cancelled after ``launch_node`` returned
— or even while it was still running — ``terminate_node`` is called: a failed spawn leaves no node.

A backend that can stop a node with its disks (EC2's ``stop_action = "stop"``) implements
``park_node``/``resume_node``: a stop then keeps the node as ``parked_node`` (in the state), and
the next start resumes it with a fresh boot script instead of calling ``launch_node``; a resumed
node whose start fails is stopped again, never terminated (its disk holds the researcher's work).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from jupyterhub.spawner import Spawner
from tornado import web
from traitlets import Bool, Dict, Float, Integer, Type, Unicode, default

from hybrid_spawner import jupyterhub_fixes, metrics, parking
from hybrid_spawner.stop_sync import sync_before_stop
from hybrid_spawner._version import __version__
from hybrid_spawner.bootstrap import credentials, refresh
from hybrid_spawner.bootstrap import interruption
from hybrid_spawner.bootstrap import script as boot_script
from hybrid_spawner.bootstrap.handlers import register_hub_handlers
from hybrid_spawner.bootstrap.progress import restore_progress_message
from hybrid_spawner.bucket_credentials import CredentialIssuer, IssueFailed
from hybrid_spawner.incidents.handlers import register_incident_handlers
from hybrid_spawner.incidents.store import IncidentStore
from hybrid_spawner.publisher_env import PublisherConfigError, publisher_environment
from hybrid_spawner.status import NodeObservation, NodeState, StatusCache

# Every hybrid spawner imports this module: the hub gets the node endpoints as soon as its
# configuration names one (see hybrid_spawner.bootstrap.handlers).
register_hub_handlers()
register_incident_handlers()


# One issuer per class in this hub process (see RemoteSpawner._issuer).
_ISSUERS: dict[type, CredentialIssuer] = {}


jupyterhub_fixes.apply()  # the REST API answers 201 for a pending restart otherwise

class SpawnFailed(web.HTTPError):
    """A spawn failure with a message meant for the user (shown on the spawn page as is).

    Being an HTTPError, the hub logs it in one line, without a traceback.
    """

    def __init__(self, message: str, status: int = 500):
        super().__init__(status, "%s", message)
        self.jupyterhub_message = message


class BackendFull(SpawnFailed):
    """The backend has no room right now (no capacity, quota exhausted, queue full).

    Nothing was left behind on the backend. A burst chain (:mod:`hybrid_spawner.chain`) moves
    on to its next backend on this error; on its own it reaches the user like any SpawnFailed.
    """


#: $JUPYTERHUB_API_TOKEN's scopes: JupyterHub's "server" role, plus stopping this one server,
#: which JupyterLab's "Stop My Server…" asks the hub for (voila_publisher/sync/stop.py).
SERVER_TOKEN_SCOPES = ("users:activity!user", "access:servers!server", "servers!server")


class RemoteSpawner(Spawner):
    """Base class for spawners whose server runs on a node booted by a cloud or scheduler."""

    @default("server_token_scopes")
    def _default_server_token_scopes(self):
        return list(SERVER_TOKEN_SCOPES)

    #: Short backend name stored in the state (``"ec2"``, ``"openstack"``).
    backend: str = "remote"

    start_timeout = Float(
        600,
        config=True,
        help="""Seconds from the spawn request until the node's server must have reported its
        port. Covers the cloud launch, the boot and the server start; after it the node is
        terminated and the spawn fails. Cloud instances usually need 60-180 s.""",
    )
    bootstrap_ttl = Float(
        0,
        config=True,
        help="""Seconds a node's bootstrap credential stays valid after launch (single use in
        any case). 0 means the same as start_timeout.""",
    )
    bootstrap_template = Unicode(
        boot_script.DEFAULT_TEMPLATE,
        config=True,
        help="""Jinja2 template of the node's boot script: a file name in
        hybrid_spawner/templates or an absolute path to your own. It receives bootstrap_url,
        credential, python and run_as; it must run `python -m hybrid_spawner.node_agent` with
        HYBRID_BOOTSTRAP_URL and HYBRID_BOOTSTRAP_CREDENTIAL exported.""",
    )
    node_python = Unicode(
        "python3",
        config=True,
        help="""Python interpreter on the node image that has this package and
        jupyterhub-singleuser installed, e.g. /opt/jupyter/bin/python.""",
    )
    restore_on_start = Bool(
        False,
        config=True,
        help="""Before the notebook server opens, the node downloads the user's files from the
        bucket (c.BucketSync on the node: the same bucket and prefix the Lab's "Sync to bucket"
        writes) into the notebook directory, with progress on the spawn page. For profiles
        whose home does not outlive the server (a fresh instance, a new Slurm node's local
        disk): with the final sync at stop, work follows the researcher from one server, and
        one backend, to the next. A local file that differs from the bucket's copy is never
        overwritten: the bucket's version is kept beside it ("name (bucket copy XXXX).ipynb")
        and JupyterLab lists them. A profile may set it in its ``overrides``.""",
    )
    sync_before_stop = Bool(
        True,
        config=True,
        help="""Before the hub ends a running node (an admin's stop, the idle culler, the hub's
        stop button), ask its server to sync the home to the bucket (POST /hybrid/sync with the
        server's own token) and wait for it, at most stop_sync_timeout seconds. The server's own
        final sync at shutdown is not enough: a terminated instance's shutdown kills it within
        seconds, and unsynced work went with the disk. A server without a bucket answers 409 and
        the stop goes on at once.""",
    )
    stop_sync_timeout = Float(
        30.0,
        config=True,
        help="""Seconds the sync before a stop may take; then the node is ended anyway (a large
        unsynced home keeps what the sync had sent, nothing half-written). Keep it well below
        the hub's stop timeout (JupyterHub's Spawner.http_timeout does not apply here).""",
    )
    home_skeleton = Unicode(
        "",
        config=True,
        help="""A directory on the node image whose files a new home gets at its first start,
        like /etc/skel: a welcome notebook, examples, a README. Copied by the node agent as the
        researcher, after the restore at start, and only where the home lacks the file (the
        researcher's own or restored files always win); a hidden mark in the home makes it
        once per home (a fresh instance's disk gets them again, a persistent volume once).
        Empty: nothing is copied.""",
    )
    restore_timeout = Float(
        600.0,
        config=True,
        help="""Seconds the restore at start may take; after that the server starts with what
        has arrived (the spawn page says so). Keep it below start_timeout.""",
    )
    home_kind = Unicode(
        "",
        config=True,
        help="""What the server's home is, as JupyterLab's status bar tells the researcher
        ($HYBRID_HOME_KIND on the node): "persistent" (a volume kept across stops),
        "ephemeral" (gone with the server: only what was synced survives) or "shared" (a
        cluster filesystem). Empty: the backend's own answer (Slurm: shared; EC2 and
        OpenStack: ephemeral, or persistent when the server has a home volume).""",
    )
    node_user = Unicode(
        "",
        config=True,
        help="""Unix account on the node that runs the single-user server (boot scripts run as
        root), e.g. "jovyan", or "{username}" for an account per hub user ({username} and
        the other Spawner.format_string fields are replaced). Empty runs it as the boot
        script's user; nodes running as root then need HYBRID_NODE_EXTRA_ARGS=--allow-root in
        their environment or `--allow-root` in Spawner.args. Notebook code should never run
        as root: it could read anything on the node.""",
    )
    node_address_override = Unicode(
        "",
        config=True,
        help="""Connect to this address instead of the node's private IP. Only for local
        simulations where nodes run on the hub's machine (127.0.0.1); leave empty otherwise.""",
    )
    power_off_when_server_ends = Bool(
        True,
        config=True,
        help="""Power the node off when its server ends on the node's side (the server process
        exited, crashed or was killed), as the last line of the boot script. The node then stops
        costing money and the hub's next status refresh sees it gone and tells the researcher,
        instead of a running VM behind a dead server (503 until the idle culler or an admin
        stops it). EC2 instances are launched with InstanceInitiatedShutdownBehavior=terminate;
        a SHUTOFF OpenStack server is deleted by the hub's poll. Slurm jobs end with their
        script anyway (off there). Turn off to keep a node up for debugging a crashed server.""",
    )
    stopped_max_age = Float(
        7 * 86400,
        config=True,
        help="""Seconds a node stopped by ``stop_action = "stop"`` is kept for its next start
        (default 7 days). After that the reconciler terminates it (a persistent home volume
        stays; what was synced stays in the bucket) and the next start launches a new node.
        A stopped instance costs its disks only (EBS), not its compute. 0 keeps it forever.""",
    )
    status_refresh_interval = Float(
        30,
        config=True,
        help="""Seconds between two refreshes of the shared status cache. One batched API call
        per interval covers every server of this hub, so this can be short without cost
        concerns; out-of-band terminations are detected within one interval.""",
    )

    bucket_credentials_issuer = Type(
        None,
        klass=CredentialIssuer,
        allow_none=True,
        config=True,
        help="""Where each node's bucket credentials come from: a CredentialIssuer class, e.g.
        "hybrid_spawner.bucket_credentials.STSIssuer" (STS AssumeRole with a session policy
        naming the user's prefix: AWS, SeaweedFS, MinIO, Ceph RGW) or
        "hybrid_spawner.bucket_credentials.StaticKeysIssuer" (per-user keys from a file or a
        callable). The node receives credentials that reach only its user's prefix, and
        refreshes them through the hub before they expire. None: the node gets no bucket
        credentials (sync then has none either; never put a shared key in the environment
        instead, see docs/security.md).""",
    )

    publisher_url = Unicode(
        "",
        config=True,
        help="""The publisher API of the public Voila host as nodes reach it (its private address),
        e.g. "http://10.0.2.10:8080/api/". Given to every node as HYBRID_PUBLISHER_URL, on top of
        Spawner.environment (so replacing `environment` in a subclass's section cannot drop it).
        Set it together with publisher_secret_file; empty: the nodes' Publish button says
        publishing is not configured.""",
    )
    publisher_public_url = Unicode(
        "",
        config=True,
        help="""The public base URL viewers open dashboards at (e.g. "https://dashboards.example.org"),
        given to nodes as HYBRID_PUBLIC_URL for the links the Lab shows.""",
    )
    publisher_secret_file = Unicode(
        "",
        config=True,
        help="""File holding the secret shared with the public host (PublisherService.shared_secret_file
        there; at least 16 bytes, mode 0600, owned by the hub's account). Read at every spawn: each
        node gets HYBRID_PUBLISHER_TOKEN, a token derived for its user alone, never the secret.
        Replacing the file's content rotates the secret for the next spawns without a hub
        restart (docs/operations.md). A missing or short file fails the spawn before any node
        is launched.""",
    )

    # State (restored by load_state).
    node_id = Unicode(None, allow_none=True)
    node_ip = Unicode(None, allow_none=True)
    node_port = Integer(None, allow_none=True)
    last_stop_message = Unicode("")
    # A node stopped with its disks for this server's next start (see parking.py); kept by
    # clear_state, like last_stop_message.
    parked_node = Dict()

    # ------------------------------------------------------------------ backend contract
    async def check_options(self) -> None:
        """Validate and resolve everything the launch needs, before anything is created.

        Raise :class:`SpawnFailed` with an actionable message for bad input (unknown image,
        subnet, region ...). Default: nothing to check.
        """

    async def launch_node(self, script: str) -> str:
        """Ask the backend for a node that runs ``script`` at boot; return the node's id.

        Must not return before the backend has accepted the request, and must either create
        exactly one node or raise having created none (retries and fallbacks are inside). It
        may emit progress with :meth:`emit`. Runs blocking SDK calls in threads. If the spawn
        is cancelled meanwhile, this coroutine still runs to completion and the node it
        returns is terminated.
        """
        raise NotImplementedError

    async def wait_for_address(self, node_id: str) -> str:
        """Wait until ``node_id`` runs and return the private IP the hub connects to.

        Raise :class:`SpawnFailed` if the node ends up stopped or failed. May be cancelled
        (start timeout); the base class terminates the node then.
        """
        raise NotImplementedError

    async def terminate_node(self, node_id: str) -> None:
        """Delete the node. Idempotent: a node that is already gone is success."""
        raise NotImplementedError

    def status_cache(self) -> StatusCache:
        """The shared :class:`StatusCache` this spawner's nodes are watched by."""
        raise NotImplementedError

    async def park_node(self, node_id: str) -> bool:
        """Stop the node with its disks instead of terminating it, if this backend and its
        ``stop_action`` do that; return True when it was stopped (or is stopping). Default:
        False (the node is terminated)."""
        return False

    async def resume_node(self, parked: dict, script: str) -> str | None:
        """Start the parked node again so that it runs ``script`` (a fresh boot script: the
        one it was launched with is spent); return its id, or None when it cannot be resumed
        (gone, or not stopped) — the start then launches a new node. Say why with :meth:`emit`."""
        return None

    def node_resumable(self) -> bool:
        """True if a parked node of this spawner is resumed without new user-data (OpenStack
        unshelve): its node then gets a resume key at each redemption, kept on its own disk,
        for which the next start arms a fresh credential (bootstrap/credentials.py). Default:
        False (EC2 gives a resumed instance new user-data)."""
        return False

    def parks_when_gone(self, seen: NodeObservation) -> bool:
        """True if a node observed gone (``seen``) was stopped with its disks and this spawner
        keeps such nodes for the next start (the node powered itself off, or someone stopped
        it). Default: False (the hub terminates it)."""
        return False

    def list_owned_nodes(self) -> dict:
        """Every node of this hub on the backend, ``{node_id: NodeObservation}``, for the
        reconciler (blocking: it runs in a worker thread). Default: the status cache's batched
        call with no ids, which lists everything under the hub's tag (EC2, OpenStack)."""
        return self.status_cache().fetch_all(frozenset())

    async def terminate_orphan(self, node_id: str) -> None:
        """End a node that no record claims (the reconciler; this spawner has no user then).
        Default: :meth:`terminate_node`."""
        await self.terminate_node(node_id)

    def interruption_watch(self) -> dict | None:
        """What the node should watch for the backend's notice that it is about to take the node
        away (EC2 spot: ``{"interval": 2.0}``, bootstrap/spot_watch.py), or None. Asked when the
        node redeems its credential, so it may depend on what launch_node got. Default: None."""
        return None

    def describe_error(self, error: BaseException) -> str | None:
        """A user-facing sentence for an expected backend error, or None for "unexpected".

        Must contain no secret. Unexpected errors are logged with a traceback and shown to
        the user as a generic failure.
        """
        return None

    def is_full_error(self, error: BaseException) -> bool:
        """True if ``error`` means "no room on this backend now" (quota exhausted ...): the
        spawn fails with :class:`BackendFull`, so a burst chain moves on. Default: False."""
        return False

    def describe_node(self) -> str:
        """A short description for progress messages, e.g. ``i-0abc (t3.medium)``."""
        return str(self.node_id)

    def script_context(self) -> dict:
        """Extra template variables for the boot script (Slurm: its #SBATCH values)."""
        return {}

    def _boot_script_context(self) -> dict:
        return {"power_off": self.power_off_when_server_ends, **self.script_context()}

    def backend_state(self) -> dict:
        """Backend-specific fields for ``get_state`` (e.g. instance type)."""
        return {}

    def load_backend_state(self, state: dict) -> None:
        """Restore what :meth:`backend_state` stored."""

    def clear_backend_state(self) -> None:
        """Forget what :meth:`backend_state` stored."""

    # ------------------------------------------------------------------ progress
    def emit(self, progress: int, message: str) -> None:
        """Add a progress event for the spawn page (``progress`` in 0..100)."""
        self._events.append({"progress": progress, "message": message})
        self._event_signal.set()

    async def progress(self):
        """Stream the events of the current start (replayed from the first one to each reader)."""
        seen = 0
        while True:
            events = self._events
            while seen < len(events):
                yield events[seen]
                seen += 1
            task = self._start_task
            if task is None or task.done():
                return
            self._event_signal.clear()
            try:
                await asyncio.wait_for(self._event_signal.wait(), 1)
            except TimeoutError:
                pass

    # ------------------------------------------------------------------ lifecycle
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._events: list[dict] = []
        self._event_signal = asyncio.Event()
        self._start_task: asyncio.Task | None = None
        self._bucket_payload: dict = {}
        self._refresh_hash: str | None = None
        self._node_holds_work = False  # resumed from parked_node, or has served: stop it, never terminate
        self._notice_hash: str | None = None  # the node's secret to report a spot interruption
        self.interruption_notice: dict = {}  # what it reported (state: survives hub restarts)
        self._resume_hash: str | None = None  # the running node's resume key, hashed (node_resumable)

    async def start(self):
        self._events = []
        held = await asyncio.to_thread(IncidentStore(config=self.config, log=self.log).open_for, self.user.name)
        if held:  # a quarantined user starts nothing until an admin releases the incident
            raise SpawnFailed(
                f"Your servers are on hold for a security review (incident {held['id']}). "
                "Contact the hub's administrators.", status=403)
        if self.last_stop_message:
            self.emit(0, f"Your previous server stopped: {self.last_stop_message}")
            self.last_stop_message = ""
        self._start_task = asyncio.ensure_future(self._start_node())
        return await self._start_task

    def default_home_kind(self) -> str:
        """The backend's answer for ``home_kind`` (a backend with kept volumes overrides it)."""
        return "ephemeral"

    def get_env(self) -> dict:
        env = super().get_env()
        env["HYBRID_HOME_KIND"] = self.home_kind or self.default_home_kind()
        # After Spawner.environment, so a replaced `environment` cannot turn publishing off.
        env.update(self._publisher_environment())
        return env

    def _publisher_environment(self) -> dict:
        return publisher_environment(
            publisher_url=self.publisher_url,
            public_url=self.publisher_public_url,
            secret_file=self.publisher_secret_file,
            username=self.user.name,
        )

    def _bootstrap_payload(self) -> dict:
        payload = boot_script.spawner_payload(self)
        # The node restores into the directory the server will serve ("" = its working directory).
        root = self.format_string(self.notebook_dir) if self.notebook_dir else ""
        if self.restore_on_start:
            payload["restore"] = {"root": root, "timeout": float(self.restore_timeout)}
        if self.home_skeleton:
            payload["skeleton"] = {"source": self.home_skeleton, "root": root}
        if self._bucket_payload:
            payload["environment"].update(self._bucket_payload["environment"])
            payload["bucket_credentials"] = self._bucket_payload["bucket_credentials"]
            self._bucket_payload = {}  # handed out once; the node refreshes through the hub
        watch = self.interruption_watch()
        if watch:
            secret, self._notice_hash = interruption.registry.issue(self._log_name, self._record_interruption)
            payload["spot_watch"] = {**watch, "secret": secret}
        return payload

    def _record_interruption(self, notice: dict) -> None:
        """The node reported the cloud's notice (checked by bootstrap/interruption.py): poll()
        names it when the node is gone, and the state keeps it across a hub restart."""
        self.interruption_notice = notice
        self.log.warning("%s: %s will be %s", self._log_name, self.describe_node(), interruption.stop_reason(notice))
        try:
            interruption.save_state(self)
        except Exception:  # the notice is still held in memory; poll() uses it
            self.log.exception("%s: could not save the interruption notice in the hub's database", self._log_name)

    # ------------------------------------------------------------------ bucket credentials
    def _issuer(self) -> CredentialIssuer | None:
        cls = self.bucket_credentials_issuer
        if cls is None:
            return None
        issuer = _ISSUERS.get(cls)
        if issuer is None:  # one per hub process: its options are the hub's, not a user's
            issuer = _ISSUERS[cls] = cls(config=self.config, log=self.log)
        return issuer

    async def _issue_bucket_credentials(self) -> dict:
        """The first credentials and a refresh secret for this spawn (both shown to the node once)."""
        issuer = self._issuer()
        if issuer is None:
            return {}
        try:
            creds = await issuer.issue(self.user.name)
        except IssueFailed as e:
            raise SpawnFailed(f"No bucket credentials for your server: {e}") from None
        secret, self._refresh_hash = refresh.registry.issue(self._log_name, self._refreshed_credentials)
        return {
            "environment": creds.node_environment(),
            "bucket_credentials": {"credentials": creds.for_node(), "refresh_secret": secret},
        }

    async def _refreshed_credentials(self) -> dict:
        creds = await self._issuer().issue(self.user.name)
        return {"credentials": creds.for_node()}

    async def _start_node(self):
        began = time.monotonic()
        deadline = began + self._internal_timeout()
        entry = None
        outcome = "failure"
        try:
            self.emit(5, "Checking the server options")
            await self.check_options()
            try:
                self._publisher_environment()
            except PublisherConfigError as e:
                self.log.error("%s: %s", self._log_name, e)
                raise SpawnFailed("Publishing is misconfigured on this hub; ask the admin (the hub's log names the setting).") from None
            self._bucket_payload = await self._issue_bucket_credentials()
            ttl = self.bootstrap_ttl or self.start_timeout
            entry, credential = credentials.registry.issue(self._log_name, self._bootstrap_payload, ttl)
            entry.resumable = self.node_resumable()
            armed = self._arm_resume(entry, credential)
            entry.on_progress = lambda report: self.emit(75, restore_progress_message(report))
            script = boot_script.render_bootstrap_script(
                boot_script.hub_api_url(self),
                credential,
                template=self.bootstrap_template,
                python=self.node_python,
                run_as=self.format_string(self.node_user) if self.node_user else "",
                ttl=ttl,
                extra=self._boot_script_context(),
            )
            del credential
            self.node_id = await self._launch_without_orphans(script)
            if armed and not self._node_holds_work:
                credentials.registry.disarm(armed)  # launched anew: the old node's key opens nothing
            self.status_cache().track(self.node_id)
            self.emit(30, f"{'Resumed' if self._node_holds_work else 'Launched'} {self.describe_node()}")
            ip = await self._until(deadline, "the node to run", self.wait_for_address(self.node_id))
            ip = self.node_address_override or ip
            self.node_ip = ip
            self.emit(50, f"Node running at {ip}; waiting for it to boot")
            await self._until(deadline, "the node to call the hub", self._watch(entry.wait_redeemed()))
            self._resume_hash = entry.resume_hash or self._resume_hash  # the node's new key
            self.emit(70, "Node booted; the notebook server is starting")
            port = await self._until(deadline, "the notebook server to start", self._watch(entry.wait_port()))
            self.node_port = port
            self.emit(90, f"Notebook server listening at {ip}:{port}")
            outcome = "success"
            metrics.running_servers.started(self._log_name, self.backend, self._profile_slug())
            return ip, port
        except BaseException as e:
            if isinstance(e, asyncio.CancelledError):
                outcome = "cancelled"
            await self._discard_node()
            raise self._user_facing(e) from None
        finally:
            metrics.record_spawn(self.backend, outcome, time.monotonic() - began)
            if entry is not None:
                entry.close()

    def _profile_slug(self) -> str:
        # HybridSpawner hands its child the resolved user_options, profile slug included.
        return str((self.user_options or {}).get("profile") or "")

    def _internal_timeout(self) -> float:
        # Fail (and clean up) a little before the hub's own start_timeout, so the user sees why.
        return max(1.0, self.start_timeout - min(5.0, self.start_timeout * 0.1))

    def _arm_resume(self, entry, credential: str) -> str | None:
        """Before resuming a node that keeps its old user-data: let its resume key redeem this
        start's fresh credential (once). Returns the armed hash."""
        resume_hash = (self.parked_node or {}).get("resume_hash")
        if not (self.node_resumable() and isinstance(resume_hash, str) and resume_hash):
            return None
        credentials.registry.arm_resume(resume_hash, entry, credential)
        return resume_hash

    async def _launch_or_resume(self, script: str) -> str:
        parked, self.parked_node = self.parked_node, {}
        self._node_holds_work = False
        if parking.valid_record(parked):
            try:
                node_id = await self.resume_node(parked, script)
            except BaseException:
                self.parked_node = parked  # still stopped there: the next start tries again
                raise
            if node_id:
                self._node_holds_work = True
                self._resume_hash = parked.get("resume_hash")  # still the key until it redeems
                return node_id
        self.emit(10, "Requesting a node")
        return await self.launch_node(script)

    async def _launch_without_orphans(self, script: str) -> str:
        launch = asyncio.ensure_future(self._launch_or_resume(script))
        try:
            return await asyncio.shield(launch)
        except asyncio.CancelledError:
            launch.add_done_callback(self._terminate_late_launch)
            raise

    def _terminate_late_launch(self, launch: asyncio.Future) -> None:
        if launch.cancelled() or launch.exception() is not None:
            return
        node_id = launch.result()
        self.log.warning("%s: spawn cancelled during launch; ending %s", self._log_name, node_id)
        asyncio.ensure_future(self._end_quietly(node_id))

    async def _until(self, deadline: float, what: str, awaitable):
        remaining = deadline - time.monotonic()
        try:
            return await asyncio.wait_for(awaitable, max(0.1, remaining))
        except TimeoutError:
            raise SpawnFailed(
                f"Timed out after {self.start_timeout:.0f} s waiting for {what}; "
                f"{self.describe_node()} has been terminated."
            ) from None

    async def _watch(self, awaitable):
        """Await a bootstrap step, failing early if the node disappears meanwhile."""
        task = asyncio.ensure_future(awaitable)
        try:
            while True:
                done, _ = await asyncio.wait({task}, timeout=min(5.0, self.status_refresh_interval))
                if done:
                    return task.result()
                seen = self.status_cache().observe(self.node_id)
                if seen.state is NodeState.GONE:
                    raise SpawnFailed(f"{self.describe_node()} stopped while booting: {seen.detail}")
        finally:
            task.cancel()

    def _user_facing(self, error: BaseException) -> BaseException:
        if isinstance(error, (SpawnFailed, asyncio.CancelledError)):
            return error
        message = self.describe_error(error)
        if message is None:
            self.log.error("%s: unexpected error while starting", self._log_name, exc_info=error)
            message = f"Unexpected error while starting the server ({type(error).__name__}); see the hub log."
        else:
            self.log.warning("%s: spawn failed: %s", self._log_name, message)
        return BackendFull(message) if self.is_full_error(error) else SpawnFailed(message)

    async def _discard_node(self) -> None:
        if self.node_id:
            await self._end_quietly(self.node_id)
        self._forget_node()

    async def _end_quietly(self, node_id: str) -> None:
        """End a node whose start failed: a resumed node is stopped again (its disk holds the
        researcher's work), any other is terminated."""
        if self._node_holds_work and await self._park(node_id):
            return
        await self._terminate_quietly(node_id)

    async def _park(self, node_id: str) -> bool:
        """Stop ``node_id`` with its disks and remember it for the next start, if this backend
        does that (``park_node``). False: it was not stopped (the caller terminates it)."""
        try:
            parked = await self.park_node(node_id)
        except Exception as e:
            self.log.warning("%s: stopping %s failed (%s); terminating it instead", self._log_name, node_id, e)
            return False
        if parked:
            self.parked_node = parking.parked_record(node_id, self.stopped_max_age)
            if self._resume_hash:
                self.parked_node["resume_hash"] = self._resume_hash
            self.log.info("%s: stopped %s with its disks for the next start", self._log_name, node_id)
        return parked

    async def _terminate_quietly(self, node_id: str) -> None:
        for attempt in range(3):
            try:
                await self.terminate_node(node_id)
                self.log.info("%s: terminated %s", self._log_name, node_id)
                return
            except Exception as e:
                self.log.warning("%s: terminating %s failed (%s), attempt %d", self._log_name, node_id, e, attempt + 1)
                await asyncio.sleep(1 + 2 * attempt)
        self.log.error("%s: could not terminate %s; it must be removed by hand", self._log_name, node_id)

    def _forget_node(self) -> None:
        if self.node_id:
            try:
                self.status_cache().untrack(self.node_id)
            except NotImplementedError:
                pass
        metrics.running_servers.stopped(self._log_name)
        refresh.registry.forget(self._refresh_hash)  # the node's refreshes end with its server
        self._refresh_hash = None
        interruption.registry.forget(self._notice_hash)
        self._notice_hash, self.interruption_notice = None, {}
        self._bucket_payload = {}
        self.node_id = self.node_ip = self.node_port = None
        self._node_holds_work = False
        self._resume_hash = None
        self.clear_backend_state()

    def parked_entries(self) -> dict[str, tuple[str, dict]]:
        """{"": (backend, parking record)} when a stopped node waits for this server's next start."""
        return {"": (self.backend, self.parked_node)} if self.parked_node else {}

    async def end_parked_node(self, key: str = "", reason: str = "") -> None:
        """Terminate the stopped node kept for the next start (expired, or the user is deleted)."""
        if not self.parked_node:
            return
        node_id = self.parked_node[parking.NODE_ID]
        await self.terminate_node(node_id)
        self.parked_node = {}
        self.log.info("%s: terminated stopped %s (%s)", self._log_name, node_id, reason)

    async def delete_forever(self):
        """JupyterHub deletes the user (or this server): no stopped node of theirs stays behind."""
        await self.end_parked_node(reason="the server is deleted")

    async def stop(self, now=False):
        """Terminate the node, or stop it with its disks (``park_node``), cancelling a start in
        progress first. Idempotent.

        A running server first sends its home to the bucket (stop_sync.py), unless ``now``."""
        task = self._start_task
        if task is not None and not task.done():
            task.cancel()
            try:
                await task  # its cleanup terminates the node
            except BaseException:
                pass
        elif not now and self.sync_before_stop and self.node_ip and self.node_port and self.server is not None and self.api_token:
            # The address start() returned, not Server.url (whose "localhost" may resolve to ::1).
            url = f"http://{self.node_ip}:{self.node_port}{self.server.base_url}"
            outcome = await sync_before_stop(url, self.api_token, self.stop_sync_timeout)
            self.log.info("%s: %s", self._log_name, outcome)
        if self.node_id and (task is None or task.done()):
            self._node_holds_work = True  # a server that ran: its node is kept if the backend can
        await self._discard_node()

    async def poll(self):
        """None while the node runs, is starting, or its state is unknown; 0 once it is gone.

        Reads the shared status cache only. A node stopped or terminated out of band is
        reported gone with ``last_stop_message`` set; the message survives in the state and
        is shown as the first progress event of the next start.
        """
        if self._start_task is not None and not self._start_task.done():
            return None
        if not self.node_id:
            return 0
        cache = self.status_cache()
        cache.track(self.node_id)
        seen: NodeObservation = cache.observe(self.node_id)
        if seen.state is not NodeState.GONE:
            return None
        if self.parks_when_gone(seen):
            self.parked_node = parking.parked_record(self.node_id, self.stopped_max_age)
            if self._resume_hash:
                self.parked_node["resume_hash"] = self._resume_hash
            self.last_stop_message = (f"{self.describe_node()} stopped ({seen.detail}); its disk is kept "
                                      "and your next start resumes it.")
            self.log.warning("%s: %s", self._log_name, self.last_stop_message)
            self._forget_node()
            return 0
        self.last_stop_message = f"{self.describe_node()} was stopped outside JupyterHub ({seen.detail})."
        if self.interruption_notice:  # the node said why before the cloud ended it
            self.last_stop_message = f"{self.describe_node()} was {interruption.stop_reason(self.interruption_notice)}"
        self.log.warning("%s: %s", self._log_name, self.last_stop_message)
        # A stopped (not terminated) node still costs money and would be forgotten: end it.
        await self._terminate_quietly(self.node_id)
        self._forget_node()
        return 0

    # ------------------------------------------------------------------ state
    def get_state(self) -> dict[str, Any]:
        state = super().get_state()
        if self.node_id:
            state.update(
                spawner_version=__version__,
                backend=self.backend,
                node_id=self.node_id,
                node_ip=self.node_ip,
                node_port=self.node_port,
                **self.backend_state(),
            )
            if self._refresh_hash:
                state["bucket_refresh_hash"] = self._refresh_hash  # a hash: the secret stays on the node
            if self._notice_hash:
                state["interruption_hash"] = self._notice_hash
            if self.interruption_notice:
                state["interruption_notice"] = self.interruption_notice
            if self._resume_hash:
                state["resume_hash"] = self._resume_hash  # a hash: the key stays on the node's disk
        if self.last_stop_message:
            state["last_stop_message"] = self.last_stop_message
        if self.parked_node:
            state["parked_node"] = dict(self.parked_node)
        return state

    def load_state(self, state: dict) -> None:
        super().load_state(state)
        self.last_stop_message = state.get("last_stop_message", "")
        parked = state.get("parked_node")
        self.parked_node = dict(parked) if parking.valid_record(parked) else {}
        if state.get("node_id") and state.get("backend", self.backend) == self.backend:
            self.node_id = state["node_id"]
            self.node_ip = state.get("node_ip")
            self.node_port = state.get("node_port")
            self.load_backend_state(state)
            self.status_cache().track(self.node_id)
            metrics.running_servers.started(self._log_name, self.backend, self._profile_slug())
            self._refresh_hash = state.get("bucket_refresh_hash") or None
            self._resume_hash = state.get("resume_hash") or None
            if self._refresh_hash and self._issuer() is not None:
                refresh.registry.restore(self._refresh_hash, self._log_name, self._refreshed_credentials)
            self._notice_hash = state.get("interruption_hash") or None
            self.interruption_notice = dict(state.get("interruption_notice") or {})
            if self._notice_hash:
                interruption.registry.restore(self._notice_hash, self._log_name, self._record_interruption)

    def clear_state(self) -> None:
        super().clear_state()
        self._forget_node()
