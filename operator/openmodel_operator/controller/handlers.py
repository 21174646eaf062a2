"""Kopf wiring: indexes that mirror policies, namespaces and children; a bounded pool of workers for OpenModels.

Why workers and not a Kopf daemon per model: the reconciler is level-based, so each model needs passes that
never overlap and that re-run whenever anything it depends on changes; a daemon per model gave that, but
held a task and Kopf's daemon bookkeeping for every model and let 10,000 passes run at once after a restart
(issue 13). ``work_queue.WorkQueue`` gives the same guarantees with ``reconcile_workers`` tasks in all.
Watches on models, children, policies and namespaces, and a read of the ConfigMaps policies reference once
per resync interval, *wake* a model (a deleted Deployment is restored within seconds); a settled model then
waits for a wake-up or its next full pass (re-verification: an upstream branch that moved, tampering; a
pending retry; the safety net), so a quiet cluster costs no CPU.
"""

from __future__ import annotations

import asyncio
import collections
import datetime
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

import httpx2
import kopf

from openmodel_operator.api.common import GROUP, VERSION
from openmodel_operator.api.time import utcnow
from openmodel_operator.api.vocabulary import Phase
from openmodel_operator.controller import gc_tuning, kopf_readiness, kopf_watch
from openmodel_operator.controller import webhooks as admission
from openmodel_operator.controller.background import stop_tasks
from openmodel_operator.controller.child_cache import ChildCache, ChildStream
from openmodel_operator.controller.claim_reports import PATH as CLAIM_REPORT_PATH
from openmodel_operator.controller.claim_reports import ClaimReportListener
from openmodel_operator.controller.events import EventPoster
from openmodel_operator.controller.kopf_indexes import store_values
from openmodel_operator.controller.kube import Kube, KubeError
from openmodel_operator.controller.memory import ModelMemory, pass_skippable, predates
from openmodel_operator.controller.metrics import METRICS, PHASES
from openmodel_operator.controller.model_cache import ModelCache, ModelStream, is_deleting, key_of, needs_pass
from openmodel_operator.controller.policy_status import PolicyFacts, PolicyStatusWriter, policy_facts, start_writer
from openmodel_operator.controller.reconciler import ChildInventory, ExaminationsBusy, Reconciler, fresh_status
from openmodel_operator.controller.settings import OperatorSettings
from openmodel_operator.controller.startup_reads import StartupReads
from openmodel_operator.controller.webhook_settings import WebhookSettings
from openmodel_operator.controller.work_queue import Key, Lane, WorkQueue
from openmodel_operator.planning.children import MANAGED_BY, label_value
from openmodel_operator.planning.planner import Event
from openmodel_operator.trust.policies import (
    Policy,
    usable_policy,
)

log = logging.getLogger(__name__)

FULL_PASS_EVERY = 10  # resync intervals: a quiet model still has a full pass this often (the safety net)
MANAGED_BY_SELECTOR = ",".join(f"{key}={value}" for key, value in MANAGED_BY.items())
FINALIZER = "openmodel.io/cleanup"
LIST_PAGE = 500  # objects per page of Kopf's listings
CHILD_KINDS = (
    ("batch", "v1", "jobs", "Job"),
    ("apps", "v1", "deployments", "Deployment"),
    ("", "v1", "configmaps", "ConfigMap"),
    ("", "v1", "services", "Service"),
    ("", "v1", "persistentvolumeclaims", "PersistentVolumeClaim"),
    ("networking.k8s.io", "v1", "networkpolicies", "NetworkPolicy"),
)


class PhaseTracker:
    """Keeps the models-by-phase gauge exact as models change phase or go away (counts, not a scan per pass)."""

    def __init__(self) -> None:
        self._phases: dict[tuple[str, str], str] = {}
        self._counts: collections.Counter[str] = collections.Counter()

    def set(self, key: tuple[str, str], phase: str | None) -> None:
        before = self._phases.pop(key, None) if phase is None else self._phases.get(key)
        if before == phase:
            return
        if phase is not None:
            self._phases[key] = phase
        for changed, step in ((before, -1), (phase, 1)):
            if changed is not None:
                self._counts[changed] += step
                if changed in PHASES:
                    METRICS.models_by_phase.labels(phase=changed).set(self._counts[changed])


