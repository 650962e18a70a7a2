"""Local side of the sync: listing, excludes, path safety, hashing, manifest, configuration."""

import hashlib
import json
import os
import time

import pytest

from voila_publisher.sync.hashing import file_md5, multipart_etag, part_plan, range_md5, read_parts
from voila_publisher.paths import PathOutsideRoot, normalize_relpath
from voila_publisher.sync.listing import LocalFile, is_excluded, list_local, resolve_selection
from voila_publisher.sync.manifest import RACY_WINDOW_NS, UNSETTLED, Manifest, ManifestEntry, manifest_path
from voila_publisher.sync.config import DEFAULT_EXCLUDES, BucketSync


def write(path, data=b"x"):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def test_listing_excludes_checkpoints_hidden_pycache_and_globs(tmp_path):
    write(tmp_path / "nb.ipynb")
    write(tmp_path / "sub dir" / "données.csv")
    write(tmp_path / ".ipynb_checkpoints" / "nb-checkpoint.ipynb")
    write(tmp_path / "sub dir" / ".ipynb_checkpoints" / "x.ipynb")
    write(tmp_path / ".hidden")
    write(tmp_path / ".config" / "secret")
    write(tmp_path / "pkg" / "__pycache__" / "m.cpython-311.pyc")
    write(tmp_path / "big.tmp")
    write(tmp_path / "scratch" / "run1" / "out.txt")
    listing = list_local(tmp_path, DEFAULT_EXCLUDES + ["*.tmp", "scratch/run1"])
    assert sorted(listing.files) == ["nb.ipynb", "sub dir/données.csv"]
    assert listing.errors == []


def test_listing_never_follows_a_symlink_out_of_the_root(tmp_path):
    root = tmp_path / "root"
    outside = tmp_path / "outside"
    write(outside / "secret.txt", b"secret")
    write(root / "inside.txt", b"ok")
    os.symlink(outside, root / "link-dir")
    os.symlink(outside / "secret.txt", root / "link-file")
    os.symlink(root / "inside.txt", root / "alias.txt")  # a link inside the root is fine
    os.symlink(root, root / "loop")  # a loop back into the root is walked once
    listing = list_local(root, DEFAULT_EXCLUDES)
    assert sorted(listing.files) == ["alias.txt", "inside.txt"]


def test_listing_reports_unreadable_directories(tmp_path, monkeypatch):
    # Tests run as root, which reads every directory: make one unreadable the way EACCES looks.
    write(tmp_path / "locked" / "x")
    write(tmp_path / "open" / "y")
    real_scandir = os.scandir

    def scandir(path):
        if str(path).endswith("locked"):
            raise PermissionError(13, "Permission denied")
        return real_scandir(path)

    monkeypatch.setattr("voila_publisher.sync.listing.os.scandir", scandir)
    listing = list_local(tmp_path, [])
    assert listing.errors == [("locked", "Permission denied")]
    assert list(listing.files) == ["open/y"]


def test_listing_of_a_selection(tmp_path):
    write(tmp_path / "a" / "x.ipynb")
    write(tmp_path / "b" / "y.ipynb")
    write(tmp_path / "c.ipynb")
    assert sorted(list_local(tmp_path, [], ["a", "c.ipynb"]).files) == ["a/x.ipynb", "c.ipynb"]
    assert list_local(tmp_path, [], ["missing"]).files == {}


@pytest.mark.parametrize("bad", ["../x", "/etc/passwd", "a/../../x", "..", "C:\\x", "a\x00b"])
def test_paths_outside_the_root_are_refused(tmp_path, bad):
    with pytest.raises(PathOutsideRoot):
        resolve_selection(tmp_path, [bad])


def test_a_path_through_a_link_out_of_the_root_is_refused(tmp_path):
    root = tmp_path / "root"
    root.mkdir()
    (tmp_path / "out").mkdir()
    os.symlink(tmp_path / "out", root / "escape")
    with pytest.raises(PathOutsideRoot):
        resolve_selection(root, ["escape/x"])


def test_selection_normalizes(tmp_path):
    assert resolve_selection(tmp_path, ["a/./b/", "c/../d"]) == ["a/b", "d"]
    assert resolve_selection(tmp_path, ["."]) is None
    assert normalize_relpath("") == ""


def test_excludes_match_components_and_paths():
    assert is_excluded("a/.git/config", [".*"])
    assert is_excluded("x/__pycache__/m.pyc", ["__pycache__"])
    assert is_excluded("data/raw/big.h5", ["data/raw"])
    assert not is_excluded("data/rawer/big.h5", ["data/raw"])
    assert not is_excluded("notebook.ipynb", DEFAULT_EXCLUDES)


