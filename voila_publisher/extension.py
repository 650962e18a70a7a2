"""The jupyter-server extension: registers the REST handlers for sync and publish.

Kept thin on purpose: each feature owns its handlers module and configuration class;
this file only wires them into the server.
"""

from __future__ import annotations

import importlib

# Each module exposes ``setup_handlers(server_app) -> None``. Listed by name so that a
# feature can be added without touching the others.
FEATURE_MODULES = (
    "voila_publisher.sync.handlers",
    "voila_publisher.publish.handlers",
    "voila_publisher.notices.handlers",
)


def _load_jupyter_server_extension(server_app):
    for name in FEATURE_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as e:
            if e.name != name:
                raise
            continue
        module.setup_handlers(server_app)
    server_app.log.info("voila_publisher: hybrid sync and publish handlers loaded")


load_jupyter_server_extension = _load_jupyter_server_extension
