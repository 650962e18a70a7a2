"""Caps (pure counting, the gate's lock) and the burst chain's profile schema and messages."""

from __future__ import annotations

import asyncio

import pytest

from hybrid_spawner import caps
from hybrid_spawner.caps import CapGate, CapReached, CapUnknown, Holding, Limits, outside_nodes, refusal
from hybrid_spawner.chain import exhausted_message, move_on_message, step_label
from hybrid_spawner.profiles import BurstStep, ProfileConfigError, parse_profiles
from hybrid_spawner.status import NodeObservation, NodeState

RUNNING = NodeState.RUNNING


def held(key, profile="cpu", backend="ec2", node=None):
    user = key.split("/")[0]
    return Holding(key, user, profile, backend, lambda: node)


def seen(owner="", state=RUNNING):
    return NodeObservation(state, state.value, owner=owner)


def test_no_limits_admit_everything():
    assert refusal(held("ada/"), [held(f"u{i}/") for i in range(50)], {}, Limits()) is None


def test_backend_cap_counts_hub_servers_and_nodes_started_outside():
    ours = [held("bob/", node="i-1")]
    listed = {"i-1": seen("bob"), "i-2": seen("someone"), "i-3": seen("x", NodeState.GONE)}
    assert refusal(held("ada/"), ours, listed, Limits(per_backend=3)) is None  # i-1 + i-2; i-3 is gone
    scope, message = refusal(held("ada/"), ours, listed, Limits(per_backend=2), "EC2")
    assert scope == "backend"
    assert message.startswith("EC2 is full: 2 servers are running there and the cap is 2, 1 of them started outside")


def test_backend_cap_counts_only_the_requested_backend():
    ours = [held("bob/", backend="slurm"), held("cy/", backend="slurm")]
    assert refusal(held("ada/", backend="ec2"), ours, {}, Limits(per_backend=1)) is None


def test_a_launch_in_flight_is_not_counted_twice():
    # bob's spawn holds a slot but its child has not learnt the node id the listing already shows
    ours = [held("bob/", node=None)]
    listed = {"i-9": seen("bob")}
    assert outside_nodes("ec2", ours, listed) == {}
    assert refusal(held("ada/"), ours, listed, Limits(per_backend=2)) is None
    # someone else's node is still foreign
    assert list(outside_nodes("ec2", ours, {**listed, "i-10": seen("eve")})) == ["i-10"]


def test_user_cap_counts_named_servers_and_own_outside_nodes_and_names_them():
    ours = [held("ada/", node="i-1"), held("ada/gpu", node="i-2"), held("bob/", node="i-3")]
    scope, message = refusal(held("ada/third"), ours, {}, Limits(per_user=2))
    assert scope == "user" and "(default), gpu" in message and "cap per user is 2" in message
    assert refusal(held("ada/third"), ours, {}, Limits(per_user=3)) is None
    assert refusal(held("ada/third"), ours, {"i-5": seen("ada")}, Limits(per_user=3))[0] == "user"


def test_the_same_slot_restarting_does_not_count_itself():
    assert refusal(held("ada/"), [held("ada/")], {}, Limits(per_user=1)) is None


def test_profile_and_step_caps():
    ours = [held("a/", "gpu", "slurm"), held("b/", "gpu", "ec2"), held("c/", "cpu", "ec2")]
    assert refusal(held("d/", "gpu", "ec2"), ours, {}, Limits(per_profile=2))[0] == "profile"
    assert refusal(held("d/", "gpu", "ec2"), ours, {}, Limits(per_profile=3)) is None
    assert refusal(held("d/", "gpu", "ec2"), ours, {}, Limits(per_step=1))[0] == "step"
    assert refusal(held("d/", "gpu", "openstack"), ours, {}, Limits(per_step=1)) is None


def test_user_cap_is_checked_before_the_backend_so_a_chain_stops():
    ours = [held("ada/x", node="i-1")]
    assert refusal(held("ada/"), ours, {"i-1": seen("ada")}, Limits(per_user=1, per_backend=1))[0] == "user"


def test_gate_lets_exactly_one_of_many_racing_requests_take_the_last_slot():
    async def scenario():
        gate = CapGate()
        gate.hold(held("old/", node="i-1"))
        calls = []

        async def listing(fresh_after):
            calls.append(1)
            await asyncio.sleep(0.01)  # the cloud call: every racer reaches the lock meanwhile
            return {"i-1": seen("old")}

        results = await asyncio.gather(
            *(gate.admit(held(f"u{i}/"), Limits(per_backend=2), listing) for i in range(20)),
            return_exceptions=True,
        )
        return gate, results, calls

    gate, results, calls = asyncio.run(scenario())
    admitted = [r for r in results if r is None]
    refused = [r for r in results if isinstance(r, CapReached)]
    assert len(admitted) == 1 and len(refused) == 19
    assert all(r.scope == "backend" and "cap is 2" in str(r) for r in refused)
    assert len(gate.holdings) == 2 and len(calls) == 20


