"""JupyterHub spawners for a research group's hybrid compute: EC2, OpenStack and Slurm."""

from hybrid_spawner._version import __version__

__all__ = ["__version__"]
