"""REST API of sync on a real jupyter server (pytest-jupyter) against SeaweedFS."""

from __future__ import annotations

import asyncio
import json
import os
import time

import pytest
from jupyter_server.auth.authorizer import Authorizer
from tornado.httpclient import HTTPClientError

from simulators.processes import free_port

pytestmark = pytest.mark.integration
USER = "ana"


class DenyHybridSync(Authorizer):
    """Allows everything except the sync API's own resource."""

    def is_authorized(self, handler, user, action, resource):
        return resource != "hybrid_sync"


@pytest.fixture
def sync_settings(seaweedfs, s3_bucket, monkeypatch):
    """BucketSync configuration for the test server; tests adjust it before the server starts."""
    monkeypatch.setenv("JUPYTERHUB_USER", USER)
    return {"bucket": s3_bucket, "endpoint_url": seaweedfs.url, "sync_on_stop": False}


@pytest.fixture
def jp_server_config(sync_settings):
    return {
        "ServerApp": {"jpserver_extensions": {"voila_publisher": True}},
        "BucketSync": sync_settings,
    }


async def fetch_json(jp_fetch, *parts, method="GET", body=None, **kwargs):
    if body is not None:
        kwargs["body"] = json.dumps(body)
    response = await jp_fetch(*parts, method=method, **kwargs)
    return response.code, json.loads(response.body or b"null")


async def expect_error(jp_fetch, *parts, method="POST", body=None, **kwargs):
    with pytest.raises(HTTPClientError) as info:
        await fetch_json(jp_fetch, *parts, method=method, body=body, **kwargs)
    error = info.value
    payload = json.loads(error.response.body) if error.response is not None and error.response.body else {}
    return error.code, payload


async def wait_done(jp_fetch, kind, job_id, timeout=90):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        _, job = await fetch_json(jp_fetch, "hybrid", kind, job_id)
        if job["state"] != "running":
            return job
        await asyncio.sleep(0.05)
    raise AssertionError(f"{kind} {job_id} still running after {timeout}s: {job}")


def keys(seaweedfs, bucket):
    pages = seaweedfs.client().get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=f"users/{USER}/")
    return sorted(o["Key"].split("/", 2)[2] for p in pages for o in p.get("Contents", []))


def fill(root, count=1, size=100):
    for i in range(count):
        path = root / "notebooks" / f"nb-{i:04d}.ipynb"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(bytes([i % 256]) * size)


async def test_status_reports_configuration(jp_fetch, s3_bucket):
    code, status = await fetch_json(jp_fetch, "hybrid", "sync")
    assert code == 200
    assert status == {
        "configured": True,
        "missing": None,
        "bucket": s3_bucket,
        "prefix": f"users/{USER}/",
        "current": None,
        "last": None,
        "restored_at_start": None,
    }


async def test_sync_then_progress_then_last(jp_fetch, jp_root_dir, seaweedfs, s3_bucket):
    fill(jp_root_dir, 3)
    (jp_root_dir / "notebooks" / ".ipynb_checkpoints").mkdir()
    (jp_root_dir / "notebooks" / ".ipynb_checkpoints" / "x.ipynb").write_text("{}")
    code, job = await fetch_json(jp_fetch, "hybrid", "sync", method="POST", body={})
    assert code == 202 and job["kind"] == "sync" and job["state"] in ("running", "done")
    done = await wait_done(jp_fetch, "sync", job["id"])
    assert done["state"] == "done" and done["uploaded"] == 3 and done["files_done"] == done["files_total"] == 3
    assert done["bytes_done"] == done["bytes_total"] == 300 and done["errors"] == [] and done["finished"]
    assert keys(seaweedfs, s3_bucket) == ["notebooks/nb-0000.ipynb", "notebooks/nb-0001.ipynb", "notebooks/nb-0002.ipynb"]
    _, status = await fetch_json(jp_fetch, "hybrid", "sync")
    assert status["current"] is None and status["last"]["id"] == job["id"]
    # a resync of an unchanged tree uploads nothing
    _, again = await fetch_json(jp_fetch, "hybrid", "sync", method="POST", body={"paths": ["notebooks"]})
    again = await wait_done(jp_fetch, "sync", again["id"])
    assert (again["uploaded"], again["skipped"]) == (0, 3)


