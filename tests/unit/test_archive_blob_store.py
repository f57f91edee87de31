"""The content-addressed blob store: layout, idempotence, immutability, streaming, audit."""

from __future__ import annotations

import hashlib
import os
import stat
import time
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.archive import BlobNotFound, BlobRef, BlobStore, BlobTooLarge, InvalidBlobHash
from gateway.archive import blob_store as blob_store_module


def test_put_stream_stores_bytes_under_their_sha256(blob_store: BlobStore) -> None:
    data = b"ISA*00*...~IEA*1*000000001~"
    ref = blob_store.put_stream([data[:10], data[10:]])
    digest = hashlib.sha256(data).hexdigest()
    assert ref == BlobRef(sha256=digest, size=len(data))
    path = blob_store.blob_dir / digest[:2] / digest[2:4] / digest
    assert path.read_bytes() == data
    assert blob_store.exists(digest)


def test_stored_blob_is_read_only(blob_store: BlobStore) -> None:
    ref = blob_store.put_bytes(b"immutable")
    mode = stat.S_IMODE(blob_store.path_for(ref.sha256).stat().st_mode)
    assert mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH) == 0


def test_storing_the_same_bytes_twice_is_idempotent(blob_store: BlobStore) -> None:
    first = blob_store.put_bytes(b"same")
    second = blob_store.put_stream([b"sa", b"me"])
    assert first == second
    assert list(blob_store.iter_hashes()) == [first.sha256]
    assert list(blob_store.tmp_dir.iterdir()) == []


def test_open_streams_the_bytes_back(blob_store: BlobStore) -> None:
    ref = blob_store.put_bytes(b"x" * 3000)
    assert b"".join(blob_store.iter_chunks(ref.sha256, chunk_size=1024)) == b"x" * 3000
    with blob_store.open(ref.sha256) as handle:
        assert handle.read(5) == b"xxxxx"


def test_opening_an_unknown_hash_raises_blob_not_found(blob_store: BlobStore) -> None:
    with pytest.raises(BlobNotFound):
        blob_store.open("0" * 64)


@pytest.mark.parametrize("bad", ["../../etc/passwd", "ABC", "g" * 64, "0" * 63])
def test_malformed_hashes_are_refused(blob_store: BlobStore, bad: str) -> None:
    with pytest.raises(InvalidBlobHash):
        blob_store.path_for(bad)


def test_stream_over_the_limit_is_refused_and_leaves_nothing(blob_store: BlobStore) -> None:
    with pytest.raises(BlobTooLarge):
        blob_store.put_stream([b"a" * 600, b"b" * 600], max_bytes=1000)
    assert list(blob_store.iter_hashes()) == []
    assert list(blob_store.tmp_dir.iterdir()) == []


def test_failed_stream_leaves_no_temporary_file(blob_store: BlobStore) -> None:
    def broken() -> Iterator[bytes]:
        yield b"partial"
        raise ConnectionError("client went away")

    with pytest.raises(ConnectionError):
        blob_store.put_stream(broken())
    assert list(blob_store.tmp_dir.iterdir()) == []


def test_verify_passes_for_intact_blobs(blob_store: BlobStore) -> None:
    refs = [blob_store.put_bytes(b"one"), blob_store.put_bytes(b"two")]
    assert blob_store.verify() == []
    assert blob_store.verify(refs) == []


def test_verify_reports_an_altered_blob(blob_store: BlobStore) -> None:
    ref = blob_store.put_bytes(b"original content")
    path = blob_store.path_for(ref.sha256)
    os.chmod(path, 0o644)
    path.write_bytes(b"tampered content")
    problems = blob_store.verify()
    assert [problem.sha256 for problem in problems] == [ref.sha256]
    assert "altered" in problems[0].reason


def test_verify_reports_a_missing_blob_and_a_wrong_size(blob_store: BlobStore) -> None:
    ref = blob_store.put_bytes(b"content")
    missing = BlobRef(sha256="a" * 64, size=1)
    wrong_size = BlobRef(sha256=ref.sha256, size=ref.size + 1)
    reasons = [problem.reason for problem in blob_store.verify([missing, wrong_size])]
    assert "missing" in reasons[0]
    assert "size" in reasons[1]


