"""RemoteSpawner's lifecycle rules with an in-memory backend: no orphan node, whatever happens."""

from __future__ import annotations

import asyncio

import pytest

from hybrid_spawner.bootstrap.credentials import registry as bootstrap_registry
from hybrid_spawner.remote import SpawnFailed
from tests.contract.memory_backend import MemorySpawner


def credential_of(script: str) -> str:
    return script.split("HYBRID_BOOTSTRAP_CREDENTIAL=")[1].split()[0].strip("'")


async def play_node(spawner, port=8888):
    """Redeem the credential and report a port, as the node agent would."""
    for _ in range(200):
        if spawner.scripts:
            break
        await asyncio.sleep(0.01)
    answer = bootstrap_registry.redeem(credential_of(spawner.scripts[-1]))
    bootstrap_registry.report_port(answer["report_secret"], port)
    return answer


async def test_start_returns_address_and_port_and_state_round_trips():
    sp = MemorySpawner(start_timeout=10)
    node = asyncio.ensure_future(play_node(sp, 9001))
    assert await sp.start() == ("10.0.0.9", 9001)
    answer = await node
    assert answer["environment"]["JUPYTERHUB_API_TOKEN"] == "tok"
    state = sp.get_state()
    assert state["node_id"] == "n-0" and state["node_port"] == 9001 and state["backend"] == "memory"
    again = MemorySpawner()
    again.load_state(state)
    assert (again.node_id, again.node_ip, again.node_port) == ("n-0", "10.0.0.9", 9001)
    assert await again.poll() is None  # unknown until a refresh: still running
    await sp.stop()
    assert sp.cache.nodes == {"n-0": "terminated"} and sp.node_id is None and await sp.poll() == 0
    await sp.cache.close()
    await again.cache.close()


async def test_timeout_terminates_the_node_with_a_message():
    sp = MemorySpawner(start_timeout=1.5)
    with pytest.raises(SpawnFailed, match="Timed out .* waiting for the node to call the hub"):
        await sp.start()
    assert sp.cache.nodes == {"n-0": "terminated"} and sp.node_id is None
    await sp.cache.close()


async def test_cancel_during_launch_still_terminates_the_late_node():
    sp = MemorySpawner(start_timeout=10)
    sp.launch_delay = 0.3
    start = asyncio.ensure_future(sp.start())
    await asyncio.sleep(0.1)
    await sp.stop()  # the hub gives up while RunInstances is still in flight
    with pytest.raises(asyncio.CancelledError):
        await start
    for _ in range(100):
        if sp.cache.nodes.get("n-0") == "terminated":
            break
        await asyncio.sleep(0.02)
    assert sp.cache.nodes == {"n-0": "terminated"}
    await sp.cache.close()


async def test_expected_errors_get_the_backend_message_and_unexpected_a_generic_one():
    sp = MemorySpawner(start_timeout=5)
    sp.launch_error = PermissionError("secret-detail")
    with pytest.raises(SpawnFailed) as e:
        await sp.start()
    assert e.value.jupyterhub_message == "the cloud said no"
    sp.launch_error = KeyError("secret-detail")
    with pytest.raises(SpawnFailed) as e:
        await sp.start()
    assert "Unexpected error" in e.value.jupyterhub_message and "secret-detail" not in e.value.jupyterhub_message
    assert sp.cache.nodes == {} and bootstrap_registry.pending_count() == 0


async def test_out_of_band_termination_reported_once_and_remembered():
    sp = MemorySpawner(start_timeout=10)
    asyncio.ensure_future(play_node(sp))
    await sp.start()
    sp.cache.nodes["n-0"] = "terminated"
    await sp.cache.refresh_now()
    assert await sp.poll() == 0
    assert "n-0 was stopped outside JupyterHub (terminated)" in sp.last_stop_message
    sp.clear_state()
    assert sp.get_state()["last_stop_message"] == sp.last_stop_message
    await sp.cache.close()
