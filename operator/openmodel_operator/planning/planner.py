"""The level-based planner: (model, trust result, observed children) -> (children to apply, status, events).

Pure: it reads no clock (``now`` is passed in) and talks to no API, so every lifecycle rule is testable
from plain data and `openmodel render` shows exactly what the operator would create.
"""

from __future__ import annotations

import dataclasses
import datetime
from collections.abc import Mapping, Sequence
from enum import StrEnum
from typing import Any

from openmodel_operator.api.common import Condition
from openmodel_operator.api.openmodel import OpenModelSpec, OpenModelStatus
from openmodel_operator.api.vocabulary import SERVING_PHASES, ConditionReason, EventType, Phase
from openmodel_operator.planning import children
from openmodel_operator.planning.conditions import (
    AVAILABLE,
    OPENNESS_VERIFIED,
    READY,
    RECONCILED,
    RESOLVED,
    SIGNATURE_VERIFIED,
    TRUSTED,
    UPDATE_AVAILABLE,
    WEIGHTS_READY,
    Cond,
    find,
    is_true,
    merge_conditions,
    transitions,
)
from openmodel_operator.planning.event_severity import event_type_of
from openmodel_operator.planning.examination_plan import UpdateInfo
from openmodel_operator.planning.trust_result import TrustResult

SHORT_REVISION = 12
SERVED_REVOKED = ConditionReason.SERVED_CONTENT_REVOKED


@dataclasses.dataclass(frozen=True)
class Observed:
    """The children that exist now, as the API (or the operator's watch index) reports them."""

    deployment: Mapping[str, Any] | None = None
    jobs: Mapping[str, Mapping[str, Any]] = dataclasses.field(default_factory=dict)  # by name
    pvc: Mapping[str, Any] | None = None


@dataclasses.dataclass(frozen=True)
class Event:
    """A Kubernetes Event to post on the OpenModel."""

    type: EventType
    reason: str
    message: str


@dataclasses.dataclass(frozen=True)
class Plan:
    """What the reconciler must do: apply these objects, write this status, post these events."""

    apply: tuple[dict[str, Any], ...]
    status: OpenModelStatus
    events: tuple[Event, ...]
    scale_to_zero: bool = False  # patch the existing Deployment's replicas to 0 (untrusted)


class JobState(StrEnum):
    """Where the fetch Job is."""

    MISSING = "Missing"
    RUNNING = "Running"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"


def job_state(job: Mapping[str, Any] | None) -> tuple[JobState, str, str]:
    """(state, reason, message) of a fetch Job: Missing, Running, Succeeded or Failed."""
    if job is None:
        return JobState.MISSING, "", ""
    status = job.get("status") or {}
    for cond in status.get("conditions") or []:
        if cond.get("type") == "Complete" and cond.get("status") == "True":
            return JobState.SUCCEEDED, ConditionReason.COMPLETE, cond.get("message") or "the fetch Job completed"
        if cond.get("type") == "Failed" and cond.get("status") == "True":
            reason = cond.get("reason") or ConditionReason.JOB_FAILED
            return JobState.FAILED, reason, cond.get("message") or "the fetch Job failed"
    if (status.get("succeeded") or 0) >= 1:
        return JobState.SUCCEEDED, ConditionReason.COMPLETE, "the fetch Job completed"
    return (
        JobState.RUNNING,
        ConditionReason.PULLING,
        f"pulling and verifying (active pods: {status.get('active') or 0})",
    )


def deployment_state(deployment: Mapping[str, Any] | None) -> tuple[bool, str, str]:
    """(available, reason, message) of the serving Deployment as its controller reports it."""
    if deployment is None:
        return False, ConditionReason.NOT_CREATED, "the serving Deployment does not exist yet"
    meta = deployment.get("metadata") or {}
    status = deployment.get("status") or {}
    if (status.get("observedGeneration") or 0) < (meta.get("generation") or 0):
        return False, ConditionReason.ROLLOUT_PENDING, "the Deployment controller has not observed the latest spec yet"
    for cond in status.get("conditions") or []:
        if cond.get("type") == "Available":
            ok = cond.get("status") == "True"
            ready = status.get("readyReplicas") or 0
            return (
                ok,
                cond.get("reason") or (ConditionReason.AVAILABLE if ok else ConditionReason.UNAVAILABLE),
                (f"{ready} replica(s) ready" if ok else cond.get("message") or "no replica is ready"),
            )
    return False, ConditionReason.STARTING, "waiting for the inference server to become ready"


