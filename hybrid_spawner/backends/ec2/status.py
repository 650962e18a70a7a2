"""The EC2 status cache: every instance of this hub with one paginated ``DescribeInstances``."""

from __future__ import annotations

from hybrid_spawner.backends.ec2.plan import TAG_HUB, TAG_OWNER
from hybrid_spawner.status import NodeObservation, NodeState, StatusCache


class EC2StatusCache(StatusCache):
    """All of one hub's instances with one paginated ``DescribeInstances`` per interval.

    The filter on the hub tag keeps the listing to this hub's instances; 1000 per page means
    one API call per refresh up to 1000 servers.
    """

    backend = "ec2"

    PAGE_SIZE = 1000
    _GONE_STATES = {"shutting-down", "terminated", "stopping", "stopped"}

    def __init__(self, client_factory, hub_id: str, interval: float):
        super().__init__(interval)
        self._client_factory = client_factory
        self.hub_id = hub_id
        self.api_calls = 0

    def fetch_all(self, node_ids: frozenset[str]) -> dict[str, NodeObservation]:
        client = self._client_factory()
        found: dict[str, NodeObservation] = {}
        kwargs = {"Filters": [{"Name": f"tag:{TAG_HUB}", "Values": [self.hub_id]}], "MaxResults": self.PAGE_SIZE}
        calls = 0
        while True:
            calls += 1
            self.api_calls += 1
            self.last_refresh_calls = calls
            reply = client.describe_instances(**kwargs)
            for reservation in reply.get("Reservations", []):
                for inst in reservation.get("Instances", []):
                    found[inst["InstanceId"]] = self._observation(inst)
            token = reply.get("NextToken")
            if not token:
                return found
            kwargs["NextToken"] = token

    def _observation(self, inst: dict) -> NodeObservation:
        name = inst["State"]["Name"]
        owner = next((t["Value"] for t in inst.get("Tags", []) if t.get("Key") == TAG_OWNER), "")
        if name in self._GONE_STATES:
            reason = inst.get("StateReason", {}).get("Message") or inst.get("StateTransitionReason") or ""
            return NodeObservation(NodeState.GONE, f"{name}: {reason}" if reason else name, owner=owner)
        state = NodeState.RUNNING if name == "running" else NodeState.PENDING
        return NodeObservation(state, name, inst.get("PrivateIpAddress"), owner=owner)