def build_registry(
    settings: OperatorSettings,
    kube_factory: Callable[[], Kube],
    post_event: Callable[[Mapping[str, Any], Event], None] | None = None,
    webhooks: WebhookSettings | None = None,
) -> kopf.OperatorRegistry:
    """A registry with every handler, so tests run the real operator with ``kopf.operator(registry=...)``.

    ``webhooks``: the validating admission webhooks (controller/webhooks.py); None registers none."""
    kopf_readiness.install()  # a restart's catch-up stays linear in the objects held (see the module)
    gc_tuning.tune()
    kopf_watch.install()  # no managedFields in what Kopf keeps of each object (see the module)
    registry = kopf.OperatorRegistry()
    models = ModelCache()
    child_cache = ChildCache()
    queue = WorkQueue(held=True)  # until the start-up listing ended: new, edited, deleted models only (below)
    policy_epoch = [0]  # bumped when a policy or what it references changes: no pass is skipped across it
    exam_waiters: dict[Key, None] = {}  # models whose pass found every examination slot taken, oldest first

    def wake_owner(namespace: str, owner_label: str, kind: str, name: str) -> None:
        for key in models.owners(namespace, owner_label):
            models.saw_child(key, kind, name)  # what it applied is in the cache now (or gone): not held twice
            queue.add(key, Lane.URGENT)  # a child changed (by hand, by its controller): drift is checked now

    child_streams = [ChildStream(kind, child_cache, wake_owner) for _group, _version, _plural, kind in CHILD_KINDS]
    phases = PhaseTracker()
    state: dict[str, Any] = {}
    state["child_cache"] = child_cache  # the scale guard tells the operator's Deployments from the rest by it

    # our own Events, not kopf.event(): Kopf's generateName names clash at scale (409: the Event is lost)
    events = EventPoster(lambda: state["kube"].create_event if "kube" in state else None)

    def poster(body: Mapping[str, Any], event: Event) -> None:
        events.post(body, event.type, event.reason, event.message)

    @kopf.on.startup(registry=registry)
    async def startup(settings: kopf.OperatorSettings, **_: Any) -> None:
        configure_kopf(settings)
        if webhooks is not None:
            admission.configure(settings, webhooks)
        for (group, _version, plural, _kind), stream in zip(CHILD_KINDS, child_streams, strict=True):
            kopf_watch.route(settings, group, plural, stream)  # before Kopf starts watching (after startup)
        kopf_watch.route(settings, GROUP, "openmodels", model_stream, first=True)  # new models are seen sooner
        state["kopf_settings"] = settings
        kube = kube_factory()
        state["kube"] = kube
        state["reconciler"] = Reconciler(kube, _settings, post_event or poster)
        state["reconciler"].on_slot_free = slot_freed
        await start_claim_listener(state["reconciler"])

    async def start_claim_listener(reconciler: Reconciler) -> None:
        """The listener claim examination Jobs report to (pvc:// sources); a report wakes its model at once."""
        if not _settings.claim_report_port:
            return

        def report_arrived(key: Key) -> None:
            if models.body(key) is not None:
                models.memory(key).settled = None  # nothing the pass reads changed but the report: never skipped
                queue.add(key, Lane.URGENT)

        reconciler.claims.on_report = report_arrived
        listener = ClaimReportListener(reconciler.claims)
        try:
            await listener.start(_settings.claim_report_address, _settings.claim_report_port)
        except OSError as exc:  # the operator runs on; pvc:// models say the listener is not running
            log.error(
                "cannot serve claim reports: pvc:// sources cannot be examined",
                extra={
                    "address": _settings.claim_report_address,
                    "port": _settings.claim_report_port,
                    "error": str(exc),
                },
            )
            return
        state["claim_listener"] = listener
        reconciler.claim_report_url = _settings.claim_report_url or (
            f"http://{_host(_settings.claim_report_address)}:{listener.port}{CLAIM_REPORT_PATH.rstrip('/')}"
        )

    _settings = settings

    @kopf.on.cleanup(registry=registry)
    async def cleanup(**_: Any) -> None:
        # in this order: nothing may start a request once the client is closed (a worker taking its next key
        # would crash, and log it, for every model queued at an ordinary restart)
        await stop_tasks([*state.pop("workers", []), state.pop("policy_status", None)])
        await events.close()  # the Events of the last passes, then none: the client closes next
        listener = state.pop("claim_listener", None)
        if listener is not None:
            await listener.close()
        kube = state.pop("kube", None)
        if kube is not None:
            await kube.close()

    # ------------------------------------------------------------ indexes (no list calls per event)

    @kopf.index(GROUP, VERSION, "modeltrustpolicies", registry=registry, id="policy_index")
    def policy_index(body: kopf.Body, name: str, **_: Any) -> dict[str, Policy]:
        # never raises: a policy that does not validate still governs, failing its models with PolicyInvalid
        policy = usable_policy(dict(body), origin=f"ModelTrustPolicy {name}")
        if policy.problem is not None:
            log.warning("invalid ModelTrustPolicy", extra={"policy": name, "error": policy.problem})
        return {"all": policy}

    @kopf.index("", "v1", "namespaces", registry=registry, id="namespace_index")
    def namespace_index(name: str, labels: kopf.Labels, **_: Any) -> dict[str, dict[str, str]]:
        return {name: dict(labels)}

    for group, version, plural, _kind in CHILD_KINDS:
        # Children never reach Kopf's per-object machinery: kopf_watch routes their streams to the child cache
        # (see there). This index holds nothing; it makes Kopf watch the kind and wait for its listing before
        # any handler runs, so the first pass finds the cache complete.
        @kopf.index(group, version, plural, labels=MANAGED_BY, registry=registry, id=f"{plural}_index")
        def child_index(**_: Any) -> dict[Any, Any]:
            return {}

    if webhooks is not None:
        admission.install(registry, _settings, webhooks, state, MANAGED_BY, CHILD_KINDS)

    # OpenModels never reach Kopf's per-object machinery either: kopf_watch routes them to the model cache
    # (model_seen below). The empty index makes Kopf watch them and hold its readiness until they are listed.
    @kopf.index(GROUP, VERSION, "openmodels", registry=registry, id="openmodels_index")
    def openmodels_index(**_: Any) -> dict[Any, Any]:
        return {}

    # One loop writes every policy's status (no Kopf timer: a timer would put Kopf's finalizer on policies)
    policy_status = PolicyStatusWriter(settings.resync_interval, enabled=settings.policy_status == "on")

    @kopf.index(GROUP, VERSION, "modeltrustpolicies", registry=registry, id="policy_facts_index")
    def policy_facts_index(body: kopf.Body, **_: Any) -> dict[str, PolicyFacts]:
        return {"all": policy_facts(dict(body))}

    @kopf.on.startup(registry=registry, id="policy_status_start")
    async def policy_status_start(**kwargs: Any) -> None:
        async def patch(name: str, status: Mapping[str, Any]) -> bool:
            return bool(await state["kube"].patch_policy_status(name, status))

        state["policy_status"] = start_writer(policy_status, kwargs, models.count_in, patch, active)

    # ------------------------------------------------------------ wake-ups

    def policies_changed() -> None:
        """A policy or what it references changed (a key removed: a revocation): every model is decided again
        in a full pass, in the policy lane (a revocation waits for no backlog)."""
        policy_epoch[0] += 1
        for key in models:
            queue.add(key, Lane.POLICY)

    @kopf.on.event(GROUP, VERSION, "modeltrustpolicies", registry=registry)
    async def policy_event(**_: Any) -> None:  # async: runs in the event loop, where the wake-ups live
        policies_changed()
        policy_status.policy_changed()

    @kopf.on.event("", "v1", "namespaces", registry=registry)
    async def namespace_event(name: str, **_: Any) -> None:
        for key in models.in_namespace(name):
            queue.add(key, Lane.POLICY)  # its labels select the policies that govern its models

    def model_seen(raw: Mapping[str, Any]) -> None:
        """An OpenModel as the list or watch shows it (routed here, never through Kopf: ``kopf_watch``)."""
        key = key_of(raw)
        old = models.body(key)
        if old is not None and _uid(old) != _uid(raw):
            _forget(key)  # deleted and created again while the watch was down: it starts from nothing
            old = None
        models.put(raw)  # the body the watch decoded, held once
        if is_deleting(raw):
            queue.add(key, Lane.URGENT)  # its pass removes the children, then the finalizer
        elif old is None or needs_pass(raw):
            # a restart's catch-up waits behind new and edited models
            queue.add(key, Lane.URGENT if needs_pass(raw) else Lane.BACKGROUND)
        elif _changed_by_another(raw, old, models.memory(key)):
            queue.add(key, Lane.URGENT)  # a settled model has no resync: a forged status is put back now

    def model_gone(key: Key) -> None:
        """The model is gone (DELETED, or a re-listing without it). Children the watch still shows had no
        deletion pass (our finalizer was taken off first, or the operator was paused): one runs now. Before the
        start-up listing ended the child cache may not hold them yet: the pass runs then too (it lists them)."""
        body = models.body(key)
        cached = bool(state.get("indexed"))  # the child cache is complete (Kopf listed every kind)
        if body is None or (cached and not child_cache.versions(key[0], label_value(key[1]))):  # (nothing unpacked)
            _forget(key)
            return
        if not is_deleting(body):
            meta = {**(body.get("metadata") or {}), "deletionTimestamp": "gone", "finalizers": []}
            models.put({**body, "metadata": meta})  # no finalizer to take off: its children go, then it
        queue.add(key, Lane.URGENT)

    model_stream = ModelStream(models, model_seen, model_gone)

    def _forget(key: Key) -> None:
        models.remove(key)
        queue.forget(key)
        phases.set(key, None)
        exam_waiters.pop(key, None)

    # ------------------------------------------------------------ the workers

    async def run_pass(key: Key) -> float | None:
        """One pass of one model; the delay until its next one (None: it is gone)."""
        body = models.body(key)
        if body is None:
            return None
        namespace, name = key
        if is_deleting(body):
            return await finish_deletion(key, body)
        finalized = await ensure_finalizer(key, body)
        if finalized is None:
            return None  # the model is gone; its DELETED event follows
        memory = models.memory(key)
        owner = label_value(name)
        now = time.monotonic()
        exam_waiters.pop(key, None)  # this pass may get a slot; if not, it registers again
        inputs: tuple[Any, ...] | None = None
        try:
            if state.get("indexed"):
                indexes = state["indexes"]
                labels = _labels(indexes["namespace_index"], namespace)
                policies = _policies(indexes["policy_index"])
                # everything a pass reads that can change without the clock: when none of it did, the pass would
                # change nothing (issue 13: idle CPU); key ConfigMaps of policies are watched once for all (below)
                inputs = (
                    (body.get("metadata") or {}).get("resourceVersion"),
                    child_cache.versions(namespace, owner),
                    policy_epoch[0],
                    tuple(sorted(labels.items())),
                )
                if pass_skippable(memory, inputs, now):
                    METRICS.passes_skipped.inc()
                    return max(settings.resync_interval, memory.settled_until - now)
                inventory = ChildInventory.of(child_cache.of(namespace, owner))
            else:  # the start-up listing is still running: what the caches will hold, read directly (startup_reads)
                reads: StartupReads = state["startup_reads"]
                policies, labels = await reads.policies(), await reads.labels(namespace)
                inventory = ChildInventory.of(await reads.children(namespace, owner))
            result = await state["reconciler"].reconcile(body, policies, labels, inventory, memory)
            phase = result.status.phase if result is not None else None
            result = None  # the plan (every desired child, the status) is not kept while the model waits
            if models.body(key) is not None:
                phases.set(key, phase or Phase.FAILED)
            memory.failures = 0
            if state["reconciler"].claim_pending(namespace, name):
                memory.settled = None  # waiting for a claim report: woken by it, by the Job, or by this resync
                return settings.resync_interval
            if not finalized:
                memory.settled = None
                return 1.0  # the finalizer is put on again soon (the pass itself was not held back for it)
            if inputs is None:
                memory.settled = None
                return 0.0  # decided from direct reads: a full pass from the caches once they are complete
            memory.settled = inputs
            memory.settled_until = now + _full_pass_in(body, memory, settings)
            return max(settings.resync_interval, memory.settled_until - now)
        except asyncio.CancelledError:
            raise
        except ExaminationsBusy:  # not a failure: woken when an examination slot frees (slot_freed)
            memory.settled = None
            exam_waiters[key] = None
            if not state["reconciler"].examinations_busy():
                slot_freed()  # a slot freed while this pass unwound
            return settings.resync_interval  # a resync too, should a wake-up be lost
        except (KubeError, httpx2.TransportError) as exc:  # the API server refused or did not answer in time
            # expected under load or during an outage: the reason, not a traceback per model
            extra = {"namespace": namespace, "openmodel": name, "error": type(exc).__name__}
            log.warning("reconcile failed", extra={**extra, "failures": memory.failures + 1})
            return _failed(memory, settings)
        except Exception:  # one model's failure never stops the others
            log.exception("reconcile failed", extra={"namespace": namespace, "openmodel": name})
            return _failed(memory, settings)

    async def ensure_finalizer(key: Key, body: Mapping[str, Any]) -> bool | None:
        """Our finalizer on the model (True), or not this time (False: changed meanwhile, refused), or the model
        is gone (None). A pass that could not add it still runs: a revocation must never wait for a metadata
        write a tenant can keep conflicting; a deletion without it still removes the children (below)."""
        meta = body.get("metadata") or {}
        finalizers = list(meta.get("finalizers") or [])
        memory = models.memory(key)
        if FINALIZER in finalizers:
            memory.finalized_at = None
            return True
        if predates(meta.get("resourceVersion"), memory.finalized_at):
            return True  # our finalizer write is not in the cache yet: writing it again would only conflict
        if not meta.get("resourceVersion"):
            return False  # never unconditionally: another controller's finalizer could be dropped
        try:
            outcome = await state["kube"].set_finalizers(
                key[0], key[1], str(meta["resourceVersion"]), [*finalizers, FINALIZER]
            )
        except KubeError as exc:  # an admission webhook or a quota refused it: the pass goes on
            log.warning(
                "cannot add the finalizer",
                extra={"namespace": key[0], "openmodel": key[1], "status": exc.status, "error": str(exc)[:200]},
            )
            return False
        if outcome is None or outcome is False:
            return outcome
        memory.finalized_at = outcome if isinstance(outcome, str) else None
        return True

    async def finish_deletion(key: Key, body: Mapping[str, Any]) -> float | None:
        """A model being deleted: its children go (explicitly: no garbage collector is assumed), then the
        finalizer. It runs as the model's pass, so no other pass of it can apply a child meanwhile."""
        namespace, name = key
        meta = body.get("metadata") or {}
        finalizers = list(meta.get("finalizers") or [])
        phases.set(key, None)
        # The children go whether or not our finalizer is still there: a tenant who takes it off and deletes
        # the model (held by a finalizer of its own, or gone at once) must not leave a Deployment serving
        # that no revocation reaches any more (review of issue 13). Only children of this incarnation (uid).
        storage = (body.get("spec") or {}).get("storage") or {}
        retain = bool(storage.get("retain", False))
        removed = await state["reconciler"].delete_children(namespace, name, retain, uid=meta.get("uid"))
        if storage.get("claimName") and storage.get("mode") != "PerPod" and meta.get("uid"):
            await state["reconciler"].release_shared_claim(namespace, name, meta["uid"], str(storage["claimName"]))
        log.info("children removed", extra={"namespace": namespace, "openmodel": name, "removed": removed})
        if FINALIZER in finalizers and meta.get("resourceVersion"):
            remaining = [finalizer for finalizer in finalizers if finalizer != FINALIZER]
            outcome = await state["kube"].set_finalizers(namespace, name, meta["resourceVersion"], remaining)
            if outcome is False:
                return 1.0  # changed meanwhile (409): the new body wakes it; the children are gone already
        if models.body(key) is body:
            _forget(key)  # removed (the DELETED event or the next body follows) or gone already
        return None

    def slot_freed() -> None:
        """An examination slot freed: the model that waited longest for one runs next (urgent lane)."""
        while exam_waiters:
            key = next(iter(exam_waiters))
            del exam_waiters[key]
            if models.body(key) is not None:
                queue.add(key, Lane.URGENT)
                return

    async def active() -> None:
        """Returns when this replica may work: Kopf has listed everything once (at start; a namespace added
        later holds nobody back), and peering does not pause it."""
        if not state.get("indexed"):
            await kopf_watch.wait_until_indexed(state["kopf_settings"])
            if not state.get("indexed"):
                state["indexed"] = True
                gc_tuning.freeze_listed_heap()  # the caches are filled: later collections skip them
        await kopf_watch.wait_while_paused(state["kopf_settings"])

    async def early() -> bool:
        """Whether a pass may run before the start-up listing ended (``startup_reads``): only once Kopf's streams
        have started and its peering observers have read the peers, so a peering pause is known, and while this
        replica is not paused."""
        if state.get("indexed"):
            return False
        if not await kopf_watch.wait_until_streaming(state["kopf_settings"], lambda: bool(state.get("indexed"))):
            return False  # listed before the peers were known: a pass from the caches (``active``)
        await kopf_watch.wait_while_paused(state["kopf_settings"])
        return not state.get("indexed")

    async def worker() -> None:
        while True:
            key = await queue.get()  # held until the start-up listing ended: urgent keys only
            next_in: float | None = settings.resync_interval
            try:
                if await early():
                    # a few at once, the listing going on beside them; a worker still waiting for a slot when the
                    # listing ends runs its pass from the caches at once instead
                    async with state["startup_reads"].slot() as granted:
                        if not granted:
                            await active()
                        next_in = await run_pass(key)
                else:
                    await active()  # checked after the key: a worker waiting in get() when the pause came
                    next_in = await run_pass(key)
            except asyncio.CancelledError:
                raise
            except Exception:  # a worker never dies: 32 dead workers would reconcile (and revoke) nothing
                log.exception("reconcile pass crashed", extra={"namespace": key[0], "openmodel": key[1]})
            finally:
                queue.done(key, next_in)

    async def watch_policy_inputs() -> None:
        """The ConfigMaps policies reference (keys, CAs, trusted roots) read once per resync interval for all
        models: a change (a key removed: a revocation) wakes every model and makes its next pass a full one."""
        last: tuple[tuple[str, str], ...] | None = None
        while True:
            # the first reading as soon as models are known (their first passes read the same 10-second cache),
            # so a key changed right after a start is a change, not the baseline (review of issue 13)
            await asyncio.sleep(settings.resync_interval if last is not None else min(1.0, settings.resync_interval))
            await active()
            if not len(models):
                continue  # nothing to wake (and Kopf's indexes may not be filled yet)
            try:
                current = await state["reconciler"].policy_inputs(_policies(state["indexes"]["policy_index"]))
            except Exception:
                log.exception("could not read the policies' referenced ConfigMaps")
                continue
            if last is not None and current != last:
                policies_changed()
            last = current

    @kopf.on.startup(registry=registry, id="workers_start")
    async def workers_start(**kwargs: Any) -> None:
        # Kopf hands every handler its indexes; the workers read them as a pass starts. Models arrive while
        # Kopf lists (routed), so the workers wait for its readiness (``active``): no pass sees an index half
        # filled.
        state["indexes"] = {k: v for k, v in kwargs.items() if k.endswith("_index")}
        state["startup_reads"] = StartupReads(lambda: state["kube"], tuple(kind for *_, kind in CHILD_KINDS))

        async def release_when_listed() -> None:
            started = time.monotonic()
            await active()
            queue.release()  # the caches are complete: the catch-up, policy waves and timers run too
            state["startup_reads"].listing_ended()
            seconds = round(time.monotonic() - started, 1)
            log.info("start-up listing complete", extra={"seconds": seconds, "models": len(models)})

        state["workers"] = [
            asyncio.create_task(worker(), name=f"openmodel-worker-{i}") for i in range(settings.reconcile_workers)
        ] + [
            asyncio.create_task(watch_policy_inputs(), name="openmodel-policy-inputs"),
            asyncio.create_task(release_when_listed(), name="openmodel-release-queue"),
        ]

    return registry


