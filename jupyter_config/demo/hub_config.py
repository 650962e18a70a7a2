"""The demo hub's configuration, as Python text appended to LocalHub's base config (pure)."""

from __future__ import annotations

from dataclasses import dataclass, field

EC2_PROFILE = {
    "slug": "ec2-private",
    "display_name": "Private EC2 instance",
    "description": "Your own server on a private instance in the research subnet (simulated EC2 on moto).",
    "backend": "ec2",
    "default": True,
    "cost_per_hour": 0.0104,
}

SLURM_PROFILE = {
    "slug": "slurm-debug",
    "display_name": "Slurm job on the HPC cluster",
    "description": "A batch job on the local Slurm cluster's debug partition.",
    "backend": "slurm",
    "cost_per_hour": 0,
    "overrides": {"req_partition": "debug", "req_runtime": "02:00:00", "req_memory": "512M"},
    "options": {"cpus": {"display_name": "CPUs", "trait": "req_nprocs", "min": 1, "max": 2, "default": 1}},
}

# Offered only with --ldap: the directory's gpu-users group decides who sees it (docs/ldap.md).
GPU_PROFILE = {
    "slug": "ec2-gpu",
    "display_name": "Larger EC2 instance (gpu-users only)",
    "description": "Offered to members of the LDAP group gpu-users (simulated: a t3.small on moto).",
    "backend": "ec2",
    "allowed_groups": ["gpu-users"],
    "cost_per_hour": 0.0208,
    "overrides": {"instance_types": ["t3.small"]},
}

OPENSTACK_PROFILE = {
    "slug": "openstack-server",
    "display_name": "OpenStack server on the university cloud",
    "description": "A server in the tenant's private network (simulated Nova, Neutron, Glance, Keystone).",
    "backend": "openstack",
    "cost_per_hour": 0,
}


@dataclass
class DemoHubSettings:
    moto_url: str
    region: str
    hub_id: str
    ami_parameter: str
    subnet: str
    security_group: str
    python: str
    singleuser: str
    homes: str
    welcome_notebook: str
    # The simulated node image's starter files for a new home (RemoteSpawner.home_skeleton).
    node_image_skeleton: str
    # Empty when there is no public host (no nginx): publishing is then shown as not set up.
    publisher_secret_file: str
    node_environment: dict = field(default_factory=dict)
    slurm: bool = False
    # The clouds.yaml of the OpenStack fake, when it runs.
    openstack_clouds_yaml: str = ""
    # Per-user bucket credentials from the store's STS: bucket, url, role_arn, profile.
    bucket_credentials: dict = field(default_factory=dict)
    # Unix account the simulated EC2/OpenStack nodes run notebook code as ("{username}": the
    # researcher's own, as on Slurm). A real node is another machine; a simulated one shares
    # the hub's disk, so its code must not run as root. Empty only when the demo is not root.
    node_user: str = ""
    # With --ldap: host, port, ca_file, people_base, groups_base of the demo's slapd.
    ldap: dict = field(default_factory=dict)


def bucket_credentials_config(b: dict) -> str:
    """Every node, whatever its backend, gets credentials for its own user's prefix only."""
    if not b:
        return ""
    return f"""
c.RemoteSpawner.bucket_credentials_issuer = "hybrid_spawner.bucket_credentials.STSIssuer"
c.STSIssuer.bucket = {b["bucket"]!r}
c.STSIssuer.endpoint_url = {b["url"]!r}
c.STSIssuer.sts_endpoint_url = {b["url"]!r}
c.STSIssuer.role_arn = {b["role_arn"]!r}
c.STSIssuer.profile = {b["profile"]!r}
c.STSIssuer.duration = 900  # the shortest STS allows: the demo shows refreshes every ~7 minutes
"""


def ldap_config(ldap: dict) -> str:
    """LDAPS logins against the demo's slapd, its CA checked, its groups made hub groups."""
    if not ldap:
        return ""
    return f"""
c.JupyterHub.authenticator_class = "hybrid_spawner.auth.ldap.HybridLDAPAuthenticator"
c.LDAPAuthenticator.server_address = {ldap["host"]!r}
c.LDAPAuthenticator.server_port = {ldap["port"]!r}
c.LDAPAuthenticator.tls_strategy = "on_connect"
c.LDAPAuthenticator.tls_kwargs = {{"ca_certs_file": {ldap["ca_file"]!r}}}
c.LDAPAuthenticator.bind_dn_template = ["uid={{username}},{ldap["people_base"]}"]
c.HybridLDAPAuthenticator.group_search_base = {ldap["groups_base"]!r}
"""


def profiles_for(settings: DemoHubSettings) -> list[dict]:
    profiles = [dict(EC2_PROFILE)]
    if settings.ldap:
        profiles.append(dict(GPU_PROFILE))
    if settings.openstack_clouds_yaml:
        profiles.append(dict(OPENSTACK_PROFILE))
    if settings.slurm:
        profiles.append(dict(SLURM_PROFILE))
    return profiles


