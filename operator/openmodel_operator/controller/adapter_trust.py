"""The trust stage of LoRA adapters: one decision per adapter of ``spec.adapters``, made like the base model's.

Runs only for a trusted base model (an adapter is never loaded without it). Each adapter is examined with the
base model's examination and decision (``planning.adapters.adapter_model_spec``: its source and signature,
the base model's serving fields, the same policies), so there is no second trust path. The order of the base
model's stage holds: nothing from the network when this process holds the adapter's decision and nothing is
due; a policy change is decided again offline from the kept evidence, so revoking an adapter never waits for
its source; the source is asked when the adapter is new, its spec changed, or re-verification is due.
After a restart the decision recorded on status is reused with the manifest its ConfigMap holds (bound to the
record like the base model's), and a policy change is decided from the evidence that ConfigMap recorded
(checked against status like the base model's); when neither can be believed the source is asked, and an
adapter that cannot be examined is not loaded (fail closed).
"""

from __future__ import annotations

import datetime
from collections.abc import Awaitable, Callable, Mapping

from openmodel_operator.api.openmodel import (
    AdapterProvenance,
    AdapterSpec,
    ContentProvenance,
    OpenModelSpec,
    OpenModelStatus,
    Provenance,
)
from openmodel_operator.controller.memory import HeldAdapter, KeptExamination, ModelMemory
from openmodel_operator.evidence.errors import TrustError
from openmodel_operator.evidence.pinned import PinnedManifest
from openmodel_operator.planning.adapters import AdapterDecision, adapter_model_spec
from openmodel_operator.planning.conditions import TRUSTED, Cond
from openmodel_operator.planning.examination_plan import OFFLINE_REASONS, Due
from openmodel_operator.planning.recorded import matches_provenance
from openmodel_operator.planning.trust_result import TrustResult, from_error, from_examination
from openmodel_operator.trust.examination import Examination

RETRY_AFTER = datetime.timedelta(seconds=60)  # an adapter whose source failed is asked again after this

Examine = Callable[[OpenModelSpec, str], Awaitable[Examination]]
Redecide = Callable[[KeptExamination, OpenModelSpec], Examination]
ManifestOf = Callable[[str], PinnedManifest | None]
Rebuild = Callable[[AdapterProvenance, OpenModelSpec], Awaitable[Examination | None]]
Precheck = Callable[[OpenModelSpec], TrustResult | None]  # refused from the spec and the policies alone


class ExaminationDeferred(TrustError):
    """No examination slot is free: the adapter is decided without its source in this pass (as after a failed
    examination), not remembered as failed, and the pass asks again once a slot frees."""


def _same_source(record: AdapterProvenance, adapter: AdapterSpec) -> bool:
    """Whether a status record was made for this adapter's source and requested revision."""
    return record.source == adapter.source.uri and record.requested_revision == adapter.source.revision


def _from_record(record: AdapterProvenance, manifest_of: ManifestOf) -> TrustResult | None:
    """The decision recorded on status (written by the operator only), with the manifest of the adapter's
    ConfigMap when it is the recorded content in every field; None when that cannot be believed."""
    if record.verdict == "Untrusted":
        message = record.message or "refused"
        return TrustResult(False, (Cond(TRUSTED, "False", record.reason or "NotTrusted", message),))
    if record.verdict != "Trusted" or not record.manifest_digest:
        return None
    pinned = manifest_of(record.manifest_digest)
    if pinned is None or not matches_provenance(pinned, record):
        return None
    provenance = Provenance.model_validate(
        record.model_dump(exclude={"name", "verdict", "reason", "message", "pull_job_uid", "loaded"})
    )
    message = record.message or f"tier {record.trust_tier}, as recorded"
    return TrustResult(True, (Cond(TRUSTED, "True", "PoliciesPassed", message),), provenance, pinned)


def _same_policies(record: AdapterProvenance, provenance: Provenance | None) -> bool:
    """Whether the adapter's record was decided under the policies (and inputs) the base model's record was."""

    def fingerprint(content: ContentProvenance | None) -> list[tuple[str, int | None, str | None]]:
        return [(p.name, p.generation, p.inputs_digest) for p in (content.policies if content else None) or []]

    return provenance is not None and fingerprint(record) == fingerprint(provenance)