def _failed(memory: ModelMemory, settings: OperatorSettings) -> float:
    """A pass failed: nothing is settled, and the next one backs off (2 s doubling, up to the resync interval)."""
    memory.settled = None
    memory.failures += 1
    return min(settings.resync_interval, 2.0 ** min(memory.failures, 5))


def _host(address: str) -> str:
    """An address as the host of a URL (IPv6 in brackets)."""
    return f"[{address}]" if ":" in address else address


def _uid(body: Mapping[str, Any]) -> str | None:
    uid = (body.get("metadata") or {}).get("uid")
    return str(uid) if uid else None


def _changed_by_another(raw: Mapping[str, Any], old: Mapping[str, Any], memory: ModelMemory) -> bool:
    """A body (same generation) whose change a pass must see: the finalizer taken off, or a status the
    operator did not write (its own write is known by its resourceVersion). Labels and annotations change
    nothing a pass reads."""
    ours = memory.written is not None and memory.written[0] == (raw.get("metadata") or {}).get("resourceVersion")
    fresh_status(raw, memory)  # our own status write, once shown, is not held twice
    if FINALIZER not in ((raw.get("metadata") or {}).get("finalizers") or []):
        return True
    return not ours and raw.get("status") != old.get("status")


def _full_pass_in(body: Mapping[str, Any], memory: ModelMemory, settings: OperatorSettings) -> float:
    """Seconds until a settled model's next full pass: its re-verification, a pending retry of its source,
    or the safety net (``FULL_PASS_EVERY`` resync intervals), whichever comes first. Until then only a
    wake-up runs a pass: every input of one (the model, its children, policies and what they reference,
    namespace labels) wakes it when it changes, so a quiet cluster costs no CPU and no API calls."""
    due = min(FULL_PASS_EVERY * settings.resync_interval, _reverify_in(body, settings))
    if memory.retry is not None:
        due = min(due, (memory.retry.not_before - utcnow()).total_seconds())
    return max(0.0, due)


