"""
A stateful, deliberately strict Kubernetes API emulator for the operator's integration tests.

The target it imitates is a bare kube-apiserver v1.28 backed by etcd, with NO kubelet, scheduler or
kube-controller-manager (the "envtest" setup). Tests must not pass here and fail there, so where the
real API server is strict, this emulator is strict too. It is built on :class:`kmock.KubernetesEmulator`
(discovery, ``kube.objects`` with the version history, kmock's request log and DSL reactions all keep
working) but replaces kmock's lenient object handling, which assigns no resourceVersion, replays every
object on every watch, answers 500 on a failed JSON-patch test, has no PUT, and treats apply as merge.

What is emulated (see ``tests/test_kube_emulator.py`` for a proof of each):

* metadata: uid, creationTimestamp, a global monotonic resourceVersion, generation (CRs: +1 on any
  change outside metadata/status; Deployments/Jobs/...: on spec changes; absent for kinds without it),
  generateName, namespace defaulting from the URL, the NamespaceLifecycle admission (404 for a missing
  namespace, 403 for a terminating one), deletion with finalizers (deletionTimestamp, generation bump,
  no new finalizers while deleting), GC finalizers (``orphan``/``foregroundDeletion``; batch/v1 Jobs
  default to orphan!) that nobody removes because there is no garbage collector;
* status subresource semantics, optimistic concurrency (409 Conflict / AlreadyExists), 404 NotFound,
  422 Invalid with field causes, 405/415 where the real server answers them;
* merge patch, JSON patch (a failed ``test`` answers 422), strategic merge for built-ins only (415 for
  custom resources), PUT, server-side apply with managedFields, conflicts and ``force``;
  no-op writes keep the resourceVersion and emit no watch event;
* list/watch with resourceVersion, label and field selectors (with the real ADDED/DELETED transitions
  when an object starts/stops matching a selector), pagination (limit/continue from a consistent
  snapshot), timeoutSeconds, ``compact()`` to provoke "410 Gone";
* CRD schemas: pruning of unknown fields (fieldValidation Strict/Warn/Ignore), nulls, defaulting,
  OpenAPI v3 validation and CEL ``x-kubernetes-validations`` (cel-python; ``oldSelf`` on updates) when a
  real CRD manifest is installed (:meth:`KubeEmulator.install_crd` or POST to customresourcedefinitions);
* per-kind rules that operators commonly trip over: Secret stringData/base64/type, ConfigMap/Secret keys,
  size and ``immutable``, Service clusterIP/nodePort allocation, Deployment selector/template checks,
  Job selector generation and immutable template, PVC immutability, Pod immutability and the
  ServiceAccount admission (no ``default`` ServiceAccount exists without the controller-manager),
  core/v1 and events.k8s.io/v1 Event validation (both APIs share one storage);
* ``GET /version`` like v1.28; a test-facing API (``get``, ``list``, ``objects_of``, ``patch_status``,
  ``complete_job``, ``mark_deployment_available``, ``events_for``, ``collect_garbage``,
  ``finalize_namespace``, ``inject_conflict``, request counters, ``wait_for``).

Known gaps (not faithful; tests must not rely on them): no authentication/RBAC; no admission webhooks;
no schema for built-in kinds beyond the per-kind rules above (unknown fields of built-ins are kept,
the real server drops them with a warning); CEL runs on cel-python (standard CEL, no Kubernetes CEL
libraries, no cost limits); SSA treats every list as atomic (the real server merges associative
lists such as containers by name); strategic merge knows only the common merge keys; each served CRD
version has its own storage (no conversion); bookmarks are never sent; watch latency and the watch
cache are not simulated (events arrive at once, in order); a list's ``resourceVersion`` parameter is
ignored (always the latest state); subresources other than status (scale, log, exec, eviction...)
answer 501.
"""
from __future__ import annotations

import asyncio
import base64
import binascii
import builtins
import collections
import contextlib
import copy
import dataclasses
import datetime
import gzip
import importlib.resources
import ipaddress
import json
import math
import random
import re
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

import aiohttp.web
import attrs
import kmock
import yaml

JsonDict = dict[str, Any]
Path = tuple[str, ...]
_MISSING: Any = object()

KUBE_VERSION: JsonDict = {
    'major': '1',
    'minor': '28',
    'gitVersion': 'v1.28.15',
    'gitCommit': '841856557ef0f6a399096c42635d114d6f2cf7f4',
    'gitTreeState': 'clean',
    'buildDate': '2024-10-22T20:28:20Z',
    'goVersion': 'go1.22.8',
    'compiler': 'gc',
    'platform': 'linux/amd64',
}

# Namespaces that kube-apiserver itself creates on bootstrap (the controller-manager creates nothing here).
SYSTEM_NAMESPACES = ('default', 'kube-system', 'kube-public', 'kube-node-lease')

# Built-in groups/versions in the kmock bundle that a bare v1.28 apiserver does not serve.
_NOT_IN_1_28 = {
    ('gateway.networking.k8s.io', None), ('metrics.k8s.io', None), ('flowcontrol.apiserver.k8s.io', 'v1'),
    ('networking.k8s.io', 'v1', 'ipaddresses'), ('networking.k8s.io', 'v1', 'servicecidrs'),
    ('admissionregistration.k8s.io', 'v1', 'validatingadmissionpolicies'),
    ('admissionregistration.k8s.io', 'v1', 'validatingadmissionpolicybindings'),
}

# Built-ins whose metadata.generation is maintained (+1 on spec changes). Others have no generation.
_GENERATION_SPEC = {
    ('apps', 'deployments'), ('apps', 'replicasets'), ('apps', 'statefulsets'), ('apps', 'daemonsets'),
    ('batch', 'jobs'), ('batch', 'cronjobs'), ('policy', 'poddisruptionbudgets'),
    ('autoscaling', 'horizontalpodautoscalers'), ('networking.k8s.io', 'ingresses'),
    ('apiextensions.k8s.io', 'customresourcedefinitions'),
}

# Resources whose DELETE returns the deleted object instead of a Status (ReturnDeletedObject).
_RETURNS_DELETED_OBJECT = {('', 'pods'), ('', 'namespaces')}

# Field selectors that the real apiserver supports besides metadata.name/metadata.namespace.
_FIELD_LABELS: dict[tuple[str, str], set[str]] = {
    ('', 'pods'): {'spec.nodeName', 'spec.restartPolicy', 'spec.schedulerName', 'spec.serviceAccountName',
                   'spec.hostNetwork', 'status.phase', 'status.podIP', 'status.nominatedNodeName'},
    ('', 'events'): {'involvedObject.kind', 'involvedObject.namespace', 'involvedObject.name',
                     'involvedObject.uid', 'involvedObject.apiVersion', 'involvedObject.resourceVersion',
                     'involvedObject.fieldPath', 'reason', 'reportingComponent', 'source', 'type'},
    ('', 'secrets'): {'type'},
    ('', 'namespaces'): {'status.phase'},
    ('', 'nodes'): {'spec.unschedulable'},
    ('', 'replicationcontrollers'): {'status.replicas'},
    ('batch', 'jobs'): {'status.successful'},
    ('apps', 'replicasets'): {'status.replicas'},
    ('certificates.k8s.io', 'certificatesigningrequests'): {'spec.signerName'},
}

_PATCH_TYPES = {
    'application/json-patch+json': 'json',
    'application/merge-patch+json': 'merge',
    'application/strategic-merge-patch+json': 'strategic',
    'application/apply-patch+yaml': 'apply',
}

_SYSTEM_META = ('uid', 'resourceVersion', 'generation', 'creationTimestamp', 'deletionTimestamp',
                'deletionGracePeriodSeconds', 'managedFields', 'selfLink')

_DNS1123_LABEL = re.compile(r'[a-z0-9]([-a-z0-9]*[a-z0-9])?')
_DNS1123_SUBDOMAIN = re.compile(r'[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')
_DNS1035_LABEL = re.compile(r'[a-z]([-a-z0-9]*[a-z0-9])?')
_QUALIFIED_NAME = re.compile(r'([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')
_LABEL_VALUE = re.compile(r'(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')
_CONFIG_KEY = re.compile(r'[-._a-zA-Z0-9]+')
_GENERATE_CHARS = 'bcdfghjklmnpqrstvwxz2456789'
_DATA_LIMIT = 1024 * 1024  # ConfigMap/Secret total data size
_ANNOTATIONS_LIMIT = 256 * 1024


# ----------------------------------------------------------------------------------------------------------
# Errors, rendered exactly as the Status objects of the real API server.
# ----------------------------------------------------------------------------------------------------------

