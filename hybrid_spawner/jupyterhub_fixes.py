"""A JupyterHub defect this package works around in the hub process, until upstream fixes it.

``User.get_spawner(name, replace_failed=True)`` (JupyterHub 2.2 to 6.1 at least) discards a
spawner whose last start failed and builds a new one, but does not keep the new one in
``user.spawners``. The REST handler that starts a server holds that new spawner while
``User.spawn`` asks ``user.spawners`` again and gets a third one, which is the one that starts.
The handler then reads ``pending`` on the idle second spawner and answers 201 ("ready") for a
server still starting; a client that believes it and stops the server gets a 500 ("pending
spawn"). Seen in the 50-researcher soak: after a spawn failed (a quota), the next one was
reported ready while its Slurm job was not even submitted.

The replacement is kept in ``user.spawners``, so every caller sees the same spawner, as the
method's docstring promises. Applied once, when the package's spawners are imported by the hub.
"""

from __future__ import annotations

from jupyterhub.user import User

_original_get_spawner = User.get_spawner


def _get_spawner_keeping_the_replacement(self, server_name="", replace_failed=False):
    spawner = self.spawners[server_name]
    if replace_failed and spawner._failed:
        self.log.debug("Discarding failed spawner %s", spawner._log_name)
        self.spawners.pop(server_name)
        spawner = self.spawners[server_name]  # built by the dict's factory, and kept there
    return spawner


def apply() -> None:
    if User.get_spawner is _original_get_spawner:
        User.get_spawner = _get_spawner_keeping_the_replacement
