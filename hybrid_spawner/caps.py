"""Caps on running servers: per user, per backend and per profile, enforced when a spawn starts.

Two sources are counted together, so servers started elsewhere count too:

* the hub's own servers — every HybridSpawner that holds a server (running, or starting: the
  hold is taken before the launch) registers a :class:`Holding` here; ``load_state`` registers
  the servers the hub's database lists after a restart, ``stop``/``clear_state`` release them;
* the backend's own batched listing (the status cache's one ``DescribeInstances`` / Nova
  listing of every node carrying this hub's tag): a node in it that no holding names — an
  instance launched by hand or by a script with the hub's tag — counts against the backend cap,
  and against its owner's cap when the listing says whose it is.

Concurrent spawns racing for the last slot: the hub is one process and one event loop, so one
:class:`asyncio.Lock` around "count, compare, hold" is enough: exactly one request takes the
slot, the others see it taken and are refused before anything is launched.

:func:`refusal` is pure (unit-tested); :class:`CapGate` adds the lock and the holdings;
:func:`backend_listing` reads the backend's status cache (its blocking call runs in a thread).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field

from hybrid_spawner.status import NodeObservation, NodeState


class CapReached(Exception):
    """The spawn would exceed a cap. The message is for the researcher; ``scope`` says which
    cap ("user", "profile", "backend" or "step"): a burst chain moves on only for the last two."""

    def __init__(self, message: str, scope: str):
        super().__init__(message)
        self.scope = scope


class CapUnknown(Exception):
    """The backend's listing failed, so the cap cannot be checked. The message is for the researcher."""


@dataclass(frozen=True)
class Limits:
    """The caps that apply to one request; 0 means no cap."""

    per_user: int = 0
    per_backend: int = 0
    per_profile: int = 0  # the profile's servers on all its backends
    per_step: int = 0  # the profile's servers on this backend (a burst step's own cap)


@dataclass(frozen=True)
class Holding:
    """A server of this hub (running or being started) that counts against the caps."""

    key: str  # "user/server-name": one server slot of the hub
    user: str
    profile: str
    backend: str
    # The node's id once launched (read at counting time: the child learns it after the hold).
    node_id: Callable[[], str | None] = field(default=lambda: None, compare=False, repr=False)


def refusal(
    request: Holding,
    holdings: Iterable[Holding],
    listed: Mapping[str, NodeObservation] | None,
    limits: Limits,
    backend_label: str | None = None,
) -> tuple[str, str] | None:
    """Why ``request`` may not start — (scope, a sentence for the researcher) — or None if it fits.

    ``holdings`` are the hub's servers (the request's own key is ignored: a restart of the
    same server slot replaces it); ``listed`` is the backend's listing of ``request.backend``
    (None: not consulted). Nodes in the listing that no holding names are counted as servers
    started outside this hub.
    """
    ours = [h for h in holdings if h.key != request.key]
    foreign = outside_nodes(request.backend, ours, listed or {})
    label = backend_label or request.backend
    # The researcher's own cap first: no other backend of a burst chain changes it.
    if limits.per_user:
        mine = sorted(h.key.partition("/")[2] or "(default)" for h in ours if h.user == request.user)
        count = len(mine) + sum(1 for n in foreign.values() if n.owner == request.user)
        if count >= limits.per_user:
            names = f" ({', '.join(mine)})" if mine else ""
            return "user", (
                f"You already have {count} running servers{names} and the cap per user is "
                f"{limits.per_user}. Stop one first."
            )
    if limits.per_profile:
        count = sum(1 for h in ours if h.profile == request.profile)
        if count >= limits.per_profile:
            return "profile", (
                f"Profile {request.profile!r} is full: {count} servers use it and the cap is "
                f"{limits.per_profile}. Try again later or choose another profile."
            )
    if limits.per_backend:
        count = sum(1 for h in ours if h.backend == request.backend) + len(foreign)
        if count >= limits.per_backend:
            outside = f", {len(foreign)} of them started outside JupyterHub" if foreign else ""
            return "backend", (
                f"{label} is full: {count} servers are running there and the cap is {limits.per_backend}"
                f"{outside}. Try again later or choose another profile."
            )
    if limits.per_step:
        count = sum(1 for h in ours if h.profile == request.profile and h.backend == request.backend)
        if count >= limits.per_step:
            return "step", (
                f"Profile {request.profile!r} is full on {label}: {count} servers and the cap is "
                f"{limits.per_step}. Try again later or choose another profile."
            )
    return None


