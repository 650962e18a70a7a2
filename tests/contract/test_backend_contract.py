"""The backend contract, checked for every backend in the registry (and the in-memory reference).

A new backend added to ``hybrid_spawner.backends.BACKENDS`` is checked here without editing this
file: its folder has the rooms every backend has, it implements the hooks of
:class:`~hybrid_spawner.remote.RemoteSpawner`, its status cache answers in one batched call,
its state survives a hub restart, its options are documented for admins, profiles accept it,
and it is installed as a JupyterHub spawner entry point. Its behaviour against a real cloud is
the job of its integration tests.
"""

from __future__ import annotations

import importlib
import inspect
import tomllib
import types
from pathlib import Path

import pytest

from hybrid_spawner.backends import BACKENDS, spawner_class
from hybrid_spawner.profiles import parse_profiles
from hybrid_spawner.remote import RemoteSpawner
from hybrid_spawner.spawner import HybridSpawner
from hybrid_spawner.status import StatusCache

REPO = Path(__file__).resolve().parents[2]
REFERENCE = {"memory": "tests.contract.memory_backend.MemorySpawner"}
ALL = {**BACKENDS, **REFERENCE}
HOOKS = ("launch_node", "wait_for_address", "terminate_node", "status_cache")


def make(cls, **kw):
    user = types.SimpleNamespace(name="ada", url="/user/ada/", id=1, groups=[])
    hub = types.SimpleNamespace(url="http://hub:8081/hub/", api_url="http://hub:8081/hub/api/", base_url="/hub/", public_host="")
    return cls(user=user, hub=hub, **kw)


@pytest.fixture(params=sorted(ALL), ids=sorted(ALL))
def backend(request):
    return request.param, spawner_class(request.param, ALL)


def test_the_registry_is_what_the_hub_offers():
    assert HybridSpawner().backend_classes == BACKENDS
    assert set(BACKENDS) == {"ec2", "openstack", "slurm"}


def test_class_names_itself_as_registered_and_implements_every_hook(backend):
    name, cls = backend
    assert issubclass(cls, RemoteSpawner)
    assert cls.backend == name, f"{cls.__name__}.backend must be the registry name {name!r}"
    for hook in HOOKS:
        assert getattr(cls, hook) is not getattr(RemoteSpawner, hook), f"{cls.__name__} does not implement {hook}()"


@pytest.mark.parametrize("name", sorted(BACKENDS))
def test_registered_backend_lives_in_its_own_room(name):
    """backends/<name>/: spawner.py, status.py (a StatusCache with the batched hook) and a pure plan
    or client module; the spawner module is where the registry points."""
    folder = REPO / "hybrid_spawner" / "backends" / name
    assert (folder / "spawner.py").is_file() and (folder / "status.py").is_file()
    assert BACKENDS[name].startswith(f"hybrid_spawner.backends.{name}.spawner.")
    status = importlib.import_module(f"hybrid_spawner.backends.{name}.status")
    caches = [c for c in vars(status).values() if inspect.isclass(c) and issubclass(c, StatusCache) and c is not StatusCache]
    assert caches, f"backends/{name}/status.py defines no StatusCache"
    for cache in caches:
        assert cache.fetch_all is not StatusCache.fetch_all
        assert list(inspect.signature(cache.fetch_all).parameters) == ["self", "node_ids"]
        # The generic cache's machinery is not a backend's to override.
        for private in ("_refresh", "_refresh_once", "_loop", "observe", "track"):
            assert getattr(cache, private) is getattr(StatusCache, private), f"{cache.__name__} overrides {private}"


def test_status_cache_is_shared_and_a_status_cache(backend):
    _, cls = backend
    a, b = make(cls), make(cls)
    assert isinstance(a.status_cache(), StatusCache)
    if cls.__module__.startswith("hybrid_spawner."):
        assert a.status_cache() is b.status_cache(), "one cache per account serves every spawner"


async def test_state_survives_a_hub_restart_and_clear_forgets(backend):
    name, cls = backend
    fresh = make(cls)
    assert await fresh.poll() == 0, "poll() before any start must say 'not running'"
    running = make(cls)
    running.node_id, running.node_ip, running.node_port = "node-1", "10.0.0.7", 8888
    state = running.get_state()
    assert state["backend"] == name and state["node_id"] == "node-1" and "spawner_version" in state
    restored = make(cls)
    restored.load_state(state)
    assert (restored.node_id, restored.node_ip, restored.node_port) == ("node-1", "10.0.0.7", 8888)
    assert restored.get_state() == state
    assert await restored.poll() is None, "a restored node whose state is unknown is still running"
    restored.clear_state()
    assert restored.node_id is None and await restored.poll() == 0
    await restored.status_cache().close()


def test_unexpected_errors_are_not_described_with_their_secrets(backend):
    _, cls = backend
    message = make(cls).describe_error(RuntimeError("token=abc123-secret"))
    assert message is None or "abc123-secret" not in message


def defined_here(cls, trait_name: str) -> bool:
    """Whether the trait is declared (or redeclared) by this project, not only by JupyterHub or
    batchspawner, whose options are documented upstream."""
    owner = next(c for c in cls.mro() if trait_name in vars(c))
    return owner.__module__.startswith("hybrid_spawner.")


def test_every_option_tells_the_admin_what_it_does(backend):
    _, cls = backend
    if not cls.__module__.startswith("hybrid_spawner."):
        return
    undocumented = [
        name
        for name, trait in cls.class_traits(config=True).items()
        if defined_here(cls, name) and len((trait.help or "").split()) < 4
    ]
    assert not undocumented, f"{cls.__name__} options without a helpful help=: {undocumented}"


def test_profiles_accept_the_backend(backend):
    name, _ = backend
    profiles = parse_profiles([{"slug": "p", "backend": name}], ALL)
    assert profiles[0].backend == name


@pytest.mark.parametrize("name", sorted(BACKENDS))
def test_backend_is_installed_as_a_jupyterhub_spawner(name):
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    spawners = project["entry-points"]["jupyterhub.spawners"]
    module, _, attr = BACKENDS[name].rpartition(".")
    assert spawners.get(f"hybrid-{name}") == f"{module}:{attr}"


@pytest.mark.parametrize("name", sorted(BACKENDS))
def test_architecture_docs_name_the_backend(name):
    text = (REPO / "docs" / "architecture.md").read_text()
    assert f"backends/{name}/" in text
