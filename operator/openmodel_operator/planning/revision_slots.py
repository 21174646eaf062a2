"""Revision slots: which verified revisions a model's volume holds, which it keeps, and what goes.

Every verified revision lives in its own directory of the volume, named by its manifest digest
(``children.slot_dir``). The record that a slot holds verified content is its pull Job having
succeeded: the Job checked every byte into that directory and into no other. Only a Job the operator
created counts (its uid is in status, or this process made it): a tenant can create a Job of the same
name and labels whose pod writes anything and succeeds. Pure functions over the
children the watch shows; the planner calls them.

The rules:
- while a revision is pulled or rolled out, nothing is removed (the served slot and the incoming one
  are both in use, and a rollback may need any kept one);
- once the decided revision serves (runtime none: once it is verified), the ``keepRevisions`` most
  recently pulled other slots are kept, the others lose their records (pull Job, manifest ConfigMap)
  first and their directories then (a prune Job that keeps only the kept ones);
- no pull starts while a prune Job runs: the prune could remove the directory being filled.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from enum import StrEnum
from typing import Any

from openmodel_operator.api.openmodel import ContentRecord
from openmodel_operator.api.vocabulary import ConditionReason
from openmodel_operator.planning import children

SHORT_REVISION = 12


@dataclasses.dataclass(frozen=True)
class Slot:
    """One revision with a pull Job: its content, when the pull was created, and whether it succeeded."""

    digest: str
    revision: str | None
    created: str  # the Job's creationTimestamp (RFC 3339 sorts as text)
    job: str
    succeeded: bool
    finished: bool
    uid: str | None = None
    known: bool = False  # the operator created this Job

    def record(self, stage: str | None = None) -> ContentRecord:
        return content_record(self.digest, self.revision, stage, self.uid if self.known else None)


def content_record(
    digest: str, revision: str | None, stage: str | None = None, pull_job_uid: str | None = None
) -> ContentRecord:
    """A status record of one content."""
    return ContentRecord(
        revision=revision,
        short_revision=revision[:SHORT_REVISION] if revision else None,
        manifest_digest=digest,
        stage=stage,  # type: ignore[arg-type]
        pull_job_uid=pull_job_uid,
    )


def known_jobs(records: Iterable[ContentRecord | None], made: Iterable[str]) -> frozenset[str]:
    """uids of the pull Jobs the operator created: recorded in status, or made by this process."""
    return frozenset(r.pull_job_uid for r in records if r is not None and r.pull_job_uid) | frozenset(made)


def _annotations(obj: Mapping[str, Any]) -> Mapping[str, str]:
    return (obj.get("metadata") or {}).get("annotations") or {}


def _component(obj: Mapping[str, Any]) -> str | None:
    return ((obj.get("metadata") or {}).get("labels") or {}).get(children.COMPONENT_LABEL)


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


def job_finished(job: Mapping[str, Any]) -> tuple[bool, bool]:
    """(finished, succeeded) of a Job as its controller reports it."""
    state = job_state(job)[0]
    return state in (JobState.SUCCEEDED, JobState.FAILED), state is JobState.SUCCEEDED


def slots(
    ref: children.ModelRef,
    jobs: Mapping[str, Mapping[str, Any]],
    known: frozenset[str] = frozenset(),
    volume: str | None = None,
) -> dict[str, Slot]:
    """The model's slots by digest, from its pull Jobs (a Job of the layout before slots is not one: it wrote
    into the top of the volume, and its name does not match the digest it claims)."""
    found: dict[str, Slot] = {}
    for name, job in jobs.items():
        digest = _annotations(job).get(children.DIGEST_ANNOTATION)
        if _component(job) != "fetch" or not digest or children.ADAPTER_ANNOTATION in _annotations(job):
            continue  # an adapter's slot is not a revision of the model (planning.adapters keeps it)
        if volume is not None and _annotations(job).get(children.VOLUME_ANNOTATION) != volume:
            continue  # it filled another volume (the storage changed): not a slot of this one
        try:
            if children.pull_job_name(ref, digest) != name:
                continue
        except children.ChildrenError:
            continue
        finished, succeeded = job_finished(job)
        meta = job.get("metadata") or {}
        created = str(meta.get("creationTimestamp") or "")
        revision = _annotations(job).get(children.REVISION_ANNOTATION) or None
        uid = str(meta.get("uid") or "") or None
        found[digest] = Slot(
            digest, revision, created, name, succeeded, finished, uid, uid is not None and uid in known
        )
    return found


def kept(all_slots: Mapping[str, Slot], current: str, keep_revisions: int) -> list[Slot]:
    """The previous revisions kept for a rollback: the most recently pulled verified ones, newest first."""
    previous = [s for d, s in all_slots.items() if d != current and s.succeeded and s.known]
    previous.sort(key=lambda s: (s.created, s.job), reverse=True)
    return previous[:keep_revisions]


def prune_running(jobs: Mapping[str, Mapping[str, Any]]) -> str | None:
    """The name of an unfinished prune Job, if one runs (no pull may start beside it)."""
    for name, job in jobs.items():
        if _component(job) == "prune" and not job_finished(job)[0]:
            return name
    return None


@dataclasses.dataclass(frozen=True)
class Cleanup:
    """What a settled model removes: records first (``delete``), then the directories (``prune``)."""

    delete: tuple[tuple[str, str], ...]  # (kind, name)
    prune: dict[str, Any] | None  # the prune Job to create


def cleanup(
    ref: children.ModelRef,
    jobs: Mapping[str, Mapping[str, Any]],
    configmaps: Iterable[str],
    keep_digests: Iterable[str],
    settings: children.ChildSettings,
    on_claim: bool = True,
    shared: str | None = None,
    kept_jobs: Iterable[str] = (),
) -> Cleanup:
    """The records of every slot not kept, and a prune Job that keeps only the kept slots, once settled.

    A prune Job that succeeded is removed, one that failed is kept for inspection (`kubectl logs job/...`: the
    directories it could not remove stay until a later prune); an unfinished one is waited for. The
    manifest ConfigMaps and pull Jobs of the layout before slots are records of no slot: they go too. Without
    a claim (``on_claim`` False: each pod has its own volume) there are records to remove but no directory.
    """
    keep = sorted(set(keep_digests))
    wanted_jobs = set(kept_jobs)  # the Jobs of the kept slots of the current volume, made by the operator
    # a revision's records: its manifest (and recorded evidence) and its AI-BOMs
    records = (children.manifest_configmap_name, children.bom_configmap_name)
    wanted_maps = {name(ref, d) for d in keep for name in records}
    finished_prunes: list[tuple[str, str]] = []
    stale: list[tuple[str, str]] = []
    for name, job in sorted(jobs.items()):
        if _component(job) == "prune":
            finished, succeeded = job_finished(job)
            if not finished:
                return Cleanup((), None)  # one prune at a time; the records it was made for are gone already
            if succeeded:
                finished_prunes.append(("Job", name))  # a failed one stays, with its pod's log, for a person
        elif _component(job) == "fetch" and name not in wanted_jobs:
            stale.append(("Job", name))
    stale += [("ConfigMap", name) for name in sorted(configmaps) if name not in wanted_maps]
    removed = [name for _, name in stale]
    prune = children.prune_job(ref, keep, settings, removed, shared) if stale and on_claim else None
    return Cleanup(tuple(stale + finished_prunes), prune)
