"""The incidents admin page in a real browser: an admin quarantines a running server with the
button (giving a reason in the prompt), sees the incident with what was done, and releases it."""

from __future__ import annotations

import re

import pytest

from tests.fixtures.incidents import spawn_ready

pytestmark = pytest.mark.browser


def test_an_admin_quarantines_and_releases_from_the_page(incident_world, page, shots):
    world, user = incident_world, "victor"
    node = spawn_ready(world, user)["InstanceId"]

    page.goto(f"{world.hub.url}/hub/login")
    page.fill("#username_input", "admin")
    page.fill("#password_input", world.hub.password)
    page.click("#login_submit")
    page.goto(f"{world.hub.url}/hub/hybrid/incidents")
    page.once("dialog", lambda dialog: dialog.accept("phishing kit found in the home directory"))
    page.locator(f"button.quarantine[data-user='{user}']").click()

    row = page.locator("tr", has_text="phishing kit found")
    row.wait_for()
    shots(page, "quarantined")
    assert "quarantined" in row.inner_text() and node in row.inner_text()
    assert re.search(r"termination protection", row.inner_text())
    world.hub.wait_stopped(user)

    row.locator("button", has_text="Release and terminate").click()
    page.locator("tr", has_text="phishing kit found").locator("td", has_text="released").last.wait_for()
    shots(page, "released")
    _, incidents = world.hub.api("GET", "/hybrid/incidents", expect=200)
    (mine,) = [i for i in incidents["incidents"] if i["user"] == user]
    assert mine["released"] and mine["actions"][-1] == f"terminated {node}"