def test_large_stream_is_stored_with_bounded_memory(blob_store: BlobStore) -> None:
    chunk = os.urandom(1024 * 1024)
    total_chunks = 256  # 256 MiB

    def chunks() -> Iterator[bytes]:
        for _ in range(total_chunks):
            yield chunk

    expected = hashlib.sha256()
    for _ in range(total_chunks):
        expected.update(chunk)
    tracemalloc.start()
    try:
        ref = blob_store.put_stream(chunks())
        hashed = hashlib.sha256()
        for part in blob_store.iter_chunks(ref.sha256):
            hashed.update(part)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert ref == BlobRef(sha256=expected.hexdigest(), size=total_chunks * len(chunk))
    assert hashed.hexdigest() == ref.sha256
    assert peak < 16 * 1024 * 1024


def test_stale_temporary_files_from_crashed_writers_are_removed(blob_store: BlobStore) -> None:
    stale = blob_store.tmp_dir / "incoming-crashed"
    stale.write_bytes(b"half a message")
    os.utime(stale, (0, 0))
    fresh = blob_store.tmp_dir / "incoming-in-progress"
    fresh.write_bytes(b"being written")
    assert blob_store.remove_stale_temp_files(older_than_seconds=3600) == 1
    assert list(blob_store.tmp_dir.iterdir()) == [fresh]


def test_opening_the_archive_removes_a_crashed_writers_day_old_scraps(blob_store: BlobStore) -> None:
    stale = blob_store.tmp_dir / "incoming-crashed"
    stale.write_bytes(b"half a message")
    os.utime(stale, (time.time() - 25 * 3600,) * 2)
    fresh = blob_store.tmp_dir / "incoming-in-progress"
    fresh.write_bytes(b"being written")
    BlobStore(blob_store.root)
    assert list(blob_store.tmp_dir.iterdir()) == [fresh]


def test_put_many_stores_each_item_in_order_and_skips_known_content(blob_store: BlobStore) -> None:
    items = [b"one", b"two", b"one", b"three" * 100]
    refs = blob_store.put_many(items)
    assert [r.sha256 for r in refs] == [hashlib.sha256(i).hexdigest() for i in items]
    assert [r.size for r in refs] == [len(i) for i in items]
    for ref, item in zip(refs, items, strict=True):
        with blob_store.open(ref.sha256) as handle:
            assert handle.read() == item
    assert list(blob_store.tmp_dir.iterdir()) == []  # no temporary file left behind


def test_adopt_links_a_durable_file_into_the_archive_read_only(blob_store: BlobStore, tmp_path: Path) -> None:
    source = tmp_path / "spooled.x12"
    source.write_bytes(b"ISA*already fsynced")
    ref = BlobRef(hashlib.sha256(b"ISA*already fsynced").hexdigest(), 19)
    assert blob_store.adopt(source, ref) == ref
    stored = blob_store.path_for(ref.sha256)
    assert stored.read_bytes() == b"ISA*already fsynced" and os.stat(stored).st_ino == os.stat(source).st_ino
    assert not os.stat(stored).st_mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH)
    assert blob_store.adopt(source, ref) == ref  # known content: nothing to do


