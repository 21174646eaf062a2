"""The trust stage's outcome in the form the planner needs, built from a fresh examination or from status.

Re-examining means network calls to the Hub; between re-verifications the operator reuses what it
recorded on status (and the pinned manifest ConfigMap), so a resync touches no external system.
"""

from __future__ import annotations

import dataclasses
import datetime
from collections.abc import Mapping, Sequence

from openmodel_operator.api.openmodel import (
    OpenModelStatus,
    OpennessRecord,
    PolicyRecord,
    Provenance,
)
from openmodel_operator.api.vocabulary import ConditionReason, TrustTier
from openmodel_operator.evidence.errors import TrustError
from openmodel_operator.evidence.manifest import manifest_digest_of, verified_files
from openmodel_operator.evidence.model_card import CardFacts
from openmodel_operator.evidence.pinned import PinnedManifest
from openmodel_operator.evidence.records import Reason, Violation
from openmodel_operator.evidence.text import clip
from openmodel_operator.planning.conditions import (
    OPENNESS_VERIFIED,
    RESOLVED,
    SIGNATURE_VERIFIED,
    SOURCE_AVAILABLE,
    TRUSTED,
    Cond,
    find,
)
from openmodel_operator.planning.recorded import recorded_data
from openmodel_operator.trust.card import verified_card
from openmodel_operator.trust.decision import Verdict, describe_mismatches
from openmodel_operator.trust.examination import Examination
from openmodel_operator.trust.provenance import signature_record

_LICENSE_REASONS = {
    Reason.LICENSE_UNKNOWN,
    Reason.LICENSE_NOT_ALLOWED,
    Reason.LICENSE_DENIED,
    Reason.OPENNESS_BELOW_MINIMUM,
    Reason.OSAID_COMPONENTS_MISSING,
}
_SIGNATURE_REASONS = {
    Reason.SIGNATURE_MISSING,
    Reason.SIGNATURE_MALFORMED,
    Reason.SIGNATURE_INVALID,
    Reason.UNTRUSTED_SIGNER,
    Reason.MANIFEST_MISMATCH,
    Reason.DIGEST_PIN_MISMATCH,
}


@dataclasses.dataclass(frozen=True)
class TrustResult:
    """Whether the desired content may run, the trust conditions, provenance and the pinned manifest."""

    trusted: bool
    conditions: tuple[Cond, ...]
    provenance: Provenance | None = None
    pinned: PinnedManifest | None = None
    error: TrustError | None = None  # the source could not be examined (operational)
    # the error hit a re-verification of content verified before (not a new source): keep serving it
    transient: bool = False
    # the decision stands (re-made offline from recorded evidence) but the source could not be re-examined
    degraded: Cond | None = None
    # bundle, card and declaration bytes kept beside the pinned manifest (planning.recorded)
    recorded: Mapping[str, bytes] | None = None
    # the content the Deployment still serves (another digest, while the new one is pulled) no longer passes
    served_revoked: str | None = None
    # not decided yet: a claim examination Job runs (the message names it); nothing undecided is served
    pending: str | None = None
    # the facts of the model card this decision read as evidence (empty when it read none); None when the pass
    # reused what status recorded (no card at hand: the AI-BOMs are left as they are, planning.bom)
    card: CardFacts | None = None

    @property
    def revision(self) -> str | None:
        return self.pinned.revision if self.pinned else None


def _first(verdict: Verdict, reasons: set[Reason]) -> tuple[str, str] | None:
    for v in sorted(verdict.violations, key=lambda v: not v.enforced):
        if v.reason in reasons:
            prefix = "" if v.enforced else "[Audit] "
            return v.reason.value, prefix + v.message
    return None


def _signature_condition(exam: Examination) -> Cond:
    verdict = exam.verdict
    sig = verdict.signature
    if sig is not None:
        return Cond(SIGNATURE_VERIFIED, "True", ConditionReason.SIGNED, f"signed by {sig.identity} ({sig.method})")
    if verdict.mismatches:
        return Cond(
            SIGNATURE_VERIFIED,
            "False",
            Reason.MANIFEST_MISMATCH.value,
            f"the signature does not cover the pinned content: {describe_mismatches(verdict.mismatches)}",
        )
    if verdict.signature_failure is not None:
        failure = verdict.signature_failure
        return Cond(SIGNATURE_VERIFIED, "False", failure.reason.value, failure.message)
    if verdict.tier is TrustTier.PINNED:
        return Cond(
            SIGNATURE_VERIFIED,
            "False",
            ConditionReason.PINNED,
            "unsigned; spec.source.digest matches the resolved content",
        )
    return Cond(SIGNATURE_VERIFIED, "False", Reason.SIGNATURE_MISSING.value, "the model has no signature")


