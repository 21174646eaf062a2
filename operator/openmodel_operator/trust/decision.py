"""The trust decision: (policies, evidence) -> verdict. Pure: no network, no cluster, no clock.

Every Enforce policy that governs the model must pass; Audit policies only record. The trust tier
says how the pinned content is tied to someone who vouches for it: Signed (a trusted signature
covers exactly the pinned files), Pinned (``spec.source.digest`` equals the resolved manifest
digest) or Unverified.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import hashlib
from collections.abc import Sequence

from openmodel_operator.trust.evidence import (
    FileMismatch,
    OpennessEvidence,
    Reason,
    ResolvedSource,
    SignatureEvidence,
    SignatureFailure,
    TrustTier,
    Violation,
)
from openmodel_operator.trust.licenses import evaluate_license
from openmodel_operator.trust.manifest import compare_manifest, manifest_digest, manifest_files
from openmodel_operator.trust.openness import DECLARATION_FILE, assess_files, evaluate_openness
from openmodel_operator.trust.policies import BUILTIN_DEFAULT_NAME, Policy, PolicyError, trust_anchors
from openmodel_operator.trust.signature import verify_bundle

PIN_POLICY = "spec.source.digest"
_MAX_LISTED_FILES = 5
README_FILE = "README.md"
# the files whose content is evidence (license, openness), read only where covered
EVIDENCE_FILES: tuple[str, ...] = (README_FILE, DECLARATION_FILE)


@dataclasses.dataclass(frozen=True)
class Evidence:
    """Everything known about a model before its weights are pulled.

    The model card and the openness declaration travel as raw bytes (``source.readme``,
    ``source.openness_bytes``); ``decide`` reads them only where a policy's verified signature or
    the matched pin covers them, so endpoint metadata or unsigned files never become evidence.
    """

    source: ResolvedSource
    bundle: bytes | None  # the signature bundle, None when the model is unsigned
    signature_path: str | None  # the bundle's path in the repo (excluded from the manifest), None if external
    pinned_digest: str | None = None  # spec.source.digest

    @property
    def manifest_digest(self) -> str:
        return manifest_digest(self.source.files, self.signature_path)

    @property
    def readme(self) -> bytes | None:
        """The raw README.md bytes read at resolution (not yet checked against anything)."""
        return self.source.readme

    @property
    def openness_bytes(self) -> bytes | None:
        """The raw openness.yaml bytes read at resolution (not yet checked against anything)."""
        return self.source.openness_bytes

    def evidence_bytes(self) -> dict[str, bytes]:
        """Evidence files whose bytes hash to the sha256 the resolved manifest lists for them.

        Only these can be covered: a pin or a signature vouches for the listed digest, and bytes
        that do not match it (changed after hashing, cut short, or served differently) are not
        the bytes vouched for.
        """
        listed = {f.path: f.sha256.lower() for f in manifest_files(self.source.files, self.signature_path)}
        found: dict[str, bytes] = {}
        for path, data in ((README_FILE, self.readme), (DECLARATION_FILE, self.openness_bytes)):
            if data is not None and path in listed and hashlib.sha256(data).hexdigest() == listed[path]:
                found[path] = data
        return found


@dataclasses.dataclass(frozen=True)
class SignatureCheck:
    """What one policy's trust anchors made of the bundle."""

    evidence: SignatureEvidence | None
    failure: SignatureFailure | None
    mismatches: tuple[FileMismatch, ...] = ()

    @property
    def covers_content(self) -> bool:
        return self.evidence is not None and not self.mismatches


@dataclasses.dataclass(frozen=True)
class PolicyOutcome:
    """One policy's verdict on the model."""

    name: str
    generation: int | None
    mode: str
    violations: tuple[Violation, ...]
    anchor: str | None = None  # this policy's anchor that verified the bundle covering the content, if any

    @property
    def passed(self) -> bool:
        return not self.violations


