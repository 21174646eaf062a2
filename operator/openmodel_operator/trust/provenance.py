"""The provenance record: one in-toto Statement that says what was examined and why it is (not) trusted.

The subject is the model's manifest digest, the same value a signature, ``source.digest`` and
``status.provenance.manifestDigest`` carry, so the record can be matched to a running model.
"""

from __future__ import annotations

import datetime
from typing import Any

from openmodel_operator.api.openmodel import SignatureRecord
from openmodel_operator.api.time import rfc3339
from openmodel_operator.evidence.manifest import manifest_files
from openmodel_operator.trust.decision import Verdict
from openmodel_operator.trust.examination import Examination

STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PREDICATE_TYPE = "https://openmodel.io/provenance/v1alpha1"


def signature_record(verdict: Verdict, verified_at: datetime.datetime) -> SignatureRecord:
    """The signer as status and the provenance record show it; method ``none`` when unsigned or untrusted."""
    sig = verdict.signature
    if sig is None:
        return SignatureRecord(method="none")
    return SignatureRecord(
        method=sig.method,  # type: ignore[arg-type]  # the verifier's methods are the API's
        identity=sig.identity,
        key_fingerprint=sig.key_fingerprint or None,
        issuer=sig.issuer or None,
        bundle_digest=sig.bundle_digest,
        verified_at=verified_at,
    )


def provenance_statement(exam: Examination, verified_at: datetime.datetime) -> dict[str, Any]:
    """The in-toto Statement for one examination (``verified_at`` is passed in to keep this pure)."""
    resolved, verdict, evidence = exam.resolved, exam.verdict, exam.evidence
    files = manifest_files(resolved.files, evidence.signature_path)
    openness = verdict.openness
    revision = resolved.revision or "local"
    return {
        "_type": STATEMENT_TYPE,
        "subject": [
            {
                "name": f"{resolved.uri}@{revision}",
                "digest": {"sha256": verdict.manifest_digest.removeprefix("sha256:")},
            }
        ],
        "predicateType": PREDICATE_TYPE,
        "predicate": {
            "source": {
                "uri": resolved.uri,
                "requestedRevision": resolved.requested_revision,
                "resolvedRevision": resolved.revision,
                "endpoint": resolved.endpoint,
            },
            "manifest": {
                "digest": verdict.manifest_digest,
                "fileCount": len(files),
                "totalBytes": sum(f.size for f in files),
                "files": [{"name": f.path, "size": f.size, "sha256": f.sha256} for f in files],
            },
            "trustTier": verdict.tier.value,
            "signature": signature_record(verdict, verified_at).to_wire(),
            "pinnedDigest": evidence.pinned_digest,
            "license": openness.license,
            "openness": {
                "mofClass": openness.mof_class,
                "osaid": openness.osaid_compliant,
                "components": dict(openness.components),
                "missing": list(openness.missing),
                # the covered files license and openness were read from (README.md, openness.yaml)
                "evidenceFiles": list(verdict.evidence_files),
            },
            "policies": [
                {
                    "name": o.name,
                    "generation": o.generation,
                    "mode": o.mode,
                    "verdict": "Pass" if o.passed else "Fail",
                    "reasons": [v.reason.value for v in o.violations],
                }
                for o in verdict.outcomes
            ],
            "verdict": {
                "trusted": verdict.trusted,
                "violations": [
                    {"reason": v.reason.value, "message": v.message, "policy": v.policy, "enforced": v.enforced}
                    for v in verdict.violations
                ],
            },
            "verifiedAt": rfc3339(verified_at),
        },
    }
