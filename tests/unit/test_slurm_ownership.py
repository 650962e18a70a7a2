"""Which jobs of an squeue listing are this hub's (backends/slurm/ownership.py): pure."""

import pytest

from hybrid_spawner.backends.slurm.ownership import hub_marker, owned_argv, parse_owned
from hybrid_spawner.status import NodeState

LISTING = """\
101|RUNNING|None|node1|debug|ann|jupyterhub-hybrid:hub-a
102|PENDING|PartitionDown|n/a|maint|bob|jupyterhub-hybrid:hub-a
103|RUNNING|None|node1|debug|cid|jupyterhub-hybrid:hub-b
104|RUNNING|None|node1|debug|dan|(null)
105|RUNNING|None|node1|debug|eve|jupyterhub-hybrid:hub-a-copy
106|COMPLETING|None|node1|debug|fay|jupyterhub-hybrid:hub-a
107|RUNNING|None|node1|debug|gus|x|jupyterhub-hybrid:hub-a
108|RUNNING|None|node1|debug||jupyterhub-hybrid:hub-a
garbage
"""


def test_only_jobs_with_exactly_this_hubs_marker_are_owned():
    owned = parse_owned(LISTING, "hub-a")
    assert sorted(owned) == ["101", "102", "106"]
    assert owned["101"].owner == "ann" and owned["101"].observation.state is NodeState.RUNNING
    assert owned["101"].observation.address == "node1"
    assert owned["102"].observation.state is NodeState.PENDING
    assert owned["106"].observation.state is NodeState.GONE  # ending: its server with it


def test_a_comment_holding_the_separator_or_a_longer_id_is_not_the_marker():
    owned = parse_owned(LISTING, "hub-a")
    assert "105" not in owned and "107" not in owned and "108" not in owned  # 108: no owner to cancel as


@pytest.mark.parametrize("bad", ["", "a b", "a;rm -rf /", "x" * 65, "hub\nnext"])
def test_a_hub_id_that_cannot_go_into_an_sbatch_line_is_refused(bad):
    with pytest.raises(ValueError, match="SlurmSpawner.hub_id"):
        hub_marker(bad)


def test_the_listing_asks_for_the_whole_queue_with_owner_and_comment():
    argv = owned_argv(["/opt/slurm/bin/squeue"])
    assert argv[0] == "/opt/slurm/bin/squeue" and "--format=%i|%T|%r|%B|%P|%u|%k" in argv
    assert not any(a.startswith("--jobs") for a in argv)
