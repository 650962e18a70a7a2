"""Single-user side (S3 sync, publish client) and the public host's publisher service."""

from hybrid_spawner._version import __version__


def _jupyter_server_extension_points():
    return [{"module": "voila_publisher.extension"}]


def _jupyter_labextension_paths():
    # The JupyterLab extension built from labextension/ by `pip install` (see package.json).
    return [{"src": "labextension", "dest": "jupyter-hybrid-cloud"}]


__all__ = ["__version__", "_jupyter_labextension_paths", "_jupyter_server_extension_points"]
