"""The sync engine against a real S3 server (SeaweedFS): uploads, resync, restore, failures."""

from __future__ import annotations

import hashlib
import os
import subprocess
import time

import pytest

from simulators.processes import child_env, free_port, venv_bin_dir
from simulators.seaweedfs import READER_CREDENTIALS
from voila_publisher.sync import engine as engine_module
from voila_publisher.sync.hashing import multipart_etag
from voila_publisher.sync.s3.client import S3Store
from voila_publisher.sync.store import StoreError
from voila_publisher.sync.config import BucketSync
from voila_publisher.sync.engine import SyncEngine
from voila_publisher.sync.job import Job
from voila_publisher.sync.manifest import RACY_WINDOW_NS

pytestmark = pytest.mark.integration
MiB = 1024 * 1024
USER = "ana"


def write(root, rel, data: bytes):
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def make_config(seaweedfs, bucket, **overrides) -> BucketSync:
    overrides.setdefault("excludes", ["*.tmp"])
    return BucketSync(bucket=bucket, endpoint_url=seaweedfs.url, region="us-east-1", **overrides)


def run(engine: SyncEngine, kind="sync", **options) -> dict:
    job = Job(kind)
    getattr(engine, kind)(job, **options)
    return job.to_json()


def remote_objects(seaweedfs, bucket, prefix=f"users/{USER}/") -> dict[str, dict]:
    client = seaweedfs.client()
    found = {}
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for obj in page.get("Contents", []):
            found[obj["Key"][len(prefix) :]] = obj
    return found


def remote_bytes(seaweedfs, bucket, rel) -> bytes:
    return seaweedfs.client().get_object(Bucket=bucket, Key=f"users/{USER}/{rel}")["Body"].read()


@pytest.fixture
def tree(tmp_path):
    root = tmp_path / "notebooks"
    files = {
        "analysis.ipynb": b'{"cells": []}' * 50,
        "data/measurements.csv": os.urandom(30_000),
        "données été/résumé final.ipynb": "unicode and spaces ✓".encode(),
        "a+b & c%20d.txt": b"characters that URLs treat specially",
        "empty.txt": b"",
    }
    for rel, data in files.items():
        write(root, rel, data)
    write(root, ".ipynb_checkpoints/analysis-checkpoint.ipynb", b"checkpoint")
    write(root, "pkg/__pycache__/mod.cpython-311.pyc", b"bytecode")
    write(root, ".secrets", b"hidden")
    write(root, "scratch.tmp", b"excluded by a configured glob")
    outside = write(tmp_path, "outside/private.txt", b"not in the root")
    os.symlink(outside, root / "link-out.txt")
    return root, files


def test_initial_sync_uploads_the_tree_and_nothing_excluded(seaweedfs, s3_bucket, tree):
    root, files = tree
    engine = SyncEngine(make_config(seaweedfs, s3_bucket), root, USER)
    result = run(engine)
    assert result["state"] == "done", result
    assert result["uploaded"] == len(files) and result["files_done"] == len(files)
    assert result["bytes_done"] == result["bytes_total"] == sum(len(d) for d in files.values())
    remote = remote_objects(seaweedfs, s3_bucket)
    assert sorted(remote) == sorted(files)
    for rel, data in files.items():
        assert remote_bytes(seaweedfs, s3_bucket, rel) == data
        assert remote[rel]["ETag"].strip('"') == hashlib.md5(data).hexdigest()


def test_noop_resync_uploads_and_hashes_nothing(seaweedfs, s3_bucket, tree, monkeypatch):
    root, files = tree
    # Files changed within a timestamp step of a sync are hashed once more by the next one
    # (manifest.RACY_WINDOW_NS); these were all just written.
    time.sleep(RACY_WINDOW_NS / 1e9 + 0.1)
    engine = SyncEngine(make_config(seaweedfs, s3_bucket), root, USER)
    assert run(engine)["uploaded"] == len(files)
    before = remote_objects(seaweedfs, s3_bucket)
    hashed = []
    real_md5 = engine_module.file_md5
    monkeypatch.setattr(engine_module, "file_md5", lambda p: hashed.append(p) or real_md5(p))
    result = run(engine)
    assert (result["state"], result["uploaded"], result["skipped"]) == ("done", 0, len(files))
    assert hashed == []  # the manifest vouched for every file
    assert remote_objects(seaweedfs, s3_bucket) == before


