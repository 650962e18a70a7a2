"""Logins for the hub: authenticators that feed JupyterHub groups (and so profiles'
``allowed_groups``) from a directory. Optional: each module needs its own extra."""
