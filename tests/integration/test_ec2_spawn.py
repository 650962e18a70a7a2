"""EC2Spawner end to end: real hub + proxy, moto server for EC2/SSM, the node runner booting user-data."""

from __future__ import annotations

import json
from html import unescape
import re
import threading
from pathlib import Path

import pytest

from simulators.processes import wait_until
import requests

pytestmark = pytest.mark.integration


def spawn_and_watch(world, user: str, server: str = "") -> list[dict]:
    """POST a spawn and return its progress events (the POST blocks for up to 10 s, so it runs
    in a thread while this one attaches to the event stream as soon as the spawn is pending)."""
    world.hub.ensure_user(user)
    answer = {}
    poster = threading.Thread(target=lambda: answer.update(r=world.hub.spawn(user, server)))
    poster.start()
    try:
        wait_until(lambda: (world.hub.server_model(user, server) or {}).get("pending") == "spawn" or not poster.is_alive(),
                 60, "the spawn to be pending")
        return world.hub.progress_events(user, server)
    finally:
        poster.join(60)
        assert answer["r"][0] in (201, 202, 500), answer


def only_instance(world, owner: str, server: str = "") -> dict:
    found = [
        i
        for i in world.live_instances(owner)
        if {t["Key"]: t["Value"] for t in i.get("Tags", [])}.get("jupyterhub/server-name") == server
    ]
    assert len(found) == 1, found
    return found[0]


def single_user_token(pid: int) -> str:
    """The API token in the environment of the single-user server started under ``pid``."""

    def descendants(p: int):
        for task in Path(f"/proc/{p}/task").iterdir():
            for child in (task / "children").read_text().split():
                yield int(child)
                yield from descendants(int(child))

    for child in descendants(pid):
        try:
            env = Path(f"/proc/{child}/environ").read_bytes().split(b"\0")
        except OSError:
            continue
        for entry in env:
            if entry.startswith(b"JUPYTERHUB_API_TOKEN="):
                return entry.split(b"=", 1)[1].decode()
    raise AssertionError("no single-user server process with an API token under the node")


def login(hub, user: str) -> requests.Session:
    s = requests.Session()
    page = s.get(f"{hub.url}/hub/login", timeout=30)
    r = s.post(
        f"{hub.url}/hub/login",
        data={"username": user, "password": hub.password, "_xsrf": form_xsrf(page.text)},
        timeout=30,
    )
    assert r.ok, r.text[:500]
    return s


def form_xsrf(html: str) -> str:
    return re.search(r'name="_xsrf" value="([^"]+)"', html).group(1)


def spawn_form_action(html: str) -> str:
    """The spawn form's target (JupyterHub puts the XSRF token in its query string)."""
    return unescape(re.search(r'id="spawn_form"\s+action="([^"]+)"', html).group(1))


def check_no_token_leak_and_no_replay(world, inst: dict, pid: int, user: str) -> None:
    """The API token is in no user-data, tag or hub log line; the spent credential is refused."""
    token = single_user_token(pid)
    assert len(token) >= 32
    user_data = world.user_data(inst["InstanceId"])
    assert token not in user_data and "JUPYTERHUB_API_TOKEN" not in user_data
    assert all(token not in t["Value"] for t in inst["Tags"])
    assert token not in world.hub.log_text()

    credential = world.credential_in(inst["InstanceId"])
    url = f"{world.hub.url}/hub/api/hybrid/bootstrap"
    replay = requests.post(url, json={"credential": credential}, timeout=30)
    assert replay.status_code == 403 and token not in replay.text
    assert requests.post(url, json={"credential": "x" * 43}, timeout=30).status_code == 403
    port_url = f"{world.hub.url}/hub/api/hybrid/port"
    assert requests.post(port_url, json={"secret": credential, "port": 1}, timeout=30).status_code == 403

    log = world.hub.log_text()
    assert "refused bootstrap credential" in log and f"replayed credential (spawner {user}" in log
    assert credential not in log


