"""The soak's short version in CI: a few researchers, every backend the machine has, faults on;
the figures that must be zero are zero, and the run did work (spawns, syncs, publishes, faults)."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pytest

from benchmarks.soak import soak

pytestmark = pytest.mark.integration


def test_a_short_soak_loses_nothing_and_leaves_nothing():
    # Not pytest's tmp_path: the simulated nodes and Slurm jobs run as the researchers' own
    # accounts, which must be able to reach their homes (pytest's base directory is 0700).
    directory = Path(tempfile.mkdtemp(prefix="hybrid-soak-test-"))
    directory.chmod(0o755)
    try:
        result = soak(researchers=6, minutes=2, max_cycles=2, directory=directory / "soak", slurm=True, faults=True)
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    print(result)
    assert result["failed_without_message"] == 0, result["unclear_messages"]
    assert result["orphan_nodes"] == 0, result["orphans"]
    assert result["servers_lost"] == 0 and result["files_lost"] == 0, result
    assert result["spawns_ready"] >= result["spawns_attempted"] // 2 > 0, result
    assert result["published"] > 0 and result["files_written"] > 0, result
    assert sum(sum(kinds.values()) for kinds in result["faults_fired"].values()) > 0, result["faults_fired"]
    assert result["hub_api_p99_ms"] > 0 and result["hub_event_loop_interval_bound_s"] is not None
