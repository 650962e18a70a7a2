"""Admin endpoints for incidents (registered like the bootstrap endpoints, under /hub):

- ``POST /hub/api/hybrid/quarantine/<user>``  body ``{"server": "", "reason": "..."}``
- ``GET  /hub/api/hybrid/incidents`` and ``GET /hub/api/hybrid/incidents/<id>``
- ``POST /hub/api/hybrid/incidents/<id>/release``  body ``{"terminate": false}``
- ``GET/POST /hub/api/hybrid/users/<user>/data``  the purge report (GET: dry run; POST
  ``{"confirm": "<user>"}``: delete)
- ``GET  /hub/hybrid/incidents``  the admin page (buttons for all of the above)

Every endpoint needs the *unfiltered* ``admin:servers`` scope (the purge: ``admin:users`` too): an
admin token scoped to some users or groups cannot isolate or erase anyone.
"""

from __future__ import annotations

import html
import json

API = "/api/hybrid"
PAGE_PATH = "/hybrid/incidents"
QUARANTINE_PATH = API + r"/quarantine/(?P<user_name>[^/]+)"
INCIDENTS_PATH = API + "/incidents"
INCIDENT_PATH = API + r"/incidents/(?P<incident_id>[^/]+)"
RELEASE_PATH = API + r"/incidents/(?P<incident_id>[^/]+)/release"
PURGE_PATH = API + r"/users/(?P<user_name>[^/]+)/data"
MAX_REASON = 500


def _make_handlers():
    from jupyterhub import orm
    from jupyterhub.apihandlers.base import APIHandler
    from jupyterhub.handlers.base import BaseHandler
    from jupyterhub.scopes import Scope
    from tornado import web

    from hybrid_spawner.incidents import purge, quarantine
    from hybrid_spawner.incidents.store import IncidentStore
    from hybrid_spawner.request_body import json_object

    class _AdminAPI(APIHandler):
        def _require(self, *needed: str) -> None:
            if self.current_user is None:
                raise web.HTTPError(403, "authentication required")
            missing = [s for s in needed if self.parsed_scopes.get(s) is not Scope.ALL]
            if missing:
                raise web.HTTPError(403, f"this action needs the unfiltered scope(s) {', '.join(missing)}")

        def _body(self) -> dict:
            return json_object(self.request.body)

        def _store(self) -> IncidentStore:
            return IncidentStore(config=self.settings.get("config"), log=self.log)

        def _user(self, name: str):
            user = self.find_user(name)
            if user is None:
                raise web.HTTPError(404, f"no user {name!r}")
            return user

        def _answer(self, status: int, payload) -> None:
            self.set_status(status)
            self.set_header("Content-Type", "application/json")
            self.set_header("Cache-Control", "no-store")
            self.write(json.dumps(payload))

        def _admin_name(self) -> str:
            user = self.current_user
            return getattr(user, "name", None) or str(user)

    class QuarantineHandler(_AdminAPI):
        async def post(self, user_name):
            self._require("admin:servers")
            body = self._body()
            server, reason = body.get("server", ""), body.get("reason")
            if not isinstance(server, str):
                raise web.HTTPError(400, "server must be a string (\"\" for the default server)")
            if not isinstance(reason, str) or not reason.strip() or len(reason) > MAX_REASON:
                raise web.HTTPError(400, f"reason is required: a non-empty text of at most {MAX_REASON} characters")
            user = self._user(user_name)
            if server not in user.orm_user.orm_spawners:
                raise web.HTTPError(404, f"{user.name} has no server {server!r}")
            try:
                incident = await quarantine.quarantine(
                    self._store(), user.spawners[server], user=user.name, server=server, reason=reason.strip(),
                    admin=self._admin_name(), stop_server=lambda: self.stop_single_user(user, server))
            except quarantine.IncidentError as error:
                raise web.HTTPError(error.status, str(error)) from None
            self.log.warning("hybrid incident %s: %s quarantined %s's server %r (node %s): %s", incident["id"],
                             self._admin_name(), user.name, server, incident["node_id"], "; ".join(incident["actions"]))
            self._answer(201, incident)

    class IncidentsHandler(_AdminAPI):
        async def get(self):
            self._require("admin:servers")
            self._answer(200, {"incidents": self._store().all()})

    class IncidentHandler(_AdminAPI):
        async def get(self, incident_id):
            self._require("admin:servers")
            incident = self._store().get(incident_id)
            if incident is None:
                raise web.HTTPError(404, f"no incident {incident_id!r}")
            self._answer(200, incident)

    class ReleaseHandler(_AdminAPI):
        async def post(self, incident_id):
            self._require("admin:servers")
            terminate = self._body().get("terminate", False)
            if not isinstance(terminate, bool):
                raise web.HTTPError(400, "terminate must be true or false")
            try:
                incident = await quarantine.release(self._store(), incident_id, admin=self._admin_name(),
                                                    terminate=terminate)
            except quarantine.IncidentError as error:
                raise web.HTTPError(error.status, str(error)) from None
            self.log.warning("hybrid incident %s: released by %s%s", incident_id, self._admin_name(),
                             " (node terminated)" if terminate else "")
            self._answer(200, incident)

    class PurgeHandler(_AdminAPI):
        async def get(self, user_name):
            await self._purge(user_name, dry_run=True)

        async def post(self, user_name):
            body = self._body()
            if body.get("confirm") != user_name:
                self._require("admin:servers", "admin:users")
                raise web.HTTPError(400, f'to delete, send {{"confirm": "{user_name}"}}; GET is the dry run')
            await self._purge(user_name, dry_run=False)

        async def _purge(self, user_name: str, dry_run: bool):
            self._require("admin:servers", "admin:users")
            user = self._user(user_name)
            running = [name or "(default)" for name, spawner in user.spawners.items() if spawner.active]
            if running:
                raise web.HTTPError(409, f"{user.name} has running servers ({', '.join(running)}): stop them first")
            try:
                report = await purge.purge_user(self.settings.get("config"), user.name, dry_run=dry_run, log=self.log)
            except purge.PurgeError as error:
                raise web.HTTPError(error.status, str(error)) from None
            if not dry_run:
                self.log.warning("hybrid purge: %s deleted the data of %s: %s", self._admin_name(), user.name,
                                 purge.summary(report))
            self._answer(200, report)

    class IncidentsPage(BaseHandler):
        @web.authenticated
        async def get(self):
            if not self.current_user.admin:
                raise web.HTTPError(403, "admins only")
            running = []
            for orm_user in self.db.query(orm.User):
                user = self.users[orm_user]
                for name, spawner in user.spawners.items():
                    if spawner.active:
                        running.append((user.name, name))
            incidents = IncidentStore(config=self.settings.get("config"), log=self.log).all()
            self.set_header("Content-Type", "text/html; charset=utf-8")
            self.write(render_page(running, incidents, self.xsrf_token.decode(), self.hub.base_url))

    return [
        (QUARANTINE_PATH, QuarantineHandler),
        (INCIDENTS_PATH, IncidentsHandler),
        (RELEASE_PATH, ReleaseHandler),
        (INCIDENT_PATH, IncidentHandler),
        (PURGE_PATH, PurgeHandler),
        (PAGE_PATH, IncidentsPage),
    ]