def _reverify_in(body: Mapping[str, Any], settings: OperatorSettings) -> float:
    """Seconds until the model's re-verification is due (from ``status.provenance.verifiedAt``); a pass runs
    then however quiet the model is. Unknown or unreadable: due now (the pass decides)."""
    raw = ((body.get("status") or {}).get("provenance") or {}).get("verifiedAt")
    try:
        verified = datetime.datetime.fromisoformat(str(raw))
    except ValueError:
        return 0.0
    if verified.tzinfo is None:
        verified = verified.replace(tzinfo=datetime.UTC)
    return (verified - utcnow()).total_seconds() + settings.reverify_interval


def _policies(index: Any) -> list[Policy]:
    return store_values(index, "all")


def _labels(index: Any, namespace: str) -> dict[str, str]:
    values = store_values(index, namespace)
    return dict(values[0]) if values else {}


def configure_kopf(settings: kopf.OperatorSettings) -> None:
    """Keep Kopf's bookkeeping out of annotations and the finalizer ours; post Events ourselves."""
    settings.persistence.finalizer = FINALIZER
    settings.persistence.diffbase_storage = kopf.StatusDiffBaseStorage(field="status.operator.lastApplied")
    settings.persistence.progress_storage = kopf.StatusProgressStorage(field="status.operator.progress")
    settings.watching.server_timeout = 300
    # Lists come in pages: one answer of 10,000 OpenModels is ~30 MB of JSON and many times that decoded at once,
    # the peak of a restart's memory (issue 13); pages are decoded and handed on one at a time.
    settings.watching.chunk_size = LIST_PAGE
    # Only the operator's own children are listed and watched: the API server filters them (labelSelector), so
    # neither the cost of a restart nor memory follows the cluster's other ConfigMaps, Jobs or Deployments.
    for group, version, plural, _kind in CHILD_KINDS:
        settings.watching.label_selectors[group, version, plural] = MANAGED_BY_SELECTOR
    settings.queueing.error_delays = [1, 2, 5, 10, 30]