@dataclasses.dataclass(frozen=True)
class Verdict:
    """The decision with machine-readable reasons, human messages and the trust tier."""

    trusted: bool
    tier: TrustTier
    manifest_digest: str
    outcomes: tuple[PolicyOutcome, ...]
    violations: tuple[Violation, ...]
    signature: SignatureEvidence | None
    signature_failure: SignatureFailure | None
    mismatches: tuple[FileMismatch, ...]
    # license and openness as the best covering policy reads them (the one covering most evidence
    # files, the first on a tie), else from the pin alone, else from nothing (license unknown)
    openness: OpennessEvidence
    evidence_files: tuple[str, ...] = ()  # the evidence files ``openness`` was read from

    @property
    def enforced_violations(self) -> tuple[Violation, ...]:
        return tuple(v for v in self.violations if v.enforced)

    @property
    def reasons(self) -> tuple[Reason, ...]:
        """Distinct reason codes, enforced ones first."""
        ordered = [v.reason for v in self.enforced_violations] + [v.reason for v in self.violations]
        return tuple(dict.fromkeys(ordered))


def source_allowed(policy: Policy, uri: str) -> Violation | None:
    """Glob match of the source URI against the policy's allow and deny lists (deny wins).

    A local directory (``file://``, CLI only) has no origin to judge: source rules govern hf:// and pvc://.
    """
    if uri.startswith("file://"):
        return None
    rules = policy.spec.sources
    denied = next((p for p in rules.deny or [] if fnmatch.fnmatchcase(uri, p)), None)
    if denied is not None:
        return Violation(
            Reason.SOURCE_NOT_ALLOWED,
            f"source {uri} matches spec.sources.deny pattern {denied!r} of ModelTrustPolicy {policy.name!r}",
            policy.name,
            policy.enforced,
        )
    if not any(fnmatch.fnmatchcase(uri, p) for p in rules.allow):
        return Violation(
            Reason.SOURCE_NOT_ALLOWED,
            f"source {uri} matches none of spec.sources.allow {rules.allow} of ModelTrustPolicy {policy.name!r}; "
            "use an allowed source or ask the policy owner to add it",
            policy.name,
            policy.enforced,
        )
    return None


def check_signature(policy: Policy, evidence: Evidence) -> SignatureCheck:
    """Verify the bundle against this policy's own anchors, then compare the signed files to the pinned ones.

    Only ``policy`` supplies anchors (keys, CAs, keyless identities and trusted root): another
    policy's anchors never vouch for this one. A policy whose anchors are unusable fails closed with
    ``PolicyInvalid``, signed model or not.
    """
    try:
        anchors = trust_anchors(policy)
    except PolicyError as exc:
        return SignatureCheck(None, SignatureFailure(Reason.POLICY_INVALID, str(exc)))
    if evidence.bundle is None:
        return SignatureCheck(None, None)
    result = verify_bundle(evidence.bundle, anchors)
    if isinstance(result, SignatureFailure):
        return SignatureCheck(None, result)
    mismatches = compare_manifest(result.resources, evidence.source.files, evidence.signature_path, result.ignore_paths)
    return SignatureCheck(result, None, tuple(mismatches))


def describe_mismatches(mismatches: Sequence[FileMismatch]) -> str:
    """A short human list of which files differ from the signed manifest and how."""
    listed = ", ".join(f"{m.path} ({m.problem.value})" for m in mismatches[:_MAX_LISTED_FILES])
    more = len(mismatches) - _MAX_LISTED_FILES
    return listed + (f" and {more} more" if more > 0 else "")


