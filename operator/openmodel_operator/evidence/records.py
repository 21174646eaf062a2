"""Plain data that flows through the trust pipeline.

The adapters (Hub client, directory hasher, signature verifier, openness reader) produce these
values; the pure decision code (``trust.decision``) consumes them. Keeping them free of I/O lets
the operator, the CLI and the tests share one decision path.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from enum import StrEnum
from typing import Any


class Reason(StrEnum):
    """Machine-readable reason codes, used as condition reasons, Event reasons and CLI output."""

    # the operator's own passes (lead)
    EXAMINATION_ERROR = "ExaminationError"
    CHILD_CONFLICT = "ChildConflict"
    CHILD_REJECTED = "ChildRejected"
    RECONCILE_ERROR = "ReconcileError"
    # source resolution (operational errors: the model could not be examined)
    INVALID_SOURCE = "InvalidSource"
    REPOSITORY_NOT_FOUND = "RepositoryNotFound"
    REVISION_NOT_FOUND = "RevisionNotFound"
    ACCESS_DENIED = "AccessDenied"
    ENDPOINT_UNREACHABLE = "EndpointUnreachable"
    UNSAFE_PATH = "UnsafePath"
    SYMLINK_NOT_ALLOWED = "SymlinkNotAllowed"
    TOO_MANY_FILES = "TooManyFiles"
    FILE_TOO_LARGE = "FileTooLarge"
    # policy verdicts
    SOURCE_NOT_ALLOWED = "SourceNotAllowed"
    SIGNATURE_MISSING = "SignatureMissing"
    SIGNATURE_MALFORMED = "SignatureMalformed"
    SIGNATURE_INVALID = "SignatureInvalid"
    UNTRUSTED_SIGNER = "UntrustedSigner"
    MANIFEST_MISMATCH = "ManifestMismatch"
    DIGEST_PIN_MISMATCH = "DigestPinMismatch"
    LICENSE_UNKNOWN = "LicenseUnknown"
    LICENSE_NOT_ALLOWED = "LicenseNotAllowed"
    LICENSE_DENIED = "LicenseDenied"
    OPENNESS_BELOW_MINIMUM = "OpennessBelowMinimum"
    OSAID_COMPONENTS_MISSING = "OSAIDComponentsMissing"
    # pulling
    PULLED_DIGEST_MISMATCH = "PulledDigestMismatch"
    DOWNLOAD_FAILED = "DownloadFailed"
    # POL
    POLICY_INVALID = "PolicyInvalid"
    ENDPOINT_NOT_ALLOWED = "EndpointNotAllowed"
    SERVING_NOT_ALLOWED = "ServingNotAllowed"
    # HUB
    SOURCE_REDIRECTED = "SourceRedirected"
    RESPONSE_TOO_LARGE = "ResponseTooLarge"
    DEADLINE_EXCEEDED = "DeadlineExceeded"
    UNSAFE_FILE_NAME = "UnsafeFileName"
    WEIGHTS_OUTSIDE_LFS = "WeightsOutsideLFS"
    # pvc:// sources, examined by a Job in the cluster (controller.claim_reports)
    CLAIM_REPORT_INVALID = "ClaimReportInvalid"
    CLAIM_EXAMINATION_FAILED = "ClaimExaminationFailed"
    CLAIM_NOT_REPORTED = "ClaimNotReported"


class FileProblem(StrEnum):
    """Why one file does not match the signed manifest."""

    DIGEST_MISMATCH = "DigestMismatch"
    MISSING = "Missing"
    UNSIGNED = "Unsigned"


@dataclasses.dataclass(frozen=True, order=True)
class FileEntry:
    """One file of a model: its POSIX path relative to the model root, size and plain sha256."""

    path: str
    size: int
    sha256: str


@dataclasses.dataclass(frozen=True)
class ResolvedSource:
    """What a source resolved to: the pinned commit and every file it holds, before any pull."""

    uri: str
    kind: str  # "hf" | "pvc" | "local"
    files: tuple[FileEntry, ...]
    revision: str | None = None  # the 40-hex commit for hf://, None for directories
    requested_revision: str | None = None
    repo_id: str | None = None
    endpoint: str | None = None
    # parsed for display and diagnostics only, never evidence: the decision reads the bytes below
    card: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    # optional openness declaration (parsed YAML of ``openness.yaml`` when present)
    openness_declaration: Mapping[str, Any] | None = None
    # the in-repo signature bundle when resolving already read it (checked against the listing)
    signature_bundle: bytes | None = dataclasses.field(default=None, repr=False)
    # the raw bytes of ``openness.yaml`` as read at resolution; evidence only where a signature or
    # the pin covers its listed sha256 and these bytes hash to it (``trust.decision.covered_files``)
    openness_bytes: bytes | None = dataclasses.field(default=None, repr=False)
    # the raw bytes of ``README.md`` (the model card), under the same rule as ``openness_bytes``
    readme: bytes | None = dataclasses.field(default=None, repr=False)


@dataclasses.dataclass(frozen=True)
class FileMismatch:
    """One difference between the signed manifest and the resolved files."""

    path: str
    problem: FileProblem
    expected: str | None = None
    actual: str | None = None


@dataclasses.dataclass(frozen=True)
class SignatureEvidence:
    """What a cryptographically valid signature bundle says and who made it.

    ``resources`` maps each signed path to its sha256 hex; ``ignore_paths`` are the signer's
    own exclusions, recorded so the manifest comparison can decide which it honours. ``anchor`` names
    the policy anchor that verified it: ``key:<name>``, ``ca:<name>`` or
    ``keyless:<issuer> <subject> via <trusted root>``.
    """

    method: str  # "key" | "certificate" | "keyless"
    identity: str  # key name / certificate subject / keyless SAN
    resources: Mapping[str, str]
    manifest_digest: str  # "sha256:<hex>" as the bundle's subject states it
    bundle_digest: str  # "sha256:<hex>" of the bundle file bytes
    issuer: str | None = None
    key_fingerprint: str | None = None
    ignore_paths: tuple[str, ...] = ()
    anchor: str = ""


@dataclasses.dataclass(frozen=True)
class SignatureFailure:
    """Why a bundle could not be trusted (no evidence is produced then)."""

    reason: Reason
    message: str


@dataclasses.dataclass(frozen=True)
class OpennessEvidence:
    """Which Open Source AI Definition components are open, and the resulting MOF class."""

    license: str | None  # SPDX id from the card, None when absent
    license_osi_approved: bool
    components: Mapping[str, bool]  # component name -> open?
    mof_class: str  # "ClassI" | "ClassII" | "ClassIII" | "None"
    osaid_compliant: bool
    missing: tuple[str, ...] = ()
    sources: tuple[str, ...] = ()  # where each fact came from (card, declaration file)


@dataclasses.dataclass(frozen=True)
class Violation:
    """One reason a policy would not admit a model; ``enforced`` is False for Audit policies."""

    reason: Reason
    message: str
    policy: str
    enforced: bool
