"""Watches: a :class:`Watcher` sees the changes of one resource through its namespace/name/label/field
filter, with the real transitions (an object that starts matching arrives as ADDED, one that stops
matching as DELETED); the stream starts from ``resourceVersion`` (or replays the current state as ADDED),
answers "410 Gone" after :meth:`~kube_emulator.KubeEmulator.compact`, and ends on ``timeoutSeconds``.
No bookmarks, no ``sendInitialEvents``, no watch-cache latency: events arrive at once, in order.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import math
from collections.abc import Mapping

import aiohttp.web

from .errors import ApiError, bad_request
from .json_values import JsonDict
from .paths import ApiTarget
from .resources import ResourceDef
from .selectors import Requirement, field_value, parse_field_selector, parse_label_selector
from .state import EmulatorState


@dataclasses.dataclass
class WatchEvent:
    """One committed change of a resource, in the log that watches and paginated lists replay."""
    rv: int
    type: str
    old: JsonDict | None
    new: JsonDict


@dataclasses.dataclass
class Watcher:
    """One watch's filter (lists use it too): which objects it sees and how a change looks to it."""
    rd: ResourceDef  # the requested view (events.k8s.io events are converted at delivery)
    namespace: str | None
    name: str | None
    labels: list[Requirement]
    fields: list[tuple[str, str, str]]
    queue: asyncio.Queue[tuple[str, JsonDict]] = dataclasses.field(default_factory=asyncio.Queue)

    def matches(self, obj: JsonDict | None) -> bool:
        if obj is None:
            return False
        meta = obj.get('metadata') or {}
        if self.namespace is not None and meta.get('namespace') != self.namespace:
            return False
        if self.name is not None and meta.get('name') != self.name:
            return False
        labels = meta.get('labels') or {}
        if not all(req.matches(labels) for req in self.labels):
            return False
        return all((field_value(obj, f) == v) == (op == '=') for f, op, v in self.fields)

    def translate(self, event: WatchEvent) -> tuple[str, JsonDict] | None:
        if event.type == 'ADDED':
            return ('ADDED', event.new) if self.matches(event.new) else None
        if event.type == 'DELETED':
            return ('DELETED', event.new) if self.matches(event.old) else None
        was, now = self.matches(event.old), self.matches(event.new)
        if was and now:
            return 'MODIFIED', event.new
        if now:
            return 'ADDED', event.new
        if was:
            return 'DELETED', event.new
        return None


class WatchMixin(EmulatorState):
    """The ``watch`` verb: the backlog, then live events."""

    __slots__ = ()

    async def _watch(self, raw: aiohttp.web.BaseRequest, rd: ResourceDef, target: ApiTarget,
                     query: Mapping[str, str]) -> aiohttp.web.StreamResponse:
        if query.get('sendInitialEvents'):
            raise ApiError(422, 'Invalid', 'ListOptions.meta.k8s.io "" is invalid: sendInitialEvents: Forbidden: '
                                           'sendInitialEvents is forbidden for watch unless the WatchList feature '
                                           'gate is enabled', {'kind': 'ListOptions', 'group': 'meta.k8s.io'})
        storage = self._storage(rd)
        watcher = Watcher(rd, target.namespace, target.name,
                          parse_label_selector(query.get('labelSelector', '')),
                          parse_field_selector(query.get('fieldSelector', ''), rd))
        since = query.get('resourceVersion', '')
        if since not in ('', '0') and not since.isdigit():
            raise bad_request(f'invalid resource version: {since!r}')
        backlog: list[tuple[str, JsonDict]] = []
        if since in ('', '0'):
            backlog = [('ADDED', o) for o in self._all_live(storage) if watcher.matches(o)]
        elif int(since) < self._compacted_rv:
            backlog = [('ERROR', ApiError(410, 'Expired', f'too old resource version: {since} '
                                                          f'({self._compacted_rv})').status())]
        else:
            for event in self._log[storage.key]:
                if event.rv > int(since) and (translated := watcher.translate(event)) is not None:
                    backlog.append(translated)
        self._watchers[storage.key].append(watcher)  # atomically with the backlog: no awaits in between

        response = aiohttp.web.StreamResponse(status=200, headers={'Content-Type': 'application/json'})
        timeout = float(query['timeoutSeconds']) if query.get('timeoutSeconds') else None
        deadline = asyncio.get_running_loop().time() + timeout if timeout is not None else math.inf
        try:
            await response.prepare(raw)
            for etype, obj in backlog:
                await self._send(response, rd, etype, obj)
                if etype == 'ERROR':
                    return response
            while not self._closing:
                remaining = deadline - asyncio.get_running_loop().time()
                if remaining <= 0 or raw.transport is None or raw.transport.is_closing():
                    break
                try:
                    etype, obj = await asyncio.wait_for(watcher.queue.get(), timeout=min(0.1, remaining))
                except TimeoutError:
                    continue
                await self._send(response, rd, etype, obj)
            await response.write_eof()
        except (ConnectionError, aiohttp.ClientConnectionResetError):
            pass
        finally:
            self._watchers[storage.key].remove(watcher)
        return response

    async def _send(self, response: aiohttp.web.StreamResponse, rd: ResourceDef, etype: str, obj: JsonDict) -> None:
        shown = obj if etype == 'ERROR' else self._present(rd, obj)
        await response.write(json.dumps({'type': etype, 'object': shown}).encode() + b'\n')
