"""A quarantine on a real hub moves hybrid_quarantines_total, and the quarantined server leaves
hybrid_running_servers (the hub no longer runs it, though the node is kept for forensics)."""

from __future__ import annotations

import pytest

from tests.fixtures.incidents import spawn_ready
from tests.integration.test_hub_metrics import get_metrics
from prometheus_client.parser import text_string_to_metric_families

pytestmark = pytest.mark.integration


def scrape(hub) -> dict[tuple, float]:
    status, text = get_metrics(hub, hub.admin_token)  # the admin role includes read:metrics
    assert status == 200, text[:300]
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def test_a_quarantine_is_counted_and_the_server_no_longer_counts_as_running(incident_world):
    world, user = incident_world, "quentin"
    instance = spawn_ready(world, user)
    before = scrape(world.hub)
    running = ("hybrid_running_servers", (("backend", "ec2"), ("profile", "")))
    quarantines = ("hybrid_quarantines_total", (("backend", "ec2"),))
    assert before.get(running, 0) >= 1

    _, incident = world.hub.api("POST", f"/hybrid/quarantine/{user}", {"reason": "metrics test"}, expect=201)
    after = scrape(world.hub)
    assert after.get(quarantines, 0) == before.get(quarantines, 0) + 1
    assert after.get(running) == before[running] - 1
    assert [i["InstanceId"] for i in world.live_instances(user)] == [instance["InstanceId"]], "the node is kept"

    world.hub.api("POST", f"/hybrid/incidents/{incident['id']}/release", {"terminate": True}, expect=200)
    assert scrape(world.hub).get(quarantines) == after[quarantines], "a release is not a quarantine"
