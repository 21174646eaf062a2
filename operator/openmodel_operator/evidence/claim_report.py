"""The report a claim examination Job sends to the operator: its wire format, bounded both ways.

A ``pvc://<claim>/<path>`` source lives on a volume only pods can mount, so a Job (``openmodel report-claim``)
hashes it and POSTs what it found: every file's path, size and sha256, the signature bundle and the bytes of the
evidence files (card, openness declaration). The operator cannot tell that Job from anything else a tenant runs
in the namespace: the nonce that binds a report to one examination is in the Job's arguments, which the tenant
can read. So the report is never trusted as such. It is parsed here (sizes, counts, nesting and types bounded,
no exception but ``ClaimReportError``), turned into the same ``ResolvedSource`` a directory or a mirror gives,
and decided by the same ``trust.decision.decide``: the signature over the manifest, the pin, the policies. The
serving pods then re-hash the claim against the decided manifest before the server starts (verify-on-start).

Pure: no I/O. The Job encodes with ``encode_report``, the operator's listener parses with ``parse_report``.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

from openmodel_operator.evidence.documents import (
    MAX_DECLARATION_BYTES,
    MAX_METADATA_BYTES,
    OPENNESS_FILE,
    README_FILE,
    card_metadata,
    load_yaml_mapping,
)
from openmodel_operator.evidence.errors import SourceError
from openmodel_operator.evidence.json_depth import json_depth
from openmodel_operator.evidence.paths import DEFAULT_MAX_FILES, check_no_path_conflicts
from openmodel_operator.evidence.pinned import PinnedManifestError, file_entry
from openmodel_operator.evidence.records import FileEntry, Reason, ResolvedSource
from openmodel_operator.evidence.text import printable

FORMAT = "openmodel.io/claim-report/v1"
# The whole body: the file list fits the 1 MB the manifest ConfigMap can hold anyway, and the three documents
# are at most 1 MiB each (about 1.4 MiB as base64); anything larger is refused before it is parsed.
MAX_REPORT_BYTES = 6 * 1024 * 1024
MAX_BUNDLE_BYTES = MAX_METADATA_BYTES  # a Sigstore bundle is a few KiB; a certificate chain a few tens
MAX_README_BYTES = MAX_METADATA_BYTES  # a larger card is not carried: its license then reads as unknown
MAX_OPENNESS_BYTES = MAX_DECLARATION_BYTES
MAX_JSON_VALUES = 8 * DEFAULT_MAX_FILES  # 4 fields and a container per file, and room for the rest
MAX_JSON_DEPTH = 4  # report -> files -> entry; error -> fields
MAX_MESSAGE_CHARS = 500
NONCE = re.compile(r"[0-9a-f]{32}")

_FIELDS = frozenset({"format", "nonce", "files", "signature", "readme", "openness"})
_ERROR_FIELDS = frozenset({"format", "nonce", "error"})
# what a Job may say went wrong with the claim; anything else is a malformed report
REPORTABLE_ERRORS = frozenset(
    {
        Reason.INVALID_SOURCE,
        Reason.ACCESS_DENIED,
        Reason.UNSAFE_PATH,
        Reason.SYMLINK_NOT_ALLOWED,
        Reason.TOO_MANY_FILES,
        Reason.FILE_TOO_LARGE,
    }
)


class ClaimReportError(ValueError):
    """A report the operator refuses to read: malformed, oversized, or inconsistent with itself."""


@dataclasses.dataclass(frozen=True)
class ClaimReport:
    """What one claim examination Job says it found (unverified: ``resolved`` hands it to the decision)."""

    nonce: str
    files: tuple[FileEntry, ...] = ()
    signature: bytes | None = dataclasses.field(default=None, repr=False)
    readme: bytes | None = dataclasses.field(default=None, repr=False)
    openness: bytes | None = dataclasses.field(default=None, repr=False)
    # the Job could not read the claim: (reason, message), the message the Job's own text (printable, clipped)
    error: tuple[Reason, str] | None = None

    def resolved(self, uri: str, signature_path: str) -> ResolvedSource:
        """The report as the decision reads every source: the files, the bundle and the evidence bytes.

        The card and the declaration are parsed for display only when their bytes hash to the digest listed for
        them (the decision itself reads the bytes, and only where a signature or the pin covers that digest). A
        bundle that does not hash to the digest listed for the signature file is refused: the report would
        contradict itself.
        """
        listed = {f.path: f.sha256 for f in self.files}
        if self.signature is not None:
            if signature_path not in listed:
                raise ClaimReportError(f"the report carries a signature bundle but lists no {signature_path!r}")
            if hashlib.sha256(self.signature).hexdigest() != listed[signature_path]:
                raise ClaimReportError(f"the signature bundle does not hash to the digest listed for {signature_path}")
        elif signature_path in listed:
            raise ClaimReportError(f"the report lists {signature_path!r} but does not carry the bundle")
        readme = _if_listed(self.readme, README_FILE, listed)
        openness = _if_listed(self.openness, OPENNESS_FILE, listed)
        declaration: Mapping[str, Any] | None = None
        if openness is not None:
            try:
                declaration = load_yaml_mapping(openness, f"{OPENNESS_FILE} in {uri}")
            except SourceError:
                declaration = None  # shown nowhere; the decision reads the bytes and says what is wrong with them
        return ResolvedSource(
            uri=uri,
            kind="pvc",
            files=tuple(sorted(self.files)),
            card=card_metadata(readme) if readme is not None else {},
            openness_declaration=declaration,
            signature_bundle=self.signature,
            openness_bytes=openness,
            readme=readme,
        )


def _if_listed(data: bytes | None, path: str, listed: Mapping[str, str]) -> bytes | None:
    """The bytes when they are what the report lists for ``path``; otherwise not evidence of anything."""
    if data is None or listed.get(path) != hashlib.sha256(data).hexdigest():
        return None
    return data


def encode_report(
    nonce: str,
    files: Sequence[FileEntry] = (),
    signature: bytes | None = None,
    readme: bytes | None = None,
    openness: bytes | None = None,
    error: tuple[Reason, str] | None = None,
) -> bytes:
    """The JSON body the Job sends; documents beyond their limits are left out (never cut: cut bytes would not
    hash to the listed digest anyway), and a report that would still be too large says so as an error."""
    if error is not None:
        doc: dict[str, Any] = {
            "format": FORMAT,
            "nonce": nonce,
            "error": {"reason": error[0].value, "message": error[1][:MAX_MESSAGE_CHARS]},
        }
        return json.dumps(doc, separators=(",", ":")).encode()
    doc = {
        "format": FORMAT,
        "nonce": nonce,
        "files": [{"path": f.path, "size": f.size, "sha256": f.sha256} for f in sorted(files)],
        "signature": _b64(signature, MAX_BUNDLE_BYTES),
        "readme": _b64(readme, MAX_README_BYTES),
        "openness": _b64(openness, MAX_OPENNESS_BYTES),
    }
    body = json.dumps(doc, separators=(",", ":")).encode()
    if len(body) > MAX_REPORT_BYTES:
        message = f"the report of {len(files)} files is {len(body)} bytes, more than {MAX_REPORT_BYTES}"
        return encode_report(nonce, error=(Reason.TOO_MANY_FILES, message))
    return body


def _b64(data: bytes | None, limit: int) -> str | None:
    return base64.b64encode(data).decode() if data is not None and len(data) <= limit else None


def parse_report(body: bytes, nonce: str) -> ClaimReport:
    """Parse a report for the examination ``nonce``; raises only ClaimReportError, whatever the body holds.

    The byte count, the number of JSON values (counted before parsing: 6 MiB of ``[]`` is a million lists) and
    the nesting are bounded; fields are exact and typed, file entries are checked like the pinned manifest's.
    """
    if len(body) > MAX_REPORT_BYTES:
        raise ClaimReportError(f"the report is {len(body)} bytes, more than {MAX_REPORT_BYTES}")
    values = body.count(b",") + body.count(b"{") + body.count(b"[")
    if values > MAX_JSON_VALUES:
        raise ClaimReportError(f"the report holds about {values} JSON values, more than {MAX_JSON_VALUES}")
    try:
        doc = json.loads(body)
    except (ValueError, RecursionError):  # ValueError covers bad UTF-8 and huge integers
        raise ClaimReportError("the report is not JSON") from None
    if json_depth(doc) > MAX_JSON_DEPTH:
        raise ClaimReportError(f"the report is nested more than {MAX_JSON_DEPTH} levels deep")
    if not isinstance(doc, dict):
        raise ClaimReportError("the report is not a JSON object")
    if doc.get("format") != FORMAT:
        raise ClaimReportError(f"the report's format is {printable(str(doc.get('format')), 80)!r}, not {FORMAT}")
    if doc.get("nonce") != nonce:
        raise ClaimReportError("the report names another examination (its nonce differs from the one it was sent to)")
    if set(doc) == _ERROR_FIELDS:
        return ClaimReport(nonce, error=_error(doc["error"]))
    if set(doc) != _FIELDS:
        raise ClaimReportError(f"the report has fields {printable(str(sorted(doc)), 200)}; expected {sorted(_FIELDS)}")
    raw_files = doc["files"]
    if not isinstance(raw_files, list) or len(raw_files) > DEFAULT_MAX_FILES:
        raise ClaimReportError(f"files is not a list of at most {DEFAULT_MAX_FILES} entries")
    try:
        files = tuple(file_entry(i, item) for i, item in enumerate(raw_files))
        check_no_path_conflicts((f.path for f in files), "the claim report")
    except PinnedManifestError as exc:
        raise ClaimReportError(f"the report's {exc}") from None
    except SourceError as exc:
        raise ClaimReportError(exc.message) from None
    return ClaimReport(
        nonce,
        files,
        signature=_document(doc, "signature", MAX_BUNDLE_BYTES),
        readme=_document(doc, "readme", MAX_README_BYTES),
        openness=_document(doc, "openness", MAX_OPENNESS_BYTES),
    )


def _error(value: object) -> tuple[Reason, str]:
    if not isinstance(value, dict) or set(value) != {"reason", "message"}:
        raise ClaimReportError("error is not an object with reason and message")
    reason, message = value["reason"], value["message"]
    allowed = {r.value: r for r in REPORTABLE_ERRORS}
    if not isinstance(reason, str) or reason not in allowed:
        raise ClaimReportError(f"error.reason {printable(str(reason), 60)!r} is not one a claim examination reports")
    if not isinstance(message, str):
        raise ClaimReportError("error.message is not a string")
    return allowed[reason], printable(message, MAX_MESSAGE_CHARS)


def _document(doc: Mapping[str, Any], key: str, limit: int) -> bytes | None:
    value = doc[key]
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > 4 * ((limit + 2) // 3):
        raise ClaimReportError(f"{key} is not base64 of at most {limit} bytes")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise ClaimReportError(f"{key} is not base64") from None


