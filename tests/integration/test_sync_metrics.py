"""Sync's metrics on the single-user server's own /metrics (jupyter_server, pytest-jupyter),
moved by syncs and restores through the real extension against SeaweedFS."""

from __future__ import annotations

import json
import time
import asyncio

import pytest
from prometheus_client.parser import text_string_to_metric_families
from tornado.httpclient import AsyncHTTPClient, HTTPClientError

pytestmark = pytest.mark.integration
USER = "ana"
MAX_FILE_SIZE = 50_000


@pytest.fixture
def jp_server_config(seaweedfs, s3_bucket, monkeypatch):
    monkeypatch.setenv("JUPYTERHUB_USER", USER)
    return {
        "ServerApp": {"jpserver_extensions": {"voila_publisher": True}},
        "BucketSync": {"bucket": s3_bucket, "endpoint_url": seaweedfs.url, "sync_on_stop": False,
                       "max_file_size": MAX_FILE_SIZE},
    }


async def scrape(jp_fetch) -> dict[tuple, float]:
    response = await jp_fetch("metrics")
    text = response.body.decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(samples, name, **labels) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


async def run_job(jp_fetch, kind: str, body: dict | None = None) -> dict:
    response = await jp_fetch("hybrid", kind, method="POST", body=json.dumps(body or {}))
    job = json.loads(response.body)
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        job = json.loads((await jp_fetch("hybrid", kind, job["id"])).body)
        if job["state"] != "running":
            return job
        await asyncio.sleep(0.05)
    raise AssertionError(f"{kind} still running: {job}")


async def test_metrics_are_not_served_without_a_login(jp_fetch, jp_http_port, jp_base_url):
    with pytest.raises(HTTPClientError) as info:
        await AsyncHTTPClient().fetch(f"http://127.0.0.1:{jp_http_port}{jp_base_url}metrics")
    assert info.value.code == 403
    text = (await jp_fetch("metrics")).body.decode()
    for name in ("hybrid_sync_jobs_total", "hybrid_sync_bytes_total", "hybrid_sync_errors_total"):
        assert f"# TYPE {name} counter" in text, name


async def test_sync_and_restore_move_jobs_bytes_and_errors(jp_fetch, jp_root_dir):
    before = await scrape(jp_fetch)
    (jp_root_dir / "notebooks").mkdir()
    for i in range(3):
        (jp_root_dir / "notebooks" / f"nb-{i}.ipynb").write_bytes(bytes([i]) * 1000)

    job = await run_job(jp_fetch, "sync")
    assert job["state"] == "done" and job["uploaded"] == 3, job
    after_sync = await scrape(jp_fetch)
    assert value(after_sync, "hybrid_sync_jobs_total", kind="sync", state="done") == \
        value(before, "hybrid_sync_jobs_total", kind="sync", state="done") + 1
    assert value(after_sync, "hybrid_sync_bytes_total", direction="upload") == \
        value(before, "hybrid_sync_bytes_total", direction="upload") + 3000

    # A restore downloads what is missing locally.
    (jp_root_dir / "notebooks" / "nb-1.ipynb").unlink()
    job = await run_job(jp_fetch, "restore")
    assert job["state"] == "done" and job["downloaded"] == 1, job
    after_restore = await scrape(jp_fetch)
    assert value(after_restore, "hybrid_sync_jobs_total", kind="restore", state="done") == \
        value(before, "hybrid_sync_jobs_total", kind="restore", state="done") + 1
    assert value(after_restore, "hybrid_sync_bytes_total", direction="download") == \
        value(before, "hybrid_sync_bytes_total", direction="download") + 1000

    # A file over max_file_size is an error of the job, counted, and the job ends in "error".
    (jp_root_dir / "notebooks" / "huge.ipynb").write_bytes(b"x" * (MAX_FILE_SIZE + 1))
    job = await run_job(jp_fetch, "sync")
    assert job["state"] == "error" and job["errors"], job
    after_error = await scrape(jp_fetch)
    assert value(after_error, "hybrid_sync_errors_total", kind="sync") == \
        value(before, "hybrid_sync_errors_total", kind="sync") + 1
    assert value(after_error, "hybrid_sync_jobs_total", kind="sync", state="error") == \
        value(before, "hybrid_sync_jobs_total", kind="sync", state="error") + 1
    assert value(after_error, "hybrid_sync_bytes_total", direction="upload") == \
        value(after_restore, "hybrid_sync_bytes_total", direction="upload"), "nothing new was uploaded"
