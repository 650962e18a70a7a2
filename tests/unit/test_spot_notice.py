"""Spot interruption notices, the pure parts: what the instance metadata says (node side), what
a node may report (server and hub side), and the sentences the researcher reads."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest

from hybrid_spawner.bootstrap import interruption
from hybrid_spawner.bootstrap.credentials import CredentialRejected
from hybrid_spawner.bootstrap.spot_watch import (
    parse_instance_action,
    parse_rebalance,
    parse_time,
    started_before,
    sync_deadline,
    sync_summary,
)
from voila_publisher.notices.notice import validate_notice

NOTICE = {
    "kind": "interruption", "action": "terminate", "time": "2026-12-07T12:04:00Z", "noticed": "2026-12-07T12:02:00Z",
    "sync": {"state": "done", "files": 48, "uploaded": 3, "errors": 0, "finished": "2026-12-07T12:02:03Z"},
}


# -- the instance metadata ------------------------------------------------------------------------
def test_no_notice_is_a_404_and_a_notice_gives_action_and_time():
    assert parse_instance_action(404, "") is None
    body = json.dumps({"action": "terminate", "time": "2026-12-07T12:04:00Z"})
    assert parse_instance_action(200, body) == {"action": "terminate", "time": "2026-12-07T12:04:00Z"}
    # AWS's examples carry no fractions, but a parser must not choke on them.
    assert parse_instance_action(200, '{"action": "stop", "time": "2026-12-07T12:04:00.250Z"}')["time"] == "2026-12-07T12:04:00Z"


@pytest.mark.parametrize(
    "status, body",
    [
        (200, '{"action": "reboot", "time": "2026-12-07T12:04:00Z"}'),  # not an action AWS announces
        (200, '{"action": "terminate"}'),
        (200, '{"action": "terminate", "time": "2026-12-07T12:04:00"}'),  # no zone: not AWS's notation
        (200, '{"action": "terminate", "time": "2026-12-07T12:04:00+02:00Z"}'),
        (200, '{"action": "terminate", "time": "tomorrow"}'),
        (200, "<html>captive portal</html>"),
        (200, '["terminate"]'),
        (500, ""),
        (401, ""),
    ],
)
def test_anything_else_from_instance_action_is_an_error_not_a_notice(status, body):
    with pytest.raises(ValueError):
        parse_instance_action(status, body)


def test_rebalance_recommendation():
    assert parse_rebalance(404, "") is None
    assert parse_rebalance(200, '{"noticeTime": "2026-12-07T11:58:10Z"}') == "2026-12-07T11:58:10Z"
    for body in ('{"noticeTime": 5}', '{}', "[]", "nope"):
        with pytest.raises(ValueError):
            parse_rebalance(200, body)


def test_times_are_utc():
    assert parse_time("2026-12-07T12:04:00Z") == datetime(2026, 12, 7, 12, 4, tzinfo=timezone.utc)


# -- the final sync ------------------------------------------------------------------------------
def test_the_sync_summary_counts_what_the_bucket_holds():
    job = {"state": "done", "uploaded": 3, "skipped": 45, "errors": [], "conflicts": [], "finished": "2026-12-07T12:02:03.120Z"}
    assert sync_summary(200, job) == {"state": "done", "files": 48, "uploaded": 3, "errors": 0,
                                      "finished": "2026-12-07T12:02:03.120Z"}
    failed = dict(job, state="error", errors=[{"path": "a", "message": "x"}], conflicts=["b"])
    assert sync_summary(200, failed)["errors"] == 2
    assert sync_summary(200, dict(job, state="running"))["state"] == "timeout"
    assert sync_summary(200, dict(job, state="running"))["finished"] is None
    not_configured = {"message": "HYBRID_SYNC_BUCKET is not set", "reason": "not-configured"}
    assert sync_summary(409, not_configured)["state"] == "not-configured"
    assert sync_summary(0, None)["state"] == "failed"
    assert sync_summary(500, "<html>")["state"] == "failed"


def test_the_final_sync_ends_before_the_reclaim():
    now = datetime(2026, 12, 7, 12, 2, tzinfo=timezone.utc)
    assert sync_deadline("2026-12-07T12:04:00Z", now) == 110.0  # AWS's two minutes
    assert sync_deadline("2026-12-07T12:02:30Z", now) == 20.0
    assert sync_deadline("2026-12-07T12:02:05Z", now) == 1.0  # too late to be careful: try anyway


def test_a_sync_already_running_at_the_notice_is_not_enough():
    notice = datetime(2026, 12, 7, 12, 2, 0, tzinfo=timezone.utc)
    assert started_before({"started": "2026-12-07T12:01:40.500Z"}, notice)
    assert not started_before({"started": "2026-12-07T12:02:00.010Z"}, notice)
    assert not started_before({"started": None}, notice)


# -- what a node may report ----------------------------------------------------------------------
def test_a_notice_is_checked_field_by_field():
    assert validate_notice(NOTICE)["sync"] == {"state": "done", "files": 48, "uploaded": 3, "errors": 0,
                                               "finished": "2026-12-07T12:02:03Z"}
    rebalance = {"kind": "rebalance", "time": "2026-12-07T11:58:10Z", "sync": {"state": "running"}}
    assert "action" not in validate_notice(rebalance)
    bad = [
        dict(NOTICE, kind="meteor"),
        dict(NOTICE, action="explode"),
        dict(NOTICE, time="12:04"),
        dict(NOTICE, time="2026-12-07T14:04:00+02:00"),
        dict(NOTICE, sync={"state": "done", "files": -1}),
        dict(NOTICE, sync={"state": "done", "files": True}),
        dict(NOTICE, sync={"state": "<script>"}),
        dict(NOTICE, sync=None),
        ["not", "a", "notice"],
    ]
    for raw in bad:
        with pytest.raises(ValueError):
            validate_notice(raw)


def test_the_hub_takes_interruptions_only():
    with pytest.raises(ValueError):
        interruption.validate_notice({"kind": "rebalance", "time": "2026-12-07T11:58:10Z", "sync": {"state": "done"}})


# -- the sentence at the next spawn ----------------------------------------------------------------
def reason(**sync) -> str:
    return interruption.stop_reason(interruption.validate_notice(dict(NOTICE, sync={**NOTICE["sync"], **sync})))


def test_the_stop_reason_names_the_reclaim_and_the_sync():
    assert reason() == ("reclaimed by AWS (spot interruption) at 12:04 UTC; your notebooks were synced to the "
                        "bucket at 12:02 UTC (48 files).")
    assert reason(files=1) .endswith("(1 file).")
    assert reason(state="error", errors=2).endswith("the final sync left 48 files in the bucket; 2 files could not be sent.")
    assert "no bucket is set up" in reason(state="not-configured", files=0)
    assert "files it had not sent are lost" in reason(state="running", finished=None)
    assert "may be lost" in reason(state="timeout", finished=None)
    stopped = interruption.stop_reason(interruption.validate_notice(dict(NOTICE, action="stop")))
    assert stopped.startswith("stopped by AWS (spot interruption) at 12:04 UTC")


# -- the notice secret ---------------------------------------------------------------------------
def test_a_notice_reaches_only_the_spawner_its_secret_was_issued_to():
    registry = interruption.InterruptionRegistry()
    got: dict[str, list] = {"ana": [], "ben": []}
    secret_ana, hash_ana = registry.issue("ana", got["ana"].append)
    registry.issue("ben", got["ben"].append)
    label, notice = registry.report(secret_ana, NOTICE)
    assert label == "ana" and got == {"ana": [notice], "ben": []}
    assert secret_ana not in hash_ana and len(hash_ana) == 64
    for secret in ("", None, "guess", hash_ana):
        with pytest.raises(CredentialRejected):
            registry.report(secret, NOTICE)
    with pytest.raises(ValueError):
        registry.report(secret_ana, {"kind": "interruption"})
    registry.forget(hash_ana)
    with pytest.raises(CredentialRejected):
        registry.report(secret_ana, NOTICE)
    # After a hub restart the spawner re-registers the hash from its state.
    registry.restore(hash_ana, "ana", got["ana"].append)
    registry.report(secret_ana, NOTICE)
    assert len(got["ana"]) == 2


def test_a_node_cannot_flood_the_hub_with_notices():
    registry = interruption.InterruptionRegistry()
    secret, _ = registry.issue("ana", lambda notice: None)
    for _ in range(interruption.MAX_REPORTS):
        registry.report(secret, NOTICE)
    with pytest.raises(CredentialRejected):
        registry.report(secret, NOTICE)
