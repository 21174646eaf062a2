"""Event severity: a normal pull and rollout posts Normal Events only; failures, rejections, revocations and
outages post Warnings. Checked on the rule itself and on the conditions the real planner writes."""

from __future__ import annotations

from typing import Any

import pytest

from openmodel_operator.planning.conditions import Cond
from openmodel_operator.planning.event_severity import NORMAL, WARNING, event_type, event_type_of
from openmodel_operator.planning.planner import Observed
from test_operator import NS, World, operator, world
from test_planner import NOW, REF, REJECTED, SETTINGS, TRUSTED, available_deployment, completed, own, plan, spec

pytest_plugins = ["kube_fixtures"]
FIXTURES = (operator, world)  # the operator test world of tests/test_operator.py


@pytest.mark.parametrize(
    ("cond_type", "status", "reason", "was"),
    [
        ("WeightsReady", "False", "Pulling", None),  # the fetch Job pulls and verifies
        ("WeightsReady", "False", "Pulling", "True"),  # a new revision is pulled beside the served one
        ("Ready", "False", "WeightsNotReady", None),
        ("Ready", "False", "RolloutPending", "True"),  # the operator rolls a verified update
        ("Available", "False", "NotCreated", None),  # the Deployment is created in the same pass
        ("Ready", "False", "Starting", "False"),
        ("Available", "False", "MinimumReplicasUnavailable", None),  # the Deployment controller, first rollout
        ("SignatureVerified", "False", "Pinned", None),  # unsigned, admitted by spec.source.digest
        ("Trusted", "Unknown", "EndpointUnreachable", None),  # Resolved=False beside it carries the Warning
        ("Trusted", "True", "PoliciesPassed", "False"),
        # admitted by an Audit policy: the admission is what happened (Normal, as the e2e suite has always
        # asserted); the violations are on status and in provenance for whoever audits them
        ("Trusted", "True", "AuditViolations", None),
        ("Ready", "True", "Serving", "False"),
    ],
)
def test_progress_is_normal(cond_type: str, status: str, reason: str, was: str | None) -> None:
    assert event_type(cond_type, status, reason, was) == NORMAL


@pytest.mark.parametrize(
    ("cond_type", "status", "reason", "was"),
    [
        ("Trusted", "False", "SignatureMissing", None),  # a rejection
        ("Trusted", "False", "UntrustedSigner", "True"),  # a revocation
        ("Available", "False", "ScaledToZero", "True"),  # ... and its consequence
        ("Available", "False", "ServedContentRevoked", "True"),
        ("WeightsReady", "False", "BackoffLimitExceeded", "False"),  # a failure
        ("Resolved", "False", "EndpointUnreachable", "True"),  # an outage of the source
        ("SourceAvailable", "False", "EndpointUnreachable", None),
        ("Available", "False", "MinimumReplicasUnavailable", "True"),  # an outage of the server
        ("Available", "False", "NotCreated", "True"),  # the served Deployment was deleted
        ("Ready", "False", "Starting", "True"),
        ("Reconciled", "False", "ChildConflict", None),
        ("UpdateAvailable", "True", "UpdateRejected", None),  # an upstream commit failed verification
        ("Ready", "False", "SomeReasonNobodyListed", None),  # unknown reasons fail loud, not quiet
    ],
)
def test_failures_rejections_revocations_and_outages_are_warnings(
    cond_type: str, status: str, reason: str, was: str | None
) -> None:
    assert event_type(cond_type, status, reason, was) == WARNING


def test_event_type_of_reads_dicts_and_objects() -> None:
    previous_dicts = [{"type": "Available", "status": "True", "reason": "MinimumReplicasAvailable"}]
    previous_objects = [Cond("Available", "True", "MinimumReplicasAvailable", "")]
    outage = {"type": "Available", "status": "False", "reason": "MinimumReplicasUnavailable"}
    for previous in (previous_dicts, previous_objects):
        assert event_type_of(previous, outage) == WARNING
        assert event_type_of(previous, Cond("Available", "False", "MinimumReplicasUnavailable", "")) == WARNING
    assert event_type_of(None, outage) == NORMAL  # first rollout
    assert event_type_of([], Cond("WeightsReady", "False", "Pulling", "")) == NORMAL


