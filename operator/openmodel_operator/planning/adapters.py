"""LoRA adapters: which of ``spec.adapters`` the serving pods load, what is pulled for them, what status says.

An adapter is content like a model: the shell decides each one with the same decision function, under the
same policies and serving rules as its base model (``adapter_model_spec``), and this module plans from those
decisions. An adapter gets its own slot on the model's volume (named by its manifest digest, filled by its
own pull Job, recorded by its own manifest ConfigMap) and is loaded only once its Job, created by the
operator, checked every byte. An adapter that is refused, or not pulled yet, is simply not loaded: the base
model keeps serving (``AdaptersReady`` says why, with an Event). One the pods load that is refused later is a
revocation: the pods restart without it (Recreate), as no pod may keep serving refused content.

Pure: the planner calls :func:`plan_adapters` for a trusted base model.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

from openmodel_operator.api.openmodel import AdapterProvenance, AdapterSpec, OpenModelSpec, OpenModelStatus
from openmodel_operator.api.vocabulary import ConditionReason
from openmodel_operator.planning import children
from openmodel_operator.planning.conditions import ADAPTERS_READY, RESOLVED, TRUSTED, Cond
from openmodel_operator.planning.revision_slots import JobState, job_state, known_jobs
from openmodel_operator.planning.trust_result import TrustResult

MAX_LISTED = 4  # adapters named in one condition message
IS_THE_BASE = "AdapterIsBaseModel"


@dataclasses.dataclass(frozen=True)
class AdapterDecision:
    """The decision on one adapter as the shell gathered it (None: not decided, the base is not trusted)."""

    spec: AdapterSpec
    result: TrustResult | None


@dataclasses.dataclass(frozen=True)
class AdapterPlan:
    """What the adapters add to a trusted model's plan."""

    apply: tuple[dict[str, Any], ...] = ()
    delete: tuple[tuple[str, str], ...] = ()
    load: tuple[children.ServedAdapter, ...] = ()  # what the serving pods are to load
    records: tuple[AdapterProvenance, ...] = ()
    keep_digests: tuple[str, ...] = ()  # slots the prune must leave
    keep_jobs: tuple[str, ...] = ()  # pull Jobs that are records of those slots
    condition: Cond | None = None
    revoked: str | None = None  # the pods load an adapter that is refused now: stop them before new ones start
    rejected: bool = False


def adapter_model_spec(spec: OpenModelSpec, adapter: AdapterSpec) -> OpenModelSpec:
    """The base model's spec with the adapter's source and signature: what the decision and the pull Job read.

    The serving fields stay the base model's, so a policy's serving rules judge the server that would load
    the adapter, and the pull goes to the base model's volume.
    """
    return spec.model_copy(update={"source": adapter.source, "trust": adapter.trust, "adapters": None})


def _refusal(result: TrustResult | None) -> tuple[str, str]:
    """(reason, message) of an adapter that may not be loaded."""
    if result is None:
        return ConditionReason.NOT_TRUSTED.value, "not decided: the base model is not trusted"
    for cond_type in (TRUSTED, RESOLVED):
        cond = next((c for c in result.conditions if c.type == cond_type and c.status != "True"), None)
        if cond is not None and (cond.status == "False" or cond_type == RESOLVED):
            return cond.reason, cond.message
    return ConditionReason.NOT_TRUSTED.value, "the adapter is not trusted"


def _refused(
    ref: children.ModelRef, adapter: AdapterSpec, result: TrustResult | None, base_digest: str
) -> tuple[str, str] | None:
    """(reason, message) when the adapter may not be loaded; None when its decision admits it."""
    if adapter.name == ref.name:
        return ConditionReason.INVALID_SPEC.value, (
            f"spec.adapters name {adapter.name!r} is the OpenModel's own name, which clients use for the base "
            "model; rename the adapter"
        )
    if result is None or not result.trusted or result.pinned is None:
        return _refusal(result)
    if result.pinned.manifest_digest == base_digest:
        return IS_THE_BASE, f"its content is the base model's own ({base_digest}): nothing to adapt"
    return None


def _verdict(result: TrustResult | None) -> str:
    """Unknown when no decision was made (the source could not be examined), else Untrusted."""
    if result is None or (result.error is not None and result.pinned is None):
        return "Unknown"
    return "Untrusted"


