"""OpenStackSpawner end to end: a real hub, the OpenStack fake and the local node runner."""

from __future__ import annotations

import base64
import json
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from simulators.processes import wait_until

from simulators.openstack.stack import request_spawn, spawn_and_follow

pytestmark = pytest.mark.integration


def singleuser_env(user: str) -> dict:
    """The environment of the user's running single-user server, read from /proc."""
    for environ in Path("/proc").glob("[0-9]*/environ"):
        try:
            pairs = environ.read_bytes().split(b"\0")
        except OSError:
            continue
        env = dict(p.decode(errors="replace").split("=", 1) for p in pairs if b"=" in p)
        if env.get("JUPYTERHUB_USER") == user and env.get("JUPYTERHUB_API_TOKEN"):
            return env
    return {}


@pytest.fixture
def stack(openstack_hub):
    openstack_hub.fake.reset()
    yield openstack_hub
    for user in ("alice", "bob", "carol", "dave", "erin", "frank", "wrongcloud", "badcreds", "badimage"):
        openstack_hub.hub.stop_server(user, wait=False)


def test_spawn_and_stop_with_no_token_in_user_data_or_metadata(stack):
    hub, fake = stack.hub, stack.fake
    events = spawn_and_follow(hub, "alice")
    messages = [e.get("message", "") for e in events]
    assert events[-1].get("ready"), messages
    assert any("is building" in m for m in messages), messages
    assert any("is ACTIVE with private IP 127.42.0." in m for m in messages), messages
    assert any("notebook server is starting" in m for m in messages), messages

    [server] = fake.servers()
    assert server["status"] == "ACTIVE" and server["name"] == "jupyter-alice"
    assert server["metadata"] == {"project": "genomics", "hybrid-hub": "test-hub", "hybrid-owner": "alice",
                                  "hybrid-server": ""}
    assert server["tags"] == ["hybrid-hub:test-hub"]
    assert server["security_groups"] == ["jupyter-nodes"] and server["key_name"] == "research-key"
    model = hub.server_model("alice")
    assert model["ready"] and model["url"] == "/user/alice/"
    status, text = hub.get_via_proxy("/user/alice/api/status")
    assert status == 200, text
    assert json.loads(text)["started"]

    # No secret where project members can read it: user-data, metadata, tags.
    script = base64.b64decode(server["user_data"]).decode()
    token = wait_until(lambda: singleuser_env("alice").get("JUPYTERHUB_API_TOKEN"), what="alice's server env")
    visible = script + json.dumps(server["metadata"]) + json.dumps(server["tags"])
    assert token not in visible and hub.admin_token not in visible
    assert "JUPYTERHUB_API_TOKEN" not in script and "HYBRID_BOOTSTRAP_CREDENTIAL" in script
    # The credential in the user-data was single-use: replaying it is refused.
    credential = script.split("HYBRID_BOOTSTRAP_CREDENTIAL=", 1)[1].split()[0].strip("'\"")
    req = urllib.request.Request(f"{hub.hub_url}/api/hybrid/bootstrap", method="POST",
                                 data=json.dumps({"credential": credential}).encode())
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(req, timeout=10)
    assert err.value.code == 403
    assert token not in hub.log_text() and credential not in hub.log_text()

    hub.stop_server("alice")
    # stop() waits until Nova has deleted the server.
    assert fake.servers() == []


def test_hub_restart_recovers_running_server(stack):
    hub, fake = stack.hub, stack.fake
    assert spawn_and_follow(hub, "carol")[-1].get("ready")
    [before] = fake.servers()
    hub.restart()
    model = wait_until(lambda: hub.server_model("carol"), what="carol's server after restart")
    assert model["ready"]
    status, _ = hub.get_via_proxy("/user/carol/api/status")
    assert status == 200
    assert [s["id"] for s in fake.servers()] == [before["id"]]
    hub.stop_server("carol")
    assert fake.servers() == []


def test_a_server_that_dies_on_its_node_shuts_the_node_off_and_the_hub_deletes_it(stack):
    import os
    import signal

    hub, fake = stack.hub, stack.fake
    assert spawn_and_follow(hub, "dave")[-1].get("ready")
    [server] = fake.servers()
    pid = wait_until(lambda: singleuser_pid("dave"), what="dave's server process")
    os.kill(pid, signal.SIGKILL)
    # The boot script's poweroff: Nova shows SHUTOFF, the hub's poll deletes the server.
    wait_until(lambda: fake.servers() == [], 60, "the shut-off server deleted by the hub")
    hub.wait_stopped("dave", timeout=60)
    events = spawn_and_follow(hub, "dave")
    assert any(e.get("message", "").startswith("Your previous server stopped:") and "SHUTOFF" in e["message"]
               for e in events), [e.get("message") for e in events]
    assert events[-1].get("ready")
    hub.stop_server("dave")


