"""The public Voila host end to end: nginx -> publisher service -> Voila, all real processes."""

from __future__ import annotations

import json
import os
import re
import time
import uuid

import pytest
import requests
import websocket

from simulators.nginx import NginxProcess
from tests.fixtures.publish import LIVE, PLANTED_ENV, make_notebook

pytestmark = pytest.mark.integration

SOURCE_MARKER = "SECRET_SOURCE_MARKER"


def _kernel_id(page: str) -> str:
    m = re.search(r'"kernelId":\s*"([0-9a-f-]{36})"', page)
    assert m, "the rendered page carries no kernel id"
    return m.group(1)


def _tree(directory) -> list[str]:
    return sorted(os.path.relpath(os.path.join(d, f), directory) for d, _, files in os.walk(directory) for f in files)


def test_publish_renders_output_and_no_source_through_nginx(publisher_api, unique_slug, public_host):
    nb = make_notebook(
        ("markdown", "# Sales overview"),
        ("code", f"{SOURCE_MARKER} = 6 * 7\nprint('answer is', {SOURCE_MARKER})"),
    )
    r = publisher_api.put("alice", unique_slug, nb)
    assert r.status_code == 201, r.text
    dashboard = r.json()
    assert dashboard == {
        "owner": "alice", "slug": unique_slug, "title": "Sales overview", "version": 1,
        "url": f"{public_host.url}/dashboards/alice/{unique_slug}/", "published": dashboard["published"],
        "visibility": "public",
    }
    page = requests.get(dashboard["url"], timeout=120)
    assert page.status_code == 200, public_host.log_text()[-3000:]
    # The output exists only if the kernel executed the cell at render time (outputs were empty).
    assert "answer is 42" in page.text
    assert SOURCE_MARKER not in page.text
    assert "no-store" in page.headers.get("Cache-Control", "") or "no-cache" in page.headers.get("Cache-Control", "")


def test_kernel_websocket_upgrades_through_nginx(publisher_api, unique_slug, public_host):
    publisher_api.put("alice", unique_slug, make_notebook(("code", "x = 1"), metadata=LIVE))
    page = publisher_api.render("alice", unique_slug)
    assert page.status_code == 200
    kernel_id = _kernel_id(page.text)
    ws_url = public_host.url.replace("http://", "ws://") + f"/dashboards/_voila/api/kernels/{kernel_id}/channels"
    ws = websocket.create_connection(ws_url, timeout=30, origin=public_host.url)
    try:
        assert ws.status == 101
        msg_id = "kernel-info-through-nginx"
        ws.send(json.dumps({
            "header": {"msg_id": msg_id, "msg_type": "kernel_info_request", "username": "viewer", "session": "s1", "version": "5.3"},
            "parent_header": {}, "metadata": {}, "content": {}, "channel": "shell", "buffers": [],
        }))
        reply = None
        while reply is None:
            message = json.loads(ws.recv())
            if message.get("parent_header", {}).get("msg_id") == msg_id and message["msg_type"] == "kernel_info_reply":
                reply = message
        assert reply["content"]["status"] == "ok"
        assert reply["content"]["language_info"]["name"] == "python"
    finally:
        ws.close()


def test_republish_changes_content_and_keeps_previous_versions(publisher_api, unique_slug, public_host):
    for n in (1, 2, 3):
        r = publisher_api.put("alice", unique_slug, make_notebook(("code", f"print('edition', {n} * 111)")))
        assert r.status_code == (201 if n == 1 else 200), r.text
        assert r.json()["version"] == n
        page = publisher_api.render("alice", unique_slug)
        assert f"edition {n * 111}" in page.text
        assert all(f"edition {m * 111}" not in page.text for m in (1, 2, 3) if m != n)
    versions = sorted(os.listdir(public_host.dashboards_dir / "alice" / unique_slug))
    # versions_kept=2 in the fixture; v000001 is older but still inside its grace period.
    assert versions == ["current", "v000001", "v000002", "v000003"]
    assert os.readlink(public_host.dashboards_dir / "alice" / unique_slug / "current") == "v000003"


