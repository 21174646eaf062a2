"""Storage and reads: objects live in kmock's ``_objects`` (with their history); every write gets the next
global resourceVersion (as etcd's revision) and an entry in the per-resource event log that watches and
paginated lists read. events.k8s.io/v1 Events share the core/v1 storage.
"""

from __future__ import annotations

import base64
import binascii
import bisect
import copy
import json
from collections.abc import Mapping

import kmock

from .errors import ApiError, bad_request
from .events_api import event_from_core
from .json_values import JsonDict, metadata_of
from .resources import ResourceDef
from .selectors import parse_field_selector, parse_label_selector
from .state import EmulatorState
from .watch import Watcher, WatchEvent

LIST_SNAPSHOTS = 64  # paged listings whose continued pages are cut from a snapshot (the oldest is dropped)


class StorageMixin(EmulatorState):
    """Committing states (resourceVersion, event log, watchers), reading, rendering and listing them."""

    __slots__ = ()

    def _storage(self, rd: ResourceDef) -> ResourceDef:
        """events.k8s.io/v1 events live in the same storage as core v1 events (as in the real apiserver)."""
        if rd.group == 'events.k8s.io' and rd.plural == 'events':
            return self._defs[kmock.resource('', 'v1', 'events')]
        return rd

    def _live(self, rd: ResourceDef, namespace: str | None, name: str) -> JsonDict | None:
        key = (rd.key, namespace if rd.namespaced else None, name)
        if key not in self._objects:
            return None
        obj = self._objects[key]
        return None if obj.deleted else obj.raw

    def _all_live(self, rd: ResourceDef) -> list[JsonDict]:
        objects = self._objects
        items = [obj.raw for key in self._keys[rd.key] if key in objects and not (obj := objects[key]).deleted]
        return sorted(items, key=lambda o: (o['metadata'].get('namespace') or '', o['metadata']['name']))

    def _next_rv(self) -> int:
        self._rv += 1
        return self._rv

    def _commit(self, rd: ResourceDef, etype: str, old: JsonDict | None, new: JsonDict | None) -> JsonDict:
        """Store a new state (or a deletion), bump the global resourceVersion, notify the watchers."""
        rv = self._next_rv()
        state = copy.deepcopy(new if new is not None else old)
        assert state is not None
        meta = metadata_of(state)
        meta['resourceVersion'] = str(rv)
        key = (rd.key, meta.get('namespace') if rd.namespaced else None, meta['name'])
        if etype == 'DELETED':
            self._objects[key].delete()
        elif key in self._objects:
            self._objects[key].history.append(state)
        else:
            self._objects[key] = state
        self._keys[rd.key][key] = None  # a deleted object stays in _objects (its history): dropped above when read
        event = WatchEvent(rv, etype, old, state)
        self._log[rd.key].append(event)
        for watcher in list(self._watchers[rd.key]):
            if (translated := watcher.translate(event)) is not None:
                watcher.queue.put_nowait(translated)
        if self._changed is not None:
            self._changed.set()
        self._after_commit(rd, etype, state)
        return state

    def _present(self, rd: ResourceDef, obj: JsonDict, *, in_list: bool = False) -> JsonDict:
        """Render a stored object as the requested API (version) shows it."""
        if rd.group == 'events.k8s.io':
            obj = event_from_core(obj)
        elif obj.get('apiVersion') != rd.api_version or obj.get('kind') != rd.kind:
            obj = {'apiVersion': rd.api_version, 'kind': rd.kind, **{k: v for k, v in obj.items()
                                                                     if k not in ('apiVersion', 'kind')}}
        if in_list and not rd.custom:
            # Typed lists of built-ins carry no apiVersion/kind per item; custom resources do.
            obj = {k: v for k, v in obj.items() if k not in ('apiVersion', 'kind')}
        return obj

    def _read(self, rd: ResourceDef, namespace: str | None, name: str) -> JsonDict:
        obj = self._live(self._storage(rd), namespace, name)
        if obj is None:
            raise rd.not_found(name)
        return self._present(rd, obj)

    def _list_envelope(self, rd: ResourceDef, items: list[JsonDict], rv: int | None = None) -> JsonDict:
        return {'kind': f'{rd.kind}List', 'apiVersion': rd.api_version,
                'metadata': {'resourceVersion': str(rv if rv is not None else self._rv)}, 'items': items}

    def _require_revision(self, rv: int) -> None:
        """A continued listing of a compacted revision is 410 Expired, as on an API server."""
        if rv < self._compacted_rv:
            raise ApiError(410, 'Expired', 'The provided continue parameter is too old to display a consistent '
                                           'list result. You can start a new list without the continue parameter.')

    def _state_at(self, rd: ResourceDef, rv: int) -> list[JsonDict]:
        self._require_revision(rv)
        log = self._log[rd.key]
        if not log or log[-1].rv <= rv:
            return self._all_live(rd)  # nothing changed since: the live objects (a replay per page was quadratic)
        state: dict[tuple[str, str], JsonDict] = {}
        for event in log:
            if event.rv > rv:
                break
            key = (event.new['metadata'].get('namespace') or '', event.new['metadata']['name'])
            if event.type == 'DELETED':
                state.pop(key, None)
            else:
                state[key] = event.new
        return [state[k] for k in sorted(state)]

    def _list(self, rd: ResourceDef, namespace: str | None, query: Mapping[str, str]) -> JsonDict:
        storage = self._storage(rd)
        labels = parse_label_selector(query.get('labelSelector', ''))
        fields = parse_field_selector(query.get('fieldSelector', ''), rd)
        matcher = Watcher(rd, namespace, None, labels, fields)
        token = query.get('continue')
        scope = (storage.key, namespace, query.get('labelSelector', ''), query.get('fieldSelector', ''))
        if token:
            try:
                decoded = json.loads(base64.urlsafe_b64decode(token.encode()))
                list_rv, start = int(decoded['rv']), tuple(decoded['start'])
            except (ValueError, KeyError, TypeError, binascii.Error):
                raise bad_request('continue key is not valid') from None
            self._require_revision(list_rv)
            snapshot = self._list_snapshots.get((*scope, list_rv))
            if snapshot is not None:
                keys, matched = snapshot
                items = matched[bisect.bisect_right(keys, start):]
            else:
                items = [o for o in self._state_at(storage, list_rv)
                         if (o['metadata'].get('namespace') or '', o['metadata']['name']) > start]
                items = [o for o in items if matcher.matches(o)]
        else:
            list_rv, items = self._rv, [o for o in self._all_live(storage) if matcher.matches(o)]
        try:
            limit = int(query.get('limit') or 0)
        except ValueError:
            raise bad_request(f'invalid limit: {query.get("limit")!r}') from None
        envelope = self._list_envelope(rd, [], list_rv)
        if limit and len(items) > limit:
            if not token:  # the continued pages are cut from this (stored states are never changed in place)
                keys = [(o['metadata'].get('namespace') or '', o['metadata']['name']) for o in items]
                self._list_snapshots[(*scope, list_rv)] = (keys, items)
                while len(self._list_snapshots) > LIST_SNAPSHOTS:
                    self._list_snapshots.popitem(last=False)
            last = items[limit - 1]['metadata']
            envelope['metadata']['continue'] = base64.urlsafe_b64encode(json.dumps(
                {'rv': list_rv, 'start': [last.get('namespace') or '', last['name']]}).encode()).decode()
            envelope['metadata']['remainingItemCount'] = len(items) - limit
            items = items[:limit]
        envelope['items'] = [self._present(rd, o, in_list=True) for o in items]
        return envelope
