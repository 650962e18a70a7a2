"""The burst chain's orchestration with in-memory backends (the contract's reference backend):
a full backend is left with its reason, a queued node is terminated after queue_timeout, the
progress stream carries each backend's events and the notes in order."""

from __future__ import annotations

import asyncio
import re

import pytest

from hybrid_spawner.caps import CapReached
from hybrid_spawner.chain import Attempts, ChainExhausted, start_along_chain
from hybrid_spawner.profiles import BurstStep
from hybrid_spawner.remote import BackendFull
from hybrid_spawner.status import NodeObservation, NodeState
from tests.contract.memory_backend import MemoryCache, MemorySpawner
from tests.unit.test_remote_lifecycle import play_node


class QueueCache(MemoryCache):
    def fetch_all(self, node_ids):
        return {n: NodeObservation(NodeState.PENDING if s == "pending" else NodeState.GONE, s)
                for n, s in self.nodes.items()}


class QueuedSpawner(MemorySpawner):
    """A backend whose node stays queued (a Slurm job on a full partition)."""

    def __init__(self, **kw):
        super().__init__(**kw)
        self.cache = QueueCache()

    async def launch_node(self, script):
        node = await super().launch_node(script)
        self.cache.nodes[node] = "pending"
        return node


def steps(*specs):
    return [BurstStep(backend, queue_timeout=timeout) for backend, timeout in specs]


async def run(children, admit=None, step_specs=None):
    specs = step_specs or [(f"b{i}", None) for i in range(len(children))]
    built = iter(children)
    released = []
    attempts = Attempts()

    async def allow(step, child):
        if admit:
            await admit(step, child)

    async def go():
        try:
            return await start_along_chain(steps(*specs), lambda step: next(built), allow,
                                           lambda: released.append(1), attempts)
        finally:
            attempts.finish()

    events = []

    async def read():
        async for event in attempts.stream():
            events.append(event["message"])

    reader = asyncio.ensure_future(read())
    try:
        result = await go()
    finally:
        await asyncio.wait_for(reader, 10)
    return result, events, released


async def test_a_full_backend_and_a_queued_node_are_left_and_the_third_starts():
    full = MemorySpawner(start_timeout=10)
    full.launch_error = BackendFull("Could not start the server: EC2 has no capacity for t3.nano right now.")
    queued = QueuedSpawner(start_timeout=30, status_refresh_interval=0.05)
    good = MemorySpawner(start_timeout=10)
    node = asyncio.ensure_future(play_node(good, 9100))
    (step, child, result), events, released = await run(
        [full, queued, good], step_specs=[("ec2", None), ("slurm", 0.5), ("openstack", None)]
    )
    await node
    assert (step.backend, child, result) == ("openstack", good, ("10.0.0.9", 9100))
    queue_note = next(e for e in events if e.startswith("Slurm: "))
    assert re.fullmatch(r"Slurm: queue full after [01] s, trying OpenStack", queue_note), events
    # each backend's own events, then the note that leaves it, in the order they were tried
    assert events == [
        "Checking the server options", "Requesting a node",
        "EC2: EC2 has no capacity for t3.nano right now, trying Slurm",
        "Checking the server options", "Requesting a node", "Launched n-0",
        "Node running at 10.0.0.9; waiting for it to boot",
        queue_note,
        "Checking the server options", "Requesting a node", "Launched n-0",
        "Node running at 10.0.0.9; waiting for it to boot", "Node booted; the notebook server is starting",
        "Notebook server listening at 10.0.0.9:9100",
    ]
    # nothing left behind: the queued node was terminated, the full backend launched none
    assert queued.cache.nodes == {"n-0": "terminated"} and full.cache.nodes == {}
    assert released == [1, 1]  # the two left steps gave their cap slots back
    for c in (full, queued, good):
        await c.cache.close()


async def test_a_backend_cap_moves_on_but_a_user_cap_ends_the_spawn():
    async def backend_full_first(step, child):
        if step.backend == "b0":
            raise CapReached("b0 is full: 3 servers are running there and the cap is 3. Try again later.", "backend")

    good = MemorySpawner(start_timeout=10)
    node = asyncio.ensure_future(play_node(good, 9101))
    (step, _, _), events, _ = await run([MemorySpawner(), good], admit=backend_full_first)
    await node
    assert step.backend == "b1" and "b0: b0 is full: 3 servers are running there and the cap is 3, trying b1" in events

    async def user_cap(step, child):
        raise CapReached("You already have 2 running servers and the cap per user is 2. Stop one first.", "user")

    with pytest.raises(CapReached, match="cap per user"):
        await run([MemorySpawner(), MemorySpawner()], admit=user_cap)
    await good.cache.close()


async def test_every_step_full_says_why_for_each():
    first, second = MemorySpawner(), MemorySpawner()
    first.launch_error = BackendFull("Could not start the server: no valid host.")
    second.launch_error = BackendFull("The research project's OpenStack quota is exhausted.")
    with pytest.raises(ChainExhausted) as e:
        await run([first, second])
    assert str(e.value) == ("No backend of this profile has room right now (b0: no valid host; "
                            "b1: The research project's OpenStack quota is exhausted). Try again later.")


async def test_any_other_failure_ends_the_chain_with_its_own_message():
    from hybrid_spawner.remote import SpawnFailed

    broken, unused = MemorySpawner(), MemorySpawner()
    broken.launch_error = SpawnFailed("Could not start the server: image ami-x does not exist.")
    with pytest.raises(SpawnFailed, match="image ami-x does not exist"):
        await run([broken, unused])
    assert unused.cache.nodes == {}
