"""The hourly price of a server: from an optional price table file, else from its profile.

The price table is JSON (the AWS Pricing API is not reachable from every hub, and on-premise
Slurm or OpenStack hours have an internal price only the admin knows)::

    {
      "currency": "USD",
      "instance_types": {"t3.micro": 0.0104, "c6i.2xlarge": 0.34},   # EC2, by launched type
      "profiles": {"hpc-burst": {"slurm": 0.02, "ec2": 0.34}, "gpu": 1.2},
      "backends": {"slurm": 0.01, "openstack": 0.05}
    }

Lookup order, most specific first: the launched instance type, the profile on that backend,
the profile, the backend, the profile's ``cost_per_hour``; else 0 ("no price known").
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

TABLE_KEYS = frozenset({"currency", "instance_types", "profiles", "backends"})


class PriceTableError(ValueError):
    """The price table file is unreadable or malformed; the message says where."""


def load_price_table(path: str) -> dict:
    """The price table at ``path`` ({} for an empty path), validated."""
    if not path:
        return {}
    try:
        raw = json.loads(Path(path).read_text())
    except OSError as e:
        raise PriceTableError(f"price table {path}: cannot read it ({e.strerror})") from None
    except ValueError as e:
        raise PriceTableError(f"price table {path}: not valid JSON ({e})") from None
    return check_price_table(raw, str(path))


def check_price_table(raw: Any, where: str = "price table") -> dict:
    if not isinstance(raw, Mapping):
        raise PriceTableError(f"{where}: must be a JSON object")
    unknown = set(raw) - TABLE_KEYS
    if unknown:
        raise PriceTableError(f"{where}: unknown keys {sorted(unknown)}; allowed are {sorted(TABLE_KEYS)}")
    for section in ("instance_types", "backends"):
        for name, price in (raw.get(section) or {}).items():
            _price(price, f"{where}: {section}.{name}")
    for slug, price in (raw.get("profiles") or {}).items():
        if isinstance(price, Mapping):
            for backend, p in price.items():
                _price(p, f"{where}: profiles.{slug}.{backend}")
        else:
            _price(price, f"{where}: profiles.{slug}")
    return dict(raw)


def _price(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise PriceTableError(f"{where} must be a non-negative number (price per hour)")
    return float(value)


def price_per_hour(
    table: Mapping, profile: str, backend: str, instance_type: str | None, profile_price: float | None
) -> tuple[float, str]:
    """(price, where it came from) for one server."""
    if instance_type and instance_type in (table.get("instance_types") or {}):
        return float(table["instance_types"][instance_type]), f"instance type {instance_type}"
    by_profile = (table.get("profiles") or {}).get(profile)
    if isinstance(by_profile, Mapping) and backend in by_profile:
        return float(by_profile[backend]), f"profile {profile} on {backend}"
    if isinstance(by_profile, (int, float)):
        return float(by_profile), f"profile {profile}"
    if backend in (table.get("backends") or {}):
        return float(table["backends"][backend]), f"backend {backend}"
    if profile_price is not None:
        return float(profile_price), f"profile {profile} cost_per_hour"
    return 0.0, "no price known"