def served_digest(deployment: Mapping[str, Any] | None) -> str | None:
    """The manifest digest the existing Deployment serves: its pod template's annotation.

    Not the object's own annotation, which a tenant can edit without touching the pods; a change of the
    template rolls the pods, and new pods run the verify-on-start check of the content they claim.
    """
    if deployment is None:
        return None
    template = ((deployment.get("spec") or {}).get("template") or {}).get("metadata") or {}
    value = (template.get("annotations") or {}).get(children.DIGEST_ANNOTATION)
    if not value:
        value = ((deployment.get("metadata") or {}).get("annotations") or {}).get(children.DIGEST_ANNOTATION)
    return str(value) if value else None


def plan(
    ref: children.ModelRef,
    spec: OpenModelSpec,
    status: OpenModelStatus,
    trust: TrustResult,
    observed: Observed,
    settings: children.ChildSettings,
    now: datetime.datetime,
    update: UpdateInfo | None = None,
) -> Plan:
    """Decide children, status and events for one OpenModel."""
    conds: list[Cond] = list(trust.conditions)
    apply: list[dict[str, Any]] = []
    scale_to_zero = False
    phase: Phase
    endpoint: str | None = None
    serving = spec.serving.runtime != "none"

    if not trust.trusted or trust.pinned is None:
        # Nothing new is created for an untrusted or unexamined model; a running server stops serving it.
        if trust.transient and trust.error is not None and observed.deployment is not None:
            # a transient source outage does not take down content that was verified before
            phase = Phase.DEGRADED
            conds.append(
                Cond(READY, "False", trust.error.reason.value, "re-verification failed: " + trust.error.message)
            )
        else:
            phase = Phase.FAILED if trust.error is not None else Phase.REJECTED
            # the Deployment is kept for forensics, scaled to zero by a replicas-only patch
            scale_to_zero = observed.deployment is not None
            reason = next((c.reason for c in conds if c.type == TRUSTED), ConditionReason.NOT_TRUSTED)
            conds.append(Cond(READY, "False", reason, "the model is not trusted; see the Trusted condition"))
            if observed.deployment is not None:
                conds.append(
                    Cond(
                        AVAILABLE,
                        "False",
                        ConditionReason.SCALED_TO_ZERO,
                        "scaled to zero: the model is no longer trusted",
                    )
                )
    else:
        pinned = trust.pinned
        apply.append(children.pinned_manifest_configmap(ref, spec, pinned, settings, trust.recorded))
        apply.append(children.weights_pvc(ref, spec, pinned, settings))
        job = children.fetch_job(ref, spec, pinned, settings)
        state, reason, message = job_state(observed.jobs.get(job["metadata"]["name"]))
        currently_served = served_digest(observed.deployment)
        if state is JobState.SUCCEEDED:
            conds.append(
                Cond(
                    WEIGHTS_READY,
                    "True",
                    ConditionReason.VERIFIED,
                    f"every byte of {pinned.manifest_digest} verified on the volume",
                )
            )
        elif state is JobState.FAILED:
            apply.append(job)  # keeps the Job (and its logs) for inspection; the name pins the digest
            conds.append(Cond(WEIGHTS_READY, "False", reason, message))
        else:
            apply.append(job)
            conds.append(Cond(WEIGHTS_READY, "False", ConditionReason.PULLING, message or "the fetch Job was created"))

        if not serving:
            phase = {JobState.SUCCEEDED: Phase.READY, JobState.FAILED: Phase.FAILED}.get(state, Phase.PULLING)
            ready = state is JobState.SUCCEEDED
            conds.append(
                Cond(
                    READY,
                    "True" if ready else "False",
                    ConditionReason.WEIGHTS_VERIFIED if ready else ConditionReason.WEIGHTS_NOT_READY,
                    "runtime none: the verified weights are on the volume" if ready else "weights are not ready",
                )
            )
        else:
            if state is JobState.SUCCEEDED:
                apply.extend(
                    obj
                    for obj in (
                        children.deployment(ref, spec, pinned, settings),
                        children.service(ref, spec, pinned, settings),
                    )
                    if obj is not None
                )
                rolled = currently_served == pinned.manifest_digest
                available, dreason, dmessage = deployment_state(observed.deployment if rolled else None)
                if spec.serving.replicas == 0:
                    # as a Deployment with zero replicas is Available: the user asked for no server
                    available, dreason, dmessage = (
                        True,
                        ConditionReason.SCALED_TO_ZERO,
                        "spec.serving.replicas is 0: verified, not serving",
                    )
                conds.append(Cond(AVAILABLE, "True" if available else "False", dreason, dmessage))
                endpoint = children.endpoint_url(ref, spec)
                if available:
                    phase = Phase.READY
                    if spec.serving.replicas == 0:
                        conds.append(Cond(READY, "True", ConditionReason.SCALED_TO_ZERO, dmessage))
                    else:
                        conds.append(
                            Cond(
                                READY,
                                "True",
                                ConditionReason.SERVING,
                                f"serving {pinned.manifest_digest} at {endpoint}",
                            )
                        )
                else:
                    was_ready = status.phase == Phase.READY and rolled
                    phase = Phase.DEGRADED if was_ready else Phase.DEPLOYING
                    conds.append(Cond(READY, "False", dreason, dmessage))
            else:
                # the running server (if any) keeps serving the content it was rolled to until new weights are
                # verified, as long as that content still passes today's policies
                revoked = trust.served_revoked or _still_revoked(status, currently_served, pinned.manifest_digest)
                if observed.deployment is not None and revoked:
                    scale_to_zero = True
                    conds.append(Cond(AVAILABLE, "False", SERVED_REVOKED, revoked))
                elif observed.deployment is not None:
                    available, dreason, dmessage = deployment_state(observed.deployment)
                    conds.append(
                        Cond(
                            AVAILABLE,
                            "True" if available else "False",
                            dreason,
                            f"{dmessage} (serving {currently_served})",
                        )
                    )
                phase = Phase.FAILED if state is JobState.FAILED else Phase.PULLING
                conds.append(
                    Cond(
                        READY, "False", ConditionReason.WEIGHTS_NOT_READY, "waiting for verified weights on the volume"
                    )
                )

    if trust.degraded is not None:
        conds.append(trust.degraded)
        if phase == Phase.READY:
            phase = Phase.DEGRADED
    if update is not None:
        conds.append(Cond(UPDATE_AVAILABLE, "True", update.reason, update.message))

    merged = merge_conditions(status.conditions, conds, ref.generation, now)
    new_status = OpenModelStatus(
        phase=phase,
        observed_generation=ref.generation,
        conditions=merged,
        short_revision=trust.revision[:SHORT_REVISION] if trust.revision else None,
        provenance=trust.provenance if trust.provenance is not None else status.provenance,
        endpoint=endpoint,
        update_available=update.revision if update is not None else None,
    )
    events = tuple(_events_for(status.conditions, merged))
    return Plan(tuple(apply), new_status, events, scale_to_zero)


