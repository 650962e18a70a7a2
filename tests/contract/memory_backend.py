"""A backend whose nodes are dictionary entries: the smallest thing that honours the backend
contract of :class:`hybrid_spawner.remote.RemoteSpawner`. The lifecycle unit tests drive it, and
the contract test checks it beside the registered backends (a reference for a new backend)."""

from __future__ import annotations

import asyncio
import types

from hybrid_spawner.remote import RemoteSpawner
from hybrid_spawner.status import NodeObservation, NodeState, StatusCache


class MemoryCache(StatusCache):
    def __init__(self):
        super().__init__(interval=0.05)
        self.nodes: dict[str, str] = {}

    def fetch_all(self, node_ids):
        states = {"running": NodeState.RUNNING, "terminated": NodeState.GONE}
        return {n: NodeObservation(states[s], s) for n, s in self.nodes.items()}


class MemorySpawner(RemoteSpawner):
    """A backend whose nodes are dictionary entries; the test plays the node's part."""

    backend = "memory"

    def __init__(self, **kw):
        kw.setdefault("user", types.SimpleNamespace(name="u", url="/user/u/"))
        super().__init__(**kw)
        self.cache = MemoryCache()
        self.launch_delay = 0.0
        self.launch_error: Exception | None = None
        self.scripts: list[str] = []

    @property
    def _log_name(self):
        return "u"

    def get_env(self):
        return {"JUPYTERHUB_API_URL": "http://hub:8081/hub/api", "JUPYTERHUB_API_TOKEN": "tok"}

    def status_cache(self):
        return self.cache

    async def launch_node(self, script):
        await asyncio.sleep(self.launch_delay)
        if self.launch_error:
            raise self.launch_error
        node = f"n-{len(self.cache.nodes)}"
        self.cache.nodes[node] = "running"
        self.scripts.append(script)
        return node

    async def wait_for_address(self, node_id):
        return "10.0.0.9"

    async def terminate_node(self, node_id):
        self.cache.nodes[node_id] = "terminated"

    def describe_error(self, error):
        return "the cloud said no" if isinstance(error, PermissionError) else None
