"""The pure planner and the reconcile scheduling rules: every lifecycle step from plain data."""

from __future__ import annotations

import dataclasses
import datetime
from typing import Any

import pytest

from openmodel_operator.api.common import Condition
from openmodel_operator.api.openmodel import OpenModelSpec, OpenModelStatus, Provenance
from openmodel_operator.controller.reconciler import drifted, is_subset
from openmodel_operator.evidence.errors import SourceError
from openmodel_operator.evidence.manifest import manifest_digest
from openmodel_operator.evidence.pinned import PinnedManifest
from openmodel_operator.evidence.records import FileEntry, Reason
from openmodel_operator.planning import children, conditions, examination_plan, planner, trust_result
from openmodel_operator.planning.conditions import Cond
from openmodel_operator.planning.examination_plan import Due, UpdateInfo
from openmodel_operator.planning.planner import Observed, status_patch
from openmodel_operator.planning.trust_result import TrustResult, from_error
from openmodel_operator.trust.policies import BUILTIN_DEFAULT

NOW = "2026-11-24T12:00:00Z"
OWN_UID = "uid-of-the-operators-own-pull-job"
LATER = "2026-11-24T12:05:00Z"


# The planner works on typed status and datetimes; these tests speak the wire form the API server stores
# (and `kubectl get -o yaml` shows), converting at the boundary exactly as the reconciler does.
def _typed(status: dict[str, Any] | OpenModelStatus) -> OpenModelStatus:
    return status if isinstance(status, OpenModelStatus) else OpenModelStatus.model_validate(status)


def _time(stamp: str) -> datetime.datetime:
    return datetime.datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=datetime.UTC)


def plan(
    ref: Any, spec: Any, status: Any, trust: Any, observed: Any, settings: Any, now: str, update: Any = None
) -> Any:
    # the pull Job of own() is one the operator made (tests/test_revision_slots.py has the strangers')
    observed = dataclasses.replace(observed, made_jobs=observed.made_jobs | {OWN_UID})
    result = planner.plan(ref, spec, _typed(status), trust, observed, settings, _time(now), update)
    return dataclasses.replace(result, status=status_patch(result.status))


def merge_conditions(previous: list[dict[str, Any]], desired: list[Cond], generation: int, now: str) -> Any:
    typed = [Condition.model_validate(c) for c in previous]
    return [c.to_wire() for c in conditions.merge_conditions(typed, desired, generation, _time(now))]


def from_status(status: dict[str, Any], pinned: PinnedManifest) -> Any:
    return trust_result.from_status(_typed(status), pinned)


def examination_due(
    generation: int, status: dict[str, Any], policies: Any, pinned: bool, now: str, every: float
) -> Any:
    return examination_plan.examination_due(generation, _typed(status), policies, pinned, _time(now), every)


REF = children.ModelRef(name="granite", namespace="models", uid="uid-1", generation=2)
SETTINGS = children.ChildSettings(operator_image="op:1", vllm_image="vllm:1")
FILES = (FileEntry("config.json", 10, "a" * 64), FileEntry("model.safetensors", 1000, "b" * 64))
PINNED = PinnedManifest("hf://org/granite", "c" * 40, manifest_digest(FILES, None), FILES)
TRUSTED_CONDS = (
    Cond("Resolved", "True", "Resolved", "ok"),
    Cond("SignatureVerified", "True", "Signed", "signed by release (key)"),
    Cond("OpennessVerified", "True", "Accepted", "Apache-2.0"),
    Cond("Trusted", "True", "PoliciesPassed", "tier Signed"),
)
PROVENANCE = {
    "source": "hf://org/granite",
    "manifestDigest": PINNED.manifest_digest,
    "resolvedRevision": "c" * 40,
    "trustTier": "Signed",
    "policies": [{"name": "builtin-default", "generation": None, "mode": "Enforce", "verdict": "Pass"}],
    "verifiedAt": NOW,
}
OLD_POLICY = {"name": "old", "generation": 3, "mode": "Enforce", "verdict": "Pass"}
TRUSTED = TrustResult(True, TRUSTED_CONDS, Provenance.model_validate(PROVENANCE), PINNED)
REJECTED = TrustResult(
    False,
    (Cond("Resolved", "True", "Resolved", "ok"), Cond("Trusted", "False", "SignatureMissing", "no signature")),
    {**PROVENANCE, "trustTier": "Unverified"},
    PINNED,
)