MAX_ANCHOR_CHARS = 1024  # status.provenance.policies[].anchor (maxLength in the CRD)


def pinned_manifest(exam: Examination) -> PinnedManifest:
    """What may reach the volume: the verified set (a signer's ignored files never do) and its digest.

    For the Signed tier that is the signed files, for the Pinned and Unverified tiers every manifest file;
    when the signer left nothing out, the digest equals the resolved manifest digest.
    """
    resolved = exam.resolved
    files = tuple(verified_files(resolved.files, exam.evidence.signature_path, exam.verdict.signature))
    return PinnedManifest(
        source=resolved.uri,
        revision=resolved.revision,
        manifest_digest=manifest_digest_of(files),
        files=files,
        endpoint=resolved.endpoint,
    )


def from_examination(
    exam: Examination,
    now: datetime.datetime,
    requested_revision: str | None = None,
    inputs: Mapping[str, str] | None = None,
) -> TrustResult:
    """Conditions, provenance and pinned manifest from a fresh examination.

    ``requested_revision`` is the spec's branch or tag when a pinned commit was re-examined; ``inputs``
    maps each policy to the digest of the keys/CAs/trusted root it referenced (recorded, to notice changes).
    """
    verdict, resolved, evidence = exam.verdict, exam.resolved, exam.evidence
    pinned = pinned_manifest(exam)
    count, total = len(pinned.files), pinned.total_bytes
    revision_note = f"{resolved.requested_revision} pinned to {resolved.revision}" if resolved.revision else "local"
    conditions = [Cond(RESOLVED, "True", ConditionReason.RESOLVED, f"{resolved.uri}: {revision_note}, {count} files")]
    conditions.append(_signature_condition(exam))
    openness = _first(verdict, _LICENSE_REASONS)
    if openness is None:
        osi = "OSI-approved" if verdict.openness.license_osi_approved else "allowed"
        conditions.append(
            Cond(
                OPENNESS_VERIFIED,
                "True",
                ConditionReason.ACCEPTED,
                f"license {verdict.openness.license} ({osi}), MOF {verdict.openness.mof_class}",
            )
        )
    else:
        conditions.append(Cond(OPENNESS_VERIFIED, "False", *openness))
    if verdict.trusted:
        audit = [v for v in verdict.violations if not v.enforced]
        reason = ConditionReason.AUDIT_VIOLATIONS if audit else ConditionReason.POLICIES_PASSED
        note = f"; {len(audit)} violation(s) recorded by Audit policies" if audit else ""
        names = ", ".join(o.name for o in verdict.outcomes)
        conditions.append(Cond(TRUSTED, "True", reason, f"tier {verdict.tier.value}, admitted by {names}{note}"))
    else:
        first = verdict.enforced_violations[0]
        more = len(verdict.enforced_violations) - 1
        extra = f" (and {more} more violation(s))" if more > 0 else ""
        conditions.append(Cond(TRUSTED, "False", first.reason.value, first.message + extra))

    openness_ev = verdict.openness
    open_components = sorted(k for k, v in openness_ev.components.items() if v)
    provenance = Provenance(
        source=resolved.uri,
        endpoint=resolved.endpoint,
        repository=resolved.repo_id,
        requested_revision=requested_revision or resolved.requested_revision,
        resolved_revision=resolved.revision,
        manifest_digest=pinned.manifest_digest,
        file_count=count,
        total_bytes=total,
        trust_tier=verdict.tier,
        signature=signature_record(verdict, now),
        license=openness_ev.license,
        openness=OpennessRecord(
            mof_class=openness_ev.mof_class,  # type: ignore[arg-type]  # the assessor's classes are the API's
            osaid=openness_ev.osaid_compliant,
            open_components=open_components,
            missing=list(openness_ev.missing),
        ),
        policies=[
            PolicyRecord(
                name=o.name,
                generation=o.generation,
                mode=o.mode,  # type: ignore[arg-type]  # a Policy's mode is the API's Enforce | Audit
                verdict="Pass" if o.passed else "Fail",
                reasons=list(dict.fromkeys(v.reason.value for v in o.violations)),
                # signer text can be long (a keyless subject and issuer): status keeps within its schema
                anchor=clip(o.anchor, MAX_ANCHOR_CHARS) if o.anchor else None,
                inputs_digest=inputs.get(o.name) if inputs else None,
            )
            for o in verdict.outcomes
        ],
        verified_at=now,
    )
    return TrustResult(
        verdict.trusted,
        tuple(conditions),
        provenance,
        pinned,
        recorded=recorded_data(evidence),
        card=verified_card(evidence, verdict),
    )


