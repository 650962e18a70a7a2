# An example configuration of a researcher's single-user Jupyter server with the hybrid
# cloud extension (voila_publisher). On a node spawned by the hub nothing here is needed:
# every value below defaults to the HYBRID_* environment the hub hands to the node
# (docs/contracts.md). Use this file for a server started by hand, e.g.
#   jupyter lab --config=jupyter_config/jupyter_server_config.py
c = get_config()  # noqa: F821

# The server extension (REST API under /hybrid/) is enabled on install by
# etc/jupyter/jupyter_server_config.d/voila_publisher.json; listed here to be explicit.
c.ServerApp.jpserver_extensions = {"voila_publisher": True}

# --- Sync to bucket ---------------------------------------------------------------------
# The bucket and the per-user prefix ({username} is the JupyterHub user, else the Unix user).
c.BucketSync.bucket = "research-notebooks"
c.BucketSync.prefix_template = "users/{username}/"
# An S3-compatible store (Ceph RGW, SeaweedFS, MinIO); leave empty for AWS S3.
# c.BucketSync.endpoint_url = "https://s3.example.org"
c.BucketSync.region = "eu-west-1"
# Credentials: on a spawned node, the user's own short-lived credentials in the file the node
# agent keeps current ($HYBRID_S3_CREDENTIALS_FILE, docs/security.md); elsewhere the standard
# boto3 chain. Never put keys here.
# Sync by itself every 15 minutes, and once more when the server stops (culler, spot end).
c.BucketSync.periodic_interval = 15 * 60
c.BucketSync.sync_on_stop = True
c.BucketSync.excludes = ["*.tmp", "scratch"]

# --- Publish to Voila -------------------------------------------------------------------
# The publisher API on the public host (private network only) and the public address viewers
# use. The per-user publish token comes from $HYBRID_PUBLISHER_TOKEN (set by the hub).
c.DashboardPublisher.publisher_url = "http://10.0.2.10/api/"
c.DashboardPublisher.public_url = "https://dashboards.example.org"
# Cells with these tags never leave the server when publishing.
c.DashboardPublisher.strip_hidden_tags = ["hide", "remove-cell", "voila-hide"]
