"""Sync's Prometheus metrics, served by the single-user server at ``/metrics``.

jupyter_server serves prometheus_client's default registry at ``/metrics`` (authenticated like
its other endpoints unless ``ServerApp.authenticate_prometheus = False``), so defining the
metrics here is all it takes to publish them. :class:`~voila_publisher.sync.job.Job` records
through the functions below as it runs, whatever started it (the Lab's button, the periodic
sync, the final sync on stop, the command line). Names, labels and PromQL: docs/metrics.md.
"""

from __future__ import annotations

from prometheus_client import Counter

# A sync uploads (and may delete), a restore downloads: the direction follows the job's kind.
DIRECTION = {"sync": "upload", "restore": "download"}

SYNC_JOBS = Counter(
    "hybrid_sync_jobs_total",
    "Sync and restore jobs finished on this server, by kind (sync, restore) and state (done, error).",
    ["kind", "state"],
)
SYNC_BYTES = Counter(
    "hybrid_sync_bytes_total",
    "Bytes transferred between this server and the bucket, by direction (upload, download).",
    ["direction"],
)
SYNC_ERRORS = Counter(
    "hybrid_sync_errors_total",
    "Errors of sync and restore jobs (a file that failed, or a whole job stopped), by kind.",
    ["kind"],
)


def record_bytes(kind: str, count: int) -> None:
    if count > 0:
        SYNC_BYTES.labels(direction=DIRECTION[kind]).inc(count)


def record_error(kind: str) -> None:
    SYNC_ERRORS.labels(kind=kind).inc()


def record_job(kind: str, state: str) -> None:
    SYNC_JOBS.labels(kind=kind, state=state).inc()
