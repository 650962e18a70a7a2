"""Kernel pre-heating on the public host never serves stale content (real nginx + Voila)."""

from __future__ import annotations

import re
import time

import pytest
import requests

from tests.fixtures.publish import PublisherApi, make_notebook

pytestmark = pytest.mark.integration


def _pools(host) -> dict:
    """Voila's kernel pools, asked on its private control endpoint (as the publisher does)."""
    token = host.publisher.control_token_file.read_text()
    r = requests.get(f"http://127.0.0.1:{host.publisher.voila_port}/dashboards/_voila/_publisher/pools",
                     headers={"Authorization": f"Bearer {token}"}, timeout=10)
    r.raise_for_status()
    return r.json()["pools"]


def test_republish_is_never_answered_by_a_stale_preheated_kernel(preheated_public_host, unique_slug):
    api = PublisherApi(preheated_public_host)
    for edition in (1000, 2000):
        r = api.put("alice", unique_slug, make_notebook(("code", f"print('edition', {edition})")))
        assert r.status_code in (200, 201), r.text
        # The publish answered after pre-rendering: this page comes from the pool of this version.
        page = api.render("alice", unique_slug).text
        assert re.findall(r"edition (\d+)", page) == [str(edition)]
    log = preheated_public_host.log_text()
    assert "Using pre-heated kernel: " in log
    assert re.search(rf"Using pre-heated kernel: \S+ for alice/{unique_slug}/v000002/{unique_slug}.ipynb", log), log[-2000:]


def test_pools_follow_the_current_versions_only(preheated_public_host, unique_slug):
    api = PublisherApi(preheated_public_host)
    api.put("bob", unique_slug, make_notebook(("code", "print('one')")))
    api.put("bob", unique_slug, make_notebook(("code", "print('two')")))
    pools = _pools(preheated_public_host)
    mine = [p for p in pools if p.startswith(f"bob/{unique_slug}/")]
    assert mine == [f"bob/{unique_slug}/v000002/{unique_slug}.ipynb"]
    assert api.delete("bob", unique_slug).status_code == 204
    deadline = time.monotonic() + 30
    while [p for p in _pools(preheated_public_host) if p.startswith(f"bob/{unique_slug}/")]:
        assert time.monotonic() < deadline, "the unpublished dashboard kept its kernel pool"
        time.sleep(0.2)


def test_the_pool_control_endpoint_is_not_public(preheated_public_host):
    url = preheated_public_host.url + "/dashboards/_voila/_publisher/pools"
    assert requests.get(url, timeout=10).status_code == 404
    direct = f"http://127.0.0.1:{preheated_public_host.publisher.voila_port}/dashboards/_voila/_publisher/pools"
    assert requests.put(direct, data="[]", headers={"Authorization": "Bearer wrong"}, timeout=10).status_code == 403
