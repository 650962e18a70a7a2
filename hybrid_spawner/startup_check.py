"""Refuse to start a hub whose HybridSpawner profiles are invalid (unknown backend in a burst
chain, a misspelt override ...), instead of failing the first researcher's spawn.

JupyterHub has no hook for a spawner to check its configuration at startup, so this wraps
``JupyterHub.init_hub`` once (the same kind of registration as the node endpoints in
:mod:`hybrid_spawner.bootstrap.handlers`). ``init_hub`` runs after the configuration is loaded
and after the hub has imported its spawner class — which is when this module is installed.
Profiles given as a callable are computed per user and are checked at spawn time instead.
"""

from __future__ import annotations

from hybrid_spawner.costs.prices import PriceTableError, load_price_table
from hybrid_spawner.profiles import ProfileConfigError, parse_profiles


class InvalidProfiles(RuntimeError):
    """The hub's HybridSpawner.profiles are invalid; the message says what to fix."""


def check_profiles(spawner_class, config) -> int:
    """Parse the configured profiles as a spawn would; return how many there are (0 for a
    callable). Raises :class:`InvalidProfiles` with the admin's mistake."""
    probe = spawner_class(config=config)
    try:
        load_price_table(probe.price_table)
    except PriceTableError as e:
        raise InvalidProfiles(f"HybridSpawner.price_table is invalid: {e}") from None
    raw = probe.profiles
    if callable(raw):
        return 0
    try:
        return len(parse_profiles(raw, probe.backend_classes, probe._settable_traits))
    except ProfileConfigError as e:
        raise InvalidProfiles(f"HybridSpawner.profiles is invalid: {e}") from None


def install(hybrid_spawner_class) -> None:
    """Wrap ``JupyterHub.init_hub`` to check the profiles first (idempotent)."""
    from jupyterhub.app import JupyterHub

    if getattr(JupyterHub.init_hub, "_hybrid_profiles_checked", False):
        return
    original = JupyterHub.init_hub

    def init_hub(app, *args, **kwargs):
        cls = app.spawner_class
        if isinstance(cls, type) and issubclass(cls, hybrid_spawner_class):
            count = check_profiles(cls, app.config)
            app.log.info("HybridSpawner: %s", f"{count} profiles valid" if count else "profiles computed per user")
        return original(app, *args, **kwargs)

    init_hub._hybrid_profiles_checked = True
    JupyterHub.init_hub = init_hub
