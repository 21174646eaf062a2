"""The test-facing API: synchronous reads and writes of the same in-memory state the HTTP API serves,
request counters, conflict injection, compaction, and ``wait_for`` (re-checks a predicate on every change).
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import copy
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import aiohttp.web

from .json_values import JsonDict, dig
from .patches import merge_patch
from .state import EmulatorState


class DirectApiMixin(EmulatorState):
    """What tests call directly (no HTTP)."""

    __slots__ = ()

    @property
    def base_url(self) -> str:
        return str(self.url).rstrip('/')

    @property
    def http(self) -> aiohttp.ClientSession:
        """An aiohttp session bound to the emulator (relative URLs work): for tests that speak HTTP."""
        return self.servers[0].client

    @property
    def resource_version(self) -> int:
        """The current global resourceVersion (as etcd's revision)."""
        return self._rv

    @property
    def requests_total(self) -> int:
        return sum(v for k, v in self.request_counts.items() if k != 'discovery')

    def reset_counters(self) -> None:
        """Counters, the request log and kmock's request history start again (kmock scans that history for
        every discovery request: after a benchmark's 40,000 requests, each took tens of milliseconds)."""
        self.request_counts.clear()
        self.request_log.clear()
        self._requests.clear()

    def get(self, resource: str, namespace: str | None, name: str) -> JsonDict | None:  # type: ignore[override]
        """The current state of an object as the API would return it, or None if absent."""
        rd = self._def(resource)
        obj = self._live(self._storage(rd), namespace if rd.namespaced else None, name)
        return None if obj is None else copy.deepcopy(self._present(rd, obj))

    def list(self, resource: str, namespace: str | None = None, *, labels: str | Mapping[str, str] = '',
             fields: str = '') -> list[JsonDict]:
        """Objects of a resource (all namespaces if None), optionally by a label/field selector."""
        rd = self._def(resource)
        selector = labels if isinstance(labels, str) else ','.join(f'{k}={v}' for k, v in labels.items())
        result = self._list(rd, namespace, {'labelSelector': selector, 'fieldSelector': fields})
        return [copy.deepcopy(self._present(rd, o)) for o in result['items']]

    def objects_of(self, kind: str) -> builtins.list[JsonDict]:
        """All live objects of a kind (``'OpenModel'``, ``'ConfigMap'``, ``'openmodels'``...)."""
        return self.list(kind)

    def create_object(self, body: JsonDict, *, namespace: str | None = None, manager: str = 'test') -> JsonDict:
        """Create an object through the same admission/validation as the HTTP API."""
        rd = self._def_for_body(body)
        return copy.deepcopy(self._create(rd, namespace or dig(body, ('metadata', 'namespace')), body,
                                          manager=manager))

    def create_namespace(self, name: str) -> JsonDict:
        return self._create('v1/namespaces', None, {'metadata': {'name': name}}, manager='kube-apiserver')

    def patch_object(self, resource: str, namespace: str | None, name: str, patch: JsonDict, *,
                     subresource: str | None = None, manager: str = 'test') -> JsonDict:
        """Merge-patch an object (or its status), as another client of the API would."""
        rd = self._def(resource)
        current = self._live(self._storage(rd), namespace if rd.namespaced else None, name)
        if current is None:
            raise rd.not_found(name)
        patched = merge_patch(self._present(rd, current), patch)
        obj, _ = self._write_ex(rd, namespace, name, patched, manager=manager, subresource=subresource, put=False)
        return copy.deepcopy(obj)

    def patch_status(self, resource: str, namespace: str | None, name: str, status: JsonDict, *,
                     manager: str = 'kube-controller-manager') -> JsonDict:
        """Merge-patch ``.status`` as a controller/kubelet would (e.g. Job completion, Pod phase)."""
        rd = self._def(resource)
        subresource = 'status' if rd.has_status else None
        return self.patch_object(resource, namespace, name, {'status': status}, subresource=subresource,
                                 manager=manager)

    def delete_object(self, resource: str, namespace: str | None, name: str, *,
                      propagation: str | None = None) -> JsonDict | None:
        """Delete as a client would; returns the remaining object (finalizers pending) or None if gone."""
        rd = self._def(resource)
        self._delete(rd, namespace, name, {'propagationPolicy': propagation} if propagation else {})
        return self.get(resource, namespace, name)

    def events_for(self, name: str, *, namespace: str | None = None,
                   kind: str | None = None) -> builtins.list[JsonDict]:
        """Recorded Events (from either events API) about an object, oldest first, in the core/v1 shape."""
        result = []
        for event in self._all_live(self._def('v1/events')):
            involved = event.get('involvedObject') or {}
            if involved.get('name') != name:
                continue
            if namespace is not None and involved.get('namespace') not in (namespace, None):
                continue
            if kind is not None and involved.get('kind') != kind:
                continue
            result.append(copy.deepcopy(event))
        return sorted(result, key=lambda e: int(e['metadata']['resourceVersion']))

    def inject_conflict(self, resource: str, namespace: str | None, name: str, *, times: int = 1,
                        verbs: Iterable[str] = ('update', 'patch', 'delete')) -> None:
        """Answer the next ``times`` writes to this object with 409 Conflict (to prove retry logic)."""
        rd = self._storage(self._def(resource))
        self._conflicts[(rd.key, namespace if rd.namespaced else None, name)] = [times, set(verbs)]

    def compact(self) -> None:
        """Forget the watch history, as etcd compaction does: older resourceVersions get "410 Gone"."""
        self._compacted_rv = self._rv + 1
        for log in self._log.values():
            log.clear()

    async def wait_for(
        self, predicate: Callable[[], Any], timeout: float = 5.0, describe: Callable[[], str] | None = None
    ) -> Any:
        """Re-check ``predicate`` after every change of the state until it is truthy; return its value.

        ``describe`` tells, on a timeout, what the state was instead: a CI log then says why, not only that.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not (result := predicate()):
            remaining = deadline - loop.time()
            if remaining <= 0:
                found = f'; found {describe()}' if describe is not None else ''
                raise TimeoutError(f'the condition was not met in {timeout}s{found}')
            self._changed = changed = self._changed or asyncio.Event()
            changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(changed.wait(), timeout=min(remaining, 0.5))
        return result

    def close(self) -> None:
        """End all watch streams now (the fixture calls it before the server stops)."""
        self._closing = True
