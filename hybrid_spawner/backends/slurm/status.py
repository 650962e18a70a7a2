"""One shared view of the Slurm queue for every SlurmSpawner in the hub process.

batchspawner runs ``squeue -j ID`` once per server per poll and reads any failure as "the job is
gone", which stopped running servers whenever the controller was busy (batchspawner issues 171
and 315). Here one ``squeue`` call answers for every tracked job, concurrent callers share the
call in flight, and a failed call means UNKNOWN, never "gone" (see :mod:`hybrid_spawner.status`).
"""

from __future__ import annotations

import subprocess
from typing import Sequence

from hybrid_spawner.status import NodeObservation, NodeState, StatusCache

# %i job id, %T long state, %r reason, %B batch host, %P partition
SQUEUE_FORMAT = "%i|%T|%r|%B|%P"
PENDING_STATES = frozenset(
    {"PENDING", "CONFIGURING", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED", "RESIZING", "SUSPENDED"}
)
# COMPLETING is not here: the job is ending (its processes are being killed), the server with it.
RUNNING_STATES = frozenset({"RUNNING", "STAGE_OUT", "SIGNALING"})
# squeue prints this (exit 1) only when none of the requested ids exists any more.
ALL_IDS_INVALID = "Invalid job id specified"


def observation_from_squeue_line(line: str) -> tuple[str, NodeObservation] | None:
    """``"12|PENDING|Resources|n/a|batch"`` -> ("12", PENDING observation). Pure."""
    parts = [p.strip() for p in line.strip().split("|")]
    if len(parts) != 5 or not parts[0]:
        return None
    job_id, state, reason, host, partition = parts
    state = state.split()[0] if state else "UNKNOWN"
    reason_text = "" if reason in ("", "None", "(null)") else f": {reason}"
    detail = f"{state}{reason_text} (partition {partition})"
    if state in RUNNING_STATES:
        return job_id, NodeObservation(NodeState.RUNNING, detail, host if host not in ("", "n/a") else None)
    if state in PENDING_STATES:
        return job_id, NodeObservation(NodeState.PENDING, detail)
    return job_id, NodeObservation(NodeState.GONE, detail)


def parse_squeue(text: str) -> dict[str, NodeObservation]:
    """Parse ``squeue --noheader --format=SQUEUE_FORMAT`` output. Pure."""
    jobs = {}
    for line in text.splitlines():
        parsed = observation_from_squeue_line(line)
        if parsed:
            jobs[parsed[0]] = parsed[1]
    return jobs


class SqueueFailed(RuntimeError):
    """squeue failed in a way that says nothing about the jobs (controller down, timeout ...)."""


def squeue_argv(command: Sequence[str], job_ids: Sequence[str]) -> list[str]:
    return [*command, "--noheader", "--states=all", f"--format={SQUEUE_FORMAT}", f"--jobs={','.join(sorted(job_ids))}"]


class SlurmStatusCache(StatusCache):
    """All tracked jobs, refreshed by one ``squeue`` per refresh (in a worker thread).

    ``command`` is the squeue argv prefix (``["squeue"]``, or e.g. ``["sudo", "-u", "slurm",
    "squeue"]``); ``env`` is its environment (``SLURM_CONF`` ...).
    """

    backend = "slurm"

    def __init__(self, interval: float, command: Sequence[str] = ("squeue",), env: dict | None = None, timeout: float = 30.0):
        super().__init__(interval)
        self.command = list(command)
        self.env = env
        self.timeout = timeout
        self.calls = 0

    def fetch_all(self, node_ids: frozenset[str]) -> dict[str, NodeObservation]:
        ids = list(node_ids)
        if not ids:
            return {}
        self.calls += 1
        self.last_refresh_calls = 1
        try:
            result = subprocess.run(
                squeue_argv(self.command, ids),
                env=self.env,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=self.timeout,
            )
        except subprocess.TimeoutExpired:
            raise SqueueFailed(f"squeue did not answer within {self.timeout:.0f}s") from None
        except OSError as e:
            raise SqueueFailed(f"cannot run squeue: {e}") from None
        if result.returncode != 0:
            if ALL_IDS_INVALID in result.stderr:
                return {}
            raise SqueueFailed(f"squeue exited with {result.returncode}: {result.stderr.strip()[:300]}")
        return parse_squeue(result.stdout)

    def list_owned(self, hub_id: str) -> dict:
        """Every job in the queue that carries ``hub_id``'s marker, with its owner: one squeue
        over the whole queue (the reconciler's listing; polling asks only for tracked ids)."""
        from hybrid_spawner.backends.slurm.ownership import owned_argv, parse_owned

        try:
            result = subprocess.run(owned_argv(self.command), env=self.env, stdin=subprocess.DEVNULL,
                                    capture_output=True, text=True, timeout=self.timeout)
        except subprocess.TimeoutExpired:
            raise SqueueFailed(f"squeue did not answer within {self.timeout:.0f}s") from None
        except OSError as e:
            raise SqueueFailed(f"cannot run squeue: {e}") from None
        if result.returncode != 0:
            raise SqueueFailed(f"squeue exited with {result.returncode}: {result.stderr.strip()[:300]}")
        return parse_owned(result.stdout, hub_id)
