"""The status bar says where the work lives, and "Stop My Server…" warns before an ephemeral
home's unsynced files would go with the server (a real JupyterLab, a real bucket)."""

from __future__ import annotations

import re
import uuid

import pytest
from playwright.sync_api import expect

from simulators.seaweedfs import ADMIN_CREDENTIALS, REGION
from tests.browser.lab_page import LabPage
from tests.fixtures.browser import write_notebook

pytestmark = pytest.mark.browser


def test_an_ephemeral_home_shows_its_unsynced_files_and_stopping_offers_a_sync(
    seaweedfs, lab_server_factory, page, shots
):
    bucket = seaweedfs.create_bucket(f"home-{uuid.uuid4().hex[:12]}")
    env = {
        **ADMIN_CREDENTIALS,
        "AWS_DEFAULT_REGION": REGION,
        "AWS_EC2_METADATA_DISABLED": "true",
        "HYBRID_SYNC_BUCKET": bucket,
        "HYBRID_SYNC_PREFIX": "users/alice/",
        "HYBRID_S3_ENDPOINT_URL": seaweedfs.url,
        "HYBRID_HOME_KIND": "ephemeral",
    }
    # expose_app_in_browser: the test runs the command itself (outside a hub it is not in the menu).
    server = lab_server_factory(env, extra_args=["--LabApp.expose_app_in_browser=True"])
    write_notebook(server.root / "analysis.ipynb", [("code", "print(6 * 7)")], {0: "42\n"})
    lab = LabPage(page).open(server.lab_url())

    status = lab.status_item()
    expect(status).to_have_text("ephemeral: not synced")
    expect(status).to_have_attribute("data-state", "unsynced")
    expect(status).to_have_attribute("title", re.compile("does not outlive it.*1 file changed since the last sync"))
    shots(page, "ephemeral-unsynced")

    page.evaluate("() => { void window.jupyterapp.commands.execute('hybrid:stop-server'); }")
    dialog = lab.dialog()
    expect(dialog).to_contain_text("1 file has changed since the last sync (analysis.ipynb)")
    expect(dialog.get_by_role("button", name="Stop without syncing")).to_be_visible()
    shots(page, "stop-warning")
    dialog.get_by_role("button", name="Sync, then stop").click()

    lab.wait_toast(re.compile("Synced to s3://"), "success")
    keys = {o["Key"] for o in seaweedfs.client().list_objects_v2(Bucket=bucket).get("Contents", [])}
    assert keys == {"users/alice/analysis.ipynb"}
    # No hub started this server: the stop is refused with what to do instead.
    lab.wait_toast(re.compile("not started by JupyterHub"), "error")
    expect(status).to_have_text(re.compile(r"^ephemeral: synced"))
    expect(status).not_to_have_attribute("data-state", "unsynced")
