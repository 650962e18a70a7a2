"""Soak: many researchers spawn, write, sync, publish and stop in cycles while the cloud misbehaves.

The whole demo system runs on this machine (simulators/demo_stack.py: JupyterHub with
HybridSpawner, EC2 on moto, the OpenStack fake, real Slurm when available, SeaweedFS, the public
Voila host), with fault proxies between the hub and EC2 and between the nodes and the bucket
(throttling, 5xx, latency, lost answers; simulators/fault_proxy.py). Each researcher is a thread
that, for every cycle and rotating over the profiles (so over the backends): starts a server,
writes a notebook through the server's contents API, syncs it, checks the bucket holds exactly
those bytes, publishes it, and stops the server. Everything is bounded in count and time and
talks only to loopback.

Printed at the end (and written as JSON with --json): spawns attempted, ready, failed with a clear
message, failed without one (must be 0), orphan nodes at the end (0), servers lost (0), files lost
(0), hub API p50/p99 latency, the hub's worst event-loop stall, the hub's memory growth.

    .venv/bin/python benchmarks/soak.py [--researchers 50] [--minutes 5] [--no-slurm] [--no-faults]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from simulators.fault_proxy import Fault

# A message the researcher can act on names what happened; these say nothing.
UNCLEAR = re.compile(r"unexpected error|traceback|internal server error|^\s*$", re.IGNORECASE)


@dataclass
class Tally:
    attempted: int = 0
    ready: int = 0
    failed_clear: int = 0
    failed_unclear: int = 0
    lost_servers: int = 0
    stop_retries: int = 0
    files_written: int = 0
    files_lost: int = 0
    syncs_failed_clear: int = 0
    published: int = 0
    publish_failed_clear: int = 0
    unclear_messages: list = field(default_factory=list)
    failure_messages: dict = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, **counts) -> None:
        with self.lock:
            for name, value in counts.items():
                setattr(self, name, getattr(self, name) + value)

    def failed(self, message: str) -> None:
        with self.lock:
            if UNCLEAR.search(message or ""):
                self.failed_unclear += 1
                self.unclear_messages.append(message)
            else:
                self.failed_clear += 1
                key = re.sub(r"[0-9a-f]{8,}|\d+", "#", message)[:120]
                self.failure_messages[key] = self.failure_messages.get(key, 0) + 1


def call(url: str, token: str, method: str = "GET", body=None, timeout: float = 60):
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method)
    request.add_header("Authorization", f"token {token}")
    if data is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:
            raw = answer.read()
            return answer.status, (json.loads(raw) if raw else None)
    except urllib.error.HTTPError as error:
        raw = error.read()
        try:
            return error.code, json.loads(raw)
        except ValueError:
            return error.code, raw.decode(errors="replace")


def notebook(user: str, cycle: int) -> dict:
    return {"cells": [{"cell_type": "markdown", "metadata": {}, "source": f"# {user}, cycle {cycle}\n{os.urandom(8).hex()}"}],
            "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}},
            "nbformat": 4, "nbformat_minor": 5}


class Researcher(threading.Thread):
    def __init__(self, index: int, stack, profiles: list[str], deadline: float, max_cycles: int, tally: Tally, s3):
        super().__init__(name=f"researcher-{index}", daemon=True)
        self.user, self.index = f"soak{index:03d}", index
        self.stack, self.hub, self.profiles = stack, stack.parts["hub"], profiles
        self.deadline, self.max_cycles, self.tally, self.s3 = deadline, max_cycles, tally, s3

    def run(self) -> None:
        self.hub.ensure_user(self.user)
        _, body = self.hub.api("POST", f"/users/{self.user}/tokens", {"note": "soak"}, expect=201)
        self.token = body["token"]
        for cycle in range(self.max_cycles):
            if time.monotonic() > self.deadline - 60:  # leave time to stop cleanly
                return
            profile = self.profiles[(self.index + cycle) % len(self.profiles)]
            try:
                self.cycle(cycle, profile)
            finally:
                self.stop()

    def cycle(self, cycle: int, profile: str) -> None:
        self.tally.add(attempted=1)
        status, body = self.hub.spawn(self.user, options={"profile": profile})
        if status not in (201, 202):
            self.tally.failed(str((body or {}).get("message", body)) if isinstance(body, dict) else str(body))
            return
        if status == 202:
            events = self.hub.progress_events(self.user, timeout=240)
            last = events[-1] if events else {}
            if not last.get("ready"):
                self.tally.failed(last.get("message", ""))
                return
        self.tally.add(ready=1)
        server = f"{self.hub.url}/user/{self.user}"
        rel = f"soak/c{cycle}-{profile}.ipynb"
        content = notebook(self.user, cycle)
        status, _ = call(f"{server}/api/contents/{rel}", self.token, "PUT", {"type": "notebook", "content": content})
        if status not in (200, 201):
            status, _ = call(f"{server}/api/contents/soak", self.token, "PUT", {"type": "directory"})
            status, _ = call(f"{server}/api/contents/{rel}", self.token, "PUT", {"type": "notebook", "content": content})
        if status not in (200, 201):
            self.check_alive("writing a notebook")
            return
        self.tally.add(files_written=1)
        status, job = call(f"{server}/hybrid/sync", self.token, "POST", {"paths": [rel]})
        job = self.follow(f"{server}/hybrid/sync/{(job or {}).get('id', '')}", job) if status == 202 else job
        if (job or {}).get("state") != "done":
            self.tally.add(syncs_failed_clear=1 if (job or {}).get("message") else 0)
            if not (job or {}).get("message"):
                self.tally.failed(f"sync: {job}")
        stored = self.stored(rel)
        if (job or {}).get("state") == "done" and stored is None:
            self.tally.add(files_lost=1)
        status, published = call(f"{server}/hybrid/publish", self.token, "POST", {"path": rel}, timeout=120)
        if status == 200:
            self.tally.add(published=1)
        elif isinstance(published, dict) and published.get("message"):
            self.tally.add(publish_failed_clear=1)
        else:
            self.tally.failed(f"publish: {status} {published}")
        self.check_alive("the cycle")

    def follow(self, url: str, job: dict, timeout: float = 180) -> dict:
        end = time.monotonic() + timeout
        while time.monotonic() < end and job.get("state") in ("queued", "running", "pending", None):
            time.sleep(0.5)
            _, job = call(url, self.token)
            job = job or {}
        return job

    def stored(self, rel: str) -> bytes | None:
        try:
            return self.s3.get_object(Bucket=self.stack.urls["bucket"], Key=f"users/{self.user}/{rel}")["Body"].read()
        except Exception:  # noqa: BLE001 - absent is what is counted
            return None

    def check_alive(self, when: str) -> None:
        model = self.hub.server_model(self.user)
        if not (model or {}).get("ready"):
            self.tally.add(lost_servers=1)
            print(f"soak: {self.user}'s server was lost during {when}: {model}", file=sys.stderr)

    def stop(self) -> None:
        # JupyterHub answers 500 to a DELETE that interrupts a start which has not wound down
        # within its one second ("pending spawn"); a real client asks again, so does the soak.
        for attempt in range(4):
            try:
                self.hub.stop_server(self.user, wait=True)
                return
            except Exception as error:  # noqa: BLE001 - counted by the orphan check at the end
                print(f"soak: stopping {self.user} (attempt {attempt + 1}): {error}", file=sys.stderr)
                self.tally.add(stop_retries=1)
                time.sleep(5)


class Probe(threading.Thread):
    """The hub API's latency while the soak runs: one light request every 0.25 s."""

    def __init__(self, hub, stop: threading.Event):
        super().__init__(name="probe", daemon=True)
        self.hub, self.stop_event, self.latencies = hub, stop, []

    def run(self) -> None:
        while not self.stop_event.wait(0.25):
            started = time.monotonic()
            self.hub.api("GET", "/users/soak000")
            self.latencies.append(time.monotonic() - started)


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def loop_interval_bound(metrics: str) -> float | None:
    """The upper bound of JupyterHub's worst measured event-loop interval, from the
    ``jupyterhub_event_loop_interval_seconds`` histogram: the smallest bucket holding every sample."""
    buckets = [(float("inf") if le == "+Inf" else float(le), float(n)) for le, n in
               re.findall(r'jupyterhub_event_loop_interval_seconds_bucket\{le="([^"]+)"\} ([0-9.e+]+)', metrics)]
    if not buckets:
        return None
    total = max(n for _, n in buckets)
    return min(le for le, n in buckets if n >= total)


