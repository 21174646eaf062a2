"""Create and update (PUT, and the common path of every PATCH flavour and of apply): server-owned metadata
(uid, creationTimestamp, resourceVersion, generation), generateName, optimistic concurrency, the status
subresource, no new finalizers while deleting, managedFields, and no-op writes that change nothing.
"""

from __future__ import annotations

import copy
import json
import random
import uuid
from typing import Any

from .errors import FieldError, bad_request
from .events_api import event_to_core
from .json_values import FieldPath, JsonDict, dig, json_equal, metadata_of, timestamp
from .managed_fields import FieldManager, field_leaves, update_managers
from .metadata import SYSTEM_META
from .resources import ResourceDef
from .state import EmulatorState
from .webhooks import capturing, record, scale_of

_GENERATE_CHARS = 'bcdfghjklmnpqrstvwxz2456789'


class WriteMixin(EmulatorState):
    """Creating and updating objects."""

    __slots__ = ()

    def _create(self, resource: str | ResourceDef, namespace: str | None, body: JsonDict, *,
                manager: str = 'test') -> JsonDict:
        obj, _ = self._create_ex(self._def(resource), namespace, body, manager=manager)
        return obj

    def _create_ex(self, rd: ResourceDef, namespace: str | None, body: Any, *, manager: str,
                   dry_run: bool = False, validation: str = 'Warn', operation: str = 'Update',
                   apply_paths: set[FieldPath] | None = None) -> tuple[JsonDict, list[str]]:
        if not isinstance(body, dict):
            raise bad_request('the body of the request must be a JSON object')
        obj = copy.deepcopy(body)
        self._check_type_meta(rd, obj)
        if rd.group == 'events.k8s.io':
            obj = event_to_core(obj)
        storage = self._storage(rd)
        obj['apiVersion'], obj['kind'] = storage.api_version, storage.kind
        meta = metadata_of(obj)
        if meta.get('resourceVersion'):
            raise bad_request('resourceVersion should not be set on objects to be created')
        if rd.namespaced:
            if meta.get('namespace') and namespace and meta['namespace'] != namespace:
                raise bad_request('the namespace of the provided object does not match the namespace sent on '
                                  'the request')
            meta['namespace'] = namespace or meta.get('namespace')
        else:
            meta.pop('namespace', None)
        if not meta.get('name') and meta.get('generateName'):
            meta['name'] = meta['generateName'] + ''.join(random.choices(_GENERATE_CHARS, k=5))
        name = meta.get('name') or ''
        if rd.namespaced:
            self._admit_namespace(rd, meta['namespace'], name)
        for key in SYSTEM_META:
            meta.pop(key, None)
        meta['uid'] = str(uuid.uuid4())
        meta['creationTimestamp'] = timestamp()
        if rd.generation_mode:
            meta['generation'] = 1
        if storage.has_status:
            obj.pop('status', None)  # create cannot set status when it is a subresource
        warnings = self._normalize(rd, storage, obj, None, validation=validation)
        meta = metadata_of(obj)  # normalization may have rebuilt the metadata
        if self._live(storage, meta.get('namespace'), name) is not None:
            raise rd.already_exists(name)
        scope = 'all' if not storage.has_status else 'main'
        paths = apply_paths if apply_paths is not None else set(field_leaves(obj, scope))
        meta['managedFields'] = [FieldManager(manager, operation, '', storage.api_version, timestamp(), paths).render()]
        record('CREATE', rd, meta.get('namespace'), name, None, obj)
        if dry_run or capturing():
            return obj, warnings
        return self._commit(storage, 'ADDED', None, obj), warnings

    def _check_type_meta(self, rd: ResourceDef, obj: JsonDict) -> None:
        if obj.get('apiVersion') not in (None, rd.api_version):
            raise bad_request(f'the API version in the data ({obj.get("apiVersion")}) does not match the expected '
                              f'API version ({rd.api_version})')
        if obj.get('kind') not in (None, rd.kind):
            raise bad_request(f'the kind in the data ({obj.get("kind")}) does not match the expected kind '
                              f'({rd.kind})')

    def _write(self, resource: str | ResourceDef, namespace: str | None, name: str, body: JsonDict, *,
               manager: str = 'test', subresource: str | None = None) -> JsonDict:
        obj, _ = self._write_ex(self._def(resource), namespace, name, body, manager=manager,
                                subresource=subresource, put=True)
        return obj

    def _write_ex(self, rd: ResourceDef, namespace: str | None, name: str, body: Any, *, manager: str,
                  subresource: str | None, put: bool, dry_run: bool = False, validation: str = 'Warn',
                  operation: str = 'Update', apply_paths: set[FieldPath] | None = None,
                  forced: set[FieldPath] | None = None) -> tuple[JsonDict, list[str]]:
        """The common update path of PUT, every PATCH flavour and apply: the candidate is a full object."""
        if not isinstance(body, dict):
            raise bad_request('the body of the request must be a JSON object')
        storage = self._storage(rd)
        old = self._live(storage, namespace if rd.namespaced else None, name)
        if old is None:
            raise rd.not_found(name)
        new = copy.deepcopy(body)
        self._check_type_meta(rd, new)
        if rd.group == 'events.k8s.io':
            new = event_to_core(new)
        new['apiVersion'], new['kind'] = storage.api_version, storage.kind
        meta = metadata_of(new)
        old_meta = old['metadata']
        if meta.get('name') not in (None, name):
            raise bad_request(f'the name of the object ({meta.get("name")}) does not match the name on the URL '
                              f'({name})')
        if rd.namespaced and meta.get('namespace') not in (None, '', namespace):
            raise bad_request('the namespace of the provided object does not match the namespace sent on the '
                              'request')
        sent_rv = meta.get('resourceVersion')
        if sent_rv and sent_rv != old_meta['resourceVersion']:
            raise rd.conflict(name)
        if put and not sent_rv and rd.custom:
            raise rd.invalid(name, [FieldError('metadata.resourceVersion', 'Invalid',
                                               'must be specified for an update', 0)])
        if meta.get('uid') and meta['uid'] != old_meta['uid']:
            raise rd.invalid(name, [FieldError('metadata.uid', 'Invalid', 'field is immutable', meta['uid'])])

        if subresource == 'status':
            status = new.get('status')
            new = copy.deepcopy(old)
            if status is None:
                new.pop('status', None)
            else:
                new['status'] = status
        elif subresource == 'ephemeralcontainers':  # pods (kubectl debug): only spec.ephemeralContainers
            added = dig(new, ('spec', 'ephemeralContainers')) or []
            new = copy.deepcopy(old)
            new.setdefault('spec', {})['ephemeralContainers'] = added
        elif subresource == 'scale':  # deployments, replicasets (kubectl scale, an HPA): only spec.replicas
            replicas = dig(new, ('spec', 'replicas'))
            new = copy.deepcopy(old)
            new.setdefault('spec', {})['replicas'] = replicas
        elif subresource == 'finalize':  # namespaces: only spec.finalizers may change here
            finalizers = dig(new, ('spec', 'finalizers')) or []
            new = copy.deepcopy(old)
            new.setdefault('spec', {})['finalizers'] = finalizers
        else:
            if storage.has_status:
                if 'status' in old:
                    new['status'] = copy.deepcopy(old['status'])
                else:
                    new.pop('status', None)
            # System fields are owned by the server.
            for key in SYSTEM_META:
                if key in old_meta:
                    meta[key] = copy.deepcopy(old_meta[key])
                else:
                    meta.pop(key, None)
            meta['name'] = name
            if rd.namespaced:
                meta['namespace'] = namespace
            if old_meta.get('deletionTimestamp'):
                added = set(meta.get('finalizers') or []) - set(old_meta.get('finalizers') or [])
                if added:
                    raise rd.invalid(name, [FieldError('metadata.finalizers', 'Forbidden',
                                                       f'no new finalizers can be added if the object is being '
                                                       f'deleted, found new finalizers {json.dumps(sorted(added))}')])
        meta = metadata_of(new)
        meta['resourceVersion'] = old_meta['resourceVersion']
        warnings = self._normalize(rd, storage, new, old, validation=validation, subresource=subresource)
        meta = metadata_of(new)  # normalization may have rebuilt the metadata

        # Generation: spec changes for built-ins that track it, any non-metadata(/status) change for CRs.
        mode = storage.generation_mode
        if mode and old_meta.get('generation'):
            def content(o: JsonDict) -> JsonDict:
                drop = {'metadata', 'apiVersion', 'kind'} | ({'status'} if mode == 'spec' or storage.has_status
                                                            else set())
                kept = {k: v for k, v in o.items() if k not in drop}
                if mode == 'spec':
                    kept = {'spec': kept.get('spec')}
                    if storage.group == 'apps' and storage.plural == 'deployments':
                        kept['annotations'] = (o.get('metadata') or {}).get('annotations')
                return kept
            if not json_equal(content(old), content(new)):
                meta['generation'] = old_meta['generation'] + 1

        update_managers(storage, old, new, manager, operation, subresource or '', apply_paths, forced)
        seen = (scale_of(old), scale_of(new)) if subresource == 'scale' else (old, new)
        record('UPDATE', rd, namespace if rd.namespaced else None, name, *seen, subresource)
        if json_equal(old, new):
            return old, warnings  # a no-op: no write, no new resourceVersion, no watch event
        if dry_run or capturing():
            return new, warnings
        if self._ready_to_delete(storage, new):
            self._commit(storage, 'DELETED', old, old)
            return old, warnings
        return self._commit(storage, 'MODIFIED', old, new), warnings