def test_unpublish_gives_404(publisher_api, unique_slug, public_host):
    publisher_api.put("alice", unique_slug, make_notebook(("code", "print('soon gone')")))
    assert publisher_api.render("alice", unique_slug).status_code == 200
    assert publisher_api.delete("alice", unique_slug, token_owner="bob").status_code == 403
    r = publisher_api.delete("alice", unique_slug)
    assert r.status_code == 204
    assert publisher_api.render("alice", unique_slug).status_code == 404
    assert not (public_host.dashboards_dir / "alice" / unique_slug).exists()
    second = publisher_api.delete("alice", unique_slug)
    assert second.status_code == 404 and second.json()["reason"] == "not-found"


def test_gallery_lists_the_dashboard(publisher_api, unique_slug, public_host):
    r = requests.put(publisher_api.url("carol", unique_slug), params={"source_path": "private/notes/rain.ipynb"},
                     data=json.dumps(make_notebook(("markdown", "# Rainfall <by> region"), ("code", "1"))),
                     headers={"Authorization": f"Bearer {public_host.token_for('carol')}"}, timeout=60)
    assert r.json()["path"] == "private/notes/rain.ipynb"
    gallery = requests.get(public_host.url + "/", timeout=30)
    assert gallery.status_code == 200 and gallery.headers["Content-Type"].startswith("text/html")
    assert f'href="/dashboards/carol/{unique_slug}/"' in gallery.text
    assert "source_path" not in gallery.text and "private/notes" not in gallery.text
    assert "Rainfall &lt;by&gt; region" in gallery.text  # titles are escaped
    listed = publisher_api.list("carol").json()
    assert [d["slug"] for d in listed if d["slug"] == unique_slug] == [unique_slug]
    assert all(d["owner"] == "carol" for d in listed)
    # Only the owner learns where the notebook lives on their server.
    assert all("path" not in d for d in listed)
    mine = publisher_api.list("carol", token_owner="carol").json()
    assert next(d for d in mine if d["slug"] == unique_slug)["path"] == "private/notes/rain.ipynb"


def test_declared_data_files_reach_the_kernel(publisher_api, unique_slug):
    nb = make_notebook(
        ("code", "print('rows:', open('data/input.csv').read().count('\\n'))"),
        metadata={"voila_publisher": {"data_files": ["data/input.csv"]}},
    )
    r = publisher_api.put("alice", unique_slug, nb, files={"data/input.csv": b"a,b\n1,2\n3,4\n"})
    assert r.status_code == 201, r.text
    assert "rows: 3" in publisher_api.render("alice", unique_slug).text


def test_api_refuses_missing_foreign_and_forged_tokens(publisher_api, unique_slug, public_host):
    nb = make_notebook(("code", "1"))
    before = _tree(public_host.dashboards_dir)
    no_token = publisher_api.put("alice", unique_slug, nb, token_owner=False)
    assert no_token.status_code == 401 and no_token.json()["reason"] == "no-token"
    # The publisher enforces it as well, not only nginx.
    direct = requests.put(f"{public_host.publisher.url}/api/dashboards/alice/{unique_slug}", data=json.dumps(nb), timeout=30)
    assert direct.status_code == 401 and direct.json()["message"]
    forged = publisher_api.put("alice", unique_slug, nb, token="hp1.YWxpY2U.AAAA")
    assert forged.status_code == 401 and forged.json()["reason"] == "invalid-token"
    foreign = publisher_api.put("alice", unique_slug, nb, token_owner="mallory")
    assert foreign.status_code == 403 and "mallory" in foreign.json()["message"]
    assert requests.get(publisher_api.url(""), timeout=30).status_code == 401
    assert _tree(public_host.dashboards_dir) == before


BIG = "x" * (11 * 1024 * 1024)


