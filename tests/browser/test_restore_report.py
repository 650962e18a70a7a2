"""JupyterLab tells the researcher what the restore at start (restore_on_start) could not
settle: the node restored into the server's directory before it opened, a file differed, and
the bucket's version sits beside it. Said once per start, not at every page load."""

from __future__ import annotations

import json
import re

import pytest
from playwright.sync_api import expect

from hybrid_spawner.bootstrap.restore_step import run_restore
from simulators.processes import child_env
from simulators.seaweedfs import ADMIN_CREDENTIALS, REGION
from tests.browser.lab_page import LabPage
from tests.fixtures.browser import LabServer, write_notebook
from voila_publisher.sync.plan import conflict_copy_path

pytestmark = pytest.mark.browser


def test_lab_announces_the_bucket_copies_kept_beside_conflicting_files(seaweedfs, tmp_path, page, shots):
    import uuid

    bucket = seaweedfs.create_bucket(f"restore-{uuid.uuid4().hex[:12]}")
    s3 = seaweedfs.client()
    s3.put_object(Bucket=bucket, Key="users/alice/thesis.ipynb", Body=json.dumps({"cells": [], "v": "bucket"}).encode())
    s3.put_object(Bucket=bucket, Key="users/alice/notes.ipynb", Body=b'{"cells": []}')
    env = {
        **ADMIN_CREDENTIALS,
        "AWS_DEFAULT_REGION": REGION,
        "AWS_EC2_METADATA_DISABLED": "true",
        "HYBRID_SYNC_BUCKET": bucket,
        "HYBRID_SYNC_PREFIX": "users/alice/",
        "HYBRID_S3_ENDPOINT_URL": seaweedfs.url,
    }
    server = LabServer(tmp_path / "lab", env)
    # What the node agent does before it starts the server: restore into the server's root.
    write_notebook(server.root / "thesis.ipynb", [("code", "print('written on the node, never synced')")])
    reports = []
    job = run_restore({"root": str(server.root)}, child_env(env), reports.append, deadline=1e12)
    assert job["state"] == "done" and reports[-1]["conflicts"] == 1
    etag = s3.head_object(Bucket=bucket, Key="users/alice/thesis.ipynb")["ETag"]
    copy = conflict_copy_path("thesis.ipynb", etag)
    server.start()
    try:
        lab = LabPage(page).open(server.lab_url())
        toast = lab.wait_toast(re.compile("1 file differed from the bucket"), "warning")
        expect(toast).to_contain_text("from the bucket: thesis.ipynb (yours kept")
        expect(page.locator(f'.jp-DirListing-item[title^="Name: {copy}"]')).to_be_visible()
        shots(page, "restore-conflict-announced")

        # Once per start: a reload of the page does not say it again.
        page.reload()
        lab.wait_ready()
        page.wait_for_timeout(3000)
        expect(lab.toast(re.compile("differed from the bucket"))).to_have_count(0)
    finally:
        server.stop()
