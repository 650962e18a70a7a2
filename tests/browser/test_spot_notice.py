"""JupyterLab tells the researcher that AWS reclaims their spot server: the node's spot watch (the
real one, against the IMDSv2 stand-in) sees the notice, syncs the home through the real server
to SeaweedFS and reports it; the Lab shows a notification that stays, in the browser's own time
zone, turning from "being synced" into "synced at HH:MM, N files"."""

from __future__ import annotations

import re
import uuid
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from playwright.sync_api import expect

from hybrid_spawner.bootstrap.spot_watch import IMDSClient, SpotWatcher
from simulators.imds import InstanceMetadata, in_seconds, post_interruption
from tests.browser.lab_page import LabPage
from tests.fixtures.browser import LabServer, write_notebook

pytestmark = pytest.mark.browser

ZONE = "America/New_York"  # not the machine's: the Lab must say the researcher's own time


def test_lab_shows_the_spot_interruption_and_what_was_synced(seaweedfs, chromium, tmp_path, shots):
    from simulators.seaweedfs import ADMIN_CREDENTIALS, REGION

    bucket = seaweedfs.create_bucket(f"spot-{uuid.uuid4().hex[:12]}")
    env = {
        **ADMIN_CREDENTIALS,
        "AWS_DEFAULT_REGION": REGION,
        "AWS_EC2_METADATA_DISABLED": "true",
        "HYBRID_SYNC_BUCKET": bucket,
        "HYBRID_SYNC_PREFIX": "users/alice/",
        "HYBRID_S3_ENDPOINT_URL": seaweedfs.url,
        "HYBRID_NOTICES_WATCHED": "1",  # what the node agent sets on a spot server
    }
    server = LabServer(tmp_path / "lab", env)
    for i in range(7):
        write_notebook(server.root / f"experiment-{i}.ipynb", [("code", f"print({i})")])
    imds = InstanceMetadata("i-0spot", tmp_path / "imds", lifecycle="spot").start()
    watcher = SpotWatcher(IMDSClient(imds.url), server.url + "/", server.token, "", "", interval=1.0)
    context = chromium.new_context(viewport={"width": 1366, "height": 860}, timezone_id=ZONE)
    page = context.new_page()
    server.start()
    try:
        lab = LabPage(page).open(server.lab_url())
        watcher.start()
        page.wait_for_timeout(2500)
        expect(lab.toast(re.compile("spot interruption"))).to_have_count(0)  # no notice, nothing said

        notice = post_interruption(imds.notice_dir, in_seconds(120))
        at = datetime.fromisoformat(notice["time"].replace("Z", "+00:00")).astimezone(ZoneInfo(ZONE)).strftime("%H:%M")
        head = f"This server is reclaimed by AWS at {at} (spot interruption); "
        toast = lab.wait_toast(re.compile(re.escape(head) + r"your notebooks were synced at \d\d:\d\d, 7 files\."),
                               "warning", timeout=30_000)
        synced = seaweedfs.client().list_objects_v2(Bucket=bucket, Prefix="users/alice/")
        assert {o["Key"] for o in synced.get("Contents", [])} == {f"users/alice/experiment-{i}.ipynb" for i in range(7)}
        expect(lab.status_item()).to_contain_text("Synced", timeout=10_000)  # the status bar knows too
        shots(page, "spot-interruption-told")

        page.wait_for_timeout(7000)  # sticky: still there after a warning would have closed
        expect(toast).to_be_visible()
        assert watcher.outcome == "interruption"
    finally:
        watcher.stopped.set()
        context.close()
        server.stop()
        imds.stop()