def _signature_violation(policy: Policy, check: SignatureCheck, pinned_ok: bool) -> Violation | None:
    rules = policy.spec.signature
    enforced = policy.enforced
    if check.failure is not None and check.failure.reason is Reason.POLICY_INVALID:
        # an unusable policy is enforced whatever its mode: it must never read as "ignored, others decide"
        return Violation(
            Reason.POLICY_INVALID,
            f"{check.failure.message}. Until it is fixed, every model this policy governs is refused",
            policy.name,
            True,
        )
    if check.evidence is not None and check.mismatches:
        # a trusted signer's manifest disagrees with the pinned files: tampering or a replayed bundle
        return Violation(
            Reason.MANIFEST_MISMATCH,
            f"the signature by {check.evidence.identity} does not cover the pinned content: "
            f"{describe_mismatches(check.mismatches)}",
            policy.name,
            enforced,
        )
    if check.covers_content:
        return None
    if rules.required:
        if check.failure is not None:
            return Violation(check.failure.reason, check.failure.message, policy.name, enforced)
        hint = (
            "; no ModelTrustPolicy selects this namespace, so the built-in default applies: create one that trusts "
            "your signer"
            if policy.name == BUILTIN_DEFAULT_NAME
            else ""
        )
        return Violation(
            Reason.SIGNATURE_MISSING,
            f"ModelTrustPolicy {policy.name!r} requires a signature (spec.signature.required: true) and the model has "
            f"none; sign it with model-signing, or keep an organisation countersignature in a ConfigMap and point "
            f"spec.trust.signature.configMapRef at it{hint}",
            policy.name,
            enforced,
        )
    if rules.allow_pinned_digest and not pinned_ok:
        detail = f" ({check.failure.message})" if check.failure else ""
        return Violation(
            Reason.SIGNATURE_MISSING,
            f"ModelTrustPolicy {policy.name!r} admits Signed or Pinned models only; this one is neither{detail}. "
            "Review the content and set spec.source.digest to the digest `openmodel digest` prints",
            policy.name,
            enforced,
        )
    return None


def covered_files(
    evidence: Evidence, check: SignatureCheck | None, pinned_ok: bool, readable: Sequence[str] | None = None
) -> tuple[str, ...]:
    """The evidence files (README.md, openness.yaml) this policy can vouch for.

    A file is covered when its bytes hash to the listed sha256 (``Evidence.evidence_bytes``) and
    either the name-bound pin matched, or this policy's trust anchors verified a bundle that signs
    the file under that path with that sha256 and covers the content with no mismatch. A file the
    signer left out (``ignore_paths``) is therefore not covered, whatever it says.
    """
    names = tuple(evidence.evidence_bytes()) if readable is None else tuple(readable)
    if pinned_ok:
        return names
    if check is None or not check.covers_content or check.evidence is None:
        return ()
    listed = {f.path: f.sha256.lower() for f in evidence.source.files}
    signed = check.evidence.resources
    return tuple(p for p in names if signed.get(p, "").lower() == listed.get(p))


class _OpennessCache:
    """One assessment per set of covered files (policies usually agree; parsing YAML once is enough)."""

    def __init__(self, evidence: Evidence) -> None:
        self.readable = evidence.evidence_bytes()
        listed = {f.path for f in manifest_files(evidence.source.files, evidence.signature_path)}
        self.present = tuple(p for p in EVIDENCE_FILES if p in listed)
        self._cache: dict[tuple[str, ...], OpennessEvidence] = {}

    def get(self, covered: tuple[str, ...]) -> OpennessEvidence:
        if covered not in self._cache:
            uncovered = [p for p in self.present if p not in covered]
            self._cache[covered] = assess_files(
                self.readable.get(README_FILE) if README_FILE in covered else None,
                self.readable.get(DECLARATION_FILE) if DECLARATION_FILE in covered else None,
                uncovered,
            )
        return self._cache[covered]

    def hint(self, covered: tuple[str, ...]) -> str:
        """Why a present card or declaration was not read, for license and openness messages."""
        uncovered = [p for p in self.present if p not in covered]
        if not uncovered:
            return ""
        one = len(uncovered) == 1
        return (
            f"; {' and '.join(uncovered)} {'is' if one else 'are'} present but not covered by a signature this "
            "policy trusts (with no mismatch) or by spec.source.digest, so not read as evidence: sign "
            f"{'it' if one else 'them'} (not in the signer's ignore_paths) or pin the reviewed content"
        )


