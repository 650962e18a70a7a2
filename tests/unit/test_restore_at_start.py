"""restore_on_start without a hub or a bucket: conflict-copy names, the progress the hub
accepts from a node and the sentence it shows, the node side's bookkeeping."""

from __future__ import annotations

import json
import os

import pytest

from hybrid_spawner.bootstrap import restore_step
from hybrid_spawner.bootstrap.credentials import BootstrapRegistry, CredentialRejected
from hybrid_spawner.bootstrap.progress import restore_progress_message, validate_restore_progress
from voila_publisher.sync.plan import conflict_copy_path
from voila_publisher.sync.service import SyncService
from voila_publisher.sync.config import BucketSync

ETAG = '"3fa2c1d0e4b5a6978877665544332211"'


@pytest.mark.parametrize(
    "path, copy",
    [
        ("thesis.ipynb", "thesis (bucket copy 3fa2c1d0).ipynb"),
        ("a/b/data.tar.gz", "a/b/data.tar (bucket copy 3fa2c1d0).gz"),
        ("Makefile", "Makefile (bucket copy 3fa2c1d0)"),
        ("dir/.env", "dir/.env (bucket copy 3fa2c1d0)"),
    ],
)
def test_a_conflict_copy_sits_beside_the_file_and_keeps_its_suffix(path, copy):
    assert conflict_copy_path(path, ETAG) == copy


def test_one_bucket_version_one_copy_name_another_version_another():
    assert conflict_copy_path("x.ipynb", ETAG) == conflict_copy_path("x.ipynb", ETAG.upper())
    assert conflict_copy_path("x.ipynb", ETAG) != conflict_copy_path("x.ipynb", '"0123456789abcdef"')
    assert conflict_copy_path("x.ipynb", "") == "x (bucket copy unknown).ipynb"


def report(**fields):
    base = {"state": "running", "files_done": 3, "files_total": 10, "bytes_done": 3000, "bytes_total": 10_000, "conflicts": 0}
    return {**base, **fields}


def test_the_hub_writes_the_sentence_from_numbers():
    assert restore_progress_message(validate_restore_progress(report())) == (
        "Restoring your notebooks from the bucket: 3 of 10 files, 3.0 KB of 10.0 KB"
    )
    done = validate_restore_progress(report(state="done", files_done=10, bytes_done=10_000, conflicts=2))
    text = restore_progress_message(done)
    assert text.startswith("Restored your notebooks from the bucket: 10 of 10 files")
    assert "2 files differed from the bucket" in text
    assert "took too long" in restore_progress_message(validate_restore_progress(report(state="timeout")))
    assert "starts anyway" in restore_progress_message(validate_restore_progress(report(state="error")))


@pytest.mark.parametrize(
    "bad",
    [
        None, [], "text", {"state": "<b>hi</b>"}, report(files_done=-1), report(bytes_total="10"),
        report(conflicts=True), report(files_total=2**60), {"state": "done", "message": "anything"} | {"files_done": 1.5},
    ],
)
def test_anything_but_a_state_and_counts_is_refused(bad):
    with pytest.raises(ValueError):
        validate_restore_progress(bad)


def test_extra_fields_from_the_node_are_dropped():
    clean = validate_restore_progress(report(message="<script>alert(1)</script>"))
    assert "message" not in clean and set(clean) == {"state", "files_done", "files_total", "bytes_done", "bytes_total", "conflicts"}


async def test_progress_needs_the_report_secret_and_keeps_it_for_the_port():
    registry = BootstrapRegistry()
    entry, credential = registry.issue("alice", lambda: {"environment": {}, "command": [], "port": 0}, ttl=60)
    seen = []
    entry.on_progress = seen.append
    secret = registry.redeem(credential)["report_secret"]
    for wrong in (None, "", "not-the-secret", credential):
        with pytest.raises(CredentialRejected):
            registry.report_progress(wrong, report())
    with pytest.raises(ValueError):
        registry.report_progress(secret, {"state": "running", "files_done": "many"})
    registry.report_progress(secret, report())
    registry.report_progress(secret, report(state="done", files_done=10))
    assert [r["state"] for r in seen] == ["running", "done"]
    registry.report_port(secret, 8888)
    assert await entry.wait_port() == 8888
    with pytest.raises(CredentialRejected):  # spent with the port: a late report is refused
        registry.report_progress(secret, report())


def test_the_node_restores_into_the_servers_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert restore_step.restore_root({"root": ""}) == str(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert restore_step.restore_root({"root": "~/work"}) == str(tmp_path / "home" / "work")
    assert restore_step.restore_command("py", "/r")[:3] == ["py", "-m", "voila_publisher.sync.cli"]


def test_progress_fields_from_a_line_and_from_a_finished_job():
    line = {"state": "running", "files_done": 1, "files_total": 2, "bytes_done": 5, "bytes_total": 9, "message": "x"}
    assert restore_step.progress_fields(line, "running") == {
        "files_done": 1, "files_total": 2, "bytes_done": 5, "bytes_total": 9, "conflicts": 0, "state": "running"
    }
    job = dict(line, state="done", conflicts=["a", "b"], conflict_copies=[{"path": "a", "copy": "a (bucket copy 1)"}])
    fields = restore_step.progress_fields(job)
    assert fields["state"] == "done" and fields["conflicts"] == 1
    assert restore_step.progress_fields(dict(line, state="weird"))["state"] == "error"
    validate_restore_progress(fields)  # what the node sends, the hub accepts


def test_a_restore_that_cannot_run_is_reported_and_written_down(tmp_path):
    """No bucket configured on the node: the CLI refuses (exit 2); the server still starts."""
    reports = []
    env = {k: v for k, v in os.environ.items() if not k.startswith("HYBRID_")}
    job = restore_step.run_restore({"root": str(tmp_path / "home")}, env, reports.append, deadline=1e12)
    assert job["state"] == "error" and "exit 2" in job["message"]
    assert reports[-1]["state"] == "error"
    written = json.loads((tmp_path / "home" / ".hybrid-sync" / restore_step.REPORT_NAME).read_text())
    assert written["state"] == "error"
    assert (tmp_path / "home" / ".hybrid-sync" / restore_step.REPORT_NAME).stat().st_mode & 0o077 == 0
    # The server extension passes on only what JupyterLab shows.
    service = SyncService(BucketSync(), tmp_path / "home", username="alice")
    shown = service.status()["restored_at_start"]
    assert shown["state"] == "error" and shown["conflict_copies"] == [] and shown["reported"] > 0


def test_no_report_no_announcement(tmp_path):
    assert SyncService(BucketSync(), tmp_path, username="alice").status()["restored_at_start"] is None
    (tmp_path / ".hybrid-sync").mkdir()
    (tmp_path / ".hybrid-sync" / restore_step.REPORT_NAME).write_text("[1, 2]")
    assert SyncService(BucketSync(), tmp_path, username="alice").status()["restored_at_start"] is None

