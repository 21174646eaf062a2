"""The Kubernetes adapter: the few API calls the reconciler makes, through lightkube (async).

Every write of a child is a server-side apply under one field manager, so re-applying is a no-op
and a human's edit of a field the operator owns is taken back. Reads of Secrets and ConfigMaps are
for the trust stage only (token, countersignature bundle, policy keys); their content is never logged.
"""

from __future__ import annotations

import asyncio
import base64
import logging
from collections.abc import Mapping
from typing import Any, cast

import httpx2
from lightkube import ApiError, AsyncClient, KubeConfig, codecs
from lightkube.config.client_adapter import verify_cluster
from lightkube.config.models import Cluster, User
from lightkube.core.exceptions import ConfigError
from lightkube.generic_resource import create_global_resource, create_namespaced_resource
from lightkube.resources.apps_v1 import Deployment, ReplicaSet
from lightkube.resources.batch_v1 import Job
from lightkube.resources.core_v1 import ConfigMap, Event, Namespace, PersistentVolumeClaim, Secret, Service
from lightkube.resources.networking_v1 import NetworkPolicy
from lightkube.types import CascadeType, PatchType

from openmodel_operator.api.common import GROUP, VERSION
from openmodel_operator.controller.api_transport import AiohttpTransport
from openmodel_operator.evidence.text import printable

FIELD_MANAGER = "openmodel-operator"
MAX_CONCURRENT_WRITES = 32  # below lightkube's pool of connections, with room for reads and Kopf's own calls
log = logging.getLogger(__name__)

OpenModelResource = create_namespaced_resource(GROUP, VERSION, "OpenModel", "openmodels")
PolicyResource = create_global_resource(GROUP, VERSION, "ModelTrustPolicy", "modeltrustpolicies")

KINDS: dict[str, Any] = {
    "ConfigMap": ConfigMap,
    "PersistentVolumeClaim": PersistentVolumeClaim,
    "Job": Job,
    "Deployment": Deployment,
    "Service": Service,
    "NetworkPolicy": NetworkPolicy,
}