def spec(**serving: Any) -> OpenModelSpec:
    return OpenModelSpec.model_validate({"source": {"uri": "hf://org/granite"}, "serving": serving})


def kinds(objs: Any) -> list[str]:
    return [o["kind"] for o in objs]


def conds(status: dict[str, Any]) -> dict[str, tuple[str, str]]:
    return {c["type"]: (c["status"], c["reason"]) for c in status["conditions"]}


def job_name() -> str:
    return children.child_names(REF, PINNED)["Job"]


def completed(ok: bool = True) -> dict[str, Any]:
    kind = "Complete" if ok else "Failed"
    return {
        "status": {"conditions": [{"type": kind, "status": "True", "reason": "BackoffLimitExceeded" if not ok else ""}]}
    }


def own(job_status: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The pull Job of PINNED as the operator made it (its uid known), with ``job_status``."""
    job = children.fetch_job(REF, spec(), PINNED, SETTINGS)
    return {job["metadata"]["name"]: {"metadata": {**job["metadata"], "uid": OWN_UID}, **job_status}}


def available_deployment(digest: str = PINNED.manifest_digest, ok: bool = True) -> dict[str, Any]:
    """A Deployment the operator made for ``digest`` (its pod template names the content and its slot)."""
    template = {
        children.DIGEST_ANNOTATION: digest,
        children.LAYOUT_ANNOTATION: f"{children.child_name(REF.name, '-weights')}/{children.slot_dir(digest)}",
    }
    return {
        "metadata": {"generation": 1, "annotations": {children.DIGEST_ANNOTATION: digest}},
        "spec": {"replicas": 1, "template": {"metadata": {"annotations": template}}},
        "status": {
            "observedGeneration": 1,
            "readyReplicas": 1 if ok else 0,
            "conditions": [
                {
                    "type": "Available",
                    "status": "True" if ok else "False",
                    "reason": "MinimumReplicasAvailable" if ok else "MinimumReplicasUnavailable",
                }
            ],
        },
    }


def test_trusted_model_first_pulls_without_serving() -> None:
    result = plan(REF, spec(), {}, TRUSTED, Observed(), SETTINGS, NOW)
    assert kinds(result.apply) == ["ConfigMap", "NetworkPolicy", "PersistentVolumeClaim", "Job"]
    assert result.status["phase"] == "Pulling"
    assert conds(result.status)["WeightsReady"] == ("False", "Pulling")
    assert result.status["shortRevision"] == "c" * 12
    assert result.status["observedGeneration"] == 2


def test_weights_ready_rolls_the_deployment_and_service() -> None:
    result = plan(REF, spec(), {}, TRUSTED, Observed(jobs=own(completed())), SETTINGS, NOW)
    assert kinds(result.apply) == ["ConfigMap", "NetworkPolicy", "PersistentVolumeClaim", "Deployment", "Service"]
    deployment = next(o for o in result.apply if o["kind"] == "Deployment")
    assert deployment["metadata"]["annotations"][children.DIGEST_ANNOTATION] == PINNED.manifest_digest
    assert result.status["phase"] == "Deploying"
    assert result.status["endpoint"] == "http://granite.models.svc.cluster.local/v1"


def test_available_deployment_makes_the_model_ready() -> None:
    observed = Observed(jobs=own(completed()), deployment=available_deployment())
    result = plan(REF, spec(), {}, TRUSTED, observed, SETTINGS, NOW)
    assert result.status["phase"] == "Ready"
    assert conds(result.status)["Ready"] == ("True", "Serving")
    assert conds(result.status)["Available"] == ("True", "MinimumReplicasAvailable")


def test_zero_replicas_is_ready_but_not_serving() -> None:
    result = plan(REF, spec(replicas=0), {}, TRUSTED, Observed(jobs=own(completed())), SETTINGS, NOW)
    assert result.status["phase"] == "Ready"
    assert conds(result.status)["Ready"] == ("True", "ScaledToZero")


def test_runtime_none_is_ready_once_weights_are_verified() -> None:
    result = plan(REF, spec(runtime="none"), {}, TRUSTED, Observed(jobs=own(completed())), SETTINGS, NOW)
    assert kinds(result.apply) == ["ConfigMap", "PersistentVolumeClaim"]
    assert result.status["phase"] == "Ready" and result.status["endpoint"] is None


def test_failed_job_fails_the_model_with_the_jobs_reason() -> None:
    result = plan(REF, spec(), {}, TRUSTED, Observed(jobs=own(completed(ok=False))), SETTINGS, NOW)
    assert result.status["phase"] == "Failed"
    assert conds(result.status)["WeightsReady"] == ("False", "BackoffLimitExceeded")
    assert "Deployment" not in kinds(result.apply)


def test_rejected_model_creates_nothing() -> None:
    result = plan(REF, spec(), {}, REJECTED, Observed(), SETTINGS, NOW)
    assert result.apply == () and not result.scale_to_zero
    assert result.status["phase"] == "Rejected"
    assert conds(result.status)["Trusted"] == ("False", "SignatureMissing")
    assert next(e.reason for e in result.events if e.type == "Warning") == "SignatureMissing"


def test_model_that_becomes_untrusted_is_scaled_to_zero_not_deleted() -> None:
    observed = Observed(jobs=own(completed()), deployment=available_deployment())
    result = plan(REF, spec(), {"phase": "Ready"}, REJECTED, observed, SETTINGS, NOW)
    assert result.scale_to_zero and result.apply == ()
    assert conds(result.status)["Available"] == ("False", "ScaledToZero")


def test_source_outage_keeps_serving_verified_content() -> None:
    observed = Observed(jobs=own(completed()), deployment=available_deployment())
    previous = plan(REF, spec(), {}, TRUSTED, observed, SETTINGS, NOW).status
    outage = from_error(SourceError(Reason.ENDPOINT_UNREACHABLE, "cannot reach the Hub"), transient=True)
    result = plan(REF, spec(), previous, outage, observed, SETTINGS, LATER)
    assert not result.scale_to_zero
    assert result.status["phase"] == "Degraded"
    assert conds(result.status)["Resolved"] == ("False", "EndpointUnreachable")
    # a new source that cannot be examined is not served: the old content is no longer what the spec asks for
    failed = plan(
        REF, spec(), previous, from_error(SourceError(Reason.REPOSITORY_NOT_FOUND, "no")), observed, SETTINGS, LATER
    )
    assert failed.status["phase"] == "Failed" and failed.scale_to_zero


def test_new_revision_keeps_serving_old_content_until_its_weights_are_verified() -> None:
    old = available_deployment(digest="sha256:" + "0" * 64)
    result = plan(REF, spec(), {"phase": "Ready"}, TRUSTED, Observed(deployment=old), SETTINGS, NOW)
    assert "Deployment" not in kinds(result.apply)  # not rolled to unverified bytes
    assert "Job" in kinds(result.apply)
    assert conds(result.status)["Available"][0] == "True"


def test_update_available_condition() -> None:
    update = UpdateInfo.new_revision("main", "d" * 40)
    result = plan(REF, spec(), {}, TRUSTED, Observed(), SETTINGS, NOW, update)
    assert conds(result.status)["UpdateAvailable"] == ("True", "NewRevision")
    assert result.status["updateAvailable"] == "d" * 40


def test_conditions_keep_their_transition_time_while_unchanged() -> None:
    first = plan(REF, spec(), {}, TRUSTED, Observed(), SETTINGS, NOW)
    second = plan(REF, spec(), first.status, TRUSTED, Observed(), SETTINGS, LATER)
    times = {c["type"]: c["lastTransitionTime"] for c in second.status["conditions"]}
    assert set(times.values()) == {NOW}
    assert second.events == ()  # nothing changed: no events
    third = plan(REF, spec(), second.status, TRUSTED, Observed(jobs=own(completed())), SETTINGS, LATER)
    moved = {c["type"]: c["lastTransitionTime"] for c in third.status["conditions"]}
    assert moved["WeightsReady"] == LATER and moved["Trusted"] == NOW
    assert [e.reason for e in third.events if e.message.startswith("WeightsReady")] == ["Verified"]


def test_merge_drops_conditions_no_longer_reported() -> None:
    merged = merge_conditions(
        [{"type": "UpdateAvailable", "status": "True"}], [Cond("Ready", "True", "x", "y")], 1, NOW
    )
    assert [c["type"] for c in merged] == ["Ready"]


def test_reuse_recorded_decision_only_for_the_same_digest() -> None:
    status = plan(REF, spec(), {}, TRUSTED, Observed(), SETTINGS, NOW).status
    reused = from_status(status, PINNED)
    assert reused is not None and reused.trusted
    other = PinnedManifest("hf://org/granite", "e" * 40, "sha256:" + "9" * 64, FILES)
    assert from_status(status, other) is None


@pytest.mark.parametrize(
    ("status", "generation", "pinned", "now", "expected"),
    [
        ({}, 2, True, NOW, "SpecChanged"),
        ({"observedGeneration": 1, "provenance": PROVENANCE}, 2, True, NOW, "SpecChanged"),
        ({"observedGeneration": 2}, 2, True, NOW, "NotExamined"),
        ({"observedGeneration": 2, "provenance": PROVENANCE}, 2, False, NOW, "ManifestMissing"),
        ({"observedGeneration": 2, "provenance": PROVENANCE}, 2, True, LATER, None),
        ({"observedGeneration": 2, "provenance": PROVENANCE}, 2, True, "2026-11-24T13:00:01Z", "Periodic"),
        (
            {
                "observedGeneration": 2,
                "provenance": {
                    **PROVENANCE,
                    "policies": [{"name": "old", "generation": 3, "mode": "Enforce", "verdict": "Pass"}],
                },
            },
            2,
            True,
            NOW,
            "PoliciesChanged",
        ),
    ],
)
def test_examination_due(status: dict[str, Any], generation: int, pinned: bool, now: str, expected: str | None) -> None:
    assert examination_due(generation, status, [BUILTIN_DEFAULT], pinned, now, 3600) == expected


def test_drift_detection_ignores_server_defaults_but_catches_edits() -> None:
    desired = {"kind": "Service", "metadata": {"name": "s"}, "spec": {"ports": [{"port": 80}], "type": "ClusterIP"}}
    live = {
        "kind": "Service",
        "metadata": {"name": "s", "uid": "x"},
        "spec": {"ports": [{"port": 80, "protocol": "TCP"}], "type": "ClusterIP", "clusterIP": "10.0.0.1"},
    }
    assert is_subset(desired, live)
    assert drifted([desired], {("Service", "s"): live}) == []
    edited = {**live, "spec": {**live["spec"], "type": "NodePort"}}
    assert drifted([desired], {("Service", "s"): edited}) == [desired]
    assert drifted([desired], {}) == [desired]
    assert is_subset({"limits": {"nvidia.com/gpu": "1"}}, {"limits": {"nvidia.com/gpu": 1}})


async def test_reverification_examines_an_unmoved_branch_once(tmp_path: Any) -> None:
    """A periodic re-check whose branch head is still the pinned commit costs one examination, not two."""
    import dataclasses

    from openmodel_operator.controller.reconciler import Reconciler
    from openmodel_operator.controller.settings import OperatorSettings
    from openmodel_operator.sources.examine import examine
    from signing_fixtures import TINY_MODEL, write_model

    model = write_model(tmp_path / "m", TINY_MODEL)
    heads = {"main": "c" * 40}
    calls: list[str] = []

    def examiner(request: Any, policies: Any) -> Any:
        """The local copy stands in for the Hub; the branch resolves to whatever ``heads`` says."""
        calls.append(request.revision)
        exam = examine(dataclasses.replace(request, uri=str(model)), policies)
        commit = heads.get(request.revision, request.revision)
        return dataclasses.replace(exam, resolved=dataclasses.replace(exam.resolved, revision=commit))

    reconciler = Reconciler(None, OperatorSettings(), lambda *_: None, examiner=examiner)  # type: ignore[arg-type]
    status = {"provenance": {"resolvedRevision": "c" * 40, "source": "hf://org/granite", "requestedRevision": "main"}}
    _, update = await reconciler.trust_stage("models", spec(), _typed(status), [BUILTIN_DEFAULT], Due.PERIODIC)
    assert calls == ["main"] and update is None

    heads["main"] = "d" * 40  # upstream moved: the pinned commit is examined as well, and the move reported
    calls.clear()
    _, update = await reconciler.trust_stage("models", spec(), _typed(status), [BUILTIN_DEFAULT], Due.PERIODIC)
    assert calls == ["main", "c" * 40]
    assert update is not None and update.revision == "d" * 40 and update.reason == "NewRevision"