def worst_loop_stall(log: str) -> float:
    """JupyterHub logs 'Event loop was unresponsive for at least X.XXs!' past its threshold (1 s)."""
    stalls = [float(x) for x in re.findall(r"Event loop was unresponsive for (?:at least )?([0-9.]+)s", log)]
    return max(stalls, default=0.0)


def orphans(stack) -> dict:
    """Nodes still alive on each backend once every server is stopped."""
    from simulators.ec2sim import aws_client

    found = {}
    ec2 = aws_client("ec2", stack.urls["moto"])
    hub_id = stack.hub_id
    reply = ec2.describe_instances(Filters=[{"Name": "tag:jupyterhub/hub-id", "Values": [hub_id]},
                                            {"Name": "instance-state-name", "Values": ["pending", "running", "stopping", "stopped"]}])
    found["ec2"] = [i["InstanceId"] for r in reply["Reservations"] for i in r["Instances"]]
    fake = stack.parts.get("openstack")
    if fake is not None:
        found["openstack"] = [s["id"] for s in fake.servers() if not s["deleting"] and s["metadata"].get("hybrid-hub") == hub_id]
    slurm = stack.parts.get("slurm")
    if slurm is not None:
        found["slurm"] = [j for j in slurm.job_ids()]
    return found


def apply_faults(stack) -> None:
    ec2, s3 = stack.proxies["ec2"], stack.proxies["s3"]
    ec2.add(Fault("throttle", body="Action=RunInstances", probability=0.15))
    ec2.add(Fault("throttle", body="Action=DescribeInstances", probability=0.05))
    ec2.add(Fault("status", status=503, body="Action=DescribeInstances", probability=0.03))
    ec2.add(Fault("latency", seconds=0.3, probability=0.2))
    s3.add(Fault("throttle", flavour="s3", method="PUT", probability=0.05))
    s3.add(Fault("reset", method="PUT", probability=0.02))
    s3.add(Fault("latency", seconds=0.2, probability=0.1))


