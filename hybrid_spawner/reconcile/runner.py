"""The in-hub reconciler: lists each backend under this hub's tag, plans, acts, keeps a report.

    from hybrid_spawner.reconcile import runner
    c.Reconciler.mode = "terminate"      # set the options first: enable() checks them at once
    runner.enable(c)

It runs inside the hub (a task on the hub's loop, started once the hub has started and checked
its servers) because marking a record stopped needs the hub's own ``User.stop``; every backend
call goes through the backends' clients in worker threads, never on the event loop. Each
backend is listed with its status cache's own batched call (one paginated ``DescribeInstances``
filtered on the hub tag; one Nova listing by the hub tag with the metadata checked again).
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from dataclasses import replace

from traitlets import Enum, Float, Integer, List, TraitError, Unicode, validate
from traitlets.config import LoggingConfigurable

from hybrid_spawner import metrics
from hybrid_spawner.backends import BACKENDS, spawner_class
from hybrid_spawner.reconcile import plan as rplan
from hybrid_spawner.reconcile.records import hub_records
from hybrid_spawner.status import NodeState

#: Backends that can list *every* node of this hub in one call: EC2 and OpenStack by tag or
#: metadata, Slurm by the marker in each job's comment (backends/slurm/ownership.py).
LISTABLE = ("ec2", "openstack", "slurm")
#: Reconciled unless c.Reconciler.backends says otherwise (Slurm only where a cluster is configured).
DEFAULT_BACKENDS = ("ec2", "openstack")


class Reconciler(LoggingConfigurable):
    mode = Enum(
        list(rplan.MODES),
        default_value="report",
        config=True,
        help="""What to do with a node that runs under this hub's tag but that no server record
        claims (an orphan, typically left by a hub that died between the launch call and saving
        its state). 'report' (default) logs it and lists it at /hub/api/hybrid/reconcile, so an
        admin sees it before anything is destroyed on a first deployment; 'terminate' ends it
        once it has stayed unclaimed for grace_period seconds. Nodes without this hub's tag are
        never listed, so never touched.""",
    )
    grace_period = Float(
        900.0,
        config=True,
        help="""Seconds a node must stay unclaimed, in every pass, before it is terminated (or
        reported as due). Keep it longer than your slowest spawn: a node whose spawn is still
        saving its state is unclaimed for that long. No node is touched while a spawn is pending
        on its backend.""",
    )
    interval = Float(
        300.0,
        config=True,
        help="""Seconds between reconcile passes (the first runs as soon as the hub has started).
        Each pass costs one batched listing per backend.""",
    )
    backends = List(
        Unicode(),
        default_value=list(DEFAULT_BACKENDS),
        config=True,
        help=f"""Backends to reconcile; each must be one of {', '.join(LISTABLE)} (add "slurm"
        where the hub submits to a cluster: one squeue over the whole queue per pass, jobs found
        by the hub's marker in their comment). Settings (region, endpoint, hub_id, cloud,
        squeue_command) come from the backend's own section (c.EC2Spawner, c.OpenStackSpawner,
        c.SlurmSpawner).""",
    )
    history = Integer(20, config=True, help="How many past passes the admin report keeps.")

    @validate("backends")
    def _check_backends(self, proposal):
        bad = [b for b in proposal.value if b not in LISTABLE]
        if bad:
            known = ", ".join(b for b in BACKENDS if b in LISTABLE)
            raise TraitError(f"Reconciler.backends: cannot reconcile {', '.join(bad)}; choose from {known}")
        return proposal.value

    @validate("grace_period", "interval")
    def _check_positive(self, proposal):
        if proposal.value < 0 or (proposal.trait.name == "interval" and proposal.value == 0):
            raise TraitError(f"Reconciler.{proposal.trait.name} must be a positive number of seconds")
        return proposal.value

    def __init__(self, app=None, **kwargs):
        super().__init__(**kwargs)
        self.app = app
        self.first_seen: dict[tuple[str, str], float] = {}
        self.reports: deque = deque(maxlen=self.history)
        self._lock = asyncio.Lock()
        self._spawners: dict[str, object] = {}

    # ------------------------------------------------------------------ backends
    def _backend(self, name: str):
        """A spawner of backend ``name`` built from the hub's config: it owns the client settings."""
        if name not in self._spawners:
            self._spawners[name] = spawner_class(name)(config=self.app.config, log=self.log)
        return self._spawners[name]

    async def _list(self, name: str) -> tuple[list[rplan.Listed] | None, str, float]:
        started = time.monotonic()
        try:
            found = await asyncio.to_thread(self._backend(name).list_owned_nodes)
        except Exception as e:  # a failed listing says nothing about the nodes
            return None, f"{type(e).__name__}: {e}"[:300], time.monotonic() - started
        listed = [rplan.Listed(node_id, obs.detail, obs.state is NodeState.GONE) for node_id, obs in found.items()]
        return listed, "", time.monotonic() - started

    # ------------------------------------------------------------------ one pass
    async def run_once(self) -> dict:
        async with self._lock:
            return await self._run_once()

    async def _run_once(self) -> dict:
        started = time.time()
        before = hub_records(self.app)
        results = await asyncio.gather(*(self._list(b) for b in self.backends))
        listings = {b: r[0] for b, r in zip(self.backends, results)}
        records = settled_records(before, hub_records(self.app))
        findings, self.first_seen = rplan.plan(records, listings, self.first_seen, time.monotonic(),
                                               self.mode, self.grace_period, await self._held_nodes())
        findings += rplan.expired_parked(records, time.time())
        done = []
        for f in findings:
            done.append({**f.as_dict(), "result": await self._act(f)})
        archived = await self._archive_homes()
        report = {
            "started": started,
            "seconds": round(time.time() - started, 3),
            "mode": self.mode,
            "grace_period": self.grace_period,
            "backends": {b: {"listed": None if r[0] is None else len(r[0]), "error": r[1],
                             "list_seconds": round(r[2], 3)} for b, r in zip(self.backends, results)},
            "records": len(records),
            "findings": done,
            "archived_homes": archived,
        }
        self.reports.append(report)
        self.log.info("reconcile: %d finding(s) in %.2fs (%s)", len(done), report["seconds"],
                      ", ".join(f"{b}: {v['listed']} listed" + (f", listing failed: {v['error']}" if v["error"] else "")
                                for b, v in report["backends"].items()))
        return report

    async def _held_nodes(self) -> set[tuple[str, str]]:
        """Nodes of incidents: quarantined evidence, which no pass may end (also after a release
        that kept the node: ending it is the admin's call, through release or purge)."""
        from hybrid_spawner.incidents.store import IncidentStore

        try:
            incidents = await asyncio.to_thread(IncidentStore(config=self.app.config, log=self.log).all)
        except Exception as e:  # unreadable: hold nothing back, but say so (stopped orphans wait for it)
            self.log.error("reconcile: cannot read the incident store: %s", e)
            return set()
        return {(i.get("backend", ""), i.get("node_id", "")) for i in incidents}

    async def _archive_homes(self) -> dict[str, list]:
        """Backends that archive unused homes (EC2: home_volume_archive_after) do it now."""
        archived = {}
        for b in self.backends:
            archive = getattr(self._backend(b), "archive_unused_homes", None)
            if archive is None:
                continue
            try:
                archived[b] = await archive()
            except Exception as e:  # the next pass tries again; nothing was deleted before its snapshot
                self.log.error("reconcile: archiving unused %s homes failed: %s", b, e)
                archived[b] = []
            if archived[b]:
                metrics.record_reconciled(b, "archived", len(archived[b]))
        return archived

    async def _act(self, f: rplan.Finding) -> str:
        if f.kind == "expired":
            return await self._end_parked(f)
        if f.kind == "orphan":
            if f.action == rplan.TERMINATE:
                try:
                    await self._backend(f.backend).terminate_orphan(f.node_id)
                except Exception as e:
                    self.log.error("reconcile: could not terminate orphan %s node %s: %s", f.backend, f.node_id, e)
                    return f"terminate failed: {e}"[:300]
                self.first_seen.pop((f.backend, f.node_id), None)
                self.log.warning("reconcile: terminated orphan %s node %s (%s), unclaimed for %.0fs",
                                 f.backend, f.node_id, f.detail, f.unclaimed_for)
                metrics.record_reconciled(f.backend, "terminated")
                return "terminated"
            self.log.warning("reconcile: orphan %s node %s (%s), unclaimed for %.0fs: %s", f.backend, f.node_id,
                             f.detail, f.unclaimed_for, {rplan.REPORT: "reported only (mode report)",
                                                         rplan.WAIT_GRACE: "within the grace period",
                                                         rplan.WAIT_SPAWN: "a spawn is pending"}[f.action])
            if f.action == rplan.REPORT:
                metrics.record_reconciled(f.backend, "reported")
            return "reported"
        return await self._mark_stopped(f)

    async def _mark_stopped(self, f: rplan.Finding) -> str:
        try:
            user = self.app.users[f.user]  # by name: UserDict looks it up in the database
        except KeyError:
            return "user not found"
        spawner = user.spawners[f.server]
        if spawner.pending:
            return "skipped: a spawn or stop is pending"
        reason = f"The server's node was gone when the hub checked its records ({f.detail})."
        self.log.warning("reconcile: %s/%s: marking stopped: %s", f.user, f.server or "(default)", reason)
        # A fallback reason: User.stop polls first, and a spawner whose own poll sees the node
        # gone replaces it with its more specific message (which instance, in what state).
        if hasattr(spawner, "last_stop_message"):
            spawner.last_stop_message = reason
            child = getattr(spawner, "child", None)
            if child is not None and hasattr(child, "last_stop_message"):
                child.last_stop_message = reason
        try:
            await user.stop(f.server)
        except Exception as e:
            self.log.error("reconcile: stopping %s/%s failed: %s", f.user, f.server, e)
            return f"stop failed: {e}"[:300]
        metrics.record_reconciled(f.backend, "stopped")
        return "marked stopped"

    async def _end_parked(self, f: rplan.Finding) -> str:
        """A node stopped for its server's next start waited longer than stopped_max_age."""
        try:
            user = self.app.users[f.user]
        except KeyError:
            return "user not found"
        spawner = user.spawners[f.server]
        if spawner.pending or spawner.active:
            return "skipped: the server is starting, stopping or running"
        try:
            await spawner.end_parked_node(f.detail, "stopped longer than stopped_max_age")
        except Exception as e:
            self.log.error("reconcile: ending stopped %s node %s failed: %s", f.backend, f.node_id, e)
            return f"terminate failed: {e}"[:300]
        spawner.orm_spawner.state = spawner.get_state()
        self.app.db.commit()
        self.log.warning("reconcile: terminated %s node %s of %s/%s: stopped longer than its stopped_max_age",
                         f.backend, f.node_id, f.user, f.server or "(default)")
        metrics.record_reconciled(f.backend, "expired")
        return "terminated"

    # ------------------------------------------------------------------ loop
    async def run_forever(self) -> None:
        await self.app._start_future  # the hub has started and checked its own servers
        while True:
            try:
                await self.run_once()
            except Exception:
                self.log.exception("reconcile: pass failed")
            await asyncio.sleep(self.interval)


