"""`openmodel run --policy-status only`: a process that writes the ModelTrustPolicies' status and nothing else.

When the models are split across shards by namespace (docs/install.md, "Scaling out"), each shard sees only
the OpenModels of its own namespaces, so none of them can count ``governedModels`` for a policy that governs
namespaces of several shards; and two writers with different counts would overwrite each other. The shards run
with ``--policy-status off`` and this process, cluster-wide, keeps three watch indexes (policies, namespace
labels, and the names of the OpenModels in each namespace) and runs the same status loop as a single operator
does (controller/policy_status.py). It reconciles no model, writes nothing but ``modeltrustpolicies/status``,
and puts no finalizer on anything (indexes and event handlers need none).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

import kopf

from openmodel_operator.api.common import GROUP, VERSION
from openmodel_operator.controller import kopf_readiness
from openmodel_operator.controller.background import stop_tasks
from openmodel_operator.controller.kopf_indexes import store_values
from openmodel_operator.controller.kube import Kube
from openmodel_operator.controller.policy_status import PolicyFacts, PolicyStatusWriter, policy_facts, start_writer
from openmodel_operator.controller.settings import OperatorSettings

log = logging.getLogger(__name__)


def build_policy_status_registry(settings: OperatorSettings, kube_factory: Callable[[], Kube]) -> kopf.OperatorRegistry:
    """A registry that only writes policy status; run it cluster-wide (``clusterwide=True``)."""
    kopf_readiness.install()  # an index over every OpenModel: keep a restart's catch-up linear (see the module)
    registry = kopf.OperatorRegistry()
    writer = PolicyStatusWriter(settings.resync_interval)
    state: dict[str, Any] = {}

    @kopf.on.startup(registry=registry)
    async def startup(settings: kopf.OperatorSettings, **kwargs: Any) -> None:
        # nothing of Kopf's bookkeeping is written by index and event handlers; kept out of annotations anyway
        settings.persistence.diffbase_storage = kopf.StatusDiffBaseStorage(field="status.operator.lastApplied")
        settings.persistence.progress_storage = kopf.StatusProgressStorage(field="status.operator.progress")
        settings.watching.server_timeout = 300
        kube = kube_factory()
        state["kube"] = kube

        async def patch(name: str, status: Mapping[str, Any]) -> bool:
            return bool(await kube.patch_policy_status(name, status))

        def models_in(namespace: str) -> int:
            return len(store_values(kwargs["model_index"], namespace))

        state["task"] = start_writer(writer, kwargs, models_in, patch)
        log.info("writing the status of every ModelTrustPolicy; reconciling no models (policy status: only)")

    @kopf.on.cleanup(registry=registry)
    async def cleanup(**_: Any) -> None:
        await stop_tasks([state.pop("task", None)])
        kube = state.pop("kube", None)
        if kube is not None:
            await kube.close()

    @kopf.index(GROUP, VERSION, "modeltrustpolicies", registry=registry, id="policy_facts_index")
    def policy_facts_index(body: kopf.Body, **_: Any) -> dict[str, PolicyFacts]:
        return {"all": policy_facts(dict(body))}

    @kopf.index("", "v1", "namespaces", registry=registry, id="namespace_index")
    def namespace_index(name: str, labels: kopf.Labels, **_: Any) -> dict[str, dict[str, str]]:
        return {name: dict(labels)}

    @kopf.index(GROUP, VERSION, "openmodels", registry=registry, id="model_index")
    def model_index(namespace: str | None, name: str, **_: Any) -> dict[str | None, str]:
        return {namespace: name}  # the name only: the count is all the status needs

    @kopf.on.event(GROUP, VERSION, "modeltrustpolicies", registry=registry)
    async def policy_event(**_: Any) -> None:  # async: runs in the event loop, where the writer's wake-up lives
        writer.policy_changed()

    # new models and namespace labels reach the counts at the next pass (every resync interval), as in a
    # single operator
    return registry
