"""The level-based planner: (model, trust result, observed children) -> (children to apply, status, events).

Pure: it reads no clock (``now`` is passed in) and talks to no API, so every lifecycle rule is testable
from plain data and `openmodel render` shows exactly what the operator would create.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

from openmodel_operator.api.openmodel import OpenModelSpec
from openmodel_operator.planning import children
from openmodel_operator.planning.conditions import (
    AVAILABLE,
    READY,
    RECONCILED,
    SOURCE_AVAILABLE,
    TRUSTED,
    UPDATE_AVAILABLE,
    WEIGHTS_READY,
    Cond,
    find,
    merge_conditions,
    transitions,
)
from openmodel_operator.planning.trust_result import TrustResult

SHORT_REVISION = 12
SERVED_REVOKED = "ServedContentRevoked"
_WARNING_WHEN_FALSE = {
    "Resolved",
    "SignatureVerified",
    "OpennessVerified",
    TRUSTED,
    WEIGHTS_READY,
    AVAILABLE,
    READY,
    SOURCE_AVAILABLE,
    RECONCILED,
}


@dataclasses.dataclass(frozen=True)
class Observed:
    """The children that exist now, as the API (or the operator's watch index) reports them."""

    deployment: Mapping[str, Any] | None = None
    jobs: Mapping[str, Mapping[str, Any]] = dataclasses.field(default_factory=dict)  # by name
    pvc: Mapping[str, Any] | None = None


@dataclasses.dataclass(frozen=True)
class Event:
    """A Kubernetes Event to post on the OpenModel."""

    type: str  # Normal | Warning
    reason: str
    message: str


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
            "NewRevision",
            f"upstream {branch} moved to {revision}; set updatePolicy: Auto or pin spec.source.revision to roll to it",
        )

    @classmethod
    def rejected(cls, revision: str, reason: str, message: str) -> UpdateInfo:
        return cls(revision, "UpdateRejected", f"upstream {revision} failed verification ({reason}): {message}")


@dataclasses.dataclass(frozen=True)
class Plan:
    """What the reconciler must do: apply these objects, write this status, post these events."""

    apply: tuple[dict[str, Any], ...]
    status: dict[str, Any]
    events: tuple[Event, ...]
    scale_to_zero: bool = False  # patch the existing Deployment's replicas to 0 (untrusted)


def job_state(job: Mapping[str, Any] | None) -> tuple[str, str, str]:
    """(state, reason, message) of a fetch Job: Missing, Running, Succeeded or Failed."""
    if job is None:
        return "Missing", "", ""
    status = job.get("status") or {}
    for cond in status.get("conditions") or []:
        if cond.get("type") == "Complete" and cond.get("status") == "True":
            return "Succeeded", "Complete", cond.get("message") or "the fetch Job completed"
        if cond.get("type") == "Failed" and cond.get("status") == "True":
            reason = cond.get("reason") or "JobFailed"
            return "Failed", reason, cond.get("message") or "the fetch Job failed"
    if (status.get("succeeded") or 0) >= 1:
        return "Succeeded", "Complete", "the fetch Job completed"
    return "Running", "Pulling", f"pulling and verifying (active pods: {status.get('active') or 0})"


