"""API request paths (``/api/v1/namespaces/ns/pods/name/status``, ``/apis/group/version/watch/...``) and the
verb (get, list, watch, create, update, patch, delete, deletecollection) a request stands for.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

import kmock


@dataclasses.dataclass
class ApiTarget:
    """What an API path addresses."""
    group: str
    version: str
    plural: str
    namespace: str | None
    name: str | None
    subresource: str | None
    watch_path: bool


def parse_api_path(path: str) -> ApiTarget | None:
    """Parse an object or collection path (``/api/...``, ``/apis/...``); None for any other path (discovery)."""
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
    return ApiTarget(group, version, plural, namespace, name, subresource, watch_path)


def request_verb(method: str, target: ApiTarget, query: Mapping[str, str]) -> str:
    """The Kubernetes verb of a request (as RBAC and the request counters name it)."""
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


def kmock_action(method: str, target: ApiTarget, query: Mapping[str, str]) -> kmock.action | None:
    """The same request as kmock's DSL filters see it."""
    verb = request_verb(method, target, query)
    return {'get': kmock.action.FETCH, 'list': kmock.action.LIST, 'watch': kmock.action.WATCH,
            'create': kmock.action.CREATE, 'patch': kmock.action.UPDATE,
            'delete': kmock.action.DELETE}.get(verb)