class KubeError(RuntimeError):
    """An API call failed; ``status`` is the HTTP code (404, 409, ...)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def client_for(server: str | None = None) -> AsyncClient:
    """In-cluster or kubeconfig credentials; an explicit ``server`` URL (tests, emulators) needs none.

    The TLS context is lightkube's own (the cluster's CA, a client certificate); aiohttp carries the requests.
    """
    # without a server: what lightkube reads by default, the service account, else KUBECONFIG
    config = KubeConfig.from_one(cluster=Cluster(server=server), user=User()) if server else KubeConfig.from_env()
    single = config.get()
    if single is None:
        raise ConfigError("no Kubernetes API configured: run in a pod with a service account, or set KUBECONFIG")
    context = verify_cluster(single.cluster, single.user or User(), single.abs_file)
    return AsyncClient(config=config, field_manager=FIELD_MANAGER, transport=AiohttpTransport(context))


def _error(exc: httpx2.HTTPStatusError) -> KubeError:
    """lightkube raises ApiError for a Status answer and plain HTTPStatusError for any other error body."""
    if isinstance(exc, ApiError):
        return KubeError(exc.status.code or 500, exc.status.message or str(exc))
    return KubeError(exc.response.status_code, f"HTTP {exc.response.status_code} from {exc.request.url.path}")


def _code(exc: httpx2.HTTPStatusError) -> int:
    return _error(exc).status


class Kube:
    """The operator's API calls; small so that tests can see exactly what is sent."""

    def __init__(self, client: AsyncClient, max_writes: int = MAX_CONCURRENT_WRITES) -> None:
        self.client = client
        # many passes and the Event poster writing at once would exhaust the client's connection pool (PoolTimeout)
        self._writes = asyncio.Semaphore(max_writes)

    async def apply(self, obj: Mapping[str, Any]) -> None:
        """Server-side apply one child object (forced: the operator owns these fields)."""
        meta = obj["metadata"]
        try:
            async with self._writes:
                await self.client.patch(
                    KINDS[obj["kind"]],
                    meta["name"],
                    dict(obj),
                    namespace=meta.get("namespace"),
                    patch_type=PatchType.APPLY,
                    field_manager=FIELD_MANAGER,
                    force=True,
                )
        except httpx2.HTTPStatusError as exc:
            raise _error(exc) from None

    async def create(self, obj: Mapping[str, Any]) -> str | None:
        """Create a child that must not exist yet (POST): the new object's uid, None when the name is taken (409).

        For the kinds the operator never updates (a Job, a claim): a create cannot take over an object
        somebody else made, as a server-side apply would. The uid tells the operator's own Jobs from others.
        """
        resource: Any = codecs.from_dict(dict(obj))  # the typed object of a built-in kind
        try:
            async with self._writes:
                created: Any = await self.client.create(resource, field_manager=FIELD_MANAGER)
        except httpx2.HTTPStatusError as exc:
            if _code(exc) == 409:
                return None
            raise _error(exc) from None
        return str(getattr(getattr(created, "metadata", None), "uid", None) or "")

    async def create_event(self, event: Mapping[str, Any]) -> bool:
        """Create one core/v1 Event; False when its name is taken (409), so the caller picks another."""
        try:
            async with self._writes:
                await self.client.create(cast(Event, Event.from_dict(dict(event))))
        except httpx2.HTTPStatusError as exc:
            if _code(exc) == 409:
                return False
            raise _error(exc) from None
        return True

    async def scale_to_zero(self, namespace: str, name: str) -> None:
        """Stop serving without deleting the Deployment (kept for forensics)."""
        try:
            async with self._writes:
                await self.client.patch(
                    Deployment, name, {"spec": {"replicas": 0}}, namespace=namespace, patch_type=PatchType.MERGE
                )
        except httpx2.HTTPStatusError as exc:
            if _code(exc) != 404:
                raise _error(exc) from None

    async def patch_status(self, namespace: str, name: str, status: Mapping[str, Any]) -> str | None:
        """Merge-patch the OpenModel's status subresource (None values remove fields); returns the new
        resourceVersion."""
        try:
            async with self._writes:
                updated = await self.client.patch(
                    OpenModelResource.Status,
                    name,
                    {"status": dict(status)},
                    namespace=namespace,
                    patch_type=PatchType.MERGE,
                )
        except httpx2.HTTPStatusError as exc:
            raise _error(exc) from None
        version = updated.metadata.resourceVersion if updated.metadata else None
        return str(version) if version is not None else None

    async def set_finalizers(
        self, namespace: str, name: str, resource_version: str, finalizers: list[str]
    ) -> str | bool | None:
        """Set an OpenModel's finalizers, only if it is still at ``resource_version`` (a merge patch that
        carries the resourceVersion is a precondition), so another controller's finalizer added meanwhile is
        never dropped. Set: the new resourceVersion (True when the answer has none); False: the model changed
        meanwhile (409); None: it is gone (404)."""
        if not resource_version:
            raise ValueError("set_finalizers needs the resourceVersion it read: without it the patch is unconditional")
        patch = {"metadata": {"finalizers": finalizers, "resourceVersion": resource_version}}
        try:
            async with self._writes:
                updated = await self.client.patch(
                    OpenModelResource, name, patch, namespace=namespace, patch_type=PatchType.MERGE
                )
        except httpx2.HTTPStatusError as exc:
            code = _code(exc)
            if code in (404, 409):
                return None if code == 404 else False
            raise _error(exc) from None
        version = updated.metadata.resourceVersion if updated.metadata else None
        return str(version) if version else True

    async def patch_policy_status(self, name: str, status: Mapping[str, Any]) -> bool:
        """Merge-patch a ModelTrustPolicy's status subresource; False when the policy is gone (404)."""
        try:
            async with self._writes:
                await self.client.patch(
                    PolicyResource.Status, name, {"status": dict(status)}, patch_type=PatchType.MERGE
                )
        except httpx2.HTTPStatusError as exc:
            if _code(exc) == 404:
                return False
            raise _error(exc) from None
        return True

    async def delete(self, kind: str, namespace: str, name: str) -> bool:
        """Delete a child; False when it was already gone. Never waits for the child's own finalizers."""
        try:
            # Background propagation: a Job's pods go too, and nothing waits on the child's own finalizers
            async with self._writes:
                await self.client.delete(KINDS[kind], name, namespace=namespace, cascade=CascadeType.BACKGROUND)
        except httpx2.HTTPStatusError as exc:
            if _code(exc) == 404:
                return False
            raise _error(exc) from None
        return True

    async def get(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        """One object of a child kind, None when it does not exist."""
        try:
            obj = await self.client.get(KINDS[kind], name, namespace=namespace)
        except httpx2.HTTPStatusError as exc:
            if _code(exc) == 404:
                return None
            raise _error(exc) from None
        return dict(obj.to_dict())

    async def replicaset(self, namespace: str, name: str) -> dict[str, Any] | None:
        """A ReplicaSet, read (never written) by the serving pods' guard to tell whose a new pod is."""
        try:
            obj = await self.client.get(ReplicaSet, name, namespace=namespace)
        except httpx2.HTTPStatusError as exc:
            if _code(exc) == 404:
                return None
            raise _error(exc) from None
        return dict(obj.to_dict())

    async def reachable(self) -> str | None:
        """None when the API server answers (any HTTP status: a 403 or a missing CRD is an answer), else why not.

        One list of at most one ModelTrustPolicy: cluster-scoped and granted to the operator."""
        try:
            async for _ in self.client.list(PolicyResource, chunk_size=1):
                break
        except httpx2.HTTPStatusError:
            return None
        except (httpx2.TransportError, OSError) as exc:
            return f"{type(exc).__name__}: {printable(str(exc), 200)}"
        return None

    async def list_children(
        self, kind: str, namespace: str, owner: str, labels: Mapping[str, str] | None = None
    ) -> list[dict[str, Any]]:
        """Children of one OpenModel by its owner label value (and ``labels``): on deletion, when the watch index
        may lag, and for a pass before the start-up listing ended. managedFields are dropped, as the watch does."""
        selector: dict[str, Any] = {**(labels or {}), "openmodel.io/name": owner}
        try:
            items = [obj.to_dict() async for obj in self.client.list(KINDS[kind], namespace=namespace, labels=selector)]
        except httpx2.HTTPStatusError as exc:
            raise _error(exc) from None
        for item in items:
            (item.get("metadata") or {}).pop("managedFields", None)
        return items

    async def list_policies(self) -> list[dict[str, Any]]:
        """Every ModelTrustPolicy as stored: what the policy index holds once the start-up listing ended."""
        try:
            found: Any = [obj async for obj in self.client.list(PolicyResource)]  # generic: typed loosely
        except httpx2.HTTPStatusError as exc:
            raise _error(exc) from None
        return [cast(dict[str, Any], obj.to_dict()) for obj in found]

    async def namespace_labels(self, name: str) -> dict[str, str] | None:
        """One namespace's labels (None: it does not exist), by a list with a field selector: the operator's
        grant on namespaces is list and watch, not get."""
        try:
            found = [obj async for obj in self.client.list(Namespace, fields={"metadata.name": name})]
        except httpx2.HTTPStatusError as exc:
            raise _error(exc) from None
        if not found:
            return None
        meta = found[0].metadata
        return dict((meta.labels if meta is not None else None) or {})

    async def create_secret(self, obj: Mapping[str, Any]) -> bool:
        """Create the generated API key Secret (POST); False when the name is taken (409). Secrets are handled
        by name only: never listed, watched or patched."""
        try:
            async with self._writes:
                await self.client.create(cast(Secret, Secret.from_dict(dict(obj))), field_manager=FIELD_MANAGER)
        except httpx2.HTTPStatusError as exc:
            if _code(exc) == 409:
                return False
            raise _error(exc) from None
        return True

    async def secret_metadata(self, namespace: str, name: str) -> dict[str, Any] | None:
        """A Secret's metadata only (its data is dropped at once: it is never needed here), None when missing."""
        try:
            secret = await self.client.get(Secret, name, namespace=namespace)
        except httpx2.HTTPStatusError as exc:
            if _code(exc) == 404:
                return None
            raise _error(exc) from None
        return dict(secret.metadata.to_dict()) if secret.metadata is not None else {}

    async def delete_secret(self, namespace: str, name: str) -> bool:
        """Delete the generated API key Secret; False when it was already gone."""
        try:
            async with self._writes:
                await self.client.delete(Secret, name, namespace=namespace)
        except httpx2.HTTPStatusError as exc:
            if _code(exc) == 404:
                return False
            raise _error(exc) from None
        return True

    async def read_secret_key(self, namespace: str, name: str, key: str) -> str:
        """One key of a Secret, decoded; raises KubeError(404) naming what is missing (never the value)."""
        try:
            secret = await self.client.get(Secret, name, namespace=namespace)
        except httpx2.HTTPStatusError as exc:
            raise _error(exc) from None
        data = secret.data or {}
        if key not in data:
            raise KubeError(404, f"Secret {namespace}/{name} has no key {key!r}")
        return base64.b64decode(data[key]).decode().strip()

    async def read_configmap_key(self, namespace: str, name: str, key: str) -> bytes:
        """One key of a ConfigMap (data or binaryData)."""
        try:
            cm = await self.client.get(ConfigMap, name, namespace=namespace)
        except httpx2.HTTPStatusError as exc:
            raise _error(exc) from None
        if cm.data and key in cm.data:
            return str(cm.data[key]).encode()
        if cm.binaryData and key in cm.binaryData:
            return bytes(base64.b64decode(cm.binaryData[key]))
        raise KubeError(404, f"ConfigMap {namespace}/{name} has no key {key!r}")

    async def close(self) -> None:
        await self.client.close()
