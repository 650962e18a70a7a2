"""Browser tests drive Playwright's sync API, which keeps its own asyncio loop marked as
running in this thread while the browser is open. pytest-jupyter's autouse per-test loop
fixtures would pick up and try to close that loop, so they are neutralised here."""

import asyncio

import pytest


@pytest.fixture(autouse=True)
def jp_asyncio_loop():
    loop = asyncio.new_event_loop()
    yield loop
    loop.close()


@pytest.fixture(autouse=True)
def jp_server_cleanup():
    yield