async def test_concurrent_posts_join_one_sync(jp_fetch, jp_root_dir, seaweedfs, s3_bucket):
    fill(jp_root_dir, 300, size=2_000)
    (code1, first), (code2, second) = await asyncio.gather(
        fetch_json(jp_fetch, "hybrid", "sync", method="POST", body={}),
        fetch_json(jp_fetch, "hybrid", "sync", method="POST", body={}),
    )
    assert code1 == code2 == 202
    assert first["id"] == second["id"]
    done = await wait_done(jp_fetch, "sync", first["id"])
    assert done["uploaded"] == 300
    assert len(keys(seaweedfs, s3_bucket)) == 300


async def test_restore_while_a_sync_runs_is_refused_as_busy(jp_fetch, jp_root_dir, seaweedfs, s3_bucket):
    fill(jp_root_dir, 500, size=2_000)  # long enough that the restore request arrives mid-sync
    _, job = await fetch_json(jp_fetch, "hybrid", "sync", method="POST", body={})
    code, payload = await expect_error(jp_fetch, "hybrid", "restore", body={})
    assert code == 409 and payload["reason"] == "busy" and "sync is running" in payload["message"]
    assert (await wait_done(jp_fetch, "sync", job["id"]))["uploaded"] == 500


async def test_restore_through_the_api(jp_fetch, jp_root_dir, seaweedfs, s3_bucket):
    client = seaweedfs.client()
    client.put_object(Bucket=s3_bucket, Key=f"users/{USER}/from-bucket/a.ipynb", Body=b"from the bucket")
    (jp_root_dir / "local.ipynb").write_text("mine")
    code, job = await fetch_json(jp_fetch, "hybrid", "restore", method="POST", body={"overwrite": False})
    assert code == 202 and job["kind"] == "restore"
    done = await wait_done(jp_fetch, "restore", job["id"])
    assert done["state"] == "done" and done["downloaded"] == 1
    assert (jp_root_dir / "from-bucket" / "a.ipynb").read_bytes() == b"from the bucket"
    assert (jp_root_dir / "local.ipynb").read_text() == "mine"
    code, payload = await expect_error(jp_fetch, "hybrid", "sync", done["id"], method="GET")
    assert code == 404 and payload["reason"] == "not-found"  # a restore id is not a sync id


async def test_the_button_sends_a_same_size_edit_with_its_mtime_set_back_and_restores_a_255_byte_name(
    jp_fetch, jp_root_dir, seaweedfs, s3_bucket
):
    """Issue 16, items 2 and 3, through the REST API the Lab's buttons use."""
    name = "n" * 249 + ".ipynb"  # 255 bytes, the filesystem's limit
    path = jp_root_dir / name
    path.write_bytes(b"weights = 1111")
    time.sleep(1.1)  # past the timestamp step: the manifest vouches for the file after this sync

    async def run(kind, **body):
        _, job = await fetch_json(jp_fetch, "hybrid", kind, method="POST", body=body)
        return await wait_done(jp_fetch, kind, job["id"])

    assert (await run("sync"))["uploaded"] == 1
    st = path.stat()
    path.write_bytes(b"weights = 2222")  # same size
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))  # mtime set back to the nanosecond
    done = await run("sync")
    assert (done["state"], done["uploaded"]) == ("done", 1), done
    assert seaweedfs.client().get_object(Bucket=s3_bucket, Key=f"users/{USER}/{name}")["Body"].read() == b"weights = 2222"

    path.unlink()
    done = await run("restore")
    assert (done["state"], done["downloaded"], done["errors"]) == ("done", 1, []), done
    assert path.read_bytes() == b"weights = 2222"


