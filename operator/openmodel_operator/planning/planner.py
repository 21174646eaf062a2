"""The level-based planner: (model, trust result, observed children) -> (children to apply, status, events).

Pure: it reads no clock (``now`` is passed in) and talks to no API, so every lifecycle rule is testable
from plain data and `openmodel render` shows exactly what the operator would create.
"""

from __future__ import annotations

import dataclasses
import datetime
from collections.abc import Mapping, Sequence
from typing import Any

from openmodel_operator.api.common import Condition, SecretKeyRef
from openmodel_operator.api.openmodel import AccessRecord, ContentRecord, OpenModelSpec, OpenModelStatus, Provenance
from openmodel_operator.api.vocabulary import SERVING_PHASES, ConditionReason, EventType, Phase
from openmodel_operator.planning import children, revision_slots
from openmodel_operator.planning.adapters import AdapterDecision, AdapterPlan, plan_adapters
from openmodel_operator.planning.bom import bom_child, bom_input, kept_record
from openmodel_operator.planning.conditions import (
    ADAPTERS_READY,
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
from openmodel_operator.planning.revision_slots import JobState, job_state
from openmodel_operator.planning.trust_result import TrustResult

SHORT_REVISION = revision_slots.SHORT_REVISION
SERVED_REVOKED = ConditionReason.SERVED_CONTENT_REVOKED


@dataclasses.dataclass(frozen=True)
class Observed:
    """The children that exist now, as the API (or the operator's watch index) reports them."""

    deployment: Mapping[str, Any] | None = None
    jobs: Mapping[str, Mapping[str, Any]] = dataclasses.field(default_factory=dict)  # by name
    pvc: Mapping[str, Any] | None = None
    configmaps: tuple[str, ...] = ()  # names of the model's manifest and AI-BOM ConfigMaps (a revision's records)
    recorded: tuple[str, ...] = ()  # those of them that carry recorded evidence
    boms: Mapping[str, Mapping[str, str]] = dataclasses.field(default_factory=dict)  # AI-BOM ConfigMaps' annotations
    made_jobs: frozenset[str] = frozenset()  # uids of the Jobs this process created for the model


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
    delete: tuple[tuple[str, str], ...] = ()  # (kind, name) of children no revision needs, removed before applying


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


def _template_annotations(deployment: Mapping[str, Any] | None) -> Mapping[str, str]:
    """The annotations of a Deployment's pod template: what its pods run (a change of them rolls the pods)."""
    template = (((deployment or {}).get("spec") or {}).get("template") or {}).get("metadata") or {}
    return template.get("annotations") or {}


def served_digest(deployment: Mapping[str, Any] | None) -> str | None:
    """The manifest digest the existing Deployment serves: its pod template's annotation.

    Not the object's own annotation, which a tenant can edit without touching the pods; a change of the
    template rolls the pods, and new pods run the verify-on-start check of the content they claim.
    """
    if deployment is None:
        return None
    value = _template_annotations(deployment).get(children.DIGEST_ANNOTATION)
    if not value:
        value = ((deployment.get("metadata") or {}).get("annotations") or {}).get(children.DIGEST_ANNOTATION)
    return str(value) if value else None


def rollout_complete(deployment: Mapping[str, Any] | None) -> bool:
    """Every pod runs the Deployment's current template and is available (what ``kubectl rollout status`` waits
    for): only then has the new revision replaced the old one."""
    if deployment is None:
        return False
    meta = deployment.get("metadata") or {}
    status = deployment.get("status") or {}
    if (status.get("observedGeneration") or 0) < (meta.get("generation") or 0):
        return False
    wanted = (deployment.get("spec") or {}).get("replicas")
    wanted = 1 if wanted is None else int(wanted)
    updated = status.get("updatedReplicas") or 0
    available = status.get("availableReplicas") or 0
    return bool(updated >= wanted and (status.get("replicas") or 0) <= updated and available >= wanted)


def rollout_stalled(deployment: Mapping[str, Any] | None) -> str | None:
    """The message of a rollout past its progress deadline (the old pods keep serving), else None."""
    status = (deployment or {}).get("status") or {}
    for cond in status.get("conditions") or []:
        if cond.get("type") == "Progressing" and cond.get("status") == "False":
            why = f"{cond.get('reason') or 'no progress'}: {cond.get('message') or ''}"
            return (
                f"the rollout stalled ({why}); the previous revision keeps serving. With no spare GPU or node, "
                "set spec.serving.rollout.maxUnavailable: 1"
            )
    return None


def runs_layout(deployment: Mapping[str, Any] | None, ref: children.ModelRef, spec: OpenModelSpec, digest: str) -> bool:
    """Whether the Deployment's pod template is the one planned for ``digest``: its content and the volume
    layout it reads (a template of an older layout or another storage mode, with the same digest, is not)."""
    if served_digest(deployment) != digest:
        return False
    return _template_annotations(deployment).get(children.LAYOUT_ANNOTATION) == children.weights_layout(
        ref, spec, digest
    )


def _served_record(deployment: Mapping[str, Any] | None, recorded: ContentRecord | None) -> ContentRecord | None:
    """What the existing Deployment's pod template runs (its content annotations); status's record of it when
    that is the same content (it names the pull Job that verified it)."""
    digest = served_digest(deployment)
    if digest is None:
        return None
    if recorded is not None and recorded.manifest_digest == digest:
        return recorded
    revision = _template_annotations(deployment).get(children.REVISION_ANNOTATION)
    return revision_slots.content_record(digest, str(revision) if revision else None)


def plan(
    ref: children.ModelRef,
    spec: OpenModelSpec,
    status: OpenModelStatus,
    trust: TrustResult,
    observed: Observed,
    settings: children.ChildSettings,
    now: datetime.datetime,
    update: UpdateInfo | None = None,
    adapters: Sequence[AdapterDecision] = (),
    policies_changed: bool = False,
) -> Plan:
    """Decide children, status and events for one OpenModel (``adapters``: the decision on each LoRA adapter
    of ``spec.adapters``, gathered by the shell when the base model is trusted)."""
    conds: list[Cond] = list(trust.conditions)
    adapter_plan = AdapterPlan()
    provenance = trust.provenance if trust.provenance is not None else status.provenance
    access = status.access
    apply: list[dict[str, Any]] = []
    delete: list[tuple[str, str]] = []
    scale_to_zero = False
    served: ContentRecord | None = None
    incoming: ContentRecord | None = None
    kept_records: list[ContentRecord] | None = None
    phase: Phase
    endpoint: str | None = None
    serving = spec.serving.runtime != "none"

    if not trust.trusted or trust.pinned is None:
        # Nothing new is created for an untrusted or unexamined model; a running server stops serving it.
        # the records of the slots (with the uids of the Jobs that filled them) outlive this: a later pass that
        # trusts again finds its verified slots, instead of taking their Jobs for strangers' and pulling again
        kept_records = list(status.kept_revisions or []) or None
        if spec.adapters:
            why = "no adapter is loaded: the base model is not trusted"
            conds.append(Cond(ADAPTERS_READY, "False", ConditionReason.NOT_TRUSTED, why))
        if trust.transient and trust.error is not None and observed.deployment is not None:
            # a transient source outage does not take down content that was verified before
            phase = Phase.DEGRADED
            served, incoming = status.served, status.incoming
            conds.append(
                Cond(READY, "False", trust.error.reason.value, "re-verification failed: " + trust.error.message)
            )
        else:
            if status.served is not None:  # scaled to zero: no longer served, still on the volume
                kept_records = [status.served, *(kept_records or [])][:8]
            phase = Phase.FAILED if trust.error is not None else Phase.REJECTED
            if trust.pending is not None:
                phase = Phase.VERIFYING  # a claim examination Job runs; nothing undecided is served meanwhile
            # the Deployment is kept for forensics, scaled to zero by a replicas-only patch
            scale_to_zero = observed.deployment is not None
            reason = next((c.reason for c in conds if c.type == TRUSTED), ConditionReason.NOT_TRUSTED)
            why = trust.pending or "the model is not trusted; see the Trusted condition"
            conds.append(Cond(READY, "False", reason, why))
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
        digest = pinned.manifest_digest
        known = revision_slots.known_jobs(
            [status.served, status.incoming, *(status.kept_revisions or [])], observed.made_jobs
        )
        slots = revision_slots.slots(ref, observed.jobs, known, children.weights_volume(ref, spec))
        current_slot = slots.get(digest)
        own_uid = current_slot.uid if current_slot is not None and current_slot.known else None
        in_place = children.reads_source_claim(spec)  # a pvc:// source: served from its claim, nothing is pulled
        per_pod = spec.storage.mode == "PerPod" and not in_place
        shared = None if per_pod or in_place else spec.storage.claim_name  # the namespace's claim, not the model's own
        foreign = False
        apply.append(children.pinned_manifest_configmap(ref, spec, pinned, settings, trust.recorded))
        bom = bom_input(trust)
        if bom is not None and provenance is not None:  # a decision of this pass: its BOMs, kept per revision
            recorded_bom = status.provenance.bom if status.provenance is not None else None
            bom_record = kept_record(ref, bom, recorded_bom, observed.boms)
            if bom_record is None:  # the documents in the cluster do not state this decision
                bom_object, bom_record = bom_child(ref, bom)
                if bom_object is not None:
                    apply.append(bom_object)
            provenance = provenance.model_copy(update={"bom": bom_record})
        access, access_apply, access_delete = _access(ref, spec, status)
        apply.extend(access_apply)
        delete.extend(access_delete)
        job = children.fetch_job(ref, spec, pinned, settings)
        job_name = job["metadata"]["name"]
        if per_pod or in_place:
            # no claim and no Job: each serving pod pulls and checks every byte into its own volume at start, or
            # re-hashes the source claim it reads in place
            state, reason, message = JobState.SUCCEEDED, "", ""
        else:
            if shared is None:
                apply.append(children.weights_pvc(ref, spec, pinned, settings))
            # a Job of this name the operator did not create, or that filled another volume (the storage changed,
            # the content did not): its success says nothing about the slot the pods would read
            held = observed.jobs.get(job_name)
            foreign = held is not None and (current_slot is None or own_uid is None or current_slot.job != job_name)
            state, reason, message = job_state(None if foreign else held)
            if foreign:
                # a Job of this name the operator has no record of creating: its success would prove nothing
                delete.append(("Job", job_name))
        currently_served = served_digest(observed.deployment)
        pruning = revision_slots.prune_running(observed.jobs)
        adapter_plan = plan_adapters(
            ref,
            spec,
            digest,
            adapters,
            status,
            observed.jobs,
            observed.made_jobs,
            observed.deployment,
            rollout_complete(observed.deployment),
            settings,
            pruning,
            policies_changed,
        )
        apply.extend(adapter_plan.apply)
        delete.extend(adapter_plan.delete)
        if adapter_plan.condition is not None:
            conds.append(adapter_plan.condition)
        if adapter_plan.records and provenance is not None:
            provenance = provenance.model_copy(update={"adapters": list(adapter_plan.records)})
        incoming_stage = "Pulling"
        if per_pod:
            pass  # WeightsReady follows the pods, below
        elif in_place:
            conds.append(
                Cond(
                    WEIGHTS_READY,
                    "True",
                    ConditionReason.VERIFIED,
                    f"read in place from {pinned.source} (read-only); every serving pod re-hashes it against {digest} "
                    "before the server starts",
                )
            )
        elif state is JobState.SUCCEEDED:
            conds.append(
                Cond(
                    WEIGHTS_READY,
                    "True",
                    ConditionReason.VERIFIED,
                    f"every byte of {digest} verified in its own directory on the volume",
                )
            )
        elif state is JobState.FAILED:
            apply.append(job)  # keeps the Job (and its logs) for inspection; the name pins the digest
            conds.append(Cond(WEIGHTS_READY, "False", reason, message))
            incoming_stage = "PullFailed"
        elif state is JobState.MISSING and pruning is not None:
            # the prune Job removes every directory it was not told to keep: this slot's pull waits for it
            conds.append(
                Cond(
                    WEIGHTS_READY,
                    "False",
                    ConditionReason.PULLING,
                    f"waiting for Job {pruning} to remove unused revisions before pulling {digest}",
                )
            )
        elif foreign:
            conds.append(
                Cond(
                    WEIGHTS_READY,
                    "False",
                    ConditionReason.PULLING,
                    f"replacing Job {job_name}, which the operator did not create, with its own pull",
                )
            )
        else:
            apply.append(job)
            conds.append(Cond(WEIGHTS_READY, "False", ConditionReason.PULLING, message or "the fetch Job was created"))

        settled = False
        if not serving:
            phase = {JobState.SUCCEEDED: Phase.READY, JobState.FAILED: Phase.FAILED}.get(state, Phase.PULLING)
            ready = state is JobState.SUCCEEDED
            settled = ready
            conds.append(
                Cond(
                    READY,
                    "True" if ready else "False",
                    ConditionReason.WEIGHTS_VERIFIED if ready else ConditionReason.WEIGHTS_NOT_READY,
                    "runtime none: the verified weights are on the volume" if ready else "weights are not ready",
                )
            )
            served = revision_slots.content_record(digest, pinned.revision, None, own_uid) if ready else None
            incoming = (
                None if ready else revision_slots.content_record(digest, pinned.revision, incoming_stage, own_uid)
            )
        elif state is JobState.SUCCEEDED:
            rolled = runs_layout(observed.deployment, ref, spec, digest)
            complete = rolled and rollout_complete(observed.deployment)
            previous = status.served if status.served is not None and status.served.manifest_digest != digest else None
            if previous is None and currently_served is not None and not rolled:
                # another revision, or the same one on another volume (the storage changed): its pods serve
                previous = _served_record(observed.deployment, status.served)
            # the previous revision, revoked while its pods still run beside the new ones: they go first
            revoked_previous = (
                trust.served_revoked or _still_revoked(status, previous.manifest_digest, digest)
                if previous is not None and not complete
                else None
            )
            apply.extend(
                obj
                for obj in (
                    children.deployment(
                        ref,
                        spec,
                        pinned,
                        settings,
                        recreate=revoked_previous is not None or adapter_plan.revoked is not None,
                        adapters=adapter_plan.load,
                        signature_digest=_bundle_digest(provenance),
                    ),
                    children.service(ref, spec, pinned, settings),
                )
                if obj is not None
            )
            available, dreason, dmessage = deployment_state(observed.deployment if rolled else None)
            if spec.serving.replicas == 0:
                # as a Deployment with zero replicas is Available: the user asked for no server
                available, dreason, dmessage = (
                    True,
                    ConditionReason.SCALED_TO_ZERO,
                    "spec.serving.replicas is 0: verified, not serving",
                )
                complete = rolled
            elif not complete and previous is not None:
                # the old pods serve (RollingUpdate) or are being replaced (Recreate): the Deployment says which
                live_available, _, live_message = deployment_state(observed.deployment)
                stalled = rollout_stalled(observed.deployment) if rolled else None
                incoming_stage = "RolloutStalled" if stalled else "RollingOut"
                available = live_available
                dreason = ConditionReason.ROLLOUT_STALLED if stalled else ConditionReason.ROLLING_OUT
                dmessage = stalled or f"rolling out {digest}: {live_message}"
            if revoked_previous is not None:
                available, dreason, dmessage = False, SERVED_REVOKED, revoked_previous
            conds.append(Cond(AVAILABLE, "True" if available else "False", dreason, dmessage))
            if per_pod and spec.serving.replicas == 0:
                conds.append(
                    Cond(
                        WEIGHTS_READY,
                        "False",
                        ConditionReason.SCALED_TO_ZERO,
                        "spec.serving.replicas is 0: no pod has pulled the weights",
                    )
                )
            elif per_pod:
                pulled = complete or (rolled and available)
                conds.append(
                    Cond(
                        WEIGHTS_READY,
                        "True" if pulled else "False",
                        ConditionReason.VERIFIED if pulled else ConditionReason.PULLING,
                        f"each serving pod pulled and verified every byte of {digest} into its own volume"
                        if pulled
                        else f"the new pods pull and verify every byte of {digest} into their own volumes",
                    )
                )
            endpoint = children.endpoint_url(ref, spec)
            settled = complete
            if complete or (rolled and previous is None and available):
                served, incoming = revision_slots.content_record(digest, pinned.revision, None, own_uid), None
            else:
                served = previous  # revoked or not, its pods run until the rollout replaced them (Ready says which)
                incoming = revision_slots.content_record(digest, pinned.revision, incoming_stage, own_uid)
            if previous is not None and not complete:
                phase = Phase.UPDATING
                if available:
                    conds.append(
                        Cond(
                            READY,
                            "True",
                            ConditionReason.ROLLING_OUT,
                            f"serving {previous.manifest_digest} at {endpoint} while {digest} rolls out",
                        )
                    )
                else:
                    conds.append(Cond(READY, "False", dreason, dmessage))
            elif available:
                phase = Phase.READY
                if spec.serving.replicas == 0:
                    conds.append(Cond(READY, "True", ConditionReason.SCALED_TO_ZERO, dmessage))
                else:
                    conds.append(Cond(READY, "True", ConditionReason.SERVING, f"serving {digest} at {endpoint}"))
            else:
                was_ready = status.phase in SERVING_PHASES and rolled
                phase = Phase.DEGRADED if was_ready else Phase.DEPLOYING
                conds.append(Cond(READY, "False", dreason, dmessage))
        else:
            # the running server (if any) keeps serving the content it was rolled to until new weights are
            # verified in their own directory, as long as that content still passes today's policies
            revoked = trust.served_revoked or _still_revoked(status, currently_served, digest) or adapter_plan.revoked
            served = None
            incoming = revision_slots.content_record(digest, pinned.revision, incoming_stage, own_uid)
            if observed.deployment is not None and revoked:
                scale_to_zero = True
                conds.append(Cond(AVAILABLE, "False", SERVED_REVOKED, revoked))
                phase = Phase.FAILED if state is JobState.FAILED else Phase.PULLING
                conds.append(Cond(READY, "False", ConditionReason.WEIGHTS_NOT_READY, "waiting for verified weights"))
            elif observed.deployment is not None and currently_served is not None:
                available, dreason, dmessage = deployment_state(observed.deployment)
                served = _served_record(observed.deployment, status.served)
                endpoint = children.endpoint_url(ref, spec) if available else None
                conds.append(
                    Cond(
                        AVAILABLE,
                        "True" if available else "False",
                        dreason,
                        f"{dmessage} (serving {currently_served})",
                    )
                )
                what = "could not be verified" if state is JobState.FAILED else "is pulled and verified"
                if available:
                    phase = Phase.DEGRADED if state is JobState.FAILED else Phase.UPDATING
                    conds.append(
                        Cond(
                            READY,
                            "True",
                            ConditionReason.SERVING,
                            f"serving {currently_served} at {endpoint} while {digest} {what}",
                        )
                    )
                else:
                    phase = Phase.FAILED if state is JobState.FAILED else Phase.PULLING
                    conds.append(Cond(READY, "False", dreason, f"{dmessage} (serving {currently_served})"))
            else:
                phase = Phase.FAILED if state is JobState.FAILED else Phase.PULLING
                conds.append(
                    Cond(
                        READY, "False", ConditionReason.WEIGHTS_NOT_READY, "waiting for verified weights on the volume"
                    )
                )

        keep = 0 if per_pod or in_place else spec.storage.keep_revisions
        # shown during an update too; only a settled model removes what is not kept
        running = served.manifest_digest if served is not None else None
        kept_slots = [s for s in revision_slots.kept(slots, digest, keep + 1) if s.digest != running][:keep]
        if settled:
            # the record written before revision slots may hold the only copy of the recorded evidence (what decides
            # offline when the source is down): kept until this revision's own record carries it
            current = children.manifest_configmap_name(ref, digest)
            hold = set() if current in observed.recorded else {children.legacy_manifest_name(ref)}
            cleanup = revision_slots.cleanup(
                ref,
                observed.jobs,
                [name for name in observed.configmaps if name not in hold],
                [digest, *(slot.digest for slot in kept_slots), *adapter_plan.keep_digests],
                settings,
                on_claim=not (per_pod or in_place),
                shared=shared,
                kept_jobs=[
                    *(slot.job for d, slot in slots.items() if slot.known and (d == digest or slot in kept_slots)),
                    *adapter_plan.keep_jobs,
                ],
            )
            delete.extend(cleanup.delete)
            if cleanup.prune is not None:
                apply.append(cleanup.prune)
            if (per_pod or shared or in_place) and observed.pvc is not None and not spec.storage.retain:
                # the model's own claim, served from until every pod ran with its own volume or the shared one
                delete.append(("PersistentVolumeClaim", children.own_claim_name(ref)))
        kept_records = [slot.record() for slot in kept_slots] or None

    if trust.degraded is not None:
        conds.append(trust.degraded)
        if phase == Phase.READY:
            phase = Phase.DEGRADED
    if adapter_plan.rejected and phase == Phase.READY:
        phase = Phase.DEGRADED  # the base model serves; an adapter asked for is refused (AdaptersReady says which)
    if update is not None:
        conds.append(Cond(UPDATE_AVAILABLE, "True", update.reason, update.message))

    merged = merge_conditions(status.conditions, conds, ref.generation, now)
    new_status = OpenModelStatus(
        phase=phase,
        observed_generation=ref.generation,
        conditions=merged,
        short_revision=trust.revision[:SHORT_REVISION] if trust.revision else None,
        provenance=provenance,
        endpoint=endpoint,
        update_available=update.revision if update is not None else None,
        served=served,
        incoming=incoming,
        kept_revisions=kept_records,
        access=access,
        attestations=status.attestations,  # carried: the shell records a new decision's entry (attestation_history)
    )
    events = tuple(_events_for(status.conditions, merged))
    return Plan(tuple(apply), new_status, events, scale_to_zero, tuple(delete))


def _access(
    ref: children.ModelRef, spec: OpenModelSpec, status: OpenModelStatus
) -> tuple[AccessRecord | None, list[dict[str, Any]], list[tuple[str, str]]]:
    """What guards a trusted model's endpoint: (status record, objects to apply, objects to delete).

    The NetworkPolicy and the key Secret come before the Deployment, so no pod ever serves unguarded; a key
    no longer asked for is deleted (the pods roll without it, as their template changed)."""
    apply: list[dict[str, Any]] = []
    delete: list[tuple[str, str]] = []
    policy = children.network_policy(ref, spec)
    if policy is None:
        delete.append(("NetworkPolicy", children.child_name(ref.name)))
    else:
        apply.append(policy)
    wants_key = spec.serving.runtime != "none" and spec.serving.access.api_key
    had_key = status.access is not None and status.access.api_key_secret is not None
    if wants_key:
        apply.append(children.api_key_secret(ref))
    elif had_key:
        delete.append(("Secret", children.api_key_secret_name(ref)))
    if policy is None:
        return None, apply, delete
    key = SecretKeyRef(name=children.api_key_secret_name(ref), key=children.API_KEY) if wants_key else None
    record = AccessRecord(
        network_policy=policy["metadata"]["name"],
        allowed_namespaces=[ref.namespace, *sorted(set(spec.serving.access.namespaces or []) - {ref.namespace})],
        api_key_secret=key,
    )
    return record, apply, delete


def _bundle_digest(provenance: Provenance | None) -> str | None:
    """The sha256 of the signature bundle the decision verified (``sha256:<hex>``), None without one."""
    signature = provenance.signature if provenance is not None else None
    return signature.bundle_digest if signature is not None and signature.bundle_digest else None


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
    "attestations",
    "served",
    "incoming",
    "keptRevisions",
    "access",
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
