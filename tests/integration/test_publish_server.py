"""The single-user server's publish API (real jupyter_server with the extension) against the
real public host (nginx + publisher + Voila)."""

from __future__ import annotations

import json
import os

import pytest
import requests
from tornado.httpclient import HTTPClientError

from tests.fixtures.publish import make_notebook
from voila_publisher.publish.handlers import SETTINGS_KEY

pytestmark = pytest.mark.integration

OWNER = "dana"
MAX_NOTEBOOK = 200_000


@pytest.fixture
def jp_server_config(public_host):
    return {
        "ServerApp": {"jpserver_extensions": {"voila_publisher": True}},
        "DashboardPublisher": {
            "publisher_url": public_host.api_url,
            "token": public_host.token_for(OWNER),
            "public_url": public_host.url,
            "owner": OWNER,
            "max_notebook_size": MAX_NOTEBOOK,
        },
    }


@pytest.fixture
def write_notebook(jp_root_dir):
    def write(rel_path: str, nb) -> str:
        path = jp_root_dir / rel_path
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(nb if isinstance(nb, str) else json.dumps(nb))
        return rel_path

    return write


async def _call(jp_fetch, method, *parts, body=None):
    kwargs = {"method": method}
    if body is not None:
        kwargs["body"] = json.dumps(body)
    try:
        response = await jp_fetch("hybrid", "publish", *parts, **kwargs)
    except HTTPClientError as e:
        return e.code, json.loads(e.response.body)
    return response.code, (json.loads(response.body) if response.body else None)


def _stored(public_host) -> list[str]:
    d = public_host.dashboards_dir
    return sorted(os.path.relpath(os.path.join(r, f), d) for r, _, fs in os.walk(d) for f in fs)


async def test_publish_returns_public_url_that_renders_without_hidden_cells(jp_fetch, write_notebook, publisher_api):
    nb = make_notebook(
        ("markdown", "# Harvest report"),
        ("code", "DB_PASSWORD = 'hunter2'\nprint('hidden ran')", ["hide"]),
        ("code", "print('total', sum(range(10)))"),
    )
    nb["cells"][2]["outputs"] = [{"output_type": "stream", "name": "stdout", "text": "stale stored output\n"}]
    path = write_notebook("reports/Harvest Report 2026.ipynb", nb)
    status, dashboard = await _call(jp_fetch, "POST", body={"path": path})
    assert status == 200, dashboard
    assert dashboard["owner"] == OWNER and dashboard["slug"] == "harvest-report-2026"
    assert dashboard["title"] == "Harvest report" and dashboard["version"] >= 1
    assert dashboard["url"] == f"{publisher_api.host.url}/dashboards/{OWNER}/harvest-report-2026/"
    assert dashboard["path"] == path  # lets the Lab match the dashboard to its notebook
    page = publisher_api.render(OWNER, "harvest-report-2026").text
    assert "total 45" in page
    assert "hidden ran" not in page and "hunter2" not in page and "stale stored output" not in page
    stored = (publisher_api.host.dashboards_dir / OWNER / "harvest-report-2026" / "current" / "harvest-report-2026.ipynb").read_text()
    assert "hunter2" not in stored and "stale stored output" not in stored


async def test_strip_hidden_false_keeps_tagged_cells(jp_fetch, write_notebook, publisher_api):
    nb = make_notebook(("code", "print('tagged but wanted')", ["hide"]))
    path = write_notebook("keep-tagged.ipynb", nb)
    status, dashboard = await _call(jp_fetch, "POST", body={"path": path, "strip_hidden": False})
    assert status == 200, dashboard
    assert "tagged but wanted" in publisher_api.render(OWNER, "keep-tagged").text


