"""A researcher's buttons against the real server side: Sync to Bucket lands the notebook
in a SeaweedFS bucket, Restore brings it back, Publish to Voila makes a dashboard on the
public host (nginx + Voila) that shows outputs and no code, and a dead S3 is reported."""

from __future__ import annotations

import re
import time

import pytest
import requests
from playwright.sync_api import expect

from simulators.processes import free_port
from tests.browser.lab_page import LabPage
from tests.fixtures.browser import CLOUD_ARGS, cloud_env, write_notebook

pytestmark = pytest.mark.browser

SECRET_SOURCE = "hidden_from_viewers = 6 * 7"
OUTPUT = "The answer is 42"
INTERNAL = "internal calibration note"
PLUGIN = "jupyter-hybrid-cloud:plugin"


def dashboard_notebook(path):
    return write_notebook(
        path,
        [
            ("markdown", "# Weekly numbers"),
            ("code", f"{SECRET_SOURCE}\nprint(f'The answer is {{hidden_from_viewers}}')"),
            # Tagged hidden: left out of the dashboard (the stripHiddenCells setting, on by default).
            ("code", f"print('{INTERNAL}')", ["hide"]),
        ],
        {1: OUTPUT + "\n", 2: INTERNAL + "\n"},
    )


def test_sync_then_restore(cloud_lab, page, shots):
    write_notebook(cloud_lab.server.root / "field-notes.ipynb", [("code", "print('sync me')")], {0: "sync me\n"})
    lab = LabPage(page).open(cloud_lab.server.lab_url())
    lab.open_notebook("field-notes.ipynb")
    sync = lab.toolbar_button("hybrid:sync")
    expect(sync).to_have_attribute("aria-disabled", "false")
    expect(sync).to_have_attribute("title", re.compile(f"s3://{cloud_lab.bucket}/users/alice/"))
    shots(page, "notebook-open")

    sync.click()
    lab.wait_toast(re.compile(rf"Synced to s3://{cloud_lab.bucket}/users/alice/: \d+ uploaded"), "success")
    shots(page, "sync-done")
    assert f"{cloud_lab.prefix}field-notes.ipynb" in cloud_lab.bucket_keys()
    expect(lab.status_item()).to_have_text(re.compile("^Synced"))

    # With sync set up, the palette offers the commands (JupyterLab hides disabled ones).
    palette = lab.open_palette("bucket")
    expect(palette.locator(".lm-CommandPalette-item:visible", has_text="Sync to Bucket")).to_be_visible()
    expect(palette.locator(".lm-CommandPalette-item:visible", has_text="Restore from Bucket")).to_be_visible()
    page.keyboard.press("Escape")

    # The notebook is lost locally; Restore from Bucket brings it back.
    (cloud_lab.server.root / "field-notes.ipynb").unlink()
    menu = lab.open_main_menu("Cloud")
    menu.locator(".lm-Menu-itemLabel", has_text="Restore from Bucket").click()
    lab.wait_toast(re.compile(r"Restored from s3://.*: 1 file restored"), "success")
    assert (cloud_lab.server.root / "field-notes.ipynb").is_file()
    expect(page.locator('.jp-DirListing-item[title^="Name: field-notes.ipynb"]')).to_be_visible()
    shots(page, "restore-done")