def test_same_size_edits_are_uploaded_even_with_an_older_mtime_or_no_manifest(seaweedfs, s3_bucket, tmp_path):
    root = tmp_path / "nb"
    path = write(root, "model.ipynb", b"weights = 1111")
    other = write(root, "other.ipynb", b"alpha = 0.1")
    engine = SyncEngine(make_config(seaweedfs, s3_bucket), root, USER)
    run(engine)
    old = (path.stat().st_atime_ns, path.stat().st_mtime_ns - 3_600 * 10**9)
    path.write_bytes(b"weights = 2222")  # same size
    os.utime(path, ns=old)  # and older than the object: a size+time comparison skips it
    result = run(engine)
    assert result["uploaded"] == 1 and result["skipped"] == 1
    assert remote_bytes(seaweedfs, s3_bucket, "model.ipynb") == b"weights = 2222"
    # A node without the manifest decides by content too.
    engine.manifest_file.unlink()
    other.write_bytes(b"alpha = 0.2")
    result = run(engine)
    assert (result["uploaded"], result["skipped"]) == (1, 1)
    assert remote_bytes(seaweedfs, s3_bucket, "other.ipynb") == b"alpha = 0.2"


def test_local_delete_keeps_the_remote_copy_unless_delete_is_asked(seaweedfs, s3_bucket, tmp_path):
    root = tmp_path / "nb"
    write(root, "keep.ipynb", b"keep")
    gone = write(root, "old.ipynb", b"old")
    engine = SyncEngine(make_config(seaweedfs, s3_bucket), root, USER)
    run(engine)
    gone.unlink()
    result = run(engine)
    assert result["deleted"] == 0 and "old.ipynb" in remote_objects(seaweedfs, s3_bucket)
    result = run(engine, delete=True)
    assert result["deleted"] == 1 and sorted(remote_objects(seaweedfs, s3_bucket)) == ["keep.ipynb"]


def test_selected_paths_only(seaweedfs, s3_bucket, tree):
    root, _ = tree
    engine = SyncEngine(make_config(seaweedfs, s3_bucket), root, USER)
    result = run(engine, paths=["data", "analysis.ipynb"])
    assert result["uploaded"] == 2
    assert sorted(remote_objects(seaweedfs, s3_bucket)) == ["analysis.ipynb", "data/measurements.csv"]


@pytest.mark.parametrize("single_pass", [True, False], ids=["single-pass", "hashed-first"])
def test_50mb_multipart_upload_is_verified_and_restored(seaweedfs, s3_bucket, tmp_path, single_pass):
    root = tmp_path / "nb"
    data = os.urandom(50 * MiB)
    write(root, "big/dataset.bin", data)
    config = make_config(
        seaweedfs, s3_bucket, multipart_threshold=16 * MiB, multipart_chunksize=8 * MiB, multipart_single_pass=single_pass
    )
    result = run(SyncEngine(config, root, USER))
    assert result["state"] == "done" and result["uploaded"] == 1 and result["bytes_done"] == len(data)
    head = seaweedfs.client().head_object(Bucket=s3_bucket, Key=f"users/{USER}/big/dataset.bin")
    parts = [hashlib.md5(data[i : i + 8 * MiB]).digest() for i in range(0, len(data), 8 * MiB)]
    assert head["ETag"].strip('"') == multipart_etag(parts)  # 7 parts, as S3 computes it
    assert head["Metadata"]["md5"] == hashlib.md5(data).hexdigest()
    fresh = tmp_path / "fresh-node"
    result = run(SyncEngine(config, fresh, USER), "restore")
    assert result["state"] == "done" and result["downloaded"] == 1
    assert hashlib.md5((fresh / "big/dataset.bin").read_bytes()).digest() == hashlib.md5(data).digest()
    assert run(SyncEngine(config, root, USER))["uploaded"] == 0


class FailingStore(S3Store):
    """The real store, made to fail like a lost connection after ``fail_after`` requests."""

    def __init__(self, *args, fail_after: int, operation: str, **kwargs):
        super().__init__(*args, **kwargs)
        self.fail_after = fail_after
        self.operation = operation
        self.calls = 0

    def _maybe_fail(self):
        self.calls += 1
        if self.calls > self.fail_after:
            raise StoreError("unreachable", "simulated network loss", fatal=True)

    def put(self, *args, **kwargs):
        if self.operation == "put":
            self._maybe_fail()
        return super().put(*args, **kwargs)

    def upload_part(self, *args, **kwargs):
        if self.operation == "part":
            self._maybe_fail()
        return super().upload_part(*args, **kwargs)


class CountingStore(S3Store):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.put_keys: list[str] = []

    def put(self, key, *args, **kwargs):
        self.put_keys.append(key)
        return super().put(key, *args, **kwargs)


