"""Pulled shards are written around the page cache (``O_DIRECT``) and still byte for byte what was hashed.

``sources.direct_write`` saves the pull the kernel's copy into page-cache pages (as much CPU as SHA-256 per
gigabyte here) and the pull Job's pod the dirty pages. What must never change: the bytes on disk are the
bytes hashed, whatever the piece sizes; the file's tail and anything unaligned go through the page cache; a
filesystem that refuses ``O_DIRECT`` (at ``fcntl`` or at the first write) gets the same bytes buffered.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from hubstub import HubStub, hub_stub  # noqa: F401 - hub_stub provides the `hub` fixture
from openmodel_operator.evidence.records import ResolvedSource
from openmodel_operator.sources import direct_write
from openmodel_operator.sources.direct_write import DIRECT_BUFFER, FileWriter, aligned_buffer
from openmodel_operator.sources.download import pump
from openmodel_operator.sources.hub import resolve_hub
from openmodel_operator.sources.pull import buffer_size, pull
from test_pull import expected_of, tree

MIB = 1024 * 1024
O_DIRECT = getattr(os, "O_DIRECT", 0)
pytestmark = pytest.mark.skipif(not O_DIRECT, reason="O_DIRECT is Linux's")

Write = tuple[int, bool]  # (bytes, whether the descriptor had O_DIRECT)


@pytest.fixture
def writes(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[Write]]:
    """Every write the writer makes, with the descriptor's O_DIRECT flag at that moment."""
    seen: list[Write] = []
    real = direct_write._write

    def spy(fd: int, data: memoryview) -> int:
        seen.append((len(data), bool(fcntl.fcntl(fd, fcntl.F_GETFL) & O_DIRECT)))
        return real(fd, data)

    monkeypatch.setattr(direct_write, "_write", spy)
    yield seen


def stream_into(path: Path, body: bytes, piece: int) -> str:
    """``download.pump``, as ``stream`` runs it, over a body that arrives at most ``piece`` bytes per read: into a
    1 MiB aligned buffer, hashed as it arrives, written whenever full and the rest at the end. Returns the sha256."""
    buffer = aligned_buffer(MIB)
    hasher = hashlib.sha256()
    sent = 0

    def readinto(room: memoryview) -> int:
        nonlocal sent
        count = min(piece, len(room), len(body) - sent)
        room[:count] = body[sent : sent + count]
        sent += count
        return count

    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        writer = FileWriter(fd)
        assert pump(readinto, memoryview(buffer), hasher.update, writer.write) == len(body)
        os.fsync(fd)
    finally:
        os.close(fd)
    return hasher.hexdigest()


@pytest.mark.parametrize("size", [0, 1, 4095, 4096, MIB - 1, MIB, MIB + 1, 3 * MIB + 12345])
def test_the_bytes_on_disk_are_the_bytes_hashed(tmp_path: Path, writes: list[Write], size: int) -> None:
    body = os.urandom(size)
    digest = stream_into(tmp_path / "f", body, piece=65_537)
    assert (tmp_path / "f").read_bytes() == body
    assert digest == hashlib.sha256(body).hexdigest()
    whole, tail = divmod(size, MIB)
    # every whole buffer went around the page cache, and the whole pages of the last one; only what is left
    # of the file's last page (and nothing else) through it
    pages = [(tail - tail % 4096, True)] if tail >= 4096 else []
    assert [w for w in writes if w[1]] == [(MIB, True)] * whole + pages
    assert sum(n for n, direct in writes if not direct) == size % 4096
    assert sum(n for n, _ in writes) == size


def test_unaligned_and_read_only_pieces_go_through_the_page_cache(tmp_path: Path, writes: list[Write]) -> None:
    buffer = aligned_buffer(MIB)
    view = memoryview(buffer)
    view[:] = os.urandom(MIB)
    fd = os.open(tmp_path / "f", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        writer = FileWriter(fd)
        writer.write(view[512 : 512 + 8192])  # whole pages, but not starting on one
        writer.write(memoryview(b"x" * 4096))  # bytes (a local copy's pieces): read-only
        writer.write(view)  # once buffered, a file stays buffered
    finally:
        os.close(fd)
    assert (tmp_path / "f").read_bytes() == bytes(view[512 : 512 + 8192]) + b"x" * 4096 + bytes(view)
    assert all(not direct for _, direct in writes)


def test_a_filesystem_that_refuses_o_direct_at_the_first_write_gets_the_same_bytes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = direct_write._write
    refused: list[int] = []

    def refusing(fd: int, data: memoryview) -> int:
        if fcntl.fcntl(fd, fcntl.F_GETFL) & O_DIRECT:
            refused.append(len(data))
            raise OSError(errno.EINVAL, "Invalid argument")
        return real(fd, data)

    monkeypatch.setattr(direct_write, "_write", refusing)
    body = os.urandom(2 * MIB + 7)
    assert stream_into(tmp_path / "f", body, piece=MIB) == hashlib.sha256(body).hexdigest()
    assert (tmp_path / "f").read_bytes() == body
    assert refused == [MIB]  # tried once, then buffered for good


def test_a_filesystem_without_o_direct_at_fcntl_is_written_buffered(
    tmp_path: Path, writes: list[Write], monkeypatch: pytest.MonkeyPatch
) -> None:
    real = fcntl.fcntl

    def no_direct(fd: int, command: int, *args: int) -> int:
        if command == fcntl.F_SETFL and args and args[0] & O_DIRECT:
            raise OSError(errno.EINVAL, "Invalid argument")
        return real(fd, command, *args)

    monkeypatch.setattr(direct_write.fcntl, "fcntl", no_direct)
    body = os.urandom(MIB * 2)
    stream_into(tmp_path / "f", body, piece=MIB)
    assert (tmp_path / "f").read_bytes() == body
    assert writes and all(not direct for _, direct in writes)


def test_a_pull_writes_whole_buffers_around_the_page_cache_and_verifies_every_file(
    hub: HubStub, tmp_path: Path, writes: list[Write]
) -> None:
    files = {"config.json": b'{"layers": 2}', "model.safetensors": os.urandom(3 * DIRECT_BUFFER + 3 * MIB + 100)}
    hub.add_model("org/model", files)
    model: ResolvedSource = resolve_hub("hf://org/model", endpoint=hub.url)
    pull(model, expected_of(model), tmp_path / "m")
    assert tree(tmp_path / "m") == files
    # the shard in writes of whole buffers (their size follows the file's: sources.pull.buffer_size), then the
    # whole pages of the last one; only its last bytes (under a page) buffered
    shard = len(files["model.safetensors"])
    size = buffer_size(shard, direct=True)
    whole, rest = divmod(shard, size)
    assert [w for w in writes if w[1]] == [(size, True)] * whole + [(rest - rest % 4096, True)]
    assert sorted(n for n, direct in writes if not direct) == [13, rest % 4096]
    # a tampered shard is still refused: what was written is what was hashed
    other = tmp_path / "tampered"
    expected = {**expected_of(model), "model.safetensors": hashlib.sha256(b"other").hexdigest()}
    with pytest.raises(Exception, match="sha256"):
        pull(model, expected, other, retries=0)
    assert not (other / "model.safetensors").exists()
