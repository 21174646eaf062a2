"""Resolve a model held in a directory (a mounted PVC or a local path) into pinned file digests.

A directory has no commit to pin, so its identity is the set of its files and their plain sha256:
the same values a Hub listing gives for LFS files and that model-signing signs. Files are hashed in
parallel threads because hashlib releases the GIL on large buffers, which is how model-signing
reaches several GB/s on warm data.

The path rules (``evidence.paths``) and the metadata reader (``evidence.documents``) are shared with
every other source, so all agree on what a safe model path and a readable metadata file are.
"""

from __future__ import annotations

import hashlib
import io
import os
import stat
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from openmodel_operator.evidence.documents import (
    MAX_METADATA_BYTES,
    OPENNESS_FILE,
    README_FILE,
    card_metadata,
    load_yaml_mapping,
)
from openmodel_operator.evidence.errors import SourceError
from openmodel_operator.evidence.paths import (
    DEFAULT_MAX_FILE_SIZE,
    DEFAULT_MAX_FILES,
    check_no_path_conflicts,
    check_relative_path,
)
from openmodel_operator.evidence.records import FileEntry, Reason, ResolvedSource

# huggingface_hub's ``local_dir`` mode keeps its download bookkeeping (etags, locks) here. It is
# not part of the model and differs from machine to machine, so an exact file-set comparison
# against the signed manifest would fail on every directory filled by ``snapshot_download``.
HF_LOCAL_DIR_CACHE = ".cache/huggingface"

MAX_README_BYTES = 16 * 1024 * 1024  # a model card kept as bytes (ResolvedSource.readme); a larger one is not kept
HASH_CHUNK = 4 * 1024 * 1024


def hash_file(path: str | os.PathLike[str]) -> tuple[int, str]:
    """Size and sha256 hex of one regular file, refusing to follow a symlink at the last component.

    ``O_NOFOLLOW`` closes the window between the directory walk (which saw a regular file) and the
    read (which could otherwise follow a symlink swapped in meanwhile).
    """
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0))
    with io.FileIO(fd, "rb", closefd=True) as handle:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(f"{os.fspath(path)!r} is not a regular file")
        hasher = hashlib.sha256()
        buffer = bytearray(HASH_CHUNK)
        view = memoryview(buffer)
        size = 0
        while True:
            count = handle.readinto(view)
            if not count:
                break
            hasher.update(view[:count])
            size += count
    return size, hasher.hexdigest()


def default_hash_workers() -> int:
    """Enough threads to keep every core hashing and to hide the latency of network-backed volumes."""
    return min(16, max(4, os.cpu_count() or 1))



def local_root(resolved: ResolvedSource) -> Path | None:
    """The directory a local source was read from, when its URI is a path or a ``file://`` URI."""
    uri = resolved.uri
    if uri.startswith("file://"):
        return Path(unquote(urlparse(uri).path))
    if os.path.isabs(uri):
        return Path(uri)
    return None


def open_beneath(root: Path, rel: str, where: str) -> io.FileIO:
    """Open ``root/rel`` for reading, refusing a symlink at any component below ``root``.

    A pull or a signature read from a volume must see the same files the walk saw; a link added
    afterwards must not redirect it to content outside the model.
    """
    check_relative_path(rel, where)
    current = root
    for part in rel.split("/"):
        current = current / part
        if current.is_symlink():
            raise SourceError(
                Reason.SYMLINK_NOT_ALLOWED, f"{rel!r} in {where} goes through a symbolic link: copy the file instead"
            )
    fd = os.open(current, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0))
    handle = io.FileIO(fd, "rb", closefd=True)
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        handle.close()
        raise SourceError(Reason.UNSAFE_PATH, f"{rel!r} in {where} is not a regular file")
    return handle


def read_beneath(root: Path, rel: str, max_bytes: int) -> bytes:
    """At most ``max_bytes`` of ``root/rel`` (FILE_TOO_LARGE beyond), read as ``open_beneath`` allows."""
    where = os.fspath(root)
    try:
        with open_beneath(root, rel, where) as handle:
            data = handle.read(max_bytes + 1)
    except FileNotFoundError as exc:
        raise SourceError(Reason.INVALID_SOURCE, f"{rel!r} does not exist in {where}") from exc
    if len(data) > max_bytes:
        raise SourceError(Reason.FILE_TOO_LARGE, f"{rel!r} in {where} is larger than {max_bytes} bytes")
    return data


