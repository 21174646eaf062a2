"""Place a verified model's files in a target directory, checking every byte on the way in.

The decision was made on digests (the Hub listing, the signed manifest); the pull is where the
bytes arrive, and the Hub does not check them (huggingface_hub downloads are not integrity
checked). So each file is hashed while it is written, in a single pass, into a temporary name next
to its target, and renamed only when its sha256 equals the expected one. A file whose digest does
not match is deleted, never left where a model server could load it.

Nothing is written outside the target directory: paths are checked, no directory on the way may
be a symbolic link (checked against the resolved target), and files are renamed over, not
written through, anything already at the target name.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import hashlib
import os
import re
import stat
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from pathlib import Path

from openmodel_operator.evidence.errors import PullError, SourceError
from openmodel_operator.evidence.paths import DEFAULT_MAX_FILE_SIZE, check_no_path_conflicts, check_relative_path
from openmodel_operator.evidence.records import FileEntry, Reason, ResolvedSource
from openmodel_operator.evidence.text import printable
from openmodel_operator.sources.direct_write import ALIGN, DIRECT_BUFFER, FileWriter, aligned_buffer
from openmodel_operator.sources.directory import hash_file, local_root, open_beneath
from openmodel_operator.sources.download import BUFFER, HttpFailure, stream
from openmodel_operator.sources.hub import CHUNK, DEFAULT_TIMEOUT, HubClient, client_for
from openmodel_operator.sources.write_behind import WriteBehind

Progress = Callable[[str, int, int], None]
"""Called as ``progress(path, bytes_done, total_bytes)`` from worker threads, per file."""

PARTIAL_PREFIX = ".openmodel-partial-"
LOST_FOUND = "lost+found"  # created by mkfs on ext4 volumes, owned by root: neither ours to check nor to remove
# Slowest average transfer rate a download may keep (bytes/s): with the timeout it gives each file a
# wall-clock deadline, so a server dripping bytes cannot hold a pull open for days.
DEFAULT_MIN_RATE = 1024 * 1024
_HEX64 = re.compile(r"[0-9a-f]{64}")


@dataclasses.dataclass(frozen=True)
class PullResult:
    """What is now in the target directory, and what this call had to transfer for it."""

    files: tuple[FileEntry, ...]  # every expected file, in place with its expected digest
    downloaded: tuple[str, ...]  # paths transferred by this call
    skipped: tuple[str, ...]  # paths already present with the expected digest (resume)
    bytes: int  # bytes transferred by this call
    seconds: float


class _Retry(Exception):
    """One attempt failed in a way another attempt may fix (network, truncated or corrupted bytes)."""

    def __init__(self, reason: Reason, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


class _Cancelled(Exception):
    """Another file failed; this one stops early so the pull fails fast."""


@dataclasses.dataclass
class _Job:
    """Shared state of one pull: where to write, how to fetch, and the stop flag."""

    dest: Path
    sizes: Mapping[str, int]
    retries: int
    retry_wait: float
    progress: Progress | None
    client: HubClient | None
    commit: str | None
    source_root: Path | None
    where: str
    timeout: float = DEFAULT_TIMEOUT
    min_rate: float = DEFAULT_MIN_RATE
    deadline: float | None = None  # time.monotonic() value ending the whole pull
    stop: threading.Event = dataclasses.field(default_factory=threading.Event)
    # pairs of DIRECT_BUFFER-sized download buffers, reused from file to file (at most one pair per worker)
    spare: list[tuple[memoryview, memoryview]] = dataclasses.field(default_factory=list)
    spare_lock: threading.Lock = dataclasses.field(default_factory=threading.Lock)

    def buffers(self) -> tuple[memoryview, memoryview]:
        """Two page-aligned DIRECT_BUFFER-sized buffers: a pair a finished download gave back, or a new one.
        Touching 16 fresh MiB costs ~7 ms here, as much as writing them."""
        with self.spare_lock:
            if self.spare:
                return self.spare.pop()
        return memoryview(aligned_buffer(DIRECT_BUFFER)), memoryview(aligned_buffer(DIRECT_BUFFER))

    def give_back(self, pair: tuple[memoryview, memoryview]) -> None:
        with self.spare_lock:
            self.spare.append(pair)

    def file_deadline(self, size: int | None) -> float:
        """When one download must be done: twice the timeout plus the file at ``min_rate``, within the pull's."""
        budget = 2 * self.timeout + (size if size is not None else 0) / self.min_rate
        until = time.monotonic() + budget
        return until if self.deadline is None else min(until, self.deadline)