def test_publish_offers_the_link_and_the_dashboard_shows_outputs_only(cloud_lab, page, shots):
    dashboard_notebook(cloud_lab.server.root / "Weekly Numbers.ipynb")
    lab = LabPage(page).open(cloud_lab.server.lab_url())
    lab.open_notebook("Weekly Numbers.ipynb")
    lab.toolbar_button("hybrid:publish").click()
    dialog = lab.dialog()
    expect(dialog).to_contain_text("will be published as a dashboard")
    expect(dialog.locator('input[value="public"]')).to_be_checked()  # public unless the researcher says otherwise
    shots(page, "confirm-publish")
    dialog.locator("button", has_text="Publish").click()

    toast = lab.wait_toast(re.compile("“Weekly numbers” is published"), "success")
    shots(page, "published")
    with page.expect_popup() as popup_info:
        toast.locator("button", has_text="Open dashboard").click()
    dashboard = popup_info.value
    expected_url = f"{cloud_lab.host.url}/dashboards/{cloud_lab.owner}/weekly-numbers/"
    assert dashboard.url.startswith(expected_url), dashboard.url
    # Voila runs the notebook anew on the public host (behind nginx): outputs, no code.
    expect(dashboard.get_by_text(OUTPUT)).to_be_visible(timeout=90_000)
    expect(dashboard.get_by_text("Weekly numbers")).to_be_visible()
    content = dashboard.content()
    assert "hidden_from_viewers" not in content
    assert INTERNAL not in content
    shots(dashboard, "dashboard")
    dashboard.close()

    # Lab now knows the dashboard: Cloud → Open Published Dashboard opens the same address.
    menu = lab.open_main_menu("Cloud")
    with page.expect_popup() as popup_info:
        menu.locator(".lm-Menu-itemLabel", has_text="Open Published Dashboard").click()
    assert popup_info.value.url.startswith(expected_url)
    popup_info.value.close()

    # Unpublish (confirmed): the public link stops working, the notebook stays.
    lab.open_main_menu("Cloud").locator(".lm-Menu-itemLabel", has_text="Unpublish Dashboard").click()
    lab.dialog().locator("button", has_text="Unpublish").click()
    lab.wait_toast(re.compile("is no longer published"), "success")
    shots(page, "unpublished")
    assert requests.get(expected_url, timeout=30).status_code == 404
    assert (cloud_lab.server.root / "Weekly Numbers.ipynb").is_file()


def test_publish_unlisted_gives_a_link_that_is_not_in_the_gallery(cloud_lab, page, shots):
    dashboard_notebook(cloud_lab.server.root / "Review Draft.ipynb")
    lab = LabPage(page).open(cloud_lab.server.lab_url())
    lab.open_notebook("Review Draft.ipynb")
    lab.toolbar_button("hybrid:publish").click()
    dialog = lab.dialog()
    dialog.locator('input[value="unlisted"]').check()
    shots(page, "confirm-publish-unlisted")
    dialog.locator("button", has_text="Publish").click()
    toast = lab.wait_toast(re.compile("is published as unlisted"), "success")
    with page.expect_popup() as popup_info:
        toast.locator("button", has_text="Open dashboard").click()
    dashboard = popup_info.value
    assert re.match(re.escape(cloud_lab.host.url) + r"/unlisted/[A-Za-z0-9_-]{43}/", dashboard.url), dashboard.url
    expect(dashboard.get_by_text(OUTPUT)).to_be_visible(timeout=90_000)
    shots(dashboard, "unlisted-dashboard")
    link = dashboard.url
    dashboard.close()
    gallery = requests.get(cloud_lab.host.url + "/", timeout=30).text
    assert "review-draft" not in gallery
    assert requests.get(f"{cloud_lab.host.url}/dashboards/{cloud_lab.owner}/review-draft/", timeout=30).status_code == 404

    # Publishing again offers a new link; taking it revokes the old one.
    lab.toolbar_button("hybrid:publish").click()
    dialog = lab.dialog()
    expect(dialog.locator('input[value="unlisted"]')).to_be_checked()  # the dashboard's current choice
    dialog.locator('input[name="hybrid-new-link"]').check()
    dialog.locator("button", has_text="Publish").click()
    lab.wait_toast(re.compile(r"is published as unlisted \(version 2\)"), "success")
    assert requests.get(link, timeout=30).status_code == 404


