"""Validating admission with Kopf: the operator's refusals at ``kubectl apply`` time, and the children guard.

The decisions are :mod:`openmodel_operator.planning.admission` (pure, the reconciler's own functions); this
module feeds them from the request and from what the operator already holds (Kopf's policy and namespace
indexes, the reconciler's reading of the ConfigMaps policies reference), and tells Kopf how to serve and
register the webhooks.

``failurePolicy`` per webhook (docs/install.md, "Admission webhooks"):

* ModelTrustPolicy and OpenModel: ``Fail``. Admission is not the security boundary (the reconciler decides
  everything again before it contacts a source), so failing open would be safe, but an unvalidated policy
  that the operator cannot use fails every model in the namespaces it selects: a typo would become an
  outage. While the webhook is unreachable, applies of these two kinds fail with the API server's
  "failed calling webhook" error; nothing else is blocked (DELETE is not intercepted, and an update that
  leaves ``spec`` alone, such as the operator's finalizer, is always allowed). They stay registered while an
  in-cluster operator restarts (webhook_registration); if it stays down, ``OPENMODEL_WEBHOOKS=off`` or
  removing the webhooks from the ``openmodel.io`` configuration is the way out (docs/install.md).
* The children guard: ``Ignore``. It only spares the reconciler a repair (the operator reverts drift anyway),
  and it sits on Deployments, Jobs, ConfigMaps, Services and PVCs: a down operator must never block the
  namespace controller, the garbage collector or an admin from deleting them.
* The serving pods' guard (pods labelled ``app.kubernetes.io/name=openmodel``, the operator's ReplicaSets):
  ``Ignore`` too, for the same reason (a down operator would otherwise stop every model's pods from being
  recreated on a node failure). While the operator runs, it fails closed: a ReplicaSet or Deployment it
  cannot read in time refuses the pod (the controller retries). ``kubectl scale`` of the operator's
  Deployments and ReplicaSets is the operator's alone (the scale guards): the chain trusts their replica counts.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Mapping, MutableMapping
from typing import Any

import kopf

from openmodel_operator.api.common import GROUP, VERSION
from openmodel_operator.controller import kopf_watch, webhook_registration
from openmodel_operator.controller.child_cache import ChildCache
from openmodel_operator.controller.kopf_indexes import store_values
from openmodel_operator.controller.settings import OperatorSettings
from openmodel_operator.controller.webhook_registration import GUARD_PREFIX, SCALE
from openmodel_operator.controller.webhook_settings import WebhookSettings
from openmodel_operator.controller.webhook_tls import given_files, self_signed
from openmodel_operator.planning.admission import (
    POD_MAKERS,
    Review,
    controller_ref,
    replicaset_owner_needed,
    review_child_change,
    review_openmodel,
    review_pod_change,
    review_policy,
    review_replicaset_change,
    review_scale_change,
    serving_pod,
)
from openmodel_operator.trust.policies import Policy, governing_policies, usable_policy, without_references

log = logging.getLogger(__name__)

READ_TIMEOUT = 5.0  # seconds for reading the ConfigMaps a policy references during admission
OWNER_READ_TIMEOUT = 3.0  # the serving pods' guard reads one owner within the guard's 5 s webhook timeout
DISABLED = (
    "admission webhooks are off (OPENMODEL_WEBHOOKS=off): nothing is refused at kubectl apply; every "
    "ModelTrustPolicy and OpenModel is validated only when the operator reconciles it (Accepted, Trusted "
    "conditions and Events), and edits of managed children are reverted, not refused"
)


def answer(review: Review, warnings: list[str]) -> None:
    """Give a review to Kopf: warnings into the response, a refusal as an AdmissionError."""
    warnings.extend(review.warnings)
    if not review.allowed:
        raise kopf.AdmissionError(review.message, code=review.code)


def install(
    registry: kopf.OperatorRegistry,
    settings: OperatorSettings,
    hooks: WebhookSettings,
    state: Mapping[str, Any],
    managed_by: Mapping[str, str],
    child_kinds: tuple[tuple[str, str, str, str], ...],
) -> None:
    """Register the validating handlers; ``state`` holds the reconciler once the operator started."""
    if not hooks.enabled:
        log.warning(DISABLED)
        return
    # registered by our manager (webhook_registration); kept at a stop when served through a Service
    webhook_registration.install(
        hooks.configuration, managed_by, keep_on_stop=lambda: hooks.service is not None, namespaces=settings.namespaces
    )

    async def resolved(policies: list[Policy]) -> list[Policy]:
        reconciler = state.get("reconciler")
        if reconciler is None:  # not started yet: references left out (a missing anchor is decided at reconcile)
            return [without_references(p) for p in policies]
        result: list[Policy] = await asyncio.wait_for(reconciler.resolved_policies(policies), READ_TIMEOUT)
        return result

    @kopf.on.validate(
        GROUP, VERSION, "modeltrustpolicies", registry=registry, id="policy", operations=["CREATE", "UPDATE"]
    )
    async def validate_policy(body: kopf.Body, warnings: list[str], **_: Any) -> None:
        doc = dict(body)
        policy = usable_policy(doc)
        read: Policy | None = None
        if policy.problem is None and without_references(policy) is not policy:
            # without uid and generation: the reconciler memoizes resolved policies by them, and this spec may
            # never be stored (a dry run, a refused update): it must not stand in for the stored one
            unstored = dataclasses.replace(policy, uid=None, generation=None)
            try:
                (read,) = await resolved([unstored])
            except TimeoutError:
                warnings.append("the ConfigMaps this policy references could not be read in time: checked at reconcile")
        answer(review_policy(doc, read), warnings)

    @kopf.on.validate(GROUP, VERSION, "openmodels", registry=registry, id="openmodel", operations=["CREATE", "UPDATE"])
    async def validate_openmodel(body: kopf.Body, namespace: str | None, warnings: list[str], **kwargs: Any) -> None:
        old: Mapping[str, Any] | None = kwargs.get("old")
        operation, policy_index, namespace_index = (
            kwargs["operation"],
            kwargs["policy_index"],
            kwargs["namespace_index"],
        )
        meta = body.get("metadata") or {}
        if not webhook_registration.judged(namespace, settings.namespaces):
            return  # another operator's namespace (a pattern no namespaceSelector can express)
        if meta.get("deletionTimestamp"):
            return  # being deleted: its finalizer must come off, whatever the policies say now
        if operation == "UPDATE" and old is not None and old.get("spec") == body.get("spec"):
            return  # metadata only (labels, the operator's finalizer): nothing the decision reads changed
        # Kopf serves admission before its first listing ends: a decision from half the policies could refuse
        # by the built-in default (no policy seen yet) or miss an Enforce one. Until listed: decided at reconcile.
        if not await _listed(state):
            warnings.append("the operator is starting: this OpenModel's policies are applied at reconcile")
            return
        labels = store_values(namespace_index, namespace)
        if not labels:
            warnings.append(
                f"namespace {namespace!r} is not known to the operator yet: its policies are applied at reconcile"
            )
            return
        try:
            policies = await resolved(governing_policies(store_values(policy_index, "all"), dict(labels[0])))
        except TimeoutError:
            warnings.append("the ConfigMaps of the governing policies could not be read in time: checked at reconcile")
            policies = [
                without_references(p) for p in governing_policies(store_values(policy_index, "all"), dict(labels[0]))
            ]
        runtime_image = settings.vllm_image  # what Reconciler.runtime_image answers for every model
        answer(
            review_openmodel(body.get("spec"), policies, dict(labels[0]), runtime_image, settings.default_endpoint),
            warnings,
        )

    if not hooks.guard:
        log.warning("the children guard is off (OPENMODEL_CHILD_GUARD=off): edits of managed children are reverted")
        return
    if not hooks.operator_users:
        log.warning(
            "the children guard is off: the operator's own identity is unknown (set OPENMODEL_OPERATOR_USER, or "
            "OPENMODEL_SERVICE_ACCOUNT and OPENMODEL_POD_NAMESPACE as the manifests do); edits of managed "
            "children are reverted, not refused"
        )
        return
    for group, version, plural, kind in child_kinds:
        registry_guard(registry, group, version, plural, kind, hooks.operator_users, managed_by, settings.namespaces)
    registry_serving_guard(registry, hooks.operator_users, settings.namespaces, state)


@dataclasses.dataclass(frozen=True)
class GuardedWrite:
    """What the guards read of an admission request (``new`` is None for a DELETE)."""

    operation: str
    namespace: str
    username: str
    groups: list[str]
    old: Mapping[str, Any] | None
    new: Mapping[str, Any] | None

    @classmethod
    def of(cls, body: kopf.Body, userinfo: Mapping[str, Any], kwargs: Mapping[str, Any]) -> GuardedWrite:
        operation = str(kwargs["operation"])
        return cls(
            operation=operation,
            namespace=str(kwargs.get("namespace") or ""),
            username=str(userinfo.get("username") or ""),
            groups=list(userinfo.get("groups") or []),
            old=kwargs.get("old"),
            new=None if operation == "DELETE" else body,
        )


async def _owner(state: Mapping[str, Any], kind: str, namespace: str, name: str, what: str) -> Mapping[str, Any] | None:
    """The object a controller reference (or a scale) names, as the API server has it now (never a cache: a
    ReplicaSet made a moment ago is not in any watch yet). Unreadable: ``what`` is refused with 503 (fail
    closed; the controller retries)."""
    kube = state.get("kube")
    why = "the operator is starting"
    if kube is not None:
        try:
            read = kube.replicaset(namespace, name) if kind == "ReplicaSet" else kube.get(kind, namespace, name)
            found: Mapping[str, Any] | None = await asyncio.wait_for(read, OWNER_READ_TIMEOUT)
            return found
        except TimeoutError:
            why = f"reading {kind} {name} timed out"
        except Exception as exc:  # KubeError, a connection error: nothing is admitted on an unread owner
            why = f"reading {kind} {name} failed ({type(exc).__name__})"
    raise kopf.AdmissionError(f"{what} cannot be checked now ({why}): the controller retries", code=503)


def registry_serving_guard(
    registry: kopf.OperatorRegistry,
    operator_users: tuple[str, ...],
    namespaces: tuple[str, ...],
    state: Mapping[str, Any],
) -> None:
    """Only the model's own Deployment makes pods its Service selects (threat model, row 28): pods with the
    operator's pod label, with their ephemeral containers, and the operator's ReplicaSets."""

    async def pods(body: kopf.Body, userinfo: Mapping[str, Any], warnings: list[str], **kwargs: Any) -> None:
        w = GuardedWrite.of(body, userinfo, kwargs)
        if not webhook_registration.judged(w.namespace, namespaces):
            return
        owner: Mapping[str, Any] | None = None
        ref = controller_ref(w.new)
        if w.operation == "CREATE" and serving_pod(w.new) and w.username in POD_MAKERS and ref is not None:
            what = f"Pod of ReplicaSet {ref.get('name')}"
            owner = await _owner(state, "ReplicaSet", w.namespace, str(ref.get("name") or ""), what)
        answer(review_pod_change(w.username, w.groups, w.operation, w.old, w.new, owner, operator_users), warnings)

    kopf.on.validate(
        "",
        "v1",
        "pods",
        registry=registry,
        id=f"{GUARD_PREFIX}pods",
        operations=["CREATE", "UPDATE"],
        ignore_failures=True,
    )(pods)
    kopf.on.validate(
        "",
        "v1",
        "pods",
        registry=registry,
        id=f"{GUARD_PREFIX}pods-ephemeralcontainers",
        subresource="ephemeralcontainers",
        operations=["UPDATE"],
        ignore_failures=True,
    )(pods)

    @kopf.on.validate(
        "apps",
        "v1",
        "replicasets",
        registry=registry,
        id=f"{GUARD_PREFIX}replicasets",
        operations=["CREATE", "UPDATE", "DELETE"],
        ignore_failures=True,
    )
    async def replicasets(body: kopf.Body, userinfo: Mapping[str, Any], warnings: list[str], **kwargs: Any) -> None:
        w = GuardedWrite.of(body, userinfo, kwargs)
        if not webhook_registration.judged(w.namespace, namespaces):
            return
        deployment: Mapping[str, Any] | None = None
        ref = controller_ref(w.new)
        by_owner = ref is not None and ref.get("kind") == "Deployment"
        if ref is not None and by_owner and replicaset_owner_needed(w.username, w.operation, w.old, w.new):
            what = f"ReplicaSet of Deployment {ref.get('name')}"
            deployment = await _owner(state, "Deployment", w.namespace, str(ref.get("name") or ""), what)
        review = review_replicaset_change(w.username, w.groups, w.operation, w.old, w.new, deployment, operator_users)
        answer(review, warnings)

    for plural, kind in (("deployments", "Deployment"), ("replicasets", "ReplicaSet")):
        registry_scale_guard(registry, plural, kind, operator_users, namespaces, state)


def registry_scale_guard(
    registry: kopf.OperatorRegistry,
    plural: str,
    kind: str,
    operator_users: tuple[str, ...],
    namespaces: tuple[str, ...],
    state: Mapping[str, Any],
) -> None:
    """``kubectl scale`` of the operator's Deployments and ReplicaSets (a function per kind: each handler binds
    its own kind). A Scale carries no labels, so the webhook selects every scale and the target is read here."""

    @kopf.on.validate(
        "apps",
        "v1",
        plural,
        registry=registry,
        id=f"{GUARD_PREFIX}{plural}-{SCALE}",
        subresource=SCALE,
        operations=["UPDATE"],
        ignore_failures=True,
    )
    async def scale(body: kopf.Body, userinfo: Mapping[str, Any], warnings: list[str], **kwargs: Any) -> None:
        w = GuardedWrite.of(body, userinfo, kwargs)
        if not webhook_registration.judged(w.namespace, namespaces) or w.username in operator_users:
            return
        name = str((body.get("metadata") or {}).get("name") or "")
        cache: ChildCache | None = state.get("child_cache") if state.get("indexed") else None
        if kind == "Deployment" and cache is not None and not cache.holds(w.namespace, kind, name):
            return  # not the operator's (its Deployments are all watched): no read, never a refusal for it
        target = await _owner(state, kind, w.namespace, name, f"Scaling {kind} {name}")
        answer(review_scale_change(w.username, w.groups, kind, name, target, operator_users), warnings)


async def _listed(state: Mapping[str, Any], wait: float = 3.0) -> bool:
    """Kopf has listed every watched kind once (policies, namespaces): its indexes are the cluster's."""
    settings = state.get("kopf_settings")
    if settings is None:
        return False
    try:
        await asyncio.wait_for(kopf_watch.wait_until_indexed(settings), wait)
    except TimeoutError:
        return False
    return True


