"""What to examine in a pass and why: pure rules over the typed status, the policies and the clock.

The shell (``controller.reconciler``) fetches what these functions ask for (a Secret, the Hub, the crypto
thread) and hands the results back; every branch of the trust stage is decided here, so each rule is
tested from plain values: when the source is contacted, which revision, what the recorded evidence
settles offline, what an upstream move means under ``updatePolicy``, when an outage keeps serving.
"""

from __future__ import annotations

import dataclasses
import datetime
import re
from collections.abc import Iterable, Mapping, Sequence
from enum import StrEnum
from typing import Any

from openmodel_operator.api.openmodel import OpenModelSpec, OpenModelStatus, Provenance
from openmodel_operator.api.vocabulary import ConditionReason
from openmodel_operator.trust.examination import Examination
from openmodel_operator.trust.policies import Policy

COMMIT = re.compile(r"^[0-9a-f]{40}$")


class Due(StrEnum):
    """Why a model is (re)examined now."""

    SPEC_CHANGED = "SpecChanged"
    NOT_EXAMINED = "NotExamined"
    POLICIES_CHANGED = "PoliciesChanged"
    MANIFEST_MISSING = "ManifestMissing"
    PERIODIC = "Periodic"


# reasons the recorded evidence answers without the source: the content is the same, only the rules moved
OFFLINE_REASONS = frozenset({Due.POLICIES_CHANGED, Due.SPEC_CHANGED, Due.MANIFEST_MISSING})


def policy_fingerprint(policies: Iterable[Policy], inputs: Mapping[str, str] | None = None) -> list[tuple[Any, ...]]:
    """What status records of the governing policies, to notice when the set, a generation or a referenced
    key/CA/trusted root changes (``inputs``: policy name -> digest of what it referenced)."""
    if inputs is None:
        return [(p.name, p.generation) for p in policies]
    return [(p.name, p.generation, inputs.get(p.name)) for p in policies]


def recorded_fingerprint(provenance: Provenance | None, with_inputs: bool) -> list[tuple[Any, ...]]:
    """The fingerprint status recorded at the last decision."""
    records = (provenance.policies if provenance is not None else None) or []
    if not with_inputs:
        return [(p.name, p.generation) for p in records]
    return [(p.name, p.generation, p.inputs_digest) for p in records]


def policies_unchanged(
    status: OpenModelStatus, policies: Sequence[Policy], inputs: Mapping[str, str] | None = None
) -> bool:
    """Whether the governing policies (and what they referenced) are the ones the last decision was made under."""
    return recorded_fingerprint(status.provenance, inputs is not None) == policy_fingerprint(policies, inputs)


def examination_due(
    generation: int | None,
    status: OpenModelStatus,
    policies: Sequence[Policy],
    pinned_available: bool,
    now: datetime.datetime,
    reverify_interval: float,
    inputs: Mapping[str, str] | None = None,
) -> Due | None:
    """Why the model must be (re)examined now, or None to reuse the recorded decision (no external calls)."""
    provenance = status.provenance
    if status.observed_generation != generation:
        return Due.SPEC_CHANGED
    if provenance is None or not provenance.manifest_digest:
        return Due.NOT_EXAMINED
    if not policies_unchanged(status, policies, inputs):
        return Due.POLICIES_CHANGED
    if not pinned_available:
        return Due.MANIFEST_MISSING
    verified = provenance.verified_at
    if verified is None or (now - verified).total_seconds() >= reverify_interval:
        return Due.PERIODIC
    return None


@dataclasses.dataclass(frozen=True)
class ExaminationPlan:
    """How a due examination goes: from the recorded evidence, the branch head, or the spec's revision."""

    due: Due
    # the spec moved the source (uri, revision, endpoint) or nothing is pinned yet: resolve the spec's revision
    follow_spec: bool
    # a branch or tag of a Hub source that stays pinned: look at its head first (it may have moved)
    head_first: bool
    # the revision examined when the head is not looked at or has moved: the spec's, or the pinned commit
    revision: str
    # the evidence the pinned content was decided from may settle the pass without the source
    use_recorded: bool


