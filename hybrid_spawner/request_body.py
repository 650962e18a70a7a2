"""The one rule for the JSON bodies of the hub endpoints this package adds (bootstrap, incidents):
a JSON object or nothing, else 400 with a plain reason."""

from __future__ import annotations

import json


def json_object(raw: bytes | None) -> dict:
    from tornado import web

    try:
        body = json.loads(raw or b"{}")
    except ValueError:
        raise web.HTTPError(400, "body must be JSON") from None
    if not isinstance(body, dict):
        raise web.HTTPError(400, "body must be a JSON object")
    return body
