"""The sync and restore planners: pure functions of local listing, remote listing and manifest."""

import pytest

from voila_publisher.sync.hashing import etag_is_digest, md5_hex, multipart_etag
from voila_publisher.sync.listing import LocalFile
from voila_publisher.sync.manifest import UNSETTLED, ManifestEntry
from voila_publisher.sync.plan import (
    RemoteObject,
    files_to_hash,
    objects_to_confirm,
    objects_to_inspect,
    plan_restore,
    plan_sync,
    remote_view,
)

A = md5_hex(b"version A")
B = md5_hex(b"version B")  # same length as A: a same-size edit
MULTI = multipart_etag([b"\x01" * 16, b"\x02" * 16])


def test_new_file_is_uploaded_without_hashing():
    local = {"nb.ipynb": LocalFile(9, 100)}
    assert files_to_hash(local, {}, {}) == []
    plan = plan_sync(local, {}, {}, {})
    assert plan.transfer == ["nb.ipynb"] and plan.skip == []


def test_unchanged_file_vouched_by_manifest_is_skipped_without_hashing():
    local = {"nb.ipynb": LocalFile(9, 100)}
    remote = {"nb.ipynb": RemoteObject(9, A)}
    manifest = {"nb.ipynb": ManifestEntry(9, 100, A, A)}
    assert files_to_hash(local, remote, manifest) == []
    plan = plan_sync(local, remote, manifest, {})
    assert plan.skip == ["nb.ipynb"] and plan.transfer == [] and plan.learned == {}


def test_same_size_edit_is_uploaded():
    local = {"nb.ipynb": LocalFile(9, 200)}  # mtime moved on, size identical
    remote = {"nb.ipynb": RemoteObject(9, A)}
    manifest = {"nb.ipynb": ManifestEntry(9, 100, A, A)}
    assert files_to_hash(local, remote, manifest) == ["nb.ipynb"]
    plan = plan_sync(local, remote, manifest, {"nb.ipynb": B})
    assert plan.transfer == ["nb.ipynb"]


def test_same_size_edit_with_older_mtime_and_no_manifest_is_uploaded():
    # The blind spot of size+time tools: the edit carries an older timestamp.
    local = {"nb.ipynb": LocalFile(9, 1)}
    remote = {"nb.ipynb": RemoteObject(9, A)}
    plan = plan_sync(local, remote, {}, {"nb.ipynb": B})
    assert plan.transfer == ["nb.ipynb"]


def test_touched_but_identical_file_is_skipped_and_learned():
    local = {"nb.ipynb": LocalFile(9, 300)}
    remote = {"nb.ipynb": RemoteObject(9, A)}
    manifest = {"nb.ipynb": ManifestEntry(9, 100, A, A)}
    plan = plan_sync(local, remote, manifest, {"nb.ipynb": A})
    assert plan.skip == ["nb.ipynb"]
    assert plan.learned == {"nb.ipynb": ManifestEntry(9, 300, A, A)}


def test_size_change_needs_no_hash():
    local = {"nb.ipynb": LocalFile(10, 300)}
    remote = {"nb.ipynb": RemoteObject(9, A)}
    assert files_to_hash(local, remote, {}) == []
    assert plan_sync(local, remote, {}, {}).transfer == ["nb.ipynb"]


def test_multipart_object_compared_through_manifest_etag():
    local = {"big.bin": LocalFile(50, 100)}
    remote = {"big.bin": RemoteObject(50, MULTI)}
    manifest = {"big.bin": ManifestEntry(50, 100, A, MULTI)}
    assert objects_to_inspect(local, remote, manifest) == []
    assert plan_sync(local, remote, manifest, {}).skip == ["big.bin"]


def test_foreign_multipart_object_needs_its_metadata_and_then_compares_by_content():
    local = {"big.bin": LocalFile(50, 100)}
    remote = {"big.bin": RemoteObject(50, MULTI)}
    assert objects_to_inspect(local, remote, {}) == ["big.bin"]
    # Metadata unreadable: unknown content is uploaded, never assumed equal.
    assert plan_sync(local, remote, {}, {"big.bin": A}).transfer == ["big.bin"]
    # Metadata says the same MD5: skipped.
    resolved = {"big.bin": RemoteObject(50, MULTI, md5=A)}
    assert plan_sync(local, resolved, {}, {"big.bin": A}).skip == ["big.bin"]


def test_local_delete_is_not_propagated_unless_asked():
    remote = {"gone.ipynb": RemoteObject(3, A), "kept.ipynb": RemoteObject(9, A)}
    local = {"kept.ipynb": LocalFile(9, 1)}
    manifest = {"kept.ipynb": ManifestEntry(9, 1, A, A)}
    assert plan_sync(local, remote, manifest, {}).delete == []
    assert plan_sync(local, remote, manifest, {}, delete=True).delete == ["gone.ipynb"]


