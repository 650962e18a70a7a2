"""End to end: restore_on_start through a real hub (EC2Spawner on moto server, node runner,
SeaweedFS with its STS). Before the server opens, the node restores the researcher's files
from the bucket, the spawn page shows how far it got, and a file that differs locally is kept
with the bucket's version beside it, which the server tells JupyterLab about."""

from __future__ import annotations

import json
import os
import time
import uuid

import pytest

from simulators.ec2sim import REGION, aws_client, hub_config, make_network
from simulators.hub import LocalHub
from simulators.moto import MOTO_CREDENTIALS
from simulators.noderunner import NodeRunnerProcess
from simulators.seaweedfs import ADMIN_CREDENTIALS, NODE_DATA_ROLE_ARN, SeaweedS3
from voila_publisher.sync.plan import conflict_copy_path

pytestmark = pytest.mark.integration

FILES = {f"analysis/run{i:02d}.ipynb": json.dumps({"cells": [], "run": i}).encode() for i in range(24)}
FILES["thesis.ipynb"] = b'{"cells": [], "version": "from the bucket"}'

CONFIG = """
c.RemoteSpawner.bucket_credentials_issuer = "hybrid_spawner.bucket_credentials.STSIssuer"
c.STSIssuer.bucket = {bucket!r}
c.STSIssuer.endpoint_url = {url!r}
c.STSIssuer.sts_endpoint_url = {url!r}
c.STSIssuer.role_arn = {role!r}
c.STSIssuer.duration = 900
c.STSIssuer.profile = "hub-sts"
c.EC2Spawner.restore_on_start = True
# The spawn request answers at once, so the test reads the progress stream from its start.
c.JupyterHub.tornado_settings = {{"slow_spawn_timeout": 0}}
# Homes that outlive a server (a cluster's shared filesystem): where a conflict can happen.
c.EC2Spawner.notebook_dir = {homes!r} + "/{{username}}"
"""


@pytest.fixture(scope="module")
def world(moto_server, tmp_path_factory):
    base = tmp_path_factory.mktemp("restore-hub")
    store = SeaweedS3(base / "s3", sts=True)
    store.start()
    bucket = store.create_bucket(f"notebooks-{uuid.uuid4().hex[:10]}")
    admin = store.client()
    for user in ("alice", "carol", "dora"):
        for rel, data in FILES.items():
            admin.put_object(Bucket=bucket, Key=f"users/{user}/{rel}", Body=data)
    shared = base / "hub-aws-credentials"
    shared.write_text(
        "[hub-sts]\n"
        f"aws_access_key_id = {ADMIN_CREDENTIALS['AWS_ACCESS_KEY_ID']}\n"
        f"aws_secret_access_key = {ADMIN_CREDENTIALS['AWS_SECRET_ACCESS_KEY']}\n"
    )
    os.chmod(shared, 0o600)
    homes = base / "homes"
    homes.mkdir()
    hub_id = f"restore-{uuid.uuid4().hex[:6]}"
    net = make_network(moto_server.url)
    config = hub_config(moto_server.url, net, hub_id, refresh=1) + CONFIG.format(
        bucket=bucket, url=store.url, role=NODE_DATA_ROLE_ARN, homes=str(homes)
    )
    runner = NodeRunnerProcess(base / "nodes", hub_id=hub_id, endpoint_url=moto_server.url, region=REGION)
    runner.env.update(MOTO_CREDENTIALS)
    runner.start()
    hub = LocalHub(base / "hub", config, env={**MOTO_CREDENTIALS, "AWS_SHARED_CREDENTIALS_FILE": str(shared)})
    hub.start()
    ec2 = aws_client("ec2", moto_server.url)
    yield {"hub": hub, "store": store, "bucket": bucket, "homes": homes}
    hub.stop()
    live = ec2.describe_instances(Filters=[{"Name": "tag:jupyterhub/hub-id", "Values": [hub_id]}])
    ids = [i["InstanceId"] for r in live["Reservations"] for i in r["Instances"] if i["State"]["Name"] != "terminated"]
    if ids:
        ec2.terminate_instances(InstanceIds=ids)
    runner.stop()
    store.stop()


def spawn_and_watch(hub, user):
    began = time.monotonic()
    status, body = hub.spawn(user)
    assert status in (201, 202), body
    events = hub.progress_events(user, since=began)
    hub.wait_ready(user, timeout=90)
    return [e["message"] for e in events]


def sync_status(hub, user) -> dict:
    status, text = hub.get_via_proxy(f"/user/{user}/hybrid/sync")
    assert status == 200, text
    return json.loads(text)


