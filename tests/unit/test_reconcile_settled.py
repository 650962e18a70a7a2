"""A spawn that completes while a reconcile listing runs is not mistaken for a lost server."""

from __future__ import annotations

import asyncio
import logging

from hybrid_spawner.reconcile import runner
from hybrid_spawner.reconcile.plan import Record


def test_settled_records_marks_what_changed_during_the_listing_pending():
    before = [Record("ann", "", "ec2", None, pending=True), Record("bob", "", "ec2", "i-1")]
    after = [Record("ann", "", "ec2", "i-new"), Record("bob", "", "ec2", "i-1"), Record("cid", "", "ec2", "i-2")]
    settled = runner.settled_records(before, after)
    assert [(r.user, r.node_id, r.pending) for r in settled] == [
        ("ann", "i-new", True), ("bob", "i-1", False), ("cid", "i-2", True)]


def test_a_spawn_completing_during_the_listing_is_not_marked_stopped(monkeypatch):
    reconciler = runner.Reconciler(backends=["ec2"], mode="terminate", grace_period=0.0)
    reconciler.app, reconciler.log = object(), logging.getLogger("test")
    records = {"now": [Record("ann", "", "ec2", None, pending=True)]}  # ann's spawn is in flight

    async def listing_during_which_the_spawn_completes(name):
        # The listing's snapshot was taken before ann's node existed; her spawn saves its
        # state (node i-new, no longer pending) before the listing returns.
        records["now"] = [Record("ann", "", "ec2", "i-new")]
        return [], "", 0.01

    stopped = []

    async def mark_stopped(finding):
        stopped.append(finding)
        return "marked stopped"

    monkeypatch.setattr(runner, "hub_records", lambda app: records["now"])
    monkeypatch.setattr(reconciler, "_list", listing_during_which_the_spawn_completes)
    monkeypatch.setattr(reconciler, "_mark_stopped", mark_stopped)

    async def no_homes():
        return {}

    monkeypatch.setattr(reconciler, "_archive_homes", no_homes)  # no hub config here: no backend spawners
    report = asyncio.run(reconciler.run_once())
    assert stopped == [] and report["findings"] == []

    # The next pass, with the node listed, finds everything in order; with it missing, it is gone.
    async def listing_without_it(name):
        return [], "", 0.01

    monkeypatch.setattr(reconciler, "_list", listing_without_it)
    asyncio.run(reconciler.run_once())
    assert [(f.kind, f.node_id) for f in stopped] == [("gone", "i-new")]
