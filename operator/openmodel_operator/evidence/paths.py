"""What a safe file name inside a model is, for every source alike.

A Hub listing, a directory walk, a pinned manifest and a pull target must agree on which names are
safe (relative, no ``..``, no characters that display differently), or a name one accepts could
make another write outside its target or show a different file than it means.
"""

from __future__ import annotations

from collections.abc import Iterable

from openmodel_operator.evidence.errors import SourceError
from openmodel_operator.evidence.records import Reason
from openmodel_operator.evidence.text import is_unsafe_char, printable

DEFAULT_MAX_FILES = 10_000
DEFAULT_MAX_FILE_SIZE = 2 * 1024**4  # 2 TiB: larger than any published checkpoint shard
_MAX_PATH_CHARS = 4096
_MAX_COMPONENT_BYTES = 255


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

