"""Attacks on the pull's O_DIRECT write path (``sources.direct_write``, ``download.stream(flush=...)``).

What must hold: the bytes renamed into place are the bytes hashed, whatever the server's framing (chunked
pieces of any size, a body that exactly fills one more buffer than expected, a reset in the middle of a
buffer) and whatever the filesystem does (a short direct write, ``EINVAL`` after it); and a failure of the
local disk (``ENOSPC``, ``EIO``) is reported as one, at once, not taken for the server's: a full disk is not
fixed by downloading the whole shard again, and must not read as a slow endpoint. Each attack sits next to
a legitimate control.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import os
import random
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from hostile_hub import head, is_resolve, write_raw

from hubstub import HubStub
from openmodel_operator.evidence.errors import PullError
from openmodel_operator.evidence.records import Reason, ResolvedSource
from openmodel_operator.sources import direct_write
from openmodel_operator.sources import pull as pull_module
from openmodel_operator.sources.direct_write import DIRECT_BUFFER
from openmodel_operator.sources.directory import resolve_directory
from openmodel_operator.sources.hub import resolve_hub
from openmodel_operator.sources.pull import PARTIAL_PREFIX, pull

MIB = 1024 * 1024
SHARD = "model.safetensors"
BODY = os.urandom(3 * MIB + 5000)
FILES = {"config.json": b'{"layers": 2}', SHARD: BODY}
O_DIRECT = getattr(os, "O_DIRECT", 0)


def expected_of(resolved: ResolvedSource) -> dict[str, str]:
    return {f.path: f.sha256 for f in resolved.files}


def model(hub: HubStub) -> ResolvedSource:
    hub.add_model("org/model", FILES)
    return resolve_hub("hf://org/model", endpoint=hub.url)


def leftovers(dest: Path) -> list[str]:
    return [p.name for p in dest.rglob("*") if p.name.startswith(PARTIAL_PREFIX)] if dest.exists() else []


def chunked(pieces: list[bytes]) -> bytes:
    return b"".join(f"{len(p):x}\r\n".encode() + p + b"\r\n" for p in pieces) + b"0\r\n\r\n"


def serve_shard(hub: HubStub, answer: Callable[[int], tuple[dict[str, str], bytes]]) -> list[int]:
    """Answer the shard's download with ``answer(attempt)`` (headers, raw body), sent in odd-sized writes."""
    attempts: list[int] = []

    def override(handler: object) -> bool:
        if not is_resolve(handler, SHARD):
            return False
        attempts.append(len(attempts) + 1)
        handler.close_connection = True  # type: ignore[attr-defined]
        headers, raw = answer(len(attempts))
        if write_raw(handler, head(200, headers)):
            for start in range(0, len(raw), 70_001):
                if not write_raw(handler, raw[start : start + 70_001]):
                    break
        return True

    hub.override = override
    return attempts


# ------------------------------------------------------------------ framing: what is kept is what was hashed


def test_control_chunked_pieces_of_any_size_are_kept_byte_for_byte(hub: HubStub, tmp_path: Path) -> None:
    resolved = model(hub)
    rnd, pieces, start = random.Random(7), [], 0
    while start < len(BODY):
        step = rnd.choice([1, 511, 4097, 65_536, MIB - 1, MIB + 1])
        pieces.append(BODY[start : start + step])
        start += step
    serve_shard(hub, lambda _: ({"Transfer-Encoding": "chunked"}, chunked(pieces)))
    pull(resolved, expected_of(resolved), tmp_path / "m", retry_wait=0)
    assert (tmp_path / "m" / SHARD).read_bytes() == BODY


def test_a_body_exactly_filling_one_more_buffer_than_expected_is_refused(hub: HubStub, tmp_path: Path) -> None:
    resolved = model(hub)
    longer = BODY + os.urandom(DIRECT_BUFFER - len(BODY))  # the extra bytes end exactly on a buffer boundary
    serve_shard(hub, lambda _: ({"Transfer-Encoding": "chunked"}, chunked([longer])))
    with pytest.raises(PullError) as exc:
        pull(resolved, expected_of(resolved), tmp_path / "m", retries=1, retry_wait=0)
    assert exc.value.reason is Reason.PULLED_DIGEST_MISMATCH
    assert not (tmp_path / "m" / SHARD).exists() and leftovers(tmp_path / "m") == []