@pytest.mark.parametrize(
    "case, owner, slug, body, status, reason",
    [
        ("not json", "alice", "ok-slug", b"PK\x03\x04 a zip file", 400, "invalid-notebook"),
        ("json, not a notebook", "alice", "ok-slug", b'{"hello": "world"}', 400, "invalid-notebook"),
        ("schema violation", "alice", "ok-slug", json.dumps({"cells": [{"cell_type": "code"}], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}).encode(), 400, "invalid-notebook"),
        ("too large", "alice", "ok-slug", json.dumps(make_notebook(("code", BIG))).encode(), 413, "too-large"),
        ("traversal in slug", "alice", "%2E%2E", None, 400, "invalid-name"),
        ("encoded slash in slug", "alice", "..%2F..%2Fetc", None, 400, "invalid-name"),
        ("traversal in owner", "%2E%2E", "ok-slug", None, 400, "invalid-name"),
        ("upper-case slug", "alice", "Bad_Slug", None, 400, "invalid-name"),
    ],
)
def test_bad_uploads_get_json_errors_and_store_nothing(publisher_api, public_host, case, owner, slug, body, status, reason):
    before = _tree(public_host.dashboards_dir)
    raw = body if body is not None else json.dumps(make_notebook(("code", "1"))).encode()
    r = publisher_api.put(owner, slug, None, raw=raw, token_owner="alice")
    assert r.status_code == status, (case, r.text)
    error = r.json()
    assert error["reason"] == reason and error["message"], case
    assert _tree(public_host.dashboards_dir) == before


def test_undeclared_data_file_is_refused(publisher_api, unique_slug, public_host):
    before = _tree(public_host.dashboards_dir)
    r = publisher_api.put("alice", unique_slug, make_notebook(("code", "1")), files={"secret.csv": b"a,b"})
    assert r.status_code == 400 and r.json()["reason"] == "undeclared-file"
    assert _tree(public_host.dashboards_dir) == before


def test_voila_internals_and_old_versions_are_not_public(publisher_api, unique_slug, public_host):
    publisher_api.put("alice", unique_slug, make_notebook(("code", "print('v1')")))
    publisher_api.put("alice", unique_slug, make_notebook(("code", "print('v2')"), metadata=LIVE))
    base = public_host.url
    for path in (
        f"/dashboards/_voila/voila/render/alice/{unique_slug}/v000001/{unique_slug}.ipynb",
        f"/_voila_render/alice/{unique_slug}/v000001/{unique_slug}.ipynb",
        "/dashboards/_voila/",
        "/dashboards/_voila/voila/tree",
        f"/dashboards/_voila/voila/files/alice/{unique_slug}/current/{unique_slug}.ipynb",
        "/dashboards/_voila/api/contents",
        f"/_static_page/alice/{unique_slug}/v000001.html",
    ):
        assert requests.get(base + path, timeout=30).status_code == 404, path
    # The static assets the page needs are served.
    page = publisher_api.render("alice", unique_slug).text
    asset = re.search(r'src="(/dashboards/_voila/voila/static/[^"]+)"', page)
    assert asset and requests.get(base + asset.group(1), timeout=30).status_code == 200


def test_api_is_closed_to_networks_not_listed(public_host, tmp_path):
    outside = NginxProcess(
        tmp_path / "nginx-outside", publisher_port=public_host.publisher.port,
        voila_port=public_host.publisher.voila_port, allowed_networks=["10.0.0.0/8"],
    )
    with outside:
        token = public_host.token_for("alice")
        r = requests.put(f"{outside.url}/api/dashboards/alice/from-outside", data=b"{}", headers={"Authorization": f"Bearer {token}"}, timeout=30)
        assert r.status_code == 403 and r.json()["reason"] == "network-denied"
        assert requests.get(outside.url + "/", timeout=30).status_code == 200  # the gallery stays public


def test_published_code_sees_no_secret_of_the_host(publisher_api, unique_slug, public_host):
    probe = (
        "import os, pathlib\n"
        "values = ' '.join(os.environ.values())\n"
        "print('ENVKEYS', sorted(k for k in os.environ if k.startswith(('AWS', 'HYBRID'))))\n"
        f"print('PLANTED', any(v in values for v in {sorted(PLANTED_ENV.values())!r}))\n"
        f"print('SECRET', {public_host.secret[:12]!r} in values)"
    )
    assert publisher_api.put("alice", unique_slug, make_notebook(("code", probe))).status_code == 201
    page = publisher_api.render("alice", unique_slug).text
    assert "ENVKEYS []" in page and "PLANTED False" in page and "SECRET False" in page