def from_error(error: TrustError, transient: bool = False) -> TrustResult:
    """The source could not be examined: Resolved=False, the other trust conditions unknown."""
    return TrustResult(
        transient=transient,
        trusted=False,
        conditions=(
            Cond(RESOLVED, "False", error.reason.value, error.message),
            Cond(TRUSTED, "Unknown", error.reason.value, "the source could not be examined; see Resolved"),
        ),
        error=error,
    )


def from_pending(message: str) -> TrustResult:
    """A ``pvc://`` source whose examination Job has not reported yet: Resolved and Trusted unknown, and why."""
    return TrustResult(
        trusted=False,
        conditions=(
            Cond(RESOLVED, "Unknown", ConditionReason.EXAMINING, message),
            Cond(TRUSTED, "Unknown", ConditionReason.EXAMINING, "not decided until the claim examination reports"),
        ),
        pending=message,
    )


def from_recorded_rejection(status: OpenModelStatus, uri: str) -> TrustResult | None:
    """The rejection status records for ``uri`` (Trusted=False after a decision), repeated until the next
    re-verification: a refused claim has no manifest ConfigMap, and its absence is no reason to make another claim
    examination Job every pass. None when status records no such decision."""
    trusted = find(status.conditions, TRUSTED)
    provenance = status.provenance
    if trusted is None or trusted.status != "False" or provenance is None or provenance.source != uri:
        return None
    kept = []
    for cond_type in (RESOLVED, SIGNATURE_VERIFIED, OPENNESS_VERIFIED, TRUSTED):
        found = find(status.conditions, cond_type)
        if found is not None:
            kept.append(Cond(cond_type, found.status, found.reason, found.message))
    return TrustResult(False, tuple(kept), provenance)


def from_status(status: OpenModelStatus, pinned: PinnedManifest) -> TrustResult | None:
    """Reuse the last recorded decision (no re-examination); None when status does not hold one."""
    conditions = status.conditions or []
    trusted = find(conditions, TRUSTED)
    provenance = status.provenance
    if trusted is None or trusted.status == "Unknown" or provenance is None:
        return None
    if provenance.manifest_digest != pinned.manifest_digest:
        return None
    kept = []
    for cond_type in (RESOLVED, SIGNATURE_VERIFIED, OPENNESS_VERIFIED, TRUSTED):
        found = find(conditions, cond_type)
        if found is not None:
            kept.append(Cond(cond_type, found.status, found.reason, found.message))
    source = find(conditions, SOURCE_AVAILABLE)
    degraded = (
        Cond(SOURCE_AVAILABLE, "False", source.reason, source.message)
        if source is not None and source.status == "False"
        else None
    )
    return TrustResult(trusted.status == "True", tuple(kept), provenance, pinned, degraded=degraded)


def from_violations(violations: Sequence[Violation]) -> TrustResult:
    """Refused before the source was contacted (endpoint, serving rules, an unusable policy): nothing to pin."""
    enforced = [v for v in violations if v.enforced]
    first = enforced[0]
    more = f" (and {len(enforced) - 1} more violation(s))" if len(enforced) > 1 else ""
    return TrustResult(
        trusted=False,
        conditions=(
            Cond(RESOLVED, "Unknown", first.reason.value, "the source was not contacted: " + first.message),
            Cond(TRUSTED, "False", first.reason.value, first.message + more),
        ),
    )


def source_unavailable(error: TrustError) -> Cond:
    """The Degraded-style condition of verified content whose source cannot be re-examined right now."""
    return Cond(
        SOURCE_AVAILABLE,
        "False",
        error.reason.value,
        f"re-verification could not reach the source; the content verified before still passes today's "
        f"policies and keeps serving: {error.message}",
    )


def from_recorded_failure(status: OpenModelStatus, transient: bool = False) -> TrustResult | None:
    """The failed examination status records, while the source is not asked again (its retry backoff).

    None when status holds no such failure (then the pass examines): only a ``Resolved=False`` with one of
    the decision's reason codes is carried over, so the plan repeats the same status and posts nothing.
    ``transient``: the failure hit a periodic re-verification that kept verified content serving.
    """
    resolved = find(status.conditions, RESOLVED)
    if resolved is None or resolved.status != "False" or resolved.reason not in Reason.__members__.values():
        return None
    return from_error(TrustError(Reason(resolved.reason), resolved.message), transient=transient)