def _record(
    adapter: AdapterSpec,
    result: TrustResult | None,
    verdict: str,
    reason: str | None = None,
    message: str | None = None,
    job_uid: str | None = None,
    loaded: bool = False,
    before: AdapterProvenance | None = None,
) -> AdapterProvenance:
    base: dict[str, Any] = {"source": adapter.source.uri, "requested_revision": adapter.source.revision}
    if result is not None and result.provenance is not None:
        base = result.provenance.model_dump(exclude={"adapters"}, exclude_none=True)
    elif before is not None and (before.source, before.requested_revision) == (
        base["source"],
        base["requested_revision"],
    ):
        # not examined this time: the commit it was pinned to stays recorded (Manual re-examines it, not the
        # branch's newer one)
        base["resolved_revision"] = before.resolved_revision
    return AdapterProvenance(
        **base,
        name=adapter.name,
        verdict=verdict,  # type: ignore[arg-type]
        reason=reason,
        message=message[:1024] if message else None,
        pull_job_uid=job_uid,
        loaded=loaded,
    )


def _known_jobs(status: OpenModelStatus, made: frozenset[str]) -> frozenset[str]:
    """uids of the pull Jobs the operator created: recorded on status, or made by this process."""
    records = (status.provenance.adapters if status.provenance is not None else None) or []
    # the model's own pulls count too: an adapter whose content is a revision of the model kept for a rollback
    # shares its Job (one per content and volume), which the operator made for that very digest
    model = known_jobs([status.served, status.incoming, *(status.kept_revisions or [])], made)
    return frozenset(r.pull_job_uid for r in records if r.pull_job_uid) | model


