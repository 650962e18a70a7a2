"""One shared, batched status cache per backend, read by every spawner's ``poll()``.

Polling one cloud API call per user per interval does not scale (and gets throttled); instead
one :class:`StatusCache` per backend and account refreshes the state of *every* node the hub
owns with one batched listing per interval (EC2: ``DescribeInstances`` filtered by the hub tag,
Slurm: one ``squeue``), and ``poll()`` only reads memory. This module knows no backend: a backend
subclasses :class:`StatusCache` and implements the one hook, :meth:`StatusCache.fetch_all`.

Semantics a backend can rely on:

* ``UNKNOWN`` is never "gone": before the first successful refresh, after a failed refresh,
  or for a node launched after the last refresh started, :meth:`observe` says UNKNOWN.
* ``GONE`` is reported only by a refresh that *started* after the node was tracked and either
  listed it as stopped/terminated or did not list it at all.
* The refresh loop runs only while some node is tracked, and in a thread (``fetch_all`` is
  blocking SDK code), so the hub's event loop never waits on the cloud.
* Concurrent refreshes (the periodic loop, spawners asking for a fresh answer) share the one
  call in flight.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import time
from dataclasses import dataclass
from typing import ClassVar, Hashable

from hybrid_spawner import metrics

log = logging.getLogger("JupyterHub")


class NodeState(enum.Enum):
    PENDING = "pending"
    RUNNING = "running"
    GONE = "gone"  # stopped, terminated or deleted: the server is not coming back
    UNKNOWN = "unknown"  # no fresh information: keep assuming it runs


@dataclass(frozen=True)
class NodeObservation:
    state: NodeState
    detail: str = ""  # backend's own words, e.g. "terminated (User initiated)"; shown to users
    address: str | None = None
    owner: str = ""  # the hub user the backend says the node belongs to, when it says (caps)


UNKNOWN = NodeObservation(NodeState.UNKNOWN, "no recent status")


class StatusCache:
    """Base class: one instance per key (see :meth:`shared`), one refresh task per instance."""

    _instances: ClassVar[dict[Hashable, "StatusCache"]] = {}
    #: The backend's name, for the metrics' ``backend`` label (set by each subclass).
    backend: ClassVar[str] = "unknown"

    def __init__(self, interval: float):
        self.interval = interval
        self._tracked: dict[str, float] = {}  # node id -> when tracking started
        self._snapshot: dict[str, NodeObservation] = {}
        self._snapshot_started: float | None = None  # start time of the last *successful* refresh
        self._task: asyncio.Task | None = None
        self._inflight: asyncio.Future | None = None
        self._wake = asyncio.Event()
        self.refreshes = 0
        self.failures = 0
        self.last_refresh_calls: int | None = None  # API calls of the last refresh, if the backend counts them
        self.last_error: str | None = None

    @classmethod
    def shared(cls, key: Hashable, *args, **kwargs) -> "StatusCache":
        """The one cache for ``key`` (for EC2: region, endpoint and hub id) in this process."""
        full_key = (cls, key)
        cache = StatusCache._instances.get(full_key)
        if cache is None:
            cache = StatusCache._instances[full_key] = cls(*args, **kwargs)
        return cache

    # -- what a backend implements ----------------------------------------------------
    def fetch_all(self, node_ids: frozenset[str]) -> dict[str, NodeObservation]:
        """Blocking: list every node this hub owns, in as few API calls as possible.

        ``node_ids`` are the nodes tracked when the refresh started: a backend that can list
        everything it owns (EC2's hub tag, Nova's tag) may ignore them; one that must name what
        it asks for (``squeue --jobs``) uses them. Runs in a worker thread. Return an
        observation per node id found; raise on any API error (the cache then reports UNKNOWN
        until a later refresh succeeds). Set :attr:`last_refresh_calls` to the number of API
        calls made, for the hub log and benchmarks.
        """
        raise NotImplementedError

    # -- what spawners call -----------------------------------------------------------
    def track(self, node_id: str) -> None:
        """Start watching ``node_id`` (after launch or after ``load_state``)."""
        self._tracked.setdefault(node_id, time.monotonic())
        self._ensure_running()

    def untrack(self, node_id: str) -> None:
        self._tracked.pop(node_id, None)

    def observe(self, node_id: str) -> NodeObservation:
        """The freshest known state of ``node_id``, without any API call."""
        since = self._tracked.get(node_id)
        if since is None or self._snapshot_started is None or self._snapshot_started < since:
            return UNKNOWN
        if self.last_error is not None:
            return NodeObservation(NodeState.UNKNOWN, f"status refresh failing: {self.last_error}")
        return self._snapshot.get(node_id, NodeObservation(NodeState.GONE, "no longer exists"))

    def listed(self) -> dict[str, NodeObservation] | None:
        """Every node the last successful refresh reported (EC2 and OpenStack: all of this
        hub's nodes, also ones no spawner tracks), or None while refreshes fail or before the
        first one. Read by the caps (:mod:`hybrid_spawner.caps`)."""
        if self._snapshot_started is None or self.last_error is not None:
            return None
        return dict(self._snapshot)

    async def refresh_now(self) -> None:
        """Run one refresh at once (spawners call this when they need a fresh answer)."""
        await self._refresh()

    async def refresh_if_stale(self, max_age: float) -> None:
        """Refresh unless the last snapshot is younger than ``max_age`` seconds, succeeded and
        covers every tracked node (concurrent callers share one refresh)."""
        started = self._snapshot_started
        if (
            started is not None
            and self.last_error is None
            and time.monotonic() - started <= max_age
            and all(since <= started for since in self._tracked.values())
        ):
            return
        await self._refresh()

    # -- machinery --------------------------------------------------------------------
    def _ensure_running(self) -> None:
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return  # not inside the hub's loop yet (state loading); the next poll() starts it
        if self._task is None or self._task.done():
            self._task = asyncio.ensure_future(self._loop())

    async def _loop(self) -> None:
        while self._tracked:
            await self._refresh()
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), self.interval)
            except asyncio.TimeoutError:
                pass

    async def _refresh(self) -> None:
        # The periodic loop and spawners asking for a fresh answer share the call in flight.
        if self._inflight is None or self._inflight.done():
            self._inflight = asyncio.ensure_future(self._refresh_once())
        await asyncio.shield(self._inflight)

    async def _refresh_once(self) -> None:
        started = time.monotonic()
        try:
            snapshot = await asyncio.to_thread(self.fetch_all, frozenset(self._tracked))
        except Exception as e:  # any failure means "unknown", never "gone"
            metrics.record_status_refresh(self.backend, e)
            self.failures += 1
            self.last_error = type(e).__name__
            log.warning("%s: status refresh failed (%s); keeping servers as they are", type(self).__name__, e)
            return
        metrics.record_status_refresh(self.backend)
        self.refreshes += 1
        self.last_error = None
        log.debug(
            "%s: refreshed %d nodes in %.2fs with %s API call(s)",
            type(self).__name__,
            len(snapshot),
            time.monotonic() - started,
            self.last_refresh_calls if self.last_refresh_calls is not None else "?",
        )
        self._snapshot = snapshot
        self._snapshot_started = started

    async def close(self) -> None:
        """Stop the refresh loop (tests and shutdown)."""
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
