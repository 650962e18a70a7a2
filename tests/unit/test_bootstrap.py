"""The bootstrap credential store and the boot script, without a hub."""

from __future__ import annotations

import asyncio
import subprocess

import pytest

from hybrid_spawner.bootstrap import handlers
from hybrid_spawner.bootstrap.credentials import BootstrapRegistry, CredentialRejected
from hybrid_spawner.bootstrap.script import render_bootstrap_script

PAYLOAD = {"environment": {"JUPYTERHUB_API_TOKEN": "api-token-secret"}, "command": ["jupyterhub-singleuser"], "port": 0}


class FakeClock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def new_registry():
    clock = FakeClock()
    return BootstrapRegistry(clock=clock), clock


async def test_credential_redeems_once_and_replay_is_refused():
    reg, _ = new_registry()
    entry, cred = reg.issue("alice", lambda: dict(PAYLOAD), ttl=60)
    answer = reg.redeem(cred)
    assert answer["environment"]["JUPYTERHUB_API_TOKEN"] == "api-token-secret"
    assert answer["report_secret"] and answer["report_secret"] != cred
    assert entry.redeemed.is_set()
    with pytest.raises(CredentialRejected) as e:
        reg.redeem(cred)
    assert e.value.reason == "replayed credential" and e.value.label == "alice"
    assert cred not in str(e.value)


async def test_expired_and_unknown_credentials_are_refused():
    reg, clock = new_registry()
    _, cred = reg.issue("bob", lambda: dict(PAYLOAD), ttl=60)
    clock.now += 61
    with pytest.raises(CredentialRejected, match="expired"):
        reg.redeem(cred)
    with pytest.raises(CredentialRejected, match="replayed"):
        reg.redeem(cred)
    with pytest.raises(CredentialRejected, match="unknown"):
        reg.redeem("not-a-credential")
    for bad in (None, "", 42, ["x"]):
        with pytest.raises(CredentialRejected, match="missing"):
            reg.redeem(bad)


async def test_registry_holds_only_hashes():
    reg, _ = new_registry()
    entry, cred = reg.issue("carol", lambda: dict(PAYLOAD), ttl=60)
    assert cred not in repr(reg.__dict__) and cred not in repr(entry)


@pytest.mark.parametrize("bad", ["8888", 8888.0, True, 0, 65536, -1, None, [8888]])
async def test_port_report_accepts_only_an_integer_port(bad):
    reg, _ = new_registry()
    entry, cred = reg.issue("dave", lambda: dict(PAYLOAD), ttl=60)
    secret = reg.redeem(cred)["report_secret"]
    with pytest.raises(ValueError):
        reg.report_port(secret, bad)
    assert not entry.port.done()
    reg.report_port(secret, 8888)
    assert await asyncio.wait_for(entry.wait_port(), 1) == 8888
    with pytest.raises(CredentialRejected, match="spent"):
        reg.report_port(secret, 8889)


async def test_report_secret_is_scoped_to_its_spawner():
    reg, _ = new_registry()
    a, cred_a = reg.issue("a", lambda: dict(PAYLOAD), ttl=60)
    b, cred_b = reg.issue("b", lambda: dict(PAYLOAD), ttl=60)
    secret_a = reg.redeem(cred_a)["report_secret"]
    reg.redeem(cred_b)
    reg.report_port(secret_a, 9000)
    assert a.port.result() == 9000 and not b.port.done()
    with pytest.raises(CredentialRejected):
        reg.report_port(cred_b, 9001)  # the credential is not a report secret


async def test_close_revokes_everything():
    reg, _ = new_registry()
    entry, cred = reg.issue("erin", lambda: dict(PAYLOAD), ttl=60)
    entry.close()
    assert reg.pending_count() == 0
    with pytest.raises(CredentialRejected):
        reg.redeem(cred)
    assert entry.port.cancelled()


