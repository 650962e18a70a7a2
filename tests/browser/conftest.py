"""Browser tests drive Playwright's sync API, which keeps its own asyncio loop marked as
running in this thread while the browser is open. So the browser lives here, package-scoped:
it is closed when the browser tests end, before any asyncio test of another package runs.
pytest-jupyter's autouse per-test loop fixtures would pick up and try to close Playwright's
loop, so they are neutralised for this package."""

import asyncio

import pytest

from tests.fixtures.browser import CHROMIUM, CHROMIUM_ARGS


@pytest.fixture(scope="package")
def chromium():
    """Debian's Chromium, headless, shared by the browser tests."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture(autouse=True)
def jp_asyncio_loop():
    loop = asyncio.new_event_loop()
    yield loop
    loop.close()


@pytest.fixture(autouse=True)
def jp_server_cleanup():
    yield
