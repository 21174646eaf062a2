"""Attacks on ``sources.write_behind`` (found by a review of the change), each hostile case next to its control.

What must hold whatever ends a write, even an exception that is not an ``Exception`` (``SystemExit``, an
exception injected into the thread): the pull never renames a file that holds fewer bytes than were hashed,
the worker never waits forever for a writer that is gone, a failure of the write path is never retried as
the endpoint's, and an interrupt of the worker is not replaced by an earlier write error.
"""

from __future__ import annotations

import errno
import hashlib
import os
import socket
import struct
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hostile_hub import head, is_resolve, write_raw

from hubstub import HubStub
from openmodel_operator.evidence.errors import PullError
from openmodel_operator.sources import direct_write
from openmodel_operator.sources import pull as pull_module
from openmodel_operator.sources.direct_write import DIRECT_BUFFER, FileWriter
from openmodel_operator.sources.download import pump
from openmodel_operator.sources.hub import resolve_hub
from openmodel_operator.sources.pull import pull
from openmodel_operator.sources.write_behind import WriteBehind
from test_pull import expected_of

MIB, BUFFER, SHARD = 1024 * 1024, 64 * 1024, "model.safetensors"
quiet = pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")


@pytest.fixture(autouse=True, params=["written behind", "written in line"])
def write_path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """The pull writes large files behind their download and small ones in line: every rule holds on both."""
    monkeypatch.setattr(pull_module, "WRITE_BEHIND_FROM", 0 if request.param == "written behind" else 1 << 62)
    return str(request.param)


class WriterKilled(BaseException):
    """Not an Exception: what SystemExit, an async exception or a greenlet kill landing in the writer looks like."""


def killed(*_: object) -> int:
    raise WriterKilled


def chunks(
    body: bytes, fail_after: int | None = None, error: BaseException | None = None
) -> Callable[[memoryview], int]:
    sent = 0

    def readinto(room: memoryview) -> int:
        nonlocal sent
        if fail_after is not None and sent >= fail_after:
            time.sleep(0.05)  # the writer has failed by now
            assert error is not None
            raise error
        count = min(len(room), BUFFER, len(body) - sent)
        room[:count] = body[sent : sent + count]
        sent += count
        return count

    return readinto


