# Example JupyterHub configuration for an AWS deployment of the hybrid research cloud.
#
# Layout (see docs/ec2.md): the hub runs in the private research subnet (or a management
# subnet routed to it) and is reached by researchers through the VPN gateway in the DMZ subnet.
# Every notebook server runs on its own EC2 instance in the private research subnet, with no
# public IP, booted from an AMI whose id an EC2 Image Builder pipeline publishes to SSM.
#
# A commented example of the options; the complete production configuration (PostgreSQL, the
# proxy as its own service, login, culler) is jupyter_config/production/ (docs/deployment.md).
# Replace every value marked CHANGE ME. Nothing secret belongs in this file except what the
# authenticator needs; the hub's AWS access comes from its instance profile.

c = get_config()  # noqa: F821

# -- the hub ---------------------------------------------------------------------------------
c.JupyterHub.bind_url = "http://0.0.0.0:8000"  # TLS is terminated at the VPN gateway / load balancer
c.JupyterHub.hub_ip = "0.0.0.0"
# The address nodes use to reach the hub API (bootstrap, activity): the hub's private IP or a
# private DNS name. CHANGE ME.
c.JupyterHub.hub_connect_url = "http://hub.research.internal:8081"
# Remote servers must outlive a hub restart or upgrade: never stop them on shutdown.
c.JupyterHub.cleanup_servers = False
c.JupyterHub.allow_named_servers = True
c.JupyterHub.named_server_limit_per_user = 3
c.JupyterHub.db_url = "sqlite:////srv/jupyterhub/jupyterhub.sqlite"
c.JupyterHub.cookie_secret_file = "/srv/jupyterhub/jupyterhub_cookie_secret"

# -- the hub's own files: for the hub's account alone ---------------------------------------------
# Researchers' code may run on a machine that shares this disk (a hub on a cluster's login node,
# a shared /srv). Everything secret the hub keeps -- this file if it holds a token, the cookie
# secret, the database (it stores hashed tokens and server state), clouds.yaml, the publisher
# secret -- lives in /srv/jupyterhub (or /etc/jupyterhub), a 0700 directory owned by the hub's
# account, as 0600 files. Start the hub with umask 077 (systemd: UMask=0077); this line makes
# sure of it for everything the hub writes itself:
import os  # noqa: E402

os.umask(0o077)
# Your identity provider, e.g. oauthenticator's GenericOAuthenticator. CHANGE ME.
# c.JupyterHub.authenticator_class = "generic-oauth"

# -- EC2: one private instance per notebook server ------------------------------------------------
# Importing the spawner also registers the node bootstrap endpoints under /hub/api/hybrid/.
c.JupyterHub.spawner_class = "hybrid-ec2"

c.EC2Spawner.region = "eu-west-1"  # CHANGE ME
# Resolved at every spawn: the Image Builder pipeline's latest AMI. A fixed "ami-..." also works.
c.EC2Spawner.image = "resolve:ssm:/research/jupyter-node/ami"  # CHANGE ME
# Preferred type first; the next is tried on InsufficientInstanceCapacity / Unsupported.
c.EC2Spawner.instance_types = ["m6i.xlarge", "m5.xlarge", "t3.xlarge"]
# Private research subnets, one per availability zone (also a capacity fallback). CHANGE ME.
c.EC2Spawner.subnet_ids = ["subnet-0aaaaaaaaaaaaaaaa", "subnet-0bbbbbbbbbbbbbbbb"]
# "jupyter-nodes": inbound TCP 8888 from the hub's security group only; outbound 8081 to the hub,
# 443 to the S3 / SSM VPC endpoints. CHANGE ME.
c.EC2Spawner.security_group_ids = ["sg-0ccccccccccccccc"]
# Role of the node: NO S3 rights (a researcher can read it from the instance metadata); the
# bucket is reached with per-user credentials below. Or leave it empty. CHANGE ME.
c.EC2Spawner.instance_profile = "jupyter-node"
c.EC2Spawner.root_volume_size = 50
c.EC2Spawner.root_volume_type = "gp3"
c.EC2Spawner.root_volume_encrypted = True
c.EC2Spawner.imdsv2_required = True
c.EC2Spawner.extra_tags = {"project": "research-cloud", "cost-center": "CHANGE-ME"}
# Distinct per hub sharing the AWS account: status polling lists instances by this tag.
c.EC2Spawner.hub_id = "research-hub-prod"
c.EC2Spawner.port = 8888
# Node image: the venv that has jupyterhub-singleuser and jupyter-hybrid-cloud, and the account
# that runs the server (user-data runs as root).
c.EC2Spawner.node_python = "/opt/jupyter/bin/python"
c.EC2Spawner.node_user = "jovyan"
c.EC2Spawner.cmd = ["/opt/jupyter/bin/jupyterhub-singleuser"]
c.EC2Spawner.default_url = "/lab"
# Boot + image pull + server start; the node is terminated if it is not up by then.
c.EC2Spawner.start_timeout = 600
c.EC2Spawner.http_timeout = 120
# One DescribeInstances for all servers every 30 s; the hub reads the cache when it polls.
c.EC2Spawner.status_refresh_interval = 30
c.EC2Spawner.poll_interval = 60

# Bucket credentials per user (docs/security.md): at each spawn the hub assumes the node-data
# role with a session policy naming only users/<name>/, hands the credentials to the node in the
# bootstrap redemption and refreshes them through the hub; the issuer also sets the node's
# HYBRID_SYNC_BUCKET / HYBRID_SYNC_PREFIX. The hub's role needs sts:AssumeRole on role_arn.
c.RemoteSpawner.bucket_credentials_issuer = "hybrid_spawner.bucket_credentials.STSIssuer"
c.STSIssuer.bucket = "research-notebooks"  # CHANGE ME
c.STSIssuer.role_arn = "arn:aws:iam::123456789012:role/jupyter-node-data"  # CHANGE ME
c.STSIssuer.region = "eu-west-1"
c.STSIssuer.duration = 3600

# Publishing (docs/publish.md): every node gets the publisher's private address, the public URL and
# a publish token derived for its user from the secret shared with the public host (the secret
# never leaves the hub). These are options of their own, merged after Spawner.environment: an
# `environment` set for this spawner (which replaces c.Spawner.environment) cannot drop them.
c.RemoteSpawner.publisher_url = "http://voila.research.internal/api/"  # CHANGE ME
c.RemoteSpawner.publisher_public_url = "https://dashboards.example.org/"  # CHANGE ME
c.RemoteSpawner.publisher_secret_file = "/etc/jupyterhub/publisher_secret"  # 0600, the hub's account

# -- idle servers cost money: cull them -----------------------------------------------------------
# jupyterhub-idle-culler (pip install 'jupyter-hybrid-cloud[culler]') as a hub service with only the
# scopes it needs; a kernel that is computing and printing counts as activity (docs/profiles.md).
from hybrid_spawner.culler import idle_culler

_culler, _culler_role = idle_culler(timeout=3600, cull_every=300)
c.JupyterHub.services.append(_culler)
c.JupyterHub.load_roles.append(_culler_role)

# -- reconcile: nodes under this hub's tag that no server record claims (docs/reconcile.md) -------
# "report" lists them at /hub/api/hybrid/reconcile and in the log; switch to "terminate" once the
# report has shown only real leftovers. Set the options before enable(): it checks them at startup.
from hybrid_spawner.reconcile import runner as _reconcile

c.Reconciler.backends = ['ec2']
c.Reconciler.mode = "report"
c.Reconciler.grace_period = 900
_reconcile.enable(c)