def registry_guard(
    registry: kopf.OperatorRegistry,
    group: str,
    version: str,
    plural: str,
    kind: str,
    operator_users: tuple[str, ...],
    managed_by: Mapping[str, str],
    namespaces: tuple[str, ...] = (),
) -> None:
    """The guard of one child kind (a function per kind: each handler binds its own kind)."""

    @kopf.on.validate(
        group,
        version,
        plural,
        registry=registry,
        id=f"{GUARD_PREFIX}{plural}",
        operations=["CREATE", "UPDATE", "DELETE"],
        ignore_failures=True,
    )
    async def guard(body: kopf.Body, userinfo: Mapping[str, Any], warnings: list[str], **kwargs: Any) -> None:
        w = GuardedWrite.of(body, userinfo, kwargs)

        # The API server sends only objects labelled before or after the change (objectSelector); checked here
        # too, on both sides: removing the label in the same edit must not take an object out of the guard.
        def ours(obj: Mapping[str, Any] | None) -> bool:
            labels = ((obj or {}).get("metadata") or {}).get("labels") or {}
            return all(labels.get(key) == value for key, value in managed_by.items())

        if not (ours(body) or ours(w.old)) or not webhook_registration.judged(w.namespace, namespaces):
            return
        name = str((body.get("metadata") or {}).get("name") or "")
        answer(review_child_change(w.username, w.groups, w.operation, kind, name, operator_users), warnings)


