"""The shared status cache: batching, and "unknown is never gone"."""

from __future__ import annotations

import asyncio

from hybrid_spawner.backends.ec2.status import EC2StatusCache
from hybrid_spawner.status import NodeObservation, NodeState, StatusCache


class ListingCache(StatusCache):
    def __init__(self):
        super().__init__(interval=0.05)
        self.listing: dict | Exception = {}
        self.calls = 0

    def fetch_all(self, node_ids):
        self.calls += 1
        if isinstance(self.listing, Exception):
            raise self.listing
        return dict(self.listing)


async def stop(cache):
    await cache.close()


RUNNING = NodeObservation(NodeState.RUNNING, "running")


async def test_unknown_until_a_refresh_started_after_tracking():
    cache = ListingCache()
    cache.track("i-1")
    assert cache.observe("i-1").state is NodeState.UNKNOWN
    await cache.refresh_now()
    assert cache.observe("i-1").state is NodeState.GONE  # listed nowhere after tracking began
    cache.listing = {"i-1": RUNNING}
    await cache.refresh_now()
    assert cache.observe("i-1") == RUNNING
    assert cache.observe("i-untracked").state is NodeState.UNKNOWN
    await stop(cache)


async def test_api_errors_mean_unknown_not_gone():
    cache = ListingCache()
    cache.track("i-1")
    cache.listing = {"i-1": RUNNING}
    await cache.refresh_now()
    cache.listing = ConnectionError("endpoint down")
    await cache.refresh_now()
    seen = cache.observe("i-1")
    assert seen.state is NodeState.UNKNOWN and "ConnectionError" in seen.detail
    assert cache.failures >= 1
    await stop(cache)


async def test_one_fetch_serves_every_node_and_loop_stops_when_nothing_is_tracked():
    cache = ListingCache()
    cache.listing = {f"i-{n}": RUNNING for n in range(50)}
    for n in range(50):
        cache.track(f"i-{n}")
    for _ in range(100):
        if cache.refreshes >= 2:
            break
        await asyncio.sleep(0.02)
    assert all(cache.observe(f"i-{n}") == RUNNING for n in range(50))
    calls = cache.calls
    assert calls <= cache.refreshes + 1
    for n in range(50):
        cache.untrack(f"i-{n}")
    await asyncio.sleep(0.2)
    assert cache._task.done()


def test_shared_returns_one_cache_per_key():
    a = EC2StatusCache.shared(("r", "e", "h"), lambda: None, "h", 30)
    assert EC2StatusCache.shared(("r", "e", "h"), lambda: None, "h", 30) is a
    assert EC2StatusCache.shared(("r", "e", "other"), lambda: None, "other", 30) is not a


class PagedClient:
    def __init__(self, pages):
        self.pages = pages
        self.calls = []

    def describe_instances(self, **kw):
        self.calls.append(kw)
        return self.pages[len(self.calls) - 1]


def test_ec2_cache_pages_through_one_filtered_listing():
    inst = lambda i, s, **kw: {"InstanceId": i, "State": {"Name": s}, **kw}  # noqa: E731
    client = PagedClient([
        {"Reservations": [{"Instances": [inst("i-1", "running", PrivateIpAddress="10.0.0.1")]}], "NextToken": "n"},
        {"Reservations": [{"Instances": [inst("i-2", "terminated", StateReason={"Message": "User initiated"}),
                                         inst("i-3", "pending")]}]},
    ])
    cache = EC2StatusCache(lambda: client, "hub-7", 30)
    found = cache.fetch_all(frozenset())
    assert cache.api_calls == 2
    assert client.calls[0]["Filters"] == [{"Name": "tag:jupyterhub/hub-id", "Values": ["hub-7"]}]
    assert client.calls[0]["MaxResults"] == 1000 and client.calls[1]["NextToken"] == "n"
    assert found["i-1"] == NodeObservation(NodeState.RUNNING, "running", "10.0.0.1")
    assert found["i-2"] == NodeObservation(NodeState.GONE, "terminated: User initiated")
    assert found["i-3"].state is NodeState.PENDING
