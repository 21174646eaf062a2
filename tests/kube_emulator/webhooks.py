"""Validating admission webhooks, called as a v1.28 kube-apiserver calls them; and who a request is from.

The apiserver runs validating webhooks after schema validation and before the write reaches storage. The
emulator's writes are synchronous, and a webhook may be served by the very event loop the emulator runs in
(Kopf in a test), so a write that webhooks match is carried out twice: first as a dry run that records
each object the write would store (``record``: CREATE, UPDATE, DELETE; a deletecollection records one per
object), then, once every matching webhook has allowed each of them, for real. Between the two a
concurrent write can change the object: the real apiserver has the same window (it re-runs admission
only on a retried conflict), so nothing a test may rely on differs. A ``generateName`` gets another
random suffix in each run: the webhook sees a name the stored object does not have.

Matched like the apiserver: ``rules`` (operations, apiGroups, apiVersions, resources with ``*`` and
``plural/subresource`` forms, scope), ``namespaceSelector`` (the namespace's labels; cluster-scoped objects
always match), ``objectSelector`` (the old or the new object's labels); webhook configurations themselves are
never sent to webhooks. Called by ``clientConfig.url`` (with ``?timeout=Ns``) over HTTPS with the
``caBundle``; a ``clientConfig.service`` cannot be reached (no pods, no endpoints, as on a control-plane-only
cluster) and counts as a failed call. A failed call (refused, timed out, a bad answer, a uid that is not
the request's) is ignored under ``failurePolicy: Ignore`` and a 500 otherwise. A refusal answers the
webhook's ``status.code`` (400 when lower) with "admission webhook "<name>" denied the request: <message>";
``warnings`` become ``Warning`` headers (kubectl prints them). ``dryRun`` requests reach only webhooks with
``sideEffects`` None or NoneOnDryRun; the others answer 400.

Identity (``userInfo``): the emulator authenticates nobody. A request with a bearer token registered in
``KubeEmulator.users`` is that user; any other request is the admin of a kubeadm cluster
(``kubernetes-admin`` in ``system:masters``). ``Impersonate-User``/``Impersonate-Group`` headers (kubectl
``--as``/``--as-group``) are honoured without an authorization check.
"""

from __future__ import annotations

import base64
import contextvars
import dataclasses
import json
import ssl
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import aiohttp.web

from .errors import ApiError, bad_request
from .json_values import JsonDict
from .resources import ResourceDef
from .selectors import label_selector_matches
from .state import EmulatorState

ADMIN = ('kubernetes-admin', ('system:masters', 'system:authenticated'))
EXEMPT = {('admissionregistration.k8s.io', 'validatingwebhookconfigurations'),
          ('admissionregistration.k8s.io', 'mutatingwebhookconfigurations')}
WRITE_VERBS = ('create', 'update', 'patch', 'delete', 'deletecollection')


@dataclasses.dataclass(frozen=True)
class Attempt:
    """One object a write would store, as the dry run saw it."""
    operation: str  # CREATE | UPDATE | DELETE
    rd: ResourceDef
    namespace: str | None
    name: str
    old: JsonDict | None
    new: JsonDict | None
    subresource: str | None


_CAPTURE: contextvars.ContextVar[list[Attempt] | None] = contextvars.ContextVar('webhook_capture', default=None)
_ADMITTED: contextvars.ContextVar[bool] = contextvars.ContextVar('webhook_admitted', default=False)


def capturing() -> bool:
    """In the dry run that finds what a write would store (writes are dry, injected conflicts not spent)."""
    return _CAPTURE.get() is not None


def record(operation: str, rd: ResourceDef, namespace: str | None, name: str, old: JsonDict | None,
           new: JsonDict | None, subresource: str | None = None) -> None:
    """Called by the write paths just before they would store (or, dry, return) an object."""
    found = _CAPTURE.get()
    if found is not None:
        found.append(Attempt(operation, rd, namespace, name, old, new, subresource))


def scale_of(obj: JsonDict) -> JsonDict:
    """The ``autoscaling/v1`` Scale of a Deployment or ReplicaSet, as its ``/scale`` subresource shows it (and
    as webhooks get it): a name, a uid and replicas, but no labels, so an ``objectSelector`` never matches it."""
    meta = obj.get('metadata') or {}
    kept = ('name', 'namespace', 'uid', 'resourceVersion', 'creationTimestamp')
    match = ((obj.get('spec') or {}).get('selector') or {}).get('matchLabels') or {}
    return {
        'apiVersion': 'autoscaling/v1', 'kind': 'Scale',
        'metadata': {key: meta[key] for key in kept if key in meta},
        'spec': {'replicas': (obj.get('spec') or {}).get('replicas', 1)},
        'status': {'replicas': (obj.get('status') or {}).get('replicas', 0),
                   'selector': ','.join(f'{k}={v}' for k, v in sorted(match.items()))},
    }