def _evidence_violations(policy: Policy, openness: OpennessEvidence, hint: str) -> list[Violation]:
    """The policy's license and openness rules applied to what its covered evidence says."""
    found: list[Violation] = []
    lic = policy.spec.licenses
    for reason, message in evaluate_license(
        openness.license, lic.allow_osi_approved, list(lic.allow or []), list(lic.deny or [])
    ):
        detail = hint if reason is Reason.LICENSE_UNKNOWN else ""
        found.append(
            Violation(reason, f"{message}{detail} (ModelTrustPolicy {policy.name!r})", policy.name, policy.enforced)
        )
    rules = policy.spec.openness
    for reason, message in evaluate_openness(openness, rules.minimum_class, rules.require_osaid):
        found.append(
            Violation(reason, f"{message}{hint} (ModelTrustPolicy {policy.name!r})", policy.name, policy.enforced)
        )
    return found


def decide(policies: Sequence[Policy], evidence: Evidence) -> Verdict:
    """Evaluate every governing policy against the evidence and derive the tier."""
    digest = evidence.manifest_digest
    pinned_ok = evidence.pinned_digest is not None and evidence.pinned_digest == digest
    violations: list[Violation] = []
    if evidence.pinned_digest is not None and not pinned_ok:
        violations.append(
            Violation(
                Reason.DIGEST_PIN_MISMATCH,
                f"spec.source.digest is {evidence.pinned_digest} but the resolved content has manifest digest "
                f"{digest}; the content changed since it was reviewed. Review it and update the pin, or pin "
                "spec.source.revision to the reviewed commit",
                PIN_POLICY,
                True,
            )
        )

    outcomes: list[PolicyOutcome] = []
    openness_of = _OpennessCache(evidence)
    shown = covered_files(evidence, None, pinned_ok, tuple(openness_of.readable))  # the pin alone
    best: SignatureCheck | None = None
    first_failure: SignatureFailure | None = None
    all_mismatches: tuple[FileMismatch, ...] = ()
    for policy in policies:
        own: list[Violation] = []
        if (v := source_allowed(policy, evidence.source.uri)) is not None:
            own.append(v)
        check = check_signature(policy, evidence)
        if check.covers_content and best is None:
            best = check
        if check.failure is not None and first_failure is None:
            first_failure = check.failure
        if check.mismatches and not all_mismatches:
            all_mismatches = check.mismatches
        signature_violation = _signature_violation(policy, check, pinned_ok)
        if signature_violation is not None:
            own.append(signature_violation)
        covered = covered_files(evidence, check, pinned_ok, tuple(openness_of.readable))
        if len(covered) > len(shown):
            shown = covered
        hint = openness_of.hint(covered)
        # A policy that already refuses the model on its signature cannot read the card or the
        # declaration for that same reason: "license unknown" would only repeat that violation.
        if signature_violation is None or not hint:
            own.extend(_evidence_violations(policy, openness_of.get(covered), hint))
        anchor = check.evidence.anchor if check.covers_content and check.evidence is not None else None
        outcomes.append(PolicyOutcome(policy.name, policy.generation, policy.spec.mode, tuple(own), anchor))
        violations.extend(own)

    tier = TrustTier.SIGNED if best is not None else TrustTier.PINNED if pinned_ok else TrustTier.UNVERIFIED
    return Verdict(
        trusted=not any(v.enforced for v in violations),
        tier=tier,
        manifest_digest=digest,
        outcomes=tuple(outcomes),
        violations=tuple(violations),
        signature=best.evidence if best else None,
        signature_failure=None if best else first_failure,
        mismatches=all_mismatches,
        openness=openness_of.get(shown),
        evidence_files=shown,
    )


def manifest_size(evidence: Evidence) -> tuple[int, int]:
    """(file count, total bytes) of the manifest."""
    files = manifest_files(evidence.source.files, evidence.signature_path)
    return len(files), sum(f.size for f in files)
