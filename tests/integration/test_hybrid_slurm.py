"""HybridSpawner with Slurm and EC2 profiles on a real Slurm, moto server and a real hub: form and
REST spawns, an EC2 and a Slurm server side by side, restart, validation in start, pending jobs."""

from __future__ import annotations

import html
import json
import re
import secrets
import time
from types import SimpleNamespace
from urllib.parse import urljoin

import pytest
import requests

from hybrid_spawner.backends.ec2.plan import TAG_HUB, TAG_OWNER
from simulators.moto import MOTO_CREDENTIALS
from simulators.noderunner import NodeRunnerProcess
from tests.fixtures.ec2 import REGION, aws, ec2_hub_config, make_network
from simulators.processes import wait_until
from tests.fixtures.slurm import user_jobs

pytestmark = pytest.mark.integration

PROFILES = """
c.JupyterHub.spawner_class = "hybrid"
c.HybridSpawner.profiles = [
    {
        "slug": "slurm-cpu",
        "display_name": "Slurm CPU job",
        "description": "Cores on the debug partition",
        "backend": "slurm",
        "default": True,
        "cost_per_hour": 0,
        "overrides": {"req_partition": "debug", "req_runtime": "01:00:00"},
        "options": {
            "cpus": {"display_name": "CPUs", "trait": "req_nprocs", "min": 1, "max": 4, "default": 1},
            "memory": {"display_name": "Memory", "trait": "req_memory", "choices": ["512M", "1G"], "default": "512M"},
        },
    },
    {
        "slug": "ec2-small",
        "display_name": "Cloud VM",
        "backend": "ec2",
        "cost_per_hour": 0.0104,
        "overrides": {"instance_types": ["t3.micro"]},
    },
    {
        "slug": "slurm-link",
        "display_name": "Slurm job started by a link",
        "backend": "slurm",
        "overrides": {"req_partition": "debug", "req_runtime": "01:00:00"},
        "options": {"cpus": {"display_name": "CPUs", "trait": "req_nprocs", "min": 1, "max": 4, "default": 1}},
    },
    {
        "slug": "ec2-choice",
        "display_name": "Cloud VM of the researcher's size",
        "backend": "ec2",
        "overrides": {"instance_types": ["t3.micro", "t3.nano"]},
        "options": {"instance_type": {"trait": "instance_type", "choices": ["t3.micro", "t3.small"]}},
    },
    {
        "slug": "slurm-maint",
        "display_name": "Maintenance partition (always queued)",
        "backend": "slurm",
        "overrides": {"req_partition": "maint"},
    },
    {
        "slug": "slurm-broken",
        "display_name": "A job whose Python does not exist",
        "backend": "slurm",
        "overrides": {"req_partition": "debug", "node_python": "/nonexistent/python3"},
    },
    {
        "slug": "slurm-gpu",
        "display_name": "GPU partition",
        "backend": "slurm",
        "allowed_groups": ["gpu-users"],
        "cost_per_hour": 1.5,
        "overrides": {"req_partition": "batch"},
    },
]
"""

OUTSIDER = "outsider"  # a hub user outside gpu-users (no Unix account: never gets that far)


@pytest.fixture(scope="module")
def ec2_side(moto_server, tmp_path_factory):
    """EC2 settings (moto server, private subnet) and the node runner that boots its instances."""
    directory = tmp_path_factory.mktemp("hybrid-ec2")
    hub_id = f"test-hub-{secrets.token_hex(4)}"
    config = ec2_hub_config(moto_server.url, hub_id, directory / "overrides.json", make_network(moto_server.url))
    runner = NodeRunnerProcess(directory / "nodes", hub_id=hub_id, endpoint_url=moto_server.url, region=REGION)
    runner.env.update(MOTO_CREDENTIALS)
    runner.start()
    ec2 = aws("ec2", moto_server.url)
    try:
        yield SimpleNamespace(config=config, ec2=ec2, hub_id=hub_id)
    finally:
        live = live_instances(ec2, hub_id)
        if live:
            ec2.terminate_instances(InstanceIds=live)
        runner.stop()


