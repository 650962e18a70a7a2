"""The soak's figures from the hub's own log and metrics (pure parsing)."""

from benchmarks.soak import UNCLEAR, loop_interval_bound, worst_loop_stall


def test_the_worst_stall_is_read_from_jupyterhubs_warning():
    log = ("[W 2026-12-03 10:00:01 JupyterHub metrics:496] Event loop was unresponsive for at least 1.20s!\n"
           "[W 2026-12-03 10:00:09 JupyterHub metrics:496] Event loop was unresponsive for at least 3.75s!\n")
    assert worst_loop_stall(log) == 3.75
    assert worst_loop_stall("[I] nothing slow\n") == 0.0


def test_the_interval_bound_is_the_smallest_bucket_holding_every_sample():
    metrics = "\n".join([
        'jupyterhub_event_loop_interval_seconds_bucket{le="0.05"} 900.0',
        'jupyterhub_event_loop_interval_seconds_bucket{le="0.1"} 990.0',
        'jupyterhub_event_loop_interval_seconds_bucket{le="0.5"} 1000.0',
        'jupyterhub_event_loop_interval_seconds_bucket{le="+Inf"} 1000.0',
    ])
    assert loop_interval_bound(metrics) == 0.5
    assert loop_interval_bound("no histogram here") is None


def test_messages_that_say_nothing_are_not_clear():
    assert UNCLEAR.search("Unexpected error while starting the server (KeyError); see the hub log.")
    assert UNCLEAR.search("")
    assert not UNCLEAR.search("Could not start the server: EC2 has no capacity for t3.micro right now.")
