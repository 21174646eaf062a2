"""A pull's buffers are written by a thread of their own while the next one fills (``sources.write_behind``).

What a user notices: a pull takes about the longer of download and disk, not their sum. What must never
change: the bytes on disk are the bytes hashed (a buffer is not filled again while it is written), every write
is done before the file is fsynced and compared, a failing disk is reported as the disk, and no write reaches
the descriptor after the caller closed it.
"""

from __future__ import annotations

import errno
import hashlib
import os
import random
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from hubstub import HubStub, hub_stub  # noqa: F401 - hub_stub provides the `hub` fixture
from openmodel_operator.sources import pull as pull_module
from openmodel_operator.sources import write_behind
from openmodel_operator.sources.direct_write import FileWriter
from openmodel_operator.sources.download import pump
from openmodel_operator.sources.hub import resolve_hub
from openmodel_operator.sources.pull import pull
from openmodel_operator.sources.write_behind import WriteBehind
from test_pull import expected_of, tree

BUFFER = 64 * 1024


def reader(body: bytes, seed: int = 3, on_read: object = None):  # type: ignore[no-untyped-def]
    """``readinto`` over ``body`` in pieces of random size (as a socket hands them over)."""
    rnd, sent = random.Random(seed), 0

    def readinto(room: memoryview) -> int:
        nonlocal sent
        count = min(rnd.choice([1, 4095, 4096, 10_000, BUFFER]), len(room), len(body) - sent)
        room[:count] = body[sent : sent + count]
        sent += count
        if callable(on_read):
            on_read()
        return count

    return readinto


def write_behind_into(path: Path, body: bytes, write_wrapper=None) -> str:  # type: ignore[no-untyped-def]
    """``pump`` as ``download.stream`` runs it for a pull: hashed piece by piece, written behind. Returns sha256."""
    hasher = hashlib.sha256()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        writer = FileWriter(fd)
        write = writer.write if write_wrapper is None else write_wrapper(writer.write)
        with WriteBehind(write, BUFFER) as behind:
            assert pump(reader(body), behind.first, hasher.update, behind.flush, behind.drain) == len(body)
        os.fsync(fd)
    finally:
        os.close(fd)
    return hasher.hexdigest()


def writer_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "openmodel-write-behind"]


@pytest.mark.parametrize("size", [0, 1, BUFFER - 1, BUFFER, BUFFER + 1, 7 * BUFFER + 12345])
def test_control_the_bytes_on_disk_are_the_bytes_hashed(tmp_path: Path, size: int) -> None:
    body = os.urandom(size)
    assert write_behind_into(tmp_path / "f", body) == hashlib.sha256(body).hexdigest()
    assert (tmp_path / "f").read_bytes() == body
    assert writer_threads() == []


def test_a_buffer_is_not_filled_again_while_it_is_written(tmp_path: Path) -> None:
    """A slow disk: each write looks at its bytes before and after a pause; they must not have changed."""
    body = os.urandom(9 * BUFFER + 777)
    changed: list[int] = []

    def slow(write):  # type: ignore[no-untyped-def]
        def wrapped(piece: memoryview) -> None:
            before = bytes(piece)
            time.sleep(0.01)
            if bytes(piece) != before:
                changed.append(len(piece))
            write(piece)

        return wrapped

    assert write_behind_into(tmp_path / "f", body, slow) == hashlib.sha256(body).hexdigest()
    assert (tmp_path / "f").read_bytes() == body
    assert changed == []


def test_the_next_buffer_arrives_while_one_is_written(tmp_path: Path) -> None:
    """What the thread is for: reading goes on during a write (in line, the read would wait for it)."""
    writing, overlapped = threading.Event(), threading.Event()

    def slow(piece: memoryview) -> None:
        writing.set()
        time.sleep(0.05)
        writing.clear()

    def on_read() -> None:
        if writing.is_set():
            overlapped.set()

    body = os.urandom(4 * BUFFER)
    with WriteBehind(slow, BUFFER) as behind:
        pump(reader(body, on_read=on_read), behind.first, lambda _: None, behind.flush, behind.drain)
    assert overlapped.is_set()