def deployment_state(deployment: Mapping[str, Any] | None) -> tuple[bool, str, str]:
    """(available, reason, message) of the serving Deployment as its controller reports it."""
    if deployment is None:
        return False, "NotCreated", "the serving Deployment does not exist yet"
    meta = deployment.get("metadata") or {}
    status = deployment.get("status") or {}
    if (status.get("observedGeneration") or 0) < (meta.get("generation") or 0):
        return False, "RolloutPending", "the Deployment controller has not observed the latest spec yet"
    for cond in status.get("conditions") or []:
        if cond.get("type") == "Available":
            ok = cond.get("status") == "True"
            ready = status.get("readyReplicas") or 0
            return (
                ok,
                cond.get("reason") or ("Available" if ok else "Unavailable"),
                (f"{ready} replica(s) ready" if ok else cond.get("message") or "no replica is ready"),
            )
    return False, "Starting", "waiting for the inference server to become ready"


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
    status: Mapping[str, Any],
    trust: TrustResult,
    observed: Observed,
    settings: children.ChildSettings,
    now: str,
    update: UpdateInfo | None = None,
) -> Plan:
    """Decide children, status and events for one OpenModel."""
    conds: list[Cond] = list(trust.conditions)
    apply: list[dict[str, Any]] = []
    scale_to_zero = False
    phase: str
    endpoint: str | None = None
    serving = spec.serving.runtime != "none"

    if not trust.trusted or trust.pinned is None:
        # Nothing new is created for an untrusted or unexamined model; a running server stops serving it.
        if trust.transient and trust.error is not None and observed.deployment is not None:
            # a transient source outage does not take down content that was verified before
            phase = "Degraded"
            conds.append(
                Cond(READY, "False", trust.error.reason.value, "re-verification failed: " + trust.error.message)
            )
        else:
            phase = "Failed" if trust.error is not None else "Rejected"
            # the Deployment is kept for forensics, scaled to zero by a replicas-only patch
            scale_to_zero = observed.deployment is not None
            reason = next((c.reason for c in conds if c.type == TRUSTED), "NotTrusted")
            conds.append(Cond(READY, "False", reason, "the model is not trusted; see the Trusted condition"))
            if observed.deployment is not None:
                conds.append(Cond(AVAILABLE, "False", "ScaledToZero", "scaled to zero: the model is no longer trusted"))
    else:
        pinned = trust.pinned
        apply.append(children.pinned_manifest_configmap(ref, spec, pinned, settings, trust.recorded))
        apply.append(children.weights_pvc(ref, spec, pinned, settings))
        job = children.fetch_job(ref, spec, pinned, settings)
        state, reason, message = job_state(observed.jobs.get(job["metadata"]["name"]))
        currently_served = served_digest(observed.deployment)
        if state == "Succeeded":
            conds.append(
                Cond(
                    WEIGHTS_READY, "True", "Verified", f"every byte of {pinned.manifest_digest} verified on the volume"
                )
            )
        elif state == "Failed":
            apply.append(job)  # keeps the Job (and its logs) for inspection; the name pins the digest
            conds.append(Cond(WEIGHTS_READY, "False", reason, message))
        else:
            apply.append(job)
            conds.append(Cond(WEIGHTS_READY, "False", "Pulling", message or "the fetch Job was created"))

        if not serving:
            phase = {"Succeeded": "Ready", "Failed": "Failed"}.get(state, "Pulling")
            ready = state == "Succeeded"
            conds.append(
                Cond(
                    READY,
                    "True" if ready else "False",
                    "WeightsVerified" if ready else "WeightsNotReady",
                    "runtime none: the verified weights are on the volume" if ready else "weights are not ready",
                )
            )
        else:
            if state == "Succeeded":
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
                        "ScaledToZero",
                        "spec.serving.replicas is 0: verified, not serving",
                    )
                conds.append(Cond(AVAILABLE, "True" if available else "False", dreason, dmessage))
                endpoint = children.endpoint_url(ref, spec)
                if available:
                    phase = "Ready"
                    if spec.serving.replicas == 0:
                        conds.append(Cond(READY, "True", "ScaledToZero", dmessage))
                    else:
                        conds.append(Cond(READY, "True", "Serving", f"serving {pinned.manifest_digest} at {endpoint}"))
                else:
                    was_ready = (status.get("phase") == "Ready") and rolled
                    phase = "Degraded" if was_ready else "Deploying"
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
                phase = "Failed" if state == "Failed" else "Pulling"
                conds.append(Cond(READY, "False", "WeightsNotReady", "waiting for verified weights on the volume"))

    if trust.degraded is not None:
        conds.append(trust.degraded)
        if phase == "Ready":
            phase = "Degraded"
    if update is not None:
        conds.append(Cond(UPDATE_AVAILABLE, "True", update.reason, update.message))

    merged = merge_conditions(status.get("conditions"), conds, ref.generation, now)
    new_status: dict[str, Any] = {
        "phase": phase,
        "observedGeneration": ref.generation,
        "conditions": merged,
        "shortRevision": trust.revision[:SHORT_REVISION] if trust.revision else None,
        "provenance": dict(trust.provenance) if trust.provenance else status.get("provenance"),
        "endpoint": endpoint,
        "updateAvailable": update.revision if update is not None else None,
    }
    events = tuple(_events_for(status.get("conditions"), merged))
    return Plan(tuple(apply), new_status, events, scale_to_zero)


def _still_revoked(status: Mapping[str, Any], served: str | None, pinned: str) -> str | None:
    """The recorded revocation of the content still served while another is pulled (kept across passes)."""
    cond = find(status.get("conditions"), AVAILABLE)
    if cond is None or cond.get("reason") != SERVED_REVOKED or served is None or served == pinned:
        return None
    return str(cond.get("message") or "the served content no longer passes the policies")


def _events_for(previous: Sequence[Mapping[str, Any]] | None, current: Sequence[Mapping[str, Any]]) -> list[Event]:
    events = []
    for cond in transitions(previous, current):
        bad = cond["status"] == "False" and cond["type"] in _WARNING_WHEN_FALSE
        kind = "Warning" if bad or cond["reason"] == "UpdateRejected" else "Normal"
        events.append(
            Event(kind, cond["reason"] or cond["type"], f"{cond['type']}={cond['status']}: {cond['message']}")
        )
    return events
