"""Cost arithmetic (pure): which part of each server session falls in a month, and the sums.

A session is one server's run: started, stopped (None while it runs) and the hourly price in
effect when it started. Hours in a month are the overlap of [started, stopped or now) with the
month (UTC); cost is hours x price, summed per session before any rounding, so the totals per
user, per profile and per backend add up to the same grand total.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timezone

MONTH_PATTERN = re.compile(r"^(\d{4})-(\d{2})$")


@dataclass(frozen=True)
class Session:
    user: str
    server: str
    profile: str
    backend: str
    price_per_hour: float
    started: datetime
    stopped: datetime | None = None  # None: still running


@dataclass(frozen=True)
class Month:
    year: int
    month: int

    @classmethod
    def parse(cls, text: str) -> "Month":
        """``"2026-12"`` -> Month(2026, 12); ValueError with a message for anything else."""
        match = MONTH_PATTERN.match(text or "")
        if not match or not 1 <= int(match.group(2)) <= 12 or int(match.group(1)) < 1970:
            raise ValueError(f"month must be YYYY-MM (e.g. 2026-12), got {text!r}")
        return cls(int(match.group(1)), int(match.group(2)))

    @classmethod
    def of(cls, moment: datetime) -> "Month":
        moment = moment.astimezone(timezone.utc)
        return cls(moment.year, moment.month)

    @property
    def start(self) -> datetime:
        return datetime(self.year, self.month, 1, tzinfo=timezone.utc)

    @property
    def end(self) -> datetime:
        year, month = (self.year + 1, 1) if self.month == 12 else (self.year, self.month + 1)
        return datetime(year, month, 1, tzinfo=timezone.utc)

    def __str__(self) -> str:
        return f"{self.year:04d}-{self.month:02d}"


def hours_in(session: Session, start: datetime, end: datetime, now: datetime) -> float:
    """Hours of ``session`` inside [start, end), counting a running session up to ``now``."""
    stop = session.stopped or now
    overlap = (min(stop, end, now) - max(session.started, start)).total_seconds()
    return max(0.0, overlap) / 3600.0


@dataclass(frozen=True)
class Line:
    """Hours and cost of one group (a user, a profile, a backend, or all three)."""

    key: tuple[str, ...]
    hours: float
    cost: float
    running: int  # sessions of the group still running

    def as_dict(self, names: tuple[str, ...]) -> dict:
        return {**dict(zip(names, self.key)), "hours": round(self.hours, 4), "cost": round(self.cost, 4),
                "running": self.running}


@dataclass(frozen=True)
class Usage:
    month: Month
    now: datetime
    rows: list[Line]  # per (user, profile, backend)
    by_user: list[Line]
    by_profile: list[Line]
    by_backend: list[Line]
    total: Line

    def as_dict(self) -> dict:
        return {
            "month": str(self.month),
            "now": self.now.isoformat(),
            "total": {"hours": round(self.total.hours, 4), "cost": round(self.total.cost, 4),
                      "running": self.total.running},
            "rows": [r.as_dict(("user", "profile", "backend")) for r in self.rows],
            "by_user": [r.as_dict(("user",)) for r in self.by_user],
            "by_profile": [r.as_dict(("profile",)) for r in self.by_profile],
            "by_backend": [r.as_dict(("backend",)) for r in self.by_backend],
        }


def usage(sessions: Iterable[Session], month: Month, now: datetime) -> Usage:
    """Hours and cost of ``sessions`` in ``month`` (up to ``now`` if the month is current)."""
    hours: dict[tuple[str, str, str], float] = defaultdict(float)
    cost: dict[tuple[str, str, str], float] = defaultdict(float)
    running: dict[tuple[str, str, str], int] = defaultdict(int)
    for s in sessions:
        h = hours_in(s, month.start, month.end, now)
        if h <= 0:
            continue
        key = (s.user, s.profile, s.backend)
        hours[key] += h
        cost[key] += h * s.price_per_hour
        if s.stopped is None:
            running[key] += 1

    def group(index: tuple[int, ...]) -> list[Line]:
        h, c, r = defaultdict(float), defaultdict(float), defaultdict(int)
        for key in hours:
            sub = tuple(key[i] for i in index)
            h[sub] += hours[key]
            c[sub] += cost[key]
            r[sub] += running[key]
        return [Line(k, h[k], c[k], r[k]) for k in sorted(h, key=lambda k: (-c[k], -h[k], k))]

    total = Line((), sum(hours.values()), sum(cost.values()), sum(running.values()))
    return Usage(month, now, group((0, 1, 2)), group((0,)), group((1,)), group((2,)), total)
