"""How long one reconcile pass takes with N instances on moto server (default 200).

    .venv/bin/python -m benchmarks.bench_reconcile [N]

One batched listing (a paginated DescribeInstances filtered on the hub tag, 1000 per page) and
the pure plan over N records, of which 10 claim nothing (orphans). Prints the API calls, the
listing time and the planning time. Loopback only; moto runs in a temporary directory.
"""

from __future__ import annotations

import functools
import os
import statistics
import sys
import tempfile
import time

from hybrid_spawner.backends.ec2.client import aws_client
from hybrid_spawner.backends.ec2.plan import TAG_HUB
from hybrid_spawner.backends.ec2.status import EC2StatusCache
from hybrid_spawner.reconcile import plan as rplan
from simulators.moto import MOTO_CREDENTIALS, MotoServer

HUB = "bench-hub"


def main(count: int = 200, rounds: int = 5) -> None:
    os.environ.update(MOTO_CREDENTIALS)  # moto's test credentials, for this process only
    with tempfile.TemporaryDirectory() as tmp, MotoServer(tmp) as moto:
        ec2 = aws_client("ec2", "us-east-1", moto.url, None)
        ami = ec2.describe_images()["Images"][0]["ImageId"]
        tags = [{"ResourceType": "instance", "Tags": [{"Key": TAG_HUB, "Value": HUB}]}]
        ec2.run_instances(ImageId=ami, MinCount=count, MaxCount=count, InstanceType="t3.micro", TagSpecifications=tags)
        ec2.run_instances(ImageId=ami, MinCount=20, MaxCount=20, InstanceType="t3.micro")  # not ours
        cache = EC2StatusCache(functools.partial(aws_client, "ec2", "us-east-1", moto.url, None), HUB, 60)
        listing_times, plan_times = [], []
        for _ in range(rounds):
            calls = cache.api_calls
            started = time.perf_counter()
            found = cache.fetch_all(frozenset())
            listing_times.append(time.perf_counter() - started)
            listed = [rplan.Listed(i, o.detail) for i, o in found.items()]
            records = [rplan.Record(f"u{n}", "", "ec2", node.node_id) for n, node in enumerate(listed[10:])]
            started = time.perf_counter()
            findings, _ = rplan.plan(records, {"ec2": listed}, {}, 0.0, "terminate", 0.0)
            plan_times.append(time.perf_counter() - started)
            assert len(found) == count and len(findings) == 10 and cache.api_calls - calls == 1
        print(f"{count} instances of this hub (+20 foreign) on moto server: 1 DescribeInstances call per pass")
        print(f"listing: median {statistics.median(listing_times) * 1000:.0f} ms, max {max(listing_times) * 1000:.0f} ms;"
              f" plan: median {statistics.median(plan_times) * 1000:.2f} ms; {rounds} rounds")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 200)
