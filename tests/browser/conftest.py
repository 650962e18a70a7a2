"""Browser tests drive Playwright's sync API, which keeps its own asyncio loop marked as
running in this thread while the browser is open. pytest-jupyter's autouse per-test loop
fixtures would pick up and try to close that loop, so they are neutralised here."""

import asyncio

import pytest

from tests.fixtures.browser import CHROMIUM, CHROMIUM_ARGS


@pytest.fixture(autouse=True)
def jp_asyncio_loop():
    loop = asyncio.new_event_loop()
    yield loop
    loop.close()


@pytest.fixture(autouse=True)
def jp_server_cleanup():
    yield


@pytest.fixture(scope="package")
def chromium():
    """Debian's Chromium, headless, shared by the browser tests. Defined here, in the
    package's conftest, so that pytest ends it when it leaves tests/browser (a package-scoped
    fixture in a plugin module would live for the whole session):
    Playwright's sync API keeps its loop marked running in this thread while it is open,
    which would disturb asyncio tests that run after the browser tests."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield browser
        browser.close()