def test_interrupted_sync_resumes_without_reuploading_finished_files(seaweedfs, s3_bucket, tmp_path):
    root = tmp_path / "nb"
    for i in range(120):
        write(root, f"runs/run-{i:03d}.ipynb", os.urandom(2_000))
    config = make_config(seaweedfs, s3_bucket, concurrency=4)
    failing = FailingStore(s3_bucket, endpoint_url=seaweedfs.url, fail_after=40, operation="put")
    first = run(SyncEngine(config, root, USER, store=failing))
    assert first["state"] == "error" and first["reason"] == "unreachable"
    done_first = set(remote_objects(seaweedfs, s3_bucket))
    assert 40 <= len(done_first) < 120 and first["uploaded"] == len(done_first)
    counting = CountingStore(s3_bucket, endpoint_url=seaweedfs.url)
    second = run(SyncEngine(config, root, USER, store=counting))
    assert second["state"] == "done"
    resent = {k.removeprefix(f"users/{USER}/") for k in counting.put_keys}
    assert resent.isdisjoint(done_first) and len(resent) == 120 - len(done_first)
    assert len(remote_objects(seaweedfs, s3_bucket)) == 120


def test_interrupted_multipart_upload_leaves_nothing_visible(seaweedfs, s3_bucket, tmp_path):
    root = tmp_path / "nb"
    data = os.urandom(12 * MiB)
    write(root, "large.bin", data)
    config = make_config(seaweedfs, s3_bucket, multipart_threshold=5 * MiB, multipart_chunksize=5 * MiB, concurrency=1)
    failing = FailingStore(s3_bucket, endpoint_url=seaweedfs.url, fail_after=1, operation="part")
    result = run(SyncEngine(config, root, USER, store=failing))
    assert result["state"] == "error"
    assert remote_objects(seaweedfs, s3_bucket) == {}
    assert failing.pending_multipart(f"users/{USER}/") == []  # aborted, not left to accumulate
    result = run(SyncEngine(config, root, USER))
    assert result["state"] == "done" and remote_bytes(seaweedfs, s3_bucket, "large.bin") == data


class EditingStore(S3Store):
    """The real store; the user edits the file (``edit(path)``) right after its first part is sent."""

    def __init__(self, *args, path, edit, **kwargs):
        super().__init__(*args, **kwargs)
        self.path, self.edit, self.edited = path, edit, False

    def upload_part(self, *args, **kwargs):
        etag = super().upload_part(*args, **kwargs)
        if not self.edited:
            self.edited = True
            self.edit(self.path)
        return etag


def _rewrite_same_size(path):
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))
    os.utime(path, ns=(time.time_ns(), time.time_ns() + 1_000_000))  # even on a coarse clock


def _truncate(path):
    os.truncate(path, 6 * MiB)


@pytest.mark.parametrize("edit", [_rewrite_same_size, _truncate], ids=["rewritten", "truncated"])
def test_a_file_changed_during_a_single_pass_upload_is_not_stored(seaweedfs, s3_bucket, tmp_path, edit):
    root = tmp_path / "nb"
    path = write(root, "large.bin", os.urandom(12 * MiB))
    config = make_config(seaweedfs, s3_bucket, multipart_threshold=5 * MiB, multipart_chunksize=5 * MiB, concurrency=1, multipart_single_pass=True)
    store = EditingStore(s3_bucket, endpoint_url=seaweedfs.url, path=path, edit=edit)
    result = run(SyncEngine(config, root, USER, store=store))
    assert store.edited and result["uploaded"] == 0
    assert [e["path"] for e in result["errors"]] == ["large.bin"] and "changed while it was read" in result["errors"][0]["message"]
    assert remote_objects(seaweedfs, s3_bucket) == {}
    assert store.pending_multipart(f"users/{USER}/") == []
    result = run(SyncEngine(config, root, USER))  # the next sync sends the new content
    assert result["uploaded"] == 1 and remote_bytes(seaweedfs, s3_bucket, "large.bin") == path.read_bytes()


class RacedStore(S3Store):
    """The real store; another writer replaces the object right after this upload completes."""

    def __init__(self, *args, other_writer, **kwargs):
        super().__init__(*args, **kwargs)
        self.other_writer = other_writer

    def complete_multipart(self, key, *args, **kwargs):
        etag = super().complete_multipart(key, *args, **kwargs)
        self.other_writer(key)
        return etag


