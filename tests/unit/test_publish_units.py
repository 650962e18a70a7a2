"""Pure parts of publishing: tokens, notebook rules, the versioned store, Voila's command
line, the nginx config and the client's path checks."""

from __future__ import annotations

import json
import os
import subprocess
import threading

import pytest

from simulators import nginx
from tests.fixtures.publish import make_notebook
from voila_publisher import notebooks
from voila_publisher.host.handlers import dashboard_json
from voila_publisher.host.voila_command import kernel_environment, voila_argv
from voila_publisher.publish.client import DashboardPublisher, PublishError
from voila_publisher.host.store import DashboardStore
from voila_publisher.tokens import InvalidToken, derive_publish_token, spawner_token, token_owner

SECRET = "s" * 32


# -- tokens ---------------------------------------------------------------------------------
def test_token_names_its_owner_and_is_checked_with_the_secret():
    token = derive_publish_token(SECRET, "alice@example.org")
    assert token_owner(SECRET, token) == "alice@example.org"
    assert token != derive_publish_token(SECRET, "bob")
    with pytest.raises(InvalidToken):
        token_owner("t" * 32, token)


@pytest.mark.parametrize("bad", ["", "garbage", "hp1.YWxpY2U", "hp1.YWxpY2U.AAAA", "hp2.YWxpY2U.AAAA", "hp1.!!!.???"])
def test_malformed_or_forged_tokens_are_invalid_and_not_echoed(bad):
    with pytest.raises(InvalidToken) as e:
        token_owner(SECRET, bad)
    assert bad not in str(e.value) or not bad


def test_swapping_the_owner_part_breaks_the_token():
    alice = derive_publish_token(SECRET, "alice").split(".")
    bob = derive_publish_token(SECRET, "bob").split(".")
    with pytest.raises(InvalidToken):
        token_owner(SECRET, ".".join([alice[0], bob[1], alice[2]]))


def test_short_secrets_are_refused():
    with pytest.raises(ValueError):
        derive_publish_token("short", "alice")


# -- notebook rules -------------------------------------------------------------------------
# The one table of dashboard names: the Lab never computes a slug, it asks the server.
SLUG_TABLE = [
    ("Sales Q3 (final).ipynb", "sales-q3-final"),
    ("dir/Ünïcode_Name.ipynb", "unicode-name"),
    ("Übersicht.ipynb", "ubersicht"),  # the Lab once made this "bersicht"
    ("café.ipynb", "cafe"),
    ("a.b.c.ipynb", "a-b-c"),
    ("my notebook.v2.ipynb", "my-notebook-v2"),
    ("  spaced   out  .ipynb", "spaced-out"),
    ("数据.ipynb", "n-5440f742"),  # CJK has no ASCII form: a hash of the name keeps it unique
    ("数据 2024.ipynb", "2024-955207ea"),
    ("图表 2024.ipynb", "2024-e7f69556"),  # ... and apart from another CJK name with the same digits
    ("Анализ.ipynb", "n-d7327abd"),
    ("🌧 rain.ipynb", "rain"),
    ("x" * 100 + ".ipynb", "x" * 71 + "-09ecb6eb"),  # cut at 80 characters, with a hash ...
    ("x" * 100 + "y.ipynb", "x" * 71 + "-a8724c85"),  # ... so that names alike up to the cut differ
]


@pytest.mark.parametrize("path, slug", SLUG_TABLE)
def test_slug_from_path(path, slug):
    assert notebooks.slug_from_path(path) == slug
    assert notebooks.check_slug(slug) == slug


def test_slug_from_a_name_without_letters_is_refused():
    with pytest.raises(notebooks.InvalidName):
        notebooks.slug_from_path("---.ipynb")


@pytest.mark.parametrize("owner", ["..", ".hidden", "a/b", "_voila", "", "x" * 65, "a..b", "a\\b"])
def test_dangerous_owner_names_are_refused(owner):
    with pytest.raises(notebooks.InvalidName):
        notebooks.check_owner(owner)


@pytest.mark.parametrize("name", ["../x", "/etc/passwd", "a/../b", ".env", "a/.git/config", 'quote".csv', "a\\b", ""])
def test_dangerous_data_file_names_are_refused(name):
    with pytest.raises(notebooks.InvalidName):
        notebooks.check_data_file_name(name)