@pytest.mark.parametrize("kind", ["sync", "restore"])
@pytest.mark.parametrize("path", ["../outside", "/etc", "a/../../x"])
async def test_path_traversal_is_refused(jp_fetch, jp_root_dir, seaweedfs, s3_bucket, kind, path):
    code, payload = await expect_error(jp_fetch, "hybrid", kind, body={"paths": [path]})
    assert code == 400 and payload["reason"] == "path-outside-root" and "root" in payload["message"]
    assert keys(seaweedfs, s3_bucket) == []


@pytest.mark.parametrize(
    "body", ["not json", json.dumps([1]), json.dumps({"paths": "nb.ipynb"}), json.dumps({"delete": "yes"})]
)
async def test_malformed_requests_are_refused(jp_fetch, body):
    with pytest.raises(HTTPClientError) as info:
        await jp_fetch("hybrid", "sync", method="POST", body=body)
    assert info.value.code == 400
    assert json.loads(info.value.response.body)["reason"] == "bad-request"


async def test_no_token_is_refused(jp_serverapp, http_server_client, jp_base_url, seaweedfs, s3_bucket, jp_root_dir):
    fill(jp_root_dir, 1)
    for method, path, body in [
        ("GET", "hybrid/sync", None),
        ("POST", "hybrid/sync", "{}"),
        ("POST", "hybrid/restore", "{}"),
        ("GET", "hybrid/sync/abc", None),
    ]:
        response = await http_server_client.fetch(jp_base_url + path, method=method, body=body, raise_error=False)
        assert response.code == 403, (method, path)
    assert keys(seaweedfs, s3_bucket) == []


@pytest.fixture
def deny_sync_config(sync_settings):
    return {
        "ServerApp": {"jpserver_extensions": {"voila_publisher": True}, "authorizer_class": DenyHybridSync},
        "BucketSync": sync_settings,
    }


class TestAuthorizer:
    @pytest.fixture
    def jp_server_config(self, deny_sync_config):
        return deny_sync_config

    async def test_denied_resource_gives_403(self, jp_fetch):
        code, _ = await fetch_json(jp_fetch, "api", "status")
        assert code == 200
        code, payload = await expect_error(jp_fetch, "hybrid", "sync", method="GET")
        assert code == 403


class TestNotConfigured:
    @pytest.fixture
    def sync_settings(self, monkeypatch):
        monkeypatch.delenv("HYBRID_SYNC_BUCKET", raising=False)
        return {"bucket": ""}

    async def test_status_says_what_the_admin_must_set(self, jp_fetch):
        _, status = await fetch_json(jp_fetch, "hybrid", "sync")
        assert status["configured"] is False and "HYBRID_SYNC_BUCKET" in status["missing"]
        code, payload = await expect_error(jp_fetch, "hybrid", "sync", body={})
        assert code == 409 and payload["reason"] == "not-configured"


class TestBadStore:
    @pytest.fixture
    def sync_settings(self, seaweedfs, s3_env, monkeypatch):
        monkeypatch.setenv("JUPYTERHUB_USER", USER)
        return {"bucket": "bucket-that-does-not-exist", "endpoint_url": seaweedfs.url, "sync_on_stop": False}

    async def test_missing_bucket_gives_a_clear_error(self, jp_fetch, jp_root_dir):
        fill(jp_root_dir, 2)
        _, job = await fetch_json(jp_fetch, "hybrid", "sync", method="POST", body={"delete": True})
        done = await wait_done(jp_fetch, "sync", job["id"])
        assert done["state"] == "error" and done["reason"] == "no-such-bucket"
        assert "bucket-that-does-not-exist" in done["message"] and done["uploaded"] == done["deleted"] == 0


class TestUnreachableStore:
    @pytest.fixture
    def sync_settings(self, s3_env, monkeypatch):
        monkeypatch.setenv("JUPYTERHUB_USER", USER)
        return {
            "bucket": "any-bucket",
            "endpoint_url": f"http://127.0.0.1:{free_port()}",
            "max_attempts": 2,
            "sync_on_stop": False,
        }

    async def test_unreachable_endpoint_gives_a_clear_error(self, jp_fetch, jp_root_dir):
        fill(jp_root_dir, 1)
        _, job = await fetch_json(jp_fetch, "hybrid", "sync", method="POST", body={})
        done = await wait_done(jp_fetch, "sync", job["id"])
        assert done["state"] == "error" and done["reason"] == "unreachable"
        assert "cannot reach the S3 endpoint" in done["message"]


