"""Status polling at 1,000 running EC2 servers: API calls per refresh, hub API p99 with and without.

bench_ec2_poll.py spawns every server through the hub with a real node each; at ~40 MB per
simulated node 1,000 of them do not fit this machine. Here the hub's side is the same and only
the nodes are seeded: N instances run in moto (tagged as the hub tags its own), each hub user
has a server record naming its instance (the state EC2Spawner saves after a spawn), and one
light threaded HTTP stand-in answers for every server (the hub checks each one is up when it
starts). What is measured is what polling costs the hub: the EC2 calls per status refresh, and
the hub API's latency (GET /hub/api/users/NAME, sequential) with polling on against the same hub
restarted with polling off, same run.

    .venv/bin/python benchmarks/bench_poll_seeded.py [--servers 1000] [--seconds 30]
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import statistics
import sys
import tempfile
import threading
import time
import urllib.request
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.bench_ec2_poll import REFRESH, api_latencies, pct  # noqa: E402
from hybrid_spawner.backends.ec2.plan import TAG_HUB, TAG_OWNER  # noqa: E402
from simulators.ec2sim import aws_client, hub_config, make_network  # noqa: E402
from simulators.hub import LocalHub  # noqa: E402
from simulators.moto import MOTO_CREDENTIALS, MotoServer  # noqa: E402

# "fast": a refresh every 2 s and every spawner polled every 5 s (a stress setting);
# "defaults": the shipped settings (status_refresh_interval 30 s, JupyterHub's poll_interval 30 s);
# "off": the reference.
POLLING_SWITCH = """
import os
mode = os.environ.get("BENCH_POLLING")
if mode == "off":
    c.EC2Spawner.status_refresh_interval = 1e9
    c.EC2Spawner.poll_interval = 0
elif mode == "fast":
    c.EC2Spawner.status_refresh_interval = 2
    c.EC2Spawner.poll_interval = 5
else:
    c.EC2Spawner.status_refresh_interval = 30
    c.EC2Spawner.poll_interval = 30
c.JupyterHub.log_level = "DEBUG"
c.JupyterHub.init_spawners_timeout = 600
"""


class StandIn(BaseHTTPRequestHandler):
    """Every server of every user: 200 and a small JSON body to any GET."""

    def do_GET(self):
        body = b'{"stand_in": true}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def launch_instances(endpoint: str, network: dict, hub_id: str, users: list[str]) -> dict[str, str]:
    """One running instance per user, tagged as EC2Spawner tags its own; user -> instance id."""
    ec2 = aws_client("ec2", endpoint)
    instances = {}
    for user in users:
        tags = [{"Key": TAG_HUB, "Value": hub_id}, {"Key": TAG_OWNER, "Value": user}]
        reply = ec2.run_instances(ImageId=network["ami"], MinCount=1, MaxCount=1, InstanceType="t3.micro",
                                  SubnetId=network["subnet"],
                                  TagSpecifications=[{"ResourceType": "instance", "Tags": tags}])
        instances[user] = reply["Instances"][0]["InstanceId"]
    return instances


def seed_records(db_url: str, instances: dict[str, str], port: int) -> None:
    """Write each user's server record as a finished EC2 spawn leaves it (the hub is stopped)."""
    from jupyterhub import orm

    db = orm.new_session_factory(db_url)()
    now = datetime.now(timezone.utc).replace(tzinfo=None)
    for name, instance_id in instances.items():
        user = db.query(orm.User).filter_by(name=name).one()
        spawner = user.orm_spawners.get("") or orm.Spawner(name="", user=user)
        spawner.server = orm.Server(ip="127.0.0.1", port=port, base_url=f"/user/{name}/")
        spawner.state = {"backend": "ec2", "node_id": instance_id, "node_ip": "127.0.0.1", "node_port": port,
                         "instance_type": "t3.micro", "market": None}
        spawner.started = now
        db.add(spawner)
    db.commit()
    db.close()


