"""The researcher's whole journey on the demo stack (python -m jupyter_config.demo), in a real
browser: log in, choose the EC2 profile, watch the spawn progress, work in JupyterLab, Sync,
Publish and open the public dashboard through nginx. Then the demo stops cleanly on SIGTERM."""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
import tempfile
from pathlib import Path
from urllib.parse import urlparse

import boto3
import pytest
import requests
from playwright.sync_api import expect

from simulators.processes import ManagedProcess, child_env, port_open
from simulators.seaweedfs import ADMIN_CREDENTIALS, REGION
from simulators.demo_stack import slurm_available
from tests.browser.lab_page import LabPage
from tests.fixtures.attacks import parse_marked_json, probe_cell
from tests.fixtures.publish import LIVE, make_notebook
from voila_publisher.tokens import derive_publish_token

pytestmark = pytest.mark.browser

REPO = Path(__file__).resolve().parents[2]
SPAWN_TIMEOUT = 120_000
SLURM_AVAILABLE = slurm_available() is None  # the demo offers Slurm wherever it can run it


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """The demo as a user runs it; yields what it wrote to demo.json, then SIGTERMs it."""
    # Not under pytest's 0700 temp root: the demo's Slurm cluster (munged, jobs running as the
    # researcher's account) needs a directory other users can traverse, as the demo makes itself.
    directory = Path(tempfile.mkdtemp(prefix="hybrid-demo-test-"))
    os.chmod(directory, 0o711)
    info_file = directory / "demo.json"
    process = ManagedProcess(
        "demo",
        [sys.executable, "-m", "jupyter_config.demo", "--dir", directory],
        log_dir=tmp_path_factory.mktemp("demo-log"),
        cwd=REPO,
        env=child_env(),
        ready=info_file.exists,
        ready_timeout=180,
    )
    process.start()
    info = json.loads(info_file.read_text())
    info["process"] = process
    yield info
    process.stop(timeout=60)
    shutil.rmtree(directory, ignore_errors=True)


def ports_of(info) -> list[tuple[str, int]]:
    return [(urlparse(info[k]).hostname, urlparse(info[k]).port) for k in ("hub", "dashboards", "s3", "moto")]


def test_researcher_journey_on_the_demo(demo, page, shots):
    # Log in.
    page.goto(demo["login"])
    page.fill("#username_input", demo["user"])
    page.fill("#password_input", demo["password"])
    shots(page, "login")
    page.click("#login_submit")

    # Choose the EC2 profile and start.
    profile = page.locator("#profile-ec2-private")
    expect(profile).to_be_visible()
    # The OpenStack fake is part of a source checkout, so its profile is offered too, and so is
    # the local Slurm cluster's wherever the demo can run one (Slurm installed, running as root).
    expect(page.locator("#profile-openstack-server")).to_be_visible()
    if SLURM_AVAILABLE:
        expect(page.locator("#profile-slurm-debug")).to_be_visible()
    profile.check()
    shots(page, "choose-profile")
    page.get_by_role("button", name="Start").click()

    # The spawn page reports the instance's progress.
    page.wait_for_url(re.compile("/hub/spawn-pending/"), timeout=SPAWN_TIMEOUT)
    page.locator("summary", has_text="Event log").click()
    expect(page.locator("#progress-log")).to_contain_text(re.compile(r"Launched instance i-\w+"), timeout=SPAWN_TIMEOUT)
    shots(page, "spawn-progress")

    # JupyterLab opens on the EC2 node.
    page.wait_for_url(re.compile(f"/user/{demo['user']}/lab"), timeout=SPAWN_TIMEOUT)
    lab = LabPage(page)
    lab.wait_ready()
    shots(page, "jupyterlab")
    lab.open_notebook("welcome.ipynb")
    shots(page, "notebook")

    # Sync to bucket: the notification reports success and the notebook is in the bucket.
    lab.toolbar_button("hybrid:sync").click()
    lab.wait_toast(re.compile(rf"Synced to s3://{demo['bucket']}/users/{demo['user']}/"), "success")
    shots(page, "synced")
    s3 = boto3.client(
        "s3",
        endpoint_url=demo["s3"],
        region_name=REGION,
        aws_access_key_id=ADMIN_CREDENTIALS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=ADMIN_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
    )
    keys = {o["Key"] for o in s3.list_objects_v2(Bucket=demo["bucket"]).get("Contents", [])}
    assert f"users/{demo['user']}/welcome.ipynb" in keys

    # Publish to Voila: the notification offers the link, the dashboard shows results, no code.
    lab.toolbar_button("hybrid:publish").click()
    lab.dialog().locator("button", has_text="Publish").click()
    toast = lab.wait_toast(re.compile("is published"), "success")
    shots(page, "published")
    with page.expect_popup() as popup:
        toast.locator("button", has_text="Open dashboard").click()
    dashboard = popup.value
    assert dashboard.url.startswith(f"{demo['dashboards']}/dashboards/{demo['user']}/welcome/"), dashboard.url
    expect(dashboard.get_by_text("Wettest day: 28 mm, weekly total: 65 mm")).to_be_visible(timeout=90_000)
    assert "rain_mm" not in dashboard.content()
    # The dashboard is live: moving the slider on the public page (through nginx, to the
    # viewer's own sandboxed kernel) redraws the plot and its total.
    expect(dashboard.get_by_text("Rain over the first 7 days: 65 mm")).to_be_visible(timeout=90_000)
    plot = dashboard.locator(".jp-OutputArea-output img").first
    expect(plot).to_be_visible(timeout=30_000)
    before = plot.get_attribute("src")
    shots(dashboard, "dashboard")
    handle = dashboard.locator(".noUi-handle").first
    handle.focus()
    for _ in range(3):
        handle.press("ArrowLeft")
    expect(dashboard.get_by_text("Rain over the first 4 days: 43 mm")).to_be_visible(timeout=30_000)
    after = dashboard.locator(".jp-OutputArea-output img").first
    expect(after).to_be_visible()
    assert after.get_attribute("src") != before, "the plot did not change with the slider"
    shots(dashboard, "dashboard-slider-moved")
    dashboard.close()


