"""Reading the small metadata documents of a model (``openness.yaml``, a model card's front matter).

Parsed in pure Python from bytes a signature or pin covers, with aliases refused and nesting and size
bounded: a few hundred bytes of YAML can otherwise cost gigabytes or seconds of CPU.
"""

from __future__ import annotations

import datetime
import math
from collections.abc import Mapping
from typing import Any

import yaml

from openmodel_operator.evidence.errors import SourceError
from openmodel_operator.evidence.records import Reason
from openmodel_operator.evidence.text import printable

OPENNESS_FILE = "openness.yaml"
README_FILE = "README.md"
MAX_METADATA_BYTES = 1024 * 1024  # openness.yaml, README front matter, signature bundles
# YAML is parsed in pure Python: 1 MiB of it costs seconds of CPU, so what is parsed is kept small
MAX_FRONT_MATTER_CHARS = 64 * 1024
MAX_DECLARATION_BYTES = 64 * 1024
MAX_YAML_DEPTH = 64  # nesting of YAML collections in metadata files; real cards use 3 or 4


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
