"""``python -m simulators.openstack --port N``: serve the fake until interrupted."""

from __future__ import annotations

import argparse
import json
import signal
import sys
from pathlib import Path

from simulators.openstack.control import cloud_description, clouds_yaml_entries
from simulators.openstack.server import build_server
from simulators.openstack.state import Cloud


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="HTTP fake of Keystone v3, Nova, Neutron and Glance")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--cidr", default="127.42.0.0/24",
                        help="subnet of the 'research-private' network; a loopback range lets local "
                             "processes listen on the servers' addresses")
    parser.add_argument("--build-seconds", type=float, default=0.5, help="time a server stays in BUILD")
    parser.add_argument("--delete-seconds", type=float, default=0.3, help="time a deleted server stays visible")
    parser.add_argument("--clouds-yaml", default="",
                        help="write a clouds.yaml for this fake here (clouds fake, fake-admin, fake-appcred)")
    args = parser.parse_args(argv)
    cloud = Cloud(cidr=args.cidr, build_seconds=args.build_seconds, delete_seconds=args.delete_seconds)
    httpd = build_server(cloud, args.host, args.port)
    if args.clouds_yaml:
        description = cloud_description(cloud, f"http://{args.host}:{httpd.server_address[1]}")
        # JSON is valid YAML: no YAML writer needed.
        Path(args.clouds_yaml).write_text(json.dumps({"clouds": clouds_yaml_entries(description)}, indent=2))
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    print(f"openstack fake on http://{args.host}:{args.port} (auth_url /identity/v3)", flush=True)
    try:
        httpd.serve_forever()
    finally:
        httpd.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