def live_instances(ec2, hub_id: str, owner: str | None = None) -> list[str]:
    filters = [
        {"Name": f"tag:{TAG_HUB}", "Values": [hub_id]},
        {"Name": "instance-state-name", "Values": ["pending", "running", "stopping", "stopped"]},
    ]
    if owner:
        filters.append({"Name": f"tag:{TAG_OWNER}", "Values": [owner]})
    reply = ec2.describe_instances(Filters=filters)
    return [i["InstanceId"] for r in reply["Reservations"] for i in r["Instances"]]


@pytest.fixture(scope="module")
def hub(make_slurm_hub, ec2_side, slurm_test_user):
    # The EC2 settings say spawner_class = "hybrid-ec2"; PROFILES, appended after them, wins.
    hub = make_slurm_hub(ec2_side.config + PROFILES, name="hybrid-hub", env=MOTO_CREDENTIALS)
    hub.ensure_user(slurm_test_user)
    hub.ensure_user(OUTSIDER)
    hub.api("POST", "/groups/gpu-users", {"users": [slurm_test_user]}, expect=201)
    return hub


def xsrf_of(html: str) -> str:
    return re.search(r'name="_xsrf" value="([^"]+)"', html).group(1)


def logged_in(hub, user: str) -> requests.Session:
    """A browser-like session logged in through the hub's login form."""
    browser = requests.Session()
    page = browser.get(f"{hub.url}/hub/login", timeout=30)
    r = browser.post(
        f"{hub.url}/hub/login",
        data={"username": user, "password": hub.password, "_xsrf": xsrf_of(page.text)},
        allow_redirects=False,
        timeout=30,
    )
    assert r.status_code == 302, r.text[:300]
    return browser


def submissions(hub) -> int:
    return hub.log_text().count("submitting Slurm job")


@pytest.fixture(scope="module")
def form_server(hub, slurm_cluster, slurm_test_user):
    """The test user's default server, spawned by posting the spawn form."""
    browser = logged_in(hub, slurm_test_user)
    form = browser.get(f"{hub.url}/hub/spawn/{slurm_test_user}", timeout=30)
    assert form.status_code == 200 and 'name="opt-slurm-cpu--cpus"' in form.text, form.text[:300]
    action = html.unescape(re.search(r'<form[^>]*id="spawn_form"[^>]*action="([^"]+)"', form.text, re.S).group(1))
    fields = {"profile": "slurm-cpu", "opt-slurm-cpu--cpus": "2", "opt-slurm-cpu--memory": "1G",
              "opt-slurm-maint--nothing": "ignored"}
    # multipart, as the browser sends the spawn form
    r = browser.post(
        urljoin(hub.url, action), files={k: (None, v) for k, v in fields.items()}, allow_redirects=False, timeout=60
    )
    assert r.status_code in (200, 302), r.text[:500]
    model = hub.wait_ready(slurm_test_user, timeout=120)
    (job,) = user_jobs(slurm_cluster, slurm_test_user, states=("RUNNING",))
    return model, job


def test_spawn_through_the_form_submits_the_chosen_resources(hub, form_server, slurm_test_user):
    model, job = form_server
    assert job["cpus"] == 2 and job["partition"] == "debug"
    assert model["user_options"] == {"profile": "slurm-cpu", "cpus": 2, "memory": "1G"}
    assert hub.get_via_proxy(f"/user/{slurm_test_user}/api/status")[0] == 200


@pytest.fixture(scope="module")
def cloud_server(hub, form_server, ec2_side, slurm_test_user):
    """A named server on EC2 beside the Slurm default server."""
    status, body = hub.spawn(slurm_test_user, "cloud", {"profile": "ec2-small"})
    assert status in (201, 202), body
    model = hub.wait_ready(slurm_test_user, "cloud", timeout=120)
    (instance,) = live_instances(ec2_side.ec2, ec2_side.hub_id, slurm_test_user)
    return model, instance


