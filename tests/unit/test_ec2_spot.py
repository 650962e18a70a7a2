"""Spot requests (pure): the order of attempts with each fallback, the market options sent."""

from __future__ import annotations

from hybrid_spawner.backends.ec2 import plan


def order(**kw):
    return [(a.instance_type, a.subnet_id, a.market) for a in plan.launch_attempts(["big", "small"], ["s1", "s2"], **kw)]


def test_without_spot_nothing_changes():
    assert order() == [("big", "s1", "on-demand"), ("big", "s2", "on-demand"),
                       ("small", "s1", "on-demand"), ("small", "s2", "on-demand")]


def test_spot_falls_back_to_the_same_type_on_demand_first():
    assert order(spot=True) == [
        ("big", "s1", "spot"), ("big", "s2", "spot"), ("big", "s1", "on-demand"), ("big", "s2", "on-demand"),
        ("small", "s1", "spot"), ("small", "s2", "spot"), ("small", "s1", "on-demand"), ("small", "s2", "on-demand"),
    ]


def test_spot_next_type_tries_every_spot_type_before_on_demand():
    assert order(spot=True, spot_fallback="next-type") == [
        ("big", "s1", "spot"), ("big", "s2", "spot"), ("small", "s1", "spot"), ("small", "s2", "spot"),
        ("big", "s1", "on-demand"), ("big", "s2", "on-demand"), ("small", "s1", "on-demand"), ("small", "s2", "on-demand"),
    ]


def test_spot_only():
    assert {m for _, _, m in order(spot=True, spot_fallback="none")} == {"spot"}


def test_the_spot_request_asks_for_one_time_capacity_terminated_on_reclaim():
    spec = plan.LaunchSpec(image_id="ami-12345678", user_data="#!/bin/sh", tags=[], security_group_ids=[])
    spot = plan.run_instances_request(spec, plan.Attempt("t3.micro", None, "spot"), "tok")
    assert spot["InstanceMarketOptions"] == {
        "MarketType": "spot",
        "SpotOptions": {"SpotInstanceType": "one-time", "InstanceInterruptionBehavior": "terminate"},
    }
    assert "InstanceMarketOptions" not in plan.run_instances_request(spec, plan.Attempt("t3.micro", None), "tok")


def test_spot_capacity_errors_include_the_spot_only_ones():
    assert {"InsufficientInstanceCapacity", "SpotMaxPriceTooLow"} <= plan.SPOT_CAPACITY_ERRORS
    assert "SpotMaxPriceTooLow" not in plan.CAPACITY_ERRORS