def test_an_empty_home_gets_the_bucket_files_before_the_server_opens(world):
    hub, homes = world["hub"], world["homes"]
    messages = spawn_and_watch(hub, "alice")
    home = homes / "alice"
    restored = {str(p.relative_to(home)): p.read_bytes() for p in home.rglob("*") if p.is_file() and ".hybrid-sync" not in p.parts}
    assert restored == FILES
    total = sum(len(v) for v in FILES.values())
    assert any(m.startswith("Restored your notebooks from the bucket: 25 of 25 files") for m in messages), messages
    assert f"{total} B of {total} B" in next(m for m in messages if m.startswith("Restored"))
    # The ready event comes after the restore: the server opened on the restored home.
    assert messages.index(next(m for m in messages if m.startswith("Restored"))) < len(messages) - 1
    report = sync_status(hub, "alice")["restored_at_start"]
    assert report["state"] == "done" and report["downloaded"] == 25 and report["conflict_copies"] == []
    hub.stop_server("alice")


def test_a_local_file_that_differs_stays_and_the_bucket_copy_is_beside_it(world):
    hub, homes, store, bucket = world["hub"], world["homes"], world["store"], world["bucket"]
    home = homes / "carol"
    home.mkdir()
    (home / "thesis.ipynb").write_bytes(b'{"cells": [], "version": "written on the cluster, never synced"}')
    messages = spawn_and_watch(hub, "carol")
    etag = store.client().head_object(Bucket=bucket, Key="users/carol/thesis.ipynb")["ETag"]
    copy = conflict_copy_path("thesis.ipynb", etag)
    assert (home / "thesis.ipynb").read_bytes() == b'{"cells": [], "version": "written on the cluster, never synced"}'
    assert (home / copy).read_bytes() == FILES["thesis.ipynb"]
    assert all((home / rel).read_bytes() == data for rel, data in FILES.items() if rel != "thesis.ipynb")
    assert any("1 file differed from the bucket: the bucket's copies are beside them" in m for m in messages), messages
    report = sync_status(hub, "carol")["restored_at_start"]
    assert report["conflict_copies"] == [{"path": "thesis.ipynb", "copy": copy}]
    hub.stop_server("carol")


def test_a_forged_progress_report_is_refused(world):
    import urllib.error
    import urllib.request

    hub = world["hub"]
    for body, code in (({"secret": "guess", "restore": {"state": "done"}}, 403), (b"not json", 400)):
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        req = urllib.request.Request(f"{hub.url}/hub/api/hybrid/progress", data=data, method="POST")
        with pytest.raises(urllib.error.HTTPError) as caught:
            urllib.request.urlopen(req, timeout=10)
        assert caught.value.code == code


def test_the_server_reports_its_home_and_stops_itself_through_the_hub(world):
    """GET /hybrid/home says where the work lives; POST /hybrid/stop has the hub stop the server
    with the server's own token (scope servers!server), as Lab's "Stop My Server…" does."""
    import urllib.request

    hub, homes = world["hub"], world["homes"]
    spawn_and_watch(hub, "dora")
    status, text = hub.get_via_proxy("/user/dora/hybrid/home")
    assert status == 200, text
    home = json.loads(text)
    assert home["kind"] == "ephemeral" and home["unsynced"] == 0 and home["files"] == len(FILES)
    (homes / "dora" / "new-idea.ipynb").write_text('{"cells": []}')
    home = json.loads(hub.get_via_proxy("/user/dora/hybrid/home")[1])
    assert home["unsynced"] == 1 and home["unsynced_examples"] == ["new-idea.ipynb"]

    request = urllib.request.Request(f"{hub.url}/user/dora/hybrid/stop", data=b"{}", method="POST")
    request.add_header("Authorization", f"token {hub.admin_token}")
    with urllib.request.urlopen(request, timeout=30) as answer:
        assert answer.status == 202 and json.loads(answer.read())["stopping"] is True
    hub.wait_stopped("dora", timeout=60)
    assert "dora" in hub.log_text() and hub.server_model("dora") is None


@pytest.mark.parametrize("user", ["erin"])
def test_a_stop_by_the_hub_sends_the_unsynced_work_to_the_bucket_first(world, user):
    """An admin's or the idle culler's stop ends an ephemeral node: what the researcher wrote
    since the last sync must reach the bucket before the instance goes (and come back at the
    next start)."""
    hub, homes, store, bucket = world["hub"], world["homes"], world["store"], world["bucket"]
    spawn_and_watch(hub, user)
    (homes / user / "late-result.ipynb").write_text('{"cells": [], "written": "just before the stop"}')
    hub.stop_server(user)
    body = store.client().get_object(Bucket=bucket, Key=f"users/{user}/late-result.ipynb")["Body"].read()
    assert json.loads(body)["written"] == "just before the stop"
