"""The pinned manifest: what the operator verified, handed to the fetch Job and the verify-on-start check.

It travels as JSON in a ConfigMap owned by the OpenModel, so the Job needs no API access: it downloads
exactly these files at exactly this commit and accepts only these digests. A tenant can edit that
ConfigMap, so parsing trusts nothing in it: every file's path, size and sha256 must hash to the
recorded name-bound manifest digest (``evidence.manifest.manifest_digest_of``), and the Job is given the
digest the operator decided on (``openmodel fetch --expect-digest``) to compare with.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Mapping
from typing import Any

from openmodel_operator.evidence.errors import SourceError
from openmodel_operator.evidence.manifest import manifest_digest_of
from openmodel_operator.evidence.paths import check_no_path_conflicts, check_relative_path
from openmodel_operator.evidence.records import FileEntry, Reason
from openmodel_operator.evidence.text import is_unsafe_char

CONFIGMAP_KEY = "manifest.json"
FORMAT = "openmodel.io/pinned-manifest/v1"

_DIGEST_REF = re.compile(r"sha256:[0-9a-f]{64}")
_HEX64 = re.compile(r"[0-9a-fA-F]{64}")
_FILE_FIELDS = frozenset({"path", "size", "sha256"})
_MAX_SIZE = 2**63 - 1
# Unicode categories a file name may not hold: controls (C0/C1), format characters (bidi overrides
# and isolates, zero-width marks), lone surrogates, line and paragraph separators. They make a name
# display as another one, or break the one-line logs and messages that show it.

class PinnedManifestError(ValueError):
    """The pinned manifest is malformed, names an unsafe path or is inconsistent with its own digest.

    ``reason`` says which: INVALID_SOURCE (malformed), UNSAFE_PATH, or MANIFEST_MISMATCH (the files
    do not hash to the recorded digest: the manifest was edited).
    """

    def __init__(self, message: str, reason: Reason = Reason.INVALID_SOURCE) -> None:
        super().__init__(message)
        self.reason = reason


def _show(value: object) -> str:
    """A clipped, escaped rendering of a hostile value for an error message."""
    text = ascii(value)
    return text if len(text) <= 120 else text[:117] + "..."


def _unsafe_character(path: str) -> str | None:
    for ch in path:
        if is_unsafe_char(ch):
            return f"U+{ord(ch):04X}"
    return None


def file_entry(index: int, item: object) -> FileEntry:
    """One ``files[i]`` entry, checked field by field (types are never coerced); also read from claim reports."""
    where = f"files[{index}]"
    if not isinstance(item, Mapping):
        raise PinnedManifestError(f"{where} is {_show(item)}, not an object with path, size and sha256")
    if set(item) != _FILE_FIELDS:
        raise PinnedManifestError(
            f"{where} has fields {_show(sorted(str(k) for k in item))}; exactly path, size and sha256 are expected"
        )
    path, size, sha256 = item["path"], item["size"], item["sha256"]
    if not isinstance(path, str):
        raise PinnedManifestError(f"{where}.path is {_show(path)}, not a string")
    bad = _unsafe_character(path)
    if bad is not None:
        raise PinnedManifestError(
            f"{where}.path {_show(path)} holds the control or format character {bad}; a model file name may not",
            Reason.UNSAFE_PATH,
        )
    try:
        check_relative_path(path, "the pinned manifest")
    except SourceError as exc:
        raise PinnedManifestError(f"{where}.path: {exc.message}", Reason.UNSAFE_PATH) from None
    if isinstance(size, bool) or not isinstance(size, int) or not 0 <= size <= _MAX_SIZE:
        raise PinnedManifestError(f"{where}.size is {_show(size)}, not a byte count (an integer from 0 to 2^63-1)")
    if not isinstance(sha256, str) or not _HEX64.fullmatch(sha256):
        raise PinnedManifestError(f"{where}.sha256 is {_show(sha256)}, not 64 hex digits")
    return FileEntry(path, size, sha256.lower())


def _optional_text(doc: Mapping[str, Any], key: str) -> str | None:
    value = doc.get(key)
    if value is not None and not isinstance(value, str):
        raise PinnedManifestError(f"{key} is {_show(value)}, not a string or null")
    return value


@dataclasses.dataclass(frozen=True)
class PinnedManifest:
    """Source, commit and the expected sha256 of every file to place on the volume."""

    source: str
    revision: str | None
    manifest_digest: str
    files: tuple[FileEntry, ...]
    endpoint: str | None = None

    @property
    def expected(self) -> dict[str, str]:
        """``{path: sha256 hex}``, the form ``sources.pull`` takes."""
        return {f.path: f.sha256 for f in self.files}

    @property
    def total_bytes(self) -> int:
        return sum(f.size for f in self.files)

    def to_json(self) -> str:
        """Stable JSON (sorted files) so re-applying the ConfigMap is a no-op."""
        doc = {
            "format": FORMAT,
            "source": self.source,
            "revision": self.revision,
            "endpoint": self.endpoint,
            "manifestDigest": self.manifest_digest,
            "files": [{"path": f.path, "size": f.size, "sha256": f.sha256} for f in sorted(self.files)],
        }
        return json.dumps(doc, separators=(",", ":"), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> PinnedManifest:
        """Parse, refuse anything unsafe, and check that the files hash to the recorded manifest digest.

        Raises only PinnedManifestError, whatever the text holds (it may come from a ConfigMap a
        tenant edited).
        """
        try:
            doc = json.loads(text)
        except (ValueError, TypeError, RecursionError) as exc:  # RecursionError: deeply nested JSON
            raise PinnedManifestError(f"pinned manifest is not JSON ({type(exc).__name__})") from None
        if not isinstance(doc, dict):
            raise PinnedManifestError(f"pinned manifest is {type(doc).__name__}, not a JSON object")
        if doc.get("format") != FORMAT:
            raise PinnedManifestError(f"format is {_show(doc.get('format'))}, expected {FORMAT}")
        source = doc.get("source")
        if not isinstance(source, str) or not source:
            raise PinnedManifestError(f"source is {_show(source)}, not a source URI")
        recorded = doc.get("manifestDigest")
        if not isinstance(recorded, str) or not _DIGEST_REF.fullmatch(recorded):
            raise PinnedManifestError(f"manifestDigest is {_show(recorded)}, not sha256:<64 lower-case hex>")
        raw_files = doc.get("files")
        if not isinstance(raw_files, list):
            raise PinnedManifestError(f"files is {_show(raw_files)}, not a list")
        files = tuple(file_entry(i, item) for i, item in enumerate(raw_files))
        try:
            check_no_path_conflicts((f.path for f in files), "the pinned manifest")
        except SourceError as exc:
            raise PinnedManifestError(exc.message, Reason.UNSAFE_PATH) from None
        pinned = cls(
            source=source,
            revision=_optional_text(doc, "revision"),
            manifest_digest=recorded,
            files=files,
            endpoint=_optional_text(doc, "endpoint"),
        )
        actual = manifest_digest_of(files)
        if actual != recorded:
            raise PinnedManifestError(
                f"pinned manifest lists files (paths, sizes, digests) that hash to {actual}, not the recorded "
                f"{recorded}: it was edited after the operator wrote it",
                Reason.MANIFEST_MISMATCH,
            )
        return pinned
