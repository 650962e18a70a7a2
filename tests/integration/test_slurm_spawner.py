"""SlurmSpawner alone (``spawner_class = "hybrid-slurm"``) on a real Slurm with a real hub."""

from __future__ import annotations

import json
import subprocess
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from simulators.processes import venv_bin_dir
from simulators.processes import wait_until
from tests.fixtures.slurm import server_token, user_jobs

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def hub(make_slurm_hub):
    return make_slurm_hub('c.JupyterHub.spawner_class = "hybrid-slurm"\n', name="slurm-hub")


@pytest.fixture(scope="module")
def running(hub, slurm_cluster, slurm_test_user):
    """One server of the test user, started through the REST API (shared by this module)."""
    status, body = hub.spawn(slurm_test_user)
    assert status in (201, 202), body
    hub.wait_ready(slurm_test_user, timeout=120)
    (job,) = user_jobs(slurm_cluster, slurm_test_user, states=("RUNNING",))
    return job


def scontrol(cluster, *args) -> str:
    result = subprocess.run(["scontrol", *args], env=cluster.client_env(), capture_output=True, text=True, check=True)
    return result.stdout


def test_spawn_via_rest_runs_a_job_that_answers_through_the_proxy(hub, running, slurm_test_user):
    assert running["name"] == f"jupyterhub-{slurm_test_user}"
    status, text = hub.get_via_proxy(f"/user/{slurm_test_user}/api/status")
    assert status == 200, text
    assert "last_activity" in json.loads(text)


def test_api_token_is_nowhere_in_slurm_or_the_submission(hub, running, slurm_cluster, slurm_test_user):
    token = server_token(hub, slurm_test_user)
    assert len(token) >= 16
    views = {
        "squeue": "\n".join(slurm_cluster.squeue("%all")),
        "scontrol show job": scontrol(slurm_cluster, "show", "job", "--details", running["id"]),
        "batch script": scontrol(slurm_cluster, "write", "batch_script", running["id"], "-"),
        "hub log": hub.log_text(),
    }
    for where, text in views.items():
        assert text.strip(), f"{where} is empty: the check would prove nothing"
        assert token not in text, f"API token visible in {where}"
    script = views["batch script"]
    assert "HYBRID_BOOTSTRAP_CREDENTIAL=" in script and "#SBATCH --job-name=" in script
    # The credential in the script is spent: replaying it gets 403 and no environment.
    credential = script.split("HYBRID_BOOTSTRAP_CREDENTIAL=", 1)[1].split()[0].strip("'\"")
    req = urllib.request.Request(
        f"{hub.url}/hub/api/hybrid/bootstrap",
        data=json.dumps({"credential": credential}).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(req, timeout=30)
    assert refused.value.code == 403
    assert "replayed credential" in hub.log_text()


def test_batchspawner_setattr_endpoint_is_closed_to_users(hub, running, slurm_test_user, tmp_path):
    """The user's own server token must not reach batchspawner's setattr handler."""
    token = server_token(hub, slurm_test_user)
    marker = tmp_path / "pwned"
    forged = {"port": 1, "batch_cancel_cmd": f"touch {marker}", "exec_prefix": "", "req_partition": "batch"}
    for path in ("/hub/api/batchspawner", "/hub/api/batchspawner/"):
        req = urllib.request.Request(
            f"{hub.url}{path}",
            data=json.dumps(forged).encode(),
            headers={"Content-Type": "application/json", "Authorization": f"token {token}"},
            method="POST",
        )
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(req, timeout=30)
        assert refused.value.code == 404
    # The server is untouched: still on its port, still proxied.
    model = hub.server_model(slurm_test_user)
    assert model["ready"] and not model["url"].endswith(":1/")
    assert hub.get_via_proxy(f"/user/{slurm_test_user}/api/status")[0] == 200
    assert not marker.exists()


def test_failing_squeue_stops_no_server(hub, running, slurm_cluster, slurm_test_user, squeue_shim):
    before = len(squeue_shim.calls("fail"))
    squeue_shim.set_failing(True)
    try:
        # Several failed refreshes, each followed by the hub's poll (poll_interval = 2 s).
        wait_until(lambda: len(squeue_shim.calls("fail")) >= before + 4, timeout=60, what="4 failing squeue calls")
        wait_until(lambda: "status refresh failed" in hub.log_text(), timeout=30, what="refresh failure logged")
        model = hub.server_model(slurm_test_user)
        assert model and model["ready"], model
        assert [j["id"] for j in user_jobs(slurm_cluster, slurm_test_user)] == [running["id"]]
    finally:
        squeue_shim.set_failing(False)
    assert hub.get_via_proxy(f"/user/{slurm_test_user}/api/status")[0] == 200


def test_one_squeue_call_covers_all_jobs(hub, running, squeue_shim):
    calls = squeue_shim.calls("ok")
    assert calls, "the shim saw no squeue call"
    assert all("--jobs=" in call and "--states=all" in call for call in calls)


def test_stop_cancels_the_job(hub, running, slurm_cluster, slurm_test_user):
    hub.stop_server(slurm_test_user)
    wait_until(lambda: not user_jobs(slurm_cluster, slurm_test_user), timeout=60, what="job gone from the queue")
    home = Path(f"~{slurm_test_user}").expanduser()
    log = home / f".jupyterhub-slurm-{running['id']}.log"
    assert log.exists(), "the job's output file is where the spawner says"


@pytest.fixture(scope="module")
def plain_batchspawner_hub(make_slurm_hub, slurm_cluster):
    """A hub running batchspawner's own SlurmSpawner with this package installed."""
    return make_slurm_hub(
        f"""
c.JupyterHub.spawner_class = "batchspawner.SlurmSpawner"
c.SlurmSpawner.batchspawner_singleuser_cmd = {str(venv_bin_dir() / "batchspawner-singleuser")!r}
c.SlurmSpawner.req_partition = "debug"
c.SlurmSpawner.environment = {{"SLURM_CONF": {str(slurm_cluster.conf_path)!r}}}
""",
        name="plain-batchspawner-hub",
    )


def post_batchspawner(hub, token: str, body: dict) -> int:
    req = urllib.request.Request(
        f"{hub.url}/hub/api/batchspawner",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json", "Authorization": f"token {token}"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code


def test_plain_batchspawner_still_works_but_its_callback_takes_a_port_only(
    plain_batchspawner_hub, slurm_cluster, slurm_test_user, tmp_path
):
    hub = plain_batchspawner_hub
    status, body = hub.spawn(slurm_test_user)
    assert status in (201, 202), body
    hub.wait_ready(slurm_test_user, timeout=120)  # its job reported the port through our handler
    token = server_token(hub, slurm_test_user)
    marker = tmp_path / "pwned"
    assert post_batchspawner(hub, token, {"port": 1, "batch_cancel_cmd": f"touch {marker}"}) == 400
    assert post_batchspawner(hub, token, {"exec_prefix": f"touch {marker};"}) == 400
    assert post_batchspawner(hub, token, {"port": 1}) == 409  # set once, while starting
    assert hub.get_via_proxy(f"/user/{slurm_test_user}/api/status")[0] == 200
    hub.stop_server(slurm_test_user)
    wait_until(lambda: not user_jobs(slurm_cluster, slurm_test_user), timeout=60, what="job cancelled")
    assert not marker.exists()