def configure(kopf_settings: kopf.OperatorSettings, hooks: WebhookSettings) -> None:
    """The webhook server (TLS, how the API server reaches it) and the configuration Kopf keeps registered."""
    if not hooks.enabled:
        return
    if hooks.service is not None:
        namespace, name, _port = hooks.service_ref()
        names = [f"{name}.{namespace}.svc", f"{name}.{namespace}.svc.cluster.local", f"{name}.{namespace}"]
    else:
        names = [hooks.url_host or ("127.0.0.1" if hooks.address == "0.0.0.0" else hooks.address)]
    files = given_files(hooks.cert_dir) if hooks.cert_dir else self_signed(names)
    common: MutableMapping[str, Any] = {
        "addr": hooks.address,
        "port": hooks.port,
        "certfile": files.certfile,
        "pkeyfile": files.pkeyfile,
        "cafile": files.cafile,
    }
    server: kopf.WebhookServer
    if hooks.service is not None:
        server = ServiceWebhookServer(hooks.service_ref(), **common)
        how = f"through Service {hooks.service}"
    else:
        server = kopf.WebhookServer(host=names[0], **common)
        how = f"by URL https://{names[0]}:{hooks.port}"
    kopf_settings.admission.server = server  # registered by webhook_registration, not Kopf's managed mode
    log.info(
        "admission webhooks on",
        extra={
            "configuration": hooks.configuration,
            "reached": how,
            "certificate": hooks.cert_dir or "self-signed at start",
            "guard": bool(hooks.guard and hooks.operator_users),
        },
    )


class ServiceWebhookServer(kopf.WebhookServer):  # type: ignore[misc]
    """Kopf's server, registered as a Service reference instead of a URL: in a cluster with nodes the API
    server reaches the pod through the Service (cluster DNS names are not resolvable from the API server)."""

    def __init__(self, service: tuple[str, str, int], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.service = service

    async def __call__(self, fn: Any) -> Any:
        namespace, name, port = self.service
        async for config in super().__call__(fn):
            reference: dict[str, Any] = {"service": {"namespace": namespace, "name": name, "port": port}}
            if "caBundle" in config:
                reference["caBundle"] = config["caBundle"]
            yield reference
