"""Who spends what: the cost arithmetic on a scripted week, the price lookup, the SQLite ledger."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest

from hybrid_spawner.costs.arithmetic import Month, Session, hours_in, usage
from hybrid_spawner.costs.ledger import UsageLedger
from hybrid_spawner.costs.prices import PriceTableError, check_price_table, load_price_table, price_per_hour


def at(day: int, hour: float = 0, month: int = 12) -> datetime:
    return datetime(2026, month, day, int(hour), int(round((hour % 1) * 60)), tzinfo=timezone.utc)


NOW = at(7, 12)
# A scripted week of starts and stops (December 2026, "now" is Monday 7th, 12:00 UTC).
WEEK = [
    Session("ada", "", "cpu", "slurm", 0.02, at(30, 22, month=11), at(1, 2)),  # across the month boundary
    Session("ada", "gpu", "gpu", "ec2", 1.50, at(2, 9), at(2, 17.5)),
    Session("bob", "", "cpu", "slurm", 0.02, at(3, 8), at(3, 20)),
    Session("bob", "", "burst", "ec2", 0.10, at(5, 10), at(5, 10.75)),
    Session("carol", "", "gpu", "ec2", 1.50, at(7, 10), None),  # still running
    Session("dave", "", "cpu", "slurm", 0.02, at(20, 0, month=11), at(21, 0, month=11)),  # November only
]


def lines(rows, *names):
    return {tuple(r[n] for n in names): (r["hours"], r["cost"], r["running"]) for r in rows}


def test_a_scripted_week_adds_up():
    figures = usage(WEEK, Month(2026, 12), NOW).as_dict()
    assert figures["month"] == "2026-12"
    assert figures["total"] == {"hours": 25.25, "cost": 16.105, "running": 1}
    assert lines(figures["by_user"], "user") == {
        ("ada",): (10.5, 12.79, 0),  # 2 h of the boundary run + 8.5 h GPU
        ("bob",): (12.75, 0.315, 0),
        ("carol",): (2.0, 3.0, 1),  # running since 10:00, counted up to now
    }
    assert lines(figures["by_profile"], "profile") == {
        ("cpu",): (14.0, 0.28, 0), ("gpu",): (10.5, 15.75, 1), ("burst",): (0.75, 0.075, 0)}
    assert lines(figures["by_backend"], "backend") == {("slurm",): (14.0, 0.28, 0), ("ec2",): (11.25, 15.825, 1)}
    assert len(figures["rows"]) == 5  # (user, profile, backend) groups with hours in December
    for group in ("by_user", "by_profile", "by_backend", "rows"):
        assert sum(r["cost"] for r in figures[group]) == pytest.approx(figures["total"]["cost"])
        assert sum(r["hours"] for r in figures[group]) == pytest.approx(figures["total"]["hours"])
    # the most expensive first
    assert [r["user"] for r in figures["by_user"]] == ["ada", "carol", "bob"]


def test_the_previous_month_gets_the_other_side_of_the_boundary():
    figures = usage(WEEK, Month(2026, 11), NOW).as_dict()
    assert figures["total"] == {"hours": 26.0, "cost": 0.52, "running": 0}
    assert lines(figures["by_user"], "user") == {("dave",): (24.0, 0.48, 0), ("ada",): (2.0, 0.04, 0)}


def test_a_future_month_and_an_empty_ledger_are_zero():
    assert usage(WEEK, Month(2027, 1), NOW).as_dict()["total"] == {"hours": 0.0, "cost": 0.0, "running": 0}
    assert usage([], Month(2026, 12), NOW).as_dict()["by_user"] == []


def test_hours_in_clips_to_the_window_and_now():
    s = Session("u", "", "p", "b", 1.0, at(6, 23), None)
    assert hours_in(s, Month(2026, 12).start, Month(2026, 12).end, NOW) == pytest.approx(13.0)
    assert hours_in(s, at(7, 0), at(7, 1), NOW) == pytest.approx(1.0)
    assert hours_in(s, at(8), at(9), NOW) == 0.0


@pytest.mark.parametrize("text", ["2026-13", "2026-00", "26-12", "2026-1", "december", "", "2026-12-01", "1969-12"])
def test_bad_months_are_refused(text):
    with pytest.raises(ValueError, match="month must be YYYY-MM"):
        Month.parse(text)


def test_month_bounds_wrap_the_year():
    assert Month.parse("2026-12").end == datetime(2027, 1, 1, tzinfo=timezone.utc)
    assert str(Month.of(datetime(2026, 2, 28, 23, tzinfo=timezone.utc))) == "2026-02"


# -- prices --------------------------------------------------------------------------------
TABLE = {
    "instance_types": {"t3.micro": 0.0104},
    "profiles": {"burst": {"ec2": 0.2}, "gpu": 1.2},
    "backends": {"slurm": 0.01},
}


@pytest.mark.parametrize(
    "profile, backend, itype, profile_price, expected",
    [
        ("burst", "ec2", "t3.micro", 0.5, (0.0104, "instance type t3.micro")),
        ("burst", "ec2", "c5.large", 0.5, (0.2, "profile burst on ec2")),
        ("burst", "slurm", None, 0.5, (0.01, "backend slurm")),
        ("gpu", "ec2", None, 3.0, (1.2, "profile gpu")),
        ("cpu", "openstack", None, 0.05, (0.05, "profile cpu cost_per_hour")),
        ("cpu", "openstack", None, None, (0.0, "no price known")),
    ],
)
def test_price_lookup_most_specific_first(profile, backend, itype, profile_price, expected):
    assert price_per_hour(TABLE, profile, backend, itype, profile_price) == expected


@pytest.mark.parametrize(
    "raw, message",
    [
        ([], "must be a JSON object"),
        ({"instance": {}}, "unknown keys ['instance']"),
        ({"instance_types": {"t3.micro": -1}}, "instance_types.t3.micro must be a non-negative number"),
        ({"profiles": {"gpu": {"ec2": "cheap"}}}, "profiles.gpu.ec2 must be a non-negative number"),
    ],
)
def test_bad_price_tables_are_refused(raw, message):
    with pytest.raises(PriceTableError) as e:
        check_price_table(raw)
    assert message in str(e.value)


def test_price_table_file(tmp_path):
    path = tmp_path / "prices.json"
    path.write_text(json.dumps(TABLE))
    assert load_price_table(str(path)) == TABLE
    path.write_text("{not json")
    with pytest.raises(PriceTableError, match="not valid JSON"):
        load_price_table(str(path))
    with pytest.raises(PriceTableError, match="cannot read it"):
        load_price_table(str(tmp_path / "missing.json"))
    assert load_price_table("") == {}


# -- the ledger ------------------------------------------------------------------------------
def test_the_ledger_survives_a_restart_and_never_counts_an_hour_twice(tmp_path):
    path = tmp_path / "usage.sqlite"
    ledger = UsageLedger(path)
    ledger.record_start(user="ada", server="", profile="cpu", backend="slurm", node="42", price_per_hour=0.02,
                        price_source="profile", at=at(30, 22, month=11))
    ledger.record_start(user="bob", server="", profile="gpu", backend="ec2", node="i-1", price_per_hour=1.5,
                        price_source="profile", at=at(7, 10))
    # the hub restarts: a new ledger object on the same file
    ledger = UsageLedger(path)
    assert ledger.record_stop(user="ada", server="", at=at(1, 2)) == 1
    assert ledger.record_stop(user="ada", server="", at=at(1, 3)) == 0  # already closed
    # ada's next start, then a start without a recorded stop (the hub died): the open row is
    # closed at the new start
    ledger.record_start(user="ada", server="", profile="cpu", backend="slurm", node="43", price_per_hour=0.02,
                        price_source="profile", at=at(2, 8))
    ledger.record_start(user="ada", server="", profile="cpu", backend="slurm", node="44", price_per_hour=0.02,
                        price_source="profile", at=at(2, 10))
    ledger.record_stop(user="ada", server="", at=at(2, 11))
    december = Month(2026, 12)
    sessions = ledger.sessions(december.start, december.end)
    assert [(s.user, s.started, s.stopped) for s in sessions] == [
        ("ada", at(30, 22, month=11), at(1, 2)),
        ("ada", at(2, 8), at(2, 10)),
        ("ada", at(2, 10), at(2, 11)),
        ("bob", at(7, 10), None),
    ]
    figures = usage(sessions, december, NOW).as_dict()
    assert lines(figures["by_user"], "user") == {("ada",): (5.0, 0.1, 0), ("bob",): (2.0, 3.0, 1)}
    assert [s.user for s in ledger.sessions(december.start, december.end, user="bob")] == ["bob"]