def test_parse_notebook_accepts_valid_and_explains_invalid():
    nb = notebooks.parse_notebook(json.dumps(make_notebook(("code", "1"))).encode())
    assert nb.cells[0].source == "1"
    for raw, words in [
        (b"\xff\xfe", "not JSON"),
        (b"[1, 2]", "cells"),
        (json.dumps({"cells": [], "metadata": {}, "nbformat": 3, "nbformat_minor": 0}).encode(), "nbformat 4"),
        (json.dumps({"cells": [{"cell_type": "code"}], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}).encode(), "invalid notebook"),
    ]:
        with pytest.raises(notebooks.InvalidNotebook, match=words):
            notebooks.parse_notebook(raw)


def test_strip_hidden_cells_and_clear_outputs():
    nb = notebooks.parse_notebook(json.dumps(make_notebook(("code", "keep"), ("code", "secret", ["hide"]), ("markdown", "note", ["remove-cell"]))).encode())
    nb.cells[0]["outputs"] = [{"output_type": "stream", "name": "stdout", "text": "data"}]
    assert notebooks.strip_hidden_cells(nb, notebooks.DEFAULT_HIDDEN_TAGS) == 2
    notebooks.clear_outputs(nb)
    assert [c.source for c in nb.cells] == ["keep"] and nb.cells[0].outputs == []


def test_title_prefers_metadata_then_first_heading():
    nb = notebooks.parse_notebook(json.dumps(make_notebook(("markdown", "intro\n## Rain by region ##"))).encode())
    assert notebooks.notebook_title(nb, "fallback") == "Rain by region"
    nb.metadata["title"] = "Explicit"
    assert notebooks.notebook_title(nb, "fallback") == "Explicit"
    assert notebooks.notebook_title(notebooks.parse_notebook(json.dumps(make_notebook(("code", "1"))).encode()), "fb") == "fb"


# -- versioned store ------------------------------------------------------------------------
def test_store_swaps_versions_atomically_and_prunes(tmp_path):
    store = DashboardStore(tmp_path, versions_kept=2, grace_seconds=0)
    for n in (1, 2, 3):
        record = store.publish("alice", "report", f"nb{n}".encode(), f"Title {n}", {"data/x.csv": b"1"})
        assert record.version == n
    directory = tmp_path / "alice" / "report"
    assert os.readlink(directory / "current") == "v000003"
    assert store.versions("alice", "report") == [2, 3]
    assert (directory / "current" / "report.ipynb").read_bytes() == b"nb3"
    assert (directory / "current" / "data" / "x.csv").read_bytes() == b"1"
    assert store.get("alice", "report").title == "Title 3"
    assert [d.slug for d in store.list()] == ["report"]
    assert not [p for p in directory.iterdir() if p.name.startswith(".")]  # no staging left over


def test_replaced_versions_outlive_the_count_for_the_grace_period(tmp_path):
    store = DashboardStore(tmp_path, versions_kept=1, grace_seconds=60)
    store.publish("alice", "r", b"1", "t")
    store.publish("alice", "r", b"2", "t")
    assert store.versions("alice", "r") == [1, 2]  # v1 was replaced a moment ago
    replaced_at = os.stat(tmp_path / "alice" / "r" / "v000002").st_mtime - 61
    os.utime(tmp_path / "alice" / "r" / "v000002", (replaced_at, replaced_at))
    assert store.prune() == 1
    assert store.versions("alice", "r") == [2] and store.get("alice", "r").version == 2


def test_readers_never_see_a_missing_or_partial_version(tmp_path):
    store = DashboardStore(tmp_path, versions_kept=5, grace_seconds=0)
    store.publish("alice", "live", b"A" * 100_000, "t")
    failures, stop = [], threading.Event()

    def read():
        while not stop.is_set():
            record = store.get("alice", "live")
            try:
                content = (tmp_path / record.notebook).read_bytes()
            except FileNotFoundError:
                # A reader holding an old record may lose it to pruning: it must then find a newer one.
                content = (tmp_path / store.get("alice", "live").notebook).read_bytes()
            if len(content) != 100_000 or len(set(content)) != 1:
                failures.append(len(content))

    readers = [threading.Thread(target=read) for _ in range(3)]
    for t in readers:
        t.start()
    for n in range(15):
        store.publish("alice", "live", bytes([66 + n % 20]) * 100_000, "t")
    stop.set()
    for t in readers:
        t.join()
    assert failures == []


