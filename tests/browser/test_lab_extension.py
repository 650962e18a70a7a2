"""The extension in a real JupyterLab: its buttons, menus, palette entries and status bar
item exist, and say why they are disabled when the server cannot sync or publish."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.browser.lab_page import LabPage
from tests.fixtures.browser import write_notebook

pytestmark = pytest.mark.browser

COMMANDS = {
    "Sync to Bucket",
    "Restore from Bucket",
    "Publish to Voila",
    "Open Published Dashboard",
    "Dashboard Versions…",
    "Unpublish Dashboard",
}


def test_controls_explain_a_server_without_the_server_extension(lab_server_factory, page, shots):
    # The server extension is switched off: every endpoint of /hybrid answers 404.
    server = lab_server_factory(extra_args=['--ServerApp.jpserver_extensions={"voila_publisher": False}'])
    write_notebook(server.root / "analysis.ipynb", [("code", "print(6 * 7)")], {0: "42\n"})
    lab = LabPage(page).open(server.lab_url())
    lab.open_notebook("analysis.ipynb")

    for command, label in (("hybrid:sync", "Sync"), ("hybrid:publish", "Publish")):
        button = lab.toolbar_button(command)
        expect(button).to_have_attribute("aria-disabled", "true")
        expect(button).to_have_text(label)
        expect(button).to_have_attribute("title", re.compile("server extension is not enabled"))
    status = lab.status_item()
    expect(status).to_have_text("Sync off")
    expect(status).to_have_attribute("title", re.compile("server extension is not enabled"))
    shots(page, "toolbar-disabled")

    menu = lab.open_main_menu("Cloud")
    entries = {t.strip() for t in menu.locator(".lm-Menu-item:not(.lm-mod-hidden) .lm-Menu-itemLabel").all_inner_texts() if t.strip()}
    assert entries == COMMANDS
    expect(menu.locator(".lm-Menu-item.lm-mod-disabled")).to_have_count(len(COMMANDS))
    shots(page, "main-menu")
    lab.close_menus()

    page.locator('.jp-DirListing-item[title^="Name: analysis.ipynb"]').click(button="right")
    context_menu = page.locator(".lm-Menu").last
    for label in ("Sync Selected to Bucket", "Restore Selected from Bucket", "Publish to Voila"):
        expect(context_menu.locator(".lm-Menu-itemLabel", has_text=label)).to_be_visible()
    shots(page, "file-browser-menu")
    lab.close_menus()

    # The palette lists the commands (JupyterLab hides disabled ones from view).
    palette = lab.open_palette("Bucket")
    palette_items = palette.locator(".lm-CommandPalette-item.lm-mod-disabled", has_text=re.compile("Bucket"))
    expect(palette_items).to_have_count(2)