def _still_revoked(status: OpenModelStatus, served: str | None, pinned: str) -> str | None:
    """The recorded revocation of the content still served while another is pulled (kept across passes)."""
    cond = find(status.conditions, AVAILABLE)
    if cond is None or cond.reason != SERVED_REVOKED or served is None or served == pinned:
        return None
    return cond.message or "the served content no longer passes the policies"


def _events_for(previous: Sequence[Condition] | None, current: Sequence[Condition]) -> list[Event]:
    events = []
    for cond in transitions(previous, current):
        kind = event_type_of(previous, cond)  # a normal pull or rollout is Normal; a failure is a Warning
        events.append(Event(kind, cond.reason or cond.type, f"{cond.type}={cond.status}: {cond.message}"))
    return events


# the fields a status patch owns: each is written (or removed with null) on every change
_OWNED_FIELDS = (
    "phase",
    "observedGeneration",
    "conditions",
    "shortRevision",
    "provenance",
    "endpoint",
    "updateAvailable",
)


def status_patch(status: OpenModelStatus) -> dict[str, Any]:
    """The merge patch that makes the stored status equal ``status`` in the fields the planner owns.

    A field the planner cleared is sent as null so the server removes it, at every depth of an object
    (a merge patch keeps what it does not mention: a stale signer or license would survive); lists are
    replaced whole, so a list item leaves its unset fields out (its schema allows no null).
    """
    wire = status.model_dump(by_alias=True, mode="json")
    return {key: _with_nulls(wire.get(key)) for key in _OWNED_FIELDS}


