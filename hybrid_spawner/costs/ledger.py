"""The usage ledger: one row per server run (start, stop, profile, backend, price) in SQLite.

Why a ledger of its own: JupyterHub's database keeps only the *current* server of each slot
(``started``, ``last_activity``); a stopped server leaves no trace, so month-to-date hours
cannot be derived from it. The ledger is a small SQLite file beside the hub's database (the
hub's working directory by default), written at each start and stop, so it survives hub
restarts: a server running across a restart keeps its open row, which its stop closes.

Blocking (sqlite3): the hub calls it through ``asyncio.to_thread``. Each call opens its own
connection, so threads never share one.
"""

from __future__ import annotations

import sqlite3
from contextlib import closing
from datetime import datetime, timezone
from pathlib import Path

from hybrid_spawner.costs.arithmetic import Session

SCHEMA = """
CREATE TABLE IF NOT EXISTS sessions (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    slot TEXT NOT NULL,              -- "user/server-name"
    user TEXT NOT NULL,
    server TEXT NOT NULL,
    profile TEXT NOT NULL,
    backend TEXT NOT NULL,
    node TEXT NOT NULL DEFAULT '',
    price_per_hour REAL NOT NULL,
    price_source TEXT NOT NULL DEFAULT '',
    started REAL NOT NULL,           -- Unix seconds, UTC
    stopped REAL                     -- NULL while the server runs
);
CREATE INDEX IF NOT EXISTS sessions_open ON sessions (slot) WHERE stopped IS NULL;
CREATE INDEX IF NOT EXISTS sessions_user ON sessions (user, started);
"""


def _ts(moment: datetime) -> float:
    return moment.astimezone(timezone.utc).timestamp()


def _dt(seconds: float | None) -> datetime | None:
    return None if seconds is None else datetime.fromtimestamp(seconds, timezone.utc)


class UsageLedger:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        with closing(self._connect()) as db, db:
            db.executescript(SCHEMA)

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, timeout=30)
        db.execute("PRAGMA journal_mode=WAL")
        return db

    def record_start(self, *, user: str, server: str, profile: str, backend: str, node: str,
                     price_per_hour: float, price_source: str, at: datetime) -> None:
        """A server of slot user/server started. An open row of the same slot (its stop was
        never recorded: the hub died) is closed at this start, so no hour counts twice."""
        slot = f"{user}/{server}"
        with closing(self._connect()) as db, db:
            db.execute("UPDATE sessions SET stopped = ? WHERE slot = ? AND stopped IS NULL", (_ts(at), slot))
            db.execute(
                "INSERT INTO sessions (slot, user, server, profile, backend, node, price_per_hour, price_source, started)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (slot, user, server, profile, backend, node or "", price_per_hour, price_source, _ts(at)),
            )

    def record_stop(self, *, user: str, server: str, at: datetime) -> int:
        """Close the slot's open row; returns how many were closed (0: none was open)."""
        with closing(self._connect()) as db, db:
            cursor = db.execute(
                "UPDATE sessions SET stopped = ? WHERE slot = ? AND stopped IS NULL", (_ts(at), f"{user}/{server}")
            )
            return cursor.rowcount

    def sessions(self, start: datetime, end: datetime, user: str | None = None) -> list[Session]:
        """Sessions overlapping [start, end) (running ones included), optionally of one user."""
        query = "SELECT user, server, profile, backend, price_per_hour, started, stopped FROM sessions" \
                " WHERE started < ? AND (stopped IS NULL OR stopped > ?)"
        args: list = [_ts(end), _ts(start)]
        if user is not None:
            query += " AND user = ?"
            args.append(user)
        with closing(self._connect()) as db:
            rows = db.execute(query + " ORDER BY started", args).fetchall()
        return [Session(u, s, p, b, price, _dt(a), _dt(z)) for u, s, p, b, price, a, z in rows]
