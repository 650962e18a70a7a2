"""SlurmSpawner.login_environment on a real Slurm: a variable the user exports in ~/.bash_profile
(as a site's `module` setup does) reaches the single-user server's environment with
"login-shell", and does not without it (so the check can fail)."""

from __future__ import annotations

import os
import pwd
import secrets
from pathlib import Path

import pytest

from simulators.processes import wait_until
from tests.fixtures.slurm import user_jobs

pytestmark = pytest.mark.integration


def server_environment(hub, user: str) -> dict:
    """The environment of ``user``'s jupyterhub-singleuser of ``hub``, read from /proc (as root)."""
    uid = pwd.getpwnam(user).pw_uid
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            if proc.stat().st_uid != uid:
                continue
            cmdline = (proc / "cmdline").read_bytes()
            if b"jupyterhub-singleuser" not in cmdline or b"node_agent" in cmdline:
                continue
            env = dict(item.split("=", 1) for item in (proc / "environ").read_text(errors="replace").split("\0") if "=" in item)
        except (OSError, KeyError):
            continue
        if env.get("JUPYTERHUB_API_URL", "").startswith(hub.hub_url):
            return env
    raise LookupError(f"no running jupyterhub-singleuser of {user} for {hub.hub_url}")


@pytest.fixture
def bash_profile(slurm_test_user):
    """The test user's ~/.bash_profile exporting a fresh marker; the old file is put back."""
    entry = pwd.getpwnam(slurm_test_user)
    path = Path(entry.pw_dir) / ".bash_profile"
    old = path.read_bytes() if path.exists() else None
    marker = secrets.token_hex(8)
    path.write_text(f"export HYBRID_LOGIN_MARK={marker}\n")
    os.chown(path, entry.pw_uid, entry.pw_gid)
    yield marker
    if old is None:
        path.unlink()
    else:
        path.write_bytes(old)


@pytest.mark.parametrize("choice, reaches", [("login-shell", True), ("none", False)])
def test_a_login_profile_variable_reaches_the_server_only_with_a_login_shell(
        make_slurm_hub, slurm_cluster, slurm_test_user, bash_profile, choice, reaches):
    hub = make_slurm_hub('c.JupyterHub.spawner_class = "hybrid-slurm"\n'
                         f'c.SlurmSpawner.login_environment = "{choice}"\n', name=f"login-{choice}")
    status, body = hub.spawn(slurm_test_user)
    assert status in (201, 202), body
    try:
        hub.wait_ready(slurm_test_user, timeout=120)
        env = server_environment(hub, slurm_test_user)
        assert env.get("JUPYTERHUB_USER") == slurm_test_user  # we are looking at the right process
        assert (env.get("HYBRID_LOGIN_MARK") == bash_profile) is reaches
    finally:
        hub.stop_server(slurm_test_user)
        wait_until(lambda: not user_jobs(slurm_cluster, slurm_test_user), timeout=60)
