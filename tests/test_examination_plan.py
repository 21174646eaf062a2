"""The pure rules of the trust stage: what is examined and why, the upstream rule, outages and retries.

Each rule is decided from plain typed values here; the reconciler only fetches what they ask for.
"""

from __future__ import annotations

import dataclasses
import datetime
from typing import Any

import pytest

from openmodel_operator.api.openmodel import OpenModelSpec, OpenModelStatus, Provenance
from openmodel_operator.api.vocabulary import Phase
from openmodel_operator.evidence.records import Reason
from openmodel_operator.planning.conditions import RECONCILED, TRUSTED, Cond, find, merge_conditions
from openmodel_operator.planning.examination_plan import (
    Due,
    keeps_serving_on_outage,
    plan_examination,
    recorded_settles,
    upstream_rule,
)
from openmodel_operator.planning.planner import plan_failure, status_patch
from openmodel_operator.planning.retry import after_failure, backoff_seconds, is_terminal, postponed

NOW = datetime.datetime(2026, 12, 1, 12, 0, tzinfo=datetime.UTC)
PINNED = "c" * 40


def spec(revision: str = "main", uri: str = "hf://org/m", policy: str = "Manual") -> OpenModelSpec:
    return OpenModelSpec.model_validate({"source": {"uri": uri, "revision": revision}, "updatePolicy": policy})


def pinned_status(revision: str = "main", uri: str = "hf://org/m") -> OpenModelStatus:
    provenance = Provenance(source=uri, requested_revision=revision, resolved_revision=PINNED, manifest_digest="x")
    return OpenModelStatus(observed_generation=1, provenance=provenance)


@dataclasses.dataclass(frozen=True)
class FakeVerdict:
    trusted: bool
    enforced_violations: tuple[Any, ...] = ()


@dataclasses.dataclass(frozen=True)
class FakeResolved:
    revision: str | None


@dataclasses.dataclass(frozen=True)
class FakeExam:
    resolved: FakeResolved
    verdict: FakeVerdict


@dataclasses.dataclass(frozen=True)
class FakeViolation:
    reason: Reason
    message: str


def exam(revision: str | None, trusted: bool) -> Any:
    violations = () if trusted else (FakeViolation(Reason.SIGNATURE_MISSING, "no signature"),)
    return FakeExam(FakeResolved(revision), FakeVerdict(trusted, violations))


# ---------------------------------------------------------------- what is examined


def test_a_new_model_follows_the_spec_revision_without_looking_at_a_head() -> None:
    how = plan_examination(spec(), OpenModelStatus(), Due.NOT_EXAMINED, endpoint_moved=False)
    assert how.follow_spec and not how.head_first and how.revision == "main" and not how.use_recorded


def test_a_pinned_branch_looks_at_its_head_first_and_falls_back_to_the_pinned_commit() -> None:
    how = plan_examination(spec(), pinned_status(), Due.PERIODIC, endpoint_moved=False)
    assert not how.follow_spec and how.head_first and how.revision == PINNED and how.use_recorded


@pytest.mark.parametrize(
    ("model", "moved"),
    [
        (spec(revision="v2"), False),  # another revision asked for
        (spec(uri="hf://org/other"), False),  # another repository
        (spec(), True),  # another endpoint
    ],
)
def test_a_moved_source_is_resolved_anew_and_never_decided_from_old_evidence(model: OpenModelSpec, moved: bool) -> None:
    how = plan_examination(model, pinned_status(), Due.SPEC_CHANGED, endpoint_moved=moved)
    assert how.follow_spec and not how.use_recorded and how.revision == model.source.revision


def test_a_commit_revision_has_no_head_to_look_at() -> None:
    how = plan_examination(spec(revision=PINNED), pinned_status(revision=PINNED), Due.PERIODIC, endpoint_moved=False)
    assert not how.head_first and how.revision == PINNED


# ---------------------------------------------------------------- offline decisions and outages


def test_a_recorded_rejection_settles_the_pass_whatever_made_it_due() -> None:
    """Revocation never waits for the source: a periodic pass is settled by a rejection too."""
    how = plan_examination(spec(), pinned_status(), Due.PERIODIC, endpoint_moved=False)
    assert recorded_settles(how, exam(PINNED, trusted=False))
    assert not recorded_settles(how, exam(PINNED, trusted=True))  # control: a periodic admission asks the source
    changed = dataclasses.replace(how, due=Due.POLICIES_CHANGED)
    assert recorded_settles(changed, exam(PINNED, trusted=True))
    assert not recorded_settles(changed, None)


