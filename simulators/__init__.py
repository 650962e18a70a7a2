"""Local stand-ins for cloud parts, shared by the one-machine demo, the tests and the benchmarks.

Everything here starts *real* processes (moto server, SeaweedFS, JupyterHub, nginx, Slurm
daemons, the OpenStack fake) on loopback with free ports; nothing patches code in-process.

This package lives in the repository and is not part of the wheel (see docs/architecture.md):
it starts root daemons and needs Debian packages, and has no place on a production hub.
Processes it starts find it through ``PYTHONPATH`` (see :func:`simulators.processes.child_env`).
"""

from pathlib import Path

#: The source checkout this package runs from.
REPO_ROOT = Path(__file__).resolve().parent.parent