def _with_nulls(value: Any, in_list: bool = False) -> Any:
    """An object's unset fields as null (removed by the merge); inside a list item, left out."""
    if isinstance(value, dict):
        return {k: _with_nulls(v, in_list) for k, v in value.items() if v is not None or not in_list}
    if isinstance(value, list):
        return [_with_nulls(item, True) for item in value]
    return value


# what a decision says: shown even when the pass that made it could not carry it out
_DECISION_CONDITIONS = frozenset({RESOLVED, SIGNATURE_VERIFIED, OPENNESS_VERIFIED, TRUSTED, READY})


def plan_failure(
    status: OpenModelStatus,
    generation: int | None,
    reason: str,
    message: str,
    now: datetime.datetime,
    decided: OpenModelStatus | None = None,
) -> Plan:
    """A pass that failed (a child the API server refused, a name taken, an internal error): Reconciled=False.

    Content that was serving stays Degraded (nothing it runs changed), anything else is Failed; the other
    conditions and provenance are kept as they were. ``decided``: the status the failed pass planned; when it
    neither trusts nor serves the content (a revocation the API server refused to carry out), that decision is
    shown and the model is Failed: status never keeps saying Trusted for content the operator has rejected.
    """
    previous = [c for c in status.conditions or [] if c.type != RECONCILED]
    provenance = status.provenance
    phase = Phase.DEGRADED if status.phase in SERVING_PHASES else Phase.FAILED
    if decided is not None and not is_true(decided.conditions, TRUSTED) and decided.phase not in SERVING_PHASES:
        decision = [c for c in decided.conditions or [] if c.type in _DECISION_CONDITIONS]
        previous = [*decision, *(c for c in previous if c.type not in _DECISION_CONDITIONS)]
        provenance = decided.provenance if decided.provenance is not None else provenance
        phase = Phase.FAILED
    kept = [Cond(c.type, c.status, c.reason, c.message) for c in previous]
    conds = [*kept, Cond(RECONCILED, "False", reason, message)]
    merged = merge_conditions(status.conditions, conds, generation, now)
    new_status = status.model_copy(update={"phase": phase, "conditions": merged, "provenance": provenance})
    return Plan((), new_status, (Event(EventType.WARNING, reason, message),))


def plan_invalid_spec(
    status: OpenModelStatus,
    generation: int | None,
    message: str,
    now: datetime.datetime,
    observed: Observed | None = None,
) -> Plan:
    """A stored spec that does not validate (the CRD schema should have refused it): Failed, with the field.

    Nothing can be decided for it, not even a revocation of what runs: a running server is scaled to zero
    (fail closed), so an unreadable spec never shields served content from today's policies.
    """
    conds = [
        Cond(RESOLVED, "False", ConditionReason.INVALID_SPEC, message),
        Cond(TRUSTED, "Unknown", ConditionReason.INVALID_SPEC, message),
    ]
    serving = observed is not None and observed.deployment is not None
    if serving:
        conds.append(Cond(AVAILABLE, "False", ConditionReason.SCALED_TO_ZERO, "scaled to zero: " + message))
    new_status = status.model_copy(
        update={
            "phase": Phase.FAILED,
            "observed_generation": generation,
            "conditions": merge_conditions(status.conditions, conds, generation, now),
        }
    )
    return Plan((), new_status, (Event(EventType.WARNING, ConditionReason.INVALID_SPEC, message),), serving)