def outside_nodes(
    backend: str, ours: Iterable[Holding], listed: Mapping[str, NodeObservation]
) -> dict[str, NodeObservation]:
    """Live nodes of the listing that none of the hub's servers on ``backend`` accounts for.

    A server being started may not know its node's id yet while the listing already shows the
    node; one unnamed node per such server and owner is attributed to it, so a launch in
    flight is not counted twice.
    """
    ours = [h for h in ours if h.backend == backend]
    known = {h.node_id() for h in ours} - {None}
    unnamed: dict[str, int] = {}
    for h in ours:
        if h.node_id() is None:
            unnamed[h.user] = unnamed.get(h.user, 0) + 1
    found: dict[str, NodeObservation] = {}
    for node_id, seen in sorted(listed.items()):
        if node_id in known or seen.state is NodeState.GONE:
            continue
        if unnamed.get(seen.owner):
            unnamed[seen.owner] -= 1
            continue
        found[node_id] = seen
    return found


# Called with the time (monotonic) the listing must be younger than; returns it, or None.
Listing = Callable[[float], Awaitable["Mapping[str, NodeObservation] | None"]]


class CapGate:
    """The hub's holdings and the lock that makes "check the caps, then hold" atomic."""

    def __init__(self) -> None:
        self._holdings: dict[str, Holding] = {}
        self._lock: asyncio.Lock | None = None
        # A listing older than the last release may still show the released server's node
        # running, without a holding naming it: it would count as started outside the hub.
        self._released_at = 0.0

    @property
    def holdings(self) -> list[Holding]:
        return list(self._holdings.values())

    async def admit(self, request: Holding, limits: Limits, listing: Listing, backend_label: str | None = None) -> None:
        """Hold a slot for ``request`` or raise :class:`CapReached` / :class:`CapUnknown`.

        The lock covers the listing too: a request waiting for it sees every hold taken before.
        """
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            listed = await listing(self._released_at) if limits.per_backend or limits.per_user else None
            why = refusal(request, self._holdings.values(), listed, limits, backend_label)
            if why:
                raise CapReached(why[1], why[0])
            self._holdings[request.key] = request

    def hold(self, holding: Holding) -> None:
        """Register a server without checking (one restored from the hub's database)."""
        self._holdings[holding.key] = holding

    def release(self, key: str) -> None:
        if self._holdings.pop(key, None) is not None:
            self._released_at = time.monotonic()


#: The one gate of this hub process (the hub runs one event loop).
GATE = CapGate()


async def backend_listing(cache, max_age: float, fresh_after: float = 0.0) -> Mapping[str, NodeObservation]:
    """Every node the backend lists for this hub, at most ``max_age`` seconds old and started
    after ``fresh_after`` (a ``time.monotonic()``; the gate's last release).

    Uses the backend's shared status cache, so concurrent spawns share its one batched call.
    Raises :class:`CapUnknown` when the listing fails: a cap that cannot be counted is not
    enforced by guessing.
    """
    await cache.refresh_if_stale(min(max_age, max(0.0, time.monotonic() - fresh_after)))
    listed = cache.listed()
    if listed is None:
        raise CapUnknown(
            f"Cannot count the running servers right now (the backend's status listing failed: "
            f"{cache.last_error or 'no answer'}). Try again in a minute."
        )
    return listed
