"""A trust decision as an in-toto Statement with the SLSA Verification Summary predicate (VSA v1).

Events expire after an hour and status only holds the latest decision; an auditor needs, months later, what
was admitted or rejected, under which policies, and proof that the operator said so. A VSA is the standard
shape for "a verifier checked this artifact against this policy": tools that read in-toto attestations read
it without knowing the operator. Pure: the Statement is built from the recorded provenance; signing is
``signing.attestation``'s job.

Mapping onto https://slsa.dev/spec/v1.0/verification_summary (docs/provenance.md shows an example):

- ``subject``: one entry, named ``source@commit`` (the source alone for a volume), digest = the pinned
  manifest digest (sha256 over every file's path, size and sha256: ``openmodel digest`` prints it).
- ``verifier``: ``id`` = ``VERIFIER_ID``, ``version`` = ``{"openmodel-operator": <version>}``.
- ``timeVerified``: status.provenance.verifiedAt; ``resourceUri`` = the subject's name.
- ``policy``: VSA v1 has one policy (a ResourceDescriptor); a model is governed by a *set* of
  ModelTrustPolicies, so ``policy.uri`` names the set (``k8s:/apis/openmodel.io/v1alpha1/modeltrustpolicies
  ?names=a,b``), ``policy.digest.sha256`` is the digest over the set (each name, generation and spec
  digest), and ``policy.annotations.policies`` lists each one: name, generation, mode, verdict, reasons,
  ``specDigest`` (sha256 of the spec's canonical JSON), ``inputsDigest`` (its keys/CAs/root), anchor.
- ``inputAttestations``: the model-signing bundle that was verified (its sha256), when one was.
- ``verificationResult``: PASSED when every Enforce policy passed (the model may run), else FAILED.
- ``verifiedLevels``: ``OPENMODEL_TIER_SIGNED`` / ``_PINNED`` / ``_UNVERIFIED`` when PASSED (custom values are
  allowed, not starting with ``SLSA_``); ``FAILED`` when FAILED, as the spec asks.
- an extension field named by a URI (``EXTENSION``; "producers MAY add extension fields using field names that
  are URIs"): the model (namespace/name), tier, signer of the model, license and openness, endpoint.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

from openmodel_operator.api.common import API_VERSION
from openmodel_operator.api.openmodel import Provenance
from openmodel_operator.api.time import rfc3339
from openmodel_operator.evidence.text import clip, visible

STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PREDICATE_TYPE = "https://slsa.dev/verification_summary/v1"
PAYLOAD_TYPE = "application/vnd.in-toto+json"
VERIFIER_ID = "https://github.com/openmodel-operator/openmodel-operator"
VERIFIER_NAME = "openmodel-operator"
EXTENSION = "https://openmodel.io/attestation/v1"
POLICY_URI_PREFIX = f"k8s:/apis/{API_VERSION}/modeltrustpolicies"
SIGNATURE_BUNDLE_MEDIA_TYPE = "application/vnd.dev.sigstore.bundle.v0.3+json"
PASSED, FAILED = "PASSED", "FAILED"
SLSA_VERSION = "1.0"
_SHA256_HEX = re.compile(r"^[0-9a-f]{64}$")


class AttestationError(ValueError):
    """A Statement cannot be built from the decision, or a document is not one of ours; the message says why."""


def canonical_json(value: Any) -> bytes:
    """Sorted keys, no whitespace, UTF-8: the same value always gives the same bytes (and digest).

    Used for the policy spec digests and the DSSE payload; RFC 8785 would also fix number formatting, which
    the values here (integers and strings only) never need.
    """
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def sha256_ref(value: Any) -> str:
    """``sha256:<hex>`` of a value's canonical JSON: how a policy spec is named in an attestation."""
    return "sha256:" + hashlib.sha256(canonical_json(value)).hexdigest()


def _hex(digest: str | None, field: str) -> str:
    value = (digest or "").removeprefix("sha256:")
    if not _SHA256_HEX.fullmatch(value):
        raise AttestationError(f"{field} is {str(digest)[:80]!r}: an attestation needs a sha256:<64 hex> digest")
    return value


def resource_uri(provenance: Provenance) -> str:
    """``source@commit``: what was decided, by the commit it was pinned to (a volume source has none)."""
    revision = provenance.resolved_revision
    return f"{provenance.source}@{revision}" if revision else provenance.source


def policy_uri(names: Sequence[str]) -> str:
    """The set of ModelTrustPolicies that governed the decision, as one URI (VSA v1 takes one policy)."""
    return f"{POLICY_URI_PREFIX}?names={','.join(names)}"


