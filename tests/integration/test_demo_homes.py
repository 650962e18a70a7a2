"""The demo loses what a real cloud loses, and keeps what a real deployment keeps.

On EC2 the node serves its own disk, removed with the instance; what the researcher wrote comes
back at the next start from the bucket (the hub has the server sync before the stop, restore on
start brings it). On OpenStack the node serves a Cinder volume kept across stops. Both homes
start with the image's welcome notebook (RemoteSpawner.home_skeleton). Before, every simulated
node served the hub machine's homes/<user>, so a stop lost nothing on the demo while it loses
everything on a real cloud.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from pathlib import Path

import pytest

from simulators.demo_stack import DemoStack
from simulators.processes import wait_until
from tests.fixtures.contents import call

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def demo():
    directory = Path(tempfile.mkdtemp(prefix="hybrid-demo-homes-"))
    os.chmod(directory, 0o711)
    stack = DemoStack(directory, with_slurm=False).start()
    try:
        yield stack
    finally:
        stack.stop()
        subprocess.run(["rm", "-rf", str(directory)], check=False)


def start(hub, user: str, profile: str) -> tuple[str, str]:
    """Start ``user``'s server on ``profile``; returns (server URL, the user's token)."""
    hub.ensure_user(user)
    _, body = hub.api("POST", f"/users/{user}/tokens", {"note": "demo homes"}, expect=201)
    status, answer = hub.spawn(user, options={"profile": profile})
    assert status in (201, 202), answer
    if status == 202:
        events = hub.progress_events(user, timeout=180)
        assert events and events[-1].get("ready"), events
    return f"{hub.url}/user/{user}", body["token"]


def listing(server: str, token: str) -> set[str]:
    status, body = call(f"{server}/api/contents/", token)
    assert status == 200, body
    return {item["name"] for item in body["content"]}


def write(server: str, token: str, name: str, text: str) -> None:
    status, body = call(f"{server}/api/contents/{name}", token, "PUT", {"type": "file", "format": "text", "content": text})
    assert status in (200, 201), body


def node_of(hub, user: str) -> str:
    return hub.server_model(user)["state"]["child_state"]["node_id"]


def test_an_ec2_home_goes_with_the_instance_and_synced_work_comes_back(demo):
    hub, user = demo.parts["hub"], "ellen"
    server, token = start(hub, user, "ec2-private")
    assert "welcome.ipynb" in listing(server, token)  # the image's starter file in a new home
    first = node_of(hub, user)
    disk = demo.directory / "nodes" / "disks" / first
    write(server, token, "field-notes.txt", "rain 12 mm\n")
    assert (disk / "field-notes.txt").read_text() == "rain 12 mm\n"  # served from the instance's own disk
    assert not (demo.directory / "homes" / user / "field-notes.txt").exists()

    hub.stop_server(user)  # the hub has the server sync first; then the instance is terminated
    wait_until(lambda: not disk.exists(), 30, "the terminated instance's disk removed")

    server, token = start(hub, user, "ec2-private")
    assert node_of(hub, user) != first  # a new instance with a new, empty disk ...
    status, body = call(f"{server}/api/contents/field-notes.txt", token)
    assert status == 200 and body["content"] == "rain 12 mm\n", body  # ... restored from the bucket
    hub.stop_server(user)


def test_an_openstack_home_is_a_volume_kept_across_stops(demo):
    hub, user = demo.parts["hub"], "olga"
    volumes_dir = demo.directory / "openstack" / "nodes" / "volumes"
    server, token = start(hub, user, "openstack-server")
    assert "welcome.ipynb" in listing(server, token)
    volumes = list(volumes_dir.iterdir())
    assert len(volumes) == 1, volumes
    write(server, token, "draft.txt", "results pending\n")
    assert (volumes[0] / "draft.txt").read_text() == "results pending\n"
    first = node_of(hub, user)

    hub.stop_server(user)
    server, token = start(hub, user, "openstack-server")
    assert node_of(hub, user) != first  # a new server, the same volume
    status, body = call(f"{server}/api/contents/draft.txt", token)
    assert status == 200 and body["content"] == "results pending\n", body
    assert list(volumes_dir.iterdir()) == volumes
    hub.stop_server(user)