@quiet
@pytest.mark.parametrize("dies", [False, True])
def test_drain_never_passes_bytes_that_were_not_written(tmp_path: Path, dies: bool) -> None:
    body, hasher = os.urandom(5000), hashlib.sha256()
    fd = os.open(tmp_path / "f", os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        with WriteBehind(killed if dies else FileWriter(fd).write, BUFFER) as wb:
            pump(chunks(body), wb.first, hasher.update, wb.flush, wb.drain)
    except WriterKilled:
        assert dies  # an error is fine; silence is not
        return
    finally:
        os.close(fd)
    assert not dies, "drain() reported success for bytes never written"
    assert hasher.hexdigest() == hashlib.sha256(body).hexdigest()
    assert (tmp_path / "f").read_bytes() == body


@quiet
@pytest.mark.parametrize("dies", [False, True])
def test_a_dead_writer_does_not_hang_the_worker(dies: bool) -> None:
    box: dict[str, WriteBehind] = {}
    raised: list[BaseException] = []

    def run() -> None:
        try:
            with WriteBehind(killed if dies else (lambda _: None), BUFFER) as wb:
                box["wb"] = wb
                pump(chunks(os.urandom(4 * BUFFER)), wb.first, lambda _: None, wb.flush, wb.drain)
        except BaseException as exc:  # recorded and checked below
            raised.append(exc)

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(3)
    hung = worker.is_alive()
    for _ in range(8 if hung else 0):  # release it: hand it buffers
        box["wb"]._free.put(memoryview(bytearray(BUFFER)))
    assert not hung, "pump() blocked forever in WriteBehind.flush after the writer died"
    assert [type(e) for e in raised] == ([WriterKilled] if dies else [])


@quiet
def test_a_pull_never_renames_a_file_its_writer_never_wrote(
    hub: HubStub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    files = {"config.json": b'{"layers": 2}', SHARD: os.urandom(3 * MIB + 100)}
    hub.add_model("org/model", files)
    resolved = resolve_hub("hf://org/model", endpoint=hub.url)
    pull(resolved, expected_of(resolved), tmp_path / "ok", retry_wait=0)  # control
    assert {rel: (tmp_path / "ok" / rel).read_bytes() for rel in files} == files
    monkeypatch.setattr(direct_write, "_write", killed)
    with pytest.raises(WriterKilled):
        pull(resolved, expected_of(resolved), tmp_path / "m", retry_wait=0, retries=0)
    for rel, data in files.items():
        target = tmp_path / "m" / rel
        assert not target.exists() or target.read_bytes() == data, f"{rel} renamed into place without its bytes"


def test_a_file_shorter_than_what_was_hashed_is_never_renamed(
    hub: HubStub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The last safety net: whatever a write path loses (here: it claims a write it never made), the file's
    size is compared with the bytes hashed before the rename, and the loss is the disk's error."""
    files = {SHARD: os.urandom(3 * MIB + 100)}
    hub.add_model("org/model", files)
    resolved = resolve_hub("hf://org/model", endpoint=hub.url)
    real = direct_write._write
    calls: list[int] = []

    def lossy(fd: int, data: memoryview) -> int:
        calls.append(len(data))
        if len(calls) == 1:
            return len(data)  # claims the bytes, writes nothing
        return real(fd, data)

    monkeypatch.setattr(direct_write, "_write", lossy)
    with pytest.raises(PullError) as exc:
        pull(resolved, expected_of(resolved), tmp_path / "m", retries=0, retry_wait=0)
    assert "could not be written" in exc.value.message and "were hashed" in exc.value.message
    assert not (tmp_path / "m" / SHARD).exists()
    calls.clear()
    monkeypatch.setattr(direct_write, "_write", real)
    pull(resolved, expected_of(resolved), tmp_path / "m", retries=0, retry_wait=0)  # control
    assert (tmp_path / "m" / SHARD).read_bytes() == files[SHARD]


def reset_after(hub: HubStub, body: bytes, sent: int) -> list[int]:
    """Full Content-Length, the first ``sent`` bytes, a pause, then a TCP RST."""
    attempts: list[int] = []

    def override(handler: Any) -> bool:
        if not is_resolve(handler, SHARD):
            return False
        attempts.append(1)
        handler.close_connection = True
        if write_raw(handler, head(200, {"Content-Length": str(len(body))})) and write_raw(handler, body[:sent]):
            time.sleep(0.3)
            handler.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            handler.connection.close()
        return True

    hub.override = override
    return attempts


@pytest.mark.parametrize("error", [OSError(errno.EIO, "Input/output error"), ValueError("a bug in the write path")])
def test_a_write_path_failure_before_a_reset_is_not_retried_as_the_endpoints(
    hub: HubStub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, error: Exception
) -> None:
    """OSError (control): the disk, downloaded once. Any other writer exception was dropped for the reset that
    followed: the shard downloaded retries+1 times, the failure read as the endpoint's."""
    body = os.urandom(2 * DIRECT_BUFFER + 5000)
    hub.add_model("org/big", {SHARD: body})
    resolved = resolve_hub("hf://org/big", endpoint=hub.url)

    def failing(fd: int, data: memoryview) -> int:
        raise error

    monkeypatch.setattr(direct_write, "_write", failing)
    attempts = reset_after(hub, body, DIRECT_BUFFER + MIB)
    with pytest.raises(Exception) as exc:
        pull(resolved, expected_of(resolved), tmp_path / "m", retries=2, retry_wait=0)
    assert len(attempts) == 1, f"downloaded {len(attempts)} times: {exc.value}"
    assert not (isinstance(exc.value, PullError) and "Reset" in exc.value.message)


@pytest.mark.parametrize("disk_failed", [False, True])
def test_an_interrupt_is_not_replaced_by_an_earlier_disk_error(disk_failed: bool) -> None:
    def write(_: memoryview) -> None:
        if disk_failed:
            raise OSError(errno.EIO, "Input/output error")

    readinto = chunks(os.urandom(4 * BUFFER), fail_after=BUFFER, error=KeyboardInterrupt())
    with pytest.raises(KeyboardInterrupt), WriteBehind(write, BUFFER) as wb:
        pump(readinto, wb.first, lambda _: None, wb.flush, wb.drain)
