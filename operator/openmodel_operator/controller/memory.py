"""What the operator remembers of one OpenModel between passes, kept beside its body in ``model_cache``.

It goes with the model (its deletion), so nothing here is cleared by hand; an operator restart starts
empty, and every entry is only a shortcut: without it a pass reads the same facts again (the watch, the
manifest ConfigMap, the source).

Memory per model is what bounds how many models one replica holds (issue 13: 10,000 under 500 MiB), so
each entry keeps only what its decision reads, and values that many models hold alike (the evidence of one
content, a parsed pinned manifest) are held once: ``shared_evidence`` and ``parsed_manifest`` hand out one
object per content, weakly referenced (it goes with the last model that holds it). A shared value is found
by its whole content, never by a name a tenant chooses, and is immutable: sharing it cannot let one model's
evidence stand for another content.
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import json
import weakref
from collections.abc import Mapping
from typing import Any

from openmodel_operator.api.openmodel import OpenModelSpec, OpenModelStatus, Provenance
from openmodel_operator.evidence.pinned import PinnedManifest
from openmodel_operator.planning.retry import RetryState
from openmodel_operator.planning.trust_result import TrustResult
from openmodel_operator.trust.decision import Evidence
from openmodel_operator.trust.examination import Examination, ModelRequest


@dataclasses.dataclass(frozen=True)
class KeptExamination:
    """What a decision was made from, for one incarnation (uid) of a model, with the digest it pinned; for the
    content a Deployment serves, also the spec it was rolled with.

    Only what deciding it again offline reads: the request (without its token: no network follows) and the
    evidence, shared by every model of the same content. Not the verdict, nor a second copy of the source.
    """

    uid: str | None
    request: ModelRequest
    evidence: Evidence
    digest: str
    spec: OpenModelSpec | None = None

    @classmethod
    def of(cls, uid: str | None, exam: Examination, digest: str) -> KeptExamination:
        evidence = shared_evidence(exam.evidence)
        request = exam.request
        external = request.external_bundle
        if external is not None and external == evidence.bundle:
            external = evidence.bundle  # the same bytes once
        request = dataclasses.replace(request, token=None, external_bundle=external)
        return cls(uid, request, evidence, digest)


@dataclasses.dataclass(frozen=True)
class HeldAdapter:
    """This process's decision on one LoRA adapter, for the adapter spec it was made for."""

    key: str  # the adapter's spec as JSON: another spec is another decision
    result: TrustResult
    at: datetime.datetime  # when it was made (a failed examination is retried after a while)
    kept: KeptExamination | None = None  # what a trusted decision came from: decided again offline


_EVIDENCE: weakref.WeakValueDictionary[str, Evidence] = weakref.WeakValueDictionary()
_MANIFESTS: weakref.WeakValueDictionary[str, PinnedManifest] = weakref.WeakValueDictionary()


def _digest(data: bytes | None) -> str | None:
    return None if data is None else hashlib.sha256(data).hexdigest()


def evidence_identity(evidence: Evidence) -> str:
    """A digest of every field of the evidence (the bytes themselves, not their names or where they came from)."""
    source = evidence.source
    doc = [
        source.uri,
        source.kind,
        source.revision,
        source.requested_revision,
        source.repo_id,
        source.endpoint,
        [[f.path, f.size, f.sha256] for f in source.files],
        source.card,
        source.openness_declaration,
        _digest(source.signature_bundle),
        _digest(source.openness_bytes),
        _digest(source.readme),
        _digest(evidence.bundle),
        evidence.signature_path,
        evidence.pinned_digest,
    ]
    text = json.dumps(doc, sort_keys=True, separators=(",", ":"), default=repr)
    return hashlib.sha256(text.encode()).hexdigest()


def shared_evidence(evidence: Evidence) -> Evidence:
    """The one held copy of evidence equal to this one (this one when none is held).

    Found by a digest of all of it and then compared field by field (bytes included): only an equal value
    is ever handed out, so a decision made from the shared copy is the decision made from this one.
    """
    key = evidence_identity(evidence)
    held = _EVIDENCE.get(key)
    if held is not None and held == evidence:
        return held
    _EVIDENCE[key] = evidence
    return evidence


_RECORDED: weakref.WeakValueDictionary[tuple[str | None, ...], Evidence] = weakref.WeakValueDictionary()


def recorded_key(provenance: Provenance, signature_path: str, pinned_digest: str | None) -> tuple[str | None, ...]:
    """What fixes the evidence ``recorded.rebuild_evidence`` accepts for a status: every byte of it is bound
    by the manifest digest (the files, the card's and declaration's sha256) and the bundle digest, and the
    rest is the source, commit and endpoint ``matches_provenance`` requires, with the spec's path and pin."""
    signature = provenance.signature
    return (
        provenance.manifest_digest,
        signature.bundle_digest if signature is not None else None,
        provenance.source,
        provenance.resolved_revision,
        provenance.endpoint,
        provenance.requested_revision,
        provenance.repository,
        signature_path,
        pinned_digest,
    )