def _policies(provenance: Provenance, spec_digests: Mapping[str, str]) -> list[dict[str, Any]]:
    entries = []
    for record in sorted(provenance.policies or [], key=lambda r: r.name):
        entry: dict[str, Any] = {
            "name": record.name,
            "generation": record.generation,
            "mode": record.mode,
            "verdict": record.verdict,
            "reasons": list(record.reasons or []),
            "specDigest": spec_digests.get(record.name),
            "inputsDigest": record.inputs_digest,
            "anchor": record.anchor,
        }
        entries.append({k: v for k, v in entry.items() if v is not None})
    return entries


def _extension(provenance: Provenance, namespace: str, model: str, trusted: bool) -> dict[str, Any]:
    signature = provenance.signature
    openness = provenance.openness
    ext: dict[str, Any] = {
        "model": {"namespace": namespace, "name": model},
        "admitted": trusted,
        "trustTier": provenance.trust_tier.value if provenance.trust_tier else None,
        "requestedRevision": provenance.requested_revision,
        "endpoint": provenance.endpoint,
        "repository": provenance.repository,
        "fileCount": provenance.file_count,
        "totalBytes": provenance.total_bytes,
        "license": provenance.license,
        "openness": {"mofClass": openness.mof_class, "osaid": openness.osaid} if openness else None,
        "modelSignature": (
            {
                k: v
                for k, v in {
                    "method": signature.method,
                    "identity": signature.identity,
                    "issuer": signature.issuer,
                    "keyFingerprint": signature.key_fingerprint,
                    "bundleDigest": signature.bundle_digest,
                }.items()
                if v is not None
            }
            if signature is not None and signature.method != "none"
            else None
        ),
    }
    return {k: v for k, v in ext.items() if v is not None}


def verification_summary(
    provenance: Provenance,
    *,
    trusted: bool,
    namespace: str,
    model: str,
    spec_digests: Mapping[str, str],
    verifier_version: str,
) -> dict[str, Any]:
    """The Statement for one decision (admit: ``trusted``; reject: not), from what status records of it.

    ``spec_digests`` maps each policy name to ``sha256_ref`` of its spec as it was evaluated: the generation
    says which edit, the digest proves which content (a policy deleted and made again restarts at generation 1).
    """
    subject_hex = _hex(provenance.manifest_digest, "status.provenance.manifestDigest")
    if provenance.verified_at is None:
        raise AttestationError("status.provenance.verifiedAt is unset: a decision without a time cannot be attested")
    uri = resource_uri(provenance)
    policies = _policies(provenance, spec_digests)
    names = [p["name"] for p in policies]
    set_digest = sha256_ref([{k: p.get(k) for k in ("name", "generation", "specDigest")} for p in policies])
    tier = provenance.trust_tier.value.upper() if provenance.trust_tier else "UNVERIFIED"
    predicate: dict[str, Any] = {
        "verifier": {"id": VERIFIER_ID, "version": {VERIFIER_NAME: verifier_version}},
        "timeVerified": rfc3339(provenance.verified_at),
        "resourceUri": uri,
        "policy": {
            "uri": policy_uri(names),
            "digest": {"sha256": set_digest.removeprefix("sha256:")},
            "annotations": {"policies": policies},
        },
        "verificationResult": PASSED if trusted else FAILED,
        "verifiedLevels": [f"OPENMODEL_TIER_{tier}"] if trusted else [FAILED],
        "slsaVersion": SLSA_VERSION,
        EXTENSION: _extension(provenance, namespace, model, trusted),
    }
    signature = provenance.signature
    if signature is not None and signature.bundle_digest:
        predicate["inputAttestations"] = [
            {
                "digest": {"sha256": _hex(signature.bundle_digest, "status.provenance.signature.bundleDigest")},
                "mediaType": SIGNATURE_BUNDLE_MEDIA_TYPE,
            }
        ]
    return {
        "_type": STATEMENT_TYPE,
        "subject": [{"name": uri, "digest": {"sha256": subject_hex}}],
        "predicateType": PREDICATE_TYPE,
        "predicate": predicate,
    }


def decision_key(statement: Mapping[str, Any]) -> str:
    """What makes a decision new: the Statement without its time (hex, 64 chars).

    A periodic re-verification that decides the same (same content, verdicts, policy generations and specs)
    has the same key, so it adds nothing to the history: a pass can come every 30 seconds, a decision cannot.
    """
    predicate = dict(statement.get("predicate") or {})
    predicate.pop("timeVerified", None)
    return hashlib.sha256(canonical_json({**statement, "predicate": predicate})).hexdigest()