# Files this large are written behind their download (sources.write_behind); smaller ones in line.
WRITE_BEHIND_FROM = 64 * 1024 * 1024


def buffer_size(size: int | None, direct: bool) -> int:
    """The download buffer of one file. Buffered writes: ``download.BUFFER``. Around the page cache: DIRECT_BUFFER
    for files of 128 MiB and more (fewer, larger writes cost less CPU), a sixteenth of a smaller file (at least
    BUFFER, whole pages): its writes then overlap its download instead of following it, and the pages a pull
    touches stay few (for 4 files of 50 MB, 8 MiB buffers made the pull 0.18 -> 0.23 s, a sixteenth 0.19 s)."""
    if not direct:
        return BUFFER
    if size is None:
        return DIRECT_BUFFER
    part = -(-size // 16)
    return min(DIRECT_BUFFER, max(BUFFER, -(-part // ALIGN) * ALIGN))


def remove_unlisted(dest: Path, keep: Iterable[str], on_remove: Callable[[str], None] | None = None) -> list[str]:
    """Remove every entry under ``dest`` that is not a regular file listed in ``keep`` (bar lost+found).

    Links are removed, never followed; directories left empty are removed too. Raises OSError when
    something cannot be removed: a file that stays next to the verified ones means the directory
    is not what was verified.
    """
    kept = set(keep)
    ancestors = {"/".join(p.split("/")[:i]) for p in kept for i in range(1, p.count("/") + 1)}
    removed: list[str] = []

    def walk(abs_dir: str, rel_dir: str) -> None:
        with os.scandir(abs_dir) as scan:
            entries = list(scan)
        for entry in entries:
            rel = f"{rel_dir}/{entry.name}" if rel_dir else entry.name
            if entry.is_dir(follow_symlinks=False):
                if rel == LOST_FOUND:
                    continue
                walk(entry.path, rel)
                if rel not in ancestors:
                    os.rmdir(entry.path)
            elif not (rel in kept and entry.is_file(follow_symlinks=False)):
                os.unlink(entry.path)
                removed.append(rel)
                if on_remove is not None:
                    on_remove(rel)

    walk(os.fspath(dest), "")
    return removed


def _unsafe(path: str, message: str) -> PullError:
    return PullError(Reason.UNSAFE_PATH, path, message)


def _prepare_parent(dest: Path, rel: str) -> Path:
    """Create the directories of ``rel`` under ``dest``, refusing symlinks and non-directories on the way."""
    current = dest
    for part in rel.split("/")[:-1]:
        current = current / part
        if current.is_symlink():
            raise _unsafe(rel, f"{current} is a symbolic link: refusing to write {rel!r} through it")
        if not current.exists():
            current.mkdir()
        elif not current.is_dir():
            raise _unsafe(rel, f"{current} exists and is not a directory: cannot place {rel!r}")
    if not current.resolve().is_relative_to(dest):
        raise _unsafe(rel, f"{rel!r} would be written outside {dest}")
    return current


def _remove_stale_partials(directory: Path) -> None:
    """Temporary files left by a pull that was killed: never part of the model, so removed."""
    with os.scandir(directory) as entries:
        for entry in entries:
            if entry.name.startswith(PARTIAL_PREFIX) and entry.is_file(follow_symlinks=False):
                os.unlink(entry.path)


def _already_there(target: Path, size: int | None, digest: str) -> bool:
    """True when ``target`` is a regular file (not a link) with the expected size and digest."""
    try:
        info = target.lstat()
    except FileNotFoundError:
        return False
    if not stat.S_ISREG(info.st_mode) or (size is not None and info.st_size != size):
        return False
    try:
        _, actual = hash_file(target)
    except OSError:
        return False
    return actual == digest


def _fetch_once(job: _Job, rel: str, expected: str, out: int) -> int:
    """One attempt: stream ``rel`` into the open file ``out`` while hashing; return the bytes written."""
    size = job.sizes.get(rel)
    limit = size if size is not None else DEFAULT_MAX_FILE_SIZE
    hasher = hashlib.sha256()
    writer = FileWriter(out, direct=job.client is not None)  # a local copy's pieces are bytes: buffered
    done = 0

    def take(chunk: bytes | memoryview, total: int) -> None:
        """Count, bound and hash a piece as it arrives (written by the caller)."""
        nonlocal done
        if job.stop.is_set():
            raise _Cancelled
        done += len(chunk)
        if done > limit:
            raise _Retry(Reason.PULLED_DIGEST_MISMATCH, f"more than the {limit} expected bytes arrived")
        hasher.update(chunk)
        if job.progress is not None:
            job.progress(rel, done, total)

    if job.client is not None:
        assert job.commit is not None
        client = job.client

        def sink(piece: memoryview, length: int) -> None:
            take(piece, size if size is not None else length)

        # the download fills one buffer while the other is written (each O_DIRECT write waits for the device)
        length = buffer_size(size, writer.direct)
        pair = job.buffers()
        used = (pair[0][:length], pair[1][:length])
        # a thread for a small file costs more than it hides (40 files of 10 MB: 0.45 s against 0.41 s in line)
        behind = WriteBehind(writer.write, length, used) if size is None or size >= WRITE_BEHIND_FROM else None
        try:
            # leaving the block waits for the writer thread; a disk error beats the download's
            with behind if behind is not None else contextlib.nullcontext():
                stream(
                    client.resolve_url(job.commit, rel),
                    client.headers(),
                    sink,
                    job.timeout,
                    None,
                    job.file_deadline(size),
                    buffer=used[0],
                    flush=writer.write if behind is None else behind.flush,
                    drain=None if behind is None else behind.drain,
                )
        except HttpFailure as exc:
            if exc.deadline:  # another attempt would wait as long again
                raise PullError(
                    Reason.DEADLINE_EXCEEDED,
                    rel,
                    f"{rel!r} from {client.uri} did not arrive within its deadline ({done} bytes in): the endpoint "
                    "is too slow or stalls; it will be retried later",
                ) from exc
            if exc.status in (401, 403):
                raise PullError(
                    Reason.ACCESS_DENIED,
                    rel,
                    f"{rel!r}: {client.uri} answered HTTP {exc.status}; check spec.source.tokenSecretRef",
                ) from exc
            if exc.status == 404:  # the pinned commit or the file is gone: another attempt would not help
                raise PullError(
                    Reason.DOWNLOAD_FAILED, rel, f"{rel!r} is not at commit {job.commit} of {client.uri} (HTTP 404)"
                ) from exc
            raise _Retry(Reason.DOWNLOAD_FAILED, str(exc)) from exc
        finally:
            if behind is None or behind.finished:  # no write can touch them any more: the next file fills them
                job.give_back(pair)
    else:
        assert job.source_root is not None
        try:
            with open_beneath(job.source_root, rel, job.where) as handle:
                total = size if size is not None else os.fstat(handle.fileno()).st_size
                while chunk := handle.read(CHUNK):
                    take(chunk, total)
                    writer.write(memoryview(chunk))
        except SourceError as exc:
            raise PullError(exc.reason, rel, exc.message) from exc
        except FileNotFoundError as exc:
            raise PullError(Reason.DOWNLOAD_FAILED, rel, f"{rel!r} is missing from {job.where}") from exc
    actual = hasher.hexdigest()
    if size is not None and done != size:
        raise _Retry(Reason.PULLED_DIGEST_MISMATCH, f"{done} bytes arrived instead of {size} (sha256 {actual})")
    if actual != expected:
        raise _Retry(Reason.PULLED_DIGEST_MISMATCH, f"the bytes have sha256 {actual}, not {expected}")
    return done


def _size_of(job: _Job, rel: str) -> int:
    size = job.sizes.get(rel)
    return size if size is not None else (job.dest / rel).stat().st_size


def _pull_one(job: _Job, rel: str, expected: str) -> tuple[str, int]:
    """Place one file: skip it if already right, else fetch with retries into a temp name and rename."""
    target = job.dest / rel
    size = job.sizes.get(rel)
    if _already_there(target, size, expected):
        if job.progress is not None:
            job.progress(rel, size or 0, size or 0)
        return "skipped", 0
    last: _Retry | None = None
    attempts = job.retries + 1 if job.client is not None else 1  # a local copy gives the same bytes again
    for attempt in range(attempts):
        if job.stop.is_set():
            raise _Cancelled
        fd, temp = tempfile.mkstemp(prefix=PARTIAL_PREFIX, dir=target.parent)
        try:
            try:
                done = _fetch_once(job, rel, expected, fd)
                on_disk = os.fstat(fd).st_size
                if on_disk != done:  # the bytes hashed must be the bytes the file holds, whatever the write path did
                    raise OSError(errno.EIO, f"{on_disk} bytes reached the file, {done} were hashed")
                os.fchmod(fd, 0o644)  # mkstemp makes 0600; the model server may run as another user
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(temp, target)
            return "downloaded", done
        except _Retry as exc:
            last = _Retry(exc.reason, exc.message)  # not its traceback: that holds the attempt's buffers
        except OSError as exc:
            raise PullError(
                Reason.DOWNLOAD_FAILED, rel, f"{rel!r} could not be written to {job.dest}: {exc.strerror or exc}"
            ) from exc
        finally:
            if os.path.lexists(temp):
                os.unlink(temp)
        if attempt + 1 < attempts and job.retry_wait > 0:
            job.stop.wait(job.retry_wait * 2**attempt)
    assert last is not None
    tries = f"after {attempts} attempt{'s' if attempts > 1 else ''}"
    raise PullError(
        last.reason,
        rel,
        f"{rel!r} from {job.where} failed {tries}: {last.message}; the file was not kept",
    )


def pull(
    resolved: ResolvedSource,
    expected: Mapping[str, str],
    dest_dir: str | os.PathLike[str],
    token: str | None = None,
    workers: int = 4,
    retries: int = 2,
    progress: Progress | None = None,
    *,
    source_dir: str | os.PathLike[str] | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    retry_wait: float = 1.0,
    min_rate: float = DEFAULT_MIN_RATE,
    deadline: float | None = None,
) -> PullResult:
    """Put exactly the files of ``expected`` (path -> sha256 hex) into ``dest_dir``, verified.

    Hub files are fetched at the pinned commit, never at a branch. Directory sources (``local``,
    ``pvc``) are copied from ``source_dir`` (default: the directory named by ``resolved.uri``).
    Files already in place with the right digest are skipped, so an interrupted pull resumes.
    Raises PullError naming the first file that could not be placed; the others keep their state.
    Each Hub download must end within ``2 * timeout + size / min_rate`` seconds, and the whole pull
    within ``deadline`` seconds when given (DEADLINE_EXCEEDED).
    """
    started = time.monotonic()
    where = f"{resolved.uri}@{resolved.revision}" if resolved.revision else resolved.uri
    wanted: dict[str, str] = {}
    for rel, digest in expected.items():
        try:
            check_relative_path(rel, where)
        except SourceError as exc:
            raise PullError(exc.reason, printable(str(rel)), exc.message) from exc
        if not isinstance(digest, str) or not _HEX64.fullmatch(digest.lower()):
            raise PullError(Reason.INVALID_SOURCE, rel, f"the expected digest of {rel!r} is not a sha256 hex")
        wanted[rel] = digest.lower()
    try:
        check_no_path_conflicts(wanted, where)
        client, commit, source_root = None, None, None
        if resolved.kind == "hf":
            client, commit = client_for(resolved, token, timeout)
        else:
            source_root = Path(source_dir) if source_dir is not None else local_root(resolved)
            if source_root is None:
                raise SourceError(
                    Reason.INVALID_SOURCE, f"{resolved.uri} needs source_dir: the directory it is mounted at"
                )
    except SourceError as exc:
        raise PullError(exc.reason, "", exc.message) from exc

    dest_path = Path(dest_dir)
    dest_path.mkdir(parents=True, exist_ok=True)
    dest = dest_path.resolve(strict=True)
    parents = {rel: _prepare_parent(dest, rel) for rel in wanted}
    for directory in set(parents.values()):
        _remove_stale_partials(directory)

    job = _Job(
        dest=dest,
        sizes={f.path: f.size for f in resolved.files},
        retries=max(0, retries),
        retry_wait=retry_wait,
        progress=progress,
        client=client,
        commit=commit,
        source_root=source_root,
        where=where,
        timeout=timeout,
        min_rate=max(1.0, min_rate),
        deadline=None if deadline is None else started + deadline,
    )
    order = sorted(wanted, key=lambda rel: job.sizes.get(rel, 0), reverse=True)  # largest first
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        futures: dict[Future[tuple[str, int]], str] = {
            pool.submit(_pull_one, job, rel, wanted[rel]): rel for rel in order
        }
        done_set, _ = wait(futures, return_when=FIRST_EXCEPTION)
        failed = next((f for f in futures if f in done_set and f.exception() is not None), None)
        if failed is not None:
            job.stop.set()
            for future in futures:
                future.cancel()
    if failed is not None:
        error = failed.exception()
        assert error is not None
        raise error

    downloaded: list[str] = []
    skipped: list[str] = []
    transferred = 0
    for future, rel in futures.items():
        outcome, count = future.result()
        (downloaded if outcome == "downloaded" else skipped).append(rel)
        transferred += count
    files = tuple(sorted(FileEntry(path=rel, size=_size_of(job, rel), sha256=digest) for rel, digest in wanted.items()))
    return PullResult(
        files=files,
        downloaded=tuple(sorted(downloaded)),
        skipped=tuple(sorted(skipped)),
        bytes=transferred,
        seconds=time.monotonic() - started,
    )