# ------------------------------------------------------------------ on the conditions the real planner writes


def _walk(steps: list[tuple[Any, Observed]]) -> list[tuple[str, str, str]]:
    """Plan each step from the previous status, as the reconciler does: every transition with its severity."""
    status: dict[str, Any] = {}
    seen = []
    for trust, observed in steps:
        result = plan(REF, spec(), status, trust, observed, SETTINGS, NOW)
        # the Events the planner posts: "<type>=<status>: <message>", with the severity the rule gave
        seen.extend((event.message.split("=")[0], event.reason, event.type) for event in result.events)
        status = dict(result.status)
    return seen


PULLED = own(completed())
ORDINARY = [
    (TRUSTED, Observed()),  # verified: ConfigMap, claim and fetch Job
    (TRUSTED, Observed(jobs=own({"status": {"active": 1}}))),
    (TRUSTED, Observed(jobs=PULLED)),  # weights verified: the Deployment is created
    (TRUSTED, Observed(jobs=PULLED, deployment=available_deployment(ok=False))),  # its pods start
    (TRUSTED, Observed(jobs=PULLED, deployment=available_deployment())),
]


def test_an_ordinary_pull_and_rollout_posts_no_warning() -> None:
    seen = _walk(ORDINARY)
    reasons = {reason for _, reason, _ in seen}
    assert {"Pulling", "WeightsNotReady", "NotCreated", "MinimumReplicasUnavailable", "Serving"} <= reasons, seen
    assert [s for s in seen if s[2] == WARNING] == []


def test_a_served_model_losing_its_server_or_its_trust_posts_warnings() -> None:
    outage = _walk([*ORDINARY, (TRUSTED, Observed(jobs=PULLED, deployment=available_deployment(ok=False)))])
    assert ("Available", "MinimumReplicasUnavailable", WARNING) in outage, outage
    revoked = _walk([*ORDINARY, (REJECTED, Observed(jobs=PULLED, deployment=available_deployment()))])
    assert ("Trusted", "SignatureMissing", WARNING) in revoked, revoked
    assert ("Available", "ScaledToZero", WARNING) in revoked, revoked
    failed = _walk([*ORDINARY[:2], (TRUSTED, Observed(jobs=own(completed(ok=False))))])
    assert ("WeightsReady", "BackoffLimitExceeded", WARNING) in failed, failed


# ------------------------------------------------------------------ end to end (the real operator)


async def test_an_ordinary_pull_and_rollout_posts_only_normal_events(world: World, operator: Any) -> None:
    world.publish()
    world.policy()
    world.model()
    async with operator():
        await world.serve()
        await world.until(lambda: "Serving" in {e["reason"] for e in world.kube.events_for("m", namespace=NS)})
    posted = [(e["type"], e["reason"]) for e in world.kube.events_for("m", namespace=NS)]
    assert {"Pulling", "WeightsNotReady", "NotCreated"} <= {reason for _, reason in posted}, posted
    assert [p for p in posted if p[0] == "Warning"] == []


async def test_a_rejected_model_posts_a_warning_event(world: World, operator: Any) -> None:
    """The control of the test above: a rejection is a Warning, today and after the planner adopts the rule."""
    world.publish(sign=False)
    world.policy()
    world.model()
    async with operator():
        await world.phase("Rejected")
        await world.until(lambda: world.kube.events_for("m", namespace=NS))
    posted = [(e["type"], e["reason"]) for e in world.kube.events_for("m", namespace=NS)]
    assert ("Warning", "SignatureMissing") in posted, posted
