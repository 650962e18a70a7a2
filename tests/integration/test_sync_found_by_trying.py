"""Issue 16, items 2 and 3, through `jupyter-hybrid-sync` against SeaweedFS.

2. A same-size edit whose mtime is set back to the nanosecond (tar -x, cp -p, rsync -t,
   touch -r) must still be uploaded, and restore must not take such a file for untouched.
3. A file whose name is 255 bytes long (the filesystem's limit) must restore.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time

import pytest

from simulators.processes import child_env, venv_bin_dir
from voila_publisher.sync.manifest import RACY_WINDOW_NS

pytestmark = pytest.mark.integration
USER = "ana"


@pytest.fixture
def cli(seaweedfs, s3_bucket):
    env = child_env({**seaweedfs.client_env, "AWS_EC2_METADATA_DISABLED": "true", "HYBRID_SYNC_BUCKET": s3_bucket})

    def run(root, *args) -> dict:
        out = subprocess.run(
            [str(venv_bin_dir() / "jupyter-hybrid-sync"), "--root", str(root), "--user", USER, "--json", *args],
            env=env, capture_output=True, text=True, timeout=120,
        )
        assert out.stdout.strip(), out.stderr
        return json.loads(out.stdout)

    return run


def remote_bytes(seaweedfs, bucket, rel) -> bytes:
    return seaweedfs.client().get_object(Bucket=bucket, Key=f"users/{USER}/{rel}")["Body"].read()


def settle():
    """Let the timestamp step pass, so that the next sync's manifest entries vouch for the files."""
    time.sleep(RACY_WINDOW_NS / 1e9 + 0.1)


def edit_keeping_mtime_in_place(path, data):
    """Write new content into the same inode, then `touch -r` the old mtime back."""
    reference = path.with_name(".reference")
    shutil.copy2(path, reference)  # cp -p: keeps the mtime to the nanosecond
    path.write_bytes(data)
    subprocess.run(["touch", "-r", str(reference), str(path)], check=True)
    reference.unlink()


def edit_keeping_mtime_by_rename(path, data):
    """What tar -x and rsync -t do: a new file with the old mtime, renamed over the old one."""
    fresh = path.with_name(".incoming")
    fresh.write_bytes(data)
    st = path.stat()
    os.utime(fresh, ns=(st.st_atime_ns, st.st_mtime_ns))
    os.replace(fresh, path)


@pytest.mark.parametrize("edit", [edit_keeping_mtime_in_place, edit_keeping_mtime_by_rename], ids=["in-place", "renamed-over"])
def test_a_same_size_edit_with_its_mtime_set_back_is_uploaded(cli, seaweedfs, s3_bucket, tmp_path, edit):
    root = tmp_path / "nb"
    root.mkdir()
    path = root / "model.ipynb"
    path.write_bytes(b"weights = 1111")
    (root / "other.ipynb").write_bytes(b"alpha = 0.1")
    settle()
    assert cli(root)["uploaded"] == 2
    quiet = cli(root)  # the manifest vouches for both files now: nothing to do
    assert (quiet["uploaded"], quiet["skipped"]) == (0, 2)
    before = path.stat()

    edit(path, b"weights = 2222")
    after = path.stat()
    assert (after.st_size, after.st_mtime_ns) == (before.st_size, before.st_mtime_ns)  # size+mtime can't tell

    result = cli(root)
    assert (result["state"], result["uploaded"], result["skipped"]) == ("done", 1, 1), result
    assert remote_bytes(seaweedfs, s3_bucket, "model.ipynb") == b"weights = 2222"


def test_restore_keeps_a_same_size_local_edit_with_its_mtime_set_back(cli, seaweedfs, s3_bucket, tmp_path):
    """The bucket's copy changed (another node) and so did the local one, with its mtime set back:
    restore must see the local edit and report a conflict, not overwrite it."""
    node, laptop = tmp_path / "node", tmp_path / "laptop"
    node.mkdir()
    path = node / "paper.ipynb"
    path.write_bytes(b"draft 1 of the paper")
    settle()
    assert cli(node)["uploaded"] == 1
    assert cli(laptop, "--restore")["downloaded"] == 1
    (laptop / "paper.ipynb").write_bytes(b"draft 2 from laptop!")  # same size, from elsewhere
    assert cli(laptop)["uploaded"] == 1

    edit_keeping_mtime_in_place(path, b"local unsynced work!")
    result = cli(node, "--restore")
    assert (result["downloaded"], result["conflicts"]) == (0, ["paper.ipynb"]), result
    assert path.read_bytes() == b"local unsynced work!"


def test_a_file_untouched_since_its_sync_is_still_replaced_by_a_newer_bucket_copy(cli, tmp_path):
    """The other side of the decision: a local copy still as synced yields to the bucket's newer one,
    even when it was synced within a timestamp step (its manifest entry unsettled)."""
    node, laptop = tmp_path / "node", tmp_path / "laptop"
    node.mkdir()
    (node / "paper.ipynb").write_bytes(b"draft 1 of the paper")
    assert cli(node)["uploaded"] == 1
    assert cli(laptop, "--restore")["downloaded"] == 1
    (laptop / "paper.ipynb").write_bytes(b"draft 2, longer, from the laptop")
    assert cli(laptop)["uploaded"] == 1
    result = cli(node, "--restore")
    assert (result["downloaded"], result["conflicts"]) == (1, []), result
    assert (node / "paper.ipynb").read_bytes() == b"draft 2, longer, from the laptop"
    # and a sync from the node before that restore would have been a conflict, not an overwrite
    (laptop / "paper.ipynb").write_bytes(b"draft 3")
    assert cli(laptop)["uploaded"] == 1
    result = cli(node)
    assert (result["uploaded"], result["conflicts"]) == (0, ["paper.ipynb"]), result


def name_of_255_bytes(stem: str, suffix: str = ".ipynb") -> str:
    unit = stem.encode()
    room = 255 - len(suffix.encode())
    name = (stem * (room // len(unit) + 1)).encode()[:room].decode(errors="ignore")
    name = name + "x" * (room - len(name.encode()))
    return name + suffix


@pytest.mark.parametrize("stem", ["n", "é"], ids=["ascii", "two-byte-utf8"])
def test_a_file_with_a_255_byte_name_restores(cli, seaweedfs, s3_bucket, tmp_path, stem):
    root = tmp_path / "nb"
    name = name_of_255_bytes(stem)
    assert len(name.encode()) == 255
    (root / "deep").mkdir(parents=True)
    (root / "deep" / name).write_bytes(b"a notebook with a very long name")
    assert cli(root)["uploaded"] == 1

    (root / "deep" / name).unlink()
    result = cli(root, "--restore")
    assert (result["state"], result["downloaded"], result["errors"]) == ("done", 1, []), result
    assert (root / "deep" / name).read_bytes() == b"a notebook with a very long name"

    (root / "deep" / name).write_bytes(b"changed locally")  # replacing an existing file, too
    result = cli(root, "--restore", "--overwrite")
    assert (result["state"], result["downloaded"]) == ("done", 1), result
    assert (root / "deep" / name).read_bytes() == b"a notebook with a very long name"
    assert sorted(p.name for p in (root / "deep").iterdir()) == [name]  # no temporary file left
