"""Stop this server through the hub, for JupyterLab's "Stop My Server…" (which first warns
when an ephemeral home holds files the bucket does not have).

The single-user server calls ``DELETE /hub/api/users/{user}/server[s/{name}]`` with its own
``$JUPYTERHUB_API_TOKEN``, so the hub stops it the way its control panel would (the spawner's
stop: terminate, or keep the volume). The token may do so only when the hub grants it
``servers!server`` (HybridSpawner and RemoteSpawner request it by default,
``Spawner.server_token_scopes``); otherwise the hub answers 403 and the researcher is told to
use the control panel.
"""

from __future__ import annotations

import os
from urllib.parse import quote

from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest


class StopRefused(Exception):
    """The hub would not stop the server; the message says what to do instead."""


def stop_request(environ=os.environ) -> HTTPRequest:
    """The hub API call that stops this server, from the environment the hub gave it."""
    api = environ.get("JUPYTERHUB_API_URL", "").rstrip("/")
    token = environ.get("JUPYTERHUB_API_TOKEN", "")
    user = environ.get("JUPYTERHUB_USER", "")
    if not (api and token and user):
        raise StopRefused("this server was not started by JupyterHub: stop it where it was started")
    name = environ.get("JUPYTERHUB_SERVER_NAME", "")
    path = f"/users/{quote(user, safe='')}/" + (f"servers/{quote(name, safe='')}" if name else "server")
    return HTTPRequest(api + path, method="DELETE", headers={"Authorization": f"token {token}"}, request_timeout=30)


async def stop_own_server(environ=os.environ) -> int:
    """Ask the hub to stop this server; returns the hub's status (202 or 204)."""
    request = stop_request(environ)
    try:
        response = await AsyncHTTPClient().fetch(request)
    except HTTPClientError as e:
        if e.code == 403:
            raise StopRefused(
                "the hub does not let this server stop itself (its token lacks the servers!server "
                "scope); stop it from the Hub Control Panel"
            ) from None
        raise StopRefused(f"the hub answered {e.code} to the stop request; try the Hub Control Panel") from None
    except OSError as e:
        raise StopRefused(f"the hub could not be reached ({e}); try the Hub Control Panel") from None
    return response.code
