"""The node runner's rules with an in-memory instance source and real processes."""

from __future__ import annotations

import time

from simulators.noderunner import EC2InstanceSource, InstanceSource, NodeRunner, SourceInstance, load_source


class MemorySource(InstanceSource):
    def __init__(self):
        self.states: dict[str, str] = {}
        self.scripts: dict[str, str] = {}
        self.fail = False

    def list_instances(self):
        if self.fail:
            raise ConnectionError("endpoint down")
        return [SourceInstance(i, s) for i, s in self.states.items()]

    def boot_script(self, instance_id):
        return self.scripts.get(instance_id)


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split()[2] != "Z"
    except FileNotFoundError:
        return False


def wait_dead(pid: int, timeout: float = 10) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not alive(pid):
            return True
        time.sleep(0.05)
    return False


def test_boots_running_instances_once_and_ends_them_with_the_instance(tmp_path):
    src = MemorySource()
    src.states = {"i-1": "pending"}
    src.scripts = {"i-1": "#!/bin/bash\necho \"port=$HYBRID_NODE_PORT ip=$HYBRID_NODE_BIND_IP args=$HYBRID_NODE_EXTRA_ARGS\"\nexec sleep 60\n"}
    runner = NodeRunner(src, tmp_path, allow_root=True, status_file=tmp_path / "status.json")
    runner.step()
    assert runner.nodes == {}  # pending: not booted yet
    src.states["i-1"] = "running"
    runner.step()
    proc, port = runner.nodes["i-1"]
    pid = proc.proc.pid
    log_path = tmp_path / "node-i-1.log"
    deadline = time.monotonic() + 10
    while "port=" not in (log_path.read_text() if log_path.exists() else "") and time.monotonic() < deadline:
        time.sleep(0.05)
    assert f"port={port} ip=127.0.0.1 args=--allow-root" in log_path.read_text()
    src.fail = True
    runner.step()  # a failing listing ends nothing
    assert alive(pid)
    src.fail = False
    src.states["i-1"] = "terminated"
    runner.step()
    assert wait_dead(pid) and "i-1" in runner.finished and runner.nodes == {}
    src.states["i-1"] = "running"
    runner.step()
    assert runner.nodes == {}, "a boot script runs once per instance, like user-data"


def test_a_vanished_instance_ends_its_node_and_the_node_env_has_no_cloud_secrets(tmp_path, monkeypatch):
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "do-not-leak")
    src = MemorySource()
    src.states = {"i-2": "running"}
    src.scripts = {"i-2": "#!/bin/bash\nenv\nexec sleep 60\n"}
    runner = NodeRunner(src, tmp_path)
    runner.step()
    pid = runner.nodes["i-2"][0].proc.pid
    log_path = tmp_path / "node-i-2.log"
    deadline = time.monotonic() + 10
    while "PATH=" not in log_path.read_text() and time.monotonic() < deadline:
        time.sleep(0.05)
    del src.states["i-2"]
    runner.step()
    assert wait_dead(pid)
    env = log_path.read_text()
    assert "PATH=" in env and "do-not-leak" not in env


def test_sources_are_found_by_name_or_import_path():
    assert load_source("ec2") is EC2InstanceSource
    assert load_source("simulators.noderunner:InstanceSource") is InstanceSource