def _read_small(path: Path, what: str, limit: int = MAX_METADATA_BYTES, prefix_only: bool = False) -> bytes:
    """At most ``limit`` bytes of a metadata file; beyond that it is refused, or cut for a README."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0))
    with io.FileIO(fd, "rb", closefd=True) as handle:
        data = handle.read(limit + 1)
    if prefix_only:
        return data[:limit]
    if len(data) > limit:
        raise SourceError(Reason.FILE_TOO_LARGE, f"{what} is larger than {limit} bytes: keep metadata files small")
    return data


def _same_as_hashed(data: bytes, digest: str, name: str, where: str) -> bytes:
    """``data`` when it hashes to the digest the walk recorded: what is parsed is what is listed (and signed)."""
    if hashlib.sha256(data).hexdigest() != digest:
        raise SourceError(
            Reason.INVALID_SOURCE,
            f"{name} in {where} changed while the directory was being read: stop writers and try again",
        )
    return data


def _walk(root: Path, where: str, max_files: int, max_file_size: int) -> list[tuple[str, Path, int]]:
    """Every regular file under ``root`` as (relative POSIX path, absolute path, size)."""
    found: list[tuple[str, Path, int]] = []
    stack: list[tuple[str, str]] = [("", os.fspath(root))]
    while stack:
        rel_dir, abs_dir = stack.pop()
        with os.scandir(abs_dir) as entries:
            for entry in entries:
                rel = f"{rel_dir}/{entry.name}" if rel_dir else entry.name
                if entry.is_symlink():
                    raise SourceError(
                        Reason.SYMLINK_NOT_ALLOWED,
                        f"{rel!r} in {where} is a symbolic link: copy the file it points to into the model "
                        "directory (links could point outside the model)",
                    )
                if entry.is_dir(follow_symlinks=False):
                    if rel != HF_LOCAL_DIR_CACHE:
                        stack.append((rel, entry.path))
                    continue
                if not entry.is_file(follow_symlinks=False):
                    raise SourceError(
                        Reason.UNSAFE_PATH,
                        f"{rel!r} in {where} is neither a regular file nor a directory: remove it",
                    )
                check_relative_path(rel, where)
                size = entry.stat(follow_symlinks=False).st_size
                if size > max_file_size:
                    raise SourceError(
                        Reason.FILE_TOO_LARGE,
                        f"{rel!r} in {where} is {size} bytes, more than the limit of {max_file_size}",
                    )
                found.append((rel, Path(entry.path), size))
                if len(found) > max_files:
                    raise SourceError(
                        Reason.TOO_MANY_FILES,
                        f"{where} holds more than {max_files} files: a model directory must hold only the model",
                    )
    return found


def resolve_directory(
    path: str | os.PathLike[str],
    uri: str | None = None,
    kind: str = "local",
    max_files: int = DEFAULT_MAX_FILES,
    max_file_size: int = DEFAULT_MAX_FILE_SIZE,
    workers: int | None = None,
) -> ResolvedSource:
    """Hash every regular file of a model directory and read its card and openness declaration.

    Symlinks and special files are refused rather than skipped: a skipped file could still be
    loaded by a model server, and a followed link could pull in content from outside the model.
    Only huggingface_hub's ``.cache/huggingface/`` bookkeeping at the top level is left out.
    """
    root = Path(path)
    where = uri or os.fspath(root)
    try:
        root_abs = root.resolve(strict=True)
    except (FileNotFoundError, NotADirectoryError) as exc:
        raise SourceError(Reason.INVALID_SOURCE, f"the model directory {where!r} does not exist") from exc
    if not root_abs.is_dir():
        raise SourceError(Reason.INVALID_SOURCE, f"the model directory {where!r} is not a directory")
    try:
        found = _walk(root_abs, where, max_files, max_file_size)
        check_no_path_conflicts((rel for rel, _, _ in found), where)
        found.sort(key=lambda item: item[2], reverse=True)  # largest first balances the threads
        with ThreadPoolExecutor(max_workers=workers or default_hash_workers()) as pool:
            futures = [pool.submit(hash_file, item[1]) for item in found]
            try:
                digests = [future.result() for future in futures]
            except BaseException:
                pool.shutdown(cancel_futures=True)  # an unreadable file decides: stop hashing the rest
                raise
        entries: list[FileEntry] = []
        for (rel, _, listed_size), (size, digest) in zip(found, digests, strict=True):
            if size != listed_size:
                raise SourceError(
                    Reason.INVALID_SOURCE,
                    f"{rel!r} in {where} changed while it was being hashed: stop writers and try again",
                )
            entries.append(FileEntry(path=rel, size=size, sha256=digest))
        hashed = {entry.path: entry.sha256 for entry in entries}
        readme: bytes | None = None
        card: dict[str, Any] = {}
        if README_FILE in hashed:
            data = _read_small(root_abs / README_FILE, README_FILE, limit=MAX_README_BYTES, prefix_only=True)
            card = card_metadata(data)
            if len(data) < MAX_README_BYTES or hashlib.sha256(data).hexdigest() == hashed[README_FILE]:
                readme = _same_as_hashed(data, hashed[README_FILE], README_FILE, where)
        declaration = None
        openness_bytes: bytes | None = None
        if OPENNESS_FILE in hashed:
            data = _same_as_hashed(
                _read_small(root_abs / OPENNESS_FILE, OPENNESS_FILE), hashed[OPENNESS_FILE], OPENNESS_FILE, where
            )
            declaration = load_yaml_mapping(data, f"{OPENNESS_FILE} in {where}")
            openness_bytes = data
    except PermissionError as exc:
        raise SourceError(
            Reason.ACCESS_DENIED,
            f"the model directory {where!r} could not be read ({exc.strerror}: {exc.filename}): "
            "give the operator read access to every file",
        ) from exc
    except OSError as exc:
        raise SourceError(
            Reason.INVALID_SOURCE,
            f"the model directory {where!r} could not be read ({exc.strerror or exc}): check the volume",
        ) from exc
    return ResolvedSource(
        uri=uri if uri is not None else os.fspath(root_abs),
        kind=kind,
        files=tuple(sorted(entries)),
        card=card,
        openness_declaration=declaration,
        openness_bytes=openness_bytes,
        readme=readme,
    )
