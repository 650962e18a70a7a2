"""Local stand-ins for cloud parts, shared by the one-machine demo and the tests.

Everything here starts *real* processes (moto server, SeaweedFS, JupyterHub, nginx, Slurm
daemons) on loopback with free ports; nothing patches code in-process.
"""
