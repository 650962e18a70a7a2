"""jupyterhub-idle-culler as a real hub service (hybrid_spawner.culler) on a real hub with
EC2Spawner: an idle server is culled (its instance terminated, or with stop_action = "stop" only
stopped, kept for the next start), one whose kernel is working is not."""

from __future__ import annotations

import json
import secrets
import threading
import time

import pytest

from hybrid_spawner.culler import CULLER_SCOPES, idle_culler
from simulators.ec2sim import make_network
from simulators.hub import LocalHub
from simulators.moto import MOTO_CREDENTIALS
from simulators.noderunner import NodeRunnerProcess
from simulators.processes import wait_until
from simulators.ec2sim import REGION, aws_client
from tests.fixtures.ec2 import ec2_hub_config
from tests.fixtures.kernel import run_in_kernel

pytestmark = pytest.mark.integration

IDLE_TIMEOUT = 25

CULLER_CONFIG = """
from hybrid_spawner.culler import idle_culler
_service, _role = idle_culler(timeout={timeout}, cull_every=5)
c.JupyterHub.services.append(_service)
c.JupyterHub.load_roles.append(_role)
# Activity reaches the hub every few seconds (defaults: 5 minutes), so the test takes a minute.
c.JupyterHub.last_activity_interval = 3
c.Spawner.environment = {{"JUPYTERHUB_ACTIVITY_INTERVAL": "3"}}
"""


def test_the_culler_entries_ask_for_no_more_than_culling_needs():
    service, role = idle_culler(timeout=600, cull_every=60, max_age=86400)
    assert service["command"][1:3] == ["-m", "jupyterhub_idle_culler"]
    assert "--timeout=600" in service["command"] and "--cull-every=60" in service["command"] and "--max-age=86400" in service["command"]
    assert role == {"name": "idle-culler", "scopes": list(CULLER_SCOPES), "services": ["idle-culler"]}
    assert "admin:users" not in role["scopes"]  # it stops servers, it never deletes users
    with pytest.raises(ValueError):
        idle_culler(timeout=0)


@pytest.fixture(scope="module")
def culled_world(moto_server, tmp_path_factory):
    directory = tmp_path_factory.mktemp("culler")
    hub_id = f"test-hub-{secrets.token_hex(4)}"
    net = make_network(moto_server.url)
    config = ec2_hub_config(moto_server.url, hub_id, directory / "overrides.json", net) + CULLER_CONFIG.format(timeout=IDLE_TIMEOUT)
    runner = NodeRunnerProcess(directory / "nodes", hub_id=hub_id, endpoint_url=moto_server.url, region=REGION)
    runner.env.update(MOTO_CREDENTIALS)
    runner.start()
    # The per-user overrides file the test config's pre_spawn_hook reads.
    (directory / "overrides.json").write_text(json.dumps({"cull-stop": {"stop_action": "stop"}}))
    hub = LocalHub(directory / "hub", config, env=MOTO_CREDENTIALS)
    try:
        hub.start(timeout=90)
        yield hub, aws_client("ec2", moto_server.url), hub_id
    finally:
        hub.stop()
        runner.stop()


def test_an_idle_server_is_culled_and_a_working_one_is_not(culled_world):
    hub, ec2, hub_id = culled_world
    for user in ("cull-idle", "cull-busy", "cull-stop"):
        status, body = hub.spawn(user)
        assert status in (201, 202), body
    for user in ("cull-idle", "cull-busy", "cull-stop"):
        hub.wait_ready(user, timeout=120)

    # The busy researcher's kernel prints every 2 s for longer than the idle timeout twice over.
    busy_code = f"import time\nfor i in range({IDLE_TIMEOUT * 2 // 2 + 15}):\n    print('step', i, flush=True)\n    time.sleep(2)\nprint('done')"
    outcome = {}
    worker = threading.Thread(target=lambda: outcome.setdefault("out", run_in_kernel(hub, "cull-busy", "", busy_code, timeout=300)))
    started = time.monotonic()
    worker.start()
    try:
        wait_until(lambda: hub.server_model("cull-idle") is None, timeout=IDLE_TIMEOUT + 90, what="the idle server to be culled")
        # Past the idle timeout for the busy one as well, and it is still there.
        while time.monotonic() - started < IDLE_TIMEOUT + 15:
            time.sleep(1)
        assert hub.server_model("cull-busy") is not None, "the server with a working kernel was culled"
    finally:
        worker.join(timeout=300)
    assert "done" in outcome.get("out", ""), "the busy kernel's computation did not finish"
    # Culled means stopped through the spawner: the idle researcher's instance is terminated ...
    def idle_instances(user="cull-idle"):
        found = ec2.describe_instances(Filters=[{"Name": "tag:jupyterhub/owner", "Values": [user]}])
        return [i["State"]["Name"] for r in found["Reservations"] for i in r["Instances"]]
    wait_until(lambda: idle_instances() and all(s in ("shutting-down", "terminated") for s in idle_instances()),
               timeout=60, what="the culled server's instance to be terminated")
    assert "idle-culler" in hub.log_text()
    # ... and with stop_action = "stop" only stopped, kept for the next start.
    assert hub.server_model("cull-stop") is None, "the idle server with stop_action = stop was not culled"
    wait_until(lambda: idle_instances("cull-stop") == ["stopped"], timeout=60, what="the culled instance stopped")
    _, model = hub.api("GET", "/users/cull-stop?include_stopped_servers=1", expect=200)
    assert model["servers"][""]["state"]["parked_node"]["node_id"]
