"""Keeping the ValidatingWebhookConfiguration registered: Kopf's manager, with three changes.

Kopf 1.45's managed mode (``settings.admission.managed``) creates the configuration (and a mutating one, even
with no mutating handler) before it patches it, and clears its webhooks when the operator stops. Here:

* no MutatingWebhookConfiguration is ever created or written: the operator mutates nothing, and a grant to
  create mutating webhooks would let its ServiceAccount rewrite any object in the cluster;
* the configuration is *patched*, never created, where the install made it (the manifests and the chart ship
  an empty ``openmodel.io``): the ServiceAccount gets ``patch`` on that one name only, not ``create`` on
  webhook configurations (a new validating webhook sees every object it names, Secrets included). Only
  when it is absent (``openmodel run`` on a developer's cluster, as an admin) is it created;
* admission keeps no per-object memory in Kopf (``_EphemeralMemos``);
* the webhooks are written again every ``REASSERT_SECONDS`` (a no-op patch changes nothing), so a GitOps sync
  or a hand edit that removed them is undone; and they are cleared at a clean stop only when the API server
  reaches this process by URL (``openmodel run``, nobody else serves that URL). Through a Service the next
  pod (or another replica) serves the same webhooks: clearing them during a rolling update would leave the
  cluster without them, and ``failurePolicy: Fail`` then answers "failed calling webhook" until the operator
  is back, which docs/install.md says how to get out of.

The children guard's objectSelector and the timeouts are set on what Kopf builds (see ``shape``).
Private Kopf APIs, pinned with ``kopf>=1.45,<1.46`` (pyproject.toml), as in ``kopf_watch``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from kopf._cogs.clients import creating, errors, patching  # private: see the module docstring
from kopf._cogs.structs import patches, references
from kopf._core.engines import admission
from kopf._core.intents import causes

from openmodel_operator.planning.admission import POD_SELECTOR

log = logging.getLogger(__name__)

GUARD_PREFIX = "guard-"  # handler ids of the children guard (and so the webhooks' names)
POD_GUARD_PREFIX = f"{GUARD_PREFIX}pods"  # the serving pods' guard: selected by the pods' label, not managed-by
SCALE = "scale"  # the scale guards (``guard-<plural>-scale``): a Scale has no labels to select on
POLICY_TIMEOUT = 10  # seconds the API server waits for the policy and OpenModel webhooks (ConfigMap reads)
GUARD_TIMEOUT = 5  # the guard sits in front of every write of a managed child: a slow operator costs little
REASSERT_SECONDS = 60.0


def shape(
    webhooks: list[dict[str, Any]], managed_by: Mapping[str, str], namespaces: Sequence[str] = ()
) -> list[dict[str, Any]]:
    """The guard's objectSelector (Kopf would also filter requests by the *new* object's labels, so an edit
    that drops the managed-by label would slip past: the guard has no label filter in Kopf, the API server
    sends only objects labelled before or after the change) and each webhook's timeout. An operator that
    watches some namespaces (a shard, the namespaced install) judges only those: the others are another
    operator's, and its ModelTrustPolicies there are not in this one's view of namespace labels. Named
    namespaces are selected here; patterns are judged by the handlers (``literal_namespaces``)."""
    literal = literal_namespaces(namespaces)
    for webhook in webhooks:
        if literal:
            webhook["namespaceSelector"] = {
                "matchExpressions": [
                    {"key": "kubernetes.io/metadata.name", "operator": "In", "values": sorted(literal)}
                ]
            }
        handler_id = str(webhook.get("name", "")).split(".")[0]
        if handler_id.startswith(GUARD_PREFIX) and handler_id.endswith(f"-{SCALE}"):
            # the API server shows a webhook of /scale an autoscaling/v1 Scale: name, uid and replicas, no labels
            # (an objectSelector would never match); the handler reads the target and judges only the operator's
            webhook.pop("objectSelector", None)
            webhook["timeoutSeconds"] = GUARD_TIMEOUT
        elif str(webhook.get("name", "")).startswith(POD_GUARD_PREFIX):
            # a hijacking pod need not say it is managed: every pod with the label the Services select is sent
            webhook["objectSelector"] = {"matchLabels": dict(POD_SELECTOR)}
            webhook["timeoutSeconds"] = GUARD_TIMEOUT
        elif str(webhook.get("name", "")).startswith(GUARD_PREFIX):
            webhook["objectSelector"] = {"matchLabels": dict(managed_by)}
            webhook["timeoutSeconds"] = GUARD_TIMEOUT
        else:
            webhook["timeoutSeconds"] = POLICY_TIMEOUT
    return webhooks


def literal_namespaces(namespaces: Sequence[str]) -> list[str]:
    """The watched namespaces as names a ``namespaceSelector`` can list; empty when all are watched or any is a
    Kopf pattern (``team-a-*``, ``!team-b``: a label selector cannot glob, and ``In ["team-a-*"]`` would match
    no namespace at all, the guard silently off). Then every namespace is sent and the handlers judge only
    those the patterns match (``judged``)."""
    literal = references.select_specific_namespaces(namespaces)
    return sorted(literal) if namespaces and len(literal) == len(set(namespaces)) else []


def judged(namespace: str | None, namespaces: Sequence[str]) -> bool:
    """Whether this operator judges an object of ``namespace``: all namespaces, a cluster-scoped object, or a
    namespace its patterns match (another operator's otherwise; its policies and labels are not in this view)."""
    if not namespaces or not namespace:
        return True
    return any(references.match_namespace(references.NamespaceName(namespace), p) for p in namespaces)


def install(
    name: str, managed_by: Mapping[str, str], keep_on_stop: Callable[[], bool], namespaces: Sequence[str] = ()
) -> None:
    """Replace Kopf's configuration managers (module attributes it reads when it spawns its tasks)."""

    async def mutating(**_: Any) -> None:
        await asyncio.Event().wait()  # no mutating webhooks: nothing to register

    async def validating(*, registry: Any, settings: Any, insights: Any, container: Any) -> None:
        await insights.ready_resources.wait()
        resource = await insights.backbone.wait_for(references.VALIDATING_WEBHOOK)
        handlers = [h for h in registry._webhooks.get_all_handlers() if h.reason == causes.WebhookType.VALIDATING]

        def built(client_config: Any) -> list[dict[str, Any]]:
            webhooks = admission.build_webhooks(
                handlers, resources=insights.webhook_resources, name_suffix=name, client_config=client_config
            )
            return shape(webhooks, managed_by, namespaces)

        async def write(webhooks: list[dict[str, Any]]) -> None:
            patch = patches.Patch({"webhooks": webhooks})
            body, _ = await patching.patch_obj(
                settings=settings, resource=resource, namespace=None, name=name, patch=patch, logger=log
            )
            if body is None:  # absent: the install did not make it (a local run as an admin)
                log.info("creating the ValidatingWebhookConfiguration", extra={"configuration": name})
                with contextlib.suppress(errors.APIConflictError):
                    await creating.create_obj(settings=settings, resource=resource, name=name, logger=log)
                await patching.patch_obj(
                    settings=settings, resource=resource, namespace=None, name=name, patch=patch, logger=log
                )

        changes = container.as_changed().__aiter__()
        pending: asyncio.Future[Any] = asyncio.ensure_future(changes.__anext__())
        latest: Any = None
        try:
            while True:
                done, _ = await asyncio.wait({pending}, timeout=REASSERT_SECONDS)
                if pending in done:
                    latest = pending.result()
                    pending = asyncio.ensure_future(changes.__anext__())
                    log.info("registering the validating webhooks", extra={"configuration": name})
                if latest is not None:
                    try:
                        await write(built(latest))
                    except asyncio.CancelledError:
                        raise
                    except Exception as exc:  # RBAC, a refused patch: the operator goes on (decides at reconcile)
                        log.error(
                            "cannot register the validating webhooks; objects are validated only at reconcile",
                            extra={"configuration": name, "error": f"{type(exc).__name__}: {exc}"[:300]},
                        )
        finally:
            pending.cancel()
            if latest is not None and not keep_on_stop():
                log.info("removing the validating webhooks (the operator stops)", extra={"configuration": name})
                await asyncio.shield(write([]))

    admission.validating_configuration_manager = validating
    admission.mutating_configuration_manager = mutating
    original = getattr(admission, "_openmodel_serve", admission.serve_admission_request)
    admission._openmodel_serve = original  # type: ignore[attr-defined]  # wrapped once, however many installs
    admission.serve_admission_request = _without_memories(original)


class _EphemeralMemos(admission.MemoGetter):
    """Kopf keeps a memory per object uid for every UPDATE and DELETE it admits, freed only by the object's
    watch events, which never reach Kopf for the children and models (kopf_watch routes them): one entry per
    child ever edited, for the life of the process (issue 13's memory budget). No handler here uses a memo."""

    def __init__(self, inner: admission.MemoGetter) -> None:
        self._inner = inner

    async def recall_memo(self, raw_body: Any, *, memobase: Any = None, ephemeral: bool = False) -> Any:
        return await self._inner.recall_memo(raw_body, memobase=memobase, ephemeral=True)


def _without_memories(serve: Callable[..., Any]) -> Callable[..., Any]:
    async def serve_admission_request(request: Any, **kwargs: Any) -> Any:
        kwargs["memories"] = _EphemeralMemos(kwargs["memories"])
        return await serve(request, **kwargs)

    return serve_admission_request
