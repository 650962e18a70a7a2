"""The admin's bounds on a persistent home volume (EC2 EBS, OpenStack Cinder). Pure.

A profile (or a forged ``user_options`` through the REST API) may ask for a size and a type; the
request stands only within the bounds, and the refusal names the limit (the spawn fails with 400
before anything is created).
"""

from __future__ import annotations


class HomeRequestRefused(ValueError):
    """The requested home volume is outside the admin's bounds (a sentence for the user)."""


def check_home_request(size_gb, volume_type, *, max_size_gb: int, allowed_types) -> tuple[int, str]:
    """(size, type) if within the bounds; :class:`HomeRequestRefused` otherwise.
    ``max_size_gb`` 0: no limit; ``allowed_types`` empty: any type."""
    if isinstance(size_gb, bool) or not isinstance(size_gb, int) or size_gb < 1:
        raise HomeRequestRefused(f"home volume size must be a whole number of GB, at least 1 (got {size_gb!r})")
    if max_size_gb and size_gb > max_size_gb:
        raise HomeRequestRefused(f"home volume size {size_gb} GB is over this hub's limit of {max_size_gb} GB")
    if not isinstance(volume_type, str):
        raise HomeRequestRefused(f"home volume type must be a name (got {volume_type!r})")
    if allowed_types and volume_type not in allowed_types:
        raise HomeRequestRefused(
            f"home volume type {volume_type!r} is not one of {', '.join(map(repr, allowed_types))}")
    return size_gb, volume_type
