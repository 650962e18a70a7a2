# Production JupyterHub configuration, shape 2: AWS + OpenStack + Slurm behind one spawn page.
# The researcher picks a profile (docs/profiles.md); each profile's backend is configured below
# (docs/ec2.md, docs/openstack.md, docs/slurm.md). One bucket for all of them (here an
# S3-compatible store with STS, reachable from every backend's nodes).
#
# Install as /etc/jupyterhub/jupyterhub_config.py beside common_hub.py. The Slurm backend runs
# `sudo -u <user> sbatch`: add jupyter_config/systemd/jupyterhub.service.d/slurm.conf to the unit
# and the sudoers rule of docs/slurm.md. tests/integration/test_production_config.py starts a
# real hub with this file.
c = get_config()  # noqa: F821
load_subconfig("common_hub.py")  # noqa: F821

c.JupyterHub.spawner_class = "hybrid"
c.HybridSpawner.start_timeout = 900  # at least every backend's own start_timeout
c.HybridSpawner.profiles = [
    {"slug": "ec2", "display_name": "Private cloud VM (AWS)", "backend": "ec2", "default": True,
     "cost_per_hour": 0.192,
     "options": {"instance_type": {"trait": "instance_type", "choices": {  # tried before instance_types
         "m6i.xlarge": {"display_name": "m6i.xlarge: 4 vCPU, 16 GB ($0.192/h)"},
         "r6i.xlarge": {"display_name": "r6i.xlarge: 4 vCPU, 32 GB ($0.252/h)"}}}}},
    {"slug": "openstack", "display_name": "University cloud server (OpenStack)", "backend": "openstack",
     "overrides": {"flavor": "m1.large"}},
    {"slug": "slurm", "display_name": "HPC node (Slurm)", "backend": "slurm",
     "options": {"cpus": {"trait": "req_nprocs", "min": 1, "max": 16, "default": 4}}},
    {"slug": "slurm-gpu", "display_name": "HPC node with one A100 (Slurm)", "backend": "slurm",
     "allowed_groups": ["gpu-users"],  # CHANGE ME
     "overrides": {"req_partition": "gpu", "req_gres": "gpu:a100:1", "req_runtime": "04:00:00"}},
]

# -- the bucket: one S3-compatible store with STS (Ceph RGW, MinIO, SeaweedFS), all backends --
c.RemoteSpawner.bucket_credentials_issuer = "hybrid_spawner.bucket_credentials.STSIssuer"
c.STSIssuer.bucket = "research-notebooks"  # CHANGE ME
c.STSIssuer.endpoint_url = "https://object-store.research.internal"  # CHANGE ME
c.STSIssuer.sts_endpoint_url = "https://object-store.research.internal"  # CHANGE ME
c.STSIssuer.region = "us-east-1"  # the store's region name (HYBRID_S3_REGION on the nodes)
c.STSIssuer.role_arn = "arn:aws:iam::::role/jupyter-node-data"  # CHANGE ME
c.STSIssuer.duration = 3600

# -- AWS ----------------------------------------------------------------------------------------
c.EC2Spawner.region = "eu-west-1"  # CHANGE ME
c.EC2Spawner.image = "resolve:ssm:/research/jupyter-node/ami"  # CHANGE ME
c.EC2Spawner.instance_types = ["m6i.xlarge", "m5.xlarge"]
c.EC2Spawner.subnet_ids = ["subnet-0aaaaaaaaaaaaaaaa"]  # CHANGE ME
c.EC2Spawner.security_group_ids = ["sg-0ccccccccccccccc"]  # CHANGE ME
c.EC2Spawner.instance_profile = ""  # no role: the bucket is not S3 here
c.EC2Spawner.root_volume_size = 50
c.EC2Spawner.extra_tags = {"project": "research-cloud"}
c.EC2Spawner.hub_id = "research-hub-prod"
c.EC2Spawner.node_python = "/opt/jupyter/bin/python"
c.EC2Spawner.node_user = "jovyan"
c.EC2Spawner.cmd = ["/opt/jupyter/bin/jupyterhub-singleuser"]
c.EC2Spawner.start_timeout = 600

# -- OpenStack ----------------------------------------------------------------------------------
# An application credential of the hub's service account, in a 0640 root:jupyterhub file.
c.OpenStackSpawner.cloud = "research"  # CHANGE ME
c.OpenStackSpawner.clouds_yaml = "/etc/jupyterhub/clouds.yaml"
c.OpenStackSpawner.image = "jupyter-node-2024"  # CHANGE ME
c.OpenStackSpawner.flavor = "m1.large"  # CHANGE ME
c.OpenStackSpawner.networks = ["research-private"]  # CHANGE ME
c.OpenStackSpawner.security_groups = ["jupyter-nodes"]
c.OpenStackSpawner.extra_metadata = {"project": "research-cloud"}
c.OpenStackSpawner.hub_id = "research-hub-prod"
c.OpenStackSpawner.node_python = "/opt/jupyter/bin/python"
c.OpenStackSpawner.node_user = "jovyan"
c.OpenStackSpawner.cmd = ["/opt/jupyter/bin/jupyterhub-singleuser"]
c.OpenStackSpawner.start_timeout = 600

# -- Slurm ----------------------------------------------------------------------------------------
# Jobs run as the researcher's own Unix account (same name as the hub user), started with
# `sudo -u <user> sbatch` by the hub's account (docs/slurm.md has the sudoers rule).
c.SlurmSpawner.req_partition = "batch"  # CHANGE ME
c.SlurmSpawner.req_account = "jupyter"  # CHANGE ME
c.SlurmSpawner.req_runtime = "08:00:00"
c.SlurmSpawner.req_memory = "8G"
# A Python every compute node has (shared filesystem), with jupyter-hybrid-cloud installed.
c.SlurmSpawner.node_python = "/software/jupyter/bin/python"  # CHANGE ME
c.SlurmSpawner.cmd = ["/software/jupyter/bin/jupyterhub-singleuser"]  # CHANGE ME
c.SlurmSpawner.start_timeout = 900  # a queue wait counts
