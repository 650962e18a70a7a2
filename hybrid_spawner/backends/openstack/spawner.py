"""OpenStackSpawner: each notebook server on its own Nova server in the research tenant.

The server boots on the tenant's private network (behind the VPN gateway) from an image that
has Python, this package and ``jupyterhub-singleuser``; its user-data is the node bootstrap
script (hub URL + single-use credential, no API token). The shared lifecycle — bootstrap,
progress, timeouts, cleanup, state, polling — is :class:`~hybrid_spawner.remote.RemoteSpawner`;
this class only speaks Nova, Glance and Neutron, always from worker threads.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time

from traitlets import Bool, Dict, Enum, Float, Integer, List, TraitError, Unicode, validate

from hybrid_spawner import parking
from hybrid_spawner.backends.openstack import home_volume as home_rules
from hybrid_spawner.backends.openstack import plan as plan_rules
from hybrid_spawner.backends.openstack.connection import ConnectionSettings, connect, describe_sdk_error, forget, is_transient
from hybrid_spawner.backends.openstack.status import OpenStackStatusCache
from hybrid_spawner.remote import BackendFull, RemoteSpawner, SpawnFailed


class OpenStackSpawner(RemoteSpawner):
    """Spawn single-user servers on Nova servers through openstacksdk."""

    backend = "openstack"

    # -- where and as whom ---------------------------------------------------------------
    cloud = Unicode(
        "",
        config=True,
        help="""Name of the cloud in clouds.yaml the hub uses (e.g. "research"). The entry holds
        the Keystone v3 auth_url, region and either a password or, better, an application
        credential of a service account. Leave empty to use `auth` instead.""",
    )
    clouds_yaml = Unicode(
        "",
        config=True,
        help="""Path of the clouds.yaml holding `cloud`. Empty uses openstacksdk's search path:
        $OS_CLIENT_CONFIG_FILE, ./clouds.yaml, ~/.config/openstack/clouds.yaml,
        /etc/openstack/clouds.yaml. Keep the file readable by the hub's account only.""",
    )
    auth = Dict(
        config=True,
        help="""Explicit Keystone v3 settings when no clouds.yaml is used: auth_url plus either
        username, password, project_name, user_domain_name, project_domain_name, or
        application_credential_id and application_credential_secret.""",
    )
    auth_type = Unicode(
        "",
        config=True,
        help="""keystoneauth plugin for `auth`: "password" or "v3applicationcredential". Empty
        picks v3applicationcredential when application_credential_* keys are present.""",
    )
    region_name = Unicode("", config=True, help="""OpenStack region; empty uses the cloud's default.""")

    # -- what to boot --------------------------------------------------------------------
    image = Unicode(
        "",
        config=True,
        help="""Glance image name or id. It needs cloud-init (to run the user-data), Python 3
        with this package and jupyterhub-singleuser; see docs/openstack.md.""",
    )
    flavor = Unicode("", config=True, help="""Nova flavor name or id, e.g. "m1.large".""")
    networks = List(
        Unicode(),
        config=True,
        help="""Neutron networks (names or ids) to attach, the tenant's private network behind its
        VPN gateway first: the hub connects to the server's fixed IP on the first network, so
        the hub must be able to route to it.""",
    )
    security_groups = List(
        Unicode(),
        config=True,
        help="""Security groups (names) for the server. They must allow the hub to reach the
        notebook port (and nothing else from outside). Empty uses the project's "default".""",
    )
    key_name = Unicode("", config=True, help="""Nova keypair injected for admin SSH access; empty for none.""")
    availability_zone = Unicode("", config=True, help="""Nova availability zone; empty lets the scheduler choose.""")
    boot_volume_size = Integer(
        0,
        config=True,
        help="""Size in GiB of a Cinder root volume created from the image (boot from volume),
        for flavors with small or no local disk. 0 boots from the image on local disk.""",
    )
    delete_volume_on_termination = Bool(
        True, config=True, help="""Delete the boot volume with the server (only with boot_volume_size)."""
    )
    home_volume_size = Integer(
        0,
        config=True,
        help="""GB of the persistent home: one Cinder volume per user and named server, created
        at the first start, attached at every start (at boot, so the node finds it) and kept
        when the server stops; the server is launched in the volume's availability zone. The
        node bootstrap formats it only when blank and mounts it as the home. 0: no volume, the
        home is the server's own disk and goes with it (use restore_on_start then). A profile
        may set it within home_volume_max_size.""",
    )
    home_volume_max_size = Integer(
        100, config=True, help="""Largest home_volume_size a profile may ask for (GB); 0: no limit."""
    )
    home_volume_type = Unicode(
        "", config=True, help="""Cinder volume type of new home volumes; empty: the cloud's default type."""
    )
    home_volume_types_allowed = List(
        Unicode(),
        config=True,
        help="""Volume types a profile may choose for home_volume_type; empty: any (the admin's
        own settings are not checked against it when it is empty).""",
    )
    home_volume_timeout = Float(
        120, config=True, help="""Seconds to wait for Cinder to create a home volume."""
    )
    stop_action = Enum(
        ["delete", "shelve"],
        default_value="delete",
        config=True,
        help="""What stopping the server does to its Nova server. "delete" (default): the server
        and its local disk go (a home volume stays). "shelve": the server is shelved (Nova
        snapshots its disk and frees the host: no vCPU or RAM quota is held) and the next start
        of the same server and profile unshelves it; the spawn page says so. Nova keeps the
        user-data a server was created with, so the resumed node proves itself with a resume
        key it keeps on its own disk and gets a fresh single-use credential for it. Shelved
        servers older than stopped_max_age are deleted by the reconciler.""",
    )
    delete_home_volume_with_user = Bool(
        False,
        config=True,
        help="""When the hub deletes a user (JupyterHub's delete_forever), delete their home
        volume too. Off by default: a deleted account's data is kept until an admin removes it.""",
    )
    server_name_template = Unicode(
        "jupyter-{username}-{servername}",
        config=True,
        help="""Nova server name; {username}, {servername} and {hub_id} are replaced and the result
        is made DNS-safe (lower case, letters, digits and '-', at most 63 characters).""",
    )
    extra_metadata = Dict(
        config=True,
        help="""Additional Nova metadata for every server, e.g. {"project": "genomics"} for
        accounting. Visible to every member of the project: never put secrets here.""",
    )
    hub_id = Unicode(
        "jupyterhub",
        config=True,
        help="""Identifies this hub's servers in the project: the Nova tag hybrid-hub:<hub_id>
        (status polling lists exactly the servers with it) and the hybrid-hub metadata key. Give
        every hub sharing a project a distinct value (at most 49 characters, no ',' or '/'), and
        do not change it while servers run: the hub would no longer see them.""",
    )
    port = Integer(
        8888,
        config=True,
        help="""Port of the notebook server on the Nova server. Every server has its own IP, so one
        fixed port keeps the security group rule simple (TCP 8888 from the hub only).""",
    )
    build_poll_interval = Float(
        2.0, config=True, help="""Longest wait in seconds between two looks at a building server."""
    )
    delete_timeout = Float(
        120, config=True, help="""Seconds to wait for Nova to finish deleting a server on stop."""
    )

    @validate("hub_id")
    def _valid_hub_id(self, proposal):
        try:
            plan_rules.hub_tag(proposal["value"])
        except plan_rules.PlanError as e:
            raise TraitError(f"OpenStackSpawner.hub_id: {e}") from None
        return proposal["value"]

    # -- state ---------------------------------------------------------------------------
    server_name = Unicode("")

    # ------------------------------------------------------------------ helpers
    def connection_settings(self) -> ConnectionSettings:
        return ConnectionSettings.build(
            cloud=self.cloud, clouds_yaml=self.clouds_yaml, auth=self.auth, auth_type=self.auth_type,
            region_name=self.region_name,
        )

    async def _call(self, fn, *args, **kwargs):
        """Run a blocking SDK call in a worker thread with the shared connection."""
        settings = self.connection_settings()

        def work():
            return fn(connect(settings), *args, **kwargs)

        return await asyncio.to_thread(work)

    # ------------------------------------------------------------------ backend contract
    async def check_options(self) -> None:
        try:
            self.connection_settings().validate()
        except ValueError as e:
            raise SpawnFailed(f"OpenStack is misconfigured on the hub: {e}") from None
        try:
            self._plan_base = self._server_plan(user_data="")
            plan_rules.validate_plan(self._plan_base)
        except plan_rules.PlanError as e:
            raise SpawnFailed(f"OpenStack is misconfigured on the hub: {e}") from None
        self._ids, self._network_name = await self._call(self._resolve, self._plan_base)
        if self.home_volume_size:
            try:
                self._home_request = home_rules.check_request(
                    self.home_volume_size, self.home_volume_type,
                    max_size_gb=self.home_volume_max_size, allowed_types=list(self.home_volume_types_allowed),
                )
            except plan_rules.PlanError as e:
                raise SpawnFailed(f"Home volume refused: {e}.", status=400) from None

    def _resolve(self, conn, plan: plan_rules.ServerPlan):
        """Blocking: look up image, flavor and networks; a clear error names what is missing."""
        where = self.connection_settings().describe()
        image = conn.image.find_image(plan.image, ignore_missing=True)
        if image is None:
            raise SpawnFailed(f"OpenStack image {plan.image!r} does not exist in {where}; ask the hub admin.")
        flavor = conn.compute.find_flavor(plan.flavor, ignore_missing=True)
        if flavor is None:
            raise SpawnFailed(f"OpenStack flavor {plan.flavor!r} does not exist in {where}; ask the hub admin.")
        networks = []
        for name in plan.networks:
            net = conn.network.find_network(name, ignore_missing=True)
            if net is None:
                raise SpawnFailed(f"OpenStack network {name!r} does not exist in {where}; ask the hub admin.")
            networks.append(net)
        ids = plan_rules.ResolvedIds(image.id, flavor.id, tuple(n.id for n in networks))
        return ids, networks[0].name

    def _server_plan(self, user_data: str) -> plan_rules.ServerPlan:
        hub_id = self.hub_id
        return plan_rules.ServerPlan(
            name=plan_rules.server_name(self.server_name_template, username=self.user.name,
                                        servername=self.name or "", hub_id=hub_id),
            image=self.image, flavor=self.flavor, networks=tuple(self.networks),
            security_groups=tuple(self.security_groups), key_name=self.key_name,
            availability_zone=self.availability_zone, boot_volume_size=self.boot_volume_size,
            delete_volume_on_termination=self.delete_volume_on_termination,
            metadata=plan_rules.server_metadata(hub_id=hub_id, owner=self.user.name, servername=self.name or "",
                                                extra=self.extra_metadata),
            tags=(plan_rules.hub_tag(hub_id),), user_data=user_data,
        )

    def default_home_kind(self) -> str:
        return "persistent" if self.home_volume_size else "ephemeral"

    def _home_metadata(self) -> dict:
        return home_rules.volume_metadata(hub_id=self.hub_id, owner=self.user.name, servername=self.name or "")

    def _find_home(self, conn) -> dict | None:
        """Blocking: this user's and server's home volume, as a dict, or None."""
        volumes = [
            {"id": v.id, "metadata": dict(v.metadata or {}), "status": v.status, "created_at": v.created_at,
             "availability_zone": v.availability_zone, "size": v.size, "attachments": list(v.attachments or [])}
            for v in conn.block_storage.volumes(details=True)
        ]
        return home_rules.pick_home(volumes, self._home_metadata())

    async def _home_volume(self, server_name: str) -> dict:
        """The home volume, created at the first start; waits until it can be attached."""
        volume = await self._call(self._find_home)
        if volume is None:
            request = self._home_request
            self.emit(12, f"Creating your home volume ({request.size_gb} GB)")
            attrs = {"size": request.size_gb, "name": home_rules.volume_name(server_name),
                     "metadata": self._home_metadata()}
            if request.volume_type:
                attrs["volume_type"] = request.volume_type
            if self.availability_zone:
                attrs["availability_zone"] = self.availability_zone
            created = await self._call(lambda conn: conn.block_storage.create_volume(**attrs))
            volume = {"id": created.id, "status": created.status}
        else:
            self.emit(12, f"Found your home volume {volume['id']} ({volume.get('size')} GB)")
        deadline = time.monotonic() + self.home_volume_timeout
        while True:
            refused = home_rules.refuse_in_use(volume, self.server_name or server_name)
            if refused:
                raise SpawnFailed(refused, status=409)
            if volume.get("status") == "available":
                return volume
            if time.monotonic() > deadline:
                raise SpawnFailed(f"Your home volume {volume['id']} is still {volume.get('status')!r} after "
                                  f"{self.home_volume_timeout:.0f} s; try again later.")
            await asyncio.sleep(0.5)
            volume = await self._call(self._find_home) or volume

    async def delete_forever(self):
        """JupyterHub deletes the user: their home volume goes only if the admin said so."""
        await super().delete_forever()
        if not (self.home_volume_size and self.delete_home_volume_with_user):
            return
        volume = await self._call(self._find_home)
        if volume is not None:
            self.log.info("%s: deleting home volume %s with the user", self._log_name, volume["id"])
            await self._call(lambda conn: conn.block_storage.delete_volume(volume["id"]))

    async def launch_node(self, script: str) -> str:
        from openstack import exceptions as osx

        plan = dataclasses.replace(self._plan_base, user_data=script)
        if self.home_volume_size:
            volume = await self._home_volume(plan.name)
            zone = volume.get("availability_zone") or plan.availability_zone
            plan = dataclasses.replace(plan, home_volume_id=volume["id"], availability_zone=zone or "")
            self.emit(15, f"Your home volume {volume['id']} is attached at boot (zone {zone or 'default'})")
        attrs = plan_rules.create_server_attrs(plan, self._ids)
        self.server_name = plan.name
        try:
            server = await self._call(lambda conn: conn.compute.create_server(**attrs))
        except osx.HttpException as e:
            if e.status_code is not None and 400 <= e.status_code < 500:
                raise  # Nova refused: nothing was created
            await self._delete_lost_servers(plan)
            raise
        except Exception:
            await self._delete_lost_servers(plan)
            raise
        self.emit(20, f"Nova accepted server {plan.name}")
        return server.id

    async def _delete_lost_servers(self, plan: plan_rules.ServerPlan) -> None:
        """After a create whose answer was lost, delete what it may have created anyway."""
        meta = plan.metadata

        def find(conn):
            return [s.id for s in conn.compute.servers(details=True, tags=plan.tags[0], name=f"^{plan.name}$")
                    if (s.metadata or {}).get(plan_rules.META_OWNER) == meta[plan_rules.META_OWNER]
                    and (s.metadata or {}).get(plan_rules.META_SERVER) == meta[plan_rules.META_SERVER]]

        try:
            for server_id in await self._call(find):
                self.log.warning("%s: deleting %s left by a failed create", self._log_name, server_id)
                await self.terminate_node(server_id)
        except Exception as e:
            self.log.error("%s: could not check for servers left by a failed create (%s)", self._log_name, e)

    async def wait_for_address(self, node_id: str) -> str:
        from openstack import exceptions as osx

        delay, last = 0.2, None
        while True:
            try:
                server = await self._call(lambda conn: conn.compute.get_server(node_id))
            except osx.NotFoundException:
                raise SpawnFailed(f"OpenStack server {self.server_name} disappeared while building.") from None
            except Exception as e:
                if not is_transient(e):
                    raise
                # A Nova hiccup is no reason to give up: start_timeout bounds the wait.
                self.log.warning("%s: looking at %s failed (%s); retrying", self._log_name, node_id, e)
                await asyncio.sleep(self.build_poll_interval)
                continue
            status, task = (server.status or "").upper(), server.task_state
            if (status, task) != last:
                last = (status, task)
                if status == "BUILD":
                    self.emit(35, f"Server {self.server_name} is building ({task or 'BUILD'})")
            if status == "ERROR":
                error = BackendFull if plan_rules.is_capacity_fault(server.fault) else SpawnFailed
                raise error(plan_rules.fault_message(self.server_name, server.fault, status))
            if plan_rules.classify_status(status, task) == "gone":
                raise SpawnFailed(f"OpenStack server {self.server_name} stopped while building ({status}).")
            if status == "ACTIVE":
                ip = plan_rules.private_ip(server.addresses, self._network_name)
                if ip:
                    self.emit(45, f"Server {self.server_name} is ACTIVE with private IP {ip} on {self._network_name}")
                    return ip
            await asyncio.sleep(delay)
            delay = min(delay * 1.5, self.build_poll_interval)

    async def terminate_node(self, node_id: str) -> None:
        from openstack import exceptions as osx

        await self._call(lambda conn: conn.compute.delete_server(node_id, ignore_missing=True))
        deadline = time.monotonic() + self.delete_timeout
        delay = 0.2
        while time.monotonic() < deadline:
            try:
                await self._call(lambda conn: conn.compute.get_server(node_id))
            except osx.NotFoundException:
                return
            except Exception as e:
                if not is_transient(e):
                    raise
            await asyncio.sleep(delay)
            delay = min(delay * 1.5, 5.0)
        raise TimeoutError(f"Nova did not delete {node_id} within {self.delete_timeout:.0f} s")

    def status_cache(self) -> OpenStackStatusCache:
        settings = self.connection_settings()
        hub_id = self.hub_id
        return OpenStackStatusCache.shared(
            (settings.cache_key(), hub_id), self.status_refresh_interval, lambda: connect(settings), hub_id
        )

    def describe_error(self, error: BaseException) -> str | None:
        from keystoneauth1 import exceptions as ks

        settings = self.connection_settings()
        if isinstance(error, ks.Unauthorized):
            forget(settings)  # fixed credentials take effect without a hub restart
        if isinstance(error, plan_rules.PlanError):
            return f"OpenStack is misconfigured on the hub: {error}"
        return describe_sdk_error(error, settings)

    def is_full_error(self, error: BaseException) -> bool:
        from openstack import exceptions as osx

        if not isinstance(error, osx.HttpException):
            return False
        return plan_rules.is_quota_error(error.status_code, (error.details or error.message or ""))

    def describe_node(self) -> str:
        return f"OpenStack server {self.server_name or self.node_id}"

    # ------------------------------------------------------------------ shelve and unshelve
    def node_resumable(self) -> bool:
        return self.stop_action == "shelve"

    async def park_node(self, node_id: str) -> bool:
        if self.stop_action != "shelve":
            return False
        await self._call(lambda conn: conn.compute.shelve_server(node_id))
        return True

    def parks_when_gone(self, seen) -> bool:
        return self.stop_action == "shelve" and seen.detail.split(" ")[0] in ("SHELVED", "SHELVED_OFFLOADED")

    async def resume_node(self, parked: dict, script: str) -> str | None:
        from openstack import exceptions as osx

        node_id = parked[parking.NODE_ID]
        deadline = time.monotonic() + self.delete_timeout + self.start_timeout
        while True:
            try:
                server = await self._call(lambda conn: conn.compute.get_server(node_id))
            except osx.NotFoundException:
                self.emit(8, f"Your shelved server {node_id} is gone; starting a new one")
                return None
            step = plan_rules.unshelve_step(server.status, server.task_state)
            if step == plan_rules.UNSHELVE:
                break
            if step == plan_rules.REPLACE:
                self.emit(8, f"Your shelved server {node_id} is {server.status} now; replacing it with a new one")
                await self._terminate_quietly(node_id)
                return None
            if time.monotonic() > deadline:
                raise SpawnFailed(f"Your shelved server {node_id} is still {server.task_state}; try again in a minute.")
            await asyncio.sleep(0.5)
        self.server_name = server.name
        self.emit(10, f"Resuming your shelved server {server.name}, shelved {parking.waited(parked, time.time())} ago")
        await self._call(lambda conn: conn.compute.unshelve_server(node_id))
        return node_id

    def backend_state(self) -> dict:
        return {"server_name": self.server_name}

    def load_backend_state(self, state: dict) -> None:
        self.server_name = state.get("server_name", "")

    def clear_backend_state(self) -> None:
        self.server_name = ""