def test_an_ec2_named_server_runs_beside_the_slurm_server(hub, form_server, cloud_server, slurm_test_user):
    slurm_model, job = form_server
    cloud_model, instance = cloud_server
    assert cloud_model["user_options"] == {"profile": "ec2-small"}
    assert cloud_model["state"]["backend"] == "ec2" and cloud_model["state"]["child_state"]["node_id"] == instance
    hpc_state = hub.server_model(slurm_test_user)["state"]
    assert hpc_state["backend"] == "slurm" and hpc_state["child_state"]["job_id"] == job["id"]
    for prefix in (f"/user/{slurm_test_user}", f"/user/{slurm_test_user}/cloud"):
        status, text = hub.get_via_proxy(f"{prefix}/api/status")
        assert status == 200, (prefix, text[:300])


def test_hub_restart_keeps_both_servers(hub, form_server, cloud_server, ec2_side, slurm_cluster, slurm_test_user):
    _, job = form_server
    _, instance = cloud_server
    hub.restart()
    model = hub.wait_ready(slurm_test_user, timeout=60)
    assert model["user_options"]["profile"] == "slurm-cpu"
    assert hub.wait_ready(slurm_test_user, "cloud", timeout=60)["state"]["child_state"]["node_id"] == instance
    assert [j["id"] for j in user_jobs(slurm_cluster, slurm_test_user)] == [job["id"]]
    for prefix in (f"/user/{slurm_test_user}", f"/user/{slurm_test_user}/cloud"):
        assert hub.get_via_proxy(f"{prefix}/api/status")[0] == 200, prefix
    # The restored spawners still own their nodes: stopping one leaves the other, and ends its node.
    hub.stop_server(slurm_test_user)
    wait_until(lambda: not user_jobs(slurm_cluster, slurm_test_user), timeout=60, what="job cancelled after restart")
    assert hub.get_via_proxy(f"/user/{slurm_test_user}/cloud/api/status")[0] == 200
    hub.stop_server(slurm_test_user, "cloud")
    wait_until(lambda: not live_instances(ec2_side.ec2, ec2_side.hub_id, slurm_test_user), timeout=60, what="instance terminated")


@pytest.mark.parametrize(
    "user, options, message",
    [
        ("slurmtest", {"profile": "no-such-profile"}, "unknown profile"),
        ("slurmtest", {"profile": "slurm-cpu", "cpus": 64}, "outside 1..4"),
        ("slurmtest", {"profile": "slurm-cpu", "memory": "900G"}, "not one of"),
        ("slurmtest", {"profile": "slurm-cpu", "req_partition": "batch"}, "does not offer"),
        ("slurmtest", {"profile": "slurm-maint", "cmd": ["/bin/sh"]}, "does not offer"),
        (OUTSIDER, {"profile": "slurm-gpu"}, "not available to user"),
    ],
)
def test_forged_user_options_are_refused_and_nothing_is_launched(hub, slurm_cluster, user, options, message):
    before_jobs = slurm_cluster.job_ids()
    before_submissions = submissions(hub)
    status, body = hub.api("POST", f"/users/{user}/servers/forged", options)
    assert status == 400, body
    assert message in json.dumps(body)
    assert submissions(hub) == before_submissions
    # (jobs of earlier tests may still leave the queue meanwhile; none may join it)
    assert not set(slurm_cluster.job_ids()) - set(before_jobs)
    model = hub.server_model(user, "forged")
    assert model is None or not (model.get("ready") or model.get("pending"))


