"""Which Slurm jobs belong to this hub: the marker each job carries, and the listing that finds them.

EC2 instances and Nova servers carry the hub's tag; a Slurm job has no tags, so the hub writes
its marker into the job's comment (``#SBATCH --comment=jupyterhub-hybrid:<hub_id>``) and the
reconciler lists the queue with the comment (``%k``) and the owner (``%u``) of each job. A job
without this hub's exact marker is never returned, so never touched.

The comment is not a secret and any cluster user can set it on their own jobs: the worst a
forged marker does is get that user's own job cancelled (the hub cancels as the job's owner,
through ``exec_prefix``). Pure: no subprocess here (status.py runs squeue).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from hybrid_spawner.backends.slurm.status import observation_from_squeue_line
from hybrid_spawner.status import NodeObservation

MARKER_PREFIX = "jupyterhub-hybrid:"
#: A hub id goes into an #SBATCH line and is compared as a word: no spaces or shell syntax.
SAFE_HUB_ID = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
# %i job id, %T state, %r reason, %B batch host, %P partition, %u owner, %k comment (last: it may hold "|")
OWNED_FORMAT = "%i|%T|%r|%B|%P|%u|%k"


def hub_marker(hub_id: str) -> str:
    """The comment that marks a job as this hub's: ``jupyterhub-hybrid:<hub_id>``."""
    if not SAFE_HUB_ID.match(hub_id or ""):
        raise ValueError(f"SlurmSpawner.hub_id {hub_id!r}: use 1-64 letters, digits, '_', '.' or '-'")
    return MARKER_PREFIX + hub_id


@dataclass(frozen=True)
class OwnedJob:
    job_id: str
    owner: str
    observation: NodeObservation


def parse_owned(text: str, hub_id: str) -> dict[str, OwnedJob]:
    """Jobs in ``squeue --format=OWNED_FORMAT`` output whose comment is exactly this hub's marker."""
    marker = hub_marker(hub_id)
    jobs = {}
    for line in text.splitlines():
        parts = line.strip().split("|", 6)
        if len(parts) != 7 or parts[6].strip() != marker:
            continue
        parsed = observation_from_squeue_line("|".join(parts[:5]))
        if parsed and parts[5].strip():
            jobs[parsed[0]] = OwnedJob(parsed[0], parts[5].strip(), parsed[1])
    return jobs


def owned_argv(command: list[str]) -> list[str]:
    """squeue over the whole queue (its default states: pending, running, suspended, completing)."""
    return [*command, "--noheader", f"--format={OWNED_FORMAT}"]
