"""Restore with conflict copies against a real S3 server (SeaweedFS): the bucket's version of a
conflicting file lands beside it and the local file stays; the command line the node agent runs
prints progress lines and the finished job."""

from __future__ import annotations

import json
import subprocess

import pytest

from simulators.processes import child_env, venv_bin_dir
from voila_publisher.sync.config import BucketSync
from voila_publisher.sync.engine import SyncEngine
from voila_publisher.sync.job import Job
from voila_publisher.sync.plan import conflict_copy_path

pytestmark = pytest.mark.integration

USER = "ana"


def write(root, rel, data: bytes):
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def run(engine, kind="sync", **options) -> dict:
    job = Job(kind)
    getattr(engine, kind)(job, **options)
    return job.to_json()


def test_the_bucket_version_of_a_conflict_is_kept_beside_the_local_file(seaweedfs, s3_bucket, tmp_path):
    config = BucketSync(bucket=s3_bucket, endpoint_url=seaweedfs.url, region="us-east-1")
    laptop, node = tmp_path / "laptop", tmp_path / "node"
    write(laptop, "paper.ipynb", b"version from the bucket")
    write(laptop, "data/more.csv", b"1,2,3")
    run(SyncEngine(config, laptop, USER))
    write(node, "paper.ipynb", b"unsynced local work!")

    result = run(SyncEngine(config, node, USER), "restore", keep_conflict_copies=True)

    etag = seaweedfs.client().head_object(Bucket=s3_bucket, Key=f"users/{USER}/paper.ipynb")["ETag"]
    copy = conflict_copy_path("paper.ipynb", etag)
    assert result["state"] == "done" and result["conflicts"] == ["paper.ipynb"]
    assert result["conflict_copies"] == [{"path": "paper.ipynb", "copy": copy}]
    assert (node / "paper.ipynb").read_bytes() == b"unsynced local work!"
    assert (node / copy).read_bytes() == b"version from the bucket"
    assert (node / "data/more.csv").read_bytes() == b"1,2,3"
    assert "bucket copies kept beside them" in result["message"]
    assert not list(node.rglob("*.hybrid-restore"))

    # The same bucket version again: nothing new is written, the copy is not duplicated.
    again = run(SyncEngine(config, node, USER), "restore", keep_conflict_copies=True)
    assert again["conflict_copies"] == [] and again["downloaded"] == 0
    assert sorted(p.name for p in node.iterdir() if p.name != ".hybrid-sync") == sorted(["paper.ipynb", copy, "data"])

    # A copy name the user already took is never overwritten.
    write(laptop, "paper.ipynb", b"a newer bucket version")
    run(SyncEngine(config, laptop, USER))
    etag2 = seaweedfs.client().head_object(Bucket=s3_bucket, Key=f"users/{USER}/paper.ipynb")["ETag"]
    write(node, conflict_copy_path("paper.ipynb", etag2), b"mine, by chance the same name")
    third = run(SyncEngine(config, node, USER), "restore", keep_conflict_copies=True)
    assert third["conflict_copies"] == []
    assert (node / conflict_copy_path("paper.ipynb", etag2)).read_bytes() == b"mine, by chance the same name"


def test_the_command_line_prints_progress_lines_then_the_job(seaweedfs, s3_bucket, s3_env, tmp_path):
    source = tmp_path / "source"
    for i in range(40):
        write(source, f"nb{i:02d}.ipynb", json.dumps({"n": i}).encode())
    config = BucketSync(bucket=s3_bucket, endpoint_url=seaweedfs.url, region="us-east-1")
    run(SyncEngine(config, source, USER))
    node = tmp_path / "node"
    env = {**child_env(), **s3_env, "HYBRID_SYNC_BUCKET": s3_bucket, "HYBRID_SYNC_PREFIX": "users/{username}/"}
    out = subprocess.run(
        [str(venv_bin_dir() / "python"), "-m", "voila_publisher.sync.cli", "--restore", "--keep-conflict-copies",
         "--progress", "--json", f"--root={node}", f"--user={USER}", "--HybridSyncApp.progress_interval=0.01"],
        env=env, capture_output=True, text=True, timeout=120,
    )
    assert out.returncode == 0, out.stderr
    lines = [json.loads(line) for line in out.stdout.splitlines()]
    progress, job = lines[:-1], lines[-1]
    assert progress and all(set(p) == {"state", "files_done", "files_total", "bytes_done", "bytes_total", "message"} for p in progress)
    assert job["kind"] == "restore" and job["state"] == "done" and job["downloaded"] == 40
    assert sorted(p.name for p in node.glob("*.ipynb")) == sorted(f"nb{i:02d}.ipynb" for i in range(40))
