"""Which resources are served: the built-ins of a bare v1.28 apiserver (from kmock's bundle, minus what
v1.28 does not serve) and the custom resources of installed CRDs; and how a name such as ``'v1/pods'``,
``'deployments.apps'``, ``'OpenModel'`` or ``'om'`` resolves to one of them.
"""

from __future__ import annotations

import gzip
import importlib.resources

import kmock

from .json_values import JsonDict
from .resources import ResourceDef
from .state import EmulatorState

# Built-in groups/versions in the kmock bundle that a bare v1.28 apiserver does not serve.
_NOT_IN_1_28 = {
    ('gateway.networking.k8s.io', None), ('metrics.k8s.io', None), ('flowcontrol.apiserver.k8s.io', 'v1'),
    ('networking.k8s.io', 'v1', 'ipaddresses'), ('networking.k8s.io', 'v1', 'servicecidrs'),
    ('admissionregistration.k8s.io', 'v1', 'validatingadmissionpolicies'),
    ('admissionregistration.k8s.io', 'v1', 'validatingadmissionpolicybindings'),
}


class RegistryMixin(EmulatorState):
    """Declarations of served resources and name resolution."""

    __slots__ = ()

    def _declare_builtins(self) -> None:
        bundle = kmock.KubernetesEmulator()
        # As ResourcesArray.load_bundled(), without its deprecated importlib.resources.read_binary().
        packed = importlib.resources.files('kmock._internal').joinpath('resources.json.gz').read_bytes()
        bundle.resources.load_data(gzip.decompress(packed))
        for res in bundle.resources:
            if {(res.group, None), (res.group, res.version), (res.group, res.version, res.plural)} & _NOT_IN_1_28:
                continue
            info = bundle.resources[res]
            assert res.group is not None and res.version is not None and res.plural is not None
            self.declare(ResourceDef(
                group=res.group, version=res.version, plural=res.plural,
                kind=info.kind or res.plural.capitalize(), namespaced=bool(info.namespaced),
                verbs=frozenset(info.verbs), subresources=frozenset(info.subresources),
                singular=info.singular or '', shortnames=frozenset(info.shortnames),
                categories=frozenset(info.categories)))
        # The bundle comes from a newer K3s: v1.28 serves flowcontrol v1beta3 instead of v1.
        for plural, kind in (('flowschemas', 'FlowSchema'), ('prioritylevelconfigurations',
                                                             'PriorityLevelConfiguration')):
            self.declare(ResourceDef('flowcontrol.apiserver.k8s.io', 'v1beta3', plural, kind, namespaced=False,
                                     subresources=frozenset({'status'})))

    def declare(self, rd: ResourceDef) -> None:
        """Serve a resource (also announced in kmock's discovery)."""
        self._defs[rd.key] = rd
        self._resources[rd.key] = kmock.ResourceInfo(
            kind=rd.kind, singular=rd.singular or rd.kind.lower(), namespaced=rd.namespaced, verbs=set(rd.verbs),
            shortnames=set(rd.shortnames), categories=set(rd.categories), subresources=set(rd.subresources))

    def _def(self, resource: str | ResourceDef | kmock.resource) -> ResourceDef:
        """Resolve ``'v1/pods'``, ``'deployments.apps'``, ``'openmodels'``, ``'OpenModel'``, ``'om'``..."""
        if isinstance(resource, ResourceDef):
            return resource
        if isinstance(resource, kmock.resource):
            if resource in self._defs:
                return self._defs[resource]
            resource = '/'.join(p for p in (resource.group, resource.version, resource.plural) if p)
        text = resource.strip()
        candidates: list[ResourceDef] = []
        for rd in self._defs.values():
            names = {rd.plural, rd.kind, rd.kind.lower(), rd.singular, *rd.shortnames, f'{rd.api_version}/{rd.plural}',
                     f'{rd.group}/{rd.plural}', rd.qualified, f'{rd.plural}.{rd.version}.{rd.group}'.rstrip('.'),
                     f'{rd.api_version}/{rd.kind}'}
            if text in names:
                candidates.append(rd)
        if not candidates:
            raise KeyError(f'unknown resource: {resource!r}')
        candidates.sort(key=lambda rd: (rd.group != '', rd.group != 'apps', rd.custom))  # core first, as kubectl
        return candidates[0]

    def _def_for_body(self, body: JsonDict) -> ResourceDef:
        api_version, kind = body.get('apiVersion'), body.get('kind')
        for rd in self._defs.values():
            if rd.api_version == api_version and rd.kind == kind:
                return rd
        raise KeyError(f'no resource serves {api_version}/{kind}')