async def test_publish_unlisted_gives_the_link_and_a_new_link_revokes_the_old(jp_fetch, write_notebook, publisher_api):
    path = write_notebook("secret-plan.ipynb", make_notebook(("code", "print('for reviewers only')")))
    status, first = await _call(jp_fetch, "POST", body={"path": path, "visibility": "unlisted"})
    assert status == 200, first
    assert first["visibility"] == "unlisted"
    assert first["url"].startswith(f"{publisher_api.host.url}/unlisted/")
    assert "for reviewers only" in requests.get(first["url"], timeout=120).text
    assert publisher_api.render(OWNER, "secret-plan").status_code == 404
    status, second = await _call(jp_fetch, "POST", body={"path": path, "visibility": "unlisted", "new_link": True})
    assert status == 200 and second["url"] != first["url"]
    assert requests.get(first["url"], timeout=30).status_code == 404
    status, listing = await _call(jp_fetch, "GET")
    assert next(d for d in listing["dashboards"] if d["slug"] == "secret-plan")["url"] == second["url"]


async def test_versions_are_listed_and_an_earlier_one_can_be_made_current_again(jp_fetch, write_notebook, publisher_api):
    for n in (1, 2):
        path = write_notebook("seasons.ipynb", make_notebook(("markdown", f"# Seasons, edition {n}"), ("code", f"print('edition', {n} * 11)")))
        assert (await _call(jp_fetch, "POST", body={"path": path}))[0] == 200
    status, versions = await _call(jp_fetch, "GET", "seasons", "versions")
    assert status == 200, versions
    assert [(v["version"], v["current"], v["title"]) for v in versions][:2] == [(2, True, "Seasons, edition 2"), (1, False, "Seasons, edition 1")]
    status, dashboard = await _call(jp_fetch, "POST", "seasons", "versions", body={"rollback": 1})
    assert status == 200, dashboard
    assert dashboard["version"] == 3 and dashboard["title"] == "Seasons, edition 1"
    assert "edition 11" in publisher_api.render(OWNER, "seasons").text
    status, versions = await _call(jp_fetch, "GET", "seasons", "versions")
    assert versions[0]["version"] == 3 and versions[0]["current"]
    # Bad requests change nothing.
    for body, code, reason in (({"rollback": 99}, 404, "not-found"), ({"rollback": "1"}, 400, "invalid-request"), ({}, 400, "invalid-request")):
        status, error = await _call(jp_fetch, "POST", "seasons", "versions", body=body)
        assert (status, error["reason"]) == (code, reason), body
    assert (await _call(jp_fetch, "GET", "seasons", "versions"))[1][0]["version"] == 3
    # Another researcher's token cannot read or roll back this one's versions on the host.
    other = {"Authorization": f"Bearer {publisher_api.host.token_for('someone-else')}"}
    assert requests.get(publisher_api.url(OWNER, "seasons") + "/versions", headers=other, timeout=30).status_code == 403
    assert requests.post(publisher_api.url(OWNER, "seasons") + "/versions?rollback=1", headers=other, timeout=30).status_code == 403


async def test_list_and_unpublish(jp_fetch, write_notebook, publisher_api):
    path = write_notebook("to-remove.ipynb", make_notebook(("code", "print(1)")))
    assert (await _call(jp_fetch, "POST", body={"path": path}))[0] == 200
    status, listing = await _call(jp_fetch, "GET")
    assert status == 200 and listing["configured"] is True and listing["missing"] is None
    assert {"slug": "to-remove", "path": path}.items() <= next(d for d in listing["dashboards"] if d["slug"] == "to-remove").items()
    assert all(d["owner"] == OWNER for d in listing["dashboards"])
    status, body = await _call(jp_fetch, "DELETE", "to-remove")
    assert status == 204 and body is None
    assert publisher_api.render(OWNER, "to-remove").status_code == 404
    status, listing = await _call(jp_fetch, "GET")
    assert "to-remove" not in [d["slug"] for d in listing["dashboards"]]
    status, error = await _call(jp_fetch, "DELETE", "to-remove")
    assert status == 404 and error["message"]


