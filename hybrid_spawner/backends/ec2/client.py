"""boto3 clients for the EC2 backend: one shared, thread-safe client per service, region and
endpoint (botocore clients are thread-safe; sessions are not)."""

from __future__ import annotations

import functools
import threading

import boto3
from botocore.config import Config

_clients: dict[tuple, object] = {}
_clients_lock = threading.Lock()


def ec2_client_config() -> Config:
    # Standard retry mode backs off on throttling; timeouts keep a dead endpoint from hanging a thread.
    return Config(retries={"mode": "standard", "max_attempts": 4}, connect_timeout=5, read_timeout=30)


def aws_client(service: str, region: str, endpoint_url: str | None, customizer=None):
    """A shared, thread-safe boto3 client per (service, region, endpoint, customizer)."""
    key = (service, region, endpoint_url or None, customizer)
    with _clients_lock:
        client = _clients.get(key)
        if client is None:
            client = boto3.session.Session().client(
                service, region_name=region, endpoint_url=endpoint_url or None, config=ec2_client_config()
            )
            if customizer is not None:
                customizer(client, service)
            _clients[key] = client
        return client


@functools.cache
def known_regions() -> frozenset[str]:
    session = boto3.session.Session()
    regions = set()
    for partition in session.get_available_partitions():
        regions.update(session.get_available_regions("ec2", partition_name=partition))
    return frozenset(regions)
