"""The pure rules of stop_action = "stop": parked records, what a start does with a parked
instance in each EC2 state, the shutdown behaviour of a launch, the reconciler's expiry, and what
is read back from the hub's database."""

from __future__ import annotations

import pytest

from hybrid_spawner import parking
from hybrid_spawner.backends.ec2 import plan
from hybrid_spawner.reconcile.plan import END_PARKED, Listed, Record, expired_parked
from hybrid_spawner.reconcile.plan import plan as reconcile_plan
from hybrid_spawner.reconcile.records import record_from_state
from hybrid_spawner.spawner import valid_parked_nodes


def test_a_parked_record_expires_after_its_max_age_and_zero_means_never():
    record = parking.parked_record("i-1", 3600, now=1000.0)
    assert record == {"node_id": "i-1", "stopped_at": 1000.0, "expires_at": 4600.0}
    assert not parking.is_expired(record, 4599.9) and parking.is_expired(record, 4600.0)
    forever = parking.parked_record("i-2", 0, now=1000.0)
    assert forever["expires_at"] is None and not parking.is_expired(forever, 1e12)


@pytest.mark.parametrize("seconds, text", [(5, "5 s"), (600, "10 min"), (3 * 3600, "3 h"), (3 * 86400, "3 days")])
def test_how_long_a_node_waited_reads_well(seconds, text):
    assert parking.waited({"stopped_at": 1000.0}, 1000.0 + seconds) == text


@pytest.mark.parametrize("value", [None, "i-1", {}, {"node_id": ""}, {"node_id": 5}, ["i-1"]])
def test_malformed_parked_records_are_never_trusted(value):
    assert not parking.valid_record(value)


@pytest.mark.parametrize("state, step", [
    ("stopped", plan.RESUME),
    ("stopping", plan.WAIT_STOPPED),
    ("running", plan.STOP_FIRST),  # started outside the hub: its boot script is spent
    ("pending", plan.STOP_FIRST),
    ("shutting-down", plan.LAUNCH_NEW),
    ("terminated", plan.LAUNCH_NEW),
    (None, plan.LAUNCH_NEW),  # not found
])
def test_what_a_start_does_with_a_parked_instance(state, step):
    assert plan.resume_step(state) == step


def _spec(behaviour):
    return plan.LaunchSpec(image_id="ami-1", user_data="#!/bin/bash", tags=[], security_group_ids=[],
                           shutdown_behavior=behaviour)


def test_a_node_powering_itself_off_stops_with_stop_action_stop_but_spot_always_terminates():
    on_demand = plan.Attempt("t3.micro", None, plan.ON_DEMAND)
    spot = plan.Attempt("t3.micro", None, plan.SPOT)
    assert plan.run_instances_request(_spec("stop"), on_demand, "t")["InstanceInitiatedShutdownBehavior"] == "stop"
    assert plan.run_instances_request(_spec("terminate"), on_demand, "t")["InstanceInitiatedShutdownBehavior"] == "terminate"
    assert plan.run_instances_request(_spec("stop"), spot, "t")["InstanceInitiatedShutdownBehavior"] == "terminate"


HYBRID_STATE = {
    "backend": "",
    "parked_nodes": {
        "cpu": {"backend": "ec2", "overrides": {}, "node": {"node_id": "i-old", "expires_at": 100.0}},
        "gpu": {"backend": "ec2", "overrides": {}, "node": {"node_id": "i-gpu", "expires_at": None}},
        "bad": {"backend": "ec2", "node": {"node_id": ""}},
    },
}


def test_records_carry_the_parked_nodes_of_a_hybrid_and_of_a_direct_spawner():
    record = record_from_state("ann", "", HYBRID_STATE, pending=False)
    assert record.node_id is None
    assert set(record.parked) == {("cpu", "ec2", "i-old", 100.0), ("gpu", "ec2", "i-gpu", None)}
    direct = record_from_state("bob", "", {"parked_node": {"node_id": "i-b", "expires_at": 5.0}}, False, "ec2")
    assert direct.parked == (("", "ec2", "i-b", 5.0),)


def test_the_reconciler_ends_only_what_waited_past_its_max_age():
    record = record_from_state("ann", "", HYBRID_STATE, pending=False)
    assert expired_parked([record], 99.0) == []
    (finding,) = expired_parked([record], 100.0)
    assert (finding.kind, finding.node_id, finding.action, finding.detail, finding.user) == \
        ("expired", "i-old", END_PARKED, "cpu", "ann")


def test_a_parked_node_is_claimed_so_it_is_never_an_orphan_even_when_running():
    record = Record("ann", "", "", None, parked=(("cpu", "ec2", "i-old", None),))
    findings, _ = reconcile_plan([record], {"ec2": [Listed("i-old", "running"), Listed("i-stray", "running")]},
                                 {}, now=1000.0, mode="terminate", grace=0)
    assert [f.node_id for f in findings] == ["i-stray"]


def test_parked_nodes_read_back_from_the_database_drop_what_is_malformed():
    assert set(valid_parked_nodes(HYBRID_STATE["parked_nodes"])) == {"cpu", "gpu"}
    assert valid_parked_nodes("junk") == {} and valid_parked_nodes({"x": {"backend": 3, "node": {"node_id": "i"}}}) == {}


def test_a_resume_key_trades_once_for_the_fresh_credential_armed_for_it():
    import asyncio

    from hybrid_spawner.bootstrap.credentials import BootstrapRegistry, CredentialRejected

    async def scenario():
        registry = BootstrapRegistry()
        first, credential = registry.issue("ann", lambda: {"environment": {}}, ttl=60)
        first.resumable = True
        answer = registry.redeem(credential)
        key = answer["resume_key"]
        assert first.resume_hash and key not in first.resume_hash
        # Resumed: a fresh credential, armed under the key's hash; the old credential is spent.
        second, fresh = registry.issue("ann", lambda: {"environment": {"n": "2"}}, ttl=60)
        second.resumable = True
        with pytest.raises(CredentialRejected):
            registry.redeem_resume(key)  # nothing armed yet
        registry.arm_resume(first.resume_hash, second, fresh)
        again = registry.redeem_resume(key)
        assert again["environment"] == {"n": "2"} and again["resume_key"] != key
        for replay in (lambda: registry.redeem_resume(key), lambda: registry.redeem(fresh), lambda: registry.redeem(credential)):
            with pytest.raises(CredentialRejected):
                replay()
        # An armed key dies with its spawn.
        third, other = registry.issue("ann", lambda: {}, ttl=60)
        registry.arm_resume(second.resume_hash, third, other)
        third.close()
        with pytest.raises(CredentialRejected):
            registry.redeem_resume(again["resume_key"])

    asyncio.run(scenario())
