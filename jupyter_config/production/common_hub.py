# The part of the production hub configuration every deployment shape shares: the hub's
# addresses, the proxy as a service of its own, PostgreSQL, the identity provider, secrets,
# publishing and the idle culler. aws/jupyterhub_config.py and hybrid/jupyterhub_config.py
# load it first (load_subconfig) and add their spawners. docs/deployment.md explains each line;
# tests/integration/test_production_config.py starts a real hub with these files.
#
# Values marked CHANGE ME are the deployment's own. Secrets are never in this file: they come
# from files under /etc/jupyterhub (0640 root:jupyterhub) or from the units' EnvironmentFile.
import os

from hybrid_spawner.culler import idle_culler

c = get_config()  # noqa: F821

# Everything the hub writes (database files if SQLite, the cookie secret, logs) is for its
# account alone; the unit sets UMask=0077 too.
os.umask(0o077)

# -- addresses ------------------------------------------------------------------------------
# configurable-http-proxy runs as its own service (jupyter_config/systemd/jupyterhub-proxy.service):
# it listens on the public port behind the TLS load balancer / VPN gateway, the hub only tells
# it where to route. Its API token comes from /etc/jupyterhub/proxy.env (CONFIGPROXY_AUTH_TOKEN),
# which both units read; the hub reads it from its environment.
c.JupyterHub.bind_url = "http://:8000"  # where the proxy listens (its --port); TLS ends at the load balancer
c.ConfigurableHTTPProxy.should_start = False
c.ConfigurableHTTPProxy.api_url = "http://127.0.0.1:8001"
# The hub's API listens on the private network: nodes redeem their bootstrap credential there,
# report activity and refresh bucket credentials. 8081 from the nodes' security group only.
c.JupyterHub.hub_bind_url = "http://0.0.0.0:8081"
c.JupyterHub.hub_connect_url = "http://hub.research.internal:8081"  # as nodes reach it. CHANGE ME
# Remote servers must outlive a hub restart or upgrade: never stop them on shutdown.
c.JupyterHub.cleanup_servers = False
c.JupyterHub.allow_named_servers = True
c.JupyterHub.named_server_limit_per_user = 3
# Spawns are slow (an instance boots); let many run at once, but not without bound.
c.JupyterHub.concurrent_spawn_limit = 50
c.JupyterHub.active_server_limit = 200  # CHANGE ME: what the budget allows

# -- state --------------------------------------------------------------------------------------
# PostgreSQL on the hub host, reached over its Unix socket with peer authentication: the
# `jupyterhub` account is the `jupyterhub` role, no password anywhere (docs/deployment.md).
# psycopg2 named explicitly: SQLAlchemy 2.1 defaults postgresql:// to psycopg 3.
c.JupyterHub.db_url = "postgresql+psycopg2://jupyterhub@/jupyterhub?host=/run/postgresql"
# Written on first start; StateDirectory=jupyterhub of the unit (0700, the hub's account).
c.JupyterHub.cookie_secret_file = "/var/lib/jupyterhub/jupyterhub_cookie_secret"
# An upgrade that changes the schema stops with a message instead of migrating unasked:
# run `jupyterhub upgrade-db` after a backup (docs/operations.md).
c.JupyterHub.upgrade_db = False

# -- who logs in --------------------------------------------------------------------------------
# The university's identity provider over OpenID Connect (pip install oauthenticator). The client
# secret comes from the unit's EnvironmentFile (OAUTH_CLIENT_SECRET), never from this file.
c.JupyterHub.authenticator_class = "generic-oauth"
c.GenericOAuthenticator.client_id = "jupyterhub"  # CHANGE ME
c.GenericOAuthenticator.oauth_callback_url = "https://jupyter.research.example.org/hub/oauth_callback"  # CHANGE ME
c.GenericOAuthenticator.authorize_url = "https://login.example.org/oauth2/authorize"  # CHANGE ME
c.GenericOAuthenticator.token_url = "https://login.example.org/oauth2/token"  # CHANGE ME
c.GenericOAuthenticator.userdata_url = "https://login.example.org/oauth2/userinfo"  # CHANGE ME
c.GenericOAuthenticator.scope = ["openid", "profile", "email", "groups"]
c.GenericOAuthenticator.username_claim = "preferred_username"
c.GenericOAuthenticator.manage_groups = True  # profiles' allowed_groups read these groups
c.GenericOAuthenticator.auth_state_groups_key = "oauth_user.groups"
c.GenericOAuthenticator.allowed_groups = {"research"}  # CHANGE ME
c.GenericOAuthenticator.admin_groups = {"research-admins"}  # CHANGE ME

# -- publishing ---------------------------------------------------------------------------------
# Every node gets the publisher's private address, the public URL and a publish token derived
# for its user from this secret (read at every spawn: rotating it needs no hub restart). These
# options are merged after Spawner.environment, so an `environment` set anywhere keeps them.
c.RemoteSpawner.publisher_url = "http://10.0.2.10:8080/api/"  # the public host's private address and API port. CHANGE ME
c.RemoteSpawner.publisher_public_url = "https://dashboards.example.org"  # CHANGE ME
c.RemoteSpawner.publisher_secret_file = "/etc/jupyterhub/publisher_secret"

# -- idle servers cost money: cull them ------------------------------------------------------
# jupyterhub-idle-culler as a hub-managed service with only the scopes it needs. max_age stops
# any server after a week, which also bounds how long a retired publish secret must stay valid.
_culler, _culler_role = idle_culler(timeout=3600, cull_every=300, max_age=7 * 24 * 3600)
c.JupyterHub.services.append(_culler)
c.JupyterHub.load_roles.append(_culler_role)

# -- metrics ------------------------------------------------------------------------------------
# /hub/metrics (Prometheus) for a monitoring service with the read:metrics scope; its token
# comes from the environment (PROMETHEUS_API_TOKEN in /etc/jupyterhub/hub.env).
c.JupyterHub.authenticate_prometheus = True
if os.environ.get("PROMETHEUS_API_TOKEN"):
    c.JupyterHub.services.append({"name": "prometheus", "api_token": os.environ["PROMETHEUS_API_TOKEN"]})
    c.JupyterHub.load_roles.append({"name": "prometheus", "scopes": ["read:metrics"], "services": ["prometheus"]})
