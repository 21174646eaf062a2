"""Kopf wiring: indexes that mirror policies, namespaces and children; one daemon per OpenModel.

Why a daemon per model instead of create/update handlers: the reconciler is level-based, so each model
needs one serialized loop that re-runs whenever anything it depends on changes. Watches on children,
policies and namespaces *wake* that loop (a deleted Deployment is restored within seconds); a resync
timeout (default 30 s, from the watch index, no API calls) and the re-verification interval catch
whatever no event reports (revoked keys, an upstream branch that moved).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping
from typing import Any

import kopf

from openmodel_operator.api.common import GROUP, VERSION
from openmodel_operator.api.vocabulary import Phase
from openmodel_operator.controller import kopf_readiness, kopf_watch
from openmodel_operator.controller.events import EventPoster
from openmodel_operator.controller.kopf_indexes import store_values
from openmodel_operator.controller.kube import Kube
from openmodel_operator.controller.memory import memory_in
from openmodel_operator.controller.metrics import METRICS, PHASES
from openmodel_operator.controller.policy_status import PolicyFacts, PolicyStatusWriter, policy_facts, start_writer
from openmodel_operator.controller.reconciler import ChildInventory, Reconciler
from openmodel_operator.controller.settings import OperatorSettings
from openmodel_operator.planning.children import label_value
from openmodel_operator.planning.planner import Event
from openmodel_operator.trust.policies import (
    Policy,
    usable_policy,
)

log = logging.getLogger(__name__)

MANAGED_BY = {"app.kubernetes.io/managed-by": "openmodel-operator"}
MANAGED_BY_SELECTOR = ",".join(f"{key}={value}" for key, value in MANAGED_BY.items())
FINALIZER = "openmodel.io/cleanup"
CHILD_KINDS = (
    ("batch", "v1", "jobs", "Job"),
    ("apps", "v1", "deployments", "Deployment"),
    ("", "v1", "configmaps", "ConfigMap"),
    ("", "v1", "services", "Service"),
    ("", "v1", "persistentvolumeclaims", "PersistentVolumeClaim"),
)
_KEEP_CHILD_FIELDS = ("apiVersion", "kind", "metadata", "spec", "status", "data")


class Triggers:
    """Wake-up events for the per-model daemons, keyed by (namespace, name)."""

    def __init__(self) -> None:
        self._events: dict[tuple[str, str], asyncio.Event] = {}

    def register(self, namespace: str, name: str) -> asyncio.Event:
        return self._events.setdefault((namespace, name), asyncio.Event())

    def unregister(self, namespace: str, name: str) -> None:
        self._events.pop((namespace, name), None)

    def wake(self, namespace: str | None, name: str | None) -> None:
        if namespace and name and (event := self._events.get((namespace, name))) is not None:
            event.set()

    def wake_namespace(self, namespace: str) -> None:
        for (ns, _), event in self._events.items():
            if ns == namespace:
                event.set()

    def wake_all(self) -> None:
        for event in self._events.values():
            event.set()


class PhaseTracker:
    """Keeps the models-by-phase gauge exact as models change phase or go away."""

    def __init__(self) -> None:
        self._phases: dict[tuple[str, str], str] = {}

    def set(self, key: tuple[str, str], phase: str | None) -> None:
        if phase is None:
            self._phases.pop(key, None)
        else:
            self._phases[key] = phase
        for known in PHASES:
            METRICS.models_by_phase.labels(phase=known).set(sum(1 for p in self._phases.values() if p == known))


def _trimmed(body: Mapping[str, Any]) -> dict[str, Any]:
    """What the reconciler needs of a child (keeps the index small)."""
    out = {k: body[k] for k in _KEEP_CHILD_FIELDS if k in body}
    meta = dict(out.get("metadata") or {})
    meta.pop("managedFields", None)
    out["metadata"] = meta
    return out


def build_registry(
    settings: OperatorSettings,
    kube_factory: Callable[[], Kube],
    post_event: Callable[[Mapping[str, Any], Event], None] | None = None,
) -> kopf.OperatorRegistry:
    """A registry with every handler, so tests run the real operator with ``kopf.operator(registry=...)``."""
    kopf_readiness.install()  # a restart's catch-up stays linear in the objects held (see the module)
    kopf_watch.install()  # no managedFields in what Kopf keeps of each object (see the module)
    registry = kopf.OperatorRegistry()
    triggers = Triggers()
    phases = PhaseTracker()
    state: dict[str, Any] = {}

    # our own Events, not kopf.event(): Kopf's generateName names clash at scale (409: the Event is lost)
    events = EventPoster(lambda: state["kube"].create_event if "kube" in state else None)

    def poster(body: Mapping[str, Any], event: Event) -> None:
        events.post(body, event.type, event.reason, event.message)

    @kopf.on.startup(registry=registry)
    async def startup(settings: kopf.OperatorSettings, **_: Any) -> None:
        configure_kopf(settings)
        kube = kube_factory()
        state["kube"] = kube
        state["reconciler"] = Reconciler(kube, _settings, post_event or poster)

    _settings = settings

    @kopf.on.cleanup(registry=registry)
    async def cleanup(**_: Any) -> None:
        await events.flush()  # the Events of the last passes, before the client closes
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

        @kopf.index(group, version, plural, labels=MANAGED_BY, registry=registry, id=f"{plural}_index")
        def child_index(
            body: kopf.Body,
            namespace: str | None,
            name: str | None,
            labels: kopf.Labels,
            child_kind: str = _kind,
            **_: Any,
        ) -> dict[Any, Any]:
            owner = labels.get("openmodel.io/name")
            if not owner:
                return {}
            # by owner (a model's children) and by name (whose child a name is: no two models share one)
            return {(namespace, owner): _trimmed(body), (namespace, child_kind, name): owner}

        @kopf.on.event(group, version, plural, labels=MANAGED_BY, registry=registry, id=f"{plural}_wake")
        async def child_event(  # async: in the event loop, where the wake-ups live
            namespace: str | None, labels: kopf.Labels, **_: Any
        ) -> None:
            triggers.wake(namespace, labels.get("openmodel.io/name"))

    @kopf.index(GROUP, VERSION, "openmodels", registry=registry, id="model_index")
    def model_index(namespace: str | None, name: str, **_: Any) -> dict[str | None, str]:
        return {namespace: name}

    # One loop writes every policy's status (no Kopf timer: a timer would put Kopf's finalizer on policies)
    policy_status = PolicyStatusWriter(settings.resync_interval, enabled=settings.policy_status == "on")

    @kopf.index(GROUP, VERSION, "modeltrustpolicies", registry=registry, id="policy_facts_index")
    def policy_facts_index(body: kopf.Body, **_: Any) -> dict[str, PolicyFacts]:
        return {"all": policy_facts(dict(body))}

    @kopf.on.startup(registry=registry, id="policy_status_start")
    async def policy_status_start(**kwargs: Any) -> None:
        async def patch(name: str, status: Mapping[str, Any]) -> bool:
            return bool(await state["kube"].patch_policy_status(name, status))

        state["policy_status"] = start_writer(policy_status, kwargs, patch)

    @kopf.on.cleanup(registry=registry, id="policy_status_stop")
    async def policy_status_stop(**_: Any) -> None:
        task = state.pop("policy_status", None)
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    # ------------------------------------------------------------ wake-ups

    @kopf.on.event(GROUP, VERSION, "modeltrustpolicies", registry=registry)
    async def policy_event(**_: Any) -> None:  # async: runs in the event loop, where the wake-ups live
        triggers.wake_all()
        policy_status.policy_changed()

    @kopf.on.event("", "v1", "namespaces", registry=registry)
    async def namespace_event(name: str, **_: Any) -> None:
        triggers.wake_namespace(name)

    @kopf.on.event(GROUP, VERSION, "openmodels", registry=registry)
    async def model_event(body: kopf.Body, namespace: str | None, name: str, **_: Any) -> None:
        generation = body.get("metadata", {}).get("generation")
        if generation != (body.get("status") or {}).get("observedGeneration"):
            triggers.wake(namespace, label_value(name))

    # ------------------------------------------------------------ the per-model loop

    @kopf.daemon(GROUP, VERSION, "openmodels", registry=registry, cancellation_timeout=10, cancellation_polling=1)
    async def model_daemon(
        stopped: kopf.DaemonStopped,
        body: kopf.Body,
        namespace: str | None,
        name: str,
        memo: kopf.Memo,
        **kwargs: Any,
    ) -> None:
        assert namespace is not None, "OpenModel is namespaced"
        trigger = triggers.register(namespace, label_value(name))  # children wake it by label
        failures = 0
        try:
            while not stopped:
                trigger.clear()
                try:
                    result = await state["reconciler"].reconcile(
                        body,
                        _policies(kwargs["policy_index"]),
                        _labels(kwargs["namespace_index"], namespace),
                        _inventory(kwargs, namespace, name),
                        memory_in(memo),  # Kopf drops an object's memo with the object: nothing to forget
                    )
                    phase = result.status.phase if result is not None else None
                    result = None  # the plan (every desired child, the status) is not kept while the loop sleeps
                    phases.set((namespace, name), phase or Phase.FAILED)
                    failures = 0
                    delay = settings.resync_interval
                except Exception:  # one model's failure never stops the others
                    failures += 1
                    delay = min(settings.resync_interval, 2.0 ** min(failures, 5))
                    log.exception("reconcile failed", extra={"namespace": namespace, "openmodel": name})
                await _wait(trigger, stopped, delay)
        finally:
            triggers.unregister(namespace, label_value(name))

    @kopf.on.delete(GROUP, VERSION, "openmodels", registry=registry)
    async def model_deleted(spec: kopf.Spec, namespace: str | None, name: str, **_: Any) -> None:
        assert namespace is not None, "OpenModel is namespaced"
        retain = bool((spec.get("storage") or {}).get("retain", False))
        removed = await state["reconciler"].delete_children(namespace, name, retain)
        phases.set((namespace, name), None)
        log.info("children removed", extra={"namespace": namespace, "openmodel": name, "removed": removed})

    return registry


def _policies(index: Any) -> list[Policy]:
    return store_values(index, "all")


def _labels(index: Any, namespace: str) -> dict[str, str]:
    values = store_values(index, namespace)
    return dict(values[0]) if values else {}


def _inventory(indexes: Mapping[str, Any], namespace: str, name: str) -> ChildInventory:
    bodies: list[Mapping[str, Any]] = []
    index_of: dict[str, Any] = {}
    for _group, _version, plural, kind in CHILD_KINDS:
        index = indexes.get(f"{plural}_index")
        if index is not None:
            index_of[kind] = index
            bodies.extend(store_values(index, (namespace, label_value(name))))  # keyed by the owner label

    def owner_of(kind: str, child: str) -> str | None:
        """Whose child a name is, looked up in the index of its kind only when asked (creations are rare)."""
        index = index_of.get(kind)
        values = store_values(index, (namespace, kind, child)) if index is not None else []
        return str(values[0]) if values else None

    return ChildInventory.of(bodies, owner_of)


async def _wait(trigger: asyncio.Event, stopped: kopf.DaemonStopped, timeout: float) -> None:
    """Sleep until woken, stopped, or the resync timeout passes."""
    waiters = [asyncio.ensure_future(trigger.wait()), asyncio.ensure_future(stopped.wait())]
    try:
        await asyncio.wait(waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()


def configure_kopf(settings: kopf.OperatorSettings) -> None:
    """Keep Kopf's bookkeeping out of annotations and the finalizer ours; post Events ourselves."""
    settings.persistence.finalizer = FINALIZER
    settings.persistence.diffbase_storage = kopf.StatusDiffBaseStorage(field="status.operator.lastApplied")
    settings.persistence.progress_storage = kopf.StatusProgressStorage(field="status.operator.progress")
    settings.watching.server_timeout = 300
    # Only the operator's own children are listed and watched: the API server filters them (labelSelector), so
    # neither the cost of a restart nor memory follows the cluster's other ConfigMaps, Jobs or Deployments.
    for group, version, plural, _kind in CHILD_KINDS:
        settings.watching.label_selectors[group, version, plural] = MANAGED_BY_SELECTOR
    settings.queueing.error_delays = [1, 2, 5, 10, 30]
