"""The reconcile planner's rules (pure): orphans, grace, spawns in flight, gone records, failed listings."""

from __future__ import annotations

import pytest

from hybrid_spawner.reconcile import plan as p
from hybrid_spawner.reconcile.records import record_from_state


def run(records, listings, first_seen=None, now=100.0, mode="terminate", grace=30.0):
    return p.plan(records, listings, first_seen or {}, now, mode, grace)


def actions(findings):
    return {(f.kind, f.node_id): f.action for f in findings}


def test_a_claimed_running_node_yields_nothing():
    findings, seen = run([p.Record("ann", "", "ec2", "i-1")], {"ec2": [p.Listed("i-1", "running")]})
    assert findings == [] and seen == {}


def test_an_orphan_waits_out_the_grace_period_then_is_terminated():
    listing = {"ec2": [p.Listed("i-9", "running")]}
    findings, seen = run([], listing, now=100.0)
    assert actions(findings) == {("orphan", "i-9"): p.WAIT_GRACE} and seen == {("ec2", "i-9"): 100.0}
    findings, seen = run([], listing, seen, now=129.0)
    assert actions(findings) == {("orphan", "i-9"): p.WAIT_GRACE}
    findings, seen = run([], listing, seen, now=130.0)
    assert actions(findings) == {("orphan", "i-9"): p.TERMINATE} and findings[0].unclaimed_for == 30.0


def test_report_mode_never_terminates():
    findings, _ = run([], {"ec2": [p.Listed("i-9", "running")]}, {("ec2", "i-9"): 0.0}, mode="report")
    assert actions(findings) == {("orphan", "i-9"): p.REPORT}


def test_a_pending_spawn_on_the_backend_holds_every_orphan_there():
    records = [p.Record("bob", "", "ec2", None, pending=True)]
    listing = {"ec2": [p.Listed("i-9", "pending")], "openstack": [p.Listed("s-1", "ACTIVE")]}
    findings, _ = run(records, listing, {("ec2", "i-9"): 0.0, ("openstack", "s-1"): 0.0})
    assert actions(findings) == {("orphan", "i-9"): p.WAIT_SPAWN, ("orphan", "s-1"): p.TERMINATE}
    # a pending spawn whose backend is not known yet (a profile not chosen) holds all of them
    findings, _ = run([p.Record("bob", "", "", None, pending=True)], listing, {("ec2", "i-9"): 0.0, ("openstack", "s-1"): 0.0})
    assert set(actions(findings).values()) == {p.WAIT_SPAWN}


def test_a_node_that_is_claimed_again_restarts_its_clock():
    listing = {"ec2": [p.Listed("i-9", "running")]}
    _, seen = run([], listing, now=0.0)
    _, seen = run([p.Record("ann", "", "ec2", "i-9")], listing, seen, now=10.0)
    assert seen == {}
    findings, _ = run([], listing, seen, now=50.0)
    assert actions(findings) == {("orphan", "i-9"): p.WAIT_GRACE}


def test_gone_records_are_marked_stopped_with_the_reason():
    records = [p.Record("ann", "", "ec2", "i-1"), p.Record("cy", "big", "ec2", "i-2"), p.Record("dee", "", "ec2", "i-3", pending=True)]
    findings, _ = run(records, {"ec2": [p.Listed("i-2", "terminated: User initiated", gone=True)]})
    assert actions(findings) == {("gone", "i-1"): p.MARK_STOPPED, ("gone", "i-2"): p.MARK_STOPPED}
    reasons = {f.node_id: (f.user, f.server, f.detail) for f in findings}
    assert reasons["i-1"] == ("ann", "", "i-1 is no longer listed by ec2")
    assert reasons["i-2"] == ("cy", "big", "i-2 is terminated: User initiated")


def test_a_failed_listing_finds_nothing_and_keeps_the_orphan_clocks():
    records = [p.Record("ann", "", "ec2", "i-1")]
    seen = {("ec2", "i-9"): 5.0, ("openstack", "s-1"): 7.0}
    findings, new_seen = run(records, {"ec2": None, "openstack": []}, seen)
    assert findings == [] and new_seen == {("ec2", "i-9"): 5.0}


def test_gone_orphans_and_other_backends_records_are_left_alone():
    records = [p.Record("ann", "", "slurm", "42")]
    findings, _ = run(records, {"ec2": [p.Listed("i-8", "terminated", gone=True)]})
    assert findings == []


@pytest.mark.parametrize("mode,grace", [("delete", 10.0), ("", 10.0), ("report", -1.0)])
def test_bad_settings_are_refused(mode, grace):
    with pytest.raises(ValueError):
        p.plan([], {}, {}, 0.0, mode, grace)


def test_records_from_hybrid_and_direct_spawner_state():
    hybrid = {"backend": "openstack", "child_state": {"node_id": "s-1", "backend": "openstack"}}
    assert record_from_state("a", "x", hybrid, False) == p.Record("a", "x", "openstack", "s-1", False)
    assert record_from_state("a", "", {"backend": "ec2", "node_id": "i-1"}, True) == p.Record("a", "", "ec2", "i-1", True)
    assert record_from_state("a", "", {}, True, "ec2") == p.Record("a", "", "ec2", None, True)
    assert record_from_state("a", "", None, False) == p.Record("a", "", "", None, False)


def test_the_reconciler_refuses_bad_options_with_the_option_name():
    from traitlets import TraitError
    from traitlets.config import Config

    from hybrid_spawner.reconcile.runner import Reconciler

    for section, message in [({"mode": "delete"}, "mode"), ({"backends": ["pbs"]}, "cannot reconcile pbs"),
                             ({"interval": 0.0}, "interval"), ({"grace_period": -5.0}, "grace_period")]:
        c = Config({"Reconciler": section})
        with pytest.raises(TraitError, match=message):
            Reconciler(config=c)
    assert Reconciler().mode == "report"
    assert Reconciler(config=Config({"Reconciler": {"backends": ["ec2", "slurm"]}})).backends == ["ec2", "slurm"]


def test_an_unclaimed_node_that_is_stopped_but_still_exists_is_an_orphan_a_terminated_one_is_not():
    listed = [p.Listed("i-stopped", "stopped: Client.InstanceInitiatedShutdown", gone=True),
              p.Listed("os-off", "SHUTOFF", gone=True),
              p.Listed("i-gone", "terminated: User initiated", gone=True),
              p.Listed("os-deleted", "DELETED", gone=True)]
    findings, _ = p.plan([], {"ec2": listed}, {}, now=100.0, mode="terminate", grace=0)
    assert sorted(f.node_id for f in findings) == ["i-stopped", "os-off"]
    assert all(f.kind == "orphan" and f.action == p.TERMINATE for f in findings)


def test_a_quarantined_node_is_never_an_orphan():
    listed = [p.Listed("i-evidence", "stopped: User initiated", gone=True), p.Listed("i-live", "running")]
    findings, _ = p.plan([], {"ec2": listed}, {}, now=100.0, mode="terminate", grace=0,
                         held={("ec2", "i-evidence"), ("ec2", "i-live")})
    assert findings == []
