""":class:`ResourceDef`: what the emulator knows about one served resource (group/version/plural, kind,
scope, verbs, subresources, the CRD schema) and the errors it answers in that resource's words.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import kmock

from .errors import ApiError, FieldError
from .json_values import JsonDict

# Built-ins whose metadata.generation is maintained (+1 on spec changes). Others have no generation.
_GENERATION_SPEC = {
    ('apps', 'deployments'), ('apps', 'replicasets'), ('apps', 'statefulsets'), ('apps', 'daemonsets'),
    ('batch', 'jobs'), ('batch', 'cronjobs'), ('policy', 'poddisruptionbudgets'),
    ('autoscaling', 'horizontalpodautoscalers'), ('networking.k8s.io', 'ingresses'),
    ('apiextensions.k8s.io', 'customresourcedefinitions'),
}


@dataclasses.dataclass
class ResourceDef:
    """What the emulator knows about one served resource (group/version/plural)."""
    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool
    verbs: frozenset[str] = frozenset({'create', 'delete', 'deletecollection', 'get', 'list', 'patch',
                                       'update', 'watch'})
    subresources: frozenset[str] = frozenset()
    singular: str = ''
    shortnames: frozenset[str] = frozenset()
    categories: frozenset[str] = frozenset()
    custom: bool = False  # served from a CustomResourceDefinition (unstructured semantics)
    schema: JsonDict | None = None  # openAPIV3Schema of a CRD version; None = preserve unknown fields

    @property
    def key(self) -> kmock.resource:
        return kmock.resource(self.group, self.version, self.plural)

    @property
    def api_version(self) -> str:
        return f'{self.group}/{self.version}' if self.group else self.version

    @property
    def qualified(self) -> str:
        """``configmaps`` or ``deployments.apps``: as in the apiserver's messages."""
        return f'{self.plural}.{self.group}' if self.group else self.plural

    @property
    def qualified_kind(self) -> str:
        return f'{self.kind}.{self.group}' if self.group else self.kind

    @property
    def has_status(self) -> bool:
        return 'status' in self.subresources

    @property
    def generation_mode(self) -> str | None:
        if self.custom:
            return 'custom'
        if (self.group, self.plural) in _GENERATION_SPEC:
            return 'spec'
        return None

    def details(self, name: str, **extra: Any) -> JsonDict:
        details: JsonDict = {'name': name}
        if self.group:
            details['group'] = self.group
        details['kind'] = self.plural
        details.update(extra)
        return details

    def not_found(self, name: str) -> ApiError:
        return ApiError(404, 'NotFound', f'{self.qualified} "{name}" not found', self.details(name))

    def already_exists(self, name: str) -> ApiError:
        return ApiError(409, 'AlreadyExists', f'{self.qualified} "{name}" already exists', self.details(name))

    def conflict(self, name: str, why: str = 'the object has been modified; please apply your changes '
                                              'to the latest version and try again') -> ApiError:
        return ApiError(409, 'Conflict', f'Operation cannot be fulfilled on {self.qualified} "{name}": {why}',
                        self.details(name))

    def invalid(self, name: str, errors: list[FieldError]) -> ApiError:
        joined = str(errors[0]) if len(errors) == 1 else '[' + ', '.join(str(e) for e in errors) + ']'
        details: JsonDict = {'name': name}
        if self.group:
            details['group'] = self.group
        details['kind'] = self.kind
        details['causes'] = [{'reason': e.cause_reason, 'message': e.body, 'field': e.field} for e in errors]
        return ApiError(422, 'Invalid', f'{self.qualified_kind} "{name}" is invalid: {joined}', details)

    def forbidden(self, name: str, why: str, cause: JsonDict | None = None) -> ApiError:
        details = self.details(name, **({'causes': [cause]} if cause else {}))
        return ApiError(403, 'Forbidden', f'{self.qualified} "{name}" is forbidden: {why}', details)
