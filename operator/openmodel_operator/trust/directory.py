"""Resolve a model held in a directory (a mounted PVC or a local path) into pinned file digests.

A directory has no commit to pin, so its identity is the set of its files and their plain sha256:
the same values a Hub listing gives for LFS files and that model-signing signs. Files are hashed in
parallel threads because hashlib releases the GIL on large buffers, which is how model-signing
reaches several GB/s on warm data.

The path rules and the YAML reader live here because every source (Hub listing, directory walk,
pull target) must agree on what a safe model path and a readable metadata file are.
"""

from __future__ import annotations

import datetime
import hashlib
import io
import math
import os
import stat
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import yaml

from openmodel_operator.trust.errors import SourceError
from openmodel_operator.trust.evidence import FileEntry, Reason, ResolvedSource
from openmodel_operator.trust.text import is_unsafe_char, printable

OPENNESS_FILE = "openness.yaml"
README_FILE = "README.md"
# huggingface_hub's ``local_dir`` mode keeps its download bookkeeping (etags, locks) here. It is
# not part of the model and differs from machine to machine, so an exact file-set comparison
# against the signed manifest would fail on every directory filled by ``snapshot_download``.
HF_LOCAL_DIR_CACHE = ".cache/huggingface"

DEFAULT_MAX_FILES = 10_000
DEFAULT_MAX_FILE_SIZE = 2 * 1024**4  # 2 TiB: larger than any published checkpoint shard
MAX_METADATA_BYTES = 1024 * 1024  # openness.yaml, README front matter, signature bundles
MAX_README_BYTES = 16 * 1024 * 1024  # a model card kept as bytes (ResolvedSource.readme); a larger one is not kept
HASH_CHUNK = 4 * 1024 * 1024
# YAML is parsed in pure Python: 1 MiB of it costs seconds of CPU, so what is parsed is kept small
MAX_FRONT_MATTER_CHARS = 64 * 1024
MAX_DECLARATION_BYTES = 64 * 1024
_MAX_PATH_CHARS = 4096
_MAX_COMPONENT_BYTES = 255

MAX_YAML_DEPTH = 64  # nesting of YAML collections in metadata files; real cards use 3 or 4


def check_relative_path(path: object, where: str) -> str:
    """Return ``path`` if it is a safe relative POSIX path inside a model, else raise UNSAFE_PATH.

    A listing comes from a server or a filesystem we do not control; a name such as ``../x``,
    ``/etc/passwd`` or ``a\\b`` could make a later pull write outside its target directory or make
    two tools disagree on which file is meant, so it is refused before anything uses it. A name with
    bidi overrides, line/paragraph separators or C1/format characters (UNSAFE_FILE_NAME) would read
    differently in a terminal, a status message or a review than the file it names.
    """
    problem = _path_problem(path)
    if problem is None:
        return str(path)
    shown = printable(path, 200) if isinstance(path, str) else printable(repr(path), 200)
    if problem == _DISPLAY_PROBLEM:
        raise SourceError(
            Reason.UNSAFE_FILE_NAME,
            f"the file name '{shown}' in {printable(where)} holds characters that change how it is displayed "
            "(bidi overrides, line/paragraph separators, C1 or format characters, shown escaped here): "
            "rename the file with plain characters",
        )
    raise SourceError(
        Reason.UNSAFE_PATH,
        f"the file name '{shown}' in {printable(where)} is unsafe ({problem}): a model may only hold relative "
        "paths without '..', '.', empty components, backslashes or control characters",
    )


_DISPLAY_PROBLEM = "characters that change how the name is displayed"


def _path_problem(path: object) -> str | None:
    if not isinstance(path, str) or not path:
        return "not a non-empty string"
    if len(path) > _MAX_PATH_CHARS:
        return "too long"
    if "\x00" in path:
        return "NUL character"
    if "\\" in path:
        return "backslash"
    if any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in path):
        return "control character"
    if path.startswith("/"):
        return "absolute path"
    try:
        encoded = path.encode("utf-8")
    except UnicodeEncodeError:
        return "not valid UTF-8"
    del encoded
    for part in path.split("/"):
        if part == "":
            return "empty path component"
        if part in (".", ".."):
            return f"'{part}' component"
        if len(part.encode("utf-8")) > _MAX_COMPONENT_BYTES:
            return "path component too long"
    if any(is_unsafe_char(ch) for ch in path):
        return _DISPLAY_PROBLEM
    return None


def check_no_path_conflicts(paths: Iterable[str], where: str) -> None:
    """Refuse listings where a path is listed twice or is both a file and a directory.

    Either would make the pulled tree depend on download order, so the files a server listed and
    the files a model server finally reads could differ.
    """
    seen: set[str] = set()
    parents: set[str] = set()
    for path in paths:
        if path in seen:
            raise SourceError(
                Reason.UNSAFE_PATH, f"the file name {path!r} is listed twice in {where}: the listing is ambiguous"
            )
        seen.add(path)
        parts = path.split("/")
        parents.update("/".join(parts[:i]) for i in range(1, len(parts)))
    clash = sorted(seen & parents)
    if clash:
        raise SourceError(
            Reason.UNSAFE_PATH,
            f"{clash[0]!r} in {where} is listed both as a file and as a directory: the listing is ambiguous",
        )


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