def test_script_carries_url_and_credential_only():
    script = render_bootstrap_script("http://10.0.0.5:8081/hub/api/", "cred-'x", ttl=600)
    assert "export HYBRID_BOOTSTRAP_URL=http://10.0.0.5:8081/hub/api/hybrid/bootstrap" in script
    assert "export HYBRID_BOOTSTRAP_CREDENTIAL='cred-'\"'\"'x'" in script
    assert "JUPYTERHUB_API_TOKEN" not in script and "10 minute" in script
    assert script.startswith("#!/bin/bash\n")
    subprocess.run(["bash", "-n"], input=script.encode(), check=True)


def test_script_runs_as_node_user_when_asked():
    script = render_bootstrap_script("http://hub/hub/api", "c", python="/opt/jupyter/bin/python", run_as="jovyan")
    assert "runuser -u jovyan -- /opt/jupyter/bin/python -m hybrid_spawner.node_agent" in script
    subprocess.run(["bash", "-n"], input=script.encode(), check=True)


def test_handlers_are_registered_once_on_import():
    import hybrid_spawner.remote  # noqa: F401  (registers the endpoints when imported)
    from jupyterhub import handlers as hub_handlers

    handlers.register_hub_handlers()
    paths = [h[0] for h in hub_handlers.default_handlers]
    assert paths.count(handlers.BOOTSTRAP_PATH) == 1 and paths.count(handlers.PORT_PATH) == 1


def test_scheduler_directives_come_before_any_command(tmp_path):
    template = tmp_path / "job.sh.j2"
    template.write_text('{% extends "node_bootstrap.sh.j2" %}{% block directives %}\n#SBATCH --time=60{% endblock %}')
    script = render_bootstrap_script("http://hub/hub/api", "c", template=str(template))
    lines = script.splitlines()
    assert lines[1] == "#SBATCH --time=60"
    assert all(line.startswith("#") for line in lines[: lines.index("set -euo pipefail")])


def test_cloud_nodes_power_off_when_their_server_ends_and_slurm_jobs_just_end(tmp_path):
    """EC2/OpenStack scripts run the agent, then `poweroff` whatever its status; with the
    setting off (and on Slurm, where the job ends with its script) the agent is exec'd."""
    from hybrid_spawner.backends.ec2.spawner import EC2Spawner
    from hybrid_spawner.backends.slurm.spawner import SlurmSpawner

    assert EC2Spawner().power_off_when_server_ends is True
    assert SlurmSpawner().power_off_when_server_ends is False
    on = render_bootstrap_script("http://hub/hub/api", "c", run_as="jovyan", extra={"power_off": True})
    lines = [line for line in on.splitlines() if line and not line.startswith("#")]
    assert lines[-2:] == ["runuser -u jovyan -- python3 -m hybrid_spawner.node_agent || true", "poweroff"]
    subprocess.run(["bash", "-n"], input=on.encode(), check=True)
    # Run it: an agent that fails still powers the node off (a stand-in poweroff on PATH).
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "poweroff").write_text(f"#!/bin/sh\ntouch {tmp_path}/off\n")
    (bin_dir / "poweroff").chmod(0o755)
    script = render_bootstrap_script("http://hub/hub/api", "c", python="false", extra={"power_off": True})
    subprocess.run(["bash", "-c", script], env={"PATH": f"{bin_dir}:/usr/bin:/bin"}, check=True, timeout=30)
    assert (tmp_path / "off").exists()
    off = render_bootstrap_script("http://hub/hub/api", "c", extra={"power_off": False})
    assert "poweroff" not in off and "exec python3 -m hybrid_spawner.node_agent" in off


def test_a_home_volume_is_waited_for_and_mounted_before_the_agent_starts():
    script = render_bootstrap_script("http://hub/hub/api", "c", run_as="jovyan", extra={
        "home_mount_command": "hybrid-mount-home", "home_mount_point": "/home", "power_off": True})
    lines = [line for line in script.splitlines() if line and not line.startswith("#")]
    mount = lines.index("hybrid-mount-home wait /home jovyan")
    assert mount < lines.index("runuser -u jovyan -- python3 -m hybrid_spawner.node_agent || true")
    subprocess.run(["bash", "-n"], input=script.encode(), check=True)
    assert "hybrid-mount-home" not in render_bootstrap_script("http://hub/hub/api", "c")
