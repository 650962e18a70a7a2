"""Who spends what: hours and estimated cost per user, profile and backend, month to date.

``arithmetic.py`` (pure: months, overlaps, sums), ``prices.py`` (the price of a server: profile
or price table), ``ledger.py`` (the start/stop events in SQLite beside the hub's database),
``handlers.py`` (the admin page ``/hub/hybrid/costs`` and ``/hub/api/hybrid/costs``).
"""