def user_of(raw: aiohttp.web.BaseRequest, users: dict[str, tuple[str, tuple[str, ...]]]) -> JsonDict:
    """``userInfo`` of a request: a registered token's user or the admin, then impersonation."""
    auth = raw.headers.get('Authorization') or ''
    token = auth[7:].strip() if auth.lower().startswith('bearer ') else ''
    username, groups = users.get(token, ADMIN)
    impersonated = raw.headers.get('Impersonate-User')
    if impersonated:
        username = impersonated
        groups = tuple(raw.headers.getall('Impersonate-Group', ()))
        if username.startswith('system:serviceaccount:') and not groups:
            namespace = username.split(':')[2]
            groups = ('system:serviceaccounts', f'system:serviceaccounts:{namespace}')
        groups = (*groups, 'system:authenticated')
    return {'username': username, 'uid': '', 'groups': list(groups)}


class WebhookMixin(EmulatorState):
    """Calling the validating webhooks of every write they match."""

    __slots__ = ()

    def _webhooks(self) -> list[tuple[JsonDict, JsonDict]]:
        """(configuration, webhook) for every registered validating webhook."""
        storage = self._storage(self._def('admissionregistration.k8s.io/v1/validatingwebhookconfigurations'))
        found = []
        for config in self._list(storage, None, {})['items']:
            for hook in config.get('webhooks') or []:
                found.append((config, hook))
        return found

    async def _admitted_by_webhooks(self, raw: aiohttp.web.BaseRequest, verb: str,
                                    serve: Callable[[], Awaitable[aiohttp.web.StreamResponse]]
                                    ) -> aiohttp.web.StreamResponse | None:
        """Serve a write that validating webhooks must admit first; None: no webhook is registered (or this
        is already the admitted write, or its dry run)."""
        if verb not in WRITE_VERBS or _ADMITTED.get() or capturing() or not self._webhooks():
            return None
        attempts: list[Attempt] = []
        token = _CAPTURE.set(attempts)
        try:
            await serve()  # the dry run: schema and per-kind validation refuse first, as in the apiserver
        finally:
            _CAPTURE.reset(token)
        dry_run = raw.query.get('dryRun') == 'All'
        user = user_of(raw, self.users)
        warnings: list[str] = []
        for attempt in attempts:
            warnings += await self._call_webhooks(attempt, user, dry_run)
        admitted = _ADMITTED.set(True)
        try:
            response = await serve()
        finally:
            _ADMITTED.reset(admitted)
        for warning in warnings:
            response.headers.add('Warning', f'299 - {json.dumps(warning)}')
        return response

    async def _call_webhooks(self, attempt: Attempt, user: JsonDict, dry_run: bool) -> list[str]:
        rd = self._storage(attempt.rd)
        if (rd.group, rd.plural) in EXEMPT:
            return []
        warnings: list[str] = []
        for config, hook in self._webhooks():
            if not self._matches(hook, attempt):
                continue
            name = str(hook.get('name') or config['metadata']['name'])
            if dry_run and hook.get('sideEffects') not in ('None', 'NoneOnDryRun'):
                raise bad_request(f'admission webhook "{name}" does not support dry run')
            review = self._review(attempt, user, dry_run)
            try:
                answer = await self._post(hook, review)
                response = answer.get('response') or {}
                if response.get('uid') != review['request']['uid']:
                    raise ValueError(f'expected response.uid="{review["request"]["uid"]}", '
                                     f'got "{response.get("uid")}"')
                allowed = response['allowed']
            except Exception as exc:  # the call failed: the webhook's failurePolicy decides
                if hook.get('failurePolicy', 'Fail') == 'Ignore':
                    continue
                raise ApiError(500, 'InternalError', f'Internal error occurred: failed calling webhook "{name}": '
                                                     f'failed to call webhook: {exc}') from None
            warnings += [str(w) for w in response.get('warnings') or []]
            if not allowed:
                status = response.get('status') or {}
                code = max(int(status.get('code') or 400), 400)
                why = status.get('message') or status.get('reason')
                message = (f'admission webhook "{name}" denied the request: {why}' if why
                           else f'admission webhook "{name}" denied the request without explanation')
                raise ApiError(code, str(status.get('reason') or ''), message, status.get('details'))
        return warnings

    def _matches(self, hook: JsonDict, attempt: Attempt) -> bool:
        rd = self._storage(attempt.rd)
        resource = rd.plural + (f'/{attempt.subresource}' if attempt.subresource else '')
        if not any(_rule_matches(rule, attempt.operation, rd, resource) for rule in hook.get('rules') or []):
            return False
        if attempt.namespace and rd.namespaced and hook.get('namespaceSelector'):
            ns = self._live(self._def('v1/namespaces'), None, attempt.namespace) or {}
            labels = (ns.get('metadata') or {}).get('labels') or {}
            if not label_selector_matches(hook['namespaceSelector'], labels):
                return False
        selector = hook.get('objectSelector')
        if selector:
            sides = [o for o in (attempt.old, attempt.new) if o is not None]
            if not any(label_selector_matches(selector, (o.get('metadata') or {}).get('labels') or {})
                       for o in sides):
                return False
        return True

    def _review(self, attempt: Attempt, user: JsonDict, dry_run: bool) -> JsonDict:
        rd = self._storage(attempt.rd)
        kind = {'group': rd.group, 'version': rd.version, 'kind': rd.kind}
        if attempt.subresource == 'scale':
            kind = {'group': 'autoscaling', 'version': 'v1', 'kind': 'Scale'}
        resource = {'group': rd.group, 'version': rd.version, 'resource': rd.plural}
        options = {'CREATE': 'CreateOptions', 'UPDATE': 'UpdateOptions', 'DELETE': 'DeleteOptions'}
        request: JsonDict = {
            'uid': str(uuid.uuid4()),
            'kind': kind, 'resource': resource, 'requestKind': kind, 'requestResource': resource,
            'name': attempt.name, 'operation': attempt.operation, 'userInfo': user,
            'object': attempt.new, 'oldObject': attempt.old, 'dryRun': dry_run,
            'options': {'apiVersion': 'meta.k8s.io/v1', 'kind': options[attempt.operation]},
        }
        if attempt.subresource:
            request['subResource'] = attempt.subresource
            request['requestSubResource'] = attempt.subresource
        if rd.namespaced:
            request['namespace'] = attempt.namespace
        return {'apiVersion': 'admission.k8s.io/v1', 'kind': 'AdmissionReview', 'request': request}

    @staticmethod
    async def _post(hook: JsonDict, review: JsonDict) -> JsonDict:
        client = hook.get('clientConfig') or {}
        timeout = int(hook.get('timeoutSeconds') or 10)
        if 'v1' not in (hook.get('admissionReviewVersions') or []):
            raise ValueError('the webhook accepts no admission.k8s.io/v1 AdmissionReview')
        if client.get('service'):
            service = client['service']
            raise ConnectionError(f'Post "https://{service.get("name")}.{service.get("namespace")}.svc:'
                                  f'{service.get("port", 443)}{service.get("path", "")}?timeout={timeout}s": '
                                  f'no endpoints available for service "{service.get("name")}"')
        url = f'{client["url"]}?timeout={timeout}s'
        context = ssl.create_default_context()
        if client.get('caBundle'):
            context = ssl.create_default_context(cadata=base64.b64decode(client['caBundle']).decode())
        try:
            async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout)) as session, \
                    session.post(url, json=review, ssl=context if url.startswith('https:') else None) as rsp:
                if rsp.status != 200:
                    raise ValueError(f'Post "{url}": the server answered {rsp.status}')
                answer: JsonDict = await rsp.json(content_type=None)
                return answer
        except (aiohttp.ClientError, TimeoutError, ssl.SSLError) as exc:
            raise ConnectionError(f'Post "{url}": {exc or type(exc).__name__}') from None


def _rule_matches(rule: JsonDict, operation: str, rd: ResourceDef, resource: str) -> bool:
    def has(values: Any, value: str) -> bool:
        return '*' in (values or []) or value in (values or [])

    if not has(rule.get('operations'), operation) or not has(rule.get('apiGroups'), rd.group):
        return False
    if not has(rule.get('apiVersions'), rd.version):
        return False
    scope = rule.get('scope') or '*'
    if scope != '*' and scope != ('Namespaced' if rd.namespaced else 'Cluster'):
        return False
    main, _, sub = resource.partition('/')
    for pattern in rule.get('resources') or []:
        p_main, _, p_sub = pattern.partition('/')
        if pattern == '*/*' or (p_main in ('*', main) and p_sub == sub) or (p_main == main and p_sub == '*' and sub):
            return True
    return False