def test_viewers_during_republishing_see_one_whole_version(publisher_api, unique_slug):
    import threading

    publisher_api.put("alice", unique_slug, make_notebook(("code", "print('edition', 1000)")))
    seen, stop = [], threading.Event()

    def viewer():
        while not stop.is_set():
            r = publisher_api.render("alice", unique_slug)
            seen.append((r.status_code, re.findall(r"edition (\d+)", r.text)))

    thread = threading.Thread(target=viewer)
    thread.start()
    try:
        for edition in (2000, 3000):
            assert publisher_api.put("alice", unique_slug, make_notebook(("code", f"print('edition', {edition})"))).status_code == 200
        deadline = time.monotonic() + 60
        while not any(found == ["3000"] for _, found in seen):
            assert time.monotonic() < deadline, seen
            time.sleep(0.1)
    finally:
        stop.set()
        thread.join()
    assert seen and all(status == 200 and len(found) == 1 for status, found in seen), seen


def test_nginx_refuses_huge_uploads_with_json(public_host):
    token = public_host.token_for("alice")
    r = requests.put(f"{public_host.api_url}dashboards/alice/huge", data=b"x" * (33 * 1024 * 1024),
                     headers={"Authorization": f"Bearer {token}"}, timeout=60)
    assert r.status_code == 413 and r.json()["reason"] == "too-large"


def test_every_public_answer_forbids_framing_sniffing_and_referrers(publisher_api, unique_slug, public_host):
    publisher_api.put("alice", unique_slug, make_notebook(("code", "print(1)")))
    answers = {
        "gallery": requests.get(public_host.url + "/", timeout=30),
        "dashboard": publisher_api.render("alice", unique_slug),
        "not found": requests.get(public_host.url + "/dashboards/_voila/voila/tree", timeout=30),
        "api": publisher_api.list(),
    }
    for name, answer in answers.items():
        assert answer.headers.get("X-Frame-Options") == "DENY", name
        assert "frame-ancestors 'none'" in answer.headers.get("Content-Security-Policy", ""), name
        assert answer.headers.get("X-Content-Type-Options") == "nosniff", name
        assert answer.headers.get("Referrer-Policy") == "no-referrer", name