def soak(researchers: int, minutes: float, max_cycles: int, directory: Path, slurm: bool, faults: bool) -> dict:
    import boto3

    from simulators.demo_stack import DemoStack
    from simulators.seaweedfs import ADMIN_CREDENTIALS

    started = time.monotonic()
    stack = DemoStack(directory, with_slurm=slurm, with_openstack=True, with_fault_proxies=faults).start()
    try:
        hub = stack.parts["hub"]
        s3 = boto3.client("s3", endpoint_url=stack.urls["s3"], region_name="us-east-1",
                          aws_access_key_id=ADMIN_CREDENTIALS["AWS_ACCESS_KEY_ID"],
                          aws_secret_access_key=ADMIN_CREDENTIALS["AWS_SECRET_ACCESS_KEY"])
        hub_pid = hub.process.proc.pid
        rss_start = rss_kib(hub_pid)
        if faults:
            apply_faults(stack)
        tally, stop_probe = Tally(), threading.Event()
        probe = Probe(hub, stop_probe)
        probe.start()
        deadline = time.monotonic() + minutes * 60
        threads = [Researcher(i, stack, stack.urls["profiles"], deadline, max_cycles, tally, s3) for i in range(researchers)]
        if os.geteuid() == 0:  # as root the simulated nodes run as each researcher's own account
            from simulators.demo_stack import ensure_account

            for thread in threads:
                ensure_account(thread.user)
        for thread in threads:
            thread.start()
            time.sleep(0.05)
        for thread in threads:
            thread.join(max(1.0, deadline - time.monotonic() + 240))
        stop_probe.set()
        probe.join(5)
        for proxy in stack.proxies.values():
            proxy.clear()
        time.sleep(5)  # the last terminations settle
        metrics = urllib.request.urlopen(urllib.request.Request(
            f"{hub.url}/hub/metrics", headers={"Authorization": f"token {hub.admin_token}"}), timeout=30).read().decode()
        left = orphans(stack)
        latencies = sorted(probe.latencies) or [0.0]
        result = {
            "researchers": researchers, "minutes": minutes, "faults": faults,
            "profiles": stack.urls["profiles"],
            "spawns_attempted": tally.attempted, "spawns_ready": tally.ready,
            "failed_with_clear_message": tally.failed_clear, "failed_without_message": tally.failed_unclear,
            "unclear_messages": tally.unclear_messages[:10], "failure_kinds": tally.failure_messages,
            "servers_lost": tally.lost_servers, "stop_retries": tally.stop_retries, "files_written": tally.files_written, "files_lost": tally.files_lost,
            "syncs_failed_with_message": tally.syncs_failed_clear,
            "published": tally.published, "publish_failed_with_message": tally.publish_failed_clear,
            "orphan_nodes": sum(len(v) for v in left.values()), "orphans": left,
            "hub_api_p50_ms": round(statistics.median(latencies) * 1000, 1),
            "hub_api_p99_ms": round(latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000, 1),
            "hub_event_loop_worst_stall_s": worst_loop_stall(hub.log_text()),
            "hub_event_loop_interval_bound_s": loop_interval_bound(metrics),
            "hub_rss_start_mib": round(rss_start / 1024, 1), "hub_rss_end_mib": round(rss_kib(hub_pid) / 1024, 1),
            "faults_fired": {name: dict(p.fired) for name, p in stack.proxies.items()},
            "wall_seconds": round(time.monotonic() - started, 1),
            # The machine's own load: on a shared 2-core machine a starved hub is not a slow hub.
            "load_average_1min_end": round(os.getloadavg()[0], 1),
        }
        return result
    finally:
        stack.stop()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--researchers", type=int, default=50)
    parser.add_argument("--minutes", type=float, default=5)
    parser.add_argument("--cycles", type=int, default=3, help="at most this many cycles per researcher")
    parser.add_argument("--no-slurm", action="store_true")
    parser.add_argument("--no-faults", action="store_true")
    parser.add_argument("--json", default="", help="also write the figures to this file")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="hybrid-soak-") as directory:
        os.chmod(directory, 0o755)
        result = soak(args.researchers, args.minutes, args.cycles, Path(directory), not args.no_slurm, not args.no_faults)
    for key, value in result.items():
        print(f"{key:32} {value}")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1))
    bad = result["failed_without_message"] + result["orphan_nodes"] + result["servers_lost"] + result["files_lost"]
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