def hub_config(s: DemoHubSettings) -> str:
    """Everything the demo hub needs beyond LocalHub's base (login, ports, database)."""
    return f"""
import os, pathlib, shutil
from voila_publisher.tokens import derive_publish_token

c.JupyterHub.spawner_class = "hybrid"

# Idle servers cost money: jupyterhub-idle-culler stops one after an hour without activity.
from hybrid_spawner.culler import idle_culler
_culler, _culler_role = idle_culler(timeout=3600, cull_every=300)
c.JupyterHub.services.append(_culler)
c.JupyterHub.load_roles.append(_culler_role)
c.HybridSpawner.profiles = {profiles_for(s)!r}

c.EC2Spawner.region = {s.region!r}
c.EC2Spawner.endpoint_url = {s.moto_url!r}
c.EC2Spawner.image = "resolve:ssm:{s.ami_parameter}"
c.EC2Spawner.subnet_ids = [{s.subnet!r}]
c.EC2Spawner.security_group_ids = [{s.security_group!r}]
c.EC2Spawner.instance_types = ["t3.micro"]
c.EC2Spawner.hub_id = {s.hub_id!r}
c.EC2Spawner.extra_tags = {{"project": "hybrid-demo"}}
c.EC2Spawner.port = 0
# The node runner boots instances as local processes listening on loopback.
c.EC2Spawner.node_address_override = "127.0.0.1"
c.EC2Spawner.node_python = {s.python!r}
c.EC2Spawner.node_user = {s.node_user!r}
c.EC2Spawner.status_refresh_interval = 1
c.EC2Spawner.start_timeout = 120
c.EC2Spawner.http_timeout = 90

c.OpenStackSpawner.cloud = "fake"
c.OpenStackSpawner.clouds_yaml = {s.openstack_clouds_yaml!r}
c.OpenStackSpawner.image = "jupyter-node-2024"
c.OpenStackSpawner.flavor = "m1.small"
c.OpenStackSpawner.networks = ["research-private"]
c.OpenStackSpawner.security_groups = ["jupyter-nodes"]
c.OpenStackSpawner.key_name = "research-key"
c.OpenStackSpawner.hub_id = {s.hub_id!r}
c.OpenStackSpawner.node_python = {s.python!r}
c.OpenStackSpawner.node_user = {s.node_user!r}
c.OpenStackSpawner.status_refresh_interval = 1
c.OpenStackSpawner.start_timeout = 120
c.OpenStackSpawner.http_timeout = 90

# Where the work lives, as on the real clouds: an EC2 node serves its own disk, gone with the
# instance, and gets back what the researcher synced (restore on start; the hub has the server
# sync before any stop); an OpenStack node serves a Cinder volume kept across stops; a Slurm job
# serves the cluster's shared home. A new home gets the image's welcome notebook.
c.RemoteSpawner.home_skeleton = {s.node_image_skeleton!r}
c.EC2Spawner.notebook_dir = ""
c.EC2Spawner.restore_on_start = True
c.OpenStackSpawner.notebook_dir = ""
c.OpenStackSpawner.home_volume_size = 1

c.SlurmSpawner.node_python = {s.python!r}
c.SlurmSpawner.status_refresh_interval = 1
c.SlurmSpawner.start_timeout = 120

# Reconcile (docs/reconcile.md): the demo's clouds are simulators, so orphans are ended after a minute.
from hybrid_spawner.reconcile import runner as _reconcile

c.Reconciler.backends = ["ec2"] + (["openstack"] if {s.openstack_clouds_yaml!r} else [])
c.Reconciler.mode = "terminate"
c.Reconciler.grace_period = 60
c.Reconciler.interval = 30
_reconcile.enable(c)

c.Spawner.cmd = [{s.singleuser!r}]
c.Spawner.default_url = "/lab"
c.Spawner.poll_interval = 5
c.Spawner.notebook_dir = {s.homes!r} + "/{{username}}"

# What the hub hands every node (docs/contracts.md): the bucket, the publisher, and a
# per-user publish token derived from the secret shared with the public host.
_environment = {s.node_environment!r}
if {s.publisher_secret_file!r}:
    _PUBLISH_SECRET = pathlib.Path({s.publisher_secret_file!r}).read_text().strip()
    _environment["HYBRID_PUBLISHER_TOKEN"] = lambda spawner: derive_publish_token(_PUBLISH_SECRET, spawner.user.name)
# Lab settings in a hidden folder of the home (hidden names are never synced).
_environment["JUPYTERLAB_SETTINGS_DIR"] = lambda spawner: str(_lab_settings(spawner.user.name))
c.Spawner.environment = _environment

# A demo needs no "official Jupyter news?" prompt on top of its own notifications.
_QUIET_LAB = '{{"fetchNews": "false", "checkForUpdates": false}}'


def _lab_settings(name):
    return pathlib.Path({s.homes!r}) / name / ".lab-settings"


def _prepare_home(spawner):
    # Every researcher starts with a notebook to sync and publish.
    home = pathlib.Path({s.homes!r}) / spawner.user.name
    home.mkdir(parents=True, exist_ok=True)
    welcome = home / "welcome.ipynb"
    if not welcome.exists():
        shutil.copy({s.welcome_notebook!r}, welcome)
    notification = _lab_settings(spawner.user.name) / "@jupyterlab" / "apputils-extension" / "notification.jupyterlab-settings"
    if not notification.exists():
        notification.parent.mkdir(parents=True, exist_ok=True)
        notification.write_text(_QUIET_LAB)
    if os.geteuid() == 0:
        from simulators.accounts import ensure_account
        # Notebook code runs as the researcher's own account on every backend, never root.
        account = ensure_account(spawner.user.name)
        for path in (home, welcome, *_lab_settings(spawner.user.name).rglob("*"), _lab_settings(spawner.user.name)):
            os.chown(path, account.pw_uid, account.pw_gid)


c.Spawner.pre_spawn_hook = _prepare_home
""" + bucket_credentials_config(s.bucket_credentials) + ldap_config(s.ldap)