def test_incomplete_local_listing_never_deletes():
    remote = {"unreadable/x.ipynb": RemoteObject(3, A)}
    assert plan_sync({}, remote, {}, {}, delete=True, listing_complete=False).delete == []


def test_remote_replaced_since_last_sync_is_a_conflict_not_an_overwrite():
    local = {"nb.ipynb": LocalFile(9, 100)}  # untouched here since the last sync
    remote = {"nb.ipynb": RemoteObject(9, B)}  # someone else uploaded B
    manifest = {"nb.ipynb": ManifestEntry(9, 100, A, A)}
    plan = plan_sync(local, remote, manifest, {})
    assert plan.conflicts == ["nb.ipynb"] and plan.transfer == []


def test_too_large_files_are_reported_not_uploaded():
    plan = plan_sync({"huge.bin": LocalFile(100, 1)}, {}, {}, {}, max_file_size=99)
    assert plan.too_large == ["huge.bin"] and plan.transfer == []


def test_restore_downloads_missing_and_skips_identical():
    remote = {"a.ipynb": RemoteObject(9, A), "b.ipynb": RemoteObject(9, A)}
    local = {"b.ipynb": LocalFile(9, 5)}
    plan = plan_restore(local, remote, {}, {"b.ipynb": A})
    assert plan.transfer == ["a.ipynb"] and plan.skip == ["b.ipynb"]


def test_restore_never_overwrites_a_locally_changed_file():
    remote = {"nb.ipynb": RemoteObject(9, B)}
    local = {"nb.ipynb": LocalFile(9, 500)}  # edited here after the last sync
    manifest = {"nb.ipynb": ManifestEntry(9, 100, A, A)}
    plan = plan_restore(local, remote, manifest, {"nb.ipynb": A.replace("a", "c")})
    assert plan.conflicts == ["nb.ipynb"] and plan.transfer == []
    assert plan_restore(local, remote, manifest, {"nb.ipynb": "0" * 32}, overwrite=True).transfer == ["nb.ipynb"]


def test_restore_without_manifest_treats_a_differing_local_file_as_conflict():
    plan = plan_restore({"nb.ipynb": LocalFile(9, 1)}, {"nb.ipynb": RemoteObject(9, B)}, {}, {"nb.ipynb": A})
    assert plan.conflicts == ["nb.ipynb"]


def test_restore_replaces_a_file_untouched_since_the_last_sync():
    remote = {"nb.ipynb": RemoteObject(9, B)}
    local = {"nb.ipynb": LocalFile(9, 100)}
    manifest = {"nb.ipynb": ManifestEntry(9, 100, A, A)}
    assert plan_restore(local, remote, manifest, {}).transfer == ["nb.ipynb"]


def test_remote_view_maps_prefix_drops_excluded_and_unsafe_keys():
    objects = {
        "users/ana/nb.ipynb": RemoteObject(1, A),
        "users/ana/dir/": RemoteObject(0, A),
        "users/ana/.ipynb_checkpoints/nb-checkpoint.ipynb": RemoteObject(1, A),
        "users/ana/../bob/secret": RemoteObject(1, A),
        "users/ana//abs": RemoteObject(1, A),
        "users/anabel/other.ipynb": RemoteObject(1, A),
    }
    view = remote_view(objects, "users/ana/", [".ipynb_checkpoints", ".*"])
    assert list(view.objects) == ["nb.ipynb"]
    assert sorted(view.unsafe_keys) == ["users/ana/../bob/secret", "users/ana//abs"]


def test_remote_view_selection():
    objects = {"p/a/x": RemoteObject(1, A), "p/b/y": RemoteObject(1, A), "p/ab": RemoteObject(1, A)}
    assert list(remote_view(objects, "p/", [], ["a"]).objects) == ["a/x"]


# -- the stat that vouches: size, mtime, change time, inode (issue 16, item 2) ---------------------

SYNCED = LocalFile(9, 100, 500, 42)
ENTRY = ManifestEntry(9, 100, A, A, 500, 42)


@pytest.mark.parametrize(
    "now",
    [LocalFile(9, 100, 501, 42), LocalFile(9, 100, 500, 43), LocalFile(9, 100, 501, 43)],
    ids=["change-time-moved (edit, mtime set back)", "other-inode (renamed over)", "both"],
)
def test_a_file_whose_mtime_was_set_back_is_hashed_and_its_edit_uploaded(now):
    remote = {"nb.ipynb": RemoteObject(9, A)}
    manifest = {"nb.ipynb": ENTRY}
    assert files_to_hash({"nb.ipynb": SYNCED}, remote, manifest) == []
    assert files_to_hash({"nb.ipynb": now}, remote, manifest) == ["nb.ipynb"]
    plan = plan_sync({"nb.ipynb": now}, remote, manifest, {"nb.ipynb": B})
    assert plan.transfer == ["nb.ipynb"] and plan.conflicts == []


