"""The spawners' metrics on a real hub's /hub/metrics, scraped as Prometheus would (a service
token with only the read:metrics scope): spawns by backend and outcome, spawn duration, status
refreshes and their errors, running servers by profile."""

from __future__ import annotations

import secrets
import urllib.error
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from simulators.processes import wait_until
from tests.fixtures.ec2_hybrid import ec2_hybrid_hub, live_instances

pytestmark = pytest.mark.integration

PROFILES = [
    {"slug": "small", "display_name": "Small VM", "backend": "ec2", "default": True,
     "overrides": {"instance_types": ["t3.micro"]}},
    # Its image parameter does not exist: the spawn fails in check_options, before any launch.
    {"slug": "broken", "display_name": "VM from a missing image", "backend": "ec2",
     "overrides": {"image": "resolve:ssm:/hybrid/tests/no-such-image"}},
]

METRICS_CONFIG = """
c.JupyterHub.spawner_class = "hybrid"
c.HybridSpawner.profiles = {profiles!r}
# Prometheus's own identity: a service whose token may read the metrics and nothing else.
c.JupyterHub.services.append({{"name": "prometheus", "api_token": {token!r}}})
c.JupyterHub.load_roles.append({{"name": "metrics-reader", "scopes": ["read:metrics"], "services": ["prometheus"]}})

# Fault injection: while this file exists, EC2 refuses DescribeInstances (a throttled or broken
# endpoint), so the shared status cache's refreshes fail.
import pathlib as _pathlib
_OUTAGE = _pathlib.Path({outage!r})
_refuse_nano = c.EC2Spawner.client_customizer

def _customize(client, service):
    _refuse_nano(client, service)
    if service != "ec2":
        return
    from botocore.awsrequest import AWSResponse

    def outage(params, **kwargs):
        if _OUTAGE.exists():
            error = {{"Code": "RequestLimitExceeded", "Message": "Request limit exceeded."}}
            return AWSResponse("", 503, {{}}, None), {{"Error": error, "ResponseMetadata": {{}}}}

    client.meta.events.register("before-call.ec2.DescribeInstances", outage)

c.EC2Spawner.client_customizer = _customize
"""


@pytest.fixture(scope="module")
def metrics_hub(moto_server, tmp_path_factory):
    directory = tmp_path_factory.mktemp("metrics-hub")
    token = secrets.token_hex(32)
    outage = directory / "ec2-outage"
    config = METRICS_CONFIG.format(profiles=PROFILES, token=token, outage=str(outage))
    with ec2_hybrid_hub(moto_server.url, directory, config) as world:
        world.token, world.outage = token, outage
        yield world


def get_metrics(hub, token: str | None) -> tuple[int, str]:
    req = urllib.request.Request(f"{hub.url}/hub/metrics")
    if token:
        req.add_header("Authorization", f"token {token}")
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode(errors="replace")


def scrape(world) -> dict[tuple, float]:
    """{(sample name, sorted labels): value} from one scrape with Prometheus's token."""
    status, text = get_metrics(world.hub, world.token)
    assert status == 200, text[:300]
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(samples: dict, name: str, **labels) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def test_metrics_need_the_read_metrics_scope(metrics_hub):
    hub = metrics_hub.hub
    assert get_metrics(hub, None)[0] == 403
    hub.ensure_user("nosy")
    _, token = hub.api("POST", "/users/nosy/tokens", {"note": "no metrics scope"}, expect=201)
    assert get_metrics(hub, token["token"])[0] == 403
    status, text = get_metrics(hub, metrics_hub.token)
    assert status == 200
    for name in ("hybrid_spawns_total", "hybrid_spawn_duration_seconds", "hybrid_status_refreshes_total",
                 "hybrid_running_servers", "hybrid_nodes_reconciled_total", "hybrid_quarantines_total"):
        assert f"# TYPE {name} " in text, name
    assert "jupyterhub_" in text  # the hub's own figures are still there beside ours


