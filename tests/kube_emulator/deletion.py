"""Deletion: preconditions, deletionTimestamp and finalizers, the GC finalizers the apiserver adds
(``orphan``, ``foregroundDeletion``; batch/v1 Jobs default to orphan) that only the absent garbage
collector would remove, graceful deletion of scheduled pods, and what DELETE answers.
"""

from __future__ import annotations

import copy
import math
from typing import Any

import aiohttp.web

from .json_values import JsonDict, dig, json_equal, timestamp
from .resources import ResourceDef
from .state import EmulatorState
from .webhooks import capturing, record

# Resources whose DELETE returns the deleted object instead of a Status (ReturnDeletedObject).
_RETURNS_DELETED_OBJECT = {('', 'pods'), ('', 'namespaces')}


class DeleteMixin(EmulatorState):
    """Deleting objects."""

    __slots__ = ()

    def _delete_options(self, raw: aiohttp.web.BaseRequest, text: str) -> JsonDict:
        options: JsonDict = {}
        if text.strip():
            options = self._body(raw, text) or {}
        for key in ('propagationPolicy', 'gracePeriodSeconds', 'orphanDependents'):
            if key in raw.query:
                value: Any = raw.query[key]
                options[key] = int(value) if key == 'gracePeriodSeconds' else (
                    value == 'true' if key == 'orphanDependents' else value)
        return options

    def _delete(self, rd: ResourceDef, namespace: str | None, name: str, options: JsonDict, *,
                dry_run: bool = False) -> tuple[JsonDict, int]:
        storage = self._storage(rd)
        old = self._live(storage, namespace if rd.namespaced else None, name)
        if old is None:
            raise rd.not_found(name)
        meta = old['metadata']
        preconditions = options.get('preconditions') or {}
        if preconditions.get('uid') and preconditions['uid'] != meta.get('uid'):
            raise rd.conflict(name, f'Precondition failed: UID in precondition: {preconditions["uid"]}, UID in '
                                    f'object meta: {meta.get("uid")}')
        if preconditions.get('resourceVersion') and preconditions['resourceVersion'] != meta['resourceVersion']:
            raise rd.conflict(name, f'Precondition failed: ResourceVersion in precondition: '
                                    f'{preconditions["resourceVersion"]}, ResourceVersion in object meta: '
                                    f'{meta["resourceVersion"]}')
        record('DELETE', rd, namespace if rd.namespaced else None, name, old, None)
        dry_run = dry_run or capturing()
        new = copy.deepcopy(old)
        new_meta = new['metadata']
        new_meta['finalizers'] = self._gc_finalizers(storage, old, options)
        if not new_meta['finalizers']:
            del new_meta['finalizers']
        graceful = storage.plural == 'pods' and not storage.group and dig(old, ('spec', 'nodeName'))
        if graceful and new_meta.get('deletionTimestamp') and \
                options.get('gracePeriodSeconds', math.inf) < new_meta.get('deletionGracePeriodSeconds', 0):
            new_meta['deletionTimestamp'] = timestamp(options['gracePeriodSeconds'])  # a delete may only shorten it
            new_meta['deletionGracePeriodSeconds'] = options['gracePeriodSeconds']
        if not new_meta.get('deletionTimestamp'):
            grace = 0
            if graceful:
                grace = options.get('gracePeriodSeconds', dig(old, ('spec', 'terminationGracePeriodSeconds')) or 30)
            new_meta['deletionTimestamp'] = timestamp(grace)
            new_meta['deletionGracePeriodSeconds'] = grace
            if new_meta.get('generation'):
                new_meta['generation'] += 1
            if storage.plural == 'namespaces' and not storage.group:
                new.setdefault('status', {})['phase'] = 'Terminating'
        if self._ready_to_delete(storage, new):
            if not dry_run:
                self._commit(storage, 'DELETED', old, old)
            if (storage.group, storage.plural) in _RETURNS_DELETED_OBJECT:
                return self._present(rd, old), 200
            return {'kind': 'Status', 'apiVersion': 'v1', 'metadata': {}, 'status': 'Success',
                    'details': storage.details(name, uid=meta['uid'])}, 200
        if json_equal(old, new) or dry_run:
            return self._present(rd, new if dry_run else old), 200
        stored = self._commit(storage, 'MODIFIED', old, new)
        return self._present(rd, stored), 200

    @staticmethod
    def _gc_finalizers(rd: ResourceDef, obj: JsonDict, options: JsonDict) -> list[str]:
        """The apiserver adds orphan/foregroundDeletion finalizers; only the absent GC would remove them."""
        finalizers = list(obj['metadata'].get('finalizers') or [])
        policy = options.get('propagationPolicy')
        if policy is None and options.get('orphanDependents') is not None:
            policy = 'Orphan' if options['orphanDependents'] else 'Background'
        if policy is None:
            if 'orphan' in finalizers or 'foregroundDeletion' in finalizers:
                return finalizers
            policy = 'Orphan' if (rd.group, rd.version, rd.plural) == ('batch', 'v1', 'jobs') else 'Background'
        kept = [f for f in finalizers if f not in ('orphan', 'foregroundDeletion')]
        if policy == 'Orphan':
            kept.append('orphan')
        elif policy == 'Foreground':
            kept.append('foregroundDeletion')
        return kept

    @staticmethod
    def _ready_to_delete(rd: ResourceDef, obj: JsonDict) -> bool:
        meta = obj['metadata']
        if not meta.get('deletionTimestamp') or meta.get('finalizers'):
            return False
        if rd.plural == 'namespaces' and not rd.group and dig(obj, ('spec', 'finalizers')):
            return False
        return not (rd.plural == 'pods' and not rd.group and dig(obj, ('spec', 'nodeName'))
                    and meta.get('deletionGracePeriodSeconds'))