def _reject_non_mapping(what: str, value: object) -> SourceError:
    return SourceError(
        Reason.INVALID_SOURCE, f"{what} must be a YAML mapping at the top level, not {type(value).__name__}"
    )


class _NoAliasLoader(yaml.SafeLoader):
    """SafeLoader without aliases and with a nesting limit.

    A few hundred bytes of aliases can expand to gigabytes (billion laughs), and deep nesting drives
    the composer's recursion; both are refused while composing, before any value is constructed.
    """

    _depth = 0

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node | None:  # type: ignore[override]
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()  # type: ignore[no-untyped-call]
            raise yaml.composer.ComposerError(None, None, "YAML aliases are not accepted", event.start_mark)
        self._depth += 1
        try:
            if self._depth > MAX_YAML_DEPTH:
                event = self.peek_event()  # type: ignore[no-untyped-call]
                raise yaml.composer.ComposerError(
                    None, None, f"YAML nested more than {MAX_YAML_DEPTH} levels deep", event.start_mark
                )
            return super().compose_node(parent, index)  # type: ignore[no-any-return]
        finally:
            self._depth -= 1


def _jsonable(value: Any) -> Any:
    """YAML values as JSON types, because the card and the declaration end up in status and Events."""
    if isinstance(value, Mapping):
        return {str(key): _jsonable(item) for key, item in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_jsonable(item) for item in value]
    if isinstance(value, datetime.date | datetime.datetime):
        return value.isoformat()
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return str(value)


def load_yaml_mapping(data: bytes | str, what: str) -> dict[str, Any]:
    """Parse one YAML document that must be a mapping (``openness.yaml``), as JSON-compatible values."""
    if len(data) > MAX_METADATA_BYTES:
        raise SourceError(
            Reason.FILE_TOO_LARGE, f"{what} is larger than {MAX_METADATA_BYTES} bytes: keep metadata files small"
        )
    try:
        text = data.decode("utf-8") if isinstance(data, bytes) else data
        loaded = yaml.load(text, Loader=_NoAliasLoader)  # a SafeLoader subclass
    except (UnicodeDecodeError, yaml.YAMLError, RecursionError, ValueError, OverflowError) as exc:
        # ValueError: an integer of more than 4300 digits (Python's int conversion limit)
        detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise SourceError(
            Reason.INVALID_SOURCE, f"{what} is not valid YAML ({printable(detail)}): fix or remove it"
        ) from exc
    if loaded is None:
        return {}
    if not isinstance(loaded, Mapping):
        raise _reject_non_mapping(what, loaded)
    try:
        result = _jsonable(loaded)
    except RecursionError as exc:
        raise SourceError(Reason.INVALID_SOURCE, f"{what} is nested too deeply: fix or remove it") from exc
    assert isinstance(result, dict)
    return result


def front_matter(text: str) -> str | None:
    """The YAML between the opening and closing ``---`` lines of a model card, or None.

    Same result as huggingface_hub's ``^(\\s*---[\\r\\n]+)([\\S\\s]*?)([\\r\\n]+---(\\r\\n|\\n|$))``
    (what the Hub parses into ``cardData``), computed with ``str.find`` scans instead: that regular
    expression takes quadratic time on a card such as ``---\\n`` followed by many ``\\r``. Only the
    first MAX_METADATA_BYTES characters are looked at.
    """
    text = text[:MAX_METADATA_BYTES]
    body = text.lstrip()
    offset = len(text) - len(body)
    if not body.startswith("---") or body[3:4] not in ("\r", "\n") or body[3:4] == "":
        return None
    opening = offset + 3  # the first newline after the opening dashes
    start = opening
    while start < len(text) and text[start] in "\r\n":
        start += 1
    search = start
    while True:
        dashes = text.find("---", search)
        if dashes < 0:
            break
        if dashes > start and text[dashes - 1] in "\r\n" and _closes(text, dashes):
            end = dashes - 1
            while end > start and text[end - 1] in "\r\n":
                end -= 1
            return text[start:end]
        search = dashes + 1
    # no closing line after the body: the regex backtracks into the opening newlines, which matches
    # only a closing '---' right after them (an empty front matter)
    if start - opening >= 2 and _closes(text, start):
        return ""
    return None


def _closes(text: str, dashes: int) -> bool:
    """True when ``text[dashes:]`` is ``---`` followed by a line end or the end of the text."""
    if not text.startswith("---", dashes):
        return False
    after = text[dashes + 3 : dashes + 5]
    return after in ("", "\n", "\r\n") or after.startswith("\n")


def card_metadata(readme: bytes | str) -> dict[str, Any]:
    """The YAML front matter of a model card (the ``---`` block at the top of README.md).

    This is what the Hub serves as ``cardData``, computed here from the card's own bytes. A card
    whose front matter is not valid YAML gives an empty mapping, as on the Hub: the license is then
    unknown and policies decide on that.
    """
    if isinstance(readme, bytes):
        readme = readme[:MAX_METADATA_BYTES]
    text = readme.decode("utf-8", "replace") if isinstance(readme, bytes) else readme
    matter = front_matter(text)
    if matter is None or len(matter) > MAX_FRONT_MATTER_CHARS:
        return {}  # a front matter this large is not a model card's: the license is then unknown
    try:
        return load_yaml_mapping(matter, "the README.md front matter")
    except SourceError:
        return {}


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
