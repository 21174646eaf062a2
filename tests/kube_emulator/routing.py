"""The HTTP entry point: ``/version``, discovery (kmock's), kmock DSL reactions (which win over the
emulation), and the dispatch of API requests to the verbs, with the 404/405/415/501 answers of the real
server for what is not served. Every request is counted and logged (:class:`RequestRecord`).
"""

from __future__ import annotations

import dataclasses
import json
import math
from typing import Any

import aiohttp.web
import kmock
import yaml

from .errors import ApiError, bad_request, route_not_found
from .json_values import JsonDict
from .paths import ApiTarget, kmock_action, parse_api_path, request_verb
from .resources import ResourceDef
from .state import EmulatorState
from .webhooks import capturing, scale_of

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


@dataclasses.dataclass(frozen=True)
class RequestRecord:
    """One served API request, for assertions and benchmarks."""
    verb: str
    resource: str
    namespace: str | None
    name: str | None
    subresource: str | None
    code: int


class RoutingMixin(EmulatorState):
    """Serving HTTP requests."""

    __slots__ = ()

    async def __call__(self, raw_request: aiohttp.web.BaseRequest) -> aiohttp.web.StreamResponse:
        await raw_request.read()
        target = parse_api_path(raw_request.path)
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
            action=kmock_action(raw_request.method, target, raw_request.query), resource=kmock.resource(
                target.group, target.version, target.plural),
            namespace=target.namespace, name=target.name, subresource=target.subresource)
        self._requests.append(request)

        verb = request_verb(raw_request.method, target, raw_request.query)
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

    async def _serve(self, raw: aiohttp.web.BaseRequest, target: ApiTarget, verb: str) -> aiohttp.web.StreamResponse:
        rd = self._defs.get(kmock.resource(target.group, target.version, target.plural))
        if rd is None:
            raise route_not_found()
        if target.namespace is not None and not rd.namespaced:
            raise route_not_found()
        if target.name is not None and rd.namespaced and target.namespace is None:
            raise route_not_found()
        if verb not in rd.verbs:
            raise ApiError(405, 'MethodNotAllowed', 'the server does not allow this method on the requested '
                                                    'resource', {})
        subresource = target.subresource
        if subresource is not None and subresource not in rd.subresources:
            raise route_not_found()
        if subresource not in (None, 'status') and not (rd.plural == 'namespaces' and subresource == 'finalize') \
                and not (rd.qualified == 'pods' and subresource == 'ephemeralcontainers') \
                and not (subresource == 'scale' and rd.group == 'apps' and rd.plural in ('deployments', 'replicasets')):
            raise ApiError(501, 'NotImplemented', f'the emulator does not implement the {subresource!r} '
                                                  f'subresource of {rd.qualified}', {})
        if subresource is not None and verb not in ('get', 'update', 'patch'):
            raise ApiError(405, 'MethodNotAllowed', 'the server does not allow this method on the requested '
                                                    'resource', {})
        webhooked = await self._admitted_by_webhooks(raw, verb, lambda: self._serve(raw, target, verb))
        if webhooked is not None:
            return webhooked
        query = raw.query
        manager = query.get('fieldManager') or (raw.headers.get('User-Agent') or '').split('/')[0][:128]
        dry_run = query.get('dryRun') == 'All'
        match verb:
            case 'get':
                shown = self._read(rd, target.namespace, target.name or '')
                return aiohttp.web.json_response(scale_of(shown) if subresource == 'scale' else shown)
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
            raise bad_request(f"couldn't get version/kind; json parse error: {e}") from None

    def _maybe_inject_conflict(self, rd: ResourceDef, target: ApiTarget, verb: str) -> None:
        if capturing():
            return  # the dry run before the webhooks (webhooks.py) spends no injected conflict
        key = (self._storage(rd).key, target.namespace if rd.namespaced else None, target.name or '')
        pending = self._conflicts.get(key)
        if pending and verb in pending[1]:
            pending[0] -= 1
            if pending[0] <= 0:
                del self._conflicts[key]
            raise rd.conflict(target.name or '')