def test_a_spawn_a_status_outage_and_a_stop_move_the_counters(metrics_hub):
    world, hub = metrics_hub, metrics_hub.hub
    before = scrape(world)
    status, body = hub.spawn("mia", options={"profile": "small"})
    assert status in (201, 202), body
    hub.wait_ready("mia", timeout=120)

    running = scrape(world)
    assert value(running, "hybrid_spawns_total", backend="ec2", outcome="success") == \
        value(before, "hybrid_spawns_total", backend="ec2", outcome="success") + 1
    count = value(running, "hybrid_spawn_duration_seconds_count", backend="ec2")
    assert count == value(before, "hybrid_spawn_duration_seconds_count", backend="ec2") + 1
    took = value(running, "hybrid_spawn_duration_seconds_sum", backend="ec2") - value(before, "hybrid_spawn_duration_seconds_sum", backend="ec2")
    assert 0.1 < took < 120, took
    assert value(running, "hybrid_running_servers", backend="ec2", profile="small") == 1
    # The refresh loop runs every second while a server is tracked.
    wait_until(lambda: value(scrape(world), "hybrid_status_refreshes_total", backend="ec2")
               > value(running, "hybrid_status_refreshes_total", backend="ec2") + 1, 30, "status refreshes")

    # The server's own /metrics (sync's figures), reached through the proxy with a hub token
    # allowed to access servers; Prometheus's metrics-only token is not let in.
    status, text = hub.get_via_proxy("/user/mia/metrics")
    assert status == 200 and "# TYPE hybrid_sync_jobs_total counter" in text, (status, text[:300])
    status, _ = hub.get_via_proxy("/user/mia/metrics", token=world.token)
    assert status != 200

    errors = ("hybrid_status_refresh_errors_total", {"backend": "ec2", "error": "ClientError"})
    world.outage.touch()
    try:
        wait_until(lambda: value(scrape(world), errors[0], **errors[1]) > value(running, errors[0], **errors[1]),
                   30, "a failed status refresh to be counted")
    finally:
        world.outage.unlink()
    # A failing refresh never counts as "gone": the server is still there.
    assert hub.server_model("mia").get("ready")

    hub.stop_server("mia")
    assert value(scrape(world), "hybrid_running_servers", backend="ec2", profile="small") == 0
    assert not live_instances(world.ec2, world.hub_id, "mia")


def test_a_failed_spawn_counts_as_failure_and_runs_nothing(metrics_hub):
    world, hub = metrics_hub, metrics_hub.hub
    before = scrape(world)
    status, body = hub.spawn("noor", options={"profile": "broken"})
    if status in (201, 202):  # slower than the hub's slow_spawn_timeout: it fails in the background
        wait_until(lambda: not (hub.server_model("noor") or {}).get("pending"), 60, "the spawn to fail")
    after = scrape(world)
    assert value(after, "hybrid_spawns_total", backend="ec2", outcome="failure") == \
        value(before, "hybrid_spawns_total", backend="ec2", outcome="failure") + 1
    assert value(after, "hybrid_spawns_total", backend="ec2", outcome="success") == \
        value(before, "hybrid_spawns_total", backend="ec2", outcome="success")
    # Failures take no place in the duration histogram, and nothing runs.
    assert value(after, "hybrid_spawn_duration_seconds_count", backend="ec2") == \
        value(before, "hybrid_spawn_duration_seconds_count", backend="ec2")
    assert value(after, "hybrid_running_servers", backend="ec2", profile="broken") == 0
    assert not live_instances(world.ec2, world.hub_id, "noor")


def test_a_restarted_hub_counts_the_servers_it_finds_again(metrics_hub):
    world, hub = metrics_hub, metrics_hub.hub
    status, body = hub.spawn("omar", options={"profile": "small"})
    assert status in (201, 202), body
    hub.wait_ready("omar", timeout=120)
    hub.restart()  # a new process: its registry starts from zero and must find omar's server
    try:
        restored = scrape(world)
        assert value(restored, "hybrid_running_servers", backend="ec2", profile="small") == 1
        assert value(restored, "hybrid_spawns_total", backend="ec2", outcome="success") == 0, "a restore is not a spawn"
    finally:
        hub.stop_server("omar")
    assert value(scrape(world), "hybrid_running_servers", backend="ec2", profile="small") == 0
    assert not live_instances(world.ec2, world.hub_id, "omar")
