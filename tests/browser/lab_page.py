"""What a person does in JupyterLab, as Playwright steps: open Lab, open a notebook, press a
toolbar button, read a notification. Waits are explicit and generous (loaded machine)."""

from __future__ import annotations

import re

from playwright.sync_api import Locator, Page, expect

LAB_READY_TIMEOUT = 60_000
JOB_TIMEOUT = 60_000


class LabPage:
    def __init__(self, page: Page):
        self.page = page

    # -- navigation ----------------------------------------------------------------------
    def open(self, url: str) -> "LabPage":
        self.page.goto(url)
        self.wait_ready()
        return self

    def wait_ready(self) -> None:
        """JupyterLab's shell is up and the file browser has listed the directory."""
        self.page.wait_for_selector("#jp-main-statusbar", timeout=LAB_READY_TIMEOUT)
        self.page.wait_for_selector(".jp-DirListing-content", timeout=LAB_READY_TIMEOUT)

    def open_notebook(self, name: str) -> Locator:
        """Open ``name`` from the file browser; return its panel once the kernel is idle."""
        self.page.locator(f'.jp-DirListing-item[title^="Name: {name}"]').dblclick()
        panel = self.page.locator(".jp-NotebookPanel:not(.lm-mod-hidden)")
        expect(panel.locator(".jp-Cell").first).to_be_visible(timeout=LAB_READY_TIMEOUT)
        expect(panel.locator('.jp-Notebook-ExecutionIndicator[data-status="idle"]')).to_have_count(
            1, timeout=LAB_READY_TIMEOUT
        )
        return panel

    # -- the extension's controls ------------------------------------------------------------
    def toolbar_button(self, command: str) -> Locator:
        """The button of ``command`` in the visible notebook's toolbar."""
        return self.page.locator(
            f'.jp-NotebookPanel:not(.lm-mod-hidden) .jp-NotebookPanel-toolbar [data-command="{command}"]'
        )

    def status_item(self) -> Locator:
        return self.page.locator("#jp-main-statusbar .jp-HybridSyncStatus")

    def open_main_menu(self, label: str) -> Locator:
        self.page.locator("#jp-menu-panel .lm-MenuBar-itemLabel", has_text=re.compile(f"^{label}$")).click()
        menu = self.page.locator(".lm-Menu").last
        expect(menu).to_be_visible()
        return menu

    def open_palette(self, query: str) -> Locator:
        """Open the command palette (its shortcut, else View → Activate Command Palette) and search."""
        search = self.page.locator("#command-palette input")
        self.page.keyboard.press("Control+Shift+C")
        try:
            expect(search).to_be_visible(timeout=5000)
        except AssertionError:
            # The shortcut went to a widget that kept it (focus is not always where a person's is).
            self.open_main_menu("View").locator(".lm-Menu-itemLabel", has_text="Command Palette").first.click()
            expect(search).to_be_visible()
        search.fill(query)
        return self.page.locator("#command-palette")

    def close_menus(self) -> None:
        self.page.keyboard.press("Escape")
        self.page.keyboard.press("Escape")

    # -- notifications -----------------------------------------------------------------------
    def toast(self, text: str | re.Pattern) -> Locator:
        return self.page.locator(".Toastify__toast", has_text=text)

    def wait_toast(self, text: str | re.Pattern, kind: str, timeout: float = JOB_TIMEOUT) -> Locator:
        """Wait for a notification containing ``text`` of type success/error/warning/info."""
        toast = self.toast(text).and_(self.page.locator(f".Toastify__toast--{kind}"))
        expect(toast.first).to_be_visible(timeout=timeout)
        return toast.first

    def dialog(self) -> Locator:
        dialog = self.page.locator(".jp-Dialog")
        expect(dialog).to_be_visible()
        return dialog
