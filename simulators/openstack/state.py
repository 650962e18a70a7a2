"""The in-memory cloud behind the fake: one project's view of Keystone, Nova, Neutron and Glance.

Time drives the lifecycle instead of background threads: a server created at ``t`` reads as
BUILD until ``t + build_seconds`` and ACTIVE (or ERROR, when a fault was injected) after it;
a deleted server reads as ACTIVE with task_state ``deleting`` until ``delete_seconds`` later and
then is gone. Every public method takes the lock, so the threaded HTTP server stays consistent.
"""

from __future__ import annotations

import ipaddress
import secrets
import threading
import time
import uuid
from dataclasses import dataclass, field


def iso(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


def new_id() -> str:
    return str(uuid.uuid4())


@dataclass
class User:
    id: str
    name: str
    password: str
    roles: list[str]


@dataclass
class AppCredential:
    id: str
    name: str
    secret: str
    user_id: str
    roles: list[str]


@dataclass
class Token:
    id: str
    user: User
    methods: list[str]
    roles: list[str]
    issued: float
    expires: float
    app_cred_id: str | None = None
    scoped: bool = True  # an unscoped token has no project, no catalog and no access to services


@dataclass
class Server:
    id: str
    name: str
    flavor: dict
    image_id: str  # "" when booted from volume
    networks: list[str]  # network ids in request order
    port_ids: list[str]
    security_groups: list[str]
    key_name: str | None
    availability_zone: str
    metadata: dict
    tags: list[str]
    user_data: str | None
    block_device_mapping: list[dict]
    created: float
    build_seconds: float
    user_id: str
    fault: str | None = None  # set when the scheduler "fails" this server
    deleted_at: float | None = None
    updated: float = 0.0
    locked: bool = False  # a locked server refuses actions and deletion from non-admins
    locked_reason: str | None = None
    stopped: bool = False  # os-stop: SHUTOFF until os-start (the disk is kept, the processes are not)
    shelved_at: float | None = None  # shelve: SHELVED, then SHELVED_OFFLOADED (no host; disk kept as an image)
    unshelved_at: float | None = None  # unshelve: back through spawning on a host, then ACTIVE


#: how long "shelving" (the snapshot of the root disk) takes before the server is offloaded
SHELVE_SECONDS = 0.5


@dataclass
class Fail:
    """An injected HTTP failure for requests matching method + path prefix."""

    method: str
    path_prefix: str
    status: int
    count: int  # -1 means until cleared
    after: bool = False  # process the request, then answer with the failure (a lost answer)


class QuotaExceeded(Exception):
    def __init__(self, resource: str, requested: int, used: int, limit: int):
        super().__init__(
            f"Quota exceeded for {resource}: Requested {requested}, but already used {used} of {limit} {resource}"
        )


@dataclass
class Cloud:
    """Everything the fake knows. Defaults model a small research tenant."""

    cidr: str = "127.42.0.0/24"
    build_seconds: float = 0.5
    delete_seconds: float = 0.3
    region: str = "RegionOne"
    project_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    project_name: str = "research"
    domain_id: str = "default"
    domain_name: str = "Default"

    def __post_init__(self):
        self.lock = threading.RLock()
        self.users: dict[str, User] = {}
        self.app_creds: dict[str, AppCredential] = {}
        self.tokens: dict[str, Token] = {}
        self.flavors: dict[str, dict] = {}
        self.images: dict[str, dict] = {}
        self.networks: dict[str, dict] = {}
        self.subnets: dict[str, dict] = {}
        self.ports: dict[str, dict] = {}
        self.security_groups: dict[str, dict] = {}
        self.keypairs: dict[str, dict] = {}
        self.zones = ["nova"]
        # Cinder (simulators/openstack/volumes.py): volumes by id, and their timing.
        self.volumes: dict[str, dict] = {}
        self.volume_quota_gb = 1000
        self.volume_build_seconds = 0.3
        self.volume_detach_seconds = 0.3
        self.servers: dict[str, Server] = {}
        self.quotas = {"instances": 10, "cores": 20, "ram": 51200}
        self.pending_faults: list[str] = []
        self.fails: list[Fail] = []
        self.requests: list[tuple[str, str]] = []
        self._next_host = 10
        self.seed()

    # -- initial content ----------------------------------------------------------------
    def seed(self) -> None:
        self.add_user("demo", "demo-password", ["member", "reader"])
        self.add_user("admin", "admin-password", ["admin", "member", "reader"])
        demo = self.users_by_name("demo")
        self.app_creds["0f5e3a4c9d2b4f7a8c1e6b3d5a7f9e2c"] = AppCredential(
            "0f5e3a4c9d2b4f7a8c1e6b3d5a7f9e2c", "hub", "app-cred-secret", demo.id, ["member"]
        )
        for name, vcpus, ram, disk in [("m1.tiny", 1, 512, 1), ("m1.small", 1, 2048, 20), ("m1.large", 4, 8192, 80)]:
            fid = new_id()
            self.flavors[fid] = {
                "id": fid, "name": name, "vcpus": vcpus, "ram": ram, "disk": disk,
                "OS-FLV-EXT-DATA:ephemeral": 0, "OS-FLV-DISABLED:disabled": False, "swap": 0,
                "rxtx_factor": 1.0, "os-flavor-access:is_public": True, "description": None,
                "extra_specs": {},
            }
        now = time.time()
        for name in ["jupyter-node-2024", "debian-12"]:
            iid = new_id()
            self.images[iid] = {
                "id": iid, "name": name, "status": "active", "visibility": "public",
                "container_format": "bare", "disk_format": "qcow2", "min_disk": 0, "min_ram": 0,
                "size": 524288000, "virtual_size": 2147483648, "checksum": secrets.token_hex(16),
                "os_hash_algo": "sha512", "os_hash_value": secrets.token_hex(64), "owner": self.project_id,
                "protected": False, "os_hidden": False, "tags": [], "created_at": iso(now),
                "updated_at": iso(now), "self": f"/v2/images/{iid}", "file": f"/v2/images/{iid}/file",
                "schema": "/v2/schemas/image",
            }
        self.add_network("research-private", self.cidr)  # first: the default for networks="auto"
        self.add_network("dmz", "192.0.2.0/24")
        for name in ["default", "jupyter-nodes"]:
            sid = new_id()
            self.security_groups[sid] = {
                "id": sid, "name": name, "description": f"{name} security group", "project_id": self.project_id,
                "tenant_id": self.project_id, "stateful": True, "shared": False, "tags": [],
                "security_group_rules": [], "revision_number": 1, "created_at": iso(now), "updated_at": iso(now),
            }
        self.keypairs["research-key"] = {"name": "research-key", "type": "ssh", "fingerprint": "ab:cd"}

    def add_user(self, name: str, password: str, roles: list[str]) -> User:
        user = User(uuid.uuid4().hex, name, password, roles)
        self.users[user.id] = user
        return user

    def users_by_name(self, name: str) -> User | None:
        return next((u for u in self.users.values() if u.name == name), None)

    def add_network(self, name: str, cidr: str) -> dict:
        now = iso(time.time())
        nid, sid = new_id(), new_id()
        self.subnets[sid] = {
            "id": sid, "name": f"{name}-subnet", "network_id": nid, "cidr": cidr, "ip_version": 4,
            "gateway_ip": str(next(ipaddress.ip_network(cidr).hosts())), "enable_dhcp": True,
            "project_id": self.project_id, "tenant_id": self.project_id, "allocation_pools": [],
            "dns_nameservers": [], "host_routes": [], "tags": [], "revision_number": 0,
            "created_at": now, "updated_at": now, "description": "",
        }
        self.networks[nid] = {
            "id": nid, "name": name, "status": "ACTIVE", "admin_state_up": True, "shared": False,
            "subnets": [sid], "project_id": self.project_id, "tenant_id": self.project_id,
            "router:external": False, "mtu": 1450, "port_security_enabled": True, "tags": [],
            "availability_zones": ["nova"], "revision_number": 1, "created_at": now, "updated_at": now,
            "description": "", "is_default": False, "ipv4_address_scope": None, "ipv6_address_scope": None,
        }
        return self.networks[nid]

    # -- keystone -----------------------------------------------------------------------
    def issue_token(self, user: User, methods: list[str], roles: list[str], app_cred_id: str | None = None,
                    scoped: bool = True) -> Token:
        now = time.time()
        token = Token("gAAAAA" + secrets.token_urlsafe(48), user, methods, roles if scoped else [], now, now + 3600,
                      app_cred_id, scoped)
        with self.lock:
            self.tokens[token.id] = token
        return token

    def token(self, token_id: str | None) -> Token | None:
        with self.lock:
            tok = self.tokens.get(token_id or "")
            return tok if tok and tok.expires > time.time() else None

    # -- lifecycle read-out -----------------------------------------------------------------
    def _reap(self) -> None:
        now = time.time()
        for sid in [s.id for s in self.servers.values() if s.deleted_at and now >= s.deleted_at + self.delete_seconds]:
            server = self.servers.pop(sid)
            for pid in server.port_ids:
                self.ports.pop(pid, None)

    def visible_servers(self) -> list[Server]:
        with self.lock:
            self._reap()
            return sorted(self.servers.values(), key=lambda s: s.created, reverse=True)

    def get_server(self, sid: str) -> Server | None:
        with self.lock:
            self._reap()
            return self.servers.get(sid)

    def status(self, server: Server) -> tuple[str, str | None, str]:
        """(status, task_state, vm_state) as Nova would report them right now."""
        now = time.time()
        if server.deleted_at:
            return ("ERROR" if server.fault else "ACTIVE"), "deleting", ("error" if server.fault else "active")
        if now < server.created + server.build_seconds:
            return "BUILD", ("spawning" if now > server.created + server.build_seconds / 2 else "scheduling"), "building"
        if server.fault:
            return "ERROR", None, "error"
        if server.shelved_at is not None:
            # shelved_offload_time 0 (the usual setting): offloaded right after the snapshot.
            if now < server.shelved_at + SHELVE_SECONDS:
                return "ACTIVE", "shelving", "active"
            return "SHELVED_OFFLOADED", None, "shelved_offloaded"
        if server.unshelved_at is not None and now < server.unshelved_at + server.build_seconds:
            return "SHELVED_OFFLOADED", "spawning", "shelved_offloaded"
        if server.stopped:
            return "SHUTOFF", None, "stopped"
        return "ACTIVE", None, "active"

    # -- mutations --------------------------------------------------------------------------
    def check_quota(self, flavor: dict) -> None:
        live = [s for s in self.servers.values() if not s.deleted_at]
        checks = [
            ("instances", 1, len(live)),
            ("cores", flavor["vcpus"], sum(s.flavor["vcpus"] for s in live)),
            ("ram", flavor["ram"], sum(s.flavor["ram"] for s in live)),
        ]
        for resource, requested, used in checks:
            limit = self.quotas[resource]
            if limit >= 0 and used + requested > limit:
                raise QuotaExceeded(resource, requested, used, limit)

    def allocate_port(self, network_id: str, server_id: str, sg_ids: list[str]) -> dict:
        net = self.networks[network_id]
        subnet = self.subnets[net["subnets"][0]]
        cidr = ipaddress.ip_network(subnet["cidr"])
        used = {ip["ip_address"] for p in self.ports.values() for ip in p["fixed_ips"]}
        address = next(str(h) for h in list(cidr.hosts())[9:] if str(h) not in used)
        now = iso(time.time())
        pid = new_id()
        mac = "fa:16:3e:%02x:%02x:%02x" % tuple(secrets.token_bytes(3))
        self.ports[pid] = {
            "id": pid, "name": "", "network_id": network_id, "mac_address": mac,
            "fixed_ips": [{"subnet_id": subnet["id"], "ip_address": address}],
            "device_id": server_id, "device_owner": "compute:nova", "status": "ACTIVE",
            "admin_state_up": True, "security_groups": sg_ids, "project_id": self.project_id,
            "tenant_id": self.project_id, "binding:vnic_type": "normal", "port_security_enabled": True,
            "allowed_address_pairs": [], "extra_dhcp_opts": [], "tags": [], "description": "",
            "revision_number": 1, "created_at": now, "updated_at": now,
        }
        return self.ports[pid]

    def create_server(self, **kw) -> Server:
        with self.lock:
            self._reap()
            self.check_quota(kw["flavor"])
            sid = new_id()
            sg_ids = [g["id"] for g in self.security_groups.values() if g["name"] in kw["security_groups"]]
            fault = self.pending_faults.pop(0) if self.pending_faults else None
            # A server the scheduler cannot place never gets its ports bound.
            port_ids = [] if fault else [self.allocate_port(nid, sid, sg_ids)["id"] for nid in kw["networks"]]
            now = time.time()
            server = Server(id=sid, port_ids=port_ids, created=now, updated=now, fault=fault,
                            build_seconds=self.build_seconds, **kw)
            self.servers[sid] = server
            return server

    def delete_server(self, sid: str) -> bool:
        with self.lock:
            self._reap()
            server = self.servers.get(sid)
            if server is None:
                return False
            if server.deleted_at is None:
                server.deleted_at = time.time()
                server.updated = server.deleted_at
                # Nova detaches the server's volumes as it deletes it: their data stays.
                for volume in self.volumes.values():
                    for attachment in [a for a in volume["_attachments"] if a["server_id"] == sid]:
                        volume["_attachments"].remove(attachment)
                        volume["_detached_at"] = volume["_updated"] = server.deleted_at
            return True

    # -- fault injection ------------------------------------------------------------------
    def take_fail(self, method: str, path: str) -> Fail | None:
        with self.lock:
            for fail in self.fails:
                if fail.method in (method, "*") and path.startswith(fail.path_prefix) and fail.count != 0:
                    if fail.count > 0:
                        fail.count -= 1
                    return fail
            return None