def recorded_evidence(key: tuple[str | None, ...]) -> Evidence | None:
    """Evidence another model's ConfigMap gave for an equal record, while any model holds it (a restart of
    10,000 models of a few contents reads a few ConfigMaps, not 10,000)."""
    return _RECORDED.get(key)


def keep_recorded_evidence(key: tuple[str | None, ...], evidence: Evidence) -> Evidence:
    """Hold rebuilt evidence for models with an equal record; the shared copy is returned."""
    evidence = shared_evidence(evidence)
    _RECORDED[key] = evidence
    return evidence


def predates(version: str | None, than: str | None) -> bool:
    """Whether a body's resourceVersion predates our own write (etcd revisions are integers; when a server
    uses opaque ones only an exact match of the pre-write version can be told apart, so compare equal)."""
    if version is None or than is None:
        return False
    if version.isdigit() and than.isdigit():
        return int(version) < int(than)
    return False


def reaches(version: str | None, written: str | None) -> bool:
    """Whether a body's resourceVersion is our own write or later (integers only; opaque ones never are)."""
    if version is None or written is None or not (version.isdigit() and written.isdigit()):
        return False
    return int(version) >= int(written)


def pass_skippable(memory: ModelMemory, inputs: tuple[Any, ...], now: float) -> bool:
    """A pass that would change nothing: everything the last pass read is unchanged, it ended well, nothing
    it wrote is still unseen, and no full pass is due yet (the re-verification time, a pending retry's time,
    or the safety net: ``settled_until``). Anything else runs the pass."""
    return (
        memory.settled == inputs
        and now < memory.settled_until
        and memory.failures == 0
        and memory.written is None
        and not memory.applied
    )


def parsed_manifest(text: str) -> PinnedManifest:
    """``PinnedManifest.from_json(text)``, parsed once per distinct text while any model holds it.

    Keyed by the sha256 of the text itself: the parse is a pure function of it, so an equal key is an
    equal result (every refusal of ``from_json`` still happens: a failed parse is never held).
    """
    if not isinstance(text, str):
        return PinnedManifest.from_json(text)  # refused there, with its reason
    key = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()
    held = _MANIFESTS.get(key)
    if held is not None:
        return held
    pinned = PinnedManifest.from_json(text)
    _MANIFESTS[key] = pinned
    return pinned


@dataclasses.dataclass
class ModelMemory:
    """The per-model shortcuts of the reconciler."""

    # our last status write: (resourceVersion after it, the status written), until the watch shows it
    written: tuple[str | None, OpenModelStatus] | None = None
    # the resourceVersion our finalizer write made, until the watch shows it (a pass meanwhile would write it
    # again with the older version and only conflict: 409)
    finalized_at: str | None = None
    # the pinned manifest this process last applied (the watch may not show its ConfigMap yet)
    pinned: PinnedManifest | None = None
    # the manifest ConfigMap parsed at a resourceVersion (a 10k-file manifest is not re-parsed each pass)
    parsed: tuple[str, PinnedManifest] | None = None
    # children applied in the last seconds and not yet shown by the watch: (kind, name) -> (monotonic, object)
    applied: dict[tuple[str, str], tuple[float, Mapping[str, Any]]] = dataclasses.field(default_factory=dict)
    # uids of the Jobs this process created for the model (the newest few): a pull Job counts only if the
    # operator made it, known from here until status records it
    made_jobs: tuple[str, ...] = ()
    # the examination the recorded decision came from, to re-decide offline when the policies change
    recorded: KeptExamination | None = None
    # the examination of the content the Deployment serves (differs from ``recorded`` during a rollout)
    served: KeptExamination | None = None
    # when (monotonic) the generated API key Secret was last found or created: Secrets are not watched
    key_checked: float | None = None
    # the decision key of the newest attestation this process wrote (the watch may not show it yet)
    attested: str | None = None
    # the decision on each LoRA adapter of the spec, by name (``controller.adapter_trust``)
    adapters: dict[str, HeldAdapter] = dataclasses.field(default_factory=dict)
    # the last failed examination and when the source may be asked again
    retry: RetryState | None = None
    # passes that failed in a row (the next one waits 2, 4 ... 32 s, never more than the resync interval)
    failures: int = 0
    # what the last pass read (the model's and children's resourceVersions, the policy epoch, the namespace's
    # labels) and until when (monotonic) a resync with the same inputs may be skipped (``pass_skippable``)
    settled: tuple[Any, ...] | None = None
    settled_until: float = 0.0
