"""Publish settings reach every node whatever `environment` says; the host accepts a rotated secret."""

from __future__ import annotations

import types

import pytest
from traitlets.config import Config

from hybrid_spawner.publisher_env import PublisherConfigError, publisher_environment
from hybrid_spawner.remote import RemoteSpawner, SpawnFailed
from tests.contract.memory_backend import MemorySpawner
from voila_publisher.tokens import InvalidToken, derive_publish_token, token_owner, token_owner_any

OLD = "old-secret-" + "o" * 20
NEW = "new-secret-" + "n" * 20


class RealEnvSpawner(MemorySpawner):
    """The memory backend with the real get_env chain (JupyterHub's Spawner, then RemoteSpawner)."""

    get_env = RemoteSpawner.get_env

    def __init__(self, **kw):
        kw.setdefault("hub", types.SimpleNamespace(public_host="", api_url="http://hub:8081/hub/api/", base_url="/hub/"))
        kw.setdefault("api_token", "tok")
        super().__init__(**kw)


def secret_file(tmp_path, text, name="publisher_secret"):
    path = tmp_path / name
    path.write_text(text + "\n")
    return str(path)


def test_a_replaced_environment_keeps_the_publish_settings(tmp_path):
    # The defect of issue 18: c.EC2Spawner.environment = {...} replaced c.Spawner.environment,
    # which carried the token, so publishing was off on that hub.
    config = Config()
    config.Spawner.environment = {"HYBRID_PUBLISHER_TOKEN": "lost", "KEEP": "base"}
    config.MemorySpawner.environment = {"OTHER": "x", "HYBRID_PUBLISHER_URL": "http://wrong/api/"}
    config.RemoteSpawner.publisher_url = "http://10.0.2.10:8080/api/"
    config.RemoteSpawner.publisher_public_url = "https://dashboards.example.org"
    config.RemoteSpawner.publisher_secret_file = secret_file(tmp_path, NEW)
    env = RealEnvSpawner(config=config).get_env()
    assert env["OTHER"] == "x"  # the subclass's own environment still applies
    assert env["HYBRID_PUBLISHER_URL"] == "http://10.0.2.10:8080/api/"
    assert env["HYBRID_PUBLIC_URL"] == "https://dashboards.example.org"
    assert token_owner(NEW, env["HYBRID_PUBLISHER_TOKEN"]) == "u"
    assert NEW not in repr(env)


def test_without_publish_settings_the_environment_is_left_alone():
    sp = RealEnvSpawner(environment={"HYBRID_PUBLISHER_TOKEN": "set-by-hand"})
    assert sp.get_env()["HYBRID_PUBLISHER_TOKEN"] == "set-by-hand"


def test_the_secret_file_is_read_at_every_spawn_so_rotation_needs_no_restart(tmp_path):
    path = secret_file(tmp_path, OLD)
    sp = RealEnvSpawner(publisher_url="http://10.0.2.10:8080/api/", publisher_secret_file=path)
    assert token_owner(OLD, sp.get_env()["HYBRID_PUBLISHER_TOKEN"]) == "u"
    secret_file(tmp_path, NEW)
    assert token_owner(NEW, sp.get_env()["HYBRID_PUBLISHER_TOKEN"]) == "u"


@pytest.mark.parametrize(
    "settings, message",
    [
        ({"publisher_url": "http://p/api/", "secret_file": "/nonexistent/secret"}, "cannot read '/nonexistent/secret'"),
        ({"publisher_url": "http://p/api/", "secret_file": "SHORT"}, "at least 16 bytes"),
        ({"publisher_url": "http://p/api/", "secret_file": ""}, "publisher_secret_file is empty"),
        ({"publisher_url": "", "secret_file": "GOOD"}, "publisher_url is empty"),
    ],
)
def test_bad_publish_settings_name_the_setting(tmp_path, settings, message):
    secret = settings["secret_file"]
    if secret in ("SHORT", "GOOD"):
        secret = secret_file(tmp_path, "short" if secret == "SHORT" else NEW)
    with pytest.raises(PublisherConfigError, match=message) as e:
        publisher_environment(publisher_url=settings["publisher_url"], public_url="", secret_file=secret, username="u")
    assert "c.RemoteSpawner." in str(e.value)


async def test_a_spawn_with_an_unreadable_secret_fails_before_any_node_is_launched(tmp_path):
    sp = MemorySpawner(start_timeout=5, publisher_url="http://10.0.2.10:8080/api/",
                       publisher_secret_file=str(tmp_path / "missing"))
    with pytest.raises(SpawnFailed, match="Publishing is misconfigured"):
        await sp.start()
    assert sp.cache.nodes == {} and sp.scripts == []  # nothing launched
    await sp.cache.close()


def test_during_a_rotation_tokens_of_both_secrets_are_accepted_and_others_not():
    old_token, new_token = derive_publish_token(OLD, "alice"), derive_publish_token(NEW, "bob")
    assert token_owner_any((NEW, OLD), old_token) == "alice"
    assert token_owner_any((NEW, OLD), new_token) == "bob"
    with pytest.raises(InvalidToken):
        token_owner_any((NEW,), old_token)  # the old secret retired: its tokens stop working
    with pytest.raises(InvalidToken):
        token_owner_any((NEW, OLD), derive_publish_token("third-secret-" + "t" * 20, "alice"))
    with pytest.raises(ValueError):
        token_owner_any((), new_token)