class ApiError(Exception):
    """An API failure that is answered with a ``Status`` object and an HTTP code."""

    def __init__(self, code: int, reason: str, message: str, details: JsonDict | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        self.details = details

    def status(self) -> JsonDict:
        status: JsonDict = {'kind': 'Status', 'apiVersion': 'v1', 'metadata': {}, 'status': 'Failure',
                            'message': self.message, 'reason': self.reason, 'code': self.code}
        if self.details is not None:
            status['details'] = self.details
        return status


@dataclasses.dataclass(frozen=True)
class FieldError:
    """One field-level validation error, as ``field.Error`` in the apiserver."""
    field: str
    type: str  # Invalid, Required, Forbidden, NotSupported, TooLong, TooMany, Duplicate, NotFound
    detail: str = ''
    value: Any = None

    @property
    def cause_reason(self) -> str:
        return {'Invalid': 'FieldValueInvalid', 'Required': 'FieldValueRequired',
                'Forbidden': 'FieldValueForbidden', 'NotSupported': 'FieldValueNotSupported',
                'TooLong': 'FieldValueTooLong', 'TooMany': 'FieldValueTooMany',
                'Duplicate': 'FieldValueDuplicate', 'NotFound': 'FieldValueNotFound'}[self.type]

    @property
    def body(self) -> str:
        shown = json.dumps(self.value) if not isinstance(self.value, str) else f'"{self.value}"'
        match self.type:
            case 'Invalid':
                return f'Invalid value: {shown}: {self.detail}'
            case 'Required':
                return 'Required value' + (f': {self.detail}' if self.detail else '')
            case 'Forbidden':
                return f'Forbidden: {self.detail}'
            case 'NotSupported':
                return f'Unsupported value: {shown}: supported values: {self.detail}'
            case 'TooLong':
                return f'Too long: {self.detail}'
            case 'TooMany':
                return f'Too many: {shown}: {self.detail}'
            case 'NotFound':
                return f'Not found: {shown}'
            case _:
                return f'Duplicate value: {shown}'

    def __str__(self) -> str:
        return f'{self.field}: {self.body}'


def _not_found_route() -> ApiError:
    return ApiError(404, 'NotFound', 'the server could not find the requested resource', {})


def _bad_request(message: str) -> ApiError:
    return ApiError(400, 'BadRequest', message)


# ----------------------------------------------------------------------------------------------------------
# Resource definitions.
# ----------------------------------------------------------------------------------------------------------

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


# ----------------------------------------------------------------------------------------------------------
# Small JSON utilities.
# ----------------------------------------------------------------------------------------------------------

def _now(offset: float = 0) -> str:
    moment = datetime.datetime.now(datetime.UTC) + datetime.timedelta(seconds=offset)
    return moment.strftime('%Y-%m-%dT%H:%M:%SZ')


def _same(a: Any, b: Any) -> bool:
    """JSON equality that, unlike Python's ``==``, tells ``true`` from ``1``."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return a == b
    return type(a) is type(b) and a == b


def _meta(obj: JsonDict) -> JsonDict:
    meta = obj.get('metadata')
    if not isinstance(meta, dict):
        meta = obj['metadata'] = {}
    return meta


def _dig(obj: Any, path: Iterable[str]) -> Any:
    for key in path:
        if not isinstance(obj, dict):
            return None
        obj = obj.get(key)
    return obj


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch (``application/merge-patch+json``)."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


class JsonPatchError(Exception):
    """A JSON patch that cannot be applied (answered with 422 by the real server)."""


def _pointer(path: str) -> list[str]:
    if path == '':
        return []
    if not path.startswith('/'):
        raise JsonPatchError(f'invalid JSON pointer: {path!r}')
    return [part.replace('~1', '/').replace('~0', '~') for part in path[1:].split('/')]


def _index(container: list[Any], token: str, *, allow_end: bool) -> int:
    if token == '-' and allow_end:
        return len(container)
    if not token.isdigit() or (len(token) > 1 and token.startswith('0')):
        raise JsonPatchError(f'invalid array index: {token!r}')
    idx = int(token)
    if idx > len(container) or (idx == len(container) and not allow_end):
        raise JsonPatchError(f'array index out of bounds: {idx}')
    return idx


def _resolve(doc: Any, tokens: list[str]) -> Any:
    for token in tokens:
        if isinstance(doc, dict):
            if token not in doc:
                raise JsonPatchError(f'missing key: {token!r}')
            doc = doc[token]
        elif isinstance(doc, list):
            doc = doc[_index(doc, token, allow_end=False)]
        else:
            raise JsonPatchError(f'cannot traverse into a scalar at {token!r}')
    return doc


def _op_add(doc: Any, tokens: list[str], value: Any) -> Any:
    if not tokens:
        return copy.deepcopy(value)
    parent = _resolve(doc, tokens[:-1])
    last = tokens[-1]
    if isinstance(parent, dict):
        parent[last] = copy.deepcopy(value)
    elif isinstance(parent, list):
        parent.insert(_index(parent, last, allow_end=True), copy.deepcopy(value))
    else:
        raise JsonPatchError('cannot add into a scalar')
    return doc


def _op_remove(doc: Any, tokens: list[str]) -> tuple[Any, Any]:
    if not tokens:
        raise JsonPatchError('cannot remove the whole document')
    parent = _resolve(doc, tokens[:-1])
    last = tokens[-1]
    if isinstance(parent, dict):
        if last not in parent:
            raise JsonPatchError(f'remove: missing key {last!r}')
        return doc, parent.pop(last)
    if isinstance(parent, list):
        return doc, parent.pop(_index(parent, last, allow_end=False))
    raise JsonPatchError('cannot remove from a scalar')


def json_patch(doc: Any, ops: Any) -> Any:
    """RFC 6902 JSON patch (``application/json-patch+json``); raises :class:`JsonPatchError`."""
    if not isinstance(ops, list):
        raise TypeError('a JSON patch must be a list of operations')
    doc = copy.deepcopy(doc)
    for op in ops:
        if not isinstance(op, dict) or 'op' not in op or 'path' not in op:
            raise TypeError(f'malformed JSON patch operation: {op!r}')
        kind, tokens = op['op'], _pointer(op['path'])
        if kind in ('add', 'replace', 'test') and 'value' not in op:
            raise TypeError(f'missing value in the {kind!r} operation')
        match kind:
            case 'add':
                doc = _op_add(doc, tokens, op['value'])
            case 'remove':
                doc, _ = _op_remove(doc, tokens)
            case 'replace':
                _resolve(doc, tokens)  # must exist
                if tokens:
                    doc, _ = _op_remove(doc, tokens)
                doc = _op_add(doc, tokens, op['value'])
            case 'move':
                source = _pointer(op.get('from', ''))
                doc, value = _op_remove(doc, source)
                doc = _op_add(doc, tokens, value)
            case 'copy':
                value = _resolve(doc, _pointer(op.get('from', '')))
                doc = _op_add(doc, tokens, value)
            case 'test':
                try:
                    actual = _resolve(doc, tokens)
                except JsonPatchError:
                    actual = None
                if not _same(actual, op['value']):
                    raise JsonPatchError(f'testing value {op["path"]} failed: test failed')
            case _:
                raise TypeError(f'unknown JSON patch operation: {kind!r}')
    return doc


# Strategic merge: the merge keys of the common associative lists of built-in kinds (by field name).
_SMP_KEYS = {
    'containers': 'name', 'initContainers': 'name', 'ephemeralContainers': 'name', 'env': 'name',
    'volumes': 'name', 'volumeMounts': 'mountPath', 'volumeDevices': 'devicePath', 'imagePullSecrets': 'name',
    'ownerReferences': 'uid', 'conditions': 'type', 'hostAliases': 'ip', 'topologySpreadConstraints':
    'topologyKey', 'secrets': 'name', 'ports': 'containerPort',
}
_SMP_SETS = {'finalizers'}


def strategic_merge_patch(target: Any, patch: Any, *, kind: str = '', field: str = '') -> Any:
    """A strategic merge patch for built-in kinds: merge keys, ``$patch`` and primitive-set directives."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    if patch.get('$patch') == 'replace':
        return {k: copy.deepcopy(v) for k, v in patch.items() if k != '$patch'}
    if patch.get('$patch') == 'delete':
        return None
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if key.startswith(('$setElementOrder/', '$retainKeys', '$patch')):
            continue
        if key.startswith('$deleteFromPrimitiveList/'):
            name = key.split('/', 1)[1]
            result[name] = [x for x in result.get(name, []) if x not in value]
            continue
        if value is None:
            result.pop(key, None)
            continue
        merge_key = 'port' if key == 'ports' and kind == 'Service' else _SMP_KEYS.get(key)
        current = result.get(key)
        if isinstance(value, list) and isinstance(current, list) and merge_key is not None:
            merged = copy.deepcopy(current)
            for item in value:
                if not isinstance(item, dict) or merge_key not in item:
                    merged = copy.deepcopy(value)
                    break
                idx = next((i for i, x in enumerate(merged)
                            if isinstance(x, dict) and x.get(merge_key) == item[merge_key]), None)
                if item.get('$patch') == 'delete':
                    if idx is not None:
                        merged.pop(idx)
                elif idx is None:
                    merged.append({k: v for k, v in item.items() if k != '$patch'})
                else:
                    merged[idx] = strategic_merge_patch(merged[idx], item, kind=kind, field=key)
            result[key] = merged
        elif isinstance(value, list) and isinstance(current, list) and key in _SMP_SETS:
            result[key] = current + [x for x in value if x not in current]
        else:
            merged_value = strategic_merge_patch(current, value, kind=kind, field=key)
            if merged_value is None:
                result.pop(key, None)
            else:
                result[key] = merged_value
    return result


# ----------------------------------------------------------------------------------------------------------
# Selectors.
# ----------------------------------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class _Requirement:
    key: str
    op: str  # =, !=, in, notin, exists, !
    values: tuple[str, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        match self.op:
            case 'exists':
                return self.key in labels
            case '!':
                return self.key not in labels
            case '=' | 'in':
                return self.key in labels and labels[self.key] in self.values
            case _:  # != and notin
                return self.key not in labels or labels[self.key] not in self.values


def _split_top(text: str) -> list[str]:
    parts, depth, current = [], 0, ''
    for char in text:
        if char == '(':
            depth += 1
        elif char == ')':
            depth -= 1
        if char == ',' and depth == 0:
            parts.append(current)
            current = ''
        else:
            current += char
    parts.append(current)
    return [p.strip() for p in parts if p.strip()]


def _check_label_key(key: str) -> str | None:
    prefix, _, name = key.rpartition('/')
    if prefix and (len(prefix) > 253 or not _DNS1123_SUBDOMAIN.fullmatch(prefix)):
        return 'prefix part must be a lowercase RFC 1123 subdomain'
    if not name or len(name) > 63 or not _QUALIFIED_NAME.fullmatch(name):
        return ("name part must consist of alphanumeric characters, '-', '_' or '.', and must start and "
                "end with an alphanumeric character (max 63 characters)")
    return None


def _check_label_value(value: str) -> str | None:
    if len(value) > 63 or not _LABEL_VALUE.fullmatch(value):
        return ("a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or "
                "'.', and must start and end with an alphanumeric character (max 63 characters)")
    return None


def parse_label_selector(text: str) -> list[_Requirement]:
    """Parse ``a=b,c!=d,e,!f,g in (h,i),j notin (k)`` or raise a 400 :class:`ApiError`."""
    result: list[_Requirement] = []
    for part in _split_top(text or ''):
        if m := re.fullmatch(r'([^\s!=(),]+)\s+(in|notin)\s+\(([^()]*)\)', part):
            key, op, values = m.group(1), m.group(2), tuple(v.strip() for v in m.group(3).split(',') if v.strip())
        elif m := re.fullmatch(r'([^\s!=(),]+)\s*(==|=|!=)\s*([^\s!=(),]*)', part):
            key, op, values = m.group(1), '=' if m.group(2) == '==' else m.group(2), (m.group(3),)
        elif m := re.fullmatch(r'!\s*([^\s!=(),]+)', part):
            key, op, values = m.group(1), '!', ()
        elif re.fullmatch(r'[^\s!=(),]+', part):
            key, op, values = part, 'exists', ()
        else:
            raise _bad_request(f'unable to parse requirement: found {part!r}, expected a label requirement')
        if error := _check_label_key(key):
            raise _bad_request(f'unable to parse requirement: key: Invalid value: "{key}": {error}')
        for value in values:
            if error := _check_label_value(value):
                raise _bad_request(f'unable to parse requirement: values[0][{key}]: Invalid value: '
                                   f'"{value}": {error}')
        result.append(_Requirement(key, op, values))
    return result


def parse_field_selector(text: str, rd: ResourceDef) -> list[tuple[str, str, str]]:
    """Parse ``metadata.name=x,status.phase!=Running``; unsupported fields are a 400 like the real API."""
    result: list[tuple[str, str, str]] = []
    allowed = {'metadata.name', 'metadata.namespace'} | _FIELD_LABELS.get((rd.group, rd.plural), set())
    for part in _split_top(text or ''):
        m = re.fullmatch(r'([^=!]+?)\s*(==|=|!=)\s*(.*)', part)
        if not m:
            raise _bad_request(f'invalid selector: {text!r}; can\'t understand {part!r}')
        field, op, value = m.group(1).strip(), m.group(2), m.group(3).strip()
        if field not in allowed:
            raise _bad_request(f'field label not supported: {field}')
        result.append((field, '!=' if op == '!=' else '=', value))
    return result


def _field_value(obj: JsonDict, field: str) -> str:
    value = _dig(obj, field.split('.'))
    if isinstance(value, bool):
        return 'true' if value else 'false'
    return '' if value is None else str(value)


# ----------------------------------------------------------------------------------------------------------
# Managed fields (server-side apply bookkeeping). Lists are atomic, maps are granular.
# ----------------------------------------------------------------------------------------------------------

def _leaves(obj: JsonDict, scope: str) -> dict[Path, Any]:
    """Paths of the tracked leaf fields: ``main`` (no status if it is a subresource), ``status`` or ``all``."""
    leaves: dict[Path, Any] = {}

    def walk(value: Any, path: Path) -> None:
        if isinstance(value, dict) and value:
            for key, sub in value.items():
                walk(sub, (*path, key))
        else:
            leaves[path] = value

    for key, value in obj.items():
        if key in ('apiVersion', 'kind'):
            continue
        if scope == 'status' and key != 'status':
            continue
        if scope == 'main' and key == 'status':
            continue
        if key == 'metadata' and isinstance(value, dict):
            for mkey, mvalue in value.items():
                if mkey not in _SYSTEM_META and mkey not in ('name', 'namespace'):
                    walk(mvalue, ('metadata', mkey))
        else:
            walk(value, (key,))
    return leaves


def _encode_fields(paths: Iterable[Path]) -> JsonDict:
    root: JsonDict = {}
    for path in sorted(paths):
        node = root
        for key in path:
            node = node.setdefault(f'f:{key}', {})
    return root


def _decode_fields(fields: Mapping[str, Any], prefix: Path = ()) -> set[Path]:
    paths: set[Path] = set()
    children = {k: v for k, v in fields.items() if k.startswith('f:')}
    if not children and prefix:
        paths.add(prefix)
    for key, sub in children.items():
        paths |= _decode_fields(sub if isinstance(sub, dict) else {}, (*prefix, key[2:]))
    return paths


def _overlaps(a: Path, b: Path) -> bool:
    n = min(len(a), len(b))
    return a[:n] == b[:n]


@dataclasses.dataclass
class _Manager:
    manager: str
    operation: str
    subresource: str
    api_version: str
    time: str
    paths: set[Path]

    @property
    def ident(self) -> tuple[str, str, str]:
        return self.manager, self.operation, self.subresource

    def render(self) -> JsonDict:
        entry: JsonDict = {'manager': self.manager, 'operation': self.operation, 'apiVersion': self.api_version,
                           'time': self.time, 'fieldsType': 'FieldsV1', 'fieldsV1': _encode_fields(self.paths)}
        if self.subresource:
            entry['subresource'] = self.subresource
        return entry


def _read_managers(obj: JsonDict | None) -> list[_Manager]:
    result: list[_Manager] = []
    for entry in (_dig(obj, ('metadata', 'managedFields')) or []) if obj else []:
        result.append(_Manager(entry.get('manager', ''), entry.get('operation', 'Update'),
                               entry.get('subresource', ''), entry.get('apiVersion', ''),
                               entry.get('time', ''), _decode_fields(entry.get('fieldsV1') or {})))
    return result


# ----------------------------------------------------------------------------------------------------------
# Structural schemas of CRDs: pruning, defaulting, validation (OpenAPI v3 subset used by Kubernetes).
# ----------------------------------------------------------------------------------------------------------

_META_FIELDS = {'name', 'generateName', 'namespace', 'selfLink', 'uid', 'resourceVersion', 'generation',
                'creationTimestamp', 'deletionTimestamp', 'deletionGracePeriodSeconds', 'labels', 'annotations',
                'ownerReferences', 'finalizers', 'managedFields'}


def _fmt_path(path: str, key: str, *, is_map: bool = False) -> str:
    if is_map:
        return f'{path}[{key}]'
    return f'{path}.{key}' if path else key


def schema_prune(value: Any, schema: JsonDict | None, path: str, pruned: list[str], *, root: bool = False,
                 embedded: bool = False) -> Any:
    """Drop unknown fields and non-nullable nulls; ``pruned`` collects the dropped unknown paths."""
    if schema is None:
        return value
    if isinstance(value, dict):
        props: dict[str, JsonDict] = schema.get('properties') or {}
        additional = schema.get('additionalProperties')
        preserve = schema.get('x-kubernetes-preserve-unknown-fields') is True
        result: JsonDict = {}
        for key, sub in value.items():
            sub_path = _fmt_path(path, key)
            if (root or embedded) and key in ('apiVersion', 'kind'):
                result[key] = sub
            elif (root or embedded) and key == 'metadata' and isinstance(sub, dict):
                result[key] = {k: v for k, v in sub.items() if k in _META_FIELDS}
                pruned.extend(_fmt_path(sub_path, k) for k in sub if k not in _META_FIELDS)
            elif key in props:
                if sub is None and not props[key].get('nullable'):
                    continue
                result[key] = schema_prune(sub, props[key], sub_path, pruned,
                                           embedded=bool(props[key].get('x-kubernetes-embedded-resource')))
            elif isinstance(additional, dict):
                if sub is None and not additional.get('nullable'):
                    continue
                result[key] = schema_prune(sub, additional, _fmt_path(path, key, is_map=True), pruned)
            elif additional is True or preserve:
                result[key] = sub
            else:
                pruned.append(sub_path)
        return result
    if isinstance(value, list) and isinstance(schema.get('items'), dict):
        items = schema['items']
        return [schema_prune(v, items, f'{path}[{i}]', pruned,
                             embedded=bool(items.get('x-kubernetes-embedded-resource')))
                for i, v in enumerate(value) if not (v is None and not items.get('nullable'))]
    return value


def schema_default(value: Any, schema: JsonDict | None) -> Any:
    """Apply ``default`` values (only inside objects that exist), recursively."""
    if schema is None:
        return value
    if isinstance(value, dict):
        for key, sub in (schema.get('properties') or {}).items():
            if key not in value and 'default' in sub:
                value[key] = copy.deepcopy(sub['default'])
            if key in value:
                value[key] = schema_default(value[key], sub)
        additional = schema.get('additionalProperties')
        if isinstance(additional, dict):
            for key in list(value):
                if key not in (schema.get('properties') or {}):
                    value[key] = schema_default(value[key], additional)
    elif isinstance(value, list) and isinstance(schema.get('items'), dict):
        return [schema_default(v, schema['items']) for v in value]
    return value


def _json_type(value: Any) -> str:
    if value is None:
        return 'null'
    if isinstance(value, bool):
        return 'boolean'
    if isinstance(value, int):
        return 'integer'
    if isinstance(value, float):
        return 'number'
    if isinstance(value, str):
        return 'string'
    if isinstance(value, list):
        return 'array'
    return 'object'


_CEL_PROGRAMS: dict[str, Any] = {}


def _cel_rules(value: Any, schema: JsonDict, path: str, errors: list[FieldError], old: Any) -> None:
    """``x-kubernetes-validations``: CEL rules with ``self`` (and ``oldSelf`` on updates: transition rules)."""
    rules = schema.get('x-kubernetes-validations') or []
    if not rules:
        return
    import celpy  # cel-python: a test dependency of the project
    from celpy.adapter import json_to_cel

    for rule in rules:
        text = rule['rule']
        if 'oldSelf' in text and old is _MISSING:
            continue  # transition rules run on updates only
        program = _CEL_PROGRAMS.get(text)
        if program is None:
            env = celpy.Environment()
            program = _CEL_PROGRAMS[text] = env.program(env.compile(text))
        activation = {'self': json_to_cel(value)}
        if old is not _MISSING:
            activation['oldSelf'] = json_to_cel(old)
        field = path + (rule.get('fieldPath') or '')
        shown = value if not isinstance(value, (dict, list)) else ('object' if isinstance(value, dict) else 'array')
        try:
            result = program.evaluate(activation)
        except celpy.evaluation.CELEvalError as e:
            errors.append(FieldError(field, 'Invalid', f'{e.args[0] if e.args else e} evaluating rule: {text}', shown))
            continue
        if isinstance(result, celpy.evaluation.CELEvalError):
            errors.append(FieldError(field, 'Invalid', f'{result.args[0]} evaluating rule: {text}', shown))
        elif not (isinstance(result, celpy.celtypes.BoolType) and bool(result)):
            message = rule.get('message') or f'failed rule: {text}'
            kind = {'FieldValueForbidden': 'Forbidden', 'FieldValueRequired': 'Required',
                    'FieldValueDuplicate': 'Duplicate'}.get(rule.get('reason', ''), 'Invalid')
            errors.append(FieldError(field, kind, message, shown))


def schema_cel(value: Any, schema: JsonDict | None, path: str, errors: list[FieldError], old: Any = _MISSING) -> None:
    """Run the CEL rules of every node of the schema (``oldSelf`` correlates through maps only)."""
    if schema is None or value is None:
        return
    _cel_rules(value, schema, path, errors, old)
    if isinstance(value, dict):
        props = schema.get('properties') or {}
        additional = schema.get('additionalProperties')
        for key, sub in value.items():
            old_sub = old.get(key, _MISSING) if isinstance(old, dict) else _MISSING
            if key in props:
                schema_cel(sub, props[key], _fmt_path(path, key), errors, old_sub)
            elif isinstance(additional, dict):
                schema_cel(sub, additional, _fmt_path(path, key, is_map=True), errors, old_sub)
    elif isinstance(value, list) and isinstance(schema.get('items'), dict):
        for i, item in enumerate(value):
            schema_cel(item, schema['items'], f'{path}[{i}]', errors)


def schema_validate(value: Any, schema: JsonDict | None, path: str, errors: list[FieldError]) -> None:
    """Validate a (pruned, defaulted) value against an OpenAPI v3 structural schema (CEL: ``schema_cel``)."""
    if schema is None:
        return
    where = path or '<root>'
    actual = _json_type(value)
    expected = schema.get('type')
    if value is None:
        if not schema.get('nullable') and expected:
            errors.append(FieldError(path, 'Invalid', f'{where} in body must be of type {expected}: "null"', 'null'))
        return
    if schema.get('x-kubernetes-int-or-string'):
        if actual not in ('integer', 'string'):
            errors.append(FieldError(path, 'Invalid', f'{where} in body must be of type integer or string: '
                                                      f'"{actual}"', actual))
            return
    elif expected and not (actual == expected or (expected == 'number' and actual == 'integer')):
        errors.append(FieldError(path, 'Invalid', f'{where} in body must be of type {expected}: "{actual}"',
                                 actual))
        return
    if 'enum' in schema and not any(_same(value, option) for option in schema['enum']):
        shown = ', '.join(json.dumps(option) for option in schema['enum'])
        errors.append(FieldError(path, 'NotSupported', shown, value))
    if actual in ('integer', 'number'):
        if 'minimum' in schema:
            exclusive = schema.get('exclusiveMinimum') is True
            if value < schema['minimum'] or (exclusive and value == schema['minimum']):
                word = 'greater than' if exclusive else 'greater than or equal to'
                errors.append(FieldError(path, 'Invalid', f'{where} in body should be {word} {schema["minimum"]}',
                                         value))
        if 'maximum' in schema:
            exclusive = schema.get('exclusiveMaximum') is True
            if value > schema['maximum'] or (exclusive and value == schema['maximum']):
                word = 'less than' if exclusive else 'less than or equal to'
                errors.append(FieldError(path, 'Invalid', f'{where} in body should be {word} {schema["maximum"]}',
                                         value))
        if schema.get('multipleOf') and value % schema['multipleOf']:
            errors.append(FieldError(path, 'Invalid', f'{where} in body should be a multiple of '
                                                      f'{schema["multipleOf"]}', value))
    if actual == 'string':
        if 'maxLength' in schema and len(value) > schema['maxLength']:
            errors.append(FieldError(path, 'TooLong', f'may not be longer than {schema["maxLength"]}', value))
        if 'minLength' in schema and len(value) < schema['minLength']:
            errors.append(FieldError(path, 'Invalid', f'{where} in body should be at least {schema["minLength"]} '
                                                      f'chars long', value))
        if 'pattern' in schema and not re.search(schema['pattern'], value):
            errors.append(FieldError(path, 'Invalid', f"{where} in body should match '{schema['pattern']}'",
                                     value))
        if schema.get('format') == 'date-time':
            try:
                datetime.datetime.fromisoformat(value.replace('Z', '+00:00'))
            except ValueError:
                errors.append(FieldError(path, 'Invalid', f'{where} in body must be of type date-time: '
                                                          f'"{value}"', value))
    if actual == 'array':
        if 'maxItems' in schema and len(value) > schema['maxItems']:
            errors.append(FieldError(path, 'TooMany', f'must have at most {schema["maxItems"]} items', len(value)))
        if 'minItems' in schema and len(value) < schema['minItems']:
            errors.append(FieldError(path, 'Invalid', f'{where} in body should have at least {schema["minItems"]} '
                                                      f'items', len(value)))
        list_type = schema.get('x-kubernetes-list-type')
        if list_type in ('set', 'map'):
            keys = schema.get('x-kubernetes-list-map-keys') or []
            seen: list[Any] = []
            for i, item in enumerate(value):
                ident = item if list_type == 'set' else [_dig(item, (k,)) for k in keys]
                if any(_same(ident, other) for other in seen):
                    errors.append(FieldError(f'{path}[{i}]', 'Duplicate', value=ident))
                seen.append(ident)
        if isinstance(schema.get('items'), dict):
            for i, item in enumerate(value):
                schema_validate(item, schema['items'], f'{path}[{i}]', errors)
    if actual == 'object':
        for key in schema.get('required') or []:
            if key not in value:
                errors.append(FieldError(_fmt_path(path, key), 'Required'))
        if 'maxProperties' in schema and len(value) > schema['maxProperties']:
            errors.append(FieldError(path, 'TooMany', f'must have at most {schema["maxProperties"]} items',
                                     len(value)))
        if 'minProperties' in schema and len(value) < schema['minProperties']:
            errors.append(FieldError(path, 'Invalid', f'{where} in body should have at least '
                                                      f'{schema["minProperties"]} properties', len(value)))
        props = schema.get('properties') or {}
        additional = schema.get('additionalProperties')
        for key, sub in value.items():
            if key in props:
                schema_validate(sub, props[key], _fmt_path(path, key), errors)
            elif isinstance(additional, dict):
                schema_validate(sub, additional, _fmt_path(path, key, is_map=True), errors)
    for sub in schema.get('allOf') or []:
        schema_validate(value, sub, path, errors)
    if schema.get('anyOf') and not any(_valid(value, sub, path) for sub in schema['anyOf']):
        errors.append(FieldError(path, 'Invalid', f'{where} in body must match at least one schema in anyOf',
                                 value))
    if schema.get('oneOf') and sum(_valid(value, sub, path) for sub in schema['oneOf']) != 1:
        errors.append(FieldError(path, 'Invalid', f'{where} in body must match exactly one schema in oneOf',
                                 value))
    if isinstance(schema.get('not'), dict) and _valid(value, schema['not'], path):
        errors.append(FieldError(path, 'Invalid', f'{where} in body must not be valid against the schema', value))


def _valid(value: Any, schema: JsonDict, path: str) -> bool:
    errors: list[FieldError] = []
    schema_validate(value, schema, path, errors)
    return not errors


# ----------------------------------------------------------------------------------------------------------
# Generic object-metadata validation (as apimachinery's ValidateObjectMeta).
# ----------------------------------------------------------------------------------------------------------

def _name_errors(name: str, style: str, field: str = 'metadata.name') -> list[FieldError]:
    if style == 'any':
        return []
    if style == 'label':
        if len(name) > 63 or not _DNS1123_LABEL.fullmatch(name):
            return [FieldError(field, 'Invalid', "a lowercase RFC 1123 label must consist of lower case alphanumeric "
                               "characters or '-', and must start and end with an alphanumeric character "
                               "(e.g. 'my-name',  or '123-abc', regex used for validation is "
                               "'[a-z0-9]([-a-z0-9]*[a-z0-9])?')", name)]
    elif style == 'dns1035':
        if len(name) > 63 or not _DNS1035_LABEL.fullmatch(name):
            return [FieldError(field, 'Invalid', "a DNS-1035 label must consist of lower case alphanumeric "
                               "characters or '-', start with an alphabetic character, and end with an "
                               "alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for "
                               "validation is '[a-z]([-a-z0-9]*[a-z0-9])?')", name)]
    elif len(name) > 253 or not _DNS1123_SUBDOMAIN.fullmatch(name):
        return [FieldError(field, 'Invalid', "a lowercase RFC 1123 subdomain must consist of lower case "
                           "alphanumeric characters, '-' or '.', and must start and end with an alphanumeric "
                           "character (e.g. 'example.com', regex used for validation is "
                           "'[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')", name)]
    return []


def _meta_errors(obj: JsonDict, name_style: str) -> list[FieldError]:
    meta = _meta(obj)
    errors: list[FieldError] = []
    name = meta.get('name')
    if not isinstance(name, str) or not name:
        errors.append(FieldError('metadata.name', 'Required', 'name or generateName is required'))
    else:
        errors += _name_errors(name, name_style)
    labels = meta.get('labels') or {}
    if not isinstance(labels, dict):
        errors.append(FieldError('metadata.labels', 'Invalid', 'must be a map of strings', labels))
        labels = {}
    for key, value in labels.items():
        if error := _check_label_key(key):
            errors.append(FieldError('metadata.labels', 'Invalid', error, key))
        if not isinstance(value, str):
            errors.append(FieldError(f'metadata.labels[{key}]', 'Invalid', 'must be a string', value))
        elif error := _check_label_value(value):
            errors.append(FieldError('metadata.labels', 'Invalid', error, value))
    annotations = meta.get('annotations') or {}
    total = 0
    for key, value in annotations.items():
        if error := _check_label_key(key.lower()):
            errors.append(FieldError('metadata.annotations', 'Invalid', error, key))
        if not isinstance(value, str):
            errors.append(FieldError(f'metadata.annotations[{key}]', 'Invalid', 'must be a string', value))
        total += len(key) + len(str(value))
    if total > _ANNOTATIONS_LIMIT:
        errors.append(FieldError('metadata.annotations', 'TooLong', f'must have at most {_ANNOTATIONS_LIMIT} bytes'))
    controllers = 0
    for i, ref in enumerate(meta.get('ownerReferences') or []):
        for key in ('apiVersion', 'kind', 'name', 'uid'):
            if not (ref or {}).get(key):
                errors.append(FieldError(f'metadata.ownerReferences[{i}].{key}', 'Invalid', f'{key} must not be empty',
                                         ''))
        controllers += bool((ref or {}).get('controller'))
    if controllers > 1:
        errors.append(FieldError('metadata.ownerReferences', 'Invalid',
                                 'Only one reference can have Controller set to true', controllers))
    finalizers = meta.get('finalizers') or []
    for i, finalizer in enumerate(finalizers):
        if not isinstance(finalizer, str) or _check_label_key(finalizer):
            errors.append(FieldError(f'metadata.finalizers[{i}]', 'Invalid', 'name part must consist of '
                                     "alphanumeric characters, '-', '_' or '.'", finalizer))
    return errors


# ----------------------------------------------------------------------------------------------------------
# The emulator.
# ----------------------------------------------------------------------------------------------------------

@dataclasses.dataclass
class _Event:
    rv: int
    type: str
    old: JsonDict | None
    new: JsonDict


@dataclasses.dataclass
class _Watcher:
    rd: ResourceDef  # the requested view (events.k8s.io events are converted at delivery)
    namespace: str | None
    name: str | None
    labels: list[_Requirement]
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
        return all((_field_value(obj, f) == v) == (op == '=') for f, op, v in self.fields)

    def translate(self, event: _Event) -> tuple[str, JsonDict] | None:
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


@dataclasses.dataclass(frozen=True)
class RequestRecord:
    """One served API request, for assertions and benchmarks."""
    verb: str
    resource: str
    namespace: str | None
    name: str | None
    subresource: str | None
    code: int


@dataclasses.dataclass
class _Target:
    group: str
    version: str
    plural: str
    namespace: str | None
    name: str | None
    subresource: str | None
    watch_path: bool


def _parse_api_path(path: str) -> _Target | None:
    parts = [p for p in path.split('/') if p]
    if len(parts) >= 3 and parts[0] == 'api':
        group, version, rest = '', parts[1], parts[2:]
    elif len(parts) >= 4 and parts[0] == 'apis':
        group, version, rest = parts[1], parts[2], parts[3:]
    else:
        return None
    watch_path = rest[0] == 'watch'
    rest = rest[1:] if watch_path else rest
    if not rest:
        return None
    namespace = None
    if rest[0] == 'namespaces' and len(rest) >= 3 and not (group == '' and len(rest) == 3 and
                                                         rest[2] in ('status', 'finalize')):
        namespace, rest = rest[1], rest[2:]
    plural, name = rest[0], rest[1] if len(rest) > 1 else None
    subresource = '/'.join(rest[2:]) or None
    return _Target(group, version, plural, namespace, name, subresource, watch_path)


def _crd_doc(group: str, version: str, plural: str, kind: str, *, namespaced: bool, status: bool,
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
    _crd_doc('openmodel.io', 'v1alpha1', 'openmodels', 'OpenModel', namespaced=True, status=True,
             short_names=['om']),
    _crd_doc('openmodel.io', 'v1alpha1', 'modeltrustpolicies', 'ModelTrustPolicy', namespaced=False,
             status=True, short_names=['mtp']),
    _crd_doc('kopf.dev', 'v1', 'clusterkopfpeerings', 'ClusterKopfPeering', namespaced=False, status=True),
    _crd_doc('kopf.dev', 'v1', 'kopfpeerings', 'KopfPeering', namespaced=True, status=True),
]


@attrs.define(kw_only=True)
class KubeEmulator(kmock.KubernetesEmulator):
    """
    kmock's Kubernetes emulator made stateful and strict like a bare kube-apiserver v1.28 (see module doc).

    Serve it with ``kmock.Server(emulator)`` inside ``async with emulator:``; the ``kube`` fixture in
    ``tests/kube_fixtures.py`` does both. kmock's DSL reactions with a normal priority still take
    precedence (``kube['patch', kube.resource('v1/configmaps')] << 500`` injects a failure).
    """

    crds: Iterable[JsonDict] = ()  # CRD manifests to install on top of (and instead of) DEFAULT_CRDS
    default_crds: bool = True
    keep_alive: bool = False  # False: "Connection: close", so Kopf's shutdown never waits for idle sockets

    _defs: dict[kmock.resource, ResourceDef] = attrs.field(factory=dict, init=False)
    _rv: int = attrs.field(default=1000, init=False)
    _log: dict[kmock.resource, list[_Event]] = attrs.field(factory=lambda: collections.defaultdict(list),
                                                            init=False)
    _compacted_rv: int = attrs.field(default=0, init=False)
    _watchers: dict[kmock.resource, list[_Watcher]] = attrs.field(
        factory=lambda: collections.defaultdict(list), init=False)
    _conflicts: dict[tuple[kmock.resource, str | None, str], list[Any]] = attrs.field(factory=dict, init=False)
    _cluster_ips: Iterator[ipaddress.IPv4Address] = attrs.field(
        factory=lambda: iter(ipaddress.IPv4Network('10.96.0.0/12').hosts()), init=False)
    _node_ports: Iterator[int] = attrs.field(factory=lambda: iter(range(30000, 32768)), init=False)
    _changed: asyncio.Event | None = attrs.field(default=None, init=False)
    _closing: bool = attrs.field(default=False, init=False)
    _finishing_crds: bool = attrs.field(default=False, init=False)
    request_counts: collections.Counter[str] = attrs.field(factory=collections.Counter, init=False)
    request_log: list[RequestRecord] = attrs.field(factory=list, init=False)

    def __attrs_post_init__(self) -> None:
        # Only the scaffold's discovery & /version; kmock's own (lenient) object handling is replaced.
        kmock.KubernetesScaffold.__attrs_post_init__(self)
        self._declare_builtins()
        crds = list(DEFAULT_CRDS) if self.default_crds else []
        names = {crd['metadata']['name'] for crd in self.crds}
        for crd in [c for c in crds if c['metadata']['name'] not in names] + list(self.crds):
            self.install_crd(crd)
        for namespace in SYSTEM_NAMESPACES:
            self.create_namespace(namespace)
        self._create('v1/services', 'default', {
            'metadata': {'name': 'kubernetes', 'labels': {'component': 'apiserver', 'provider': 'kubernetes'}},
            'spec': {'ports': [{'name': 'https', 'port': 443, 'targetPort': 6443}]}}, manager='kube-apiserver')

    # ------------------------------------------------------------------------------------------------------
    # Declarations.
    # ------------------------------------------------------------------------------------------------------

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

    def install_crd(self, crd: JsonDict) -> JsonDict:
        """Create a CustomResourceDefinition (as ``kubectl apply -f crd.yaml`` would) and serve its resource."""
        name = crd['metadata']['name']
        existing = self._live(self._def('customresourcedefinitions'), None, name)
        if existing is not None:
            body = copy.deepcopy(crd)
            _meta(body)['resourceVersion'] = existing['metadata']['resourceVersion']
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

    # ------------------------------------------------------------------------------------------------------
    # Storage.
    # ------------------------------------------------------------------------------------------------------

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
        items = [obj.raw for (res, _, _), obj in self._objects.items() if res == rd.key and not obj.deleted]
        return sorted(items, key=lambda o: (o['metadata'].get('namespace') or '', o['metadata']['name']))

    def _next_rv(self) -> int:
        self._rv += 1
        return self._rv

    def _commit(self, rd: ResourceDef, etype: str, old: JsonDict | None, new: JsonDict | None) -> JsonDict:
        """Store a new state (or a deletion), bump the global resourceVersion, notify the watchers."""
        rv = self._next_rv()
        state = copy.deepcopy(new if new is not None else old)
        assert state is not None
        meta = _meta(state)
        meta['resourceVersion'] = str(rv)
        key = (rd.key, meta.get('namespace') if rd.namespaced else None, meta['name'])
        if etype == 'DELETED':
            self._objects[key].delete()
        elif key in self._objects:
            self._objects[key].history.append(state)
        else:
            self._objects[key] = state
        event = _Event(rv, etype, old, state)
        self._log[rd.key].append(event)
        for watcher in list(self._watchers[rd.key]):
            if (translated := watcher.translate(event)) is not None:
                watcher.queue.put_nowait(translated)
        if self._changed is not None:
            self._changed.set()
        self._after_commit(rd, etype, state)
        return state

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

    # ------------------------------------------------------------------------------------------------------
    # HTTP entry point.
    # ------------------------------------------------------------------------------------------------------

    async def __call__(self, raw_request: aiohttp.web.BaseRequest) -> aiohttp.web.StreamResponse:
        await raw_request.read()
        target = _parse_api_path(raw_request.path)
        if raw_request.path.rstrip('/') == '/version':
            self.request_counts['get'] += 1
            self.request_log.append(RequestRecord('get', 'version', None, None, None, 200))
            return self._finish(aiohttp.web.json_response(KUBE_VERSION))
        if target is None:
            self.request_counts['discovery'] += 1
            return self._finish(await super().__call__(raw_request))

        try:
            data: Any = json.loads(raw_request_body) if (raw_request_body := await raw_request.text()) else None
        except ValueError:
            data = None
        request = kmock.Request(
            id=len(self._requests), raw_request=raw_request, url=raw_request.url, method=raw_request.method,
            params=dict(raw_request.query), headers=dict(raw_request.headers), cookies=dict(raw_request.cookies),
            body=await raw_request.read(), text=await raw_request.text(), data=data,
            action=self._action(raw_request.method, target, raw_request.query), resource=kmock.resource(
                target.group, target.version, target.plural),
            namespace=target.namespace, name=target.name, subresource=target.subresource)
        self._requests.append(request)

        verb = self._verb(raw_request.method, target, raw_request.query)
        self.request_counts[verb] += 1  # counted on arrival: long watches are counted while they stream
        reacted = await self._user_reaction(request)
        if reacted is not None:
            self.request_log.append(RequestRecord(verb, target.plural, target.namespace, target.name,
                                                  target.subresource, reacted.status))
            return reacted
        try:
            response = await self._serve(raw_request, target, verb)
        except ApiError as e:
            response = aiohttp.web.json_response(e.status(), status=e.code)
        except Exception as e:  # a bug of the emulator: report it loudly, as kmock does
            if self._errors:
                self._errors[-1].append(e)
            response = aiohttp.web.json_response(
                ApiError(500, 'InternalError', f'emulator failure: {e!r}').status(), status=500)
        self.request_log.append(RequestRecord(verb, target.plural, target.namespace, target.name,
                                              target.subresource, response.status))
        return self._finish(response)

    def _finish(self, response: aiohttp.web.StreamResponse) -> aiohttp.web.StreamResponse:
        if not self.keep_alive and not response.prepared:
            response.force_close()
        return response

    @staticmethod
    def _verb(method: str, target: _Target, query: Mapping[str, str]) -> str:
        watching = target.watch_path or query.get('watch') in ('true', '1')
        match method:
            case 'GET':
                return 'watch' if watching else 'get' if target.name else 'list'
            case 'POST':
                return 'create'
            case 'PUT':
                return 'update'
            case 'PATCH':
                return 'patch'
            case 'DELETE':
                return 'delete' if target.name else 'deletecollection'
        return method.lower()

    @staticmethod
    def _action(method: str, target: _Target, query: Mapping[str, str]) -> kmock.action | None:
        verb = KubeEmulator._verb(method, target, query)
        return {'get': kmock.action.FETCH, 'list': kmock.action.LIST, 'watch': kmock.action.WATCH,
                'create': kmock.action.CREATE, 'patch': kmock.action.UPDATE,
                'delete': kmock.action.DELETE}.get(verb)

    async def _handle(self, request: kmock.Request) -> aiohttp.web.StreamResponse:
        # Non-object requests (discovery): kmock's plain dispatch, without its lenient object tracking.
        return await kmock.RawHandler._handle(self, request)

    async def _user_reaction(self, request: kmock.Request) -> aiohttp.web.StreamResponse | None:
        """kmock DSL reactions with a normal (non-fallback) priority win over the emulation."""
        payloads = [p for p in self._payloads if not (p.priorities and p.priorities[0] == -math.inf)]
        payloads.sort(key=lambda p: tuple(-x for x in p.priorities))
        for payload in payloads:
            if request in payload._source and not payload._disabled.is_set():
                try:
                    response: aiohttp.web.StreamResponse = await payload(request)
                    return response
                except kmock.ReactionMismatchError:  # type: ignore[attr-defined]  # exported, not in __all__
                    payload._disabled.set()
                except NotImplementedError:
                    pass
        return None

    async def _serve(self, raw: aiohttp.web.BaseRequest, target: _Target, verb: str) -> aiohttp.web.StreamResponse:
        rd = self._defs.get(kmock.resource(target.group, target.version, target.plural))
        if rd is None:
            raise _not_found_route()
        if target.namespace is not None and not rd.namespaced:
            raise _not_found_route()
        if target.name is not None and rd.namespaced and target.namespace is None:
            raise _not_found_route()
        if verb not in rd.verbs:
            raise ApiError(405, 'MethodNotAllowed', 'the server does not allow this method on the requested '
                                                    'resource', {})
        subresource = target.subresource
        if subresource is not None and subresource not in rd.subresources:
            raise _not_found_route()
        if subresource not in (None, 'status') and not (rd.plural == 'namespaces' and subresource == 'finalize'):
            raise ApiError(501, 'NotImplemented', f'the emulator does not implement the {subresource!r} '
                                                  f'subresource of {rd.qualified}', {})
        if subresource is not None and verb not in ('get', 'update', 'patch'):
            raise ApiError(405, 'MethodNotAllowed', 'the server does not allow this method on the requested '
                                                    'resource', {})
        query = raw.query
        manager = query.get('fieldManager') or (raw.headers.get('User-Agent') or '').split('/')[0][:128]
        dry_run = query.get('dryRun') == 'All'
        match verb:
            case 'get':
                return aiohttp.web.json_response(self._read(rd, target.namespace, target.name or ''))
            case 'list':
                return aiohttp.web.json_response(self._list(rd, target.namespace, query))
            case 'watch':
                return await self._watch(raw, rd, target, query)
            case 'create':
                if target.name is not None:
                    raise ApiError(405, 'MethodNotAllowed', 'the server does not allow this method on the '
                                                            'requested resource', {})
                if rd.namespaced and target.namespace is None:
                    raise ApiError(405, 'MethodNotAllowed', 'the server does not allow this method on the '
                                                            'requested resource', {})
                body = self._body(raw, await raw.text())
                obj, warnings = self._create_ex(rd, target.namespace, body, manager=manager, dry_run=dry_run,
                                                validation=query.get('fieldValidation', 'Warn'))
                return self._respond(self._present(rd, obj), 201, warnings)
            case 'update':
                body = self._body(raw, await raw.text())
                self._maybe_inject_conflict(rd, target, 'update')
                obj, warnings = self._write_ex(rd, target.namespace, target.name or '', body, manager=manager,
                                               subresource=subresource, put=True, dry_run=dry_run,
                                               validation=query.get('fieldValidation', 'Warn'))
                return self._respond(self._present(rd, obj), 200, warnings)
            case 'patch':
                return await self._patch(raw, rd, target, manager=manager, dry_run=dry_run)
            case 'delete':
                self._maybe_inject_conflict(rd, target, 'delete')
                options = self._delete_options(raw, await raw.text())
                obj, status = self._delete(rd, target.namespace, target.name or '', options, dry_run=dry_run)
                return aiohttp.web.json_response(obj, status=status)
            case 'deletecollection':
                options = self._delete_options(raw, await raw.text())
                items = self._list(rd, target.namespace, query)['items']
                for item in items:
                    self._delete(rd, item['metadata'].get('namespace'), item['metadata']['name'], options,
                                 dry_run=dry_run)
                return aiohttp.web.json_response(self._list_envelope(rd, items))
        raise ApiError(405, 'MethodNotAllowed', 'the server does not allow this method on the requested resource',
                       {})

    @staticmethod
    def _respond(obj: JsonDict, status: int, warnings: list[str]) -> aiohttp.web.StreamResponse:
        response = aiohttp.web.json_response(obj, status=status)
        for warning in warnings:
            response.headers.add('Warning', f'299 - {json.dumps(warning)}')
        return response

    @staticmethod
    def _body(raw: aiohttp.web.BaseRequest, text: str) -> Any:
        content_type = raw.headers.get('Content-Type', 'application/json').split(';')[0].strip()
        try:
            if content_type.endswith('yaml'):
                return yaml.safe_load(text)
            return json.loads(text)
        except (ValueError, yaml.YAMLError) as e:
            raise _bad_request(f"couldn't get version/kind; json parse error: {e}") from None

    def _maybe_inject_conflict(self, rd: ResourceDef, target: _Target, verb: str) -> None:
        key = (self._storage(rd).key, target.namespace if rd.namespaced else None, target.name or '')
        pending = self._conflicts.get(key)
        if pending and verb in pending[1]:
            pending[0] -= 1
            if pending[0] <= 0:
                del self._conflicts[key]
            raise rd.conflict(target.name or '')

    # ------------------------------------------------------------------------------------------------------
    # Reading, listing, watching.
    # ------------------------------------------------------------------------------------------------------

    def _present(self, rd: ResourceDef, obj: JsonDict, *, in_list: bool = False) -> JsonDict:
        """Render a stored object as the requested API (version) shows it."""
        if rd.group == 'events.k8s.io':
            obj = _event_from_core(obj)
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

    def _state_at(self, rd: ResourceDef, rv: int) -> list[JsonDict]:
        if rv < self._compacted_rv:
            raise ApiError(410, 'Expired', 'The provided continue parameter is too old to display a consistent '
                                           'list result. You can start a new list without the continue parameter.')
        state: dict[tuple[str, str], JsonDict] = {}
        for event in self._log[rd.key]:
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
        matcher = _Watcher(rd, namespace, None, labels, fields)
        token = query.get('continue')
        if token:
            try:
                decoded = json.loads(base64.urlsafe_b64decode(token.encode()))
                list_rv, start = int(decoded['rv']), tuple(decoded['start'])
            except (ValueError, KeyError, TypeError, binascii.Error):
                raise _bad_request('continue key is not valid') from None
            items = [o for o in self._state_at(storage, list_rv)
                     if (o['metadata'].get('namespace') or '', o['metadata']['name']) > start]
        else:
            list_rv, items = self._rv, self._all_live(storage)
        items = [o for o in items if matcher.matches(o)]
        try:
            limit = int(query.get('limit') or 0)
        except ValueError:
            raise _bad_request(f'invalid limit: {query.get("limit")!r}') from None
        envelope = self._list_envelope(rd, [], list_rv)
        if limit and len(items) > limit:
            last = items[limit - 1]['metadata']
            envelope['metadata']['continue'] = base64.urlsafe_b64encode(json.dumps(
                {'rv': list_rv, 'start': [last.get('namespace') or '', last['name']]}).encode()).decode()
            envelope['metadata']['remainingItemCount'] = len(items) - limit
            items = items[:limit]
        envelope['items'] = [self._present(rd, o, in_list=True) for o in items]
        return envelope

    async def _watch(self, raw: aiohttp.web.BaseRequest, rd: ResourceDef, target: _Target,
                     query: Mapping[str, str]) -> aiohttp.web.StreamResponse:
        if query.get('sendInitialEvents'):
            raise ApiError(422, 'Invalid', 'ListOptions.meta.k8s.io "" is invalid: sendInitialEvents: Forbidden: '
                                           'sendInitialEvents is forbidden for watch unless the WatchList feature '
                                           'gate is enabled', {'kind': 'ListOptions', 'group': 'meta.k8s.io'})
        storage = self._storage(rd)
        watcher = _Watcher(rd, target.namespace, target.name,
                           parse_label_selector(query.get('labelSelector', '')),
                           parse_field_selector(query.get('fieldSelector', ''), rd))
        since = query.get('resourceVersion', '')
        if since not in ('', '0') and not since.isdigit():
            raise _bad_request(f'invalid resource version: {since!r}')
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

    # ------------------------------------------------------------------------------------------------------
    # Writing: create, update (PUT/PATCH/apply), delete.
    # ------------------------------------------------------------------------------------------------------

    def _create(self, resource: str | ResourceDef, namespace: str | None, body: JsonDict, *,
                manager: str = 'test') -> JsonDict:
        obj, _ = self._create_ex(self._def(resource), namespace, body, manager=manager)
        return obj

    def _create_ex(self, rd: ResourceDef, namespace: str | None, body: Any, *, manager: str,
                   dry_run: bool = False, validation: str = 'Warn', operation: str = 'Update',
                   apply_paths: set[Path] | None = None) -> tuple[JsonDict, list[str]]:
        if not isinstance(body, dict):
            raise _bad_request('the body of the request must be a JSON object')
        obj = copy.deepcopy(body)
        self._check_type_meta(rd, obj)
        if rd.group == 'events.k8s.io':
            obj = _event_to_core(obj)
        storage = self._storage(rd)
        obj['apiVersion'], obj['kind'] = storage.api_version, storage.kind
        meta = _meta(obj)
        if meta.get('resourceVersion'):
            raise _bad_request('resourceVersion should not be set on objects to be created')
        if rd.namespaced:
            if meta.get('namespace') and namespace and meta['namespace'] != namespace:
                raise _bad_request('the namespace of the provided object does not match the namespace sent on '
                                   'the request')
            meta['namespace'] = namespace or meta.get('namespace')
        else:
            meta.pop('namespace', None)
        if not meta.get('name') and meta.get('generateName'):
            meta['name'] = meta['generateName'] + ''.join(random.choices(_GENERATE_CHARS, k=5))
        name = meta.get('name') or ''
        if rd.namespaced:
            self._admit_namespace(rd, meta['namespace'], name)
        for key in _SYSTEM_META:
            meta.pop(key, None)
        meta['uid'] = str(uuid.uuid4())
        meta['creationTimestamp'] = _now()
        if rd.generation_mode:
            meta['generation'] = 1
        if storage.has_status:
            obj.pop('status', None)  # create cannot set status when it is a subresource
        warnings = self._normalize(rd, storage, obj, None, validation=validation)
        meta = _meta(obj)  # normalization may have rebuilt the metadata
        if self._live(storage, meta.get('namespace'), name) is not None:
            raise rd.already_exists(name)
        scope = 'all' if not storage.has_status else 'main'
        paths = apply_paths if apply_paths is not None else set(_leaves(obj, scope))
        meta['managedFields'] = [_Manager(manager, operation, '', storage.api_version, _now(), paths).render()]
        if dry_run:
            return obj, warnings
        return self._commit(storage, 'ADDED', None, obj), warnings

    def _check_type_meta(self, rd: ResourceDef, obj: JsonDict) -> None:
        if obj.get('apiVersion') not in (None, rd.api_version):
            raise _bad_request(f'the API version in the data ({obj.get("apiVersion")}) does not match the expected '
                               f'API version ({rd.api_version})')
        if obj.get('kind') not in (None, rd.kind):
            raise _bad_request(f'the kind in the data ({obj.get("kind")}) does not match the expected kind '
                               f'({rd.kind})')

    def _admit_namespace(self, rd: ResourceDef, namespace: str | None, name: str) -> None:
        """The NamespaceLifecycle admission plugin (enabled by default in kube-apiserver)."""
        ns = self._live(self._def('v1/namespaces'), None, namespace or '')
        if ns is None:
            raise ApiError(404, 'NotFound', f'namespaces "{namespace}" not found',
                           {'name': namespace, 'kind': 'namespaces'})
        if ns['metadata'].get('deletionTimestamp'):
            why = f'unable to create new content in namespace {namespace} because it is being terminated'
            raise rd.forbidden(name, why, {'reason': 'NamespaceTerminating', 'message': why,
                                           'field': 'metadata.namespace'})

    def _write(self, resource: str | ResourceDef, namespace: str | None, name: str, body: JsonDict, *,
               manager: str = 'test', subresource: str | None = None) -> JsonDict:
        obj, _ = self._write_ex(self._def(resource), namespace, name, body, manager=manager,
                                subresource=subresource, put=True)
        return obj

    def _write_ex(self, rd: ResourceDef, namespace: str | None, name: str, body: Any, *, manager: str,
                  subresource: str | None, put: bool, dry_run: bool = False, validation: str = 'Warn',
                  operation: str = 'Update', apply_paths: set[Path] | None = None,
                  forced: set[Path] | None = None) -> tuple[JsonDict, list[str]]:
        """The common update path of PUT, every PATCH flavour and apply: the candidate is a full object."""
        if not isinstance(body, dict):
            raise _bad_request('the body of the request must be a JSON object')
        storage = self._storage(rd)
        old = self._live(storage, namespace if rd.namespaced else None, name)
        if old is None:
            raise rd.not_found(name)
        new = copy.deepcopy(body)
        self._check_type_meta(rd, new)
        if rd.group == 'events.k8s.io':
            new = _event_to_core(new)
        new['apiVersion'], new['kind'] = storage.api_version, storage.kind
        meta = _meta(new)
        old_meta = old['metadata']
        if meta.get('name') not in (None, name):
            raise _bad_request(f'the name of the object ({meta.get("name")}) does not match the name on the URL '
                               f'({name})')
        if rd.namespaced and meta.get('namespace') not in (None, '', namespace):
            raise _bad_request('the namespace of the provided object does not match the namespace sent on the '
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
        elif subresource == 'finalize':  # namespaces: only spec.finalizers may change here
            finalizers = _dig(new, ('spec', 'finalizers')) or []
            new = copy.deepcopy(old)
            new.setdefault('spec', {})['finalizers'] = finalizers
        else:
            if storage.has_status:
                if 'status' in old:
                    new['status'] = copy.deepcopy(old['status'])
                else:
                    new.pop('status', None)
            # System fields are owned by the server.
            for key in _SYSTEM_META:
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
        meta = _meta(new)
        meta['resourceVersion'] = old_meta['resourceVersion']
        warnings = self._normalize(rd, storage, new, old, validation=validation)
        meta = _meta(new)  # normalization may have rebuilt the metadata

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
            if not _same(content(old), content(new)):
                meta['generation'] = old_meta['generation'] + 1

        self._update_managers(storage, old, new, manager, operation, subresource or '', apply_paths, forced)
        if _same(old, new):
            return old, warnings  # a no-op: no write, no new resourceVersion, no watch event
        if dry_run:
            return new, warnings
        if self._ready_to_delete(storage, new):
            self._commit(storage, 'DELETED', old, old)
            return old, warnings
        return self._commit(storage, 'MODIFIED', old, new), warnings

    def _update_managers(self, rd: ResourceDef, old: JsonDict, new: JsonDict, manager: str, operation: str,
                         subresource: str, apply_paths: set[Path] | None, forced: set[Path] | None) -> None:
        if subresource == 'finalize':
            subresource = ''
        scope = 'status' if subresource == 'status' else ('main' if rd.has_status else 'all')
        old_leaves, new_leaves = _leaves(old, scope), _leaves(new, scope)
        touched = {p for p, v in new_leaves.items() if p not in old_leaves or not _same(old_leaves[p], v)}
        touched |= set(old_leaves) - set(new_leaves)
        touched |= forced or set()
        managers = _read_managers(old)
        mine = next((m for m in managers if m.ident == (manager, operation, subresource)), None)
        for entry in managers:
            in_scope = (entry.subresource == 'status') == (subresource == 'status')
            if entry is mine or not in_scope:
                continue
            kept = {p for p in entry.paths if not any(_overlaps(p, t) for t in touched)}
            if kept != entry.paths:
                entry.paths, entry.time = kept, _now()
        if apply_paths is not None:
            wanted = set(apply_paths)
        else:
            wanted = {p for p in (mine.paths if mine else set()) if p in new_leaves} | (touched & new_leaves.keys())
        if mine is None and wanted:
            managers.append(_Manager(manager, operation, subresource, rd.api_version, _now(), wanted))
        elif mine is not None and mine.paths != wanted:
            mine.paths, mine.time = wanted, _now()
        rendered = [m.render() for m in managers if m.paths]
        if rendered:
            new['metadata']['managedFields'] = rendered
        else:
            new['metadata'].pop('managedFields', None)

    async def _patch(self, raw: aiohttp.web.BaseRequest, rd: ResourceDef, target: _Target, *, manager: str,
                     dry_run: bool) -> aiohttp.web.StreamResponse:
        content_type = raw.headers.get('Content-Type', '').split(';')[0].strip()
        flavour = _PATCH_TYPES.get(content_type)
        if flavour is None or (flavour == 'strategic' and rd.custom):
            accepted = ('application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml'
                        if rd.custom else ', '.join(_PATCH_TYPES))
            raise ApiError(415, 'UnsupportedMediaType', f'the body of the request was in an unknown format - '
                                                        f'accepted media types include: {accepted}')
        text = await raw.text()
        name, namespace, subresource = target.name or '', target.namespace, target.subresource
        validation = raw.query.get('fieldValidation', 'Warn')
        try:
            patch = yaml.safe_load(text) if flavour == 'apply' else json.loads(text)
        except (ValueError, yaml.YAMLError) as e:
            raise _bad_request(f'error decoding patch: {e}') from None
        if flavour == 'apply':
            return await self._apply(raw, rd, target, patch, dry_run=dry_run, validation=validation)
        self._maybe_inject_conflict(rd, target, 'patch')
        storage = self._storage(rd)
        current = self._live(storage, namespace if rd.namespaced else None, name)
        if current is None:
            raise rd.not_found(name)
        shown = self._present(rd, current)
        try:
            if flavour == 'json':
                patched = json_patch(shown, patch)
            elif flavour == 'strategic':
                patched = strategic_merge_patch(shown, patch, kind=rd.kind)
            else:
                if not isinstance(patch, dict):
                    raise _bad_request('a merge patch must be a JSON object')
                patched = merge_patch(shown, patch)
        except JsonPatchError as e:
            raise ApiError(422, 'Invalid', 'the server rejected our request due to an error in our request',
                           {'causes': [{'reason': 'UnexpectedServerResponse', 'message': str(e)}]}) from None
        except TypeError as e:
            raise _bad_request(str(e)) from None
        # A patch that does not set resourceVersion is unconditional: it applies to the latest state.
        sent_rv = _dig(patch, ('metadata', 'resourceVersion')) if isinstance(patch, dict) else None
        if flavour == 'json' and isinstance(patch, list):
            sent_rv = next((op.get('value') for op in patch if op.get('path') == '/metadata/resourceVersion'
                            and op.get('op') in ('add', 'replace')), None)
        _meta(patched)['resourceVersion'] = sent_rv or current['metadata']['resourceVersion']
        obj, warnings = self._write_ex(rd, namespace, name, patched, manager=manager, subresource=subresource,
                                       put=False, dry_run=dry_run, validation=validation)
        return self._respond(self._present(rd, obj), 200, warnings)

    async def _apply(self, raw: aiohttp.web.BaseRequest, rd: ResourceDef, target: _Target, config: Any, *,
                     dry_run: bool, validation: str) -> aiohttp.web.StreamResponse:
        """Server-side apply: ownership per field, conflicts unless ``force``, removal of dropped fields."""
        manager = raw.query.get('fieldManager')
        name, namespace = target.name or '', target.namespace
        if not manager:
            raise rd.invalid(name, [FieldError('fieldManager', 'Required', 'is required for apply patch')])
        if not isinstance(config, dict):
            raise _bad_request('the apply configuration must be an object')
        if not config.get('apiVersion') or not config.get('kind'):
            raise _bad_request('invalid object type: apiVersion and kind must be set in an apply configuration')
        self._check_type_meta(rd, config)
        if _dig(config, ('metadata', 'name')) not in (None, name):
            raise _bad_request(f'the name of the object ({_dig(config, ("metadata", "name"))}) does not match the '
                               f'name on the URL ({name})')
        force = raw.query.get('force') in ('true', '1')
        config = _drop_nulls(copy.deepcopy(config))
        subresource = target.subresource or ''
        storage = self._storage(rd)
        scope = 'status' if subresource == 'status' else ('main' if storage.has_status else 'all')
        applied = _leaves(config, scope)
        current = self._live(storage, namespace if rd.namespaced else None, name)
        if current is None:
            if subresource:
                raise rd.not_found(name)
            body = copy.deepcopy(config)
            _meta(body)['name'] = name
            obj, warnings = self._create_ex(rd, namespace, body, manager=manager, dry_run=dry_run,
                                            validation=validation, operation='Apply', apply_paths=set(applied))
            return self._respond(self._present(rd, obj), 201, warnings)
        self._maybe_inject_conflict(rd, target, 'patch')
        sent_rv = _dig(config, ('metadata', 'resourceVersion'))
        if sent_rv and sent_rv != current['metadata']['resourceVersion']:
            raise rd.conflict(name)

        managers = _read_managers(current)
        current_leaves = _leaves(current, scope)
        conflicts: list[tuple[str, Path]] = []
        for path, value in applied.items():
            differs = not _same(current_leaves.get(path, _MISSING), value)
            for entry in managers:
                if entry.ident == (manager, 'Apply', subresource):
                    continue
                if (entry.subresource == 'status') != (subresource == 'status'):
                    continue
                for owned in entry.paths:
                    if owned == path:
                        clash = differs  # the same field: a conflict only if the values differ
                    elif owned[:len(path)] == path:
                        clash = value != {}  # a scalar/list over fields they own inside a map
                    elif path[:len(owned)] == owned:
                        clash = current_leaves.get(owned) != {}  # inside a value (not an empty map) they own
                    else:
                        continue
                    if clash:
                        conflicts.append((entry.manager, path))
        if conflicts and not force:
            causes = [{'reason': 'FieldManagerConflict', 'message': f'conflict with "{m}"',
                       'field': '.' + '.'.join(p)} for m, p in conflicts]
            text = '; '.join(f'conflict with "{m}": .{".".join(p)}' for m, p in conflicts)
            raise ApiError(409, 'Conflict', f'Apply failed with {len(conflicts)} conflict'
                                            f'{"s" if len(conflicts) > 1 else ""}: {text}',
                           rd.details(name, causes=causes))
        forced = {p for _, p in conflicts}

        # Fields this manager applied before but not now are removed unless someone else also owns them.
        previous = next((m.paths for m in managers if m.ident == (manager, 'Apply', subresource)), set())
        others = set().union(*(m.paths for m in managers if m.ident != (manager, 'Apply', subresource)))
        others = {p for p in others if not any(_overlaps(p, f) for f in forced)}
        new = copy.deepcopy(self._present(rd, current))
        for path in previous - set(applied):
            if path not in others and not any(_overlaps(path, o) for o in others):
                _remove_path(new, path)
        new = _deep_merge(new, {k: v for k, v in config.items() if k not in ('apiVersion', 'kind')})
        _meta(new)['resourceVersion'] = current['metadata']['resourceVersion']
        obj, warnings = self._write_ex(rd, namespace, name, new, manager=manager, subresource=target.subresource,
                                       put=False, dry_run=dry_run, validation=validation, operation='Apply',
                                       apply_paths=set(applied), forced=forced)
        return self._respond(self._present(rd, obj), 200, warnings)

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
        new = copy.deepcopy(old)
        new_meta = new['metadata']
        new_meta['finalizers'] = self._gc_finalizers(storage, old, options)
        if not new_meta['finalizers']:
            del new_meta['finalizers']
        graceful = storage.plural == 'pods' and not storage.group and _dig(old, ('spec', 'nodeName'))
        if graceful and new_meta.get('deletionTimestamp') and \
                options.get('gracePeriodSeconds', math.inf) < new_meta.get('deletionGracePeriodSeconds', 0):
            new_meta['deletionTimestamp'] = _now(options['gracePeriodSeconds'])  # a delete may only shorten it
            new_meta['deletionGracePeriodSeconds'] = options['gracePeriodSeconds']
        if not new_meta.get('deletionTimestamp'):
            grace = 0
            if graceful:
                grace = options.get('gracePeriodSeconds', _dig(old, ('spec', 'terminationGracePeriodSeconds')) or 30)
            new_meta['deletionTimestamp'] = _now(grace)
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
        if _same(old, new) or dry_run:
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
        if rd.plural == 'namespaces' and not rd.group and _dig(obj, ('spec', 'finalizers')):
            return False
        return not (rd.plural == 'pods' and not rd.group and _dig(obj, ('spec', 'nodeName'))
                    and meta.get('deletionGracePeriodSeconds'))

    # ------------------------------------------------------------------------------------------------------
    # Per-kind rules: defaulting, normalization and validation, as the built-in registries do.
    # ------------------------------------------------------------------------------------------------------

    def _normalize(self, rd: ResourceDef, storage: ResourceDef, obj: JsonDict, old: JsonDict | None, *,
                   validation: str) -> list[str]:
        name = obj['metadata'].get('name') or ''
        warnings: list[str] = []
        errors: list[FieldError] = []
        if storage.custom:
            pruned: list[str] = []
            if storage.schema is not None:
                pruned_obj = schema_prune(obj, storage.schema, '', pruned, root=True)
                obj.clear()
                obj.update(schema_default(pruned_obj, storage.schema))
            if pruned and validation == 'Strict':
                raise _bad_request('strict decoding error: ' + ', '.join(f'unknown field "{p}"' for p in pruned))
            if validation != 'Ignore':
                warnings += [f'unknown field "{p}"' for p in pruned]
            errors += _meta_errors(obj, 'subdomain')
            if storage.schema is not None:
                # CEL sees only name/generateName of metadata, as in the apiserver.
                def cel_view(o: JsonDict) -> JsonDict:
                    meta = {k: v for k, v in (o.get('metadata') or {}).items() if k in ('name', 'generateName')}
                    return {**o, 'metadata': meta}
                schema_errors: list[FieldError] = []
                schema_validate(cel_view(obj), storage.schema, '', schema_errors)
                errors += schema_errors
                if any('must be of type' in e.detail for e in schema_errors):  # blocking: CEL is skipped
                    errors.append(FieldError('<nil>', 'Invalid', 'some validation rules were not checked because '
                                             'the object was invalid; correct the existing errors to complete '
                                             'validation', None))
                else:
                    schema_cel(cel_view(obj), storage.schema, '', errors, _MISSING if old is None else cel_view(old))
        else:
            hook = getattr(self, f'_kind_{storage.group.replace(".", "_")}_{storage.plural}', None)
            style = {('', 'namespaces'): 'label', ('', 'services'): 'dns1035',
                     ('', 'events'): 'any'}.get((storage.group, storage.plural), 'subdomain')
            errors += _meta_errors(obj, style)
            if hook is not None:
                errors += hook(obj, old, requested=rd)
        if errors:
            raise rd.invalid(name, errors)
        return warnings

    def _kind__namespaces(self, obj: JsonDict, old: JsonDict | None, **_: Any) -> list[FieldError]:
        meta = obj['metadata']
        meta.setdefault('labels', {})['kubernetes.io/metadata.name'] = meta.get('name', '')
        if old is None:
            obj.setdefault('spec', {}).setdefault('finalizers', ['kubernetes'])
            obj['status'] = {'phase': 'Active'}
        return []

    def _kind__events(self, obj: JsonDict, old: JsonDict | None, *, requested: ResourceDef) -> list[FieldError]:
        errors: list[FieldError] = []
        ns = obj['metadata'].get('namespace') or ''
        involved = obj.get('involvedObject') or {}
        strict = requested.group == 'events.k8s.io'
        if not obj.get('eventTime'):
            if strict:
                errors.append(FieldError('eventTime', 'Required'))
            if involved.get('namespace') and involved['namespace'] != ns:
                errors.append(FieldError('involvedObject.namespace', 'Invalid', 'does not match event.namespace',
                                         involved['namespace']))
            elif not involved.get('namespace') and ns not in ('', 'default'):
                errors.append(FieldError('involvedObject.namespace', 'Invalid', 'does not match event.namespace', ''))
        else:
            if not involved.get('namespace') and ns not in ('default', 'kube-system'):
                errors.append(FieldError('involvedObject.namespace', 'Invalid', 'does not match event.namespace', ''))
            controller = 'reportingController' if strict else 'reportingComponent'
            if not obj.get('reportingComponent'):
                errors.append(FieldError(controller, 'Required'))
            elif _check_label_key(obj['reportingComponent']):
                errors.append(FieldError(controller, 'Invalid', 'must be a qualified name', obj['reportingComponent']))
            for key, limit in (('reportingInstance', 128), ('action', 128), ('reason', 128)):
                if not obj.get(key):
                    errors.append(FieldError(key, 'Required'))
                elif len(obj[key]) > limit:
                    errors.append(FieldError(key, 'Invalid', f'can have at most {limit} characters', ''))
            if len(obj.get('message') or '') > 1024:
                errors.append(FieldError('note' if strict else 'message', 'Invalid',
                                         'can have at most 1024 characters', ''))
        if strict:
            if obj.get('type') not in ('Normal', 'Warning'):
                errors.append(FieldError('type', 'Invalid', f'has invalid value: {obj.get("type")}', ''))
            for key, shown in (('firstTimestamp', 'deprecatedFirstTimestamp'),
                               ('lastTimestamp', 'deprecatedLastTimestamp'), ('count', 'deprecatedCount'),
                               ('source', 'deprecatedSource')):
                if obj.get(key):
                    errors.append(FieldError(shown, 'Invalid', 'needs to be unset', ''))
            errors += _name_errors(obj['metadata'].get('name') or '', 'subdomain')
        return errors

    def _kind__configmaps(self, obj: JsonDict, old: JsonDict | None, **_: Any) -> list[FieldError]:
        errors = _data_key_errors(obj, ('data', 'binaryData'))
        for key, value in (obj.get('data') or {}).items():
            if not isinstance(value, str):
                errors.append(FieldError(f'data[{key}]', 'Invalid', 'must be a string', value))
        for key, value in (obj.get('binaryData') or {}).items():
            if _b64(value) is None:
                raise _bad_request(f'illegal base64 data in binaryData[{key}]')
        size = sum(len(k) + len(str(v)) for k, v in (obj.get('data') or {}).items())
        size += sum(len(k) + len(_b64(v) or b'') for k, v in (obj.get('binaryData') or {}).items())
        if size > _DATA_LIMIT:
            errors.append(FieldError('', 'TooLong', f'must have at most {_DATA_LIMIT} bytes'))
        errors += _immutable_data_errors(obj, old, ('data', 'binaryData'))
        return errors

    def _kind__secrets(self, obj: JsonDict, old: JsonDict | None, **_: Any) -> list[FieldError]:
        obj.setdefault('type', 'Opaque')
        string_data = obj.pop('stringData', None) or {}  # write-only: merged into data, never stored
        if string_data:
            data = obj.setdefault('data', None) or {}
            for key, value in string_data.items():
                data[key] = base64.b64encode(str(value).encode()).decode()
            obj['data'] = data
        if 'data' in obj and not obj['data']:
            obj.pop('data')
        errors = _data_key_errors(obj, ('data',))
        total = 0
        for key, value in (obj.get('data') or {}).items():
            decoded = _b64(value)
            if decoded is None:
                raise _bad_request(f'Secret in version "v1" cannot be handled as a Secret: illegal base64 data at '
                                   f'input byte 0 (data[{key}])')
            total += len(decoded)
        if total > _DATA_LIMIT:
            errors.append(FieldError('data', 'TooLong', f'must have at most {_DATA_LIMIT} bytes'))
        required = {'kubernetes.io/tls': ('tls.crt', 'tls.key'), 'kubernetes.io/dockerconfigjson':
                    ('.dockerconfigjson',), 'kubernetes.io/dockercfg': ('.dockercfg',),
                    'kubernetes.io/ssh-auth': ('ssh-privatekey',)}.get(obj['type'], ())
        for key in required:
            if key not in (obj.get('data') or {}):
                errors.append(FieldError(f'data[{key}]', 'Required'))
        if obj['type'] == 'kubernetes.io/service-account-token' and not _dig(
                obj, ('metadata', 'annotations', 'kubernetes.io/service-account.name')):
            errors.append(FieldError('metadata.annotations[kubernetes.io/service-account.name]', 'Required'))
        if old is not None and old.get('type', 'Opaque') != obj['type']:
            errors.append(FieldError('type', 'Invalid', 'field is immutable', obj['type']))
        errors += _immutable_data_errors(obj, old, ('data',))
        return errors

    def _kind__services(self, obj: JsonDict, old: JsonDict | None, **_: Any) -> list[FieldError]:
        spec = obj.setdefault('spec', {})
        errors: list[FieldError] = []
        old_spec = (old or {}).get('spec') or {}
        spec.setdefault('type', 'ClusterIP')
        spec.setdefault('sessionAffinity', 'None')
        if spec['type'] == 'ExternalName':
            if not spec.get('externalName'):
                errors.append(FieldError('spec.externalName', 'Required'))
            return errors
        spec.setdefault('internalTrafficPolicy', 'Cluster')
        for key in ('clusterIP', 'clusterIPs'):  # allocated values survive updates that omit them
            if not spec.get(key) and old_spec.get(key):
                spec[key] = old_spec[key]
        if not spec.get('clusterIP'):
            spec['clusterIP'] = str(next(self._cluster_ips))
        elif old_spec.get('clusterIP') and spec['clusterIP'] != old_spec['clusterIP']:
            errors.append(FieldError('spec.clusterIPs[0]', 'Invalid', 'may not change once set', spec['clusterIP']))
        spec['clusterIPs'] = [spec['clusterIP']]
        spec.setdefault('ipFamilies', ['IPv4'])
        spec.setdefault('ipFamilyPolicy', 'SingleStack')
        ports = spec.get('ports') or []
        if not ports and spec.get('clusterIP') != 'None':
            errors.append(FieldError('spec.ports', 'Required'))
        names: set[str] = set()
        old_ports = {p.get('port'): p for p in old_spec.get('ports') or []}
        for i, port in enumerate(ports):
            port.setdefault('protocol', 'TCP')
            port.setdefault('targetPort', port.get('port'))
            if len(ports) > 1 and not port.get('name'):
                errors.append(FieldError(f'spec.ports[{i}].name', 'Required'))
            if port.get('name') in names:
                errors.append(FieldError(f'spec.ports[{i}].name', 'Duplicate', value=port['name']))
            names.add(port.get('name', ''))
            if not isinstance(port.get('port'), int) or not 1 <= port['port'] <= 65535:
                errors.append(FieldError(f'spec.ports[{i}].port', 'Invalid', 'must be between 1 and 65535, inclusive',
                                         port.get('port')))
            if spec['type'] in ('NodePort', 'LoadBalancer') and not port.get('nodePort'):
                port['nodePort'] = old_ports.get(port.get('port'), {}).get('nodePort') or next(self._node_ports)
        if spec['type'] in ('NodePort', 'LoadBalancer'):
            spec.setdefault('externalTrafficPolicy', 'Cluster')
        if old is None:
            obj['status'] = {'loadBalancer': {}}
        return errors

    def _kind__persistentvolumeclaims(self, obj: JsonDict, old: JsonDict | None, **_: Any) -> list[FieldError]:
        spec = obj.setdefault('spec', {})
        spec.setdefault('volumeMode', 'Filesystem')
        errors: list[FieldError] = []
        if not spec.get('accessModes'):
            errors.append(FieldError('spec.accessModes', 'Required', 'at least 1 access mode is required'))
        if not _dig(spec, ('resources', 'requests', 'storage')):
            errors.append(FieldError('spec.resources[storage]', 'Required'))
        if old is None:
            obj['status'] = {'phase': 'Pending'}
        elif not _same(spec, old.get('spec')):
            bound = _dig(old, ('status', 'phase')) == 'Bound'
            masked = {**spec, 'resources': None} if bound else spec
            old_masked = {**old.get('spec', {}), 'resources': None} if bound else old.get('spec')
            if not _same(masked, old_masked):
                errors.append(FieldError('spec', 'Forbidden', 'spec is immutable after creation except '
                                                              'resources.requests for bound claims'))
        return errors

    def _kind__pods(self, obj: JsonDict, old: JsonDict | None, **_: Any) -> list[FieldError]:
        spec = obj.setdefault('spec', {})
        errors = _pod_spec_errors(spec, 'spec', restart_policies=('Always', 'OnFailure', 'Never'))
        if old is None:
            self._admit_service_account(obj)
            obj['status'] = {'phase': 'Pending', 'qosClass': _qos_class(spec)}
        else:
            def mutable_masked(s: JsonDict) -> JsonDict:
                masked = copy.deepcopy(s)
                for key in ('containers', 'initContainers'):
                    for container in masked.get(key) or []:
                        container.pop('image', None)
                for key in ('activeDeadlineSeconds', 'tolerations', 'schedulingGates', 'terminationGracePeriodSeconds'):
                    masked.pop(key, None)
                return masked
            if not _same(mutable_masked(spec), mutable_masked(old.get('spec') or {})):
                errors.append(FieldError('spec', 'Forbidden', 'pod updates may not change fields other than '
                                         '`spec.containers[*].image`,`spec.initContainers[*].image`,'
                                         '`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to '
                                         'existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to '
                                         'be set to 1 if it was previously negative)'))
        return errors

    def _admit_service_account(self, pod: JsonDict) -> None:
        """The ServiceAccount admission plugin: the account must exist (no controller-manager creates it)."""
        spec = pod['spec']
        account = spec.setdefault('serviceAccountName', spec.get('serviceAccount') or 'default')
        spec['serviceAccount'] = account
        namespace = pod['metadata'].get('namespace')
        if self._live(self._def('v1/serviceaccounts'), namespace, account) is None:
            raise self._def('v1/pods').forbidden(
                pod['metadata'].get('name') or '',
                f'error looking up service account {namespace}/{account}: serviceaccount "{account}" not found')

    def _kind_apps_deployments(self, obj: JsonDict, old: JsonDict | None, **_: Any) -> list[FieldError]:
        spec = obj.setdefault('spec', {})
        spec.setdefault('replicas', 1)
        spec.setdefault('revisionHistoryLimit', 10)
        spec.setdefault('progressDeadlineSeconds', 600)
        strategy = spec.setdefault('strategy', {'type': 'RollingUpdate'})
        if strategy.get('type', 'RollingUpdate') == 'RollingUpdate':
            strategy.setdefault('rollingUpdate', {}).setdefault('maxUnavailable', '25%')
            strategy['rollingUpdate'].setdefault('maxSurge', '25%')
        errors = _workload_errors(spec, old, restart_policies=('Always',))
        if old is None:
            obj.pop('status', None)
        return errors

    def _kind_batch_jobs(self, obj: JsonDict, old: JsonDict | None, **_: Any) -> list[FieldError]:
        spec = obj.setdefault('spec', {})
        meta = obj['metadata']
        if spec.get('completions') is None and spec.get('parallelism') is None:
            spec['completions'] = 1
        spec.setdefault('parallelism', 1)
        spec.setdefault('backoffLimit', 6)
        spec.setdefault('completionMode', 'NonIndexed')
        spec.setdefault('suspend', False)
        errors: list[FieldError] = []
        template = spec.setdefault('template', {})
        if old is None:
            if spec.get('selector') and not spec.get('manualSelector'):
                errors.append(FieldError('spec.selector', 'Invalid', '`selector` will be auto-generated',
                                         spec['selector']))
            elif not spec.get('manualSelector'):
                uid = meta['uid']
                spec['selector'] = {'matchLabels': {'batch.kubernetes.io/controller-uid': uid}}
                labels = template.setdefault('metadata', {}).setdefault('labels', {})
                labels.update({'batch.kubernetes.io/controller-uid': uid, 'batch.kubernetes.io/job-name':
                               meta['name'], 'controller-uid': uid, 'job-name': meta['name']})
            obj.pop('status', None)
        errors += _workload_errors(spec, old, restart_policies=('OnFailure', 'Never'))
        if old is not None:
            old_spec = old.get('spec') or {}
            for key in ('template', 'completions', 'completionMode', 'manualSelector'):
                if not _same(spec.get(key), old_spec.get(key)):
                    errors.append(FieldError(f'spec.{key}', 'Invalid', 'field is immutable', spec.get(key)))
        return errors

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
                     'message': 'no conflicts found', 'lastTransitionTime': _now()},
                    {'type': 'Established', 'status': 'True', 'reason': 'InitialNamesAccepted',
                     'message': 'the initial names have been accepted', 'lastTransitionTime': _now()}]}
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

    # ------------------------------------------------------------------------------------------------------
    # The test-facing API (synchronous: the same in-memory state the HTTP API serves).
    # ------------------------------------------------------------------------------------------------------

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
        self.request_counts.clear()
        self.request_log.clear()

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
        return copy.deepcopy(self._create(rd, namespace or _dig(body, ('metadata', 'namespace')), body,
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

    def complete_job(self, namespace: str, name: str, *, succeeded: bool = True) -> JsonDict:
        """Simulate the Job controller finishing a Job (status as written by v1.28's job controller)."""
        now = _now()
        kind = 'Complete' if succeeded else 'Failed'
        condition = {'type': kind, 'status': 'True', 'lastProbeTime': now, 'lastTransitionTime': now}
        if not succeeded:
            condition.update(reason='BackoffLimitExceeded', message='Job has reached the specified backoff limit')
        status: JsonDict = {'startTime': now, 'active': None, 'ready': 0, 'conditions': [condition],
                            'uncountedTerminatedPods': {}}
        if succeeded:
            status.update(succeeded=1, completionTime=now)
        else:
            status.update(failed=1)
        return self.patch_status('batch/v1/jobs', namespace, name, status)

    def mark_deployment_available(self, namespace: str, name: str) -> JsonDict:
        """Simulate the Deployment controller + kubelet rolling a Deployment out and making it available."""
        deployment = self.get('apps/v1/deployments', namespace, name)
        if deployment is None:
            raise self._def('apps/v1/deployments').not_found(name)
        replicas = deployment['spec'].get('replicas', 1)
        now = _now()
        status = {
            'observedGeneration': deployment['metadata'].get('generation', 1), 'replicas': replicas,
            'updatedReplicas': replicas, 'readyReplicas': replicas, 'availableReplicas': replicas,
            'conditions': [
                {'type': 'Available', 'status': 'True', 'reason': 'MinimumReplicasAvailable',
                 'message': 'Deployment has minimum availability.', 'lastUpdateTime': now,
                 'lastTransitionTime': now},
                {'type': 'Progressing', 'status': 'True', 'reason': 'NewReplicaSetAvailable',
                 'message': f'ReplicaSet "{name}" has successfully progressed.', 'lastUpdateTime': now,
                 'lastTransitionTime': now}]}
        return self.patch_status('apps/v1/deployments', namespace, name, status)

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

    def collect_garbage(self) -> int:
        """
        One full pass of the garbage collector that this apiserver does NOT have (kube-controller-manager).

        Orphans dependents of objects with the ``orphan`` finalizer, deletes dependents of objects in
        foreground deletion and of owners that are gone, and removes the GC finalizers when done.
        Returns the number of objects deleted. Tests call it explicitly to simulate a full cluster.
        """
        deleted = 0
        for _ in range(20):  # until stable
            progress = False
            live: dict[str, tuple[ResourceDef, JsonDict]] = {}
            for rd in list(self._defs.values()):
                if self._storage(rd) is rd and rd.group != 'events.k8s.io':
                    for obj in self._all_live(rd):
                        live[obj['metadata']['uid']] = (rd, obj)
            for rd, obj in live.values():
                meta = obj['metadata']
                refs = meta.get('ownerReferences') or []
                if refs and all(ref.get('uid') not in live for ref in refs) and not meta.get('deletionTimestamp'):
                    self._delete(rd, meta.get('namespace'), meta['name'], {'propagationPolicy': 'Background'})
                    deleted, progress = deleted + 1, True
            for rd, obj in live.values():
                meta = obj['metadata']
                finalizers = meta.get('finalizers') or []
                if not meta.get('deletionTimestamp') or not {'orphan', 'foregroundDeletion'} & set(finalizers):
                    continue
                dependents = [(drd, dep) for drd, dep in live.values()
                              if any(r.get('uid') == meta['uid'] for r in dep['metadata'].get('ownerReferences') or [])
                              and self._live(drd, dep['metadata'].get('namespace'), dep['metadata']['name'])]
                for drd, dep in dependents:
                    dmeta = dep['metadata']
                    if 'orphan' in finalizers:
                        refs = [r for r in dmeta.get('ownerReferences') or [] if r.get('uid') != meta['uid']]
                        self.patch_object(drd.qualified, dmeta.get('namespace'), dmeta['name'],
                                          {'metadata': {'ownerReferences': refs or None}},
                                          manager='generic-garbage-collector')
                    elif not dmeta.get('deletionTimestamp'):
                        self._delete(drd, dmeta.get('namespace'), dmeta['name'], {'propagationPolicy': 'Foreground'})
                        deleted += 1
                release = 'orphan' in finalizers or not any(
                    self._live(drd, d['metadata'].get('namespace'), d['metadata']['name']) for drd, d in dependents)
                if release:
                    kept = [f for f in finalizers if f not in ('orphan', 'foregroundDeletion')]
                    self.patch_object(rd.qualified, meta.get('namespace'), meta['name'],
                                      {'metadata': {'finalizers': kept or None}}, manager='generic-garbage-collector')
                    progress = True
            if not progress:
                break
        return deleted

    def finalize_namespace(self, name: str) -> bool:
        """Simulate the namespace controller: delete the content, then the namespace. True if it is gone."""
        namespaces = self._def('v1/namespaces')
        ns = self._live(namespaces, None, name)
        if ns is None:
            return True
        if not ns['metadata'].get('deletionTimestamp'):
            self._delete(namespaces, None, name, {})
        left = 0
        for rd in list(self._defs.values()):
            if not rd.namespaced or self._storage(rd) is not rd:
                continue
            for obj in self._all_live(rd):
                if obj['metadata'].get('namespace') == name:
                    if not obj['metadata'].get('deletionTimestamp'):
                        self._delete(rd, name, obj['metadata']['name'], {'propagationPolicy': 'Background'})
                    left += self._live(rd, name, obj['metadata']['name']) is not None
        if left:
            return False
        ns = self._live(namespaces, None, name)
        if ns is not None:
            self._write_ex(namespaces, None, name, {'spec': {'finalizers': []}}, manager='namespace-controller',
                           subresource='finalize', put=True)
        return self._live(namespaces, None, name) is None

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


# ----------------------------------------------------------------------------------------------------------
# Helpers of the per-kind rules.
# ----------------------------------------------------------------------------------------------------------

def _drop_nulls(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _drop_nulls(v) for k, v in value.items() if v is not None}
    return value


def _deep_merge(base: JsonDict, overlay: JsonDict) -> JsonDict:
    result = copy.deepcopy(base)
    for key, value in overlay.items():
        if isinstance(value, dict) and isinstance(result.get(key), dict):
            result[key] = _deep_merge(result[key], value)
        else:
            result[key] = copy.deepcopy(value)
    return result


def _remove_path(obj: JsonDict, path: Path) -> None:
    parents: list[tuple[JsonDict, str]] = []
    node: Any = obj
    for key in path[:-1]:
        if not isinstance(node, dict) or key not in node:
            return
        parents.append((node, key))
        node = node[key]
    if isinstance(node, dict):
        node.pop(path[-1], None)
    for parent, key in reversed(parents):  # drop maps emptied by the removal (not the top-level stanzas)
        if parent[key] == {} and parent is not obj:
            del parent[key]


def _b64(value: Any) -> bytes | None:
    if not isinstance(value, str):
        return None
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return None


def _data_key_errors(obj: JsonDict, stanzas: tuple[str, ...]) -> list[FieldError]:
    errors: list[FieldError] = []
    seen: set[str] = set()
    for stanza in stanzas:
        for key in obj.get(stanza) or {}:
            if len(key) > 253 or not _CONFIG_KEY.fullmatch(key):
                errors.append(FieldError(f'{stanza}[{key}]', 'Invalid', "a valid config key must consist of "
                                         "alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  "
                                         "or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')", key))
            if key in seen:
                errors.append(FieldError(f'{stanza}[{key}]', 'Invalid', 'duplicate of key present in data', key))
            seen.add(key)
    return errors


def _immutable_data_errors(obj: JsonDict, old: JsonDict | None, stanzas: tuple[str, ...]) -> list[FieldError]:
    if old is None or not old.get('immutable'):
        return []
    errors: list[FieldError] = []
    if not obj.get('immutable'):
        errors.append(FieldError('immutable', 'Forbidden', 'field is immutable when `immutable` is set'))
    for stanza in stanzas:
        if not _same(obj.get(stanza) or {}, old.get(stanza) or {}):
            errors.append(FieldError(stanza, 'Forbidden', 'field is immutable when `immutable` is set'))
    return errors


def _qos_class(spec: JsonDict) -> str:
    containers = (spec.get('containers') or []) + (spec.get('initContainers') or [])
    resources = [c.get('resources') or {} for c in containers]
    if not any(r.get('requests') or r.get('limits') for r in resources):
        return 'BestEffort'
    guaranteed = all(
        all((r.get('limits') or {}).get(k) and (r.get('requests') or {}).get(k, (r.get('limits') or {}).get(k))
            == (r.get('limits') or {}).get(k) for k in ('cpu', 'memory'))
        for r in resources)
    return 'Guaranteed' if guaranteed else 'Burstable'


def _pod_spec_errors(spec: JsonDict, path: str, *, restart_policies: tuple[str, ...]) -> list[FieldError]:
    """Defaulting and the most common validation rules of a PodSpec (pods and pod templates)."""
    errors: list[FieldError] = []
    spec.setdefault('restartPolicy', 'Always')
    spec.setdefault('dnsPolicy', 'ClusterFirst')
    spec.setdefault('schedulerName', 'default-scheduler')
    spec.setdefault('terminationGracePeriodSeconds', 30)
    spec.setdefault('securityContext', {})
    if spec['restartPolicy'] not in restart_policies:
        errors.append(FieldError(f'{path}.restartPolicy', 'NotSupported',
                                 ', '.join(f'"{p}"' for p in restart_policies), spec['restartPolicy']))
    containers = spec.get('containers') or []
    if not containers:
        errors.append(FieldError(f'{path}.containers', 'Required'))
    names: set[str] = set()
    for key in ('initContainers', 'containers'):
        for i, container in enumerate(spec.get(key) or []):
            where = f'{path}.{key}[{i}]'
            name = container.get('name')
            if not name:
                errors.append(FieldError(f'{where}.name', 'Required'))
            else:
                errors += _name_errors(name, 'label', f'{where}.name')
                if name in names:
                    errors.append(FieldError(f'{where}.name', 'Duplicate', value=name))
                names.add(name)
            if not container.get('image'):
                errors.append(FieldError(f'{where}.image', 'Required'))
            else:
                tag = container['image'].rsplit('/', 1)[-1]
                latest = '@' not in tag and (':' not in tag or tag.endswith(':latest'))
                container.setdefault('imagePullPolicy', 'Always' if latest else 'IfNotPresent')
            container.setdefault('terminationMessagePath', '/dev/termination-log')
            container.setdefault('terminationMessagePolicy', 'File')
            container.setdefault('resources', {})
            for j, port in enumerate(container.get('ports') or []):
                port.setdefault('protocol', 'TCP')
                if not isinstance(port.get('containerPort'), int) or not 1 <= port['containerPort'] <= 65535:
                    errors.append(FieldError(f'{where}.ports[{j}].containerPort', 'Invalid',
                                             'must be between 1 and 65535, inclusive', port.get('containerPort')))
            for j, env in enumerate(container.get('env') or []):
                if not env.get('name'):
                    errors.append(FieldError(f'{where}.env[{j}].name', 'Required'))
    volumes: set[str] = set()
    for i, volume in enumerate(spec.get('volumes') or []):
        if not volume.get('name'):
            errors.append(FieldError(f'{path}.volumes[{i}].name', 'Required'))
        elif volume['name'] in volumes:
            errors.append(FieldError(f'{path}.volumes[{i}].name', 'Duplicate', value=volume['name']))
        volumes.add(volume.get('name', ''))
    for key in ('initContainers', 'containers'):
        for i, container in enumerate(spec.get(key) or []):
            for j, mount in enumerate(container.get('volumeMounts') or []):
                if mount.get('name') not in volumes:
                    errors.append(FieldError(f'{path}.{key}[{i}].volumeMounts[{j}].name', 'NotFound',
                                             value=mount.get('name')))
    return errors


def _selector_matches(selector: JsonDict, labels: Mapping[str, str]) -> bool:
    for key, value in (selector.get('matchLabels') or {}).items():
        if labels.get(key) != value:
            return False
    for expr in selector.get('matchExpressions') or []:
        op = {'In': 'in', 'NotIn': 'notin', 'Exists': 'exists', 'DoesNotExist': '!'}.get(expr.get('operator'), '')
        if not _Requirement(expr.get('key', ''), op, tuple(expr.get('values') or ())).matches(labels):
            return False
    return True


def _workload_errors(spec: JsonDict, old: JsonDict | None, *, restart_policies: tuple[str, ...]) -> list[FieldError]:
    errors: list[FieldError] = []
    template = spec.setdefault('template', {})
    errors += _pod_spec_errors(template.setdefault('spec', {}), 'spec.template.spec',
                               restart_policies=restart_policies)
    selector = spec.get('selector')
    labels = (template.get('metadata') or {}).get('labels') or {}
    if not selector:
        errors.append(FieldError('spec.selector', 'Required'))
    elif not (selector.get('matchLabels') or selector.get('matchExpressions')):
        errors.append(FieldError('spec.selector', 'Invalid', 'empty selector is invalid for deployment', selector))
    elif not _selector_matches(selector, labels):
        errors.append(FieldError('spec.template.metadata.labels', 'Invalid', '`selector` does not match template '
                                                                             '`labels`', labels))
    if old is not None and not _same(selector, (old.get('spec') or {}).get('selector')):
        errors.append(FieldError('spec.selector', 'Invalid', 'field is immutable', selector))
    return errors


# events.k8s.io/v1 <-> core/v1 Event: one storage, two shapes (as the real conversion does).
_EVENT_RENAMES = (('regarding', 'involvedObject'), ('note', 'message'), ('reportingController', 'reportingComponent'),
                  ('deprecatedSource', 'source'), ('deprecatedFirstTimestamp', 'firstTimestamp'),
                  ('deprecatedLastTimestamp', 'lastTimestamp'), ('deprecatedCount', 'count'))


def _event_to_core(obj: JsonDict) -> JsonDict:
    result = {k: v for k, v in obj.items() if k not in {a for a, _ in _EVENT_RENAMES}}
    for new, old in _EVENT_RENAMES:
        if new in obj:
            result[old] = obj[new]
    result['apiVersion'], result['kind'] = 'v1', 'Event'
    return result


def _event_from_core(obj: JsonDict) -> JsonDict:
    result = {k: v for k, v in obj.items() if k not in {b for _, b in _EVENT_RENAMES}}
    for new, old in _EVENT_RENAMES:
        if old in obj:
            result[new] = obj[old]
    result['apiVersion'], result['kind'] = 'events.k8s.io/v1', 'Event'
    return result
