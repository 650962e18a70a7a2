"""Where the work lives (GET /hybrid/home) and the hub call behind "Stop My Server…", without
a server: the home kinds, the unsynced count, the stop request."""

from __future__ import annotations

import pytest

from voila_publisher.sync.config import DEFAULT_EXCLUDES
from voila_publisher.sync.home import describe_home, home_kind, unsynced_paths
from voila_publisher.sync.listing import LocalFile
from voila_publisher.sync.manifest import UNSETTLED, ManifestEntry
from voila_publisher.sync.stop import StopRefused, stop_request


@pytest.mark.parametrize(
    "value, kind",
    [("persistent", "persistent"), ("Ephemeral ", "ephemeral"), ("shared", "shared"), ("", "unknown"), ("tmpfs", "unknown")],
)
def test_the_kind_comes_from_the_hub_and_anything_else_is_unknown(value, kind):
    assert home_kind({"HYBRID_HOME_KIND": value}) == kind


def test_unsynced_are_the_files_the_last_sync_did_not_leave_as_they_are():
    same = LocalFile(10, 100, 200, 7)
    local = {"kept.ipynb": same, "edited.ipynb": LocalFile(11, 101, 201, 8), "new.ipynb": LocalFile(1, 1, 1, 9),
             "unsettled.ipynb": same, "unsettled-then-edited.ipynb": LocalFile(10, 105, 205, 7)}
    manifest = {
        "kept.ipynb": ManifestEntry(10, 100, "m", "e", 200, 7),
        "edited.ipynb": ManifestEntry(10, 100, "m", "e", 200, 8),
        # Recorded within a second of its last change: the stat without the change time decides.
        "unsettled.ipynb": ManifestEntry(10, 100, "m", "e", UNSETTLED, 7),
        "unsettled-then-edited.ipynb": ManifestEntry(10, 100, "m", "e", UNSETTLED, 7),
        "deleted.ipynb": ManifestEntry(1, 1, "m", "e", 1, 1),
    }
    assert unsynced_paths(local, manifest) == ["edited.ipynb", "new.ipynb", "unsettled-then-edited.ipynb"]


def test_describe_home_counts_files_and_reads_the_disk(tmp_path):
    (tmp_path / "a.ipynb").write_text("{}")
    (tmp_path / ".hidden").write_text("x")  # excluded from sync: never counted
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "b.ipynb").write_text("{}")
    home = describe_home(tmp_path, DEFAULT_EXCLUDES, {}, environ={"HYBRID_HOME_KIND": "ephemeral"})
    assert home["kind"] == "ephemeral" and home["label"] == "ephemeral"
    assert home["files"] == 2 and home["unsynced"] == 2 and home["unsynced_examples"] == ["a.ipynb", "sub/b.ipynb"]
    assert 0 < home["used_bytes"] <= home["size_bytes"]


HUB_ENV = {
    "JUPYTERHUB_API_URL": "http://10.0.1.5:8081/hub/api/",
    "JUPYTERHUB_API_TOKEN": "server-token",
    "JUPYTERHUB_USER": "ana maría",
}


def test_the_stop_request_names_this_server_and_carries_its_token():
    request = stop_request(HUB_ENV)
    assert request.method == "DELETE"
    assert request.url == "http://10.0.1.5:8081/hub/api/users/ana%20mar%C3%ADa/server"
    assert request.headers["Authorization"] == "token server-token"
    named = stop_request({**HUB_ENV, "JUPYTERHUB_SERVER_NAME": "gpu/1"})
    assert named.url.endswith("/users/ana%20mar%C3%ADa/servers/gpu%2F1")


@pytest.mark.parametrize("missing", ["JUPYTERHUB_API_URL", "JUPYTERHUB_API_TOKEN", "JUPYTERHUB_USER"])
def test_a_server_no_hub_started_is_told_so(missing):
    env = {k: v for k, v in HUB_ENV.items() if k != missing}
    with pytest.raises(StopRefused, match="not started by JupyterHub"):
        stop_request(env)


def test_the_hub_token_may_stop_only_its_own_server():
    from hybrid_spawner.remote import SERVER_TOKEN_SCOPES, RemoteSpawner
    from hybrid_spawner.spawner import HybridSpawner

    assert set(SERVER_TOKEN_SCOPES) == {"users:activity!user", "access:servers!server", "servers!server"}
    assert RemoteSpawner().server_token_scopes == list(SERVER_TOKEN_SCOPES)
    assert HybridSpawner().server_token_scopes == list(SERVER_TOKEN_SCOPES)