def test_restore_does_not_overwrite_a_local_edit_whose_mtime_was_set_back():
    now = LocalFile(9, 100, 777, 42)  # same size and mtime as synced; content B
    remote = {"nb.ipynb": RemoteObject(9, md5_hex(b"version C"))}  # replaced elsewhere too
    plan = plan_restore({"nb.ipynb": now}, remote, {"nb.ipynb": ENTRY}, {"nb.ipynb": B})
    assert plan.conflicts == ["nb.ipynb"] and plan.transfer == []


def test_an_unsettled_entry_never_vouches_but_its_md5_still_proves_the_file_untouched():
    unsettled = ManifestEntry(9, 100, A, A, UNSETTLED, 42)
    remote = {"nb.ipynb": RemoteObject(20, B)}  # replaced elsewhere, another size
    local = {"nb.ipynb": LocalFile(9, 100, 500, 42)}  # as synced, but synced within a timestamp step
    assert files_to_hash(local, remote, {"nb.ipynb": unsettled}) == ["nb.ipynb"]
    sync = plan_sync(local, remote, {"nb.ipynb": unsettled}, {"nb.ipynb": A})
    assert sync.conflicts == ["nb.ipynb"] and sync.transfer == []  # the bucket's copy is newer
    restore = plan_restore(local, remote, {"nb.ipynb": unsettled}, {"nb.ipynb": A})
    assert restore.transfer == ["nb.ipynb"]


# -- ETags that are not MD5s (SSE-KMS, SSE-C; issue 16, item 7) --------------------------------------

KMS_ETAG = md5_hex(b"an opaque SSE-KMS etag")  # 32 hex digits, but not the content's MD5


def test_the_manifest_knows_the_md5_behind_its_own_kms_etag():
    remote = {"nb.ipynb": RemoteObject(9, KMS_ETAG)}
    manifest = {"nb.ipynb": ManifestEntry(9, 100, A, KMS_ETAG, 500, 42)}
    plan = plan_sync({"nb.ipynb": SYNCED}, remote, manifest, {})
    assert plan.skip == ["nb.ipynb"] and plan.transfer == []
    # the same file edited (stat moved): hashed, differs from what the manifest knows, uploaded
    edited = LocalFile(9, 100, 600, 42)
    assert plan_sync({"nb.ipynb": edited}, remote, manifest, {"nb.ipynb": B}).transfer == ["nb.ipynb"]
    # hashed and the same after all (a touch): skipped, and remembered with the new stat
    touched = plan_sync({"nb.ipynb": edited}, remote, manifest, {"nb.ipynb": A})
    assert touched.skip == ["nb.ipynb"] and touched.learned["nb.ipynb"].ctime_ns == 600


def test_a_plain_looking_etag_that_differs_from_the_content_is_confirmed_with_the_store():
    local = {"nb.ipynb": SYNCED, "same.ipynb": SYNCED, "known.ipynb": SYNCED}
    remote = {"nb.ipynb": RemoteObject(9, KMS_ETAG), "same.ipynb": RemoteObject(9, A), "known.ipynb": RemoteObject(9, KMS_ETAG)}
    manifest = {"known.ipynb": ManifestEntry(9, 1, A, KMS_ETAG)}
    hashes = {"nb.ipynb": A, "same.ipynb": A, "known.ipynb": A}
    assert objects_to_confirm(local, remote, manifest, hashes) == ["nb.ipynb"]
    # the store said: stored MD5 A -> same content; no MD5 and not a digest -> unknown, so sent again
    confirmed = {"nb.ipynb": RemoteObject(9, KMS_ETAG, A)}
    assert plan_sync({"nb.ipynb": SYNCED}, confirmed, {}, {"nb.ipynb": A}).skip == ["nb.ipynb"]
    unknown = {"nb.ipynb": RemoteObject(9, KMS_ETAG, None, etag_not_md5=True)}
    assert plan_sync({"nb.ipynb": SYNCED}, unknown, {}, {"nb.ipynb": A}).transfer == ["nb.ipynb"]
    assert objects_to_confirm(local, unknown, {}, hashes) == []  # asked once, not again


def test_etag_is_digest_reads_the_encryption_of_the_response():
    assert etag_is_digest({}) and etag_is_digest({"x-amz-server-side-encryption": "AES256"})
    assert not etag_is_digest({"x-amz-server-side-encryption": "aws:kms"})
    assert not etag_is_digest({"x-amz-server-side-encryption": "aws:kms:dsse"})
    assert not etag_is_digest({"x-amz-server-side-encryption-customer-algorithm": "AES256"})