def test_an_object_replaced_before_its_md5_is_attached_keeps_the_other_writers_content(seaweedfs, s3_bucket, tmp_path):
    root = tmp_path / "nb"
    write(root, "large.bin", os.urandom(6 * MiB))
    config = make_config(seaweedfs, s3_bucket, multipart_threshold=5 * MiB, multipart_chunksize=5 * MiB, multipart_single_pass=True)
    client = seaweedfs.client()
    store = RacedStore(
        s3_bucket, endpoint_url=seaweedfs.url, other_writer=lambda key: client.put_object(Bucket=s3_bucket, Key=key, Body=b"theirs")
    )
    result = run(SyncEngine(config, root, USER, store=store))
    assert result["uploaded"] == 0 and "another writer replaced" in result["errors"][0]["message"]
    head = client.head_object(Bucket=s3_bucket, Key=f"users/{USER}/large.bin")
    assert "md5" not in head["Metadata"] and remote_bytes(seaweedfs, s3_bucket, "large.bin") == b"theirs"


def test_restore_into_an_empty_directory_reproduces_the_tree(seaweedfs, s3_bucket, tree, tmp_path):
    root, files = tree
    config = make_config(seaweedfs, s3_bucket)
    run(SyncEngine(config, root, USER))
    fresh = tmp_path / "fresh-node"
    result = run(SyncEngine(config, fresh, USER), "restore")
    assert result["state"] == "done" and result["downloaded"] == len(files)
    restored = {str(p.relative_to(fresh)): p.read_bytes() for p in fresh.rglob("*") if p.is_file() and ".hybrid-sync" not in p.parts}
    assert restored == files
    assert not list(fresh.rglob("*.hybrid-restore"))  # no temporary file left behind
    again = run(SyncEngine(config, fresh, USER), "restore")
    assert (again["downloaded"], again["skipped"]) == (0, len(files))


def test_restore_never_silently_overwrites_a_newer_local_file(seaweedfs, s3_bucket, tmp_path):
    config = make_config(seaweedfs, s3_bucket)
    laptop, node = tmp_path / "laptop", tmp_path / "node"
    write(laptop, "paper.ipynb", b"version from the bucket")
    run(SyncEngine(config, laptop, USER))
    write(node, "paper.ipynb", b"unsynced local work!")
    result = run(SyncEngine(config, node, USER), "restore")
    assert result["conflicts"] == ["paper.ipynb"] and result["downloaded"] == 0
    assert (node / "paper.ipynb").read_bytes() == b"unsynced local work!"
    result = run(SyncEngine(config, node, USER), "restore", overwrite=True)
    assert result["downloaded"] == 1 and (node / "paper.ipynb").read_bytes() == b"version from the bucket"


def test_restore_keeps_a_file_the_user_saved_while_it_downloaded(seaweedfs, s3_bucket, tmp_path):
    config = make_config(seaweedfs, s3_bucket)
    source, node = tmp_path / "source", tmp_path / "node"
    write(source, "draft.ipynb", b"bucket version")
    run(SyncEngine(config, source, USER))

    class UserSavesDuringDownload(S3Store):
        def get(self, key):
            response = super().get(key)
            write(node, "draft.ipynb", b"saved by the user meanwhile")
            return response

    store = UserSavesDuringDownload(s3_bucket, endpoint_url=seaweedfs.url)
    result = run(SyncEngine(config, node, USER, store=store), "restore")
    assert result["conflicts"] == ["draft.ipynb"] and result["downloaded"] == 0
    assert (node / "draft.ipynb").read_bytes() == b"saved by the user meanwhile"
    assert [p.name for p in node.iterdir() if p.name != ".hybrid-sync"] == ["draft.ipynb"]  # the downloaded copy was discarded


def test_sync_does_not_overwrite_a_remote_file_replaced_elsewhere(seaweedfs, s3_bucket, tmp_path):
    config = make_config(seaweedfs, s3_bucket)
    a, b = tmp_path / "a", tmp_path / "b"
    write(a, "shared.ipynb", b"first version")
    run(SyncEngine(config, a, USER))
    run(SyncEngine(config, b, USER), "restore")
    (b / "shared.ipynb").write_bytes(b"second version, from b")
    run(SyncEngine(config, b, USER))
    result = run(SyncEngine(config, a, USER))  # a never touched its copy since its last sync
    assert result["conflicts"] == ["shared.ipynb"] and result["uploaded"] == 0
    assert remote_bytes(seaweedfs, s3_bucket, "shared.ipynb") == b"second version, from b"


