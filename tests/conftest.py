"""Test-wide setup. Fixture modules live in tests/fixtures/ and are all registered here,
so that each area (hub, S3, nginx, Slurm, OpenStack) can keep its fixtures in a file of its own."""

from pathlib import Path

pytest_plugins = ["pytest_jupyter.jupyter_server"] + sorted(
    f"tests.fixtures.{p.stem}" for p in (Path(__file__).parent / "fixtures").glob("*.py") if p.stem != "__init__"
)