async def decide_adapters(
    spec: OpenModelSpec,
    status: OpenModelStatus,
    due: Due | None,
    memory: ModelMemory,
    uid: str | None,
    manifest_of: ManifestOf,
    examine: Examine,
    redecide: Redecide,
    rebuild: Rebuild,
    now: datetime.datetime,
    inputs: Mapping[str, str] | None = None,
    precheck: Precheck | None = None,
) -> list[AdapterDecision]:
    """The decision on each adapter of a trusted base model (held, recorded, re-decided or examined)."""
    provenance = status.provenance
    records = {r.name: r for r in (provenance.adapters if provenance is not None else None) or []}
    held_now: dict[str, HeldAdapter] = {}
    decisions: list[AdapterDecision] = []
    for adapter in spec.adapters or []:
        own = adapter_model_spec(spec, adapter)
        key = adapter.model_dump_json()
        held = memory.adapters.get(adapter.name)
        held = held if held is not None and held.key == key else None
        record = records.get(adapter.name)
        record = record if record is not None and _same_source(record, adapter) else None
        # the adapter's endpoint and source against the policies before anything is asked or believed (as for the
        # base model): a tenant's adapter never makes the operator, or its pull Job, call a host no policy allows
        result: TrustResult | None = precheck(own) if precheck is not None else None
        kept = held.kept if held is not None else None
        if result is not None:
            pass
        elif held is not None and due is None and (held.result.error is None or now - held.at < RETRY_AFTER):
            result = held.result
        elif held is not None and kept is not None and due in OFFLINE_REASONS:
            result = from_examination(redecide(kept, own), now, adapter.source.revision, inputs)
        elif held is None and due is None and record is not None:
            result = _from_record(record, manifest_of)
        elif kept is None and due in OFFLINE_REASONS and record is not None and record.verdict == "Trusted":
            # a restart, then a policy change (straight away, or after passes that held the recorded decision,
            # which keeps no evidence): decided from the evidence its ConfigMap recorded, not the source
            rebuilt = await rebuild(record, own) if adapter.trust.signature.config_map_ref is None else None
            if rebuilt is not None:
                result = from_examination(rebuilt, now, adapter.source.revision, inputs)
                if result.trusted and result.pinned is not None:
                    kept = KeptExamination.of(uid, rebuilt, result.pinned.manifest_digest)
        if result is None:
            # Manual: the recorded commit is re-examined, never the branch's newer one (as for the base model),
            # whatever the last verdict on it was
            pinned_commit = record.resolved_revision if record is not None else None
            revision = pinned_commit if spec.update_policy == "Manual" and pinned_commit else adapter.source.revision
            try:
                exam = await examine(own, revision)
            except TrustError as exc:
                if kept is not None:
                    # the source is down: the adapter stays what its kept evidence says under today's policies
                    result = from_examination(redecide(kept, own), now, adapter.source.revision, inputs)
                elif due is Due.PERIODIC and record is not None and _same_policies(record, provenance):
                    # a restart, then a periodic check the source cannot answer, under the very policies the
                    # recorded decision was made under: it stands (as the base model keeps serving); a policy or
                    # spec change never comes here, so revocation does not wait for the source
                    result = _from_record(record, manifest_of)
                if result is None:
                    result = from_error(exc)
            else:
                result = from_examination(exam, now, adapter.source.revision, inputs)
                kept = (
                    KeptExamination.of(uid, exam, result.pinned.manifest_digest)
                    if result.trusted and result.pinned is not None
                    else None
                )
        at = held.at if held is not None and result is held.result else now
        if not isinstance(result.error, ExaminationDeferred):  # else asked again when a slot frees, not later
            held_now[adapter.name] = HeldAdapter(key, result, at, kept)
        decisions.append(AdapterDecision(adapter, result))
    memory.adapters = held_now  # adapters no longer in the spec are forgotten
    return decisions
