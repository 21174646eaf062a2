"""Early writeback during a pull: it only starts the disk's work sooner; the fsync before the rename stays.

``sources.writeback`` asks the kernel to write a file's pages while the file is still arriving.
These tests pin what it must never change: every byte still hashed and compared before the
rename, every file still fsynced before it is renamed into place, a failing or missing
``sync_file_range`` changes nothing but speed, and at most about two steps of a file are
left dirty at once.
"""

from __future__ import annotations

import hashlib
import itertools
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from hubstub import HubStub, hub_stub  # noqa: F401 - hub_stub provides the `hub` fixture
from openmodel_operator.evidence.errors import PullError
from openmodel_operator.evidence.records import Reason, ResolvedSource
from openmodel_operator.sources import writeback
from openmodel_operator.sources.hub import resolve_hub
from openmodel_operator.sources.pull import PARTIAL_PREFIX, pull
from test_pull import expected_of, tree

WRITE, WAIT_BEFORE = 2, 1
BIG = "model-00001-of-00002.safetensors"
FILES: dict[str, bytes] = {
    "config.json": b'{"layers": 2}',
    BIG: os.urandom(700_000),
    "model-00002-of-00002.safetensors": os.urandom(500_000),
}

Call = tuple[int, int, int, int]


@pytest.fixture
def model(hub: HubStub) -> ResolvedSource:
    hub.add_model("org/model", FILES)
    return resolve_hub("hf://org/model", endpoint=hub.url)


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[Call]]:
    """Record every sync_file_range call (passing it on to the real one where there is one), 64 KiB steps."""
    real = writeback._SYNC_FILE_RANGE
    seen: list[Call] = []

    def record(fd: int, offset: int, length: int, flags: int) -> int:
        seen.append((fd, offset, length, flags))
        return real(fd, offset, length, flags) if real is not None else 0

    monkeypatch.setattr(writeback, "_SYNC_FILE_RANGE", record)
    monkeypatch.setattr(writeback, "STEP", 64 * 1024)
    yield seen


def fake(result: int, into: list[Call]) -> Callable[[int, int, int, int], int]:
    def function(fd: int, offset: int, length: int, flags: int) -> int:
        into.append((fd, offset, length, flags))
        return result

    return function


# ------------------------------------------------------------------------------- the helper alone