# ---------------------------------------------------------------- reading one back (for a human)


def _str(value: Any) -> str:
    """Text from the document, made safe for a terminal: a signer's name cannot draw something else."""
    return clip(visible(value[:2048]), 512) if isinstance(value, str) else ""


def checked_statement(statement: Any) -> dict[str, Any]:
    """The Statement if it is a VSA v1 about one sha256 subject, else AttestationError naming the field."""
    if not isinstance(statement, dict):
        raise AttestationError("the payload is not a JSON object; it is not an in-toto Statement")
    if statement.get("_type") != STATEMENT_TYPE:
        raise AttestationError(f"_type is {str(statement.get('_type'))[:80]!r}, expected {STATEMENT_TYPE!r}")
    if statement.get("predicateType") != PREDICATE_TYPE:
        raise AttestationError(
            f"predicateType is {str(statement.get('predicateType'))[:80]!r}, expected {PREDICATE_TYPE!r}"
        )
    subject = statement.get("subject")
    if not isinstance(subject, list) or len(subject) != 1 or not isinstance(subject[0], dict):
        raise AttestationError("subject must hold exactly one entry (the model revision)")
    _hex(_str((subject[0].get("digest") or {}).get("sha256")), "subject[0].digest.sha256")
    predicate = statement.get("predicate")
    if not isinstance(predicate, dict) or predicate.get("verificationResult") not in (PASSED, FAILED):
        raise AttestationError("predicate.verificationResult must be PASSED or FAILED")
    return statement


def _result(predicate: Mapping[str, Any]) -> str:
    result = _str(predicate.get("verificationResult"))
    levels = [_str(v) for v in predicate.get("verifiedLevels") or [] if _str(v) != result]
    return f"{result} ({', '.join(levels)})" if levels else result


def failed_reasons(statement: Mapping[str, Any]) -> list[str]:
    """The reason codes of the policies that failed (Enforce and Audit), in policy order, each once."""
    policy = (statement.get("predicate") or {}).get("policy") or {}
    reasons: list[str] = []
    for entry in (policy.get("annotations") or {}).get("policies") or []:
        if isinstance(entry, dict) and entry.get("verdict") == "Fail":
            reasons += [_str(r) for r in entry.get("reasons") or [] if _str(r) not in reasons]
    return reasons


def describe(statement: Mapping[str, Any]) -> list[str]:
    """The Statement as lines a person reads: what, when, the result, the policies, who signed the model."""
    subject = statement["subject"][0]
    predicate: Mapping[str, Any] = statement["predicate"]
    ext: Mapping[str, Any] = predicate.get(EXTENSION) or {}
    model = ext.get("model") or {}
    verifier = predicate.get("verifier") or {}
    version = ", ".join(f"{k} {v}" for k, v in (verifier.get("version") or {}).items())
    lines = [
        f"Subject:   {_str(subject.get('name'))}",
        f"Digest:    sha256:{_str((subject.get('digest') or {}).get('sha256'))}",
        f"Model:     {_str(model.get('namespace'))}/{_str(model.get('name'))}",
        f"Verified:  {_str(predicate.get('timeVerified'))} by {_str(verifier.get('id'))} ({version})",
        f"Result:    {_result(predicate)}",
        f"Tier:      {_str(ext.get('trustTier')) or '-'}",
    ]
    signature = ext.get("modelSignature")
    if isinstance(signature, dict):
        signer = f"{_str(signature.get('identity'))} ({_str(signature.get('method'))})"
        if signature.get("keyFingerprint"):
            signer += f" {_str(signature.get('keyFingerprint'))}"
        lines.append(f"Signed by: {signer}")
    else:
        lines.append("Signed by: - (no signature verified)")
    if ext.get("license"):
        lines.append(f"License:   {_str(ext.get('license'))}")
    policy = predicate.get("policy") or {}
    lines.append(f"Policy:    {_str(policy.get('uri'))} sha256:{_str((policy.get('digest') or {}).get('sha256'))}")
    for entry in (policy.get("annotations") or {}).get("policies") or []:
        if not isinstance(entry, dict):
            continue
        reasons = ", ".join(_str(r) for r in entry.get("reasons") or [])
        lines.append(
            f"  - {_str(entry.get('name'))} generation {entry.get('generation')} {_str(entry.get('mode'))}: "
            f"{_str(entry.get('verdict'))}{f' ({reasons})' if reasons else ''} spec {_str(entry.get('specDigest'))}"
        )
    return lines
