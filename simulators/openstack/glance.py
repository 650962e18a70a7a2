"""Glance (Image API v2): version discovery, image list with filters, image show.

As in the reference, the unversioned root answers 300 Multiple Choices with the versions, the
list is ``{"images": [...], "first": ..., "schema": ...}`` and a missing image is a 404.
"""

from __future__ import annotations

from simulators.openstack import keystone
from simulators.openstack.app import Request, Response, Router, json_response

PREFIX = "/image"
FILTERS = ("name", "status", "visibility", "owner", "container_format", "disk_format", "id")


def versions(req: Request) -> Response:
    href = f"{req.base_url}{PREFIX}/v2/"
    return json_response(300, {"versions": [
        {"id": v, "status": "CURRENT" if v == "v2.16" else "SUPPORTED", "links": [{"rel": "self", "href": href}]}
        for v in ("v2.16", "v2.15", "v2.9", "v2.0")
    ]})


def list_images(req: Request) -> Response:
    if (resp := keystone.authenticate(req)) is not None:
        return resp
    images = list(req.cloud.images.values())
    for key in FILTERS:
        value = req.arg(key)
        if value is not None:
            images = [i for i in images if str(i.get(key)) == value]
    query = "&".join(f"{k}={v[-1]}" for k, v in req.query.items())
    return json_response(200, {"images": images, "schema": "/v2/schemas/images",
                               "first": "/v2/images" + (f"?{query}" if query else "")})


def show_image(req: Request) -> Response:
    if (resp := keystone.authenticate(req)) is not None:
        return resp
    image = req.cloud.images.get(req.match["id"])
    if image is None:
        # Glance answers a missing image with a plain-text 404.
        return Response(404, f"404 Not Found\n\nNo image found with ID {req.match['id']}\n\n   ",
                        {"Content-Type": "text/plain; charset=UTF-8"})
    return json_response(200, image)


def register(router: Router) -> None:
    router.add("GET", PREFIX, versions)
    router.add("GET", PREFIX + "/versions", lambda r: json_response(200, versions(r).body))
    router.add("GET", PREFIX + "/v2/images", list_images)
    router.add("GET", PREFIX + r"/v2/images/(?P<id>[^/]+)", show_image)
