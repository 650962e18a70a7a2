# Production JupyterHub configuration, shape 1: AWS only. Every notebook server runs on its own
# EC2 instance in the private research subnet (docs/ec2.md); the bucket is S3 with per-user
# credentials (docs/security.md).
#
# Install as /etc/jupyterhub/jupyterhub_config.py beside common_hub.py (the shared part: hub
# addresses, proxy, PostgreSQL, login, publishing, culler). Start it with
# jupyter_config/systemd/jupyterhub.service. docs/deployment.md explains every value;
# tests/integration/test_production_config.py starts a real hub with this file.
c = get_config()  # noqa: F821
load_subconfig("common_hub.py")  # noqa: F821

c.JupyterHub.spawner_class = "hybrid-ec2"

# -- EC2 --------------------------------------------------------------------------------------
# The hub's AWS access comes from its instance profile (docs/ec2.md has the IAM policy). This
# region (and endpoint_url, when set) is used by both the EC2 and the SSM client.
c.EC2Spawner.region = "eu-west-1"  # CHANGE ME
# Resolved at every spawn: the node image pipeline publishes the latest AMI id here.
c.EC2Spawner.image = "resolve:ssm:/research/jupyter-node/ami"  # CHANGE ME
# Preferred type first; the next is tried on InsufficientInstanceCapacity / Unsupported.
c.EC2Spawner.instance_types = ["m6i.xlarge", "m5.xlarge", "t3.xlarge"]
# Private research subnets, one per availability zone (also a capacity fallback). CHANGE ME.
c.EC2Spawner.subnet_ids = ["subnet-0aaaaaaaaaaaaaaaa", "subnet-0bbbbbbbbbbbbbbbb"]
# "jupyter-nodes": inbound TCP 8888 from the hub's group only; outbound 8081 to the hub, 443 to
# the S3 / SSM endpoints, 80 to the public host's private address (Publish). CHANGE ME.
c.EC2Spawner.security_group_ids = ["sg-0ccccccccccccccc"]
# The node's role has no S3 rights (code on the node can read it); empty for no role. CHANGE ME.
c.EC2Spawner.instance_profile = "jupyter-node"
c.EC2Spawner.root_volume_size = 50
c.EC2Spawner.root_volume_type = "gp3"
c.EC2Spawner.root_volume_encrypted = True
c.EC2Spawner.imdsv2_required = True
c.EC2Spawner.extra_tags = {"project": "research-cloud", "cost-center": "CHANGE-ME"}
# Distinct per hub sharing the AWS account: polling lists, and IAM scopes, instances by this tag.
c.EC2Spawner.hub_id = "research-hub-prod"
c.EC2Spawner.port = 8888
# The node image: the venv with jupyterhub-singleuser and jupyter-hybrid-cloud, and the account
# the server runs as (user-data runs as root; the server never does).
c.EC2Spawner.node_python = "/opt/jupyter/bin/python"
c.EC2Spawner.node_user = "jovyan"
c.EC2Spawner.cmd = ["/opt/jupyter/bin/jupyterhub-singleuser"]
c.EC2Spawner.default_url = "/lab"
# Boot + server start; the instance is terminated if it is not up by then.
c.EC2Spawner.start_timeout = 600
c.EC2Spawner.http_timeout = 120
# One DescribeInstances for all servers every 30 s; the hub reads the cache when it polls.
c.EC2Spawner.status_refresh_interval = 30
c.EC2Spawner.poll_interval = 60

# -- the bucket ---------------------------------------------------------------------------------
# At each spawn the hub assumes the node-data role with a session policy naming only
# users/<name>/; the node gets those credentials and HYBRID_SYNC_BUCKET, HYBRID_SYNC_PREFIX and
# HYBRID_S3_REGION (without the region, sync would talk to us-east-1).
c.RemoteSpawner.bucket_credentials_issuer = "hybrid_spawner.bucket_credentials.STSIssuer"
c.STSIssuer.bucket = "research-notebooks"  # CHANGE ME
c.STSIssuer.region = "eu-west-1"  # the bucket's region. CHANGE ME
c.STSIssuer.role_arn = "arn:aws:iam::123456789012:role/jupyter-node-data"  # CHANGE ME
c.STSIssuer.duration = 3600
