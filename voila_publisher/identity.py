"""Whose server this is: one answer for sync (the bucket prefix) and publish (the owner)."""

from __future__ import annotations

import getpass
import os


def current_username() -> str:
    """The JupyterHub user of this single-user server ($JUPYTERHUB_USER), else the login name
    (a server started outside a hub, or the ``jupyter hybrid-sync`` command)."""
    return os.environ.get("JUPYTERHUB_USER") or getpass.getuser()