def ready_count(hub: LocalHub) -> int:
    """Users with a ready server, page by page (the hub answers at most 200 per page)."""
    count, offset = 0, 0
    while True:
        request = urllib.request.Request(f"{hub.url}/hub/api/users?state=ready&offset={offset}&limit=200")
        request.add_header("Authorization", f"token {hub.admin_token}")
        with urllib.request.urlopen(request, timeout=120) as r:
            page = json.load(r)
        count += len(page)
        offset += len(page)
        if len(page) < 200:
            return count


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--servers", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=30, help="measuring time per phase")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="bench-poll-seeded-"))
    os.environ.update(MOTO_CREDENTIALS)
    moto = MotoServer(work).start()
    standin = ThreadingHTTPServer(("127.0.0.1", 0), StandIn)
    threading.Thread(target=standin.serve_forever, daemon=True).start()
    hub_id = f"bench-{secrets.token_hex(3)}"
    users = [f"u{i:04d}" for i in range(args.servers)]
    hub = None
    try:
        network = make_network(moto.url)
        config = hub_config(moto.url, network, hub_id) + POLLING_SWITCH
        hub = LocalHub(work / "hub", config, env={**MOTO_CREDENTIALS, "BENCH_POLLING": "on"}).start()
        hub.api("POST", "/users", {"usernames": users}, expect=201)
        t0 = time.monotonic()
        instances = launch_instances(moto.url, network, hub_id, users)
        print(f"{len(instances)} instances running in moto ({time.monotonic() - t0:.0f}s)", flush=True)
        hub.stop()
        seed_records(f"sqlite:///{hub.dir}/jupyterhub.sqlite", instances, standin.server_address[1])

        phases, refreshes, running = {}, {}, {}
        for mode in ("fast", "defaults", "off"):
            hub.extra_env["BENCH_POLLING"] = mode
            t0 = time.monotonic()
            hub.start(timeout=900)
            running[mode] = ready_count(hub)
            print(f"[{mode}] hub started with {running[mode]} running servers in {time.monotonic() - t0:.0f}s", flush=True)
            time.sleep(10)  # past the start-up checks, a few refreshes in
            mark = len(hub.log_text())
            phases[mode] = api_latencies(hub, users, args.seconds)
            refreshes[mode] = [tuple(map(float, m)) for m in REFRESH.findall(hub.log_text()[mark:])]
            running[mode] = min(running[mode], ready_count(hub))
            hub.stop()
    finally:
        if hub is not None:
            hub.stop()
        standin.shutdown()
        moto.stop()

    print()
    print(f"servers running: {running} of {args.servers} (the least seen in each phase)")
    for mode in ("fast", "defaults"):
        found = refreshes[mode]
        if found:
            calls = [int(r[2]) for r in found]
            print(f"[{mode}] {len(found)} status refreshes in {args.seconds:.0f}s, {max(int(r[0]) for r in found)} instances "
                  f"listed per refresh, EC2 API calls per refresh: median {statistics.median(calls):.0f} (max {max(calls)}) "
                  f"(target: one per 1000 = {-(-args.servers // 1000)}; per-server polling would make {args.servers}), "
                  f"refresh median {statistics.median([r[1] for r in found]) * 1000:.0f} ms")
    print()
    print(f"{'hub API GET /users/NAME':<34} {'n':>6} {'p50 ms':>8} {'p99 ms':>8}")
    labels = {"off": "polling off (reference)", "defaults": "polling, shipped intervals (30 s)",
              "fast": "polling, refresh 2 s, poll 5 s"}
    for mode in ("off", "defaults", "fast"):
        samples = phases[mode]
        print(f"{labels[mode]:<34} {len(samples):>6} {pct(samples, 0.5):>8.1f} {pct(samples, 0.99):>8.1f}")
    for mode in ("defaults", "fast"):
        print(f"ratio {mode}/off: p50 {pct(phases[mode], 0.5) / pct(phases['off'], 0.5):.2f}x, "
              f"p99 {pct(phases[mode], 0.99) / pct(phases['off'], 0.99):.2f}x (goal: p99 within 1.5x)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
