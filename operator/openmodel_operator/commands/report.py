"""The human-readable verification report `openmodel verify` prints."""

from __future__ import annotations

from openmodel_operator.evidence.text import visible
from openmodel_operator.trust.decision import describe_mismatches, manifest_size
from openmodel_operator.trust.examination import Examination


def human_bytes(size: int) -> str:
    """Sizes as people read them (binary units)."""
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def render_report(exam: Examination) -> str:
    """A short report: what was resolved, who signed it, which policies passed, and every violation.

    The license, identities and messages come from a model card, a certificate or a policy: each
    line is shown with controls, bidi overrides and line separators escaped, so the report reads
    as it is.
    """
    resolved, verdict, evidence = exam.resolved, exam.verdict, exam.evidence
    count, total = manifest_size(evidence)
    lines = [f"Model      {resolved.uri}"]
    if resolved.revision:
        lines.append(f"Revision   {resolved.revision} (from {resolved.requested_revision})")
    lines.append(f"Manifest   {verdict.manifest_digest} ({count} files, {human_bytes(total)})")
    sig = verdict.signature
    if sig is not None:
        who = f"{sig.identity} ({sig.method}"
        who += f", {sig.key_fingerprint})" if sig.key_fingerprint else ")"
        lines.append(f"Signature  verified: {who}")
    elif evidence.bundle is None:
        lines.append("Signature  none found")
    elif verdict.signature_failure is not None:
        lines.append(f"Signature  not trusted: {verdict.signature_failure.reason.value}")
    elif verdict.mismatches:
        lines.append(f"Signature  does not cover the content: {describe_mismatches(verdict.mismatches)}")
    lines.append(f"Tier       {verdict.tier.value}")
    openness = verdict.openness
    approved = "OSI-approved" if openness.license_osi_approved else "not OSI-approved"
    lines.append(f"License    {openness.license or 'unknown'} ({approved})")
    osaid = "yes" if openness.osaid_compliant else "no"
    lines.append(f"Openness   MOF {openness.mof_class}; OSAID v1.0: {osaid}")
    if openness.missing:
        lines.append(f"           missing: {', '.join(openness.missing)}")
    for outcome in verdict.outcomes:
        result = (
            "pass" if outcome.passed else "FAIL " + ", ".join(dict.fromkeys(v.reason.value for v in outcome.violations))
        )
        lines.append(f"Policy     {outcome.name} ({outcome.mode}): {result}")
    lines.append("")
    if verdict.violations:
        lines.append("Violations:")
        for v in verdict.violations:
            mode = "enforced" if v.enforced else "audit only"
            lines.append(f"  - {v.reason.value} [{mode}, {v.policy}]: {v.message}")
        lines.append("")
    if verdict.trusted:
        note = " (violations recorded by Audit policies)" if verdict.violations else ""
        lines.append(f"Verdict    TRUSTED, tier {verdict.tier.value}{note}")
    else:
        lines.append(f"Verdict    REJECTED: {', '.join(r.value for r in verdict.reasons)}")
    return "\n".join(visible(line) for line in lines) + "\n"