def _put(publisher_api, owner, slug, nb, **query):
    token = publisher_api.host.token_for(owner)
    return requests.put(publisher_api.url(owner, slug), params=query, data=json.dumps(nb).encode(),
                        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"}, timeout=60)


def test_an_unlisted_dashboard_is_reachable_only_through_its_link(publisher_api, unique_slug, public_host):
    r = _put(publisher_api, "alice", unique_slug, make_notebook(("code", "print('hidden gem')")), visibility="unlisted")
    assert r.status_code == 201, r.text
    dashboard = r.json()
    assert dashboard["visibility"] == "unlisted"
    link = dashboard["url"]
    assert re.fullmatch(re.escape(public_host.url) + r"/unlisted/[A-Za-z0-9_-]{43}/", link), link
    page = requests.get(link, timeout=120)
    assert page.status_code == 200 and "hidden gem" in page.text
    # Not at its public address, not in the gallery, not shown to anyone but its owner.
    assert publisher_api.render("alice", unique_slug).status_code == 404
    assert unique_slug not in requests.get(public_host.url + "/", timeout=30).text
    assert unique_slug not in publisher_api.list(token_owner="bob").text
    assert requests.get(publisher_api.url("alice", unique_slug), headers={"Authorization": f"Bearer {public_host.token_for('bob')}"}, timeout=30).status_code == 404
    mine = [d for d in publisher_api.list("alice", token_owner="alice").json() if d["slug"] == unique_slug]
    assert mine and mine[0]["url"] == link
    # A guessed or malformed key leads nowhere.
    assert requests.get(public_host.url + "/unlisted/" + "A" * 43 + "/", timeout=30).status_code == 404
    assert requests.get(public_host.url + "/unlisted/short/", timeout=30).status_code == 404


def test_an_unlisted_link_survives_republishing_and_a_new_link_revokes_it(publisher_api, unique_slug, public_host):
    first = _put(publisher_api, "alice", unique_slug, make_notebook(("code", "print('one')")), visibility="unlisted").json()
    second = _put(publisher_api, "alice", unique_slug, make_notebook(("code", "print('two')")), visibility="unlisted").json()
    assert second["url"] == first["url"] and "two" in requests.get(second["url"], timeout=120).text
    third = _put(publisher_api, "alice", unique_slug, make_notebook(("code", "print('three')")), visibility="unlisted", new_link="1").json()
    assert third["url"] != first["url"]
    assert requests.get(first["url"], timeout=30).status_code == 404
    assert "three" in requests.get(third["url"], timeout=120).text
    # Made public: the public address works, the unlisted link is gone.
    public = _put(publisher_api, "alice", unique_slug, make_notebook(("code", "print('four')")), visibility="public").json()
    assert public["url"].endswith(f"/dashboards/alice/{unique_slug}/")
    assert requests.get(third["url"], timeout=30).status_code == 404
    assert "four" in publisher_api.render("alice", unique_slug).text


def test_an_unknown_visibility_is_refused_and_stores_nothing(publisher_api, unique_slug, public_host):
    r = _put(publisher_api, "alice", unique_slug, make_notebook(("code", "1")), visibility="secret")
    assert r.status_code == 400 and r.json()["reason"] == "invalid-request"
    assert not (public_host.dashboards_dir / "alice" / unique_slug).exists()


PLOT = (
    "import matplotlib\nmatplotlib.use('Agg')\nimport matplotlib.pyplot as plt\nfrom IPython.display import Image, display\n"
    "import io\nfig, ax = plt.subplots(figsize=(3, 2))\nax.plot([1, 3, 2])\nbuf = io.BytesIO()\nfig.savefig(buf, format='png')\n"
    "display(Image(buf.getvalue()))"
)


def test_gallery_cards_show_description_author_version_and_thumbnail_and_can_be_searched(publisher_api, public_host):
    tag = uuid.uuid4().hex[:6]
    plotted = f"river-{tag}"
    described = make_notebook(("markdown", f"# River levels {tag}\n\nDaily gauge readings at the **upper weir**."), ("code", PLOT))
    assert publisher_api.put("dora", plotted, described).status_code == 201
    assert publisher_api.put("erik", f"soil-{tag}", make_notebook(("markdown", f"# Soil {tag}"), ("code", "print(1)"))).status_code == 201
    hidden = _put(publisher_api, "dora", f"draft-{tag}", make_notebook(("markdown", f"# Draft {tag}"), ("code", PLOT)), visibility="unlisted")
    assert hidden.status_code == 201

    gallery = requests.get(public_host.url + "/", timeout=30).text
    card = re.search(rf'<li class="dashboard" data-owner="dora" data-slug="{plotted}">(.*?)</li>', gallery, re.S)
    assert card, gallery[:2000]
    card = card.group(1)
    assert f"River levels {tag}" in card and "Daily gauge readings at the upper weir." in card
    assert ">dora<" in card and "version 1" in card and re.search(r"<time datetime=\"\d{4}-\d\d-\d\dT", card)
    thumbnail = requests.get(f"{public_host.url}/dashboards/dora/{plotted}/thumbnail.png", timeout=30)
    assert f'src="/dashboards/dora/{plotted}/thumbnail.png"' in card
    assert thumbnail.status_code == 200 and thumbnail.content.startswith(b"\x89PNG")
    assert f"draft-{tag}" not in gallery
    assert requests.get(f"{public_host.url}/dashboards/dora/draft-{tag}/thumbnail.png", timeout=30).status_code == 404

    searched = requests.get(public_host.url + "/", params={"q": f"weir {tag}"}, timeout=30).text
    assert f'data-slug="{plotted}"' in searched and f'data-slug="soil-{tag}"' not in searched
    by_erik = requests.get(public_host.url + "/", params={"author": "erik", "q": tag}, timeout=30).text
    assert f'data-slug="soil-{tag}"' in by_erik and f'data-slug="{plotted}"' not in by_erik
    nothing = requests.get(public_host.url + "/", params={"q": f"no-such-thing-{tag}"}, timeout=30).text
    assert "No dashboard matches" in nothing