def settled_records(before: list[rplan.Record], after: list[rplan.Record]) -> list[rplan.Record]:
    """The records read after the listing, those that changed while it ran marked pending.

    A listing under throttling and retries can take longer than a spawn: a node launched after
    the listing's snapshot whose spawn saved its state before the listing returned is absent
    from the listing yet claimed by a fresh record. Read only after the listing, that record
    would be "gone" and its brand-new server stopped. Marked pending it is not judged this pass
    (the next one lists its node), and it still claims its node.
    """
    seen = {(r.user, r.server, r.backend, r.node_id) for r in before}
    return [r if r.pending or (r.user, r.server, r.backend, r.node_id) in seen else replace(r, pending=True)
            for r in after]


_current: dict[str, object] = {}


def current() -> Reconciler | None:
    return _current.get("reconciler")


def enable(config) -> Reconciler:
    """Check the options now (a bad value stops the hub at startup), register the admin
    endpoint, and start the loop on the hub's event loop once the hub runs.

    Call it from jupyterhub_config.py after setting ``c.Reconciler.*``.
    """
    from jupyterhub.app import JupyterHub

    from hybrid_spawner.reconcile.handlers import register_reconcile_handlers

    reconciler = Reconciler(config=config)  # raises TraitError with the option's name
    register_reconcile_handlers()
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        # The file is read outside a hub (a config check, a test): the options are checked, no loop runs.
        return reconciler
    if "task" not in _current:
        app = JupyterHub.instance()
        reconciler.app = app
        reconciler.log = app.log
        _current["reconciler"] = reconciler
        _current["task"] = loop.create_task(reconciler.run_forever())
    return reconciler