def test_gate_release_frees_the_slot():
    async def scenario():
        gate = CapGate()
        await gate.admit(held("a/"), Limits(per_user=0, per_profile=1), _no_listing)
        with pytest.raises(CapReached):
            await gate.admit(held("b/"), Limits(per_profile=1), _no_listing)
        gate.release("a/")
        await gate.admit(held("b/"), Limits(per_profile=1), _no_listing)
        return gate

    assert [h.key for h in asyncio.run(scenario()).holdings] == ["b/"]


async def _no_listing(fresh_after):
    raise AssertionError("a profile cap needs no backend listing")


class FailingCache:
    last_error = "EndpointConnectionError"

    async def refresh_if_stale(self, max_age):
        return None

    def listed(self):
        return None


class CountingCache:
    last_error = None

    def __init__(self):
        self.max_ages = []

    async def refresh_if_stale(self, max_age):
        self.max_ages.append(max_age)

    def listed(self):
        return {}


def test_a_release_makes_the_next_listing_fresh():
    import time

    cache = CountingCache()
    asyncio.run(caps.backend_listing(cache, 5.0, fresh_after=0.0))
    asyncio.run(caps.backend_listing(cache, 5.0, fresh_after=time.monotonic()))
    assert cache.max_ages[0] == 5.0 and cache.max_ages[1] < 0.5


def test_a_failing_listing_refuses_with_a_clear_message_rather_than_guessing():
    with pytest.raises(CapUnknown, match="status listing failed: EndpointConnectionError"):
        asyncio.run(caps.backend_listing(FailingCache(), 2.0))


# -- profiles: caps and burst chains ---------------------------------------------------------
def profile(**extra):
    return {"slug": "p", "display_name": "P", "backend": "slurm", **extra}


def test_burst_chain_and_caps_parse():
    (p,) = parse_profiles(
        [
            profile(
                max_servers=4,
                queue_timeout=30,
                burst=["openstack", {"backend": "ec2", "overrides": {"instance_types": ["t3.micro"]}, "max_servers": 2}],
            )
        ]
    )
    assert p.max_servers == 4
    chain = p.chain({"req_partition": "debug"})
    assert [s.backend for s in chain] == ["slurm", "openstack", "ec2"]
    assert chain[0] == BurstStep("slurm", {"req_partition": "debug"}, None, 30.0)
    assert chain[2].max_servers == 2 and chain[2].overrides == {"instance_types": ["t3.micro"]}


@pytest.mark.parametrize(
    "extra, message",
    [
        ({"burst": ["slurm", "azure"]}, "burst step #2: unknown backend 'azure'; this hub has"),
        ({"burst": "ec2"}, "burst must be a list"),
        ({"burst": [{"backend": "ec2", "flavor": "x"}]}, "burst step #1: unknown keys ['flavor']"),
        ({"burst": [{"backend": "ec2", "max_servers": -1}]}, "max_servers must be a whole number"),
        ({"max_servers": 2.5}, "max_servers must be a whole number"),
        ({"queue_timeout": 0}, "queue_timeout must be a positive number"),
    ],
)
def test_bad_caps_and_chains_are_refused_with_the_reason(extra, message):
    with pytest.raises(ProfileConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        parse_profiles([profile(**extra)])


def test_burst_step_overrides_are_checked_against_that_backends_settings():
    settable = {"slurm": {"req_partition"}, "ec2": {"instance_types"}}
    parse_profiles([profile(burst=[{"backend": "ec2", "overrides": {"instance_types": []}}])], settable=settable.get)
    with pytest.raises(ProfileConfigError, match="burst step #1 overrides: 'instance_typos' is not a configurable setting of the ec2"):
        parse_profiles([profile(burst=[{"backend": "ec2", "overrides": {"instance_typos": []}}])], settable=settable.get)


def test_chain_messages():
    assert step_label(BurstStep("slurm")) == "Slurm" and step_label(BurstStep("ec2", display_name="AWS")) == "AWS"
    assert move_on_message("Slurm", "queue full after 30 s", "OpenStack") == "Slurm: queue full after 30 s, trying OpenStack"
    assert exhausted_message([("Slurm", "queue full after 30 s"), ("EC2", "no capacity")]) == (
        "No backend of this profile has room right now (Slurm: queue full after 30 s; EC2: no capacity). Try again later."
    )