def test_a_reset_in_the_middle_of_a_buffer_is_retried_from_a_clean_file(hub: HubStub, tmp_path: Path) -> None:
    resolved = model(hub)
    length = {"Content-Length": str(len(BODY))}
    attempts = serve_shard(hub, lambda n: (length, BODY[: MIB + 12_345] if n == 1 else BODY))
    pull(resolved, expected_of(resolved), tmp_path / "m", retry_wait=0)
    assert (tmp_path / "m" / SHARD).read_bytes() == BODY
    assert attempts == [1, 2]


@pytest.mark.skipif(not O_DIRECT, reason="O_DIRECT is Linux's")
@pytest.mark.parametrize("short", [512, 8192])
def test_einval_after_a_short_direct_write_gives_the_same_bytes(
    hub: HubStub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, short: int
) -> None:
    real = direct_write._write
    direct_calls: list[int] = []

    def flaky(fd: int, data: memoryview) -> int:
        if fcntl.fcntl(fd, fcntl.F_GETFL) & O_DIRECT:
            direct_calls.append(len(data))
            if len(direct_calls) == 1:
                return real(fd, data[:short])  # a short direct write ...
            raise OSError(errno.EINVAL, "Invalid argument")  # ... then the filesystem refuses O_DIRECT
        return real(fd, data)

    monkeypatch.setattr(direct_write, "_write", flaky)
    resolved = model(hub)
    pull(resolved, expected_of(resolved), tmp_path / "m", retries=0)
    assert (tmp_path / "m" / SHARD).read_bytes() == BODY
    assert hashlib.sha256((tmp_path / "m" / SHARD).read_bytes()).hexdigest() == expected_of(resolved)[SHARD]


# ------------------------------------------------------------------ a failing disk is the disk's failure


def failing_disk(monkeypatch: pytest.MonkeyPatch, code: int, after: int = MIB) -> None:
    """Writes succeed for the first ``after`` bytes of each file descriptor, then fail with ``code``."""
    real = direct_write._write
    written: dict[int, int] = {}

    def write(fd: int, data: memoryview) -> int:
        if written.get(fd, 0) >= after:
            raise OSError(code, os.strerror(code))
        count = real(fd, data)
        written[fd] = written.get(fd, 0) + count
        return count

    monkeypatch.setattr(direct_write, "_write", write)


def test_control_a_working_disk_downloads_the_shard_once(hub: HubStub, tmp_path: Path) -> None:
    resolved = model(hub)
    pull(resolved, {SHARD: expected_of(resolved)[SHARD]}, tmp_path / "m", retry_wait=0)
    assert (tmp_path / "m" / SHARD).read_bytes() == BODY
    assert hub.download_count("org/model", SHARD) == 1


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EIO])
def test_a_failing_disk_is_reported_as_the_disk_at_once_not_retried_as_the_server(
    hub: HubStub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, code: int
) -> None:
    """Before: the write error inside ``flush`` was caught with the socket's errors and became an
    ``HttpFailure``: the whole shard was downloaded ``retries + 1`` times (a full disk stays full) and the
    failure read as a transport error of the endpoint (or as its deadline, had the watchdog fired)."""
    resolved = model(hub)
    failing_disk(monkeypatch, code)
    with pytest.raises(PullError) as exc:
        pull(resolved, {SHARD: expected_of(resolved)[SHARD]}, tmp_path / "m", retries=2, retry_wait=0)
    assert exc.value.reason is Reason.DOWNLOAD_FAILED
    assert "could not be written" in exc.value.message and os.strerror(code) in exc.value.message
    assert hub.download_count("org/model", SHARD) == 1  # not downloaded again onto the same disk
    assert not (tmp_path / "m" / SHARD).exists() and leftovers(tmp_path / "m") == []