def adapter_children(
    ref: children.ModelRef,
    spec: OpenModelSpec,
    adapter: AdapterSpec,
    result: TrustResult,
    settings: children.ChildSettings,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The adapter's manifest ConfigMap and pull Job: a model's, named by the content, marked as the adapter's."""
    assert result.pinned is not None
    own = adapter_model_spec(spec, adapter)
    configmap = children.pinned_manifest_configmap(ref, own, result.pinned, settings, result.recorded)
    job = children.fetch_job(ref, own, result.pinned, settings)
    for obj in (configmap, job):
        obj["metadata"].setdefault("annotations", {})[children.ADAPTER_ANNOTATION] = adapter.name
    return configmap, job


def plan_adapters(
    ref: children.ModelRef,
    spec: OpenModelSpec,
    base_digest: str,
    decisions: Sequence[AdapterDecision],
    status: OpenModelStatus,
    jobs: Mapping[str, Mapping[str, Any]],
    made_jobs: frozenset[str],
    deployment: Mapping[str, Any] | None,
    rollout_done: bool,
    settings: children.ChildSettings,
    pruning: str | None = None,
    policies_changed: bool = False,
) -> AdapterPlan:
    """The adapters' children, what the pods load, their records and the ``AdaptersReady`` condition.

    ``policies_changed``: the governing policies (or what they reference) changed since the last decision; the
    content the pods load that no decision of this pass vouches for is then revoked, fail closed."""
    live = children.loaded_adapters(deployment)
    if not decisions and not (live and policies_changed):
        return AdapterPlan(keep_digests=tuple(sorted(set(live.values()))))
    serving = spec.serving.runtime != "none"
    volume = children.weights_volume(ref, spec)
    known = _known_jobs(status, made_jobs)
    previous = {r.name: r for r in (status.provenance.adapters if status.provenance is not None else None) or []}
    apply: list[dict[str, Any]] = []
    delete: list[tuple[str, str]] = []
    load: list[children.ServedAdapter] = []
    records: list[AdapterProvenance] = []
    keep_digests: list[str] = sorted(set(live.values()))  # pods may read them until the next rollout completes
    keep_jobs: list[str] = []
    refused: list[str] = []
    failed: list[str] = []
    waiting: list[str] = []
    revoked: list[str] = []
    refused_content: set[str] = set()
    vouched: set[str] = set()  # the content of every adapter decided trusted in this pass
    for decision in decisions:
        adapter, result = decision.spec, decision.result
        refusal = _refused(ref, adapter, result, base_digest)
        if refusal is not None or result is None or result.pinned is None:
            reason, message = refusal or _refusal(result)
            records.append(
                _record(adapter, result, _verdict(result), reason, message, before=previous.get(adapter.name))
            )
            refused.append(f"adapter {adapter.name}: {reason}: {message}")
            if adapter.name in live:
                revoked.append(adapter.name)
            if result is not None and result.pinned is not None:
                refused_content.add(result.pinned.manifest_digest)
            continue
        digest = result.pinned.manifest_digest
        vouched.add(digest)
        configmap, job = adapter_children(ref, spec, adapter, result, settings)
        apply.append(configmap)
        keep_digests.append(digest)
        name = job["metadata"]["name"]
        held = jobs.get(name)
        annotations = ((held or {}).get("metadata") or {}).get("annotations") or {}
        uid = str(((held or {}).get("metadata") or {}).get("uid") or "") or None
        foreign = held is not None and (
            uid is None or uid not in known or annotations.get(children.VOLUME_ANNOTATION) != volume
        )
        # the name keeps 10 hex of the digest: a Job the operator made for another content with that prefix proves
        # nothing about this slot, and is another content's record (not deleted here)
        taken = held is not None and not foreign and annotations.get(children.DIGEST_ANNOTATION) != digest
        state, _, job_message = job_state(None if foreign or taken else held)
        if foreign:
            delete.append(("Job", name))  # a Job of this name the operator did not make: its success proves nothing
            waiting.append(f"adapter {adapter.name}: replacing Job {name}, which the operator did not create")
        elif taken:
            apply.remove(configmap)  # its manifest ConfigMap has the same name: the other content's record stays
            failed.append(f"adapter {adapter.name}: Job {name} is the pull of another content, not of {digest}")
        elif state is JobState.SUCCEEDED:
            keep_jobs.append(name)
        elif state is JobState.FAILED:
            apply.append(job)  # kept with its logs for inspection; the name pins the digest
            keep_jobs.append(name)
            failed.append(f"adapter {adapter.name}: the pull Job {name} failed: {job_message}")
        elif state is JobState.MISSING and pruning is not None:
            waiting.append(f"adapter {adapter.name}: waiting for Job {pruning} to remove unused revisions")
        else:
            apply.append(job)
            keep_jobs.append(name)
            waiting.append(f"adapter {adapter.name}: pulling and verifying {digest}")
        pulled = state is JobState.SUCCEEDED and not foreign and not taken
        if pulled:
            load.append(children.ServedAdapter(adapter.name, digest))
        loaded = pulled and (not serving or (live.get(adapter.name) == digest and rollout_done))
        if pulled and serving and not loaded:
            waiting.append(f"adapter {adapter.name}: rolling out the serving pods with {digest}")
        job_uid = uid if held is not None and not foreign and not taken else None
        records.append(_record(adapter, result, "Trusted", job_uid=job_uid, loaded=loaded))
    # refused content the pods load under another name (renamed while a rollout is held back): no old pod may keep
    # serving it either, unless a trusted adapter of that name loads that very content
    admitted = {(a.name, a.digest) for a in load}
    revoked += [n for n, d in live.items() if d in refused_content and (n, d) not in admitted and n not in revoked]
    if policies_changed:
        # the rules moved: what the pods load that no decision of this pass vouches for (an adapter updated or
        # removed from the spec while its rollout is held back) cannot be decided again here, so it goes, as the
        # base model's served content would (controller.reconciler._check_served)
        revoked += [n for n, d in live.items() if d not in vouched and n not in revoked]
    revoked_message = None
    if revoked and serving:
        revoked_message = (
            f"the serving pods load adapter(s) {', '.join(revoked)} that may no longer be loaded: "
            "they are replaced by pods without them"
        )
    return AdapterPlan(
        apply=tuple(apply),
        delete=tuple(delete),
        load=tuple(load) if serving else (),
        records=tuple(records),
        keep_digests=tuple(dict.fromkeys(keep_digests)),
        keep_jobs=tuple(keep_jobs),
        condition=_condition(refused, failed, waiting, load, serving) if decisions else None,
        revoked=revoked_message,
        rejected=bool(refused),
    )


def _listed(items: Sequence[str]) -> str:
    more = len(items) - MAX_LISTED
    return "; ".join(items[:MAX_LISTED]) + (f"; and {more} more" if more > 0 else "")


def _condition(
    refused: Sequence[str],
    failed: Sequence[str],
    waiting: Sequence[str],
    load: Sequence[children.ServedAdapter],
    serving: bool,
) -> Cond:
    """``AdaptersReady``: True once every adapter is verified and loaded; otherwise the first thing in the way."""
    base = "the base model keeps serving" if serving else "the base model's weights are unaffected"
    if refused:
        return Cond(ADAPTERS_READY, "False", ConditionReason.ADAPTER_REJECTED, f"{_listed(refused)} ({base})")
    if failed:
        return Cond(ADAPTERS_READY, "False", ConditionReason.JOB_FAILED, f"{_listed(failed)} ({base})")
    if waiting:
        return Cond(ADAPTERS_READY, "False", ConditionReason.ADAPTERS_LOADING, _listed(waiting))
    what = ", ".join(f"{a.name} ({a.digest})" for a in load)
    verb = "loaded by every serving pod" if serving else "verified on the volume"
    return Cond(ADAPTERS_READY, "True", ConditionReason.ADAPTERS_LOADED, f"{verb}: {what}")