def test_store_refuses_bad_names_and_writes_nothing(tmp_path):
    store = DashboardStore(tmp_path)
    for owner, slug, files in [("..", "x", {}), ("alice", "../x", {}), ("alice", "ok", {"../escape": b""}), ("alice", "ok", {"ok.ipynb": b""})]:
        with pytest.raises(ValueError):
            store.publish(owner, slug, b"{}", "t", files)
    assert list(tmp_path.rglob("*")) == []
    assert store.list() == []


def test_unpublish_removes_every_version(tmp_path):
    store = DashboardStore(tmp_path)
    store.publish("alice", "gone", b"1", "t")
    store.publish("alice", "gone", b"2", "t")
    assert store.unpublish("alice", "gone") is True
    assert store.get("alice", "gone") is None and store.unpublish("alice", "gone") is False
    assert list((tmp_path / "alice").iterdir()) == []


def test_dashboard_json_follows_the_contract(tmp_path):
    record = DashboardStore(tmp_path).publish("alice", "r", b"{}", "T")
    assert set(dashboard_json(record, "https://pub.example.org/")) == {"owner", "slug", "title", "url", "version", "published", "visibility"}
    assert dashboard_json(record, "https://pub.example.org/")["url"] == "https://pub.example.org/dashboards/alice/r/"
    assert dashboard_json(record, "")["url"] == "/dashboards/alice/r/"


# -- Voila's command line and environment --------------------------------------------------
def test_voila_runs_hardened():
    argv = voila_argv(dashboards_dir="/srv/d", ip="127.0.0.1", port=8866, base_url="/dashboards/_voila/",
                      execution_timeout=30, cull_idle_timeout=600, cull_interval=60, cull_connected=False)
    for option in ("--VoilaConfiguration.strip_sources=True", "--VoilaConfiguration.show_tracebacks=False",
                   "--VoilaExecutor.timeout=30", "--MappingKernelManager.cull_idle_timeout=600",
                   "--VoilaConfiguration.file_denylist=.*", "--Voila.base_url=/dashboards/_voila/"):
        assert option in argv
    assert argv[-1] == "/srv/d"
    assert not [a for a in argv if "preheat" in a]


def test_preheating_starts_with_no_pools_and_a_control_token_file():
    argv = voila_argv(dashboards_dir="/srv/d", ip="127.0.0.1", port=8866, base_url="/b/", execution_timeout=30,
                      cull_idle_timeout=600, cull_interval=60, cull_connected=False, preheat_pool_size=2,
                      control_token_file="/run/vp/control_token")
    assert argv[1:3] == ["-m", "voila_publisher.host.voila_app"]
    for option in ("--VoilaConfiguration.preheat_kernel=True", "--VoilaConfiguration.default_pool_size=0",
                   "--PublisherVoila.pool_size=2", "--PublisherVoila.control_token_file=/run/vp/control_token"):
        assert option in argv


def test_the_hub_hands_each_user_their_own_token():
    class User:
        name = "frank"

    class Spawner:
        user = User()

    token = spawner_token(SECRET)(Spawner())
    assert token_owner(SECRET, token) == "frank"
    with pytest.raises(ValueError):
        spawner_token("short")


def test_kernels_do_not_inherit_the_services_secrets():
    env = kernel_environment({"PATH": "/bin", "HYBRID_PUBLISHER_SECRET": "x", "AWS_SECRET_ACCESS_KEY": "y", "LC_TIME": "C"}, {"MPLBACKEND": "Agg"})
    assert env == {"PATH": "/bin", "LC_TIME": "C", "MPLBACKEND": "Agg"}


# -- nginx ----------------------------------------------------------------------------------
def test_checked_in_production_config_matches_the_template():
    assert nginx.PRODUCTION_CONF.read_text() == nginx.render_public_host_conf(standalone=False), (
        "regenerate it: python -m simulators.nginx"
    )