def plan_examination(spec: OpenModelSpec, status: OpenModelStatus, due: Due, endpoint_moved: bool) -> ExaminationPlan:
    """Only a change of the source itself moves the pin: a replicas edit never pulls in a newer upstream commit.

    ``endpoint_moved``: the spec names another endpoint than the pinned content was resolved from (the shell
    normalises the endpoint with the Hub client's rules).
    """
    provenance = status.provenance
    pinned_commit = provenance.resolved_revision if provenance is not None else None
    branch = spec.source.revision
    # a claim has no commit: what pins it is the decided manifest, so its recorded evidence is reused alike
    # (a revocation is decided offline at once, not after a claim examination Job)
    pinned = bool(pinned_commit) or (
        spec.source.uri.startswith("pvc://") and provenance is not None and bool(provenance.manifest_digest)
    )
    follow_spec = (
        provenance is None
        or not pinned
        or provenance.source != spec.source.uri
        or provenance.requested_revision != branch
        or endpoint_moved
    )
    head_first = not follow_spec and not COMMIT.match(branch) and spec.source.uri.startswith("hf://")
    return ExaminationPlan(
        due=due,
        follow_spec=follow_spec,
        head_first=head_first,
        revision=branch if follow_spec or not pinned_commit else pinned_commit,
        use_recorded=not follow_spec,
    )


def recorded_settles(plan: ExaminationPlan, recorded: Examination | None) -> bool:
    """Whether the decision re-made from recorded evidence ends the pass without contacting the source.

    A rejection always does (revocation never waits for the source); an admission does when the pass is
    due for a reason the evidence answers (policies, spec, a missing manifest), not for a periodic check.
    """
    if recorded is None:
        return False
    return not recorded.verdict.trusted or plan.due in OFFLINE_REASONS


def keeps_serving_on_outage(
    plan: ExaminationPlan, recorded: Examination | None, status: OpenModelStatus, unchanged_policies: bool
) -> bool:
    """Whether verified content keeps serving while its source cannot be examined.

    With recorded evidence: when it still passes today's policies. Without (a restarted operator): only on a
    periodic check under the very policies it passed.
    """
    if recorded is not None:
        return recorded.verdict.trusted
    return not plan.follow_spec and unchanged_policies and plan.due is Due.PERIODIC


@dataclasses.dataclass(frozen=True)
class UpdateInfo:
    """An upstream commit newer than the pinned one: reason NewRevision, or UpdateRejected and why."""

    revision: str
    reason: str
    message: str

    @classmethod
    def new_revision(cls, branch: str, revision: str) -> UpdateInfo:
        return cls(
            revision,
            ConditionReason.NEW_REVISION,
            f"upstream {branch} moved to {revision}; set updatePolicy: Auto or pin spec.source.revision to roll to it",
        )

    @classmethod
    def rejected(cls, revision: str, reason: str, message: str) -> UpdateInfo:
        return cls(
            revision,
            ConditionReason.UPDATE_REJECTED,
            f"upstream {revision} failed verification ({reason}): {message}",
        )


@dataclasses.dataclass(frozen=True)
class UpstreamChoice:
    """What the branch head means for the pin: adopt it, or keep the pinned commit (reporting an update)."""

    adopt: bool
    update: UpdateInfo | None = None


def upstream_rule(head: Examination, pinned_commit: str | None, branch: str, update_policy: str) -> UpstreamChoice:
    """The upstream rule: an unmoved head *is* the pinned commit (examined once); a moved head is adopted
    only under ``updatePolicy: Auto`` and only when it is trusted; otherwise the pinned commit stays and
    ``UpdateAvailable`` says why."""
    revision = head.resolved.revision
    if not revision or revision == pinned_commit:
        return UpstreamChoice(adopt=True)
    if update_policy == "Auto" and head.verdict.trusted:
        return UpstreamChoice(adopt=True)
    if update_policy == "Auto":
        first = head.verdict.enforced_violations[0]
        return UpstreamChoice(adopt=False, update=UpdateInfo.rejected(revision, first.reason.value, first.message))
    return UpstreamChoice(adopt=False, update=UpdateInfo.new_revision(branch, revision))