def test_a_write_error_is_raised_and_nothing_is_written_after_it(tmp_path: Path) -> None:
    written: list[int] = []

    def failing(piece: memoryview) -> None:
        if written:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        written.append(len(piece))

    body = os.urandom(6 * BUFFER)
    with pytest.raises(OSError) as exc, WriteBehind(failing, BUFFER) as behind:
        pump(reader(body), behind.first, lambda _: None, behind.flush, behind.drain)
    assert exc.value.errno == errno.ENOSPC
    assert written == [BUFFER]
    assert writer_threads() == []


def test_a_failed_download_drops_the_queued_writes_and_stops_the_thread(tmp_path: Path) -> None:
    """The caller closes the descriptor right after: no write may come after the ``with`` block."""
    after_exit: list[int] = []
    left = threading.Event()

    def slow(piece: memoryview) -> None:
        time.sleep(0.02)
        if left.is_set():
            after_exit.append(len(piece))

    sent = 0

    def breaking(room: memoryview) -> int:
        nonlocal sent
        if sent >= 3 * BUFFER:
            raise ConnectionResetError("reset by peer")
        count = min(len(room), BUFFER)
        sent += count
        return count

    with pytest.raises(ConnectionResetError), WriteBehind(slow, BUFFER) as behind:
        pump(breaking, behind.first, lambda _: None, behind.flush, behind.drain)
    left.set()
    time.sleep(0.05)
    assert after_exit == [] and writer_threads() == []


def test_a_disk_that_failed_before_the_download_broke_is_reported_as_the_disk() -> None:
    def failing(piece: memoryview) -> None:
        raise OSError(errno.EIO, os.strerror(errno.EIO))

    sent = 0

    def breaking(room: memoryview) -> int:
        nonlocal sent
        if sent >= BUFFER:
            time.sleep(0.05)  # the write of the first buffer has failed by now
            raise ConnectionResetError("reset by peer")
        count = min(len(room), BUFFER)
        sent += count
        return count

    with pytest.raises(OSError) as exc, WriteBehind(failing, BUFFER) as behind:
        pump(breaking, behind.first, lambda _: None, behind.flush, behind.drain)
    assert exc.value.errno == errno.EIO
    assert isinstance(exc.value.__cause__, ConnectionResetError)


def test_a_pull_reuses_its_buffers_from_file_to_file_and_each_file_holds_only_its_own_bytes(
    hub: HubStub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Touching two fresh 8 MiB buffers per file cost ~7 ms each (40 shards of 10 MB: 0.36 -> 0.56 s); a pull
    now keeps one pair per worker. A reused buffer still holds the last file's bytes: none may reach the next."""
    monkeypatch.setattr(pull_module, "DIRECT_BUFFER", BUFFER)  # small buffers, many hand-overs per file
    monkeypatch.setattr(pull_module, "WRITE_BEHIND_FROM", 3 * BUFFER)  # some files behind, the others in line
    made: list[int] = []
    real = write_behind.aligned_buffer

    def counted(size: int) -> Any:
        made.append(size)
        return real(size)

    monkeypatch.setattr(write_behind, "aligned_buffer", counted)
    rnd = random.Random(5)
    files = {
        f"shard-{i:02}.safetensors": os.urandom(rnd.choice([10, 4096, BUFFER + 1, 3 * BUFFER + 17])) for i in range(12)
    }
    files["big.safetensors"] = os.urandom(9 * BUFFER + 5)
    hub.add_model("org/many", files)
    resolved = resolve_hub("hf://org/many", endpoint=hub.url)
    result = pull(resolved, expected_of(resolved), tmp_path / "m", workers=2)
    assert tree(tmp_path / "m") == files
    assert len(result.downloaded) == len(files)
    assert len(made) <= 2 * 2, f"{len(made)} buffers for {len(files)} files on 2 workers"
