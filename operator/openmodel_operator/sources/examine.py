"""Resolve, gather evidence, decide: the verify-before-pull pipeline shared by the CLI and the operator.

Only metadata and the signature bundle are read here; no weight file is downloaded. The caller pulls
(``sources.pull``) only when the verdict is trusted.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path

from openmodel_operator.evidence.claim_report import ClaimReport
from openmodel_operator.evidence.errors import SourceError
from openmodel_operator.evidence.manifest import verified_files
from openmodel_operator.evidence.records import Reason, ResolvedSource, Violation
from openmodel_operator.evidence.text import printable
from openmodel_operator.sources.directory import resolve_directory
from openmodel_operator.sources.hub import Deadline, fetch_file, resolve_hub
from openmodel_operator.trust.decision import Evidence, decide
from openmodel_operator.trust.examination import Examination, ModelRequest
from openmodel_operator.trust.policies import Policy

MAX_BUNDLE_BYTES = 16 * 1024 * 1024


def resolve(request: ModelRequest, deadline: Deadline | None = None) -> ResolvedSource:
    """Pin the revision and list every file with its digest (no weights downloaded for hf://)."""
    if request.is_hub:
        return resolve_hub(
            request.uri,
            revision=request.revision,
            endpoint=request.endpoint,
            token=request.token,
            signature_path=request.signature_path,
            deadline=deadline or Deadline.after(request.deadline_seconds),
        )
    path = request.local_path or Path(request.uri)
    if not path.is_dir():
        raise SourceError(
            Reason.INVALID_SOURCE,
            f"source {request.uri!r} is neither hf://<org>/<name> nor an existing directory; "
            "give a Hub repository or the path of a model directory",
        )
    kind = "pvc" if request.uri.startswith("pvc://") else "local"
    uri = request.uri if kind == "pvc" else path.resolve().as_uri()
    return resolve_directory(path, uri=uri, kind=kind)


def read_bundle(request: ModelRequest, resolved: ResolvedSource, deadline: Deadline | None = None) -> bytes | None:
    """The signature bundle: the external one when given, else the in-repo file, else None (unsigned)."""
    if request.external_bundle is not None:
        return request.external_bundle
    if not any(f.path == request.signature_path for f in resolved.files):
        return None
    if resolved.signature_bundle is not None:
        return resolved.signature_bundle
    if request.is_hub:
        return fetch_file(
            resolved,
            request.signature_path,
            token=request.token,
            max_bytes=MAX_BUNDLE_BYTES,
            deadline=deadline or Deadline.after(request.deadline_seconds),
        )
    root = request.local_path or Path(request.uri)
    bundle_file = root / request.signature_path
    if bundle_file.stat().st_size > MAX_BUNDLE_BYTES:
        raise SourceError(
            Reason.FILE_TOO_LARGE,
            f"signature file {request.signature_path} is larger than {MAX_BUNDLE_BYTES} bytes; it is not a bundle",
        )
    return bundle_file.read_bytes()


def gather_evidence(request: ModelRequest, resolved: ResolvedSource, deadline: Deadline | None = None) -> Evidence:
    """The resolved source (with its card and declaration bytes) and the bundle; pure beyond the bundle read.

    License and openness are not assessed here: ``decide`` reads the card and declaration per
    policy, from the bytes that policy's signature or the pin covers.
    """
    return Evidence(
        source=resolved,
        bundle=read_bundle(request, resolved, deadline),
        signature_path=request.signature_path,
        pinned_digest=request.pinned_digest,
    )


def examine(request: ModelRequest, policies: Sequence[Policy]) -> Examination:
    """Resolve the source, gather evidence and decide. Raises SourceError when the source cannot be examined.

    Each policy carries its own anchors, keyless trusted root included (``Policy.trusted_root_json``).
    """
    deadline = Deadline.after(request.deadline_seconds)
    resolved = resolve(request, deadline)
    return decided(request, resolved, gather_evidence(request, resolved, deadline), policies)


def decided(
    request: ModelRequest, resolved: ResolvedSource, evidence: Evidence, policies: Sequence[Policy]
) -> Examination:
    """The one decision every source ends in (the Hub, a mirror, a directory, a claim examination Job's report)."""
    verdict = decide(
        policies,
        evidence,
        serving=request.serving,
        runtime_image=request.runtime_image,
        default_endpoint=request.default_endpoint,
    )
    return Examination(request, resolved, evidence, verdict)


def examine_report(request: ModelRequest, report: ClaimReport, policies: Sequence[Policy]) -> Examination:
    """Decide a ``pvc://`` source from what its examination Job reported, as if the operator had read the claim.

    The report is the tenant's to forge (``evidence.claim_report``), so it only ever supplies what a mirror's
    answer would: the file list the signature must cover exactly, the bundle (unless the spec names a
    countersignature ConfigMap, which the operator reads itself) and the evidence bytes the decision reads only
    where the signature or the pin covers their digest. Raises ClaimReportError for a report that contradicts
    itself.
    """
    resolved = report.resolved(request.uri, request.signature_path)
    bundle = request.external_bundle if request.external_bundle is not None else resolved.signature_bundle
    evidence = Evidence(
        source=resolved, bundle=bundle, signature_path=request.signature_path, pinned_digest=request.pinned_digest
    )
    exam = decided(request, resolved, evidence, policies)
    verdict = exam.verdict
    if not verdict.trusted:
        return exam
    # Served in place, the server reads every file of the claim's path: one the signer left out (an ignored path,
    # git metadata) would be read unverified, so it fails here (and at every pod start: verify-on-start lets only
    # the signature file through), not later in a pod that never starts.
    verified = {f.path for f in verified_files(resolved.files, request.signature_path, verdict.signature)}
    # the signature file may lie beside them only when it is the bundle that was verified: its name is the tenant's
    # (a chat template, a generation config), and a countersignature kept in a ConfigMap leaves the claim's unread
    bundle_digest = verdict.signature.bundle_digest if verdict.signature is not None else None
    extra = sorted(
        f.path
        for f in resolved.files
        if f.path not in verified and not (f.path == request.signature_path and bundle_digest == f"sha256:{f.sha256}")
    )
    if not extra:
        return exam
    shown = ", ".join(printable(p, 120) for p in extra[:5]) + (f" and {len(extra) - 5} more" if len(extra) > 5 else "")
    violation = Violation(
        Reason.MANIFEST_MISMATCH,
        f"{request.uri} is served in place, and it holds files the signature does not cover: {shown}; remove them "
        "from the claim's path (or sign them)",
        "pvc:// in place",
        True,
    )
    return dataclasses.replace(
        exam, verdict=dataclasses.replace(verdict, trusted=False, violations=(violation, *verdict.violations))
    )