def test_spawn_via_rest_reaches_server_through_proxy_leaks_no_token_and_stop_terminates(ec2_world):
    world = ec2_world
    events = spawn_and_watch(world, "alice")
    messages = [e["message"] for e in events]
    assert events[-1].get("ready"), messages
    assert any(m.startswith("Launched instance i-") and "(t3.micro)" in m for m in messages), messages
    assert any("Node running at" in m for m in messages), messages
    assert any("notebook server is starting" in m for m in messages), messages

    status, text = world.hub.get_via_proxy("/user/alice/api/status")
    assert status == 200 and "started" in json.loads(text), text

    inst = only_instance(world, "alice")
    tags = {t["Key"]: t["Value"] for t in inst["Tags"]}
    assert tags["Name"] == "jupyter-alice"
    assert tags["jupyterhub/owner"] == "alice" and tags["jupyterhub/hub-id"] == world.hub_id
    assert tags["project"] == "hybrid-tests"
    assert inst["ImageId"] == world.ami, "the AMI named by the SSM parameter must be used"
    assert inst["SubnetId"] == world.subnet and "PublicIpAddress" not in inst
    assert [g["GroupId"] for g in inst["NetworkInterfaces"][0]["Groups"]] == [world.sg]
    assert inst["MetadataOptions"]["HttpTokens"] == "required"

    # get_state holds what a restarted hub needs to find the node again.
    _, user = world.hub.api("GET", "/users/alice", expect=200)
    state = user["servers"][""]["state"]
    assert state["node_id"] == inst["InstanceId"] and state["instance_type"] == "t3.micro"
    assert state["node_ip"] == "127.0.0.1" and isinstance(state["node_port"], int) and state["spawner_version"]

    pid = world.node_pid(inst["InstanceId"])
    check_no_token_leak_and_no_replay(world, inst, pid, "alice")

    world.hub.stop_server("alice")
    assert world.instances("alice")[0]["State"]["Name"] in ("shutting-down", "terminated")
    assert not world.live_instances("alice")
    wait_until(lambda: world.node_finished(inst["InstanceId"]), 30, "the node process to end")
    with pytest.raises(ProcessLookupError):
        import os

        os.kill(pid, 0)
    # stopping again is harmless
    world.hub.stop_server("alice")


def test_named_server_with_instance_type_fallback(ec2_world):
    world = ec2_world
    world.override("bob", instance_types=["t3.nano", "t3.small"])  # the hub config refuses t3.nano
    events = spawn_and_watch(world, "bob", "analysis")
    messages = [e["message"] for e in events]
    assert events[-1].get("ready"), messages
    assert any("No t3.nano capacity" in m and "InsufficientInstanceCapacity" in m for m in messages), messages
    inst = only_instance(world, "bob", "analysis")
    assert inst["InstanceType"] == "t3.small"
    tags = {t["Key"]: t["Value"] for t in inst["Tags"]}
    assert tags["Name"] == "jupyter-bob-analysis" and tags["jupyterhub/server-name"] == "analysis"
    status, _ = world.hub.get_via_proxy("/user/bob/analysis/api/status")
    assert status == 200
    world.hub.stop_server("bob", "analysis")
    assert not world.live_instances("bob")


def test_spawn_page_form_post_starts_a_server(ec2_world):
    world, hub = ec2_world, ec2_world.hub
    hub.ensure_user("carol")
    s = login(hub, "carol")
    page = s.get(f"{hub.url}/hub/spawn/carol", timeout=30)
    assert "private EC2 instance" in page.text
    r = s.post(hub.url + spawn_form_action(page.text), data={}, timeout=60)
    assert r.ok, r.text[:500]
    hub.wait_ready("carol")
    # The user's own browser session reaches the server through the proxy (OAuth included).
    r = s.get(f"{hub.url}/user/carol/lab", timeout=60)
    assert r.status_code == 200 and "JupyterLab" in r.text and r.url.startswith(f"{hub.url}/user/carol/")
    assert only_instance(world, "carol")["Tags"]
    hub.stop_server("carol")
    assert not world.live_instances("carol")


def test_out_of_band_termination_is_detected_and_explained(ec2_world):
    world = ec2_world
    assert spawn_and_watch(world, "frank")[-1].get("ready")
    inst = only_instance(world, "frank")
    world.ec2.terminate_instances(InstanceIds=[inst["InstanceId"]])

    world.hub.wait_stopped("frank", timeout=30)
    wait_until(lambda: world.node_finished(inst["InstanceId"]), 30, "the node process to end")
    _, user = world.hub.api("GET", "/users/frank?include_stopped_servers=1", expect=200)
    message = user["servers"][""]["state"]["last_stop_message"]
    assert inst["InstanceId"] in message and "outside JupyterHub" in message

    # The user sees it as the first event of the next start.
    events = spawn_and_watch(world, "frank")
    notes = [e["message"] for e in events if "Your previous server stopped" in e["message"]]
    assert notes and inst["InstanceId"] in notes[0], events
    assert events[-1].get("ready")
    world.hub.stop_server("frank")


def test_start_timeout_leaves_no_instance(ec2_world, tmp_path):
    world = ec2_world
    silent = tmp_path / "never-calls-back.sh.j2"
    silent.write_text("#!/bin/bash\n# boots, but never redeems {{ credential | length }} chars\nsleep 600\n")
    world.override("grace", start_timeout=8, bootstrap_template=str(silent))
    events = spawn_and_watch(world, "grace")
    assert events[-1].get("failed"), events
    assert "Timed out" in events[-1]["message"] and "has been terminated" in events[-1]["message"]
    assert not world.live_instances("grace")
    (inst,) = world.instances("grace")
    wait_until(lambda: world.node_finished(inst["InstanceId"]), 30, "the node process to end")