def test_group_restricted_profile_is_hidden_from_others(hub, slurm_test_user):
    pages = {}
    for user in (slurm_test_user, OUTSIDER):
        r = logged_in(hub, user).get(f"{hub.url}/hub/spawn/{user}", timeout=30)
        assert r.status_code == 200, r.text[:300]
        pages[user] = r.text
    assert 'value="slurm-gpu"' in pages[slurm_test_user] and "$1.50/h" in pages[slurm_test_user]
    assert 'value="slurm-cpu"' in pages[OUTSIDER]
    assert "slurm-gpu" not in pages[OUTSIDER]


def test_pending_job_reports_its_reason_and_cancelling_cancels_the_job(hub, slurm_cluster, slurm_test_user):
    # Started through a spawn link: query arguments go through the same form parsing.
    browser = logged_in(hub, slurm_test_user)
    r = browser.get(f"{hub.url}/hub/spawn/{slurm_test_user}/queued?profile=slurm-maint", allow_redirects=False, timeout=60)
    assert r.status_code == 302, r.text[:300]
    (job,) = wait_until(lambda: user_jobs(slurm_cluster, slurm_test_user, states=("PENDING",)), what="pending job")
    assert job["partition"] == "maint"

    messages = []
    with requests.get(
        f"{hub.url}/hub/api/users/{slurm_test_user}/servers/queued/progress",
        headers={"Authorization": f"token {hub.admin_token}"},
        stream=True,
        timeout=60,
    ) as stream:
        deadline = time.monotonic() + 60
        for line in stream.iter_lines(decode_unicode=True):
            if line and line.startswith("data:"):
                messages.append(json.loads(line[5:])["message"])
                if any("PENDING" in m and "PartitionDown" in m for m in messages):
                    break
            assert time.monotonic() < deadline, messages
    assert any(f"Slurm job {job['id']} is queued: PENDING: PartitionDown (partition maint)" == m for m in messages), messages

    hub.stop_server(slurm_test_user, "queued")
    wait_until(lambda: job["id"] not in slurm_cluster.job_ids(), timeout=60, what="pending job cancelled")


def test_a_job_that_dies_fails_the_spawn_with_its_output_path_and_leaves_no_job(hub, slurm_cluster, slurm_test_user):
    status, body = hub.api("POST", f"/users/{slurm_test_user}/servers/broken", {"profile": "slurm-broken"})
    assert status in (202, 500), body  # 500: failed within slow_spawn_timeout
    wait_until(
        lambda: not (hub.server_model(slurm_test_user, "broken") or {}).get("pending"), timeout=90, what="spawn ended"
    )
    model = hub.server_model(slurm_test_user, "broken")
    assert not (model or {}).get("ready"), model
    log = hub.log_text()
    assert re.search(r"Slurm job \d+ (ended before the server started|stopped while booting)", log), log[-3000:]
    assert not user_jobs(slurm_cluster, slurm_test_user)

    # Starting again after the failure: the hub must say "pending" (202) while the new job runs
    # up, not "ready" (JupyterHub's replace_failed kept no replacement: hybrid_spawner/jupyterhub_fixes.py),
    # and stopping it then must work.
    status, body = hub.api("POST", f"/users/{slurm_test_user}/servers/broken", {"profile": "slurm-maint"})
    assert status == 202, (status, body)
    model = hub.server_model(slurm_test_user, "broken")
    assert model["pending"] == "spawn" and not model["ready"], model
    wait_until(lambda: user_jobs(slurm_cluster, slurm_test_user, states=("PENDING",)), what="the new job queued")
    hub.stop_server(slurm_test_user, "broken")
    wait_until(lambda: not user_jobs(slurm_cluster, slurm_test_user), timeout=60, what="the queued job cancelled")


