"""jupyterhub-idle-culler as a hub service: the service and role entries for a hub config.

    from hybrid_spawner.culler import idle_culler
    service, role = idle_culler(timeout=3600)
    c.JupyterHub.services.append(service)
    c.JupyterHub.load_roles.append(role)

Pure: it builds dictionaries. Idle servers cost money on every backend (an instance, a Slurm
allocation); the culler stops a server whose last activity (browser traffic through the proxy,
or kernel activity the single-user server reports) is older than ``timeout``. A kernel that is
running a cell and producing output counts as activity, so a long computation is not culled.
"""

from __future__ import annotations

import sys

#: What the culler needs from the hub's API (JupyterHub 2+ scopes), nothing more.
CULLER_SCOPES = ("list:users", "read:users:activity", "read:servers", "delete:servers")


def idle_culler(timeout: int = 3600, cull_every: int = 300, *, name: str = "idle-culler",
                max_age: int = 0, concurrency: int = 10, python: str = sys.executable) -> tuple[dict, dict]:
    """The ``c.JupyterHub.services`` entry and the ``c.JupyterHub.load_roles`` entry."""
    if timeout <= 0 or cull_every <= 0:
        raise ValueError("idle_culler: timeout and cull_every must be positive seconds")
    command = [python, "-m", "jupyterhub_idle_culler", f"--timeout={timeout}", f"--cull-every={cull_every}",
               f"--concurrency={concurrency}"]
    if max_age:
        command.append(f"--max-age={max_age}")
    return {"name": name, "command": command}, {"name": name, "scopes": list(CULLER_SCOPES), "services": [name]}
