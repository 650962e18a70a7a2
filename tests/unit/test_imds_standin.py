"""The IMDSv2 stand-in (simulators/imds.py) answers as AWS documents it, and the node runner
gives each node one and reclaims a spot instance when its notice's time has come."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request

import pytest

from simulators.imds import InstanceMetadata, in_seconds, post_interruption, post_rebalance, reclaim_due
from simulators.noderunner import NodeRunner
from tests.unit.test_ec2_noderunner import MemorySource


def call(url: str, method: str = "GET", headers: dict | None = None) -> tuple[int, str]:
    request = urllib.request.Request(url, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=5) as answer:
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, ""


@pytest.fixture
def imds(tmp_path):
    server = InstanceMetadata("i-0spot", tmp_path / "notices", lifecycle="spot").start()
    yield server
    server.stop()


def token(imds, ttl: int = 60) -> str:
    status, value = call(imds.url + "/latest/api/token", "PUT", {"X-aws-ec2-metadata-token-ttl-seconds": str(ttl)})
    assert status == 200 and value
    return value


def test_tokens_as_imdsv2_requires_them(imds):
    action = imds.url + "/latest/meta-data/spot/instance-action"
    assert call(imds.url + "/latest/meta-data/instance-id")[0] == 401  # no token: IMDSv1 is off
    assert call(action, headers={"X-aws-ec2-metadata-token": "forged"})[0] == 401
    assert call(imds.url + "/latest/api/token", "PUT")[0] == 400  # the TTL header is required
    for ttl in ("0", "21601", "soon"):
        assert call(imds.url + "/latest/api/token", "PUT", {"X-aws-ec2-metadata-token-ttl-seconds": ttl})[0] == 400
    forwarded = {"X-aws-ec2-metadata-token-ttl-seconds": "60", "X-Forwarded-For": "10.0.0.9"}
    assert call(imds.url + "/latest/api/token", "PUT", forwarded)[0] == 403
    good = {"X-aws-ec2-metadata-token": token(imds)}
    assert call(imds.url + "/latest/meta-data/instance-id", headers=good) == (200, "i-0spot")
    assert call(imds.url + "/latest/meta-data/instance-life-cycle", headers=good) == (200, "spot")
    expiring = {"X-aws-ec2-metadata-token": token(imds, ttl=1)}
    time.sleep(1.2)
    assert call(imds.url + "/latest/meta-data/instance-id", headers=expiring)[0] == 401


def test_notices_appear_when_aws_posts_them(imds):
    headers = {"X-aws-ec2-metadata-token": token(imds)}
    action = imds.url + "/latest/meta-data/spot/instance-action"
    rebalance = imds.url + "/latest/meta-data/events/recommendations/rebalance"
    assert call(action, headers=headers)[0] == 404
    assert call(rebalance, headers=headers)[0] == 404
    posted = post_rebalance(imds.notice_dir)
    assert json.loads(call(rebalance, headers=headers)[1]) == posted
    notice = post_interruption(imds.notice_dir, in_seconds(120))
    status, body = call(action, headers=headers)
    assert status == 200 and json.loads(body) == notice and notice["action"] == "terminate"
    assert notice["time"].endswith("Z") and len(notice["time"]) == 20
    assert reclaim_due(imds.notice_dir) is None  # two minutes to go
    post_interruption(imds.notice_dir, in_seconds(-1))
    assert reclaim_due(imds.notice_dir) == "terminate"


class ReclaimingSource(MemorySource):
    def __init__(self):
        super().__init__()
        self.reclaimed: list[tuple[str, str, float]] = []

    def lifecycle(self, instance_id):
        return "spot"

    def reclaim(self, instance_id, action):
        self.reclaimed.append((instance_id, action, time.time()))
        self.states[instance_id] = "terminated"


def test_the_runner_gives_each_node_its_metadata_and_reclaims_at_the_notice_time(tmp_path):
    src = ReclaimingSource()
    src.states = {"i-1": "running"}
    src.scripts = {"i-1": "#!/bin/bash\necho \"imds=$HYBRID_IMDS_ENDPOINT\"\nexec sleep 60\n"}
    runner = NodeRunner(src, tmp_path, status_file=tmp_path / "status.json")
    try:
        runner.step()
        imds = runner.metadata["i-1"]
        log_path = tmp_path / "node-i-1.log"
        deadline = time.monotonic() + 10
        while "imds=" not in (log_path.read_text() if log_path.exists() else "") and time.monotonic() < deadline:
            time.sleep(0.05)
        assert f"imds={imds.url}" in log_path.read_text()
        headers = {"X-aws-ec2-metadata-token": token(imds)}
        assert call(imds.url + "/latest/meta-data/instance-life-cycle", headers=headers) == (200, "spot")

        notice = post_interruption(runner.notice_dir("i-1"), in_seconds(2))
        due = time.time() + 2
        runner.step()
        assert src.reclaimed == []  # not before its time
        while not src.reclaimed and time.time() < due + 5:
            runner.step()
            time.sleep(0.1)
        ((instance, action, when),) = src.reclaimed
        assert (instance, action) == ("i-1", "terminate")
        assert notice["time"] <= time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(when))
        assert when < due + 2
        runner.step()  # the terminated instance's node and its metadata service end
        assert "i-1" not in runner.nodes and "i-1" not in runner.metadata
        assert "i-1" in json.loads((tmp_path / "status.json").read_text())["reclaimed"]
        with pytest.raises(OSError):
            urllib.request.urlopen(imds.url + "/latest/meta-data/instance-id", timeout=2)
    finally:
        runner.stop_all()
