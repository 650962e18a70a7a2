"""The spawners' own Prometheus metrics, served by the hub at ``/hub/metrics``.

JupyterHub serves prometheus_client's default registry at ``/hub/metrics`` (to tokens with the
``read:metrics`` scope), so every metric defined here appears there beside the hub's own
``jupyterhub_*`` figures, with no handler of ours. This is the one module that defines them;
other code records through the small functions below, never through the metric objects, so a
name or a label is spelled in one place. Metric names, labels and example PromQL:
docs/metrics.md.

Everything here is cheap and never raises into the caller: a metric must not fail a spawn.
"""

from __future__ import annotations

import re
import threading

from prometheus_client import Counter, Gauge, Histogram

# Spawns take from seconds (Slurm on an idle cluster, a simulated node) to many minutes (a cloud
# instance booting a large image); the hub's own spawn histogram stops at 5 minutes.
SPAWN_BUCKETS = (1, 2.5, 5, 10, 20, 30, 45, 60, 90, 120, 180, 300, 450, 600, 900, float("inf"))

SPAWN_OUTCOMES = ("success", "failure", "cancelled")
# A label value names a kind of thing, never an id: an instance id or a user name as a label
# would start a new time series per node, which Prometheus keeps for weeks.
_LABEL_WORD = re.compile(r"^[a-z][a-z0-9_]{0,39}$")

SPAWNS = Counter(
    "hybrid_spawns_total",
    "Spawns finished by a hybrid backend spawner, by backend and outcome (success, failure, cancelled).",
    ["backend", "outcome"],
)
SPAWN_DURATION = Histogram(
    "hybrid_spawn_duration_seconds",
    "Seconds from a spawn's start until its server answered (successful spawns only), by backend.",
    ["backend"],
    buckets=SPAWN_BUCKETS,
)
STATUS_REFRESHES = Counter(
    "hybrid_status_refreshes_total",
    "Batched status refreshes of a backend's shared status cache (successful or not), by backend.",
    ["backend"],
)
STATUS_REFRESH_ERRORS = Counter(
    "hybrid_status_refresh_errors_total",
    "Status refreshes that failed (servers then stay as they were), by backend and error type.",
    ["backend", "error"],
)
RUNNING_SERVERS = Gauge(
    "hybrid_running_servers",
    "Servers this hub runs on a hybrid backend now, by backend and profile (empty profile: no HybridSpawner profile).",
    ["backend", "profile"],
)
NODES_RECONCILED = Counter(
    "hybrid_nodes_reconciled_total",
    "Nodes a reconciliation acted on, by backend and action.",
    ["backend", "action"],
)
QUARANTINES = Counter(
    "hybrid_quarantines_total",
    "Nodes moved into quarantine after an incident, by backend.",
    ["backend"],
)


def record_spawn(backend: str, outcome: str, seconds: float | None = None) -> None:
    """One spawn ended with ``outcome`` (one of :data:`SPAWN_OUTCOMES`); ``seconds`` it took
    (recorded in the duration histogram for successful spawns only, so a fast failure does not
    make spawning look fast)."""
    if outcome not in SPAWN_OUTCOMES:
        raise ValueError(f"spawn outcome must be one of {SPAWN_OUTCOMES}, not {outcome!r}")
    SPAWNS.labels(backend=backend, outcome=outcome).inc()
    if outcome == "success" and seconds is not None:
        SPAWN_DURATION.labels(backend=backend).observe(max(0.0, seconds))


def record_status_refresh(backend: str, error: BaseException | None = None) -> None:
    """One refresh of ``backend``'s status cache ran; ``error`` if it failed."""
    STATUS_REFRESHES.labels(backend=backend).inc()
    if error is not None:
        STATUS_REFRESH_ERRORS.labels(backend=backend, error=type(error).__name__).inc()


def record_reconciled(backend: str, action: str, count: int = 1) -> None:
    """A reconciliation did ``action`` to ``count`` nodes. ``action`` is a short lowercase word
    such as ``terminated``, ``adopted`` or ``forgotten`` (see docs/metrics.md)."""
    if not _LABEL_WORD.match(action or ""):
        raise ValueError(f"reconcile action must be a short lowercase word (e.g. 'terminated'), not {action!r}")
    if count < 0:
        raise ValueError("a count of reconciled nodes cannot be negative")
    NODES_RECONCILED.labels(backend=backend, action=action).inc(count)


def record_quarantine(backend: str) -> None:
    """A node of ``backend`` was quarantined."""
    QUARANTINES.labels(backend=backend).inc()


class RunningServers:
    """The running-servers gauge, kept from a set of servers rather than by +1/-1.

    A server is marked running when its spawn succeeds or when a restarted hub restores it,
    and stopped from every path that forgets its node (stop, a failed start, a node gone out
    of band). Marking the same server twice in either direction changes nothing, so the gauge
    never drifts when two of those paths run for one server.
    """

    def __init__(self, gauge: Gauge = RUNNING_SERVERS):
        self._gauge = gauge
        self._servers: dict[str, tuple[str, str]] = {}  # server key -> (backend, profile)
        self._lock = threading.Lock()

    def started(self, key: str, backend: str, profile: str) -> None:
        with self._lock:
            previous = self._servers.get(key)
            if previous == (backend, profile):
                return
            if previous is not None:
                self._gauge.labels(*previous).dec()
            self._servers[key] = (backend, profile)
            self._gauge.labels(backend, profile).inc()

    def stopped(self, key: str) -> None:
        with self._lock:
            previous = self._servers.pop(key, None)
            if previous is not None:
                self._gauge.labels(*previous).dec()

    def count(self, backend: str | None = None, profile: str | None = None) -> int:
        with self._lock:
            return sum(
                1
                for b, p in self._servers.values()
                if (backend is None or b == backend) and (profile is None or p == profile)
            )


running_servers = RunningServers()
