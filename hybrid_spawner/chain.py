"""The burst chain: try a profile's backends in order, moving on when one is full.

A profile's own backend comes first, then its ``burst`` steps (see :mod:`hybrid_spawner.profiles`).
A step is *full* when

* a cap says so (:mod:`hybrid_spawner.caps`: the backend's cap or the step's own),
* the backend says so (:class:`hybrid_spawner.remote.BackendFull`: EC2 has no capacity for any
  instance type, Nova found no valid host, the OpenStack quota is exhausted), or
* the node is still queued after the step's ``queue_timeout`` (a Slurm job pending): the start
  is cancelled, which cancels the job (``scancel``) before the chain moves on.

The spawn page says why each step was left ("Slurm queue full after 30 s, trying OpenStack").
Any other failure ends the spawn with its own message: a broken image is no reason to spend
money on the next cloud. A backend that failed has terminated what it launched (the
:class:`~hybrid_spawner.remote.RemoteSpawner` contract), so nothing is left behind.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

from hybrid_spawner.caps import CapReached, CapUnknown
from hybrid_spawner.remote import BackendFull
from hybrid_spawner.status import NodeState

BACKEND_LABELS = {"slurm": "Slurm", "openstack": "OpenStack", "ec2": "EC2"}
# Caps that another backend does not change: the chain stops at once.
FINAL_SCOPES = frozenset({"user", "profile"})


class StepFull(Exception):
    """This step of the chain has no room; ``reason`` is a short phrase for the spawn page."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class ChainExhausted(Exception):
    """Every step was full; the message lists why, step by step."""


def step_label(step) -> str:
    return step.display_name or BACKEND_LABELS.get(step.backend, step.backend)


def move_on_message(label: str, reason: str, next_label: str | None) -> str:
    """``"Slurm queue full after 30 s, trying OpenStack"`` (pure)."""
    return f"{label}: {reason}, trying {next_label}" if next_label else f"{label}: {reason}"


def exhausted_message(reasons: list[tuple[str, str]]) -> str:
    """One sentence naming every backend tried and why it was full (pure)."""
    parts = "; ".join(f"{label}: {reason}" for label, reason in reasons)
    return f"No backend of this profile has room right now ({parts}). Try again later."


class Attempts:
    """What the spawn page streams: notes of the chain and the progress of each backend tried."""

    def __init__(self) -> None:
        self._items: list[tuple[str, Any]] = []
        self._finished = False
        self._changed = asyncio.Event()

    def note(self, progress: int, message: str) -> None:
        self._items.append(("note", {"progress": progress, "message": message}))
        self._changed.set()

    def child(self, child, start: asyncio.Future) -> None:
        """Stream ``child``'s progress; ``start`` is the future of its ``start()``."""
        self._items.append(("child", (child, start)))
        self._changed.set()

    def finish(self) -> None:
        self._finished = True
        self._changed.set()

    async def stream(self) -> AsyncIterator[dict]:
        index = 0
        while True:
            while index < len(self._items):
                kind, item = self._items[index]
                index += 1
                if kind == "note":
                    yield item
                else:
                    child, start = item
                    # A RemoteSpawner's stream ends at once if read before its start() has
                    # created the start task (start() may await checks first): wait for it.
                    while getattr(child, "_start_task", True) is None and not start.done():
                        await asyncio.sleep(0.05)
                    async for event in child.progress():
                        yield event
            if self._finished:
                return
            self._changed.clear()
            await self._changed.wait()


async def run_step(child, step, attempts: Attempts, poll: float = 1.0):
    """Start ``child`` (one step's backend spawner); raise :class:`StepFull` if it is full.

    With a ``queue_timeout`` the node's state is watched in the backend's status cache: still
    not running after that many seconds from its submission means "queue full", and the start
    is cancelled (its cleanup terminates the node: ``scancel`` for Slurm).
    """
    task = asyncio.ensure_future(child.start())
    attempts.child(child, task)
    watcher = asyncio.ensure_future(_queue_timeout(child, step.queue_timeout, poll)) if step.queue_timeout else None
    try:
        waiting = {task} if watcher is None else {task, watcher}
        done, _ = await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
        if task in done:
            return task.result()  # BackendFull and other failures propagate as they are
        waited = watcher.result()
        await child.stop()  # cancels the start; its cleanup cancels the queued job
        try:
            await task
        except BaseException:
            pass
        raise StepFull(f"queue full after {waited:.0f} s")
    except asyncio.CancelledError:
        task.cancel()
        try:
            await task
        except BaseException:
            pass
        raise
    finally:
        if watcher is not None:
            watcher.cancel()


async def _queue_timeout(child, timeout: float, poll: float) -> float:
    """Return the seconds waited once the node has been queued ``timeout`` seconds without
    running; never returns while it is not yet submitted or once it runs."""
    submitted = None
    while True:
        node_id = getattr(child, "node_id", None)
        if node_id:
            if submitted is None:
                submitted = time.monotonic()
            if child.status_cache().observe(node_id).state is NodeState.RUNNING:
                return await asyncio.Future()  # running: the queue is no longer the question
            waited = time.monotonic() - submitted
            if waited >= timeout:
                return waited
        await asyncio.sleep(poll)


def _short(error: BaseException) -> str:
    text = getattr(error, "reason", None) if isinstance(error, StepFull) else None
    text = text or str(getattr(error, "jupyterhub_message", "") or error)
    return text.removeprefix("Could not start the server: ").rstrip(".")


async def start_along_chain(
    steps,
    build: Callable[[Any], Any],
    admit: Callable[[Any, Any], Any],
    release: Callable[[], None],
    attempts: Attempts,
):
    """Try ``steps`` in order; return (step, child, start() result) of the first with room.

    ``build(step)`` makes the step's backend spawner, ``admit(step, child)`` holds a cap slot
    (raising CapReached/CapUnknown), ``release()`` gives it back after a failed step.
    """
    reasons: list[tuple[str, str]] = []
    for i, step in enumerate(steps):
        label = step_label(step)
        next_label = step_label(steps[i + 1]) if i + 1 < len(steps) else None
        child = build(step)
        try:
            await admit(step, child)
        except CapReached as e:
            if e.scope in FINAL_SCOPES or len(steps) == 1:
                raise
            reason = _cap_phrase(e)
        except CapUnknown as e:
            if len(steps) == 1:
                raise
            reason = "cannot count its running servers"
        else:
            try:
                return step, child, await run_step(child, step, attempts)
            except (StepFull, BackendFull) as e:
                release()
                if len(steps) == 1:
                    raise BackendFull(f"Could not start the server: {_short(e)}.") if isinstance(e, StepFull) else e
                reason = _short(e)
            except BaseException:
                release()
                raise
        reasons.append((label, reason))
        attempts.note(5, move_on_message(label, reason, next_label))
    raise ChainExhausted(exhausted_message(reasons))


def _cap_phrase(error: CapReached) -> str:
    """``"EC2 is full: 3 servers ... cap is 3."`` -> ``"cap reached (3 of 3 servers)"``-like text:
    the cap's own sentence without the advice, which the chain replaces by moving on."""
    return str(error).split(". Try again")[0]
