"""The metrics module's small API (hybrid_spawner.metrics), on prometheus_client's real registry."""

from __future__ import annotations

import asyncio

import pytest
from prometheus_client import REGISTRY, Gauge

from hybrid_spawner import metrics
from hybrid_spawner.status import NodeObservation, NodeState, StatusCache


def sample(name: str, **labels) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_record_spawn_counts_outcomes_and_times_only_successes():
    ok, failed = sample("hybrid_spawns_total", backend="unit", outcome="success"), sample("hybrid_spawns_total", backend="unit", outcome="failure")
    timed = sample("hybrid_spawn_duration_seconds_count", backend="unit")
    metrics.record_spawn("unit", "success", 12.5)
    metrics.record_spawn("unit", "failure", 0.2)
    assert sample("hybrid_spawns_total", backend="unit", outcome="success") == ok + 1
    assert sample("hybrid_spawns_total", backend="unit", outcome="failure") == failed + 1
    assert sample("hybrid_spawn_duration_seconds_count", backend="unit") == timed + 1
    assert sample("hybrid_spawn_duration_seconds_bucket", backend="unit", le="20.0") >= 1
    with pytest.raises(ValueError, match="spawn outcome"):
        metrics.record_spawn("unit", "maybe")


def test_reconciled_and_quarantines_are_ready_for_other_work():
    before = sample("hybrid_nodes_reconciled_total", backend="ec2", action="terminated")
    metrics.record_reconciled("ec2", "terminated", 3)
    assert sample("hybrid_nodes_reconciled_total", backend="ec2", action="terminated") == before + 3
    for bad in ("i-0123456789abcdef0", "", "Terminated"):  # an id or a typo would start a series per value
        with pytest.raises(ValueError, match="short lowercase word"):
            metrics.record_reconciled("ec2", bad)
    with pytest.raises(ValueError, match="negative"):
        metrics.record_reconciled("ec2", "terminated", -1)
    q = sample("hybrid_quarantines_total", backend="openstack")
    metrics.record_quarantine("openstack")
    assert sample("hybrid_quarantines_total", backend="openstack") == q + 1


def test_running_servers_never_drift_when_a_server_is_marked_twice():
    gauge = Gauge("unit_running_servers", "test gauge", ["backend", "profile"], registry=None)
    servers = metrics.RunningServers(gauge)
    servers.started("ada:", "ec2", "gpu")
    servers.started("ada:", "ec2", "gpu")  # restored after a restart, then polled: still one
    servers.started("bob:", "slurm", "")
    assert gauge.labels("ec2", "gpu")._value.get() == 1 and servers.count() == 2
    servers.stopped("ada:")
    servers.stopped("ada:")  # stop() and a failed poll both forget the node
    assert gauge.labels("ec2", "gpu")._value.get() == 0 and servers.count(backend="slurm") == 1
    servers.started("bob:", "slurm", "big")  # the same server under another profile moves over
    assert gauge.labels("slurm", "")._value.get() == 0 and gauge.labels("slurm", "big")._value.get() == 1


class FlakyCache(StatusCache):
    backend = "unit-cache"

    def __init__(self):
        super().__init__(interval=60)
        self.fail = False

    def fetch_all(self, node_ids):
        if self.fail:
            raise TimeoutError("the listing timed out")
        return {n: NodeObservation(NodeState.RUNNING) for n in node_ids}


def test_status_refreshes_and_their_errors_are_counted_by_backend():
    cache = FlakyCache()
    refreshes = sample("hybrid_status_refreshes_total", backend="unit-cache")
    errors = sample("hybrid_status_refresh_errors_total", backend="unit-cache", error="TimeoutError")

    async def run():
        cache._tracked["n-1"] = 0.0
        await cache.refresh_now()
        cache.fail = True
        await cache.refresh_now()

    asyncio.run(run())
    assert sample("hybrid_status_refreshes_total", backend="unit-cache") == refreshes + 2
    assert sample("hybrid_status_refresh_errors_total", backend="unit-cache", error="TimeoutError") == errors + 1
