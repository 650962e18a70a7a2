"""Reconciliation: what a backend runs under this hub's tag against the hub's server records.

``plan.py`` decides (pure), ``records.py`` reads the hub's records, ``runner.py`` lists and acts,
``handlers.py`` serves the admin report. See docs/reconcile.md.
"""