# -- spawn links (GET /hub/spawn/<user>/<server>?...) from a logged-in browser session ---------
@pytest.mark.parametrize(
    "query, cpus",
    [
        ("opt-profile=slurm-link&opt-cpus=2", 2),  # the documented form
        ("profile=slurm-link&opt-slurm-link--cpus=3", 3),  # the earlier documented form
    ],
)
def test_a_spawn_link_starts_the_profile_it_names(hub, slurm_cluster, ec2_side, slurm_test_user, query, cpus):
    instances_before = live_instances(ec2_side.ec2, ec2_side.hub_id, slurm_test_user)
    browser = logged_in(hub, slurm_test_user)
    r = browser.get(f"{hub.url}/hub/spawn/{slurm_test_user}/linked?{query}", allow_redirects=False, timeout=60)
    assert r.status_code == 302, r.text[:500]
    model = hub.wait_ready(slurm_test_user, "linked", timeout=120)
    assert model["user_options"] == {"profile": "slurm-link", "cpus": cpus}
    assert model["state"]["backend"] == "slurm"
    (job,) = [j for j in user_jobs(slurm_cluster, slurm_test_user, states=("RUNNING",)) if j["id"] == model["state"]["child_state"]["job_id"]]
    assert job["cpus"] == cpus and job["partition"] == "debug"
    assert live_instances(ec2_side.ec2, ec2_side.hub_id, slurm_test_user) == instances_before  # no cloud instance
    hub.stop_server(slurm_test_user, "linked")


@pytest.mark.parametrize(
    "query, message",
    [
        ("opt-profile=slurm-link&opt-ec2-small--size=big", "field 'opt-ec2-small--size' belongs to profile 'ec2-small', not to 'slurm-link'"),
        ("profile=slurm-link&opt-slurm-cpu--cpus=2", "belongs to profile 'slurm-cpu', not to 'slurm-link'"),
        ("opt-slurm-link--cpus=2", "no profile is named; add opt-profile=slurm-link"),
        ("opt-profile=slurm-link&opt-memory=1G", "does not offer ['memory']"),
        ("opt-profile=slurm-link&opt-cpus=9", "outside 1..4"),
        ("opt-profile=slurm-link&opt-cpus=2&opt-cpus=3", "given 2 times"),
        ("opt-profile=no-such-profile", "unknown profile"),
    ],
)
def test_a_spawn_link_that_does_not_fit_is_refused_and_starts_nothing(hub, slurm_cluster, ec2_side, slurm_test_user, query, message):
    jobs_before, submissions_before = slurm_cluster.job_ids(), submissions(hub)
    instances_before = live_instances(ec2_side.ec2, ec2_side.hub_id, slurm_test_user)
    browser = logged_in(hub, slurm_test_user)
    r = browser.get(f"{hub.url}/hub/spawn/{slurm_test_user}/badlink?{query}", allow_redirects=False, timeout=60)
    assert r.status_code == 400, r.text[:500]
    page = html.unescape(r.text)
    assert "Invalid server options" in page and message in page, page[-3000:]
    assert 'id="spawn_form"' in r.text  # the form again, to choose properly
    time.sleep(1)  # a spawn, had one started, would have submitted by now
    assert submissions(hub) == submissions_before
    assert not set(slurm_cluster.job_ids()) - set(jobs_before)
    assert live_instances(ec2_side.ec2, ec2_side.hub_id, slurm_test_user) == instances_before
    model = hub.server_model(slurm_test_user, "badlink")
    assert model is None or not (model.get("ready") or model.get("pending"))


# -- the instance type a researcher picks -----------------------------------------------------
def test_the_chosen_instance_type_is_the_one_launched(hub, ec2_side, slurm_test_user):
    status, body = hub.spawn(slurm_test_user, "sized", {"profile": "ec2-choice", "instance_type": "t3.small"})
    assert status in (201, 202), body
    model = hub.wait_ready(slurm_test_user, "sized", timeout=120)
    node = model["state"]["child_state"]["node_id"]
    (instance,) = [i for r in ec2_side.ec2.describe_instances(InstanceIds=[node])["Reservations"] for i in r["Instances"]]
    assert instance["InstanceType"] == "t3.small"
    assert model["state"]["child_state"]["instance_type"] == "t3.small"
    hub.stop_server(slurm_test_user, "sized")