def test_each_step_starts_its_range_and_waits_for_the_one_before(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[Call] = []
    monkeypatch.setattr(writeback, "_SYNC_FILE_RANGE", fake(0, seen))
    wb = writeback.Writeback(7, step=10)
    wb.wrote(4)
    assert seen == []  # less than a step: nothing asked yet
    wb.wrote(7)
    assert seen == [(7, 0, 11, WRITE)]  # the first range has nothing before it to wait for
    wb.wrote(3)
    assert seen == [(7, 0, 11, WRITE)]
    wb.wrote(10)
    assert seen[1:] == [(7, 11, 13, WRITE), (7, 0, 11, WAIT_BEFORE | WRITE)]
    wb.wrote(10)
    assert seen[3:] == [(7, 24, 10, WRITE), (7, 11, 13, WAIT_BEFORE | WRITE)]
    assert wb.written == 34


def test_ranges_cover_the_file_in_order_without_gaps(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[Call] = []
    monkeypatch.setattr(writeback, "_SYNC_FILE_RANGE", fake(0, seen))
    wb = writeback.Writeback(3, step=1000)
    for size in [300, 900, 1, 4000, 999, 1000, 2500, 7]:
        wb.wrote(size)
    started = [(offset, length) for _, offset, length, flags in seen if flags == WRITE]
    assert started[0][0] == 0
    for (offset, length), (following, _) in itertools.pairwise(started):
        assert offset + length == following
    waited = [(offset, length) for _, offset, length, flags in seen if flags == WAIT_BEFORE | WRITE]
    assert waited == started[:-1]  # every range but the newest was waited for
    assert all(length >= 1000 for _, length in started)


def test_a_failing_call_turns_it_off_for_that_file(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[Call] = []
    monkeypatch.setattr(writeback, "_SYNC_FILE_RANGE", fake(-1, seen))
    wb = writeback.Writeback(3, step=10)
    for _ in range(5):
        wb.wrote(10)
    assert seen == [(3, 0, 10, WRITE)]
    assert wb.written == 50


def test_without_sync_file_range_nothing_is_called(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(writeback, "_SYNC_FILE_RANGE", None)
    wb = writeback.Writeback(3, step=10)
    wb.wrote(100)
    assert wb.written == 100


@pytest.mark.skipif(writeback._SYNC_FILE_RANGE is None, reason="no sync_file_range on this platform")
def test_the_real_call_leaves_the_bytes_as_written(tmp_path: Path) -> None:
    data = os.urandom(300_000)
    path = tmp_path / "f"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        wb = writeback.Writeback(fd, step=64 * 1024)
        for start in range(0, len(data), 50_000):
            wb.wrote(os.write(fd, data[start : start + 50_000]))
        assert wb._enabled  # the kernel accepted every call
        os.fsync(fd)
    finally:
        os.close(fd)
    assert path.read_bytes() == data


# ------------------------------------------------------------------------------- inside a pull


def test_a_pull_starts_writeback_and_places_verified_files(
    hub: HubStub, model: ResolvedSource, tmp_path: Path, calls: list[Call]
) -> None:
    pull(model, expected_of(model), tmp_path)
    assert tree(tmp_path) == FILES
    started = sum(length for _, _, length, flags in calls if flags == WRITE)
    assert started >= len(FILES[BIG]) // 2  # both shards are bigger than a step: their pages went out early


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc to name an fd's file")
def test_every_file_is_fsynced_before_it_is_renamed_into_place(
    hub: HubStub, model: ResolvedSource, tmp_path: Path, calls: list[Call], monkeypatch: pytest.MonkeyPatch
) -> None:
    events: list[tuple[str, object]] = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd: int) -> None:
        events.append(("fsync", os.readlink(f"/proc/self/fd/{fd}")))
        real_fsync(fd)

    def replace(src: str, dst: object) -> None:
        events.append(("replace", str(src)))
        real_replace(src, dst)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    pull(model, expected_of(model), tmp_path)
    assert tree(tmp_path) == FILES
    renamed = [name for kind, name in events if kind == "replace"]
    assert len(renamed) == len(FILES)
    for index, (kind, name) in enumerate(events):
        if kind == "replace":
            assert ("fsync", name) in events[:index], f"{name} renamed before its fsync"


def test_a_tampered_shard_is_refused_with_writeback_as_without(
    hub: HubStub, model: ResolvedSource, tmp_path: Path, calls: list[Call]
) -> None:
    control = tmp_path / "control"
    pull(model, expected_of(model), control)
    assert tree(control) == FILES

    hub.inject_fault("org/model", BIG, "corrupt")
    dest = tmp_path / "dest"
    with pytest.raises(PullError) as exc:
        pull(model, expected_of(model), dest, retries=1, retry_wait=0)
    assert exc.value.reason == Reason.PULLED_DIGEST_MISMATCH
    assert exc.value.path == BIG
    assert not (dest / BIG).exists()
    assert not [p for p in dest.rglob("*") if p.name.startswith(PARTIAL_PREFIX)]
    assert any(length for _, _, length, flags in calls if flags == WRITE)  # writeback ran on the bad bytes too


def test_a_failing_writeback_changes_nothing_but_speed(
    hub: HubStub, model: ResolvedSource, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[Call] = []
    monkeypatch.setattr(writeback, "_SYNC_FILE_RANGE", fake(-1, seen))
    monkeypatch.setattr(writeback, "STEP", 64 * 1024)
    result = pull(model, expected_of(model), tmp_path)
    assert tree(tmp_path) == FILES
    assert {hashlib.sha256((tmp_path / f.path).read_bytes()).hexdigest() for f in result.files} == {
        f.sha256 for f in result.files
    }
    assert len(seen) == 2  # one refused call per shard, then off for that file


def test_an_answer_larger_than_listed_is_refused_with_writeback_as_without(
    hub: HubStub, model: ResolvedSource, tmp_path: Path, calls: list[Call]
) -> None:
    control = tmp_path / "control"
    pull(model, expected_of(model), control)
    assert tree(control) == FILES

    sha = model.revision
    assert sha is not None
    hub.rewrite_file("org/model", sha, BIG, FILES[BIG] + os.urandom(3 * 1024 * 1024))  # 3 MiB more than listed
    dest = tmp_path / "dest"
    with pytest.raises(PullError) as exc:
        pull(model, expected_of(model), dest, retries=0)
    assert exc.value.reason == Reason.PULLED_DIGEST_MISMATCH
    assert exc.value.path == BIG
    assert "more than the" in exc.value.message
    assert not (dest / BIG).exists()
    assert not [p for p in dest.rglob("*") if p.name.startswith(PARTIAL_PREFIX)]
