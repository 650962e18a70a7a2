"""Wait until no spawn or stop is in flight, before a hub restart or upgrade.

    JUPYTERHUB_API_TOKEN=... python -m hybrid_spawner.drain --hub-url http://127.0.0.1:8081 --timeout 600 \\
        && systemctl restart jupyterhub

A spawn runs inside the hub process: between RunInstances (or sbatch) and the moment the hub has
stored the node's id, a restart can leave a node no state refers to. This tool asks the hub's
REST API (a token with the read:servers scope, e.g. a service's) for servers that are pending,
prints them, and exits 0 once there are none, or 1 after ``--timeout`` seconds. New spawns are
not refused meanwhile: run it in a quiet hour, or stop new logins at the load balancer first
(docs/operations.md). Standard library only, so it runs with the hub's Python.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import urllib.error
import urllib.request


def pending_servers(hub_url: str, token: str, timeout: float = 30) -> list[str]:
    """``user/server (pending action)`` for every server with a spawn or stop in flight."""
    request = urllib.request.Request(f"{hub_url.rstrip('/')}/hub/api/users?state=active",
                                     headers={"Authorization": f"token {token}", "Accept": "application/json"})
    with urllib.request.urlopen(request, timeout=timeout) as answer:
        users = json.load(answer)
    return [f"{user['name']}/{name} ({server['pending']})"
            for user in users for name, server in (user.get("servers") or {}).items() if server.get("pending")]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m hybrid_spawner.drain", description=__doc__.split("\n\n")[0])
    parser.add_argument("--hub-url", default=os.environ.get("JUPYTERHUB_URL", "http://127.0.0.1:8081"),
                        help="the hub (its API port or the proxy), default $JUPYTERHUB_URL or http://127.0.0.1:8081")
    parser.add_argument("--timeout", type=float, default=600, help="seconds to wait at most (default 600)")
    parser.add_argument("--interval", type=float, default=5, help="seconds between two looks (default 5)")
    args = parser.parse_args(argv)
    token = os.environ.get("JUPYTERHUB_API_TOKEN", "")
    if not token:
        print("drain: set JUPYTERHUB_API_TOKEN (a token with the read:servers scope)", file=sys.stderr)
        return 2
    deadline = time.monotonic() + args.timeout
    while True:
        try:
            pending = pending_servers(args.hub_url, token)
        except (urllib.error.URLError, OSError, ValueError) as e:
            print(f"drain: cannot ask the hub at {args.hub_url}: {e}", file=sys.stderr)
            return 2
        if not pending:
            print("drain: no spawn or stop in flight")
            return 0
        if time.monotonic() >= deadline:
            print(f"drain: still in flight after {args.timeout:g} s: {', '.join(pending)}", file=sys.stderr)
            return 1
        print(f"drain: waiting for {len(pending)}: {', '.join(pending)}", flush=True)
        time.sleep(min(args.interval, max(0.0, deadline - time.monotonic())))


if __name__ == "__main__":
    sys.exit(main())