class TestBackgroundSyncs:
    @pytest.fixture
    def sync_settings(self, seaweedfs, s3_bucket, monkeypatch):
        monkeypatch.setenv("JUPYTERHUB_USER", USER)
        return {"bucket": s3_bucket, "endpoint_url": seaweedfs.url, "sync_on_stop": True, "periodic_interval": 0.3}

    async def test_periodic_sync_runs_without_a_request(self, jp_fetch, jp_root_dir, seaweedfs, s3_bucket):
        fill(jp_root_dir, 2)
        deadline = time.monotonic() + 60
        while keys(seaweedfs, s3_bucket) != ["notebooks/nb-0000.ipynb", "notebooks/nb-0001.ipynb"]:
            assert time.monotonic() < deadline, "no periodic sync happened"
            await asyncio.sleep(0.1)
        _, status = await fetch_json(jp_fetch, "hybrid", "sync")
        assert status["last"] is not None or status["current"] is not None



class TestFinalSync:
    @pytest.fixture
    def sync_settings(self, seaweedfs, s3_bucket, monkeypatch):
        monkeypatch.setenv("JUPYTERHUB_USER", USER)
        return {"bucket": s3_bucket, "endpoint_url": seaweedfs.url, "sync_on_stop": True, "final_sync_timeout": 60}

    async def test_final_sync_when_the_server_stops(self, jp_serverapp, jp_root_dir, seaweedfs, s3_bucket):
        (jp_root_dir / "last-minute.ipynb").write_text("written just before the culler came")
        await jp_serverapp.cleanup_extensions()  # what the server runs on SIGTERM
        assert keys(seaweedfs, s3_bucket) == ["last-minute.ipynb"]


async def test_cookie_authenticated_post_needs_the_xsrf_token(
    jp_serverapp, http_server_client, jp_base_url, jp_root_dir, seaweedfs, s3_bucket
):
    from http.cookies import SimpleCookie
    from urllib.parse import urlencode

    def cookies_of(response, jar):
        for header in response.headers.get_list("Set-Cookie"):
            jar.load(header)
        return jar

    jar = SimpleCookie()
    login_page = await http_server_client.fetch(jp_base_url + "login", raise_error=False)
    cookies_of(login_page, jar)
    xsrf = jar["_xsrf"].value
    token = jp_serverapp.identity_provider.token
    login = await http_server_client.fetch(
        jp_base_url + "login",
        method="POST",
        body=urlencode({"password": token, "_xsrf": xsrf}),
        headers={"Cookie": "; ".join(f"{k}={v.value}" for k, v in jar.items())},
        follow_redirects=False,
        raise_error=False,
    )
    assert login.code == 302
    cookie_header = "; ".join(f"{k}={v.value}" for k, v in cookies_of(login, jar).items())
    fill(jp_root_dir, 1)
    refused = await http_server_client.fetch(
        jp_base_url + "hybrid/sync", method="POST", body="{}", headers={"Cookie": cookie_header}, raise_error=False
    )
    assert refused.code == 403 and keys(seaweedfs, s3_bucket) == []
    accepted = await http_server_client.fetch(
        jp_base_url + "hybrid/sync",
        method="POST",
        body="{}",
        headers={"Cookie": cookie_header, "X-XSRFToken": xsrf},
        raise_error=False,
    )
    assert accepted.code == 202
    job = json.loads(accepted.body)
    deadline = time.monotonic() + 60
    while job["state"] == "running" and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
        status = await http_server_client.fetch(jp_base_url + f"hybrid/sync/{job['id']}", headers={"Cookie": cookie_header})
        job = json.loads(status.body)
    assert job["state"] == "done" and keys(seaweedfs, s3_bucket) == ["notebooks/nb-0000.ipynb"]
