"""Test-wide setup. Fixture modules live in tests/fixtures/ and are all registered here,
so that each area (hub, S3, nginx, Slurm, OpenStack) can keep its fixtures in a file of its own."""

import os
from pathlib import Path

import boto3
import pytest

pytest_plugins = ["pytest_jupyter.jupyter_server"] + sorted(
    f"tests.fixtures.{p.stem}" for p in (Path(__file__).parent / "fixtures").glob("*.py") if p.stem != "__init__"
)


@pytest.fixture(autouse=True)
def keep_umask():
    """The example hub configs set os.umask(0o077) when a test loads them in this process; under
    xdist a later test file in the same worker would then create 0700 directories that the
    simulated nodes' accounts cannot pass through."""
    mask = os.umask(0o022)
    os.umask(mask)
    yield
    os.umask(mask)


@pytest.fixture(autouse=True)
def fresh_boto3_default_session():
    """boto3's module-level session keeps the first credentials it resolved in this process;
    under xdist a test would otherwise sign with whatever keys an earlier module had set."""
    boto3.DEFAULT_SESSION = None
    yield
    boto3.DEFAULT_SESSION = None