def render_page(running: list[tuple[str, str]], incidents: list[dict], xsrf: str, hub_base: str) -> str:
    """The admin page: running servers with a Quarantine button, incidents with Release buttons."""
    e = html.escape
    rows = "".join(
        f"<tr><td>{e(u)}</td><td>{e(s) or '(default)'}</td><td><button data-user='{e(u)}' data-server='{e(s)}' "
        f"class='quarantine'>Quarantine</button></td></tr>" for u, s in running) or "<tr><td colspan=3>none</td></tr>"
    incident_rows = "".join(
        f"<tr><td>{e(i['id'])}</td><td>{e(i['user'])}</td><td>{e(i['backend'])} {e(str(i['node_id']))}</td>"
        f"<td>{e(i.get('state', ''))}</td><td>{e(i.get('reason', ''))}</td><td><ul>"
        + "".join(f"<li>{e(a)}</li>" for a in i.get("actions", []))
        + "</ul></td><td>"
        + ("released" if i.get("released") else
           f"<button class='release' data-id='{e(i['id'])}'>Release</button> "
           f"<button class='release' data-terminate='1' data-id='{e(i['id'])}'>Release and terminate</button>")
        + "</td></tr>" for i in reversed(incidents)) or "<tr><td colspan=7>none</td></tr>"
    api = e(hub_base.rstrip("/") + API)
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>Incidents</title>
<style>body{{font-family:sans-serif;margin:2em}} table{{border-collapse:collapse}} td,th{{border:1px solid #ccc;padding:4px 8px;vertical-align:top}}</style>
</head><body><h1>Incidents</h1>
<h2>Running servers</h2><table><tr><th>user</th><th>server</th><th></th></tr>{rows}</table>
<h2>Incidents</h2><table><tr><th>id</th><th>user</th><th>node</th><th>state</th><th>reason</th><th>done</th><th></th></tr>{incident_rows}</table>
<p id="result" role="status"></p>
<script>
const api = "{api}", xsrf = "{e(xsrf)}";
async function call(method, path, body) {{
  const r = await fetch(api + path, {{method, headers: {{"Content-Type": "application/json", "X-XSRFToken": xsrf}},
                                     body: JSON.stringify(body)}});
  const text = await r.text();
  document.getElementById("result").textContent = r.ok ? "done" : ("refused: " + text);
  if (r.ok) location.reload();
}}
for (const b of document.querySelectorAll("button.quarantine")) b.onclick = () => {{
  const reason = prompt("Why is " + b.dataset.user + "'s server isolated?");
  if (reason) call("POST", "/quarantine/" + encodeURIComponent(b.dataset.user), {{server: b.dataset.server, reason}});
}};
for (const b of document.querySelectorAll("button.release")) b.onclick = () =>
  call("POST", "/incidents/" + encodeURIComponent(b.dataset.id) + "/release", {{terminate: !!b.dataset.terminate}});
</script></body></html>"""


def register_incident_handlers() -> None:
    """Add the incident endpoints to JupyterHub's handler list (idempotent)."""
    from jupyterhub import handlers

    if any(h[0] == QUARANTINE_PATH for h in handlers.default_handlers):
        return
    handlers.default_handlers.extend(_make_handlers())