def test_a_failing_disk_reads_the_same_for_a_directory_copy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The local copy already reported its disk's errors as such: the Hub path now agrees with it."""
    source = tmp_path / "src"
    source.mkdir()
    (source / SHARD).write_bytes(BODY)
    resolved = resolve_directory(source)
    pull(resolved, expected_of(resolved), tmp_path / "ok")  # control
    assert (tmp_path / "ok" / SHARD).read_bytes() == BODY
    failing_disk(monkeypatch, errno.ENOSPC)
    with pytest.raises(PullError) as exc:
        pull(resolved, expected_of(resolved), tmp_path / "m")
    assert "could not be written" in exc.value.message
    assert not (tmp_path / "m" / SHARD).exists() and leftovers(tmp_path / "m") == []


def stalling_shard(hub: HubStub, sent: int) -> None:
    """The shard's first ``sent`` bytes at once, then nothing (until the client hangs up, or 10 s)."""

    def override(handler: object) -> bool:
        if not is_resolve(handler, SHARD):
            return False
        handler.close_connection = True  # type: ignore[attr-defined]
        if write_raw(handler, head(200, {"Content-Length": str(len(BODY))})) and write_raw(handler, BODY[:sent]):
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and write_raw(handler, b""):
                time.sleep(0.05)
        return True

    hub.override = override


def test_control_a_stalling_endpoint_is_cut_at_its_deadline(hub: HubStub, tmp_path: Path) -> None:
    resolved = model(hub)
    stalling_shard(hub, 200_000)
    with pytest.raises(PullError) as exc:
        pull(resolved, {SHARD: expected_of(resolved)[SHARD]}, tmp_path / "m", deadline=1.0, retry_wait=0)
    assert exc.value.reason is Reason.DEADLINE_EXCEEDED
    assert leftovers(tmp_path / "m") == []


def test_a_disk_failing_once_the_deadline_passed_is_not_blamed_on_the_endpoint(
    hub: HubStub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The watchdog cuts the stalled body; writing the part that arrived fails: that is the disk's error
    (before: reported as the endpoint's DEADLINE_EXCEEDED, "too slow or stalls")."""
    resolved = model(hub)
    stalling_shard(hub, 200_000)
    failing_disk(monkeypatch, errno.ENOSPC, after=0)
    with pytest.raises(PullError) as exc:
        pull(resolved, {SHARD: expected_of(resolved)[SHARD]}, tmp_path / "m", deadline=1.0, retry_wait=0)
    assert exc.value.reason is Reason.DOWNLOAD_FAILED
    assert "could not be written" in exc.value.message
    assert not (tmp_path / "m" / SHARD).exists() and leftovers(tmp_path / "m") == []


def test_a_disk_failing_while_the_body_still_arrives_is_reported_as_the_disk(
    hub: HubStub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Buffers are written behind the download (``sources.write_behind``): the first one's write fails while
    the next one arrives, then the server hangs up early. Reported as the disk, once, not as a short body to
    download again."""
    monkeypatch.setattr(pull_module, "WRITE_BEHIND_FROM", 0)  # a 16 MiB file is written in line otherwise
    big = os.urandom(2 * DIRECT_BUFFER + 5000)
    hub.add_model("org/big", {SHARD: big})
    resolved = resolve_hub("hf://org/big", endpoint=hub.url)
    pull(resolved, expected_of(resolved), tmp_path / "ok", retry_wait=0)  # control: a working disk
    assert (tmp_path / "ok" / SHARD).read_bytes() == big
    failing_disk(monkeypatch, errno.ENOSPC, after=0)
    attempts = serve_shard(hub, lambda _: ({"Content-Length": str(len(big))}, big[: DIRECT_BUFFER + MIB]))
    with pytest.raises(PullError) as exc:
        pull(resolved, expected_of(resolved), tmp_path / "m", retries=2, retry_wait=0)
    assert exc.value.reason is Reason.DOWNLOAD_FAILED
    assert "could not be written" in exc.value.message and os.strerror(errno.ENOSPC) in exc.value.message
    assert attempts == [1]
    assert not (tmp_path / "m" / SHARD).exists() and leftovers(tmp_path / "m") == []
