"""HybridSpawner without a hub: profiles from a callable, refusal before any child exists,
state round trip through the backend spawner, misconfigured overrides."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from hybrid_spawner.backends.slurm.spawner import SlurmSpawner
from hybrid_spawner.spawner import HybridSpawner, SpawnException

PROFILES = [
    {"slug": "hpc", "backend": "slurm", "overrides": {"req_partition": "batch"},
     "options": {"cpus": {"trait": "req_nprocs", "min": 1, "max": 4}}},
    {"slug": "secret", "backend": "slurm", "allowed_users": ["boss"]},
]


def make(name: str = "ada", **traits) -> HybridSpawner:
    user = SimpleNamespace(name=name, groups=[SimpleNamespace(name="staff")], url=f"/user/{name}/")
    return HybridSpawner(user=user, **traits)


async def test_profiles_may_come_from_an_async_callable_per_user():
    seen = []

    async def profiles_for(spawner):
        seen.append(spawner.user.name)
        return PROFILES[:1]

    profiles = await make(profiles=profiles_for).load_profiles()
    assert [p.slug for p in profiles] == ["hpc"] and seen == ["ada"]


@pytest.mark.parametrize(
    "options, message",
    [
        ({"profile": "nope"}, "unknown profile"),
        ({"profile": "secret"}, "not available"),
        ({"profile": "hpc", "cpus": 5}, "outside"),
        ({"profile": "hpc", "req_partition": "debug"}, "does not offer"),
    ],
)
async def test_start_refuses_before_any_backend_spawner_exists(options, message):
    spawner = make(profiles=PROFILES, user_options=options)
    with pytest.raises(SpawnException) as refused:
        await spawner.start()
    assert refused.value.status_code == 400 and message in refused.value.message
    assert spawner.child is None and spawner.get_state() == {}


async def test_state_round_trip_rebuilds_the_backend_spawner_from_stored_overrides():
    state = {
        "backend": "slurm",
        "profile": "hpc",
        "overrides": {"req_partition": "batch", "req_nprocs": 3},
        "child_state": {"backend": "slurm", "node_id": "42", "node_ip": "node7", "node_port": 8888, "job_id": "42"},
    }
    spawner = make(profiles=[])  # the profiles may have changed since: state alone is enough
    spawner.load_state(state)
    child = spawner.child
    assert isinstance(child, SlurmSpawner)
    assert (child.req_partition, child.req_nprocs, child.node_id, child.job_id) == ("batch", "3", "42", "42")
    again = spawner.get_state()
    assert again["backend"] == "slurm" and again["overrides"] == state["overrides"]
    assert again["child_state"]["node_id"] == "42" and again["child_state"]["node_port"] == 8888
    cache = child.status_cache()
    spawner.clear_state()
    assert spawner.child is None and spawner.get_state() == {}
    await cache.close()


async def test_an_override_that_is_no_trait_is_an_admin_error():
    spawner = make(profiles=[{"slug": "x", "backend": "slurm", "overrides": {"no_such_trait": 1}}])
    with pytest.raises(SpawnException) as refused:
        await spawner.start()
    assert refused.value.status_code == 500 and "misconfigured" in refused.value.message
    assert "no_such_trait" not in refused.value.message  # details go to the log only


@pytest.mark.parametrize(
    "profile",
    [
        {"slug": "x", "backend": "ec2", "overrides": {"launched_instance_type": "t3.large"}},  # state, not a setting
        {"slug": "x", "backend": "openstack", "options": {"name": {"trait": "server_name", "choices": ["a"]}}},
        {"slug": "x", "backend": "slurm", "options": {"job": {"trait": "job_id", "choices": ["1"]}}},
    ],
)
async def test_a_profile_that_names_no_configurable_setting_is_refused_when_loaded(profile, caplog):
    with pytest.raises(SpawnException) as refused:
        await make(profiles=[profile]).load_profiles()
    assert refused.value.status_code == 500 and "misconfigured" in refused.value.message
    assert "is not a configurable setting" in caplog.text


async def test_the_readme_instance_type_option_is_a_setting_and_is_tried_first():
    readme = {"slug": "ec2-small", "backend": "ec2",
              "options": {"instance_type": {"trait": "instance_type", "choices": ["t3.medium", "t3.large"]}}}
    spawner = make(profiles=[readme])
    (profile,) = await spawner.load_profiles()
    child = spawner._build_child("ec2", {"instance_types": ["t3.medium", "t3a.large"], **profile.option("instance_type").overrides_for("t3.large")})
    assert child._instance_types() == ["t3.large", "t3.medium", "t3a.large"]


async def test_why_the_last_server_stopped_survives_clear_state_and_a_hub_restart():
    spawner = make(profiles=PROFILES)
    spawner.load_state({"backend": "slurm", "profile": "hpc", "overrides": {},
                        "child_state": {"backend": "slurm", "node_id": "42", "job_id": "42"}})
    cache = spawner.child.status_cache()
    spawner.child.last_stop_message = "Slurm job 42 was stopped outside JupyterHub (CANCELLED)."
    spawner.clear_state()  # what the hub does once poll() said the server is gone
    state = spawner.get_state()
    assert state == {"last_stop_message": "Slurm job 42 was stopped outside JupyterHub (CANCELLED)."}
    restarted = make(profiles=PROFILES, user_options={"profile": "hpc"})
    restarted.load_state(state)
    assert restarted.last_stop_message == state["last_stop_message"]
    await cache.close()


def documented_profiles(path: str) -> list:
    """The first `c.HybridSpawner.profiles = [...]` literal in a document."""
    import ast
    from pathlib import Path

    text = (Path(__file__).resolve().parents[2] / path).read_text()
    start = text.index("c.HybridSpawner.profiles = [") + len("c.HybridSpawner.profiles = ")
    end = text.index("\n]\n", start) + 2
    return ast.literal_eval(text[start:end])


@pytest.mark.parametrize("path", ["README.md", "docs/profiles.md"])
async def test_the_documented_profiles_load_with_their_settings_checked(path):
    profiles = await make(profiles=documented_profiles(path)).load_profiles()
    ec2 = next(p for p in profiles if p.backend == "ec2")
    assert ec2.option("instance_type").overrides_for("t3.large") == {"instance_type": "t3.large"}


async def test_a_spawn_link_is_read_as_the_browser_sent_it_not_as_jupyterhub6_filtered_it():
    sent = {"profile": [b"hpc"], "opt-hpc--cpus": [b"3"], "next": [b"/hub/home"]}
    spawner = make(profiles=PROFILES)
    spawner.handler = SimpleNamespace(request=SimpleNamespace(query_arguments=sent))
    # JupyterHub 6 drops "profile" (no opt- prefix) and strips the prefix of the rest.
    assert await spawner.options_from_query({"hpc--cpus": ["3"]}) == {"profile": "hpc", "cpus": 3}
    spawner.handler = None  # JupyterHub 5 passes the query as sent
    assert await spawner.options_from_query({"opt-profile": ["hpc"], "opt-cpus": ["2"]}) == {"profile": "hpc", "cpus": 2}
    with pytest.raises(SpawnException) as refused:
        await spawner.options_from_query({"opt-profile": ["hpc"], "opt-cpus": ["9"]})
    assert refused.value.status_code == 400 and "outside 1..4" in refused.value.message
