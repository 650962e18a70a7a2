"""Who spends what on a real hub (HybridSpawner, EC2 on moto server): the ledger records real
starts and stops, the REST endpoint and the admin page show them, a user reads only their own,
the spawn form shows the month to date, and a hub restart loses nothing."""

from __future__ import annotations

import json
import re
import time

import pytest
import requests

from hybrid_spawner.costs.arithmetic import Month
from hybrid_spawner.costs.ledger import UsageLedger
from tests.fixtures.hybrid_ec2 import hybrid_ec2_hub, live_instances

pytestmark = pytest.mark.integration

PRICE = 36.0  # $/h for t3.micro from the price table: a second costs a cent, visible in a test

CONFIG = """
c.JupyterHub.spawner_class = "hybrid"
c.HybridSpawner.profiles = [
    {{"slug": "cloud", "display_name": "Cloud VM", "backend": "ec2", "default": True, "cost_per_hour": 0.0104,
     "overrides": {{"instance_types": ["t3.micro"]}}}},
]
c.HybridSpawner.price_table = {prices!r}
c.HybridSpawner.poll_interval = 2
"""


@pytest.fixture(scope="module")
def world(moto_server, tmp_path_factory):
    directory = tmp_path_factory.mktemp("costs")
    prices = directory / "prices.json"
    prices.write_text(json.dumps({"currency": "USD", "instance_types": {"t3.micro": PRICE}}))
    with hybrid_ec2_hub(moto_server.url, directory, CONFIG.format(prices=str(prices))) as w:
        for user in ("spender", "other"):
            w.hub.ensure_user(user)
        yield w


def costs(hub, query: str = "", token: str | None = None):
    return hub.api("GET", f"/hybrid/costs{query}", token=token)


def user_token(hub, user: str) -> str:
    _, body = hub.api("POST", f"/users/{user}/tokens", {"note": "costs test"}, expect=201)
    return body["token"]


def login(hub, user: str) -> requests.Session:
    s = requests.Session()
    page = s.get(f"{hub.url}/hub/login", timeout=30)
    xsrf = re.search(r'name="_xsrf" value="([^"]+)"', page.text).group(1)
    r = s.post(f"{hub.url}/hub/login", data={"username": user, "password": hub.password, "_xsrf": xsrf},
               allow_redirects=False, timeout=30)
    assert r.status_code == 302, r.text[:300]
    return s


def spender_line(figures: dict) -> dict:
    (line,) = [r for r in figures["by_user"] if r["user"] == "spender"]
    return line


def test_starts_and_stops_are_costed_per_user_profile_and_backend(world):
    hub = world.hub
    hub.spawn("spender")
    hub.wait_ready("spender", timeout=120)
    time.sleep(2)
    hub.stop_server("spender")
    hub.spawn("spender")
    hub.wait_ready("spender", timeout=120)

    ledger = UsageLedger(hub.dir / "hybrid_usage.sqlite")  # beside jupyterhub.sqlite
    month = Month.of(time_now())
    first, second = ledger.sessions(month.start, month.end, "spender")
    assert first.stopped is not None and second.stopped is None
    assert first.price_per_hour == PRICE and (first.profile, first.backend) == ("cloud", "ec2")
    ran = (first.stopped - first.started).total_seconds()
    assert ran >= 2

    status, figures = costs(hub)  # the admin service's token
    assert status == 200 and figures["month"] == str(month)
    line = spender_line(figures)
    assert line["running"] == 1 and line["hours"] >= ran / 3600 - 0.0001  # hours are rounded to 4 places
    assert line["cost"] == pytest.approx(line["hours"] * PRICE, abs=0.0025)  # both rounded to 4 places
    assert [(r["profile"], r["backend"]) for r in figures["rows"]] == [("cloud", "ec2")]
    assert figures["by_backend"][0]["backend"] == "ec2" and figures["by_profile"][0]["profile"] == "cloud"


def test_a_user_reads_only_their_own_figures_and_bad_input_is_refused(world):
    hub = world.hub
    other, spender = user_token(hub, "other"), user_token(hub, "spender")
    status, body = costs(hub, "?user=spender", token=other)
    assert status == 403 and "only your own" in body["message"]
    status, mine = costs(hub, token=other)
    assert status == 200 and mine["user"] == "other" and mine["by_user"] == [] and mine["total"]["cost"] == 0
    status, mine = costs(hub, "?user=spender", token=spender)
    assert status == 200 and [r["user"] for r in mine["by_user"]] == ["spender"]
    for bad in ("2026-13", "12-2026", "now"):
        status, body = costs(hub, f"?month={bad}")
        assert status == 400 and "month must be YYYY-MM" in body["message"], body
    status, last_year = costs(hub, "?month=2001-01")
    assert status == 200 and last_year["total"] == {"hours": 0.0, "cost": 0.0, "running": 0}


def test_admin_page_and_the_spawn_form(world):
    hub = world.hub
    page = login(hub, "admin").get(f"{hub.url}/hub/hybrid/costs", timeout=30)
    assert page.status_code == 200 and "Who spends what" in page.text
    assert re.search(r"<td>spender</td><td class=\"text-end\">[0-9.]+</td><td class=\"text-end\">\$[0-9.]+</td>", page.text)
    assert login(hub, "other").get(f"{hub.url}/hub/hybrid/costs", timeout=30).status_code == 403

    form = login(hub, "spender").get(f"{hub.url}/hub/spawn/spender/another", timeout=30)
    assert form.status_code == 200
    found = re.search(r"Your servers this month \((\d{4}-\d{2})\): ([0-9.]+) h,\s+estimated \$([0-9.]+), 1 running now", form.text)
    assert found and found.group(1) == str(Month.of(time_now())) and float(found.group(3)) > 0, form.text[:2000]


def test_a_hub_restart_keeps_the_figures_and_the_running_server_is_closed_at_its_stop(world):
    hub = world.hub
    _, before = costs(hub)
    hub.restart()
    _, after = costs(hub)
    assert spender_line(after)["running"] == 1
    assert spender_line(after)["hours"] >= spender_line(before)["hours"]
    hub.stop_server("spender")
    _, stopped = costs(hub)
    assert spender_line(stopped)["running"] == 0


def test_a_server_ended_outside_the_hub_is_closed_when_the_hub_notices(world):
    hub = world.hub
    hub.spawn("other")
    hub.wait_ready("other", timeout=120)
    (instance,) = [i["InstanceId"] for i in live_instances(world.ec2, world.hub_id)
                   if {t["Key"]: t["Value"] for t in i["Tags"]}.get("jupyterhub/owner") == "other"]
    world.ec2.terminate_instances(InstanceIds=[instance])  # from the console, not the hub
    hub.wait_stopped("other", timeout=60)
    _, figures = costs(hub, "?user=other")
    (line,) = figures["by_user"]
    assert line["running"] == 0 and line["hours"] > 0


def time_now():
    from datetime import datetime, timezone

    return datetime.now(timezone.utc)
