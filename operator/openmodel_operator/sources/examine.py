"""Resolve, gather evidence, decide: the verify-before-pull pipeline shared by the CLI and the operator.

Only metadata and the signature bundle are read here; no weight file is downloaded. The caller pulls
(``sources.pull``) only when the verdict is trusted.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from openmodel_operator.evidence.errors import SourceError
from openmodel_operator.evidence.records import Reason, ResolvedSource
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
    evidence = gather_evidence(request, resolved, deadline)
    verdict = decide(
        policies,
        evidence,
        serving=request.serving,
        runtime_image=request.runtime_image,
        default_endpoint=request.default_endpoint,
    )
    return Examination(request, resolved, evidence, verdict)
