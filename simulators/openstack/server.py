"""Wire the services into one HTTP server (one port, path-prefixed services, like devstack)."""

from __future__ import annotations

from simulators.openstack import actions, control, glance, keystone, neutron, nova, volumes
from simulators.openstack.app import FakeHTTPServer, Request, Router, json_response, make_handler
from simulators.openstack.state import Cloud


def not_found(req: Request):
    return json_response(404, {"error": {"code": 404, "message": f"No service at {req.path}", "title": "Not Found"}})


def build_server(cloud: Cloud, host: str = "127.0.0.1", port: int = 0) -> FakeHTTPServer:
    router = Router()
    for service in (keystone, actions, volumes, nova, neutron, glance, control):
        service.register(router)
    return FakeHTTPServer((host, port), make_handler(cloud, router, not_found))
