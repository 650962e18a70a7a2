"""Publish to Voila, on the single-user server: :mod:`.client` (``c.DashboardPublisher``:
checks a notebook and sends it to the public host) and :mod:`.handlers` (REST)."""
