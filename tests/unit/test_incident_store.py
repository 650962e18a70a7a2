"""The incident records and the admin page's rendering (pure parts of hybrid_spawner.incidents)."""

import json
import stat

import pytest

from hybrid_spawner.incidents.handlers import render_page
from hybrid_spawner.incidents.quarantine import IncidentError, isolator
from hybrid_spawner.incidents.store import IncidentStore


def test_an_open_incident_holds_its_user_until_released(tmp_path):
    store = IncidentStore(path=str(tmp_path / "incidents.json"))
    assert store.open_for("alice") is None
    record = store.create(user="alice", server="", backend="ec2", node_id="i-1", reason="scan", state="isolating")
    assert record["id"].startswith("inc-") and store.open_for("alice")["id"] == record["id"]
    assert store.open_for("alicex") is None and store.open_for("bob") is None
    store.update(record["id"], released=123.0, state="released")
    assert store.open_for("alice") is None
    assert [r["state"] for r in store.all()] == ["released"]


def test_records_are_written_whole_and_private(tmp_path):
    store = IncidentStore(path=str(tmp_path / "incidents.json"))
    store.create(user="a", server="", backend="slurm", node_id="7", reason="r")
    assert stat.S_IMODE((tmp_path / "incidents.json").stat().st_mode) == 0o600
    assert json.loads((tmp_path / "incidents.json").read_text())["incidents"][0]["user"] == "a"
    assert [p.name for p in tmp_path.iterdir()] == ["incidents.json"]  # no temp file left


def test_updating_an_unknown_incident_says_so(tmp_path):
    with pytest.raises(KeyError):
        IncidentStore(path=str(tmp_path / "i.json")).update("inc-x", state="released")


def test_an_unknown_backend_has_no_quarantine():
    with pytest.raises(IncidentError) as refused:
        isolator("kubernetes")
    assert refused.value.status == 501 and "kubernetes" in str(refused.value)


def test_the_admin_page_escapes_names_reasons_and_actions():
    hostile = "<img src=x onerror=alert(1)>"
    page = render_page([(hostile, "")], [{"id": "inc-1", "user": hostile, "backend": "ec2", "node_id": "i-1",
                                          "state": "quarantined", "reason": hostile, "actions": [hostile]}],
                       xsrf="tok", hub_base="/hub/")
    assert hostile not in page and "&lt;img src=x onerror=alert(1)&gt;" in page
    assert 'const api = "/hub/api/hybrid"' in page
