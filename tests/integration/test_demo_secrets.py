"""The demo's hub shares a disk with the code researchers run (Slurm jobs, simulated nodes).

On each backend of the demo (EC2, OpenStack and Slurm node processes), notebook code tries to
read the hub's secrets and to call the hub's API as admin; every attempt must fail, and fail
because it is not allowed (PermissionError, HTTP 403), not because of a typo. Then the node is
ended outside the hub, and the next spawn on that backend must say why the last server stopped.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
import threading
from pathlib import Path

import openstack
import pytest
from openstack.config import loader

from simulators.demo_stack import DEMO_USER, DemoStack, slurm_available
from simulators.processes import wait_until
from simulators.seaweedfs import REGION
from tests.fixtures.ec2 import aws
from tests.fixtures.kernel import run_in_kernel

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(slurm_available() is not None, reason=f"the demo's Slurm cluster cannot run: {slurm_available()}"),
]

BACKENDS = {"ec2": "ec2-private", "openstack": "openstack-server", "slurm": "slurm-debug"}

PROBES = r'''
import json, os, re, urllib.request, urllib.error
_t = json.loads(TARGETS)
_r = {"uid": os.geteuid()}
def _probe(name, action):
    try:
        _r[name] = {"ok": True, "value": repr(action())[:120]}
    except urllib.error.HTTPError as e:
        _r[name] = {"ok": False, "type": "HTTPError", "code": e.code}
    except Exception as e:
        _r[name] = {"ok": False, "type": type(e).__name__, "errno": getattr(e, "errno", None)}
def _read(path):
    with open(path, "rb") as f:
        return f.read(64)
def _users(token):
    req = urllib.request.Request(os.environ["JUPYTERHUB_API_URL"] + "/users", headers={"Authorization": "token " + token})
    with urllib.request.urlopen(req, timeout=10) as reply:
        return reply.status
def _stolen_tokens():
    found = set()
    for path in _t["files"].values():
        try:
            with open(path, errors="replace") as f:
                found.update(re.findall(r"[0-9a-f]{64}", f.read()))
        except OSError:
            pass
    if not found:
        raise LookupError("no token readable")
    for token in found:  # any one the hub accepts as admin is a hole
        try:
            return _users(token)
        except urllib.error.HTTPError:
            pass
    raise LookupError("no readable token is accepted")
for _name, _path in _t["files"].items():
    _probe("read:" + _name, lambda _path=_path: _read(_path))
_probe("list:hub-dir", lambda: os.listdir(_t["hub_dir"]))
_probe("environ:hub-process", lambda: _read("/proc/%d/environ" % _t["hub_pid"]))
_probe("api-as-admin:stolen-token", _stolen_tokens)
_probe("api-as-admin:own-token", lambda: _users(os.environ["JUPYTERHUB_API_TOKEN"]))
print("PROBES " + json.dumps(_r))
'''


@pytest.fixture(scope="module")
def demo():
    # Like python -m jupyter_config.demo: a directory others may pass through (munged, jobs).
    directory = Path(tempfile.mkdtemp(prefix="hybrid-demo-secrets-"))
    os.chmod(directory, 0o711)
    stack = DemoStack(directory).start()
    try:
        yield stack
    finally:
        stack.stop()
        subprocess.run(["rm", "-rf", str(directory)], check=False)


def secret_files(stack: DemoStack) -> dict[str, str]:
    d = stack.directory
    files = {
        "hub-config": d / "hub" / "jupyterhub_config.py",
        "cookie-secret": d / "hub" / "jupyterhub_cookie_secret",
        "database": d / "hub" / "jupyterhub.sqlite",
        "openstack-admin-password": d / "openstack" / "clouds.yaml",
        "munge-key": d / "slurm" / "munge" / "munge.key",
        **{f"boot-script:{p.stem}": p for p in (d / "nodes").glob("*.user-data")},
    }
    if stack.parts["host"] is not None:
        files["publisher-secret"] = d / "hub-secrets" / "publisher-secret"
    for name, path in files.items():
        assert path.is_file(), f"{name}: {path} does not exist, the probe would prove nothing"
    return {name: str(path) for name, path in files.items()}


def end_outside_the_hub(stack: DemoStack, backend: str, child_state: dict) -> str:
    """End the node as a cloud console or an operator would; returns the name the user sees."""
    d = stack.directory
    if backend == "ec2":
        node = child_state["node_id"]
        aws("ec2", stack.urls["moto"], REGION).terminate_instances(InstanceIds=[node])
    elif backend == "openstack":
        node = child_state["node_id"]
        config = loader.OpenStackConfig(config_files=[str(d / "openstack" / "clouds.yaml")], load_envvars=False)
        openstack.connection.Connection(config=config.get_one(cloud="fake")).compute.delete_server(node)
        return child_state.get("server_name") or node  # how the spawner names it to the user
    else:
        node = str(child_state["job_id"])
        env = {**os.environ, "SLURM_CONF": str(d / "slurm" / "slurm.conf")}
        subprocess.run(["scancel", node], env=env, check=True, capture_output=True)
    return node


def spawn_and_watch(hub, user: str, server: str, options: dict) -> list[dict]:
    """POST a spawn (which blocks up to 10 s) in a thread and read its progress from the start:
    the stream replays every event while the spawn is pending, and only "ready" after."""
    answer = {}
    poster = threading.Thread(target=lambda: answer.update(r=hub.spawn(user, server, options)))
    poster.start()
    try:
        wait_until(lambda: (hub.server_model(user, server) or {}).get("pending") == "spawn", 60, "the spawn to be pending")
        return hub.progress_events(user, server, timeout=150)
    finally:
        poster.join(60)
        assert answer["r"][0] in (201, 202), answer


@pytest.mark.parametrize("backend", list(BACKENDS))
def test_notebook_code_cannot_read_hub_secrets_and_the_next_spawn_says_why_the_last_stopped(demo, backend):
    hub, profile, server = demo.parts["hub"], BACKENDS[backend], f"probe-{backend}"
    status, body = hub.spawn(DEMO_USER, server, {"profile": profile})
    assert status in (201, 202), body
    hub.wait_ready(DEMO_USER, server, timeout=150)

    targets = {"files": secret_files(demo), "hub_dir": str(demo.directory / "hub"), "hub_pid": hub.process.proc.pid}
    out = run_in_kernel(hub, DEMO_USER, server, PROBES.replace("TARGETS", repr(json.dumps(targets))))
    results = json.loads(out.split("PROBES ", 1)[1])
    assert results.pop("uid") != 0, "notebook code runs as root: it could read anything"
    assert results.pop("api-as-admin:own-token") == {"ok": False, "type": "HTTPError", "code": 403}
    assert results.pop("api-as-admin:stolen-token") == {"ok": False, "type": "LookupError", "errno": None}
    for name, outcome in results.items():
        assert outcome == {"ok": False, "type": "PermissionError", "errno": 13}, (backend, name, outcome)

    # Ended outside the hub: the hub notices, and the next spawn starts by saying so.
    child_state = hub.server_model(DEMO_USER, server)["state"]["child_state"]
    node = end_outside_the_hub(demo, backend, child_state)
    hub.wait_stopped(DEMO_USER, server, timeout=60)
    events = [e["message"] for e in spawn_and_watch(hub, DEMO_USER, server, {"profile": profile})]
    ours = [m for m in events if m != "Server requested"]
    assert ours[0].startswith("Your previous server stopped:") and node in ours[0], events
    assert "outside JupyterHub" in ours[0], events
    hub.wait_ready(DEMO_USER, server, timeout=150)
    hub.stop_server(DEMO_USER, server)
