"""The one-machine demo of the hybrid research cloud: ``python -m jupyter_config.demo``.

It starts, on loopback ports of this machine: moto server (EC2, SSM) with the node runner
that boots "instances" as local processes, SeaweedFS (S3), the public Voila host
(publisher + Voila, behind nginx when installed) and JupyterHub with HybridSpawner profiles
(a private EC2 instance always; a Slurm job when Slurm is installed and the demo runs as
root). See docs/demo.md.
"""