def test_a_researcher_rolls_a_dashboard_back_to_an_earlier_version(cloud_lab, page, shots):
    path = cloud_lab.server.root / "Tide Table.ipynb"
    write_notebook(path, [("markdown", "# Tide table"), ("code", "print('first edition')")], {1: "first edition\n"})
    lab = LabPage(page).open(cloud_lab.server.lab_url())
    item = page.locator('.jp-DirListing-item[title^="Name: Tide Table.ipynb"]')
    for edition in ("first edition", "second edition"):
        # Published from the file browser (the notebook is not open, so what is on disk is what goes).
        write_notebook(path, [("markdown", "# Tide table"), ("code", f"print('{edition}')")], {1: edition + "\n"})
        item.click(button="right")
        page.locator(".lm-Menu").last.locator(".lm-Menu-itemLabel", has_text="Publish to Voila").click()
        lab.dialog().locator("button", has_text="Publish").click()
        lab.wait_toast(re.compile(r"“Tide table” is published"), "success")
    url = f"{cloud_lab.host.url}/dashboards/{cloud_lab.owner}/tide-table/"
    assert "second edition" in requests.get(url, timeout=120).text

    item.click(button="right")
    page.locator(".lm-Menu").last.locator(".lm-Menu-itemLabel", has_text="Dashboard Versions").click()
    dialog = lab.dialog()
    expect(dialog).to_contain_text("Version 2: Tide table")
    expect(dialog.locator('input[name="hybrid-version"][value="2"]')).to_be_disabled()  # the current one
    dialog.locator('input[name="hybrid-version"][value="1"]').check()
    shots(page, "dashboard-versions")
    dialog.locator("button", has_text="Roll back").click()
    lab.wait_toast(re.compile(r"shows version 1 again \(published as version 3\)"), "success")
    page_text = requests.get(url, timeout=120).text
    assert "first edition" in page_text and "second edition" not in page_text


def test_sync_with_s3_down_shows_an_error(lab_server_factory, public_host, page, shots):
    dead_s3 = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    env = cloud_env(dead_s3, "notebooks", public_host)
    # This server has no publisher configured: Publish must say what the admin must set.
    for name in ("HYBRID_PUBLISHER_URL", "HYBRID_PUBLISHER_TOKEN", "HYBRID_PUBLIC_URL"):
        env.pop(name)
    server = lab_server_factory(
        env, extra_args=[*CLOUD_ARGS, "--BucketSync.max_attempts=2", "--BucketSync.sync_on_stop=False"]
    )
    write_notebook(server.root / "draft.ipynb", [("code", "1 + 1")], {})
    lab = LabPage(page).open(server.lab_url())
    lab.open_notebook("draft.ipynb")
    publish = lab.toolbar_button("hybrid:publish")
    expect(publish).to_have_attribute("aria-disabled", "true")
    expect(publish).to_have_attribute("title", re.compile("the admin must set HYBRID_PUBLISHER_URL"))
    lab.toolbar_button("hybrid:sync").click()
    toast = lab.wait_toast(re.compile("Sync to bucket failed"), "error")
    expect(toast.locator("button", has_text="Try again")).to_be_visible()
    expect(lab.status_item()).to_have_text("Sync failed")
    shots(page, "sync-error")


def test_settings_auto_sync_and_publish_without_confirmation(cloud_lab, page, shots):
    # Every 3 seconds, and no confirmation dialog before publishing.
    cloud_lab.server.put_settings(PLUGIN, {"autoSyncMinutes": 0.05, "confirmBeforePublish": False})
    try:
        dashboard_notebook(cloud_lab.server.root / "Auto Synced.ipynb")
        lab = LabPage(page).open(cloud_lab.server.lab_url())
        lab.open_notebook("Auto Synced.ipynb")
        # Nobody presses Sync, yet the notebook reaches the bucket and the status bar says so.
        key = f"{cloud_lab.prefix}Auto Synced.ipynb"
        deadline = time.monotonic() + 60
        while key not in cloud_lab.bucket_keys():
            assert time.monotonic() < deadline, "automatic sync never uploaded the notebook"
            time.sleep(0.5)
        expect(lab.status_item()).to_have_text(re.compile("^Synced"))
        shots(page, "auto-synced")

        lab.toolbar_button("hybrid:publish").click()
        lab.wait_toast(re.compile("is published"), "success")
        expect(page.locator(".jp-Dialog")).to_have_count(0)
        shots(page, "published-without-dialog")
    finally:
        cloud_lab.server.put_settings(PLUGIN, {})
