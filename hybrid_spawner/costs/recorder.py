"""What HybridSpawner calls at start, stop and form time: ledger writes and reads in a thread.

A failing ledger (disk full, permissions) must not stop researchers from working: it is logged
as an error — the hub's cost figures then miss that server — and the spawn goes on.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timezone
from pathlib import Path

from hybrid_spawner.costs.arithmetic import Month, usage
from hybrid_spawner.costs.ledger import UsageLedger
from hybrid_spawner.costs.prices import load_price_table, price_per_hour


async def record_start(spawner, *, profile: str, backend: str, child, profile_price: float | None) -> None:
    if not spawner.usage_ledger:
        return
    now = datetime.now(timezone.utc)

    def write():
        table = load_price_table(spawner.price_table)
        price, source = price_per_hour(
            table, profile, backend, getattr(child, "launched_instance_type", None), profile_price
        )
        UsageLedger(spawner.usage_ledger).record_start(
            user=spawner.user.name, server=spawner.name, profile=profile, backend=backend,
            node=str(getattr(child, "node_id", "") or ""), price_per_hour=price, price_source=source, at=now,
        )
        return price, source

    try:
        price, source = await asyncio.to_thread(write)
        spawner.log.info("%s: usage ledger: started at $%.4f/h (%s)", spawner._log_name, price, source)
    except Exception as e:
        spawner.log.error("%s: usage ledger %s: cannot record the start (%s)", spawner._log_name, spawner.usage_ledger, e)


async def record_stop(spawner) -> None:
    if not spawner.usage_ledger:
        return
    now = datetime.now(timezone.utc)
    try:
        await asyncio.to_thread(
            lambda: UsageLedger(spawner.usage_ledger).record_stop(user=spawner.user.name, server=spawner.name, at=now)
        )
    except Exception as e:
        spawner.log.error("%s: usage ledger %s: cannot record the stop (%s)", spawner._log_name, spawner.usage_ledger, e)


async def month_to_date(spawner) -> dict | None:
    """The user's own figures of the current month for the spawn form (None if unavailable)."""
    if not spawner.usage_ledger:
        return None
    now = datetime.now(timezone.utc)
    month = Month.of(now)

    def read():
        if not Path(spawner.usage_ledger).exists():  # nothing recorded yet: no file to create here
            return usage([], month, now)
        return usage(UsageLedger(spawner.usage_ledger).sessions(month.start, month.end, spawner.user.name), month, now)

    try:
        return (await asyncio.to_thread(read)).as_dict()
    except Exception as e:
        spawner.log.error("%s: usage ledger %s: cannot read (%s)", spawner._log_name, spawner.usage_ledger, e)
        return None