def test_remote_keys_that_would_escape_the_root_are_not_restored(moto_server, aws_env, tmp_path):
    # SeaweedFS normalizes keys like a file system; moto keeps them verbatim, as AWS does.
    import boto3

    client = boto3.client("s3", endpoint_url=moto_server.url, region_name="us-east-1")
    client.create_bucket(Bucket="escape-test")
    for key in (f"users/{USER}/../bob/steal.txt", f"users/{USER}//abs.txt", f"users/{USER}/ok.txt"):
        client.put_object(Bucket="escape-test", Key=key, Body=b"x")
    fresh = tmp_path / "home" / "fresh"
    config = BucketSync(bucket="escape-test", endpoint_url=moto_server.url)
    result = run(SyncEngine(config, fresh, USER), "restore")
    assert result["downloaded"] == 1
    assert sorted(e["path"] for e in result["errors"]) == [f"users/{USER}/../bob/steal.txt", f"users/{USER}//abs.txt"]
    assert sorted(p.name for p in fresh.iterdir() if p.name != ".hybrid-sync") == ["ok.txt"]
    assert not (tmp_path / "home" / "bob").exists()


# -- bad input: a clear error, nothing changed -----------------------------------------------------


def seeded(seaweedfs, bucket, tmp_path):
    root = tmp_path / "nb"
    write(root, "remote-only-after-delete.ipynb", b"precious")
    run(SyncEngine(make_config(seaweedfs, bucket), root, USER))
    (root / "remote-only-after-delete.ipynb").unlink()
    write(root, "new.ipynb", b"new")
    return root


def test_missing_bucket_is_a_clear_error(seaweedfs, s3_env, tmp_path):
    write(tmp_path, "nb.ipynb", b"x")
    result = run(SyncEngine(make_config(seaweedfs, "no-such-bucket-here"), tmp_path, USER), delete=True)
    assert (result["state"], result["reason"]) == ("error", "no-such-bucket")
    assert "no-such-bucket-here" in result["message"] and "does not exist" in result["message"]
    assert result["uploaded"] == result["deleted"] == 0


def test_denied_access_is_a_clear_error_and_deletes_nothing(seaweedfs, s3_bucket, tmp_path, monkeypatch):
    root = seeded(seaweedfs, s3_bucket, tmp_path)
    for name, value in READER_CREDENTIALS.items():
        monkeypatch.setenv(name, value)  # may list and read, not write
    result = run(SyncEngine(make_config(seaweedfs, s3_bucket), root, USER), delete=True)
    assert (result["state"], result["reason"]) == ("error", "access-denied")
    assert "access denied" in result["message"]
    assert sorted(remote_objects(seaweedfs, s3_bucket)) == ["remote-only-after-delete.ipynb"]


def test_wrong_credentials_are_a_clear_error_without_the_secret(seaweedfs, s3_bucket, tmp_path, monkeypatch):
    root = seeded(seaweedfs, s3_bucket, tmp_path)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wrong-secret-value")
    result = run(SyncEngine(make_config(seaweedfs, s3_bucket), root, USER), delete=True)
    assert (result["state"], result["reason"]) == ("error", "bad-credentials")
    assert "wrong-secret-value" not in str(result)
    assert sorted(remote_objects(seaweedfs, s3_bucket)) == ["remote-only-after-delete.ipynb"]


def test_unreachable_endpoint_is_a_clear_error(s3_env, tmp_path):
    write(tmp_path, "nb.ipynb", b"x")
    config = BucketSync(bucket="any-bucket", endpoint_url=f"http://127.0.0.1:{free_port()}", max_attempts=2)
    started = time.monotonic()
    result = run(SyncEngine(config, tmp_path, USER))
    assert (result["state"], result["reason"]) == ("error", "unreachable")
    assert "cannot reach the S3 endpoint" in result["message"]
    assert time.monotonic() - started < 30


# -- the command line ---------------------------------------------------------------------------------


def test_command_line_sync_and_restore(seaweedfs, s3_bucket, tree, tmp_path):
    root, files = tree
    env = child_env({**seaweedfs.client_env, "AWS_EC2_METADATA_DISABLED": "true", "HYBRID_SYNC_BUCKET": s3_bucket})
    cli = str(venv_bin_dir() / "jupyter-hybrid-sync")
    out = subprocess.run([cli, "--root", str(root), "--user", USER, "--exclude", "*.tmp"], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert f"{len(files)} uploaded" in out.stdout
    fresh = tmp_path / "cli-restore"
    out = subprocess.run([cli, "--root", str(fresh), "--user", USER, "--restore", "--json"], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert '"downloaded": %d' % len(files) in out.stdout
    out = subprocess.run([cli, "--root", str(root), "--user", USER, "../escape"], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 2 and "leaves the notebook root" in out.stderr
    env.pop("HYBRID_SYNC_BUCKET")
    out = subprocess.run([cli, "--root", str(root)], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 2 and "HYBRID_SYNC_BUCKET" in out.stderr
