"""The apiextensions-apiserver part: installing a CRD serves its versions at once (Established), a CRD's
create defaults its status and finalizer, deleting it deletes its instances first; and the minimal
CRDs installed by default (preserving unknown fields) for resources without a real manifest.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from typing import Any

import kmock

from .errors import FieldError
from .json_values import JsonDict, metadata_of, timestamp
from .resources import ResourceDef
from .state import EmulatorState


def minimal_crd(group: str, version: str, plural: str, kind: str, *, namespaced: bool, status: bool,
                short_names: Iterable[str] = ()) -> JsonDict:
    """A minimal CustomResourceDefinition that preserves unknown fields (for resources without a manifest)."""
    schema: JsonDict = {'type': 'object', 'x-kubernetes-preserve-unknown-fields': True}
    served: JsonDict = {'name': version, 'served': True, 'storage': True, 'schema': {'openAPIV3Schema': schema}}
    if status:
        served['subresources'] = {'status': {}}
    return {
        'apiVersion': 'apiextensions.k8s.io/v1', 'kind': 'CustomResourceDefinition',
        'metadata': {'name': f'{plural}.{group}'},
        'spec': {'group': group, 'scope': 'Namespaced' if namespaced else 'Cluster',
                 'names': {'plural': plural, 'singular': kind.lower(), 'kind': kind, 'listKind': f'{kind}List',
                           'shortNames': list(short_names)},
                 'versions': [served]},
    }


DEFAULT_CRDS: list[JsonDict] = [
    minimal_crd('openmodel.io', 'v1alpha1', 'openmodels', 'OpenModel', namespaced=True, status=True,
                short_names=['om']),
    minimal_crd('openmodel.io', 'v1alpha1', 'modeltrustpolicies', 'ModelTrustPolicy', namespaced=False,
                status=True, short_names=['mtp']),
    minimal_crd('kopf.dev', 'v1', 'clusterkopfpeerings', 'ClusterKopfPeering', namespaced=False, status=True),
    minimal_crd('kopf.dev', 'v1', 'kopfpeerings', 'KopfPeering', namespaced=True, status=True),
]


class CrdMixin(EmulatorState):
    """CustomResourceDefinitions and their lifecycle."""

    __slots__ = ()

    def install_crd(self, crd: JsonDict) -> JsonDict:
        """Create a CustomResourceDefinition (as ``kubectl apply -f crd.yaml`` would) and serve its resource."""
        name = crd['metadata']['name']
        existing = self._live(self._def('customresourcedefinitions'), None, name)
        if existing is not None:
            body = copy.deepcopy(crd)
            metadata_of(body)['resourceVersion'] = existing['metadata']['resourceVersion']
            return self._write(self._def('customresourcedefinitions'), None, name, body, manager='kubectl')
        return self._create('customresourcedefinitions', None, copy.deepcopy(crd), manager='kubectl')

    def _register_crd(self, crd: JsonDict) -> None:
        spec = crd.get('spec') or {}
        names = spec.get('names') or {}
        for version in spec.get('versions') or []:
            if not version.get('served', True):
                continue
            subresources = set((version.get('subresources') or {}).keys())
            schema = (version.get('schema') or {}).get('openAPIV3Schema')
            self.declare(ResourceDef(
                group=spec['group'], version=version['name'], plural=names['plural'], kind=names['kind'],
                namespaced=spec.get('scope') == 'Namespaced', subresources=frozenset(subresources),
                singular=names.get('singular', ''), shortnames=frozenset(names.get('shortNames') or ()),
                categories=frozenset(names.get('categories') or ()), custom=True, schema=schema))

    def _unregister_crd(self, crd: JsonDict) -> None:
        spec = crd.get('spec') or {}
        for version in spec.get('versions') or []:
            key = kmock.resource(spec.get('group'), version.get('name'), (spec.get('names') or {}).get('plural'))
            self._defs.pop(key, None)
            if key in self._resources:
                del self._resources[key]

    def _after_commit(self, rd: ResourceDef, etype: str, obj: JsonDict) -> None:
        """Side effects of the apiextensions-apiserver, which runs inside kube-apiserver (so: honest)."""
        if rd.group == 'apiextensions.k8s.io' and rd.plural == 'customresourcedefinitions':
            if etype == 'DELETED':
                self._unregister_crd(obj)
            else:
                self._register_crd(obj)
                if obj['metadata'].get('deletionTimestamp'):
                    self._finish_crd_deletions()
        elif rd.custom and etype == 'DELETED':
            self._finish_crd_deletions()

    def _kind_apiextensions_k8s_io_customresourcedefinitions(self, obj: JsonDict, old: JsonDict | None,
                                                             **_: Any) -> list[FieldError]:
        spec = obj.get('spec') or {}
        names = spec.get('names') or {}
        errors: list[FieldError] = []
        for key in ('group', 'scope', 'versions'):
            if not spec.get(key):
                errors.append(FieldError(f'spec.{key}', 'Required'))
        for key in ('plural', 'kind'):
            if not names.get(key):
                errors.append(FieldError(f'spec.names.{key}', 'Required'))
        if names.get('plural') and spec.get('group') and obj['metadata'].get('name') != \
                f'{names["plural"]}.{spec["group"]}':
            errors.append(FieldError('metadata.name', 'Invalid', 'must be spec.names.plural+"."+spec.group',
                                     obj['metadata'].get('name')))
        if old is not None and old.get('spec', {}).get('scope') != spec.get('scope'):
            errors.append(FieldError('spec.scope', 'Invalid', 'field is immutable', spec.get('scope')))
        if old is None:
            obj['metadata'].setdefault('finalizers', [])
            if 'customresourcecleanup.apiextensions.k8s.io' not in obj['metadata']['finalizers']:
                obj['metadata']['finalizers'].append('customresourcecleanup.apiextensions.k8s.io')
            obj['status'] = {
                'acceptedNames': {k: v for k, v in names.items()},
                'storedVersions': [v['name'] for v in spec.get('versions') or [] if v.get('storage')],
                'conditions': [
                    {'type': 'NamesAccepted', 'status': 'True', 'reason': 'NoConflicts',
                     'message': 'no conflicts found', 'lastTransitionTime': timestamp()},
                    {'type': 'Established', 'status': 'True', 'reason': 'InitialNamesAccepted',
                     'message': 'the initial names have been accepted', 'lastTransitionTime': timestamp()}]}
        return errors

    def _finish_crd_deletions(self) -> None:
        """The CRD finalizer: delete all instances, then release the CRD once none is left."""
        if self._finishing_crds:
            return
        self._finishing_crds = True
        try:
            self._finish_crd_deletions_once()
        finally:
            self._finishing_crds = False

    def _finish_crd_deletions_once(self) -> None:
        crds = self._def('customresourcedefinitions')
        for crd in self._all_live(crds):
            if not crd['metadata'].get('deletionTimestamp'):
                continue
            spec = crd['spec']
            remaining = 0
            for version in spec.get('versions') or []:
                rd = self._defs.get(kmock.resource(spec['group'], version['name'], spec['names']['plural']))
                if rd is None:
                    continue
                for item in self._all_live(rd):
                    meta = item['metadata']
                    if not meta.get('deletionTimestamp'):
                        self._delete(rd, meta.get('namespace'), meta['name'], {})
                    remaining += self._live(rd, meta.get('namespace'), meta['name']) is not None
            if not remaining:
                finalizers = [f for f in crd['metadata'].get('finalizers') or []
                              if f != 'customresourcecleanup.apiextensions.k8s.io']
                self._write(crds, None, crd['metadata']['name'],
                            {**crd, 'metadata': {**crd['metadata'], 'finalizers': finalizers}},
                            manager='kube-apiserver')