def _record_dir_syncs(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    synced: list[Path] = []
    real = blob_store_module._fsync_dir

    def recording(path: Path) -> None:
        synced.append(Path(path))
        real(path)

    monkeypatch.setattr(blob_store_module, "_fsync_dir", recording)
    return synced


@pytest.mark.parametrize("put", ["bytes", "stream", "adopt"])
def test_a_blob_is_made_durable_by_syncing_the_staging_folder_only(
    blob_store: BlobStore, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, put: str
) -> None:
    synced = _record_dir_syncs(monkeypatch)
    data = b"first blob under its prefix"
    if put == "adopt":
        (tmp_path / "spooled").write_bytes(data)
        ref = blob_store.adopt(tmp_path / "spooled", BlobRef(hashlib.sha256(data).hexdigest(), len(data)))
    else:
        ref = blob_store.put_bytes(data) if put == "bytes" else blob_store.put_stream([data])
    # Its staged name was durable before the rename; the new prefix directories need no sync.
    assert synced == [blob_store.tmp_dir]
    assert blob_store.path_for(ref.sha256).read_bytes() == data
    assert list(blob_store.tmp_dir.iterdir()) == []


def test_put_many_makes_a_batch_durable_with_one_directory_sync(
    blob_store: BlobStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    synced = _record_dir_syncs(monkeypatch)
    file_syncs: list[int] = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (file_syncs.append(fd), real_fsync(fd))[1])
    items = [f"blob {n}".encode() for n in range(10)]

    refs = blob_store.put_many(items)

    assert synced == [blob_store.tmp_dir]  # the staged names, all at once
    assert len(file_syncs) == len(items) + 1  # each blob's bytes, then the staging folder
    assert [blob_store.path_for(ref.sha256).read_bytes() for ref in refs] == items
    assert list(blob_store.tmp_dir.iterdir()) == []


def _crash_before_the_renames(monkeypatch: pytest.MonkeyPatch) -> None:
    """put_many returns (its blobs durable) but none reaches its place, as if the process died."""
    monkeypatch.setattr(blob_store_module, "_move_into_place", lambda staged, final: None)


def test_a_blob_left_staged_by_a_crash_is_read_and_moved_into_place(
    blob_store: BlobStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    with monkeypatch.context() as crash:
        _crash_before_the_renames(crash)
        [ref] = blob_store.put_many([b"ISA*staged when the power went"])
    assert not blob_store.path_for(ref.sha256).exists()

    assert blob_store.exists(ref.sha256)
    with blob_store.open(ref.sha256) as handle:
        assert handle.read() == b"ISA*staged when the power went"
    assert blob_store.check(ref) is None
    assert list(blob_store.tmp_dir.iterdir()) == []


def test_a_new_store_recovers_old_staged_blobs_and_drops_torn_ones(
    blob_store: BlobStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    with monkeypatch.context() as crash:
        _crash_before_the_renames(crash)
        intact, torn, young = blob_store.put_many([b"intact", b"torn", b"young"])
    staged = {path.name.split(".")[0]: path for path in blob_store.tmp_dir.iterdir()}
    os.chmod(staged[torn.sha256], 0o600)
    staged[torn.sha256].write_bytes(b"to")  # torn: its name's hash no longer matches
    for ref in (intact, torn):
        os.utime(staged[ref.sha256], (0, 0))
    (blob_store.tmp_dir / "incoming-other-writer").write_bytes(b"not staged")

    reopened = BlobStore(blob_store.root)

    assert reopened.path_for(intact.sha256).read_bytes() == b"intact"
    assert not reopened.exists(torn.sha256)
    assert sorted(p.name for p in reopened.tmp_dir.iterdir()) == sorted(
        ["incoming-other-writer", staged[young.sha256].name])  # a writer may still be at work on it
    assert reopened.remove_stale_temp_files(older_than_seconds=0) == 1  # staged blobs are never "stale"
    assert reopened.open(young.sha256).read() == b"young"


def test_a_failed_write_in_a_batch_leaves_nothing_staged(
    blob_store: BlobStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = blob_store_module._write_durable

    def failing(path: str, data: bytes) -> None:
        real(path, data)
        if data == b"bad":
            raise OSError(28, "No space left on device")

    monkeypatch.setattr(blob_store_module, "_write_durable", failing)
    with pytest.raises(OSError, match="No space"):
        blob_store.put_many([b"good", b"bad", b"also good"])
    assert list(blob_store.tmp_dir.iterdir()) == []
    assert list(blob_store.iter_hashes()) == []


def test_a_batch_makes_a_stream_and_small_blobs_durable_with_one_sync(
    blob_store: BlobStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    synced = _record_dir_syncs(monkeypatch)
    with blob_store.batch() as batch:
        payload = batch.put_stream([b"ISA*", b"a payload"])
        mdn = batch.put_bytes(b"an MDN")
        again = batch.put_stream([b"ISA*a payload"])  # the same bytes twice
        assert synced == [] and not blob_store.path_for(payload.sha256).exists()
    assert synced == [blob_store.tmp_dir]
    assert again == payload
    assert blob_store.path_for(payload.sha256).read_bytes() == b"ISA*a payload"
    assert blob_store.path_for(mdn.sha256).read_bytes() == b"an MDN"
    assert list(blob_store.tmp_dir.iterdir()) == []


def test_a_batch_that_raises_keeps_nothing(blob_store: BlobStore) -> None:
    with pytest.raises(BlobTooLarge), blob_store.batch() as batch:
        batch.put_bytes(b"an MDN")
        batch.put_stream([b"x" * 10], max_bytes=5)
    assert list(blob_store.iter_hashes()) == [] and list(blob_store.tmp_dir.iterdir()) == []