def test_an_outage_keeps_serving_only_what_still_passes() -> None:
    how = plan_examination(spec(), pinned_status(), Due.PERIODIC, endpoint_moved=False)
    assert keeps_serving_on_outage(how, exam(PINNED, trusted=True), pinned_status(), unchanged_policies=True)
    assert not keeps_serving_on_outage(how, exam(PINNED, trusted=False), pinned_status(), unchanged_policies=True)
    # without evidence (a restarted operator): only a periodic check under the very same policies
    assert keeps_serving_on_outage(how, None, pinned_status(), unchanged_policies=True)
    assert not keeps_serving_on_outage(how, None, pinned_status(), unchanged_policies=False)
    respec = plan_examination(spec(revision="v2"), pinned_status(), Due.SPEC_CHANGED, endpoint_moved=False)
    assert not keeps_serving_on_outage(respec, None, pinned_status(), unchanged_policies=True)


# ---------------------------------------------------------------- the upstream rule


def test_an_unmoved_head_is_the_pinned_commit() -> None:
    assert upstream_rule(exam(PINNED, trusted=True), PINNED, "main", "Manual").adopt


def test_manual_reports_a_moved_head_and_keeps_the_pin() -> None:
    choice = upstream_rule(exam("d" * 40, trusted=True), PINNED, "main", "Manual")
    assert not choice.adopt and choice.update is not None
    assert choice.update.reason == "NewRevision" and choice.update.revision == "d" * 40


def test_auto_adopts_a_trusted_head_only() -> None:
    assert upstream_rule(exam("d" * 40, trusted=True), PINNED, "main", "Auto").adopt
    refused = upstream_rule(exam("d" * 40, trusted=False), PINNED, "main", "Auto")
    assert not refused.adopt and refused.update is not None and refused.update.reason == "UpdateRejected"
    assert "SignatureMissing" in refused.update.message


# ---------------------------------------------------------------- retries


def test_a_repository_that_does_not_exist_is_not_asked_again_until_something_changes() -> None:
    state = after_failure(None, Reason.REPOSITORY_NOT_FOUND, NOW, 1, ("p", 1), reverify_interval=3600)
    assert is_terminal(Reason.REPOSITORY_NOT_FOUND)
    assert postponed(state, NOW + datetime.timedelta(minutes=59), 1, ("p", 1))
    assert not postponed(state, NOW + datetime.timedelta(minutes=60), 1, ("p", 1))  # the periodic re-check
    assert not postponed(state, NOW, 2, ("p", 1))  # a spec edit retries at once
    assert not postponed(state, NOW, 1, ("p", 2))  # so does a policy change


def test_a_network_failure_is_retried_with_exponential_backoff() -> None:
    assert not is_terminal(Reason.ENDPOINT_UNREACHABLE)
    waits = []
    state = None
    for _ in range(8):
        state = after_failure(state, Reason.ENDPOINT_UNREACHABLE, NOW, 1, (), reverify_interval=3600)
        waits.append((state.not_before - NOW).total_seconds())
    assert waits[:4] == [30, 60, 120, 240]
    assert max(waits) == 900  # at most 15 minutes between tries
    assert backoff_seconds(50, 60) == 60  # never longer than the re-verification interval


def test_another_failure_reason_starts_the_backoff_again() -> None:
    state = after_failure(None, Reason.ENDPOINT_UNREACHABLE, NOW, 1, (), reverify_interval=3600)
    state = after_failure(state, Reason.ENDPOINT_UNREACHABLE, NOW, 1, (), reverify_interval=3600)
    assert state.attempts == 2
    other = after_failure(state, Reason.DEADLINE_EXCEEDED, NOW, 1, (), reverify_interval=3600)
    assert other.attempts == 1


# ---------------------------------------------------------------- a failed pass


def test_a_failed_pass_adds_reconciled_false_and_keeps_what_status_said() -> None:
    trusted = merge_conditions(None, [Cond(TRUSTED, "True", "PoliciesPassed", "ok")], 1, NOW)
    status = OpenModelStatus(phase=Phase.READY, observed_generation=1, conditions=trusted)
    later = NOW + datetime.timedelta(seconds=5)
    result = plan_failure(status, 1, "ChildRejected", "the API server refused the Deployment", later)
    assert result.status.phase == Phase.DEGRADED  # what runs did not change
    reconciled, kept = find(result.status.conditions, RECONCILED), find(result.status.conditions, TRUSTED)
    assert reconciled is not None and reconciled.status == "False" and reconciled.reason == "ChildRejected"
    assert kept is not None and kept.status == "True" and kept.last_transition_time == NOW
    assert [e.type for e in result.events] == ["Warning"]
    fresh = plan_failure(OpenModelStatus(), 1, "ReconcileError", "boom", later)
    assert fresh.status.phase == Phase.FAILED
    assert status_patch(fresh.status)["conditions"][0]["lastTransitionTime"] == "2026-12-01T12:00:05Z"