def test_a_dashboard_published_on_the_demo_reaches_nothing_of_the_demo(demo):
    """The demo's public host is sandboxed like production: published code can read none of the
    hub's files (its config holds an admin token) and reach neither the hub, moto nor the bucket."""
    directory = Path(demo["directory"])
    secret = (directory / "hub-secrets" / "publisher-secret").read_text().strip()
    token = derive_publish_token(secret, demo["user"])
    ports = {name: urlparse(demo[name]).port for name in ("hub", "moto", "s3")}
    targets = {
        "secret_file": str(directory / "hub-secrets" / "publisher-secret"),
        "store_dir": str(directory / "public-host"),
        "other_dashboard_file": str(directory / "public-host" / "host-root"),
        "other_dashboard_dir": str(directory / "public-host"),
        "own_dir_file": "defaced.txt",
        "hub_secret_file": str(directory / "hub" / "jupyterhub_config.py"),
        "ports": ports,
        "planted_values": [secret],
    }
    notebook = make_notebook(("code", probe_cell(targets)), metadata=LIVE)
    answer = requests.put(f"{demo['dashboards']}/api/dashboards/{demo['user']}/attack", data=json.dumps(notebook),
                          headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"}, timeout=60)
    assert answer.status_code in (200, 201), answer.text
    page = requests.get(answer.json()["url"], timeout=120)
    results = parse_marked_json(page.text, "PROBES")
    for probe in ("read_publisher_secret", "read_hub_secret", "list_store"):
        assert not results[probe]["ok"] and results[probe]["type"] == "FileNotFoundError", (probe, results[probe])
    for name in ports:
        result = results[f"connect_{name}"]
        assert not result["ok"] and result["type"] in ("ConnectionRefusedError", "OSError"), (name, result)
    assert results["uid"] != 0


def test_demo_stops_cleanly_on_sigterm(demo):
    # Runs after the journey (same module): every port the demo served is closed afterwards.
    process = demo["process"]
    process.stop(timeout=60)
    assert process.proc.returncode == 0, process.log_tail()
    assert "demo: stopped" in process.log_text()
    still_open = [(h, p) for h, p in ports_of(demo) if port_open(h, p)]
    assert not still_open, f"still listening after the demo stopped: {still_open}"
