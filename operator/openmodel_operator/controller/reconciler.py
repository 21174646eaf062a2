"""One reconcile pass for one OpenModel: read it once, ask the pure core what to do, fetch, carry out.

The shell only fetches (Secrets, the Hub in the examination threads, the manifest ConfigMap) and writes
(children, status, Events). Every decision is a pure function over typed values: ``examination_due``,
``plan_examination`` and the upstream/outage rules (``planning.examination_plan``), the retry backoff
(``planning.retry``), ``decide`` (``trust.decision``) and ``plan`` (``planning.planner``).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import dataclasses
import datetime
import logging
import secrets
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from openmodel_operator.api.openmodel import AdapterProvenance, OpenModelSpec, OpenModelStatus
from openmodel_operator.api.time import utcnow
from openmodel_operator.api.vocabulary import SERVING_PHASES, ConditionReason
from openmodel_operator.controller.adapter_trust import ExaminationDeferred, decide_adapters
from openmodel_operator.controller.attestations import Attestor
from openmodel_operator.controller.claim_reports import ClaimExaminations
from openmodel_operator.controller.decision_memo import DecisionMemo
from openmodel_operator.controller.kube import Kube, KubeError
from openmodel_operator.controller.memory import (
    KeptExamination,
    ModelMemory,
    keep_recorded_evidence,
    parsed_manifest,
    predates,
    reaches,
    recorded_evidence,
    recorded_key,
)
from openmodel_operator.controller.metrics import METRICS
from openmodel_operator.controller.policy_inputs import PolicyInputs
from openmodel_operator.controller.settings import OperatorSettings
from openmodel_operator.evidence.claim_report import ClaimReportError, parse_report
from openmodel_operator.evidence.errors import TrustError
from openmodel_operator.evidence.pinned import CONFIGMAP_KEY, PinnedManifest, PinnedManifestError
from openmodel_operator.evidence.records import Reason
from openmodel_operator.evidence.text import printable
from openmodel_operator.planning import attestation_history, children, claim_examination
from openmodel_operator.planning.adapters import AdapterDecision
from openmodel_operator.planning.conditions import UPDATE_AVAILABLE, WEIGHTS_READY, find, is_true
from openmodel_operator.planning.examination_plan import (
    Due,
    UpdateInfo,
    examination_due,
    keeps_serving_on_outage,
    plan_examination,
    policies_unchanged,
    policy_fingerprint,
    recorded_settles,
    upstream_rule,
)
from openmodel_operator.planning.model_state import ModelState, read_model
from openmodel_operator.planning.planner import (
    Event,
    Observed,
    Plan,
    plan,
    plan_failure,
    plan_invalid_spec,
    rollout_complete,
    served_digest,
    status_patch,
)
from openmodel_operator.planning.recorded import (
    from_binary_data,
    matches_provenance,
    rebuild_evidence,
    recorded_data,
)
from openmodel_operator.planning.retry import after_failure, postponed
from openmodel_operator.planning.revision_slots import JobState, job_state
from openmodel_operator.planning.trust_result import (
    TrustResult,
    from_error,
    from_examination,
    from_pending,
    from_recorded_failure,
    from_recorded_rejection,
    from_status,
    from_violations,
    source_unavailable,
)
from openmodel_operator.sources.examine import examine, examine_report
from openmodel_operator.sources.hub import check_endpoint
from openmodel_operator.trust.decision import Evidence, decide
from openmodel_operator.trust.examination import Examination, ModelRequest
from openmodel_operator.trust.policies import Policy, governing_policies
from openmodel_operator.trust.precheck import pre_network_violations

log = logging.getLogger(__name__)
CREATE_ONLY = frozenset({"Job", "PersistentVolumeClaim"})
RECENT_APPLY_SECONDS = 60.0
KEY_CHECK_SECONDS = 600.0  # the API key Secret (not watched) is looked for again this often

Examiner = Callable[[ModelRequest, Sequence[Policy]], Examination]
EventPoster = Callable[[Mapping[str, Any], Event], None]
Clock = Callable[[], datetime.datetime]


def is_subset(desired: Any, observed: Any) -> bool:
    """True when every field the operator sets has the same value on the live object (server defaults ignored)."""
    if isinstance(desired, Mapping):
        return isinstance(observed, Mapping) and all(
            key in observed and is_subset(value, observed[key]) for key, value in desired.items()
        )
    if isinstance(desired, list):
        return (
            isinstance(observed, list)
            and len(desired) == len(observed)
            and all(is_subset(d, o) for d, o in zip(desired, observed, strict=True))
        )
    if (isinstance(desired, int | float) and isinstance(observed, str)) or (
        isinstance(desired, str) and isinstance(observed, int | float)
    ):
        return str(desired) == str(observed)
    return bool(desired == observed)


def drifted(
    desired: Sequence[Mapping[str, Any]], live: Mapping[tuple[str, str], Mapping[str, Any]]
) -> list[Mapping[str, Any]]:
    """The desired children that are missing or differ from what runs (hand edits, deletions)."""
    out = []
    for obj in desired:
        current = live.get((obj["kind"], obj["metadata"]["name"]))
        if current is None:
            out.append(obj)
        elif obj["kind"] in CREATE_ONLY:
            continue  # immutable once created: a Job's template, a bound claim's spec
        elif not is_subset({k: v for k, v in obj.items() if k not in _NOT_COMPARED}, current):
            out.append(obj)
    return out


# status is the server's; binaryData (recorded evidence) is not kept in the watch index, and a digest of it
# travels as an annotation, so a change of it is still seen
_NOT_COMPARED = frozenset({"status", "binaryData"})


class ClaimExaminationPending(Exception):
    """A ``pvc://`` source's examination Job has not reported yet (the message names the Job): the model is
    Verifying, nothing undecided is served, and the report (or the Job's end) wakes it."""


CLAIM_JOB_GRACE = 60.0  # seconds a claim examination Job may take to show up, and to report after its deadline


class ExaminationsBusy(Exception):
    """Every examination slot is taken: the pass ends before it changes anything and the model is woken when a
    slot frees (``Reconciler.on_slot_free``). Not a failure: nothing is written."""


@dataclasses.dataclass
class ChildInventory:
    """The live children of one model, by (kind, name), from the operator's watch index."""

    objects: dict[tuple[str, str], Mapping[str, Any]] = dataclasses.field(default_factory=dict)

    @classmethod
    def of(cls, bodies: Iterable[Mapping[str, Any]]) -> ChildInventory:
        return cls({(b["kind"], b["metadata"]["name"]): b for b in bodies})

    def get(self, kind: str, name: str) -> Mapping[str, Any] | None:
        return self.objects.get((kind, name))

    def observed(self, ref: children.ModelRef) -> Observed:
        names = children.child_names(ref, None)
        jobs = {name: body for (kind, name), body in self.objects.items() if kind == "Job"}
        manifests = {
            name: (body.get("metadata") or {})
            for (kind, name), body in self.objects.items()
            if kind == "ConfigMap"
            # a revision's records: manifest ConfigMaps (some with recorded evidence) and AI-BOM ConfigMaps
            and ((body.get("metadata") or {}).get("labels") or {}).get(children.COMPONENT_LABEL) in ("manifest", "bom")
        }
        return Observed(
            deployment=self.get("Deployment", names["Deployment"]),
            jobs=jobs,
            pvc=self.get("PersistentVolumeClaim", names["PersistentVolumeClaim"]),
            configmaps=tuple(sorted(manifests)),
            recorded=tuple(
                sorted(
                    n
                    for n, meta in manifests.items()
                    if children.RECORDED_ANNOTATION in (meta.get("annotations") or {})
                )
            ),
            boms={
                n: meta.get("annotations") or {}
                for n, meta in manifests.items()
                if (meta.get("labels") or {}).get(children.COMPONENT_LABEL) == "bom"
            },
        )


class Reconciler:
    """Drives one OpenModel at a time towards its planned state."""

    def __init__(
        self,
        kube: Kube,
        settings: OperatorSettings,
        post_event: EventPoster,
        examiner: Examiner = examine,
        clock: Clock = utcnow,
    ) -> None:
        self.kube = kube
        self.settings = settings
        self.post_event = post_event
        self.examiner = examiner
        self.clock = clock
        self.child_settings = children.ChildSettings(
            operator_image=settings.operator_image,
            vllm_image=settings.vllm_image,
            fetch_backoff_limit=settings.fetch_backoff_limit,
        )
        self._verifications = asyncio.Semaphore(settings.max_concurrent_verifications)
        # set by the work queue's owner: a pass that needs an examination while all slots are taken ends
        # (ExaminationsBusy) instead of holding its worker, and this is called whenever a slot frees
        self.on_slot_free: Callable[[], None] | None = None
        # its own threads: the loop's default pool has cpu+4 workers and would cap the concurrency silently
        self._examiners = ThreadPoolExecutor(settings.max_concurrent_verifications, thread_name_prefix="examine")
        self._trusted_root: bytes | None = None
        if settings.trusted_root_path:
            with open(settings.trusted_root_path, "rb") as handle:
                self._trusted_root = handle.read()
        self._inputs = PolicyInputs(self._read_policy_configmap, self._trusted_root)
        self._decisions = DecisionMemo()  # models of one content decided again at once (restart, policy change)
        # pvc:// sources: the examinations waiting for their Job's report, and where the Jobs send it (set when the
        # listener is up; None: the listener is off and pvc:// sources cannot be examined)
        self.claims = ClaimExaminations(max_age=settings.claim_examination_deadline + 2 * CLAIM_JOB_GRACE)
        self.claim_report_url: str | None = None
        # signs each new decision and keeps it per model (None: OPENMODEL_ATTESTATION_KEY_SECRET is unset)
        self.attestor = (
            Attestor(kube, settings.attestation_key_secret, settings.attestation_history)
            if settings.attestation_key_secret
            else None
        )

    # ------------------------------------------------------------------ fetching (the shell's only job)

    async def _read_policy_configmap(self, namespace: str, name: str, key: str) -> bytes:
        return await self.kube.read_configmap_key(namespace, name, key)

    async def _request(self, namespace: str, spec: OpenModelSpec, revision: str) -> ModelRequest:
        source = spec.source
        token = None
        if source.token_secret_ref is not None:
            ref = source.token_secret_ref
            try:
                token = await self.kube.read_secret_key(namespace, ref.name, ref.key)
            except KubeError as exc:
                raise TrustError(
                    Reason.ACCESS_DENIED,
                    f"spec.source.tokenSecretRef: cannot read key {ref.key!r} of Secret {namespace}/{ref.name} "
                    f"({exc.status}); create the Secret or fix the reference",
                ) from None
        bundle = None
        sig = spec.trust.signature
        if sig.config_map_ref is not None:
            ref2 = sig.config_map_ref
            try:
                bundle = await self.kube.read_configmap_key(namespace, ref2.name, ref2.key)
            except KubeError as exc:
                raise TrustError(
                    Reason.SIGNATURE_MISSING,
                    f"spec.trust.signature.configMapRef: cannot read key {ref2.key!r} of ConfigMap "
                    f"{namespace}/{ref2.name} ({exc.status}); create it with the countersignature bundle",
                ) from None
        in_claim = source.uri.startswith("pvc://")  # examined by a Job in the cluster (``_examine_claim``)
        return ModelRequest(
            uri=source.uri,
            revision=revision,
            endpoint=None if in_claim else source.endpoint or self.settings.default_endpoint,
            token=token,
            signature_path=sig.path or "model.sig",
            external_bundle=bundle,
            pinned_digest=source.digest,
            deadline_seconds=self.settings.examination_deadline,
            serving=spec.serving,  # part of the decision: the serving fields, image and the admin's Hub
            runtime_image=self.runtime_image(spec),
            default_endpoint=self.settings.default_endpoint,
        )

    async def _examine(
        self,
        namespace: str,
        spec: OpenModelSpec,
        revision: str,
        policies: Sequence[Policy],
        ref: children.ModelRef | None = None,
    ) -> Examination:
        if self.on_slot_free is not None and self._verifications.locked():
            raise ExaminationsBusy()  # the worker is not held waiting: offline passes (revocations) go on
        request = await self._request(namespace, spec, revision)
        if request.uri.startswith("pvc://"):
            return await self._examine_claim(ref, request, policies)
        return await self._examined_in_thread(namespace, request, policies, self.examiner)

    async def _examined_in_thread(
        self,
        namespace: str,
        request: ModelRequest,
        policies: Sequence[Policy],
        examiner: Callable[[ModelRequest, Sequence[Policy]], Examination],
    ) -> Examination:
        """One examination in a verification slot, on the examiners' threads (the Hub, the signature's crypto)."""
        try:
            async with self._verifications:
                started = time.monotonic()
                try:
                    loop = asyncio.get_running_loop()
                    return await loop.run_in_executor(self._examiners, examiner, request, policies)
                except (TrustError, KubeError):
                    raise
                except Exception as exc:  # a hostile answer must end in a status, never in a silent retry loop
                    log.warning("examination failed", extra={"namespace": namespace, "error": type(exc).__name__})
                    raise TrustError(
                        Reason.EXAMINATION_ERROR,
                        f"the source could not be examined ({type(exc).__name__}); the operator log has the details",
                    ) from None
                finally:
                    METRICS.verification_seconds.observe(time.monotonic() - started)
        finally:
            if self.on_slot_free is not None:
                self.on_slot_free()

    async def _examine_claim(
        self, ref: children.ModelRef | None, request: ModelRequest, policies: Sequence[Policy]
    ) -> Examination:
        """A ``pvc://`` source, examined by a Job that mounts the claim (``controller.claim_reports``).

        The first pass makes the Job (with a fresh nonce) and ends pending; the report wakes the model, and the pass
        that finds it decides it like any other source. A Job that fails, finishes without a report, disappears, or
        does not report within its deadline is an examination error (retried with backoff, a new Job each time).
        """
        if ref is None:
            raise TrustError(Reason.INVALID_SOURCE, "a pvc:// source is examined only by the operator's reconcile pass")
        url = self.claim_report_url
        if url is None:
            raise TrustError(
                Reason.INVALID_SOURCE,
                "pvc:// sources need the operator's claim report listener, which is not running (turned off with "
                "OPENMODEL_CLAIM_REPORT_PORT=0, or its port could not be bound: see the operator log); ask the cluster "
                "admin to run it (docs/lifecycle.md, 'pvc:// sources')",
            )
        key = (ref.namespace, ref.name)
        asked = (request.uri, request.signature_path)
        entry = self.claims.waiting(key)
        if entry is not None and (entry.uid != ref.uid or entry.request != asked):
            self.claims.drop(key)  # the spec moved on: the Job of the old question is of no use
            await self._delete_quietly("Job", ref.namespace, entry.job)
            entry = None
        if entry is None:
            entry = self.claims.begin(key, ref.uid, asked)
            deadline = max(1, int(self.settings.claim_examination_deadline))
            try:
                job = claim_examination.examine_job(
                    ref, request.uri, request.signature_path, entry.nonce, url, self.child_settings, deadline
                )
                entry.job = job["metadata"]["name"]
                await self.kube.create(job)
            except BaseException:  # no Job: no examination waits for one (a pass would look for Job "")
                self.claims.drop(key)
                raise
            raise ClaimExaminationPending(
                f"waiting for the claim examination Job {ref.namespace}/{entry.job} to report what {request.uri} holds"
            )
        where = f"{ref.namespace}/{entry.job}"
        if entry.report is not None:
            if self.on_slot_free is not None and self._verifications.locked():
                raise ExaminationsBusy()  # the report stays: decided once a slot frees
            self.claims.drop(key)
            await self._delete_quietly("Job", ref.namespace, entry.job)
            body, nonce = entry.report, entry.nonce

            def decide_report(request: ModelRequest, policies: Sequence[Policy]) -> Examination:
                try:
                    report = parse_report(body, nonce)
                    if report.error is not None:
                        reason, said = report.error
                        raise TrustError(reason, f"the claim examination Job {where} reported: {said}")
                    return examine_report(request, report, policies)
                except ClaimReportError as exc:
                    raise TrustError(
                        Reason.CLAIM_REPORT_INVALID,
                        f"the report for the claim examination Job {where} was refused: {printable(str(exc), 300)}",
                    ) from None

            return await self._examined_in_thread(ref.namespace, request, policies, decide_report)
        live = await self.kube.get("Job", ref.namespace, entry.job)
        if entry.report is not None and self.claims.waiting(key) is entry:
            # reported while the Job was read (it may show finished now): decide the report, never drop it
            return await self._examine_claim(ref, request, policies)
        state, _, message = job_state(live)
        elapsed = self.claims.elapsed(entry)
        limit = self.settings.claim_examination_deadline
        grace = min(CLAIM_JOB_GRACE, limit)  # to show up; and to report after its deadline (scheduling, the POST)
        failure: TrustError | None = None
        if state is JobState.FAILED:
            failure = TrustError(
                Reason.CLAIM_EXAMINATION_FAILED,
                f"the claim examination Job {where} failed without a report ({printable(message, 300)}); "
                f"`kubectl logs job/{entry.job} -n {ref.namespace}` says why; a new one is tried after a backoff",
            )
        elif state is JobState.SUCCEEDED or (live is None and elapsed > grace):
            what = "finished" if live is not None else "is gone"
            failure = TrustError(
                Reason.CLAIM_NOT_REPORTED,
                f"the claim examination Job {where} {what} but no report for it reached the operator; "
                "a new one is tried after a backoff",
            )
        elif elapsed > limit + grace:
            failure = TrustError(
                Reason.CLAIM_NOT_REPORTED,
                f"the claim examination Job {where} did not report within {elapsed:.0f} s (is it scheduled? can it "
                "reach the operator's report listener?); a new one is tried after a backoff",
            )
        if failure is not None:
            self.claims.drop(key)
            if state is not JobState.FAILED:  # a failed Job stays (its log says why) until its TTL
                await self._delete_quietly("Job", ref.namespace, entry.job)
            raise failure
        doing = "not shown yet" if live is None else f"{(live.get('status') or {}).get('active') or 0} pod(s) active"
        raise ClaimExaminationPending(f"waiting for the claim examination Job {where} ({doing}) to report")

    async def _delete_quietly(self, kind: str, namespace: str, name: str) -> None:
        """Best effort: a Job left behind ends with its deadline and goes with its TTL."""
        if not name:
            return
        try:
            await self.kube.delete(kind, namespace, name)
        except KubeError:
            log.info("could not delete a finished child", extra={"namespace": namespace, "name": name})

    def claim_pending(self, namespace: str, name: str) -> bool:
        """Whether the model waits for a claim examination report (its pass must not be taken as settled)."""
        return self.claims.waiting((namespace, name)) is not None

    def examinations_busy(self) -> bool:
        """Whether every examination slot is taken."""
        return self._verifications.locked()

    async def _rebuilt(
        self,
        namespace: str,
        status: OpenModelStatus,
        spec: OpenModelSpec,
        policies: Sequence[Policy],
        configmap_name: str | None,
        legacy_name: str | None = None,
    ) -> Examination | None:
        """The recorded evidence read back from the manifest ConfigMap (after a restart), checked against status.

        One GET, only when this process holds no examination for the model (the watch index keeps no
        ``binaryData``, so the recorded bytes cost no memory per model).
        """
        provenance = status.provenance
        if configmap_name is None or provenance is None or not provenance.manifest_digest:
            return None
        signature_path = spec.trust.signature.path or "model.sig"
        # shared only for a record that names its endpoint: matches_provenance accepts any endpoint for a
        # record without one, so the key would not bind it (review of issue 13)
        key = recorded_key(provenance, signature_path, spec.source.digest) if provenance.endpoint else None
        held = recorded_evidence(key) if key is not None else None
        if held is not None:  # another model of this content was rebuilt from its own ConfigMap: no GET
            return self._decide_offline(_request_for(held, spec, signature_path), held, spec, policies)
        try:
            configmap = await self.kube.get("ConfigMap", namespace, configmap_name)
            if configmap is None and legacy_name is not None:
                # written before revision slots: the same record under the model's single manifest name
                configmap = await self.kube.get("ConfigMap", namespace, legacy_name)
        except KubeError:
            return None
        if configmap is None:
            return None
        try:
            pinned = PinnedManifest.from_json((configmap.get("data") or {}).get(CONFIGMAP_KEY, ""))
        except PinnedManifestError:
            return None
        evidence = rebuild_evidence(
            pinned, from_binary_data(configmap.get("binaryData")), provenance, signature_path, spec.source.digest
        )
        if evidence is None:
            return None
        if key is not None:
            evidence = keep_recorded_evidence(key, evidence)
        return self._decide_offline(_request_for(evidence, spec, signature_path), evidence, spec, policies)

    # ------------------------------------------------------------------ offline decisions (pure calls)

    def _redecide(self, kept: KeptExamination, spec: OpenModelSpec, policies: Sequence[Policy]) -> Examination:
        """The recorded evidence decided again under today's policies: no network, so revocation never waits."""
        return self._decide_offline(kept.request, kept.evidence, spec, policies)

    def _decide_offline(
        self, request: ModelRequest, evidence: Evidence, spec: OpenModelSpec, policies: Sequence[Policy]
    ) -> Examination:
        """One decision from recorded evidence; the pin is today's ``spec.source.digest``, not the one the
        evidence was gathered for."""
        if evidence.pinned_digest != spec.source.digest:  # the same object otherwise: it stays the shared one
            evidence = dataclasses.replace(evidence, pinned_digest=spec.source.digest)
        now = self.clock()  # certificates are judged at the pass's time, not a clock read inside the core
        image, endpoint = self.runtime_image(spec), self.settings.default_endpoint
        verdict = self._decisions.decided(
            evidence,
            policies,
            (spec.serving.model_dump_json(), image, endpoint),
            now,
            lambda: decide(
                policies, evidence, serving=spec.serving, runtime_image=image, default_endpoint=endpoint, now=now
            ),
        )
        return Examination(request, evidence.source, evidence, verdict)

    def runtime_image(self, spec: OpenModelSpec) -> str:
        """The image the cluster admin configured for the model's runtime (what a policy allows by default)."""
        return self.settings.vllm_image

    @staticmethod
    def _recorded(memory: ModelMemory, uid: str | None, status: OpenModelStatus) -> KeptExamination | None:
        """What the recorded decision came from, if this process still holds it for this content."""
        kept = memory.recorded
        digest = status.provenance.manifest_digest if status.provenance is not None else None
        if kept is None or kept.uid != uid or not digest or kept.digest != digest:
            return None
        return kept

    def _check_served(
        self,
        memory: ModelMemory,
        ref: children.ModelRef,
        spec: OpenModelSpec,
        policies: Sequence[Policy],
        trust: TrustResult,
        observed: Observed,
        policies_changed: bool,
        status: OpenModelStatus,
    ) -> TrustResult:
        """While new content is pulled or rolled out the old still runs: it must still pass today's policies.

        Decided offline from the examination the served content was rolled from; without one (a restarted
        operator), a policy change fails closed for it.
        """
        served = served_digest(observed.deployment)
        previous = status.served.manifest_digest if status.served is not None else None
        pinned = trust.pinned.manifest_digest if trust.pinned is not None else None
        rolling = served is not None and served == pinned and not rollout_complete(observed.deployment)
        if rolling and previous not in (None, served):
            served = previous  # rolling out: the previous revision's pods still run beside the new ones
        if not trust.trusted or trust.pinned is None or served is None or served == trust.pinned.manifest_digest:
            return trust
        kept = memory.served
        if kept is not None and kept.uid == ref.uid and kept.digest == served:
            # decided with the spec the Deployment was rolled with: its serving fields are what still runs
            again = self._redecide(kept, kept.spec or spec, policies)
            if again.verdict.trusted:
                return trust
            first = again.verdict.enforced_violations[0]
            message = f"the content still served ({served}) no longer passes: {first.reason.value}: {first.message}"
        elif policies_changed:
            message = (
                f"the policies changed and the content still served ({served}) cannot be decided again "
                "(its evidence is not held after a restart): not served until the new content is verified"
            )
        else:
            return trust
        return dataclasses.replace(trust, served_revoked=message)

    # ------------------------------------------------------------------ the trust stage

    async def trust_stage(
        self,
        namespace: str,
        spec: OpenModelSpec,
        status: OpenModelStatus,
        policies: Sequence[Policy],
        due: Due,
        *,
        memory: ModelMemory | None = None,
        uid: str | None = None,
        inputs: Mapping[str, str] | None = None,
        configmap_name: str | None = None,
        legacy_name: str | None = None,
        ref: children.ModelRef | None = None,
    ) -> tuple[TrustResult, UpdateInfo | None]:
        """Decide without the network first (policies, endpoint, serving, recorded evidence), then examine.

        Order matters for revocation: a model that no longer passes under today's policies is rejected
        from what was recorded before the source is contacted, so an unreachable, deleted or lying source
        cannot keep it running. A source outage alone keeps verified content serving, marked Degraded.
        """
        memory = memory if memory is not None else ModelMemory()
        now = self.clock()
        branch = spec.source.revision
        early = pre_network_violations(policies, spec, self.runtime_image(spec), self.settings.default_endpoint)
        if any(v.enforced for v in early):
            METRICS.verification_failures.labels(reason=early[0].reason.value).inc()
            return from_violations(early), None

        how = plan_examination(spec, status, due, _endpoint_moved(status, spec, self.settings.default_endpoint))
        offline: Examination | None = None
        rebuilt = False
        if how.use_recorded:
            kept = self._recorded(memory, uid, status)
            rebuilt = kept is None
            offline = (
                self._redecide(kept, spec, policies)
                if kept is not None
                else await self._rebuilt(namespace, status, spec, policies, configmap_name, legacy_name)
            )
        if offline is not None and due is Due.SPEC_CHANGED and not _same_signature_source(offline, spec):
            offline = None  # another bundle is named now: only an examination can read it
        if recorded_settles(how, offline):
            assert offline is not None
            if rebuilt and offline.verdict.trusted:
                # read back from the ConfigMap (a restart): kept like an examination, so the next policy change
                # is decided from memory, not from another GET
                return self._remember(memory, uid, offline, now, branch, inputs), None
            return self._counted(from_examination(offline, now, branch, inputs), offline), None
        keep_serving = keeps_serving_on_outage(how, offline, status, policies_unchanged(status, policies, inputs))

        log.info("examining", extra={"namespace": namespace, "reason": due.value, "source": spec.source.uri})
        update: UpdateInfo | None = None
        if how.head_first:
            head: Examination | None = None
            try:
                head = await self._examine(namespace, spec, branch, policies)
            except TrustError as exc:
                if exc.reason is Reason.ENDPOINT_UNREACHABLE:  # the pinned commit lives on the same endpoint
                    return self._outage(status, exc, offline, keep_serving, now, branch, inputs), None
                log.info("upstream check failed", extra={"namespace": namespace, "error": exc.reason.value})
            if head is not None:
                pinned_commit = status.provenance.resolved_revision if status.provenance is not None else None
                choice = upstream_rule(head, pinned_commit, branch, spec.update_policy)
                if choice.adopt:
                    return self._remember(memory, uid, head, now, branch, inputs), None
                update = choice.update  # another commit: the pinned one is examined below
        try:
            exam = await self._examine(namespace, spec, how.revision, policies, ref)
        except ClaimExaminationPending as pending:
            if offline is not None and offline.verdict.trusted:
                # a re-verification of a claim: what was decided (and still passes today's policies) keeps serving
                # until the Job reports; the old verifiedAt stays, so the next pass looks for the report again
                result = from_examination(offline, now, branch, inputs)
                before = status.provenance.verified_at if status.provenance is not None else None
                record = result.provenance.model_copy(update={"verified_at": before}) if result.provenance else None
                return dataclasses.replace(result, provenance=record), None
            return from_pending(str(pending)), None
        except TrustError as exc:
            return self._outage(status, exc, offline, keep_serving, now, branch, inputs), None
        if offline is not None and exam.verdict.manifest_digest != offline.verdict.manifest_digest:
            log.warning("pinned commit changed content", extra={"namespace": namespace, "source": spec.source.uri})
        return self._remember(memory, uid, exam, now, branch, inputs), update

    def _outage(
        self,
        status: OpenModelStatus,
        error: TrustError,
        offline: Examination | None,
        keep_serving: bool,
        now: datetime.datetime,
        branch: str,
        inputs: Mapping[str, str] | None,
    ) -> TrustResult:
        """The source could not be examined: keep verified content only when it still passes today's policies."""
        METRICS.verification_failures.labels(reason=error.reason.value).inc()
        if offline is not None and keep_serving:
            result = from_examination(offline, now, branch, inputs)
            # the source was not re-examined: keep the old verifiedAt so the next pass tries again
            before = status.provenance.verified_at if status.provenance is not None else None
            kept = result.provenance.model_copy(update={"verified_at": before}) if result.provenance else None
            # the error stays on the result (the plan ignores it for trusted content) so the retry backs off
            return dataclasses.replace(result, degraded=source_unavailable(error), provenance=kept, error=error)
        return from_error(error, transient=keep_serving)

    def _remember(
        self,
        memory: ModelMemory,
        uid: str | None,
        exam: Examination,
        now: datetime.datetime,
        branch: str,
        inputs: Mapping[str, str] | None,
    ) -> TrustResult:
        """Keep the examination a decision is made from, so the next policy change is decided offline."""
        result = self._counted(from_examination(exam, now, branch, inputs), exam)
        if exam.verdict.trusted and result.pinned is not None:
            # only what may be served is kept (bounded memory), with the digest it pinned (computed once)
            memory.recorded = KeptExamination.of(uid, exam, result.pinned.manifest_digest)
        else:
            memory.recorded = None
        return result

    @staticmethod
    def _counted(result: TrustResult, exam: Examination) -> TrustResult:
        """Count the verdict's violations in the metrics, once per examination that decides."""
        for reason in exam.verdict.reasons:
            METRICS.verification_failures.labels(reason=reason.value).inc()
        return result

    async def resolved_policies(self, policies: Iterable[Policy]) -> list[Policy]:
        """The policies with their ConfigMap references read, as a pass sees them (admission asks the same)."""
        return [r.policy for r in await self._inputs.resolve(list(policies))]

    async def policy_inputs(self, all_policies: Iterable[Policy]) -> tuple[tuple[str, str], ...]:
        """Every policy's inputs digest (the keys, CAs and trusted root its ConfigMaps hold now): an edited or
        deleted key ConfigMap shows here, once for all models, so their passes need not look for it."""
        resolved = await self._inputs.resolve(list(all_policies))
        return tuple(sorted((r.policy.name, r.inputs_digest) for r in resolved))

    # ------------------------------------------------------------------ the pass

    async def reconcile(
        self,
        body: Mapping[str, Any],
        all_policies: Iterable[Policy],
        namespace_labels: Mapping[str, str],
        inventory: ChildInventory,
        memory: ModelMemory | None = None,
    ) -> Plan | None:
        """One level-based pass. Returns the plan it carried out (None when nothing was planned).

        Any failure of the pass is written to status with a reason before it propagates (the caller backs
        off and retries): never a frozen status, never a silent retry loop.
        """
        memory = memory if memory is not None else ModelMemory()
        planned: list[OpenModelStatus] = []  # the status this pass decided, once it has
        try:
            return await self._reconcile(body, all_policies, namespace_labels, inventory, memory, planned)
        except (asyncio.CancelledError, ExaminationsBusy):
            raise
        except Exception as exc:
            await self._report_failure(body, exc, memory, planned[-1] if planned else None)
            raise

    async def _report_failure(
        self, body: Mapping[str, Any], exc: Exception, memory: ModelMemory, decided: OpenModelStatus | None = None
    ) -> None:
        """Status and an Event saying why the pass failed; best effort (the API may be what failed)."""
        state = read_model(body, fresh_status(body, memory))
        reason, message = failure_reason(exc)
        result = plan_failure(state.status, state.ref.generation, reason, message, self.clock(), decided)
        try:
            await self._write_status(body, state, result, memory)
        except Exception:
            log.warning(
                "could not record a failed pass", extra={"namespace": state.ref.namespace, "openmodel": state.ref.name}
            )

    async def _write_status(
        self, body: Mapping[str, Any], state: ModelState, result: Plan, memory: ModelMemory
    ) -> None:
        """Patch status when the plan changed it, then post the plan's Events (only for a real change)."""
        patch = status_patch(result.status)
        if not _status_changed(state.status, patch):
            return
        version = await self.kube.patch_status(state.ref.namespace, state.ref.name, patch)
        memory.written = (version, result.status)
        for event in result.events:
            self.post_event(body, event)

    async def _reconcile(
        self,
        body: Mapping[str, Any],
        all_policies: Iterable[Policy],
        namespace_labels: Mapping[str, str],
        inventory: ChildInventory,
        memory: ModelMemory,
        planned: list[OpenModelStatus] | None = None,
    ) -> Plan | None:
        started = time.monotonic()
        state = read_model(body, fresh_status(body, memory))
        ref, status = state.ref, state.status
        now = self.clock()
        if state.spec is None:
            invalid = plan_invalid_spec(status, ref.generation, state.spec_error or "", now, inventory.observed(ref))
            if invalid.scale_to_zero:
                await self._scale_to_zero(ref, inventory)
            await self._write_status(body, state, invalid, memory)
            return None
        spec = state.spec
        if not spec.source.uri.startswith("pvc://"):
            self.claims.drop((ref.namespace, ref.name))  # the source is no longer a claim: its nonce is no use

        resolved = await self._inputs.resolve(governing_policies(all_policies, namespace_labels))
        policies = [r.policy for r in resolved]
        inputs = {r.policy.name: r.inputs_digest for r in resolved}
        pinned = self._pinned_from_inventory(memory, ref, status, inventory)
        due = examination_due(
            ref.generation, status, policies, pinned is not None, now, self.settings.reverify_interval, inputs
        )
        fingerprint = policy_fingerprint(policies, inputs)
        waiting: Due | None = None
        if due in (Due.NOT_EXAMINED, Due.PERIODIC) and postponed(memory.retry, now, ref.generation, fingerprint):
            waiting, due = due, None  # the last examination failed: the source is asked again after its backoff
        update: UpdateInfo | None = None
        trust: TrustResult | None = None
        if due is None and pinned is not None:
            trust = from_status(status, pinned)
            kept = self._recorded(memory, ref.uid, status)
            if trust is not None and kept is not None:
                trust = dataclasses.replace(trust, recorded=recorded_data(kept.evidence))
            if trust is not None and status.update_available:
                update = _update_from_status(status)
        if trust is None and due is Due.MANIFEST_MISSING and spec.source.uri.startswith("pvc://"):
            trust = from_recorded_rejection(status, spec.source.uri)  # a refused claim has no manifest to miss
        if trust is None and waiting is not None:
            # the backoff repeats what the failed examination decided: a periodic check of served content that
            # kept it serving (Degraded) still does; it is never re-run as a model that was never examined
            trust = from_recorded_failure(status, transient=waiting is Due.PERIODIC and status.phase in SERVING_PHASES)
        if trust is None:
            trust, update = await self.trust_stage(
                ref.namespace,
                spec,
                status,
                policies,
                due or waiting or Due.NOT_EXAMINED,
                memory=memory,
                uid=ref.uid,
                inputs=inputs,
                configmap_name=_record_name(ref, status),
                legacy_name=children.legacy_manifest_name(ref),
                ref=ref,
            )
            memory.retry = (
                after_failure(
                    memory.retry,
                    trust.error.reason,
                    now,
                    ref.generation,
                    fingerprint,
                    self.settings.reverify_interval,
                )
                if trust.error is not None
                else None
            )

        observed = inventory.observed(ref)
        observed = dataclasses.replace(
            observed, made_jobs=frozenset(memory.made_jobs), jobs=_with_recent_prunes(observed.jobs, memory)
        )
        changed = False
        if due is not None:
            # compared with what status recorded before this pass: a spec edit in the same pass cannot hide it
            changed = not policies_unchanged(status, policies, inputs)
            trust = self._check_served(memory, ref, spec, policies, trust, observed, changed, status)
        adapters, deferred = await self._adapters(ref, spec, status, trust, due, memory, policies, inventory, inputs)
        result = plan(ref, spec, status, trust, observed, self.child_settings, now, update, adapters, changed)
        result = await self._attest(ref, trust, policies, inventory, memory, result)
        if planned is not None:
            planned.append(result.status)
        await self._carry_out(body, state, result, inventory, memory)
        METRICS.reconcile_seconds.observe(time.monotonic() - started)
        if deferred:
            # an adapter waits for an examination slot: what this pass decided without one is carried out (a
            # revocation never waits for a slot); the model is woken again when one frees
            raise ExaminationsBusy()
        return result

    async def _attest(
        self,
        ref: children.ModelRef,
        trust: TrustResult,
        policies: Sequence[Policy],
        inventory: ChildInventory,
        memory: ModelMemory,
        result: Plan,
    ) -> Plan:
        """A new decision on examined content is signed and kept (``controller.attestations``); status names
        the history. Best effort: a record that cannot be written never holds back an admission or a revocation."""
        if self.attestor is None or trust.provenance is None or trust.pending is not None:
            return result
        try:
            written = await self.attestor.record(
                ref,
                trust.provenance,
                trust.trusted,
                policies,
                inventory.get("ConfigMap", attestation_history.configmap_name(ref)),
                memory.attested,
            )
        except (KubeError, children.ChildrenError) as exc:
            log.warning(
                "decision not attested; tried again next pass",
                extra={"namespace": ref.namespace, "openmodel": ref.name, "error": str(exc)},
            )
            return result
        if written is None:
            return result
        record, memory.attested = written
        return dataclasses.replace(result, status=result.status.model_copy(update={"attestations": record}))

    async def _adapters(
        self,
        ref: children.ModelRef,
        spec: OpenModelSpec,
        status: OpenModelStatus,
        trust: TrustResult,
        due: Due | None,
        memory: ModelMemory,
        policies: Sequence[Policy],
        inventory: ChildInventory,
        inputs: Mapping[str, str],
    ) -> tuple[list[AdapterDecision], bool]:
        """The decision on each LoRA adapter, for a trusted base model only (none is loaded without it), and
        whether one of them waits for an examination slot."""
        if not spec.adapters:
            memory.adapters = {}
            return [], False
        if not trust.trusted or trust.pinned is None:
            return [AdapterDecision(adapter, None) for adapter in spec.adapters], False
        deferred = False

        def manifest_of(digest: str) -> PinnedManifest | None:
            try:
                configmap = inventory.get("ConfigMap", children.manifest_configmap_name(ref, digest))
                return (
                    parsed_manifest(((configmap or {}).get("data") or {}).get(CONFIGMAP_KEY, "")) if configmap else None
                )
            except (PinnedManifestError, children.ChildrenError):
                return None

        async def examine(own: OpenModelSpec, revision: str) -> Examination:
            nonlocal deferred
            try:
                return await self._examine(ref.namespace, own, revision, policies)
            except ExaminationsBusy:
                deferred = True
                raise ExaminationDeferred(
                    Reason.EXAMINATION_ERROR, "every examination slot is taken: examined when one frees"
                ) from None

        def redecide(kept: KeptExamination, own: OpenModelSpec) -> Examination:
            return self._decide_offline(kept.request, kept.evidence, own, policies)

        async def rebuild(record: AdapterProvenance, own: OpenModelSpec) -> Examination | None:
            """The adapter's recorded evidence read back (one GET: the watch index keeps no binaryData)."""
            signature_path = own.trust.signature.path or "model.sig"
            try:
                name = children.manifest_configmap_name(ref, record.manifest_digest or "")
                configmap = await self.kube.get("ConfigMap", ref.namespace, name)
                if configmap is None:
                    return None
                pinned = parsed_manifest((configmap.get("data") or {}).get(CONFIGMAP_KEY, ""))
            except (KubeError, PinnedManifestError, children.ChildrenError):
                return None
            binary = from_binary_data(configmap.get("binaryData"))
            evidence = rebuild_evidence(pinned, binary, record, signature_path, own.source.digest)
            if evidence is None:
                return None
            return self._decide_offline(_request_for(evidence, own, signature_path), evidence, own, policies)

        def precheck(own: OpenModelSpec) -> TrustResult | None:
            early = pre_network_violations(policies, own, self.runtime_image(own), self.settings.default_endpoint)
            return from_violations(early) if any(v.enforced for v in early) else None

        decisions = await decide_adapters(
            spec, status, due, memory, ref.uid, manifest_of, examine, redecide, rebuild, self.clock(), inputs, precheck
        )
        return decisions, deferred

    def _with_recent_applies(
        self, memory: ModelMemory, inventory: ChildInventory
    ) -> dict[tuple[str, str], Mapping[str, Any]]:
        """The watch index, plus what this process applied in the last seconds and the watch has not shown yet.

        Without it every pass right after an apply would apply the same objects again (the index lags).
        An entry goes as soon as the watch shows the object (or after a minute), so a child deleted by hand
        later is still restored.
        """
        live = dict(inventory.objects)
        recent = memory.applied
        now = time.monotonic()
        for ident, (when, obj) in list(recent.items()):
            if ident in live or now - when > RECENT_APPLY_SECONDS:
                del recent[ident]
            else:
                live[ident] = obj
        return live

    def _pinned_from_inventory(
        self, memory: ModelMemory, ref: children.ModelRef, status: OpenModelStatus, inventory: ChildInventory
    ) -> PinnedManifest | None:
        digest = status.provenance.manifest_digest if status.provenance is not None else None
        if not digest:
            return None
        name = _record_name(ref, status)
        cm = inventory.get("ConfigMap", name) if name is not None else None
        if cm is None and name is not None:
            cm = inventory.get("ConfigMap", children.legacy_manifest_name(ref))  # written before revision slots
        if cm is None:
            # just applied by this process, not yet seen by the watch: no need to re-examine the source for it
            cached = memory.pinned
            return cached if cached is not None and cached.manifest_digest == digest else None
        version = (cm.get("metadata") or {}).get("resourceVersion")
        parsed = memory.parsed
        if parsed is not None and version is not None and parsed[0] == version:
            pinned = parsed[1]  # the same object as last pass: parsed and checked once
        else:
            try:
                pinned = parsed_manifest((cm.get("data") or {}).get(CONFIGMAP_KEY, ""))
            except PinnedManifestError:
                return None
            if version is not None:
                memory.parsed = (version, pinned)
        # the digest binds the files; source, commit and endpoint are bound to what status recorded
        return pinned if matches_provenance(pinned, status.provenance) else None

    async def _carry_out(
        self,
        body: Mapping[str, Any],
        state: ModelState,
        result: Plan,
        inventory: ChildInventory,
        memory: ModelMemory,
    ) -> None:
        ref, status = state.ref, state.status
        deployment = next((o for o in result.apply if o["kind"] == "Deployment"), None)
        kept = memory.recorded
        served = result.status.served
        if deployment is not None and kept is not None and served is not None and served.manifest_digest == kept.digest:
            # what the pods run (every one of them, or the first rollout), with the spec it was rolled with: decided
            # again while another is pulled or rolled out; the previous revision's evidence is kept until then
            memory.served = dataclasses.replace(kept, spec=state.spec)
        for kind, name in result.delete:
            # records of revisions no longer kept, before the prune Job that removes their directories is made
            if kind == "Secret":
                await self._delete_key(ref, name, memory)
            elif inventory.get(kind, name) is not None:
                await self.kube.delete(kind, ref.namespace, name)
            memory.applied.pop((kind, name), None)
        for secret in (o for o in result.apply if o["kind"] == "Secret"):
            await self._ensure_key(ref, secret, memory)
        watched = [o for o in result.apply if o["kind"] != "Secret"]
        for obj in drifted(watched, self._with_recent_applies(memory, inventory)):
            missing = inventory.get(obj["kind"], obj["metadata"]["name"]) is None
            if not missing or await self._create(ref, obj, memory):
                await self.kube.apply(obj)
            memory.applied[(obj["kind"], obj["metadata"]["name"])] = (time.monotonic(), obj)
        pinned_cm = next((o for o in result.apply if o["kind"] == "ConfigMap"), None)
        if pinned_cm is not None:
            with contextlib.suppress(PinnedManifestError):
                memory.pinned = parsed_manifest(pinned_cm["data"][CONFIGMAP_KEY])
        if result.scale_to_zero:
            await self._scale_to_zero(ref, inventory)
        if _weights_newly_verified(status, result.status):
            provenance = result.status.provenance
            METRICS.bytes_verified.inc((provenance.total_bytes if provenance is not None else None) or 0)
        await self._write_status(body, state, result, memory)

    async def _ensure_key(self, ref: children.ModelRef, secret: Mapping[str, Any], memory: ModelMemory) -> None:
        """The generated API key Secret exists and is this model's own: created once with a fresh random key
        (never read back, never rewritten). Secrets are not watched, so it is looked for every few minutes;
        a deleted one is made again with a new key (a rotation)."""
        now = time.monotonic()
        if memory.key_checked is not None and now - memory.key_checked < KEY_CHECK_SECONDS:
            return
        obj = {**secret, "data": {children.API_KEY: base64.b64encode(secrets.token_urlsafe(32).encode()).decode()}}
        if not await self.kube.create_secret(obj):  # the name is taken: ours, or a stranger's never used
            name = secret["metadata"]["name"]
            meta = await self.kube.secret_metadata(ref.namespace, name)
            if meta is not None and not self._ours(ref, meta):
                raise self._conflict(ref, "Secret", name, (meta.get("labels") or {}).get(children.NAME_LABEL))
        memory.key_checked = now

    async def _delete_key(self, ref: children.ModelRef, name: str, memory: ModelMemory) -> None:
        """The key Secret, no longer asked for, goes, if it is this model's own."""
        meta = await self.kube.secret_metadata(ref.namespace, name)
        if meta is not None and self._ours(ref, meta):
            await self.kube.delete_secret(ref.namespace, name)
        memory.key_checked = None

    @staticmethod
    def _ours(ref: children.ModelRef, meta: Mapping[str, Any]) -> bool:
        """Whether an object's metadata says it is this model's child, made by the operator."""
        labels = meta.get("labels") or {}
        return bool(
            labels.get(children.NAME_LABEL) == children.label_value(ref.name)
            and labels.get("app.kubernetes.io/managed-by") == children.FIELD_MANAGER
        )

    async def _scale_to_zero(self, ref: children.ModelRef, inventory: ChildInventory) -> None:
        """A replicas-only patch of the serving Deployment (kept for forensics), unless it is already at zero."""
        name = children.child_names(ref, None)["Deployment"]
        live = inventory.get("Deployment", name)
        if live is not None and (live.get("spec") or {}).get("replicas") != 0:
            await self.kube.scale_to_zero(ref.namespace, name)

    async def _create(self, ref: children.ModelRef, obj: Mapping[str, Any], memory: ModelMemory) -> bool:
        """A child the watch index does not show: never take over an object that is not this model's own.

        A create-only kind (Job, claim) is created with POST, which fails on a taken name; for the others
        one GET says whether the name is free or holds this model's own child the index has not shown yet
        (the index is keyed by owner only: a name held by another model costs this GET, on a pass that
        fails and backs off). Returns whether to apply it now.
        """
        kind, name = obj["kind"], obj["metadata"]["name"]
        if kind in CREATE_ONLY:
            uid = await self.kube.create(obj)
            if uid is not None:
                if kind == "Job" and uid:
                    memory.made_jobs = (*memory.made_jobs[-(MADE_JOBS_KEPT - 1) :], uid)
                return False  # created: nothing to apply
            existing = await self.kube.get(kind, ref.namespace, name)
        else:
            existing = await self.kube.get(kind, ref.namespace, name)
            if existing is None:
                return True
        labels = ((existing or {}).get("metadata") or {}).get("labels") or {}
        if existing is not None and not self._ours(ref, existing.get("metadata") or {}):
            raise self._conflict(ref, kind, name, labels.get(children.NAME_LABEL))
        return kind not in CREATE_ONLY

    @staticmethod
    def _conflict(ref: children.ModelRef, kind: str, name: str, owner: str | None) -> ChildConflictError:
        held = f"OpenModel {printable(owner, 80)!r}" if owner else "an object the operator did not create"
        return ChildConflictError(
            f"{kind} {ref.namespace}/{name} already exists and belongs to {held}, not to OpenModel {ref.name!r}; "
            "the operator never takes it over: rename the OpenModel or remove that object"
        )

    async def release_shared_claim(self, namespace: str, name: str, uid: str, claim: str) -> None:
        """A deleted model's references on a shared claim go with a Job of their own (its slots stay while another
        model references them): created once, it outlives the model and is not waited for."""
        job = children.release_job(children.ModelRef(name, namespace, uid, 0), claim, self.child_settings)
        await self.kube.create(job)

    async def delete_children(
        self, namespace: str, name: str, retain_storage: bool, uid: str | None = None
    ) -> list[str]:
        """Remove every child explicitly (no garbage collector is assumed); the PVC unless retained; never the
        attestation history (``planning.attestation_history``). With
        ``uid``, a child that names another OpenModel incarnation as its owner is left alone (a model created
        again under the same name keeps its own children)."""
        removed = []
        self.claims.drop((namespace, name))  # its examination, and a report it held, are no use any more
        owner = children.ModelRef(name, namespace, uid or "", 0)
        key = children.api_key_secret_name(owner)
        meta = await self.kube.secret_metadata(namespace, key)  # by name: Secrets are never listed
        if meta is not None and self._ours(owner, meta):
            owners = [r.get("uid") for r in (meta.get("ownerReferences") or [])]
            if not (uid and owners and uid not in owners) and await self.kube.delete_secret(namespace, key):
                removed.append(f"Secret/{key}")
        for kind in ("Deployment", "Service", "NetworkPolicy", "Job", "ConfigMap", "PersistentVolumeClaim"):
            if kind == "PersistentVolumeClaim" and retain_storage:
                continue
            for obj in await self.kube.list_children(kind, namespace, children.label_value(name)):
                labels = obj["metadata"].get("labels") or {}
                if kind == "ConfigMap" and labels.get(children.COMPONENT_LABEL) == attestation_history.COMPONENT:
                    continue  # the signed history is the auditor's record: it outlives the model
                owners = [
                    ref.get("uid")
                    for ref in (obj["metadata"].get("ownerReferences") or [])
                    if ref.get("kind") == "OpenModel"
                ]
                if uid and owners and uid not in owners:
                    continue
                child = obj["metadata"]["name"]
                if await self.kube.delete(kind, namespace, child):
                    removed.append(f"{kind}/{child}")
        return removed


def _with_recent_prunes(jobs: Mapping[str, Mapping[str, Any]], memory: ModelMemory) -> Mapping[str, Mapping[str, Any]]:
    """The model's Jobs, plus a prune Job this process just created and the watch has not shown yet: no pull
    may start beside it (the pass woken by its records' deletion would not see it otherwise)."""
    recent = {
        name: obj
        for (kind, name), (_, obj) in memory.applied.items()
        if kind == "Job"
        and name not in jobs
        and ((obj.get("metadata") or {}).get("labels") or {}).get(children.COMPONENT_LABEL) == "prune"
    }
    return {**jobs, **recent} if recent else jobs


MADE_JOBS_KEPT = 16  # Job uids remembered per model: status records them after the next pass


def _record_name(ref: children.ModelRef, status: OpenModelStatus) -> str | None:
    """The manifest ConfigMap that records the decided content (named by its digest), if status has one."""
    digest = status.provenance.manifest_digest if status.provenance is not None else None
    if not digest:
        return None
    try:
        return children.manifest_configmap_name(ref, digest)
    except children.ChildrenError:
        return None


def _request_for(evidence: Evidence, spec: OpenModelSpec, signature_path: str) -> ModelRequest:
    """The request a recorded decision answered (the source, commit and endpoint the evidence is bound to)."""
    source = evidence.source
    return ModelRequest(
        uri=source.uri,
        revision=source.revision or spec.source.revision,
        endpoint=source.endpoint,
        signature_path=signature_path,
        pinned_digest=spec.source.digest,
    )


def fresh_status(body: Mapping[str, Any], memory: ModelMemory) -> OpenModelStatus | None:
    """Our own last write when the watch has not yet delivered it (None: the body's status is current); once
    the watch shows it, it is forgotten (the model event handler calls this too, so it is not held for long).

    Without this a wake-up that races our own status write would plan from the older status, post the
    same Events twice and move lastTransitionTime for nothing.
    """
    written = memory.written
    if written is not None and predates(body["metadata"].get("resourceVersion"), written[0]):
        return written[1]
    if written is not None and reaches(body["metadata"].get("resourceVersion"), written[0]):
        memory.written = None  # the watch delivered it; a watch never goes back, so it is not needed again
    return None


def _update_from_status(status: OpenModelStatus) -> UpdateInfo | None:
    """The recorded upstream update, carried over until the next re-verification."""
    revision = status.update_available
    cond = find(status.conditions, UPDATE_AVAILABLE)
    if not revision or cond is None:
        return None
    return UpdateInfo(revision, cond.reason or ConditionReason.NEW_REVISION, cond.message)


def _weights_newly_verified(old: OpenModelStatus, new: OpenModelStatus) -> bool:
    """WeightsReady turned True in this pass: the fetch Job just verified every byte of a pull."""
    return is_true(new.conditions, WEIGHTS_READY) and not is_true(old.conditions, WEIGHTS_READY)


def _status_changed(old: OpenModelStatus, patch: Mapping[str, Any]) -> bool:
    """Whether the patch would change a field the planner owns."""
    return status_patch(old) != patch


def _same_signature_source(exam: Examination, spec: OpenModelSpec) -> bool:
    """Whether the spec still names the in-repo bundle the recorded evidence was read from.

    A bundle kept in a ConfigMap may have changed since it was read: only an examination can say.
    """
    sig = spec.trust.signature
    return (
        sig.config_map_ref is None
        and exam.request.external_bundle is None
        and (sig.path or "model.sig") == exam.request.signature_path
    )


def _endpoint_moved(status: OpenModelStatus, spec: OpenModelSpec, default: str | None) -> bool:
    """Whether the spec now names another endpoint than the one the pinned content was resolved from
    (normalised with the Hub client's own rules, so the pure plan compares like with like)."""
    recorded = status.provenance.endpoint if status.provenance is not None else None
    if recorded is None or not spec.source.uri.startswith("hf://"):
        return False  # recorded before endpoints were (or for a volume source)
    try:
        return bool(check_endpoint(spec.source.endpoint or default) != recorded)
    except TrustError:
        return True


def failure_reason(exc: Exception) -> tuple[str, str]:
    """A reason code and a message for a failed pass; never the exception's free text from a server."""
    if isinstance(exc, ChildConflictError):
        return Reason.CHILD_CONFLICT.value, str(exc)
    if isinstance(exc, children.ChildrenError):
        return Reason.CHILD_REJECTED.value, str(exc)
    if isinstance(exc, KubeError):
        return (
            Reason.CHILD_REJECTED.value,
            f"the API server refused a write of the operator (HTTP {exc.status}): "
            f"{printable(str(exc), 300)}; fix the OpenModel fields it names",
        )
    return Reason.RECONCILE_ERROR.value, (
        f"the reconcile pass failed ({type(exc).__name__}); it is retried with backoff, the operator log has details"
    )


class ChildConflictError(RuntimeError):
    """A child name is taken by an object the operator did not create for this OpenModel."""
