"""HybridSpawner with Slurm profiles: form and REST spawns, validation in start, restart, pending jobs."""

from __future__ import annotations

import html
import json
import re
import time

import pytest
import requests
from urllib.parse import urljoin

from tests.fixtures.slurm import user_jobs, wait_until

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
        "slug": "slurm-maint",
        "display_name": "Maintenance partition (always queued)",
        "backend": "slurm",
        "overrides": {"req_partition": "maint"},
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
def hub(make_slurm_hub, slurm_test_user):
    hub = make_slurm_hub(PROFILES, name="hybrid-hub")
    hub.ensure_user(slurm_test_user)
    hub.ensure_user(OUTSIDER)
    hub.api("POST", "/groups/gpu-users", {"users": [slurm_test_user]}, expect=201)
    return hub


def user_token(hub, user: str) -> str:
    _, body = hub.api("POST", f"/users/{user}/tokens", {"note": "test", "expires_in": 3600}, expect=201)
    return body["token"]


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


def test_hub_restart_keeps_the_jobs_server(hub, form_server, slurm_cluster, slurm_test_user):
    _, job = form_server
    hub.restart()
    model = hub.wait_ready(slurm_test_user, timeout=60)
    assert model["user_options"]["profile"] == "slurm-cpu"
    assert [j["id"] for j in user_jobs(slurm_cluster, slurm_test_user)] == [job["id"]]
    assert hub.get_via_proxy(f"/user/{slurm_test_user}/api/status")[0] == 200
    # The restored spawner still owns the job: stopping it cancels the job.
    hub.stop_server(slurm_test_user)
    wait_until(lambda: not user_jobs(slurm_cluster, slurm_test_user), timeout=60, what="job cancelled after restart")


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
    assert slurm_cluster.job_ids() == before_jobs
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
    status, body = hub.api("POST", f"/users/{slurm_test_user}/servers/queued", {"profile": "slurm-maint"})
    assert status == 202, body
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
