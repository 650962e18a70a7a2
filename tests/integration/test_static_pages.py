"""Dashboards without live widgets are rendered once, in the sandbox, at publish time, and nginx
serves that page to every viewer with no kernel; dashboards that need a kernel stay live."""

from __future__ import annotations

import os
import time

import pytest
import requests

from simulators.processes import wait_until
from simulators.voila_host import PublicHost
from tests.fixtures.publish import LIVE, PublisherApi, make_notebook

pytestmark = pytest.mark.integration

WIDGET = "import ipywidgets as w\nslider = w.IntSlider(value=3, description='n')\nslider"


def _kernel_pids() -> set[int]:
    found = set()
    for p in os.listdir("/proc"):
        if p.isdigit():
            try:
                with open(f"/proc/{p}/cmdline", "rb") as f:
                    if b"ipykernel_launcher" in f.read():
                        found.add(int(p))
            except OSError:
                pass
    return found


def test_a_report_is_served_as_its_prerendered_page_without_a_kernel(publisher_api, unique_slug, public_host):
    nb = make_notebook(("markdown", "# Quarterly"), ("code", "SOURCE_ONLY = 6 * 7\nprint('total', SOURCE_ONLY)"))
    assert publisher_api.put("alice", unique_slug, nb).status_code == 201
    kernels_before = _kernel_pids()
    pages = [publisher_api.render("alice", unique_slug) for _ in range(5)]
    for page in pages:
        assert page.status_code == 200
        assert '"kernelId"' not in page.text  # not Voila's page: the file rendered at publish time
        assert "total 42" in page.text and "Quarterly" in page.text
        assert "SOURCE_ONLY" not in page.text  # sources stripped, as Voila does
        assert "no-store" in page.headers.get("Cache-Control", "")
    assert _kernel_pids() - kernels_before == set(), "viewing a static dashboard started a kernel"
    # The page is nginx's file, not something a viewer can ask for directly.
    assert requests.get(f"{public_host.url}/_static_page/alice/{unique_slug}/v000001.html", timeout=30).status_code == 404


def test_republishing_replaces_the_static_page_and_unpublishing_removes_it(publisher_api, unique_slug, public_host):
    for n in (1, 2):
        assert publisher_api.put("alice", unique_slug, make_notebook(("code", f"print('edition', {n} * 100)"))).status_code in (200, 201)
        page = publisher_api.render("alice", unique_slug)
        assert '"kernelId"' not in page.text and f"edition {n * 100}" in page.text
    static_dir = public_host.dashboards_dir.parent / "static" / "alice" / unique_slug
    assert (static_dir / "v000002.html").is_file()
    assert publisher_api.delete("alice", unique_slug).status_code == 204
    assert publisher_api.render("alice", unique_slug).status_code == 404
    assert not static_dir.exists()


@pytest.mark.parametrize(
    "cells, metadata, why",
    [
        ([("code", WIDGET)], None, "widgets"),
        ([("code", "print('before')"), ("code", "1 / 0")], None, "a failed cell"),
        ([("code", "print('fresh numbers')")], LIVE, "the author's choice"),
    ],
)
def test_dashboards_that_need_a_kernel_stay_live(publisher_api, unique_slug, public_host, cells, metadata, why):
    assert publisher_api.put("alice", unique_slug, make_notebook(*cells, metadata=metadata)).status_code == 201, why
    page = publisher_api.render("alice", unique_slug)
    assert page.status_code == 200
    assert '"kernelId"' in page.text, why  # Voila's page, with a kernel for this viewer
    assert not (public_host.dashboards_dir.parent / "static" / "alice" / unique_slug / "v000001.html").exists()
    if why == "a failed cell":
        assert "ZeroDivisionError" not in page.text  # tracebacks stay hidden, as Voila is configured


def test_a_slow_notebook_does_not_hold_the_publish_button(tmp_path_factory):
    """The publish answers after prerender_wait at most; viewers get the live page until the
    static one is made, then the static one."""
    with PublicHost(tmp_path_factory.mktemp("slow-host"), extra_config="c.PublisherService.prerender_wait = 1\n") as host:
        api = PublisherApi(host)
        nb = make_notebook(("code", "import time\ntime.sleep(20)\nprint('slow report')"))
        started = time.monotonic()
        assert api.put("alice", "slow", nb).status_code == 201
        assert time.monotonic() - started < 15  # well before the notebook could have finished
        static_dir = host.dashboards_dir.parent / "static" / "alice" / "slow"
        assert not (static_dir / "v000001.html").exists()
        wait_until(lambda: (static_dir / "v000001.html").exists(), timeout=120, what="the static page")
        page = api.render("alice", "slow")
        assert "slow report" in page.text and '"kernelId"' not in page.text


def test_the_control_endpoints_answer_only_their_own_methods_and_only_the_token(public_host):
    base = f"http://127.0.0.1:{public_host.publisher.voila_port}/dashboards/_voila/_publisher/prerender"
    token = public_host.publisher.control_token_file.read_text().strip()
    assert requests.post(base, json={"notebook": "x/y/v000001/y.ipynb"}, timeout=30).status_code == 403  # no token
    # The pre-render endpoint is not the pools endpoint: a PUT there changes no pool.
    assert requests.put(base, data=b"[]", headers={"Authorization": f"Bearer {token}"}, timeout=30).status_code == 405
    bad = requests.post(base, json={"notebook": "../../etc/passwd.ipynb"}, headers={"Authorization": f"Bearer {token}"}, timeout=30)
    assert bad.status_code == 400
