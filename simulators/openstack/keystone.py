"""Keystone v3: version discovery, token issue (password and application credential), validation.

Shapes follow the Identity API v3 reference: POST /v3/auth/tokens answers 201 with the token id
in the X-Subject-Token header and the token (with its service catalog) in the body.
"""

from __future__ import annotations

import secrets

from simulators.openstack.app import Request, Response, Router, json_response
from simulators.openstack.state import Cloud, User, iso

IDENTITY = "/identity"
VERSION = "v3.14"


def unauthorized(message: str = "The request you have made requires authentication.") -> Response:
    return json_response(
        401, {"error": {"code": 401, "message": message, "title": "Unauthorized"}},
        **{"WWW-Authenticate": 'Keystone uri="/identity"'},
    )


def bad_request(message: str) -> Response:
    return json_response(400, {"error": {"code": 400, "message": message, "title": "Bad Request"}})


def version_doc(base: str) -> dict:
    return {
        "id": VERSION, "status": "stable", "updated": "2020-04-07T00:00:00Z",
        "links": [{"rel": "self", "href": f"{base}{IDENTITY}/v3/"}],
        "media-types": [{"base": "application/json", "type": "application/vnd.openstack.identity-v3+json"}],
    }


def catalog(base: str, region: str, project_id: str = "") -> list[dict]:
    services = [
        ("identity", "keystone", f"{base}{IDENTITY}"),
        ("compute", "nova", f"{base}/compute/v2.1"),
        ("network", "neutron", f"{base}/networking"),
        ("image", "glance", f"{base}/image"),
        ("block-storage", "cinder", f"{base}/volume/v3/{project_id}"),
        ("volumev3", "cinderv3", f"{base}/volume/v3/{project_id}"),
    ]
    return [
        {
            "id": secrets.token_hex(16), "type": stype, "name": name,
            "endpoints": [
                {"id": secrets.token_hex(16), "interface": iface, "region": region, "region_id": region, "url": url}
                for iface in ("public", "internal")
            ],
        }
        for stype, name, url in services
    ]


def _find_user(cloud: Cloud, spec: dict) -> User | None:
    if "id" in spec:
        return cloud.users.get(spec["id"])
    domain = spec.get("domain") or {}
    if domain.get("id", cloud.domain_id) != cloud.domain_id and domain.get("name") != cloud.domain_name:
        return None
    return cloud.users_by_name(spec.get("name", ""))


def _scope_ok(cloud: Cloud, scope) -> bool:
    project = (scope or {}).get("project")
    if not project:
        return False
    if "id" in project:
        return project["id"] == cloud.project_id
    domain = project.get("domain") or {}
    domain_ok = domain.get("id") == cloud.domain_id or domain.get("name") == cloud.domain_name
    return project.get("name") == cloud.project_name and domain_ok


def issue_token(req: Request) -> Response:
    body = req.json()
    auth = (body or {}).get("auth") if isinstance(body, dict) else None
    if not isinstance(auth, dict) or "identity" not in auth:
        return bad_request("Expecting to find identity in auth. The server could not comply with the request "
                           "since it is either malformed or otherwise incorrect.")
    cloud = req.cloud
    identity = auth["identity"]
    methods = identity.get("methods") or []
    app_cred_id = None
    if methods == ["password"]:
        spec = (identity.get("password") or {}).get("user") or {}
        user = _find_user(cloud, spec)
        if user is None or spec.get("password") != user.password:
            return unauthorized()
        scoped = bool(auth.get("scope"))
        if scoped and not _scope_ok(cloud, auth.get("scope")):
            return unauthorized("You are not authorized to perform the requested action.")
        roles = user.roles
    elif methods == ["application_credential"]:
        spec = identity.get("application_credential") or {}
        cred = cloud.app_creds.get(spec.get("id", ""))
        if cred is None and "name" in spec:
            owner = _find_user(cloud, spec.get("user") or {})
            cred = next((c for c in cloud.app_creds.values() if owner and c.name == spec["name"]
                         and c.user_id == owner.id), None)
        if cred is None or spec.get("secret") != cred.secret:
            return unauthorized()
        if auth.get("scope"):
            return unauthorized("Application credentials cannot request a scope.")
        user, roles, app_cred_id, scoped = cloud.users[cred.user_id], cred.roles, cred.id, True
    else:
        return unauthorized(f"Unsupported authentication methods: {methods}")
    token = cloud.issue_token(user, methods, roles, app_cred_id, scoped)
    return json_response(201, {"token": token_body(req, token)}, **{"X-Subject-Token": token.id})


def token_body(req: Request, token) -> dict:
    cloud = req.cloud
    domain = {"id": cloud.domain_id, "name": cloud.domain_name}
    body = {
        "methods": token.methods,
        "user": {"id": token.user.id, "name": token.user.name, "domain": domain, "password_expires_at": None},
        "audit_ids": [secrets.token_urlsafe(16)],
        "expires_at": iso(token.expires).replace("Z", ".000000Z"),
        "issued_at": iso(token.issued).replace("Z", ".000000Z"),
    }
    if token.scoped:
        body.update({
            "project": {"id": cloud.project_id, "name": cloud.project_name, "domain": domain},
            "is_domain": False,
            "roles": [{"id": secrets.token_hex(16), "name": r} for r in token.roles],
            "catalog": catalog(req.base_url, cloud.region, cloud.project_id),
        })
    if token.app_cred_id:
        cred = cloud.app_creds[token.app_cred_id]
        body["application_credential"] = {"id": cred.id, "name": cred.name, "restricted": True}
    return body


def validate_token(req: Request) -> Response:
    if req.cloud.token(req.headers.get("x-auth-token")) is None:
        return unauthorized()
    subject = req.cloud.token(req.headers.get("x-subject-token"))
    if subject is None:
        return json_response(404, {"error": {"code": 404, "message": "Could not find token.", "title": "Not Found"}})
    return json_response(200, {"token": token_body(req, subject)}, **{"X-Subject-Token": subject.id})


def register(router: Router) -> None:
    router.add("GET", IDENTITY, lambda r: json_response(300, {"versions": {"values": [version_doc(r.base_url)]}}))
    router.add("GET", IDENTITY + "/v3", lambda r: json_response(200, {"version": version_doc(r.base_url)}))
    router.add("POST", IDENTITY + "/v3/auth/tokens", issue_token)
    router.add("GET", IDENTITY + "/v3/auth/tokens", validate_token)


def authenticate(req: Request) -> Response | None:
    """Service-side token check (keystonemiddleware's job); None when the token is valid."""
    req.token = req.cloud.token(req.headers.get("x-auth-token"))
    if req.token is None:
        return unauthorized()
    if not req.token.scoped:  # policy refuses project resources to an unscoped token
        return json_response(403, {"error": {"code": 403, "title": "Forbidden",
                                             "message": "You are not authorized to perform the requested action."}})
    return None
