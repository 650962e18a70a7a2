# Example JupyterHub configuration for the OpenStack part of the hybrid research cloud.
#
# Layout (see docs/openstack.md): the research group's OpenStack project is a virtual data
# center behind its own VPN gateway. The hub runs inside the project (or is routed to it through
# the gateway); every notebook server runs on its own Nova server on the project's private
# network, with no floating IP, booted from an image that has Python, this package and
# jupyterhub-singleuser.
#
# A commented example of the options; the complete production configuration (PostgreSQL, the
# proxy as its own service, login, culler) is jupyter_config/production/ (docs/deployment.md).
# Replace every value marked CHANGE ME. The OpenStack credentials live in clouds.yaml (mode 0600),
# never in this file.

c = get_config()  # noqa: F821

# -- the hub ---------------------------------------------------------------------------------
c.JupyterHub.bind_url = "http://0.0.0.0:8000"  # TLS is terminated at the VPN gateway / load balancer
c.JupyterHub.hub_ip = "0.0.0.0"
# The hub API as the Nova servers reach it on the private network. CHANGE ME.
c.JupyterHub.hub_connect_url = "http://10.20.0.5:8081"
# Remote servers must outlive a hub restart or upgrade: never stop them on shutdown.
c.JupyterHub.cleanup_servers = False
c.JupyterHub.allow_named_servers = True
c.JupyterHub.named_server_limit_per_user = 2

# -- the hub's own files: for the hub's account alone ---------------------------------------------
# Researchers' code may run on a machine that shares this disk (a hub on a cluster's login node,
# a shared /srv). Everything secret the hub keeps -- this file if it holds a token, the cookie
# secret, the database (it stores hashed tokens and server state), clouds.yaml, the publisher
# secret -- lives in /srv/jupyterhub (or /etc/jupyterhub), a 0700 directory owned by the hub's
# account, as 0600 files. Start the hub with umask 077 (systemd: UMask=0077); this line makes
# sure of it for everything the hub writes itself:
import os  # noqa: E402

os.umask(0o077)

# -- OpenStack: one Nova server per notebook server --------------------------------------------
c.JupyterHub.spawner_class = "hybrid-openstack"

# An application credential of the hub's service account (docs/openstack.md). CHANGE ME.
c.OpenStackSpawner.cloud = "research"
c.OpenStackSpawner.clouds_yaml = "/etc/jupyterhub/clouds.yaml"
c.OpenStackSpawner.image = "jupyter-node-2024"  # Glance name or id. CHANGE ME.
c.OpenStackSpawner.flavor = "m1.large"  # CHANGE ME
# The project's private network behind the VPN gateway; the hub connects to the fixed IP on it.
c.OpenStackSpawner.networks = ["research-private"]  # CHANGE ME
# "jupyter-nodes": ingress TCP 8888 from the hub only; egress to the hub API, S3 and the publisher.
c.OpenStackSpawner.security_groups = ["jupyter-nodes"]
c.OpenStackSpawner.key_name = ""  # an admin keypair for SSH through the bastion, if wanted
c.OpenStackSpawner.boot_volume_size = 0  # GiB; set for flavors with a small root disk
c.OpenStackSpawner.extra_metadata = {"project": "research-cloud"}
# Distinct per hub sharing the project: status polling lists servers by this tag.
c.OpenStackSpawner.hub_id = "research-hub-prod"
c.OpenStackSpawner.port = 8888
c.OpenStackSpawner.node_python = "/opt/jupyter/bin/python"
c.OpenStackSpawner.node_user = "jovyan"
c.OpenStackSpawner.cmd = ["/opt/jupyter/bin/jupyterhub-singleuser"]
c.OpenStackSpawner.default_url = "/lab"
# Scheduling + boot + server start; the server is deleted if it is not up by then.
c.OpenStackSpawner.start_timeout = 600
c.OpenStackSpawner.http_timeout = 120
# One tagged Nova listing for all servers every 30 s; the hub reads the cache when it polls.
c.OpenStackSpawner.status_refresh_interval = 30
c.OpenStackSpawner.poll_interval = 60

# Bucket credentials per user (docs/security.md): never one shared key in the environment.
# Ceph RGW, MinIO and SeaweedFS 4 have STS: the hub assumes a role with a session policy that
# names only users/<name>/. For a store without STS, use StaticKeysIssuer with one key per user
# that the store confines to that user's prefix.
c.RemoteSpawner.bucket_credentials_issuer = "hybrid_spawner.bucket_credentials.STSIssuer"
c.STSIssuer.bucket = "research-notebooks"  # CHANGE ME
c.STSIssuer.endpoint_url = "https://object-store.research.internal"  # CHANGE ME
c.STSIssuer.sts_endpoint_url = "https://object-store.research.internal"  # CHANGE ME
c.STSIssuer.role_arn = "arn:aws:iam::::role/jupyter-node-data"  # CHANGE ME: the store's role
# c.RemoteSpawner.bucket_credentials_issuer = "hybrid_spawner.bucket_credentials.StaticKeysIssuer"
# c.StaticKeysIssuer.bucket = "research-notebooks"
# c.StaticKeysIssuer.endpoint_url = "https://object-store.research.internal"
# c.StaticKeysIssuer.keys_file = "/etc/jupyterhub/bucket-keys.json"  # chmod 600

# Publishing (docs/publish.md): every node gets the publisher's private address, the public URL and
# a publish token derived for its user from the secret shared with the public host (the secret
# never leaves the hub). These are options of their own, merged after Spawner.environment: an
# `environment` set for this spawner (which replaces c.Spawner.environment) cannot drop them.
c.RemoteSpawner.publisher_url = "http://voila.research.internal/api/"  # CHANGE ME
c.RemoteSpawner.publisher_public_url = "https://dashboards.example.org/"  # CHANGE ME
c.RemoteSpawner.publisher_secret_file = "/etc/jupyterhub/publisher_secret"  # 0600, the hub's account

# -- idle servers cost money: cull them (pip install 'jupyter-hybrid-cloud[culler]') ---------------
from hybrid_spawner.culler import idle_culler

_culler, _culler_role = idle_culler(timeout=3600, cull_every=300)
c.JupyterHub.services.append(_culler)
c.JupyterHub.load_roles.append(_culler_role)

# -- reconcile: nodes under this hub's tag that no server record claims (docs/reconcile.md) -------
# "report" lists them at /hub/api/hybrid/reconcile and in the log; switch to "terminate" once the
# report has shown only real leftovers. Set the options before enable(): it checks them at startup.
from hybrid_spawner.reconcile import runner as _reconcile

c.Reconciler.backends = ['openstack']
c.Reconciler.mode = "report"
c.Reconciler.grace_period = 900
_reconcile.enable(c)