def test_rendered_configs_pass_nginx_t(tmp_path):
    conf = tmp_path / "nginx.conf"
    conf.write_text(nginx.render_public_host_conf(standalone=True, prefix=tmp_path, listen="127.0.0.1:1"))
    result = subprocess.run([nginx.nginx_binary(), "-t", "-c", str(conf), "-p", f"{tmp_path}/", "-e", str(tmp_path / "e.log")], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    wrapped = tmp_path / "wrapped.conf"
    wrapped.write_text(
        f"pid {tmp_path}/p.pid; events {{}} http {{ client_body_temp_path {tmp_path}/c; proxy_temp_path {tmp_path}/p; "
        f"fastcgi_temp_path {tmp_path}/f; uwsgi_temp_path {tmp_path}/u; scgi_temp_path {tmp_path}/s; include {nginx.PRODUCTION_CONF}; }}"
    )
    result = subprocess.run([nginx.nginx_binary(), "-t", "-c", str(wrapped), "-p", f"{tmp_path}/", "-e", str(tmp_path / "e.log")], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_api_networks_come_from_one_setting():
    conf = nginx.render_public_host_conf(standalone=False, allowed_networks=["10.1.0.0/16"])
    assert "allow 10.1.0.0/16;" in conf and "    10.1.0.0/16 1;" in conf and "192.168.0.0/16" not in conf


# -- the client's checks (no network) -------------------------------------------------------
@pytest.fixture
def publisher():
    return DashboardPublisher(publisher_url="http://host/api/", token="t", owner="alice", max_notebook_size=10_000, max_data_size=100)


def test_prepare_cleans_the_notebook_and_collects_declared_files(publisher, tmp_path):
    (tmp_path / "proj" / "data").mkdir(parents=True)
    (tmp_path / "proj" / "data" / "in.csv").write_text("a,b\n")
    nb = make_notebook(("code", "secret", ["hide"]), ("code", "shown"), metadata={"voila_publisher": {"data_files": ["data/in.csv"]}})
    (tmp_path / "proj" / "My NB.ipynb").write_text(json.dumps(nb))
    upload = publisher.prepare(str(tmp_path), "proj/My NB.ipynb")
    assert (upload.owner, upload.slug, upload.removed_cells) == ("alice", "my-nb", 1)
    assert upload.files == {"data/in.csv": b"a,b\n"}
    assert b"secret" not in upload.notebook and b"shown" in upload.notebook


@pytest.mark.parametrize(
    "setup, path, status",
    [
        ({}, "../x.ipynb", 400),
        ({"big.ipynb": "x" * 20_000}, "big.ipynb", 413),
        ({"data.ipynb": json.dumps(make_notebook(("code", "1"), metadata={"voila_publisher": {"data_files": ["d.bin"]}})), "d.bin": "x" * 200}, "data.ipynb", 413),
        ({"miss.ipynb": json.dumps(make_notebook(("code", "1"), metadata={"voila_publisher": {"data_files": ["none.csv"]}}))}, "miss.ipynb", 400),
        ({"f.py": "1"}, "f.py", 400),
    ],
)
def test_prepare_refuses_bad_requests(publisher, tmp_path, setup, path, status):
    for name, content in setup.items():
        (tmp_path / name).write_text(content)
    with pytest.raises(PublishError) as e:
        publisher.prepare(str(tmp_path), path)
    assert e.value.status == status and e.value.message


def test_missing_settings_are_named_for_the_admin(monkeypatch):
    for var in ("HYBRID_PUBLISHER_URL", "HYBRID_PUBLISHER_TOKEN", "HYBRID_PUBLIC_URL"):
        monkeypatch.delenv(var, raising=False)
    empty = DashboardPublisher()
    assert not empty.configured and "HYBRID_PUBLISHER_URL" in empty.missing and "HYBRID_PUBLISHER_TOKEN" in empty.missing
    monkeypatch.setenv("HYBRID_PUBLISHER_URL", "http://10.0.2.10/api/")
    monkeypatch.setenv("HYBRID_PUBLISHER_TOKEN", "tok")
    monkeypatch.setenv("JUPYTERHUB_USER", "erin")
    from_env = DashboardPublisher()
    assert from_env.configured and from_env.missing is None and from_env.owner == "erin"