@pytest.mark.parametrize(
    "case, files, body, status, reason",
    [
        ("traversal", {}, {"path": "../outside.ipynb"}, 400, "invalid-path"),
        ("absolute escape via symlink", {"link.ipynb": "SYMLINK"}, {"path": "link.ipynb"}, 400, "invalid-path"),
        ("not a notebook", {"notes.txt": "hello"}, {"path": "notes.txt"}, 400, "not-a-notebook"),
        ("invalid notebook", {"broken.ipynb": '{"cells": 3}'}, {"path": "broken.ipynb"}, 400, "invalid-notebook"),
        ("missing", {}, {"path": "nowhere.ipynb"}, 404, "not-found"),
        ("too large", {"big.ipynb": json.dumps(make_notebook(("code", "x" * MAX_NOTEBOOK)))}, {"path": "big.ipynb"}, 413, "too-large"),
        ("no path", {}, {"strip_hidden": True}, 400, "invalid-request"),
        ("unknown visibility", {"vis.ipynb": json.dumps(make_notebook(("code", "1")))}, {"path": "vis.ipynb", "visibility": "private"}, 400, "invalid-request"),
        ("new_link not a bool", {"vis2.ipynb": json.dumps(make_notebook(("code", "1")))}, {"path": "vis2.ipynb", "visibility": "unlisted", "new_link": "yes"}, 400, "invalid-request"),
        ("undeclared escape in data files", {"data-escape.ipynb": json.dumps(make_notebook(("code", "1"), metadata={"voila_publisher": {"data_files": ["../../etc/passwd"]}}))}, {"path": "data-escape.ipynb"}, 400, "invalid-notebook"),
    ],
)
async def test_bad_requests_get_json_errors_and_publish_nothing(jp_fetch, write_notebook, jp_root_dir, public_host, case, files, body, status, reason):
    for name, content in files.items():
        if content == "SYMLINK":
            os.symlink("/etc/hostname", jp_root_dir / name)
        else:
            write_notebook(name, content)
    before = _stored(public_host)
    got_status, error = await _call(jp_fetch, "POST", body=body)
    assert got_status == status, (case, error)
    assert error["reason"] == reason and error["message"], case
    assert _stored(public_host) == before


async def test_unconfigured_server_says_what_the_admin_must_set(jp_fetch, jp_serverapp, write_notebook):
    publisher = jp_serverapp.web_app.settings[SETTINGS_KEY]
    publisher.token = ""
    status, listing = await _call(jp_fetch, "GET")
    assert status == 200 and listing == {"configured": False, "missing": listing["missing"], "dashboards": []}
    assert "HYBRID_PUBLISHER_TOKEN" in listing["missing"]
    path = write_notebook("unconfigured.ipynb", make_notebook(("code", "1")))
    status, error = await _call(jp_fetch, "POST", body={"path": path})
    assert status == 503 and error["reason"] == "not-configured"


async def test_a_token_the_host_refuses_is_an_admin_problem_not_a_login(jp_fetch, jp_serverapp, write_notebook, public_host):
    publisher = jp_serverapp.web_app.settings[SETTINGS_KEY]
    publisher.token = public_host.token_for("somebody-else")
    path = write_notebook("wrong-token.ipynb", make_notebook(("code", "1")))
    before = _stored(public_host)
    status, error = await _call(jp_fetch, "POST", body={"path": path})
    assert status == 502 and error["reason"] == "publisher-refused-token"
    assert publisher.token not in error["message"]
    assert _stored(public_host) == before


async def test_unreachable_host_is_reported(jp_fetch, jp_serverapp, write_notebook):
    from simulators.processes import free_port

    jp_serverapp.web_app.settings[SETTINGS_KEY].publisher_url = f"http://127.0.0.1:{free_port()}/api/"
    path = write_notebook("unreachable.ipynb", make_notebook(("code", "1")))
    status, error = await _call(jp_fetch, "POST", body={"path": path})
    assert status == 502 and error["reason"] == "publisher-unreachable"


async def test_the_lab_learns_a_notebooks_dashboard_name_from_the_server(jp_fetch, write_notebook, publisher_api):
    """The Lab never computes a slug: the name it asks for is the one publishing gives."""
    path = write_notebook("Übersicht.ipynb", make_notebook())
    response = await jp_fetch("hybrid", "publish", "_slug", params={"path": path})
    asked = json.loads(response.body)["slug"]
    status, dashboard = await _call(jp_fetch, "POST", body={"path": path})
    assert status in (200, 201) and asked == dashboard["slug"] == "ubersicht"
    with pytest.raises(HTTPClientError) as e:
        await jp_fetch("hybrid", "publish", "_slug", params={"path": "---.ipynb"})
    assert e.value.code == 400 and json.loads(e.value.response.body)["reason"] == "invalid-name"
