"""Sync and restore on a bucket whose ETags are not MD5s (SSE-KMS), through `jupyter-hybrid-sync`.

The store is real (moto or SeaweedFS over HTTP); the ETags the client sees are made opaque by
the proxy of tests/fixtures/kms_store.py, as SSE-KMS makes them on AWS (moto itself keeps MD5
ETags on a KMS bucket). Issue 16, item 7: every upload to such a bucket used to fail with
checksum-mismatch, and later syncs must neither re-upload everything nor miss a change.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import time

import boto3
import pytest

from simulators.moto import MOTO_CREDENTIALS
from simulators.processes import child_env, venv_bin_dir
from voila_publisher.sync.manifest import RACY_WINDOW_NS

pytestmark = pytest.mark.integration
MiB = 1024 * 1024
USER = "ana"
MULTIPART = ["--BucketSync.multipart_threshold=5242880", "--BucketSync.multipart_chunksize=5242880"]


def cli(root, endpoint, bucket, *args, credentials=MOTO_CREDENTIALS) -> dict:
    env = child_env({**credentials, "AWS_EC2_METADATA_DISABLED": "true", "HYBRID_SYNC_BUCKET": bucket, "HYBRID_S3_ENDPOINT_URL": endpoint})
    out = subprocess.run(
        [str(venv_bin_dir() / "jupyter-hybrid-sync"), "--root", str(root), "--user", USER, "--json", *args],
        env=env, capture_output=True, text=True, timeout=180,
    )
    assert out.stdout.strip(), out.stderr
    return json.loads(out.stdout)


def write(root, rel, data: bytes):
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def listed_etags(url, bucket) -> dict[str, str]:
    client = boto3.client("s3", endpoint_url=url, region_name="us-east-1")
    return {o["Key"].rsplit("/", 1)[-1]: o["ETag"].strip('"') for o in client.list_objects_v2(Bucket=bucket).get("Contents", [])}


@pytest.mark.parametrize("single_pass", [True, False], ids=["single-pass", "hashed-first"])
def test_sync_and_restore_on_an_sse_kms_bucket(kms_store, moto_server, tmp_path, single_pass):
    proxy, bucket = kms_store
    root = tmp_path / "nb"
    files = {"analysis.ipynb": b'{"cells": [1]}' * 40, "data.csv": os.urandom(20_000), "large.bin": os.urandom(6 * MiB)}
    for rel, data in files.items():
        write(root, rel, data)
    time.sleep(RACY_WINDOW_NS / 1e9 + 0.1)  # settled files: later syncs trust their stat
    args = [*MULTIPART, f"--BucketSync.multipart_single_pass={single_pass}"]

    first = cli(root, proxy.url, bucket, *args)
    assert (first["state"], first["uploaded"], first["errors"]) == ("done", 3, []), first["errors"]
    direct = boto3.client("s3", endpoint_url=moto_server.url, region_name="us-east-1")
    for rel, data in files.items():
        assert direct.get_object(Bucket=bucket, Key=f"users/{USER}/{rel}")["Body"].read() == data
    # The double does what SSE-KMS does: no ETag the client sees is the content's MD5.
    seen = listed_etags(proxy.url, bucket)
    assert all(seen[rel] != hashlib.md5(data).hexdigest() for rel, data in files.items()), seen
    assert all(len(etag.split("-")[0]) == 32 for etag in seen.values())  # shaped like MD5s all the same

    again = cli(root, proxy.url, bucket, *args)
    assert (again["state"], again["uploaded"], again["skipped"]) == ("done", 0, 3), again

    write(root, "analysis.ipynb", b'{"cells": [2]}' * 40)  # same size, new content
    edited = cli(root, proxy.url, bucket, *args)
    assert (edited["state"], edited["uploaded"], edited["skipped"]) == ("done", 1, 2), edited
    assert direct.get_object(Bucket=bucket, Key=f"users/{USER}/analysis.ipynb")["Body"].read() == b'{"cells": [2]}' * 40

    fresh = tmp_path / "fresh"
    restored = cli(fresh, proxy.url, bucket, "--restore")
    assert (restored["state"], restored["downloaded"], restored["errors"]) == ("done", 3, []), restored
    assert (fresh / "large.bin").read_bytes() == files["large.bin"]
    assert (fresh / "analysis.ipynb").read_bytes() == b'{"cells": [2]}' * 40

    # A node holding the same files and no manifest: the store's stored MD5 says they are the same.
    other = tmp_path / "other-node"
    for rel in files:
        write(other, rel, (fresh / rel).read_bytes())
    same = cli(other, proxy.url, bucket, *args)
    assert (same["state"], same["uploaded"], same["skipped"]) == ("done", 0, 3), same


def test_an_object_another_tool_wrote_restores_on_an_sse_kms_bucket(kms_store, tmp_path):
    proxy, bucket = kms_store
    # Another tool (the AWS CLI, boto3) stores no MD5 of its own with the object.
    boto3.client("s3", endpoint_url=proxy.url, region_name="us-east-1").put_object(
        Bucket=bucket, Key=f"users/{USER}/from-elsewhere.ipynb", Body=b"written by boto3"
    )
    result = cli(tmp_path / "nb", proxy.url, bucket, "--restore")
    assert (result["state"], result["downloaded"], result["errors"]) == ("done", 1, []), result
    assert (tmp_path / "nb" / "from-elsewhere.ipynb").read_bytes() == b"written by boto3"


def test_an_upload_altered_in_transit_is_still_rejected_on_an_sse_kms_bucket(kms_seaweedfs, seaweedfs, tmp_path):
    proxy, bucket = kms_seaweedfs
    root = tmp_path / "nb"
    write(root, "good.ipynb", b"arrives intact")
    write(root, "bad.ipynb", b"altered on the way")
    proxy.corrupt_next_put_of.add(f"users/{USER}/bad.ipynb")
    result = cli(root, proxy.url, bucket, credentials=seaweedfs.client_env)
    assert (result["state"], result["uploaded"]) == ("error", 1), result
    assert [e["path"] for e in result["errors"]] == ["bad.ipynb"] and "checksum" in result["errors"][0]["message"]
    keys = [o["Key"] for o in seaweedfs.client().list_objects_v2(Bucket=bucket).get("Contents", [])]
    assert keys == [f"users/{USER}/good.ipynb"]
    retried = cli(root, proxy.url, bucket, credentials=seaweedfs.client_env)  # the next sync sends it
    assert (retried["state"], retried["uploaded"], retried["skipped"]) == ("done", 1, 1), retried
    assert seaweedfs.client().get_object(Bucket=bucket, Key=f"users/{USER}/bad.ipynb")["Body"].read() == b"altered on the way"