def singleuser_pid(user: str) -> int | None:
    for environ in Path("/proc").glob("[0-9]*/environ"):
        try:
            env = dict(p.decode(errors="replace").split("=", 1) for p in environ.read_bytes().split(b"\0") if b"=" in p)
            cmdline = (environ.parent / "cmdline").read_bytes()
        except OSError:
            continue
        if env.get("JUPYTERHUB_USER") == user and b"jupyterhub-singleuser" in cmdline and b"node_agent" not in cmdline:
            return int(environ.parent.name)
    return None


def test_status_comes_from_one_batched_listing(stack):
    """Two running servers cost one Nova listing per refresh, not one GET per server; a failing
    listing stops nothing; a server deleted outside the hub is noticed from the listing."""
    import openstack
    from openstack.config import loader

    hub, fake = stack.hub, stack.fake
    posted = {user: request_spawn(hub, user) for user in ("alice", "bob")}  # two spawns at once
    for user, started in posted.items():
        assert hub.progress_events(user, since=started)[-1].get("ready")
    ids = {s["id"] for s in fake.servers()}
    fake.requests(clear=True)
    time.sleep(3)  # measurement window: let the 1 s refresh and 1 s hub polls run
    seen = fake.requests()
    hub_calls = [r for r in seen if r["user"] == "demo"]  # the node runner lists too, as "admin"
    listings = [r for r in hub_calls if r["path"] == "/compute/v2.1/servers/detail"]
    assert all(r["query"] == "tags=hybrid-hub%3Atest-hub" for r in listings), listings
    per_server = [r for r in hub_calls if any(r["path"].endswith(i) for i in ids)]
    assert listings and not per_server, seen
    assert len(listings) <= 5, listings  # ~1 per second for both servers together

    # Failed listings mean "unknown", never "gone": the servers stay while Nova answers 503.
    failures_before = hub.log_text().count("status refresh failed")
    fake.fail_requests("/compute/v2.1/servers/detail", status=503, method="GET")
    try:
        wait_until(lambda: hub.log_text().count("status refresh failed") > failures_before, what="a failed refresh")
        time.sleep(2)  # two more hub polls (1 s interval) during the outage
        assert hub.server_model("alice")["ready"] and hub.server_model("bob")["ready"]
    finally:
        fake.clear_failures()

    region = loader.OpenStackConfig(config_files=[str(stack.clouds_yaml)], load_envvars=False).get_one(cloud="fake")
    conn = openstack.connection.Connection(config=region)
    alice_id = next(s["id"] for s in fake.servers() if s["metadata"]["hybrid-owner"] == "alice")
    conn.compute.delete_server(alice_id)
    wait_until(lambda: hub.server_model("alice") is None, what="the hub to notice the deleted server")
    assert hub.server_model("bob")["ready"]
    hub.stop_server("bob")


def test_stop_while_building_deletes_the_server(stack):
    hub, fake = stack.hub, stack.fake
    fake.control("PUT", "/timing", {"build_seconds": 30})
    request_spawn(hub, "frank")
    wait_until(lambda: [s for s in fake.servers() if s["status"] == "BUILD"], what="a building server")
    status, body = hub.api("DELETE", "/users/frank/server")
    assert status in (202, 204), body
    wait_until(lambda: hub.server_model("frank") is None, what="the hub to stop the pending spawn")
    wait_until(lambda: fake.servers() == [], what="the building server to be deleted")


def test_build_error_shows_nova_fault_and_deletes_server(stack):
    hub, fake = stack.hub, stack.fake
    fake.inject_build_failure("No valid host was found. There are not enough hosts available.")
    events = spawn_and_follow(hub, "dave")
    assert events[-1].get("failed"), events
    assert "No valid host was found" in events[-1]["message"]
    assert "OpenStack could not start jupyter-dave" in events[-1]["message"]
    wait_until(lambda: fake.servers() == [], what="the failed server to be deleted")
    wait_until(lambda: hub.server_model("dave") is None, what="the hub to forget the failed server")


def test_quota_exceeded_gives_clear_message_and_creates_nothing(stack):
    hub, fake = stack.hub, stack.fake
    fake.set_quotas(instances=0)
    events = spawn_and_follow(hub, "erin")
    assert events[-1].get("failed"), events
    message = events[-1]["message"]
    assert "quota is exhausted" in message
    assert "Quota exceeded for instances: Requested 1, but already used 0 of 0 instances" in message
    assert fake.servers() == []


@pytest.mark.parametrize("user, words", [
    ("wrongcloud", "cloud 'no-such-cloud' is not defined in"),
    ("badcreds", "OpenStack refused the hub's credentials for cloud 'fake-badpass' (HTTP 401)"),
    ("badimage", "OpenStack image 'no-such-image' does not exist"),
])
def test_bad_settings_give_clear_message(stack, user, words):
    hub, fake = stack.hub, stack.fake
    events = spawn_and_follow(hub, user)
    assert events[-1].get("failed"), events
    assert words in events[-1]["message"]
    assert "not-the-password" not in events[-1]["message"]
    assert "not-the-password" not in hub.log_text()
    assert fake.servers() == []
