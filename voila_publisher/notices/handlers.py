"""``/hybrid/notices``: the node's notices for JupyterLab (see :mod:`.notice`).

    GET  /hybrid/notices   {"watched": bool, "interruption": notice|null, "rebalance": notice|null}
    POST /hybrid/notices   a notice (the node agent's spot watch, with this server's API token)

``watched`` says whether the node watches for notices at all (``$HYBRID_NOTICES_WATCHED``, set
by the node agent on spot servers), so that JupyterLab polls only where a notice can come. The
notices live in the server's memory: the instance ends with them.
"""

from __future__ import annotations

import json
import os

from jupyter_server.auth.decorator import authorized
from jupyter_server.base.handlers import APIHandler
from jupyter_server.utils import url_path_join
from tornado import web

from voila_publisher.notices.notice import KINDS, validate_notice

AUTH_RESOURCE = "hybrid_notices"
BOARD = "hybrid_notices"


class NoticesHandler(APIHandler):
    auth_resource = AUTH_RESOURCE

    @property
    def board(self) -> dict:
        return self.settings[BOARD]

    @web.authenticated
    @authorized
    def get(self):
        self.set_header("Cache-Control", "no-store")
        watched = os.environ.get("HYBRID_NOTICES_WATCHED", "") == "1"
        self.finish(json.dumps({"watched": watched, **{kind: self.board.get(kind) for kind in KINDS}}))

    @web.authenticated
    @authorized
    def post(self):
        try:
            notice = validate_notice(json.loads(self.request.body or b"null"))
        except ValueError as e:  # json's errors are ValueErrors too
            raise web.HTTPError(400, str(e), reason="bad-request") from None
        self.board[notice["kind"]] = notice
        self.log.warning("hybrid notices: %s notice for %s (final sync: %s)", notice["kind"], notice["time"],
                         notice["sync"]["state"])
        self.finish(json.dumps({"stored": True}))


def setup_handlers(server_app) -> None:
    web_app = server_app.web_app
    web_app.settings[BOARD] = {}
    path = url_path_join(web_app.settings["base_url"], "hybrid", "notices")
    web_app.add_handlers(".*$", [(path, NoticesHandler)])