def test_part_digests_give_the_multipart_etag(tmp_path):
    data = os.urandom(2 * 1024 * 1024 + 123)
    path = tmp_path / "f"
    path.write_bytes(data)
    parts = [range_md5(path, offset, 2**20) for offset in range(0, len(data), 2**20)]
    assert file_md5(path) == hashlib.md5(data).hexdigest() and len(parts) == 3
    expected = hashlib.md5(b"".join(hashlib.md5(data[i : i + 2**20]).digest() for i in range(0, len(data), 2**20))).hexdigest()
    assert multipart_etag(parts) == f"{expected}-3"


def test_manifest_round_trip_and_corrupt_file(tmp_path):
    path = manifest_path(tmp_path, "http://s3", "bucket", "users/ana/")
    assert path != manifest_path(tmp_path, "http://s3", "bucket", "users/bob/")
    manifest = Manifest.load(path)
    assert manifest.entries == {}
    manifest.record("nb.ipynb", ManifestEntry(1, 2, "m", "e"))
    manifest.save()
    assert Manifest.load(path).entries == {"nb.ipynb": ManifestEntry(1, 2, "m", "e")}
    path.write_text("{not json")
    assert Manifest.load(path).entries == {}


def test_config_defaults_come_from_the_contract_environment(monkeypatch):
    monkeypatch.setenv("HYBRID_SYNC_BUCKET", "team-notebooks")
    monkeypatch.setenv("HYBRID_SYNC_PREFIX", "people/{username}")
    monkeypatch.setenv("HYBRID_S3_ENDPOINT_URL", "http://rgw:8080")
    monkeypatch.setenv("HYBRID_S3_REGION", "eu-west-1")
    config = BucketSync()
    assert (config.bucket, config.endpoint_url, config.region) == ("team-notebooks", "http://rgw:8080", "eu-west-1")
    assert config.prefix_for("ana") == "people/ana/"
    assert config.missing() is None
    assert config.periodic_interval == 0


def test_config_says_what_is_missing(monkeypatch):
    monkeypatch.delenv("HYBRID_SYNC_BUCKET", raising=False)
    assert "HYBRID_SYNC_BUCKET" in BucketSync().missing()


def test_part_plan_covers_the_file_once():
    assert part_plan(12, 5) == [(0, 5), (5, 5), (10, 2)]
    assert part_plan(10, 5) == [(0, 5), (5, 5)]
    assert part_plan(0, 5) == [(0, 0)]  # an empty file is one empty part


def test_read_parts_reads_the_planned_bytes_and_refuses_a_shrunken_file(tmp_path):
    path = tmp_path / "f"
    path.write_bytes(b"0123456789ab")
    with open(path, "rb") as f:
        assert list(read_parts(f, 12, 5)) == [b"01234", b"56789", b"ab"]
    with open(path, "rb") as f:
        assert list(read_parts(f, 10, 5)) == [b"01234", b"56789"]  # growth is the caller's stat check
    with open(path, "rb") as f, pytest.raises(EOFError):
        list(read_parts(f, 20, 5))


def test_manifest_keeps_the_whole_stat_and_leaves_racy_entries_unsettled(tmp_path):
    path = manifest_path(tmp_path, "http://s3", "bucket", "users/ana/")
    manifest = Manifest.load(path)
    old_ctime = time.time_ns() - 10 * RACY_WINDOW_NS
    manifest.record("old.ipynb", ManifestEntry(1, 2, "m", "e", old_ctime, 7))
    # changed within a timestamp step of this job: a same-size write in that step would keep
    # every stat value, so the entry must not vouch next time
    manifest.record("new.ipynb", ManifestEntry(1, 2, "m", "e", time.time_ns(), 8))
    manifest.save()
    entries = Manifest.load(path).entries
    assert entries["old.ipynb"] == ManifestEntry(1, 2, "m", "e", old_ctime, 7)
    assert entries["new.ipynb"] == ManifestEntry(1, 2, "m", "e", UNSETTLED, 8)


def test_a_version_1_manifest_keeps_its_md5s_but_vouches_for_nothing(tmp_path):
    path = manifest_path(tmp_path, "http://s3", "bucket", "users/ana/")
    path.write_text(json.dumps({"version": 1, "files": {"nb.ipynb": [9, 100, "m", "e"]}}))
    assert Manifest.load(path).entries == {"nb.ipynb": ManifestEntry(9, 100, "m", "e", UNSETTLED, 0)}


def test_local_listing_records_change_time_and_inode(tmp_path):
    (tmp_path / "nb.ipynb").write_bytes(b"x")
    st = os.stat(tmp_path / "nb.ipynb")
    assert list_local(tmp_path, []).files == {"nb.ipynb": LocalFile(st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino)}
