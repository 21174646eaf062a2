"""
Proof that ``tests/kube_emulator/`` behaves like a bare kube-apiserver v1.28 where operators care,
checked over real HTTP, and that a real Kopf operator runs against it without double-handling.

Each test names the real-apiserver behaviour it pins: if the emulator were more lenient than the
apiserver, operator tests built on it could pass here and fail in a cluster.
"""
from __future__ import annotations

import asyncio
import base64
import collections
import contextlib
import json
from collections.abc import AsyncIterator, Mapping
from typing import Any

import aiohttp
import kopf
import pytest_asyncio

from kube_emulator import KubeEmulator
from kube_fixtures import RunningOperator, serve_emulator

pytest_plugins = ['kube_fixtures']

CMS = '/api/v1/namespaces/default/configmaps'
OMS = '/apis/openmodel.io/v1alpha1/namespaces/default/openmodels'
JOBS = '/apis/batch/v1/namespaces/default/jobs'
DEPLOYS = '/apis/apps/v1/namespaces/default/deployments'
MERGE = 'application/merge-patch+json'
JSONPATCH = 'application/json-patch+json'
APPLY = 'application/apply-patch+yaml'
STRATEGIC = 'application/strategic-merge-patch+json'


@pytest_asyncio.fixture()
async def emu() -> AsyncIterator[KubeEmulator]:
    """An emulator with schema-less default CRDs: free-form objects for the API-semantics tests."""
    async with serve_emulator() as emulator:
        yield emulator


async def call(kube: KubeEmulator, method: str, path: str, body: Any = None, *, content_type: str = 'application/json',
               **params: str) -> tuple[int, Any, Mapping[str, str]]:
    """One HTTP request to the emulator; returns (status, JSON body, headers)."""
    data = body if isinstance(body, str) or body is None else json.dumps(body)
    async with kube.http.request(method, path, data=data, params=params or None,
                                 headers={'Content-Type': content_type}) as resp:
        return resp.status, await resp.json(content_type=None), resp.headers


async def create(kube: KubeEmulator, path: str, body: dict[str, Any]) -> dict[str, Any]:
    status, obj, _ = await call(kube, 'POST', path, body)
    assert status == 201, obj
    return dict(obj)


def cm(name: str, **labels: str) -> dict[str, Any]:
    return {'apiVersion': 'v1', 'kind': 'ConfigMap', 'metadata': {'name': name, 'labels': labels},
            'data': {'k': 'v'}}


def om(name: str, **extra: Any) -> dict[str, Any]:
    return {'apiVersion': 'openmodel.io/v1alpha1', 'kind': 'OpenModel', 'metadata': {'name': name},
            'spec': {'source': {'uri': 'hf://acme/tiny-llm'}}, **extra}


class Watch:
    """Reads watch events (JSON lines) from an open watch response."""

    def __init__(self, response: aiohttp.ClientResponse) -> None:
        self.response = response

    async def next(self, timeout: float = 2.0) -> dict[str, Any]:
        line = await asyncio.wait_for(self.response.content.readline(), timeout)
        return dict(json.loads(line))

    async def quiet(self, wait: float = 0.2) -> bool:
        """True if no event arrives within ``wait`` seconds."""
        try:
            await asyncio.wait_for(self.response.content.readline(), wait)
        except TimeoutError:
            return True
        return False


@contextlib.asynccontextmanager
async def watch(kube: KubeEmulator, path: str, **params: str) -> AsyncIterator[Watch]:
    async with kube.http.get(path, params={'watch': 'true', **params}) as response:
        assert response.status == 200
        yield Watch(response)


# --------------------------------------------------------------------------------------------------------------
# Server identity and object metadata.
# --------------------------------------------------------------------------------------------------------------

async def test_version_answers_like_a_v1_28_apiserver(emu: KubeEmulator) -> None:
    """Clients (and Kopf) read /version; kmock alone answers v1.26 k3s, and 404 with a trailing slash."""
    for path in ('/version', '/version/'):
        status, version, _ = await call(emu, 'GET', path)
        assert status == 200
        assert (version['major'], version['minor']) == ('1', '28')
        assert version['gitVersion'].startswith('v1.28.')


async def test_create_assigns_server_side_metadata(emu: KubeEmulator) -> None:
    """uid, resourceVersion, generation, creationTimestamp and the namespace come from the server."""
    obj = await create(emu, OMS, om('m1', status={'phase': 'Ready'}))
    meta = obj['metadata']
    assert meta['namespace'] == 'default'  # defaulted from the URL
    assert len(meta['uid']) == 36 and meta['resourceVersion'].isdigit()
    assert meta['generation'] == 1
    assert meta['creationTimestamp'].endswith('Z')
    assert 'status' not in obj  # the status subresource: create cannot set status
    config_map = await create(emu, CMS, cm('c1'))
    assert 'generation' not in config_map['metadata']  # core kinds without a spec have no generation
    named = await create(emu, CMS, {'metadata': {'generateName': 'gen-'}, 'data': {}})
    assert named['metadata']['name'].startswith('gen-') and len(named['metadata']['name']) == 9
    status, fetched, _ = await call(emu, 'GET', f'{OMS}/m1')
    assert status == 200 and fetched['metadata']['resourceVersion'] == meta['resourceVersion']
    rv = emu.resource_version
    status, dry, _ = await call(emu, 'POST', CMS, cm('dry'), dryRun='All')
    assert status == 201 and dry['metadata']['name'] == 'dry'
    assert emu.get('configmaps', 'default', 'dry') is None and emu.resource_version == rv  # nothing stored


async def test_resource_version_is_a_global_monotonic_counter(emu: KubeEmulator) -> None:
    """One etcd revision across all resources; a list carries the current one."""
    a = await create(emu, CMS, cm('a'))
    b = await create(emu, OMS, om('b'))
    _, c, _ = await call(emu, 'PATCH', f'{CMS}/a', {'data': {'k': 'w'}}, content_type=MERGE)
    rvs = [int(o['metadata']['resourceVersion']) for o in (a, b, c)]
    assert rvs == sorted(rvs) and len(set(rvs)) == 3
    _, listing, _ = await call(emu, 'GET', CMS)
    assert listing['metadata']['resourceVersion'] == str(rvs[-1]) == str(emu.resource_version)
    assert 'kind' not in listing['items'][0]  # typed lists of built-ins carry no per-item kind
    _, oms, _ = await call(emu, 'GET', OMS)
    assert oms['items'][0]['kind'] == 'OpenModel'  # custom resource lists do


async def test_generation_follows_the_real_rules(emu: KubeEmulator) -> None:
    """CRs: +1 on non-metadata/non-status changes; Deployments: spec and annotations; ConfigMaps: none."""
    await create(emu, OMS, om('g'))
    _, obj, _ = await call(emu, 'PATCH', f'{OMS}/g', {'metadata': {'labels': {'a': 'b'}}}, content_type=MERGE)
    assert obj['metadata']['generation'] == 1
    _, obj, _ = await call(emu, 'PATCH', f'{OMS}/g', {'spec': {'replicas': 2}}, content_type=MERGE)
    assert obj['metadata']['generation'] == 2
    _, obj, _ = await call(emu, 'PATCH', f'{OMS}/g/status', {'status': {'phase': 'Ready'}}, content_type=MERGE)
    assert obj['metadata']['generation'] == 2

    await create(emu, DEPLOYS, deployment('d'))
    _, obj, _ = await call(emu, 'PATCH', f'{DEPLOYS}/d', {'metadata': {'labels': {'x': 'y'}}}, content_type=MERGE)
    assert obj['metadata']['generation'] == 1
    _, obj, _ = await call(emu, 'PATCH', f'{DEPLOYS}/d', {'metadata': {'annotations': {'x': 'y'}}},
                           content_type=MERGE)
    assert obj['metadata']['generation'] == 2
    _, obj, _ = await call(emu, 'PATCH', f'{DEPLOYS}/d', {'spec': {'replicas': 3}}, content_type=MERGE)
    assert obj['metadata']['generation'] == 3

    await create(emu, CMS, cm('c'))
    _, obj, _ = await call(emu, 'PATCH', f'{CMS}/c', {'data': {'k': 'changed'}}, content_type=MERGE)
    assert 'generation' not in obj['metadata']


async def test_status_subresource_isolates_status_from_the_rest(emu: KubeEmulator) -> None:
    """Writes to the main resource ignore .status; writes to /status change nothing but .status."""
    await create(emu, OMS, om('s'))
    _, obj, _ = await call(emu, 'PATCH', f'{OMS}/s', {'spec': {'x': 1}, 'status': {'phase': 'Hacked'}},
                           content_type=MERGE)
    assert obj['spec']['x'] == 1 and 'status' not in obj
    _, obj, _ = await call(emu, 'PATCH', f'{OMS}/s/status', {
        'spec': {'x': 2}, 'metadata': {'labels': {'sneaky': 'yes'}}, 'status': {'phase': 'Ready'}},
        content_type=MERGE)
    assert obj['status'] == {'phase': 'Ready'} and obj['spec']['x'] == 1 and 'labels' not in obj['metadata']
    obj['status'] = {'phase': 'Overwritten'}
    obj['spec']['x'] = 3
    status, obj, _ = await call(emu, 'PUT', f'{OMS}/s', obj)
    assert status == 200 and obj['status'] == {'phase': 'Ready'} and obj['spec']['x'] == 3
    status, _, _ = await call(emu, 'PATCH', f'{CMS}/nope/status', {}, content_type=MERGE)
    assert status == 404  # configmaps have no status subresource


# --------------------------------------------------------------------------------------------------------------
# Concurrency, errors and patch flavours.
# --------------------------------------------------------------------------------------------------------------

async def test_optimistic_concurrency_and_error_statuses(emu: KubeEmulator) -> None:
    """Stale writes get 409 Conflict, duplicates 409 AlreadyExists, unknown objects 404 — as Status objects."""
    old = await create(emu, CMS, cm('c'))
    await call(emu, 'PATCH', f'{CMS}/c', {'data': {'k': 'newer'}}, content_type=MERGE)
    status, error, _ = await call(emu, 'PUT', f'{CMS}/c', old)
    assert status == 409 and error['kind'] == 'Status' and error['reason'] == 'Conflict'
    assert error['details'] == {'name': 'c', 'kind': 'configmaps'}
    assert 'the object has been modified' in error['message']
    status, error, _ = await call(emu, 'PATCH', f'{CMS}/c', {'metadata': {'resourceVersion': old['metadata'][
        'resourceVersion']}, 'data': {'k': 'x'}}, content_type=MERGE)
    assert status == 409 and error['reason'] == 'Conflict'
    status, error, _ = await call(emu, 'POST', CMS, cm('c'))
    assert status == 409 and error['reason'] == 'AlreadyExists' and error['message'] == 'configmaps "c" already exists'
    status, error, _ = await call(emu, 'GET', f'{CMS}/missing')
    assert status == 404 and error['reason'] == 'NotFound' and error['message'] == 'configmaps "missing" not found'
    status, error, _ = await call(emu, 'PATCH', f'{OMS}/missing', {}, content_type=MERGE)
    assert status == 404 and error['details']['group'] == 'openmodel.io'
    await create(emu, OMS, om('m'))
    status, error, _ = await call(emu, 'PUT', f'{OMS}/m', om('m'))  # CRs require resourceVersion on update
    assert status == 422 and error['reason'] == 'Invalid'
    status, _, _ = await call(emu, 'GET', '/apis/example.com/v1/namespaces/default/widgets')
    assert status == 404


async def test_json_patch_with_a_failed_test_is_422(emu: KubeEmulator) -> None:
    """Kopf adds/removes finalizers with JSON patch guarded by a resourceVersion test: 422 on a stale one."""
    obj = await create(emu, OMS, om('j'))
    rv = obj['metadata']['resourceVersion']
    await call(emu, 'PATCH', f'{OMS}/j', {'spec': {'x': 1}}, content_type=MERGE)
    ops = [{'op': 'test', 'path': '/metadata/resourceVersion', 'value': rv},
           {'op': 'add', 'path': '/metadata/finalizers', 'value': ['example.com/f']}]
    status, error, _ = await call(emu, 'PATCH', f'{OMS}/j', ops, content_type=JSONPATCH)
    assert status == 422 and error['reason'] == 'Invalid'
    current = emu.get('openmodels', 'default', 'j')
    assert current is not None and 'finalizers' not in current['metadata']
    ops[0]['value'] = current['metadata']['resourceVersion']
    status, obj, _ = await call(emu, 'PATCH', f'{OMS}/j', ops, content_type=JSONPATCH)
    assert status == 200 and obj['metadata']['finalizers'] == ['example.com/f']
    status, _, _ = await call(emu, 'PATCH', f'{OMS}/j', [{'op': 'remove', 'path': '/spec/absent'}],
                              content_type=JSONPATCH)
    assert status == 422
    status, _, _ = await call(emu, 'PATCH', f'{OMS}/j', {'not': 'a list'}, content_type=JSONPATCH)
    assert status == 400


def deployment(name: str, **labels: str) -> dict[str, Any]:
    labels = labels or {'app': name}
    return {'apiVersion': 'apps/v1', 'kind': 'Deployment', 'metadata': {'name': name},
            'spec': {'selector': {'matchLabels': labels}, 'template': {
                'metadata': {'labels': labels},
                'spec': {'containers': [{'name': 'main', 'image': 'nginx:1.25'}]}}}}


async def test_patch_media_types(emu: KubeEmulator) -> None:
    """Strategic merge is 415 for custom resources; for built-ins it merges lists by their merge keys."""
    await create(emu, OMS, om('p'))
    status, error, _ = await call(emu, 'PATCH', f'{OMS}/p', {'spec': {}}, content_type=STRATEGIC)
    assert status == 415 and error['reason'] == 'UnsupportedMediaType'
    status, _, _ = await call(emu, 'PATCH', f'{OMS}/p', {'spec': {}}, content_type='text/plain')
    assert status == 415
    await create(emu, DEPLOYS, deployment('web'))
    sidecar = {'spec': {'template': {'spec': {'containers': [{'name': 'sidecar', 'image': 'busybox:1'}]}}}}
    _, obj, _ = await call(emu, 'PATCH', f'{DEPLOYS}/web', sidecar, content_type=STRATEGIC)
    assert [c['name'] for c in obj['spec']['template']['spec']['containers']] == ['main', 'sidecar']
    drop = {'spec': {'template': {'spec': {'containers': [{'name': 'sidecar', '$patch': 'delete'}]}}}}
    _, obj, _ = await call(emu, 'PATCH', f'{DEPLOYS}/web', drop, content_type=STRATEGIC)
    assert [c['name'] for c in obj['spec']['template']['spec']['containers']] == ['main']
    _, obj, _ = await call(emu, 'PATCH', f'{DEPLOYS}/web', sidecar, content_type=MERGE)  # merge replaces lists
    assert [c['name'] for c in obj['spec']['template']['spec']['containers']] == ['sidecar']


async def test_noop_writes_keep_the_resource_version_and_emit_no_events(emu: KubeEmulator) -> None:
    """The apiserver skips writes that change nothing: same resourceVersion, nothing on watches."""
    obj = await create(emu, CMS, cm('n'))
    rv = obj['metadata']['resourceVersion']
    async with watch(emu, CMS, resourceVersion=rv) as events:
        _, same, _ = await call(emu, 'PATCH', f'{CMS}/n', {'data': {'k': 'v'}}, content_type=MERGE)
        assert same['metadata']['resourceVersion'] == rv
        status, same, _ = await call(emu, 'PUT', f'{CMS}/n', obj)
        assert status == 200 and same['metadata']['resourceVersion'] == rv
        assert await events.quiet()
        _, changed, _ = await call(emu, 'PATCH', f'{CMS}/n', {'data': {'k': 'w'}}, content_type=MERGE)
        event = await events.next()
        assert event['type'] == 'MODIFIED'
        assert event['object']['metadata']['resourceVersion'] == changed['metadata']['resourceVersion'] != rv


async def test_server_side_apply(emu: KubeEmulator) -> None:
    """Apply creates, records managedFields, is a no-op when repeated, conflicts across managers unless forced."""
    path = f'{CMS}/sa'
    config = {'apiVersion': 'v1', 'kind': 'ConfigMap', 'metadata': {'name': 'sa'}, 'data': {'a': '1', 'b': '2'}}
    status, obj, _ = await call(emu, 'PATCH', path, config, content_type=APPLY, fieldManager='alpha')
    assert status == 201 and obj['data'] == {'a': '1', 'b': '2'}
    entry = obj['metadata']['managedFields'][0]
    assert (entry['manager'], entry['operation']) == ('alpha', 'Apply')
    assert entry['fieldsV1'] == {'f:data': {'f:a': {}, 'f:b': {}}}
    rv = obj['metadata']['resourceVersion']
    status, obj, _ = await call(emu, 'PATCH', path, config, content_type=APPLY, fieldManager='alpha')
    assert status == 200 and obj['metadata']['resourceVersion'] == rv  # re-apply: a no-op

    other = {'apiVersion': 'v1', 'kind': 'ConfigMap', 'metadata': {'name': 'sa'}, 'data': {'a': 'beta'}}
    status, error, _ = await call(emu, 'PATCH', path, other, content_type=APPLY, fieldManager='beta')
    assert status == 409 and error['reason'] == 'Conflict' and 'conflict with "alpha"' in error['message']
    status, obj, _ = await call(emu, 'PATCH', path, other, content_type=APPLY, fieldManager='beta', force='true')
    assert status == 200 and obj['data'] == {'a': 'beta', 'b': '2'}
    owners = {e['manager']: e['fieldsV1'] for e in obj['metadata']['managedFields']}
    assert owners == {'alpha': {'f:data': {'f:b': {}}}, 'beta': {'f:data': {'f:a': {}}}}

    shrunk = {'apiVersion': 'v1', 'kind': 'ConfigMap', 'metadata': {'name': 'sa'}, 'data': {}}
    _, obj, _ = await call(emu, 'PATCH', path, shrunk, content_type=APPLY, fieldManager='alpha')
    assert obj['data'] == {'a': 'beta'}  # alpha stopped applying b: removed; a belongs to beta now

    yaml_text = 'apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: sa\nlabels: {}\n'
    status, _, _ = await call(emu, 'PATCH', path, yaml_text, content_type=APPLY)  # no fieldManager
    assert status == 422
    status, _, _ = await call(emu, 'PATCH', path, {'data': {}}, content_type=APPLY, fieldManager='x')
    assert status == 400  # apiVersion and kind are mandatory in apply configurations


# --------------------------------------------------------------------------------------------------------------
# Deletion, finalizers, no garbage collection, namespaces.
# --------------------------------------------------------------------------------------------------------------

async def test_deletion_waits_for_finalizers(emu: KubeEmulator) -> None:
    """DELETE marks objects with finalizers; removing the last finalizer deletes; no new finalizers meanwhile."""
    await create(emu, OMS, {**om('f'), 'metadata': {'name': 'f', 'finalizers': ['example.com/hold']}})
    async with watch(emu, OMS, fieldSelector='metadata.name=f') as events:
        assert (await events.next())['type'] == 'ADDED'
        status, obj, _ = await call(emu, 'DELETE', f'{OMS}/f')
        assert status == 200 and obj['metadata']['deletionTimestamp'] and obj['metadata']['generation'] == 2
        assert obj['metadata']['deletionGracePeriodSeconds'] == 0
        assert (await events.next())['type'] == 'MODIFIED'
        status, again, _ = await call(emu, 'DELETE', f'{OMS}/f')
        assert status == 200 and again['metadata']['resourceVersion'] == obj['metadata']['resourceVersion']
        status, error, _ = await call(emu, 'PATCH', f'{OMS}/f', {'metadata': {'finalizers': [
            'example.com/hold', 'example.com/more']}}, content_type=MERGE)
        assert status == 422 and 'no new finalizers' in error['message']
        status, _, _ = await call(emu, 'PATCH', f'{OMS}/f', [{'op': 'remove', 'path': '/metadata/finalizers/0'}],
                                  content_type=JSONPATCH)
        assert status == 200
        assert (await events.next())['type'] == 'DELETED'
    status, _, _ = await call(emu, 'GET', f'{OMS}/f')
    assert status == 404

    await create(emu, CMS, cm('gone'))
    status, result, _ = await call(emu, 'DELETE', f'{CMS}/gone')
    assert status == 200 and result['kind'] == 'Status' and result['status'] == 'Success'
    assert result['details']['name'] == 'gone' and result['details']['uid']
    assert emu.get('configmaps', 'default', 'gone') is None


async def test_there_is_no_garbage_collector(emu: KubeEmulator) -> None:
    """Without kube-controller-manager, owned children stay and batch/v1 Jobs hang on the orphan finalizer."""
    owner = await create(emu, OMS, om('owner'))
    ref = {'apiVersion': 'openmodel.io/v1alpha1', 'kind': 'OpenModel', 'name': 'owner',
           'uid': owner['metadata']['uid'], 'controller': True, 'blockOwnerDeletion': True}
    await create(emu, CMS, {**cm('child'), 'metadata': {'name': 'child', 'ownerReferences': [ref]}})
    await create(emu, JOBS, job('j1'))
    await create(emu, JOBS, job('j2'))
    await call(emu, 'DELETE', f'{OMS}/owner')
    _, stuck, _ = await call(emu, 'DELETE', f'{JOBS}/j1')  # no propagationPolicy: batch/v1 defaults to Orphan
    assert stuck['metadata']['finalizers'] == ['orphan']
    status, _, _ = await call(emu, 'DELETE', f'{JOBS}/j2', propagationPolicy='Background')
    assert status == 200 and emu.get('jobs', 'default', 'j2') is None
    assert emu.get('configmaps', 'default', 'child') is not None  # nobody collects it
    assert emu.get('jobs', 'default', 'j1') is not None
    assert emu.collect_garbage() == 1  # tests may simulate the GC explicitly
    assert emu.get('configmaps', 'default', 'child') is None
    assert emu.get('jobs', 'default', 'j1') is None


async def test_namespace_lifecycle(emu: KubeEmulator) -> None:
    """NamespaceLifecycle admission: 404 in a missing namespace, 403 in a terminating one; no namespace controller."""
    status, error, _ = await call(emu, 'POST', '/api/v1/namespaces/missing/configmaps', cm('c'))
    assert status == 404 and error['message'] == 'namespaces "missing" not found'
    ns = await create(emu, '/api/v1/namespaces', {'metadata': {'name': 'team'}})
    assert ns['metadata']['labels'] == {'kubernetes.io/metadata.name': 'team'}
    assert ns['spec'] == {'finalizers': ['kubernetes']} and ns['status'] == {'phase': 'Active'}
    await create(emu, '/api/v1/namespaces/team/configmaps', cm('c'))
    status, ns, _ = await call(emu, 'DELETE', '/api/v1/namespaces/team')
    assert status == 200 and ns['status']['phase'] == 'Terminating'
    status, error, _ = await call(emu, 'POST', '/api/v1/namespaces/team/configmaps', cm('d'))
    assert status == 403 and error['reason'] == 'Forbidden' and 'being terminated' in error['message']
    assert emu.get('namespaces', None, 'team') is not None  # stays Terminating: no namespace controller
    assert emu.finalize_namespace('team')
    assert emu.get('namespaces', None, 'team') is None
    assert emu.get('configmaps', 'team', 'c') is None


# --------------------------------------------------------------------------------------------------------------
# Lists and watches.
# --------------------------------------------------------------------------------------------------------------

async def test_watch_honours_resource_version(emu: KubeEmulator) -> None:
    """A watch from a list's resourceVersion sends only newer events (no replay); without one: ADDED for all."""
    await create(emu, CMS, cm('a'))
    await create(emu, CMS, cm('b'))
    _, listing, _ = await call(emu, 'GET', CMS)
    c = await create(emu, CMS, cm('c'))
    async with watch(emu, CMS, resourceVersion=listing['metadata']['resourceVersion']) as events:
        event = await events.next()
        assert (event['type'], event['object']['metadata']['name']) == ('ADDED', 'c')
        assert event['object']['metadata']['resourceVersion'] == c['metadata']['resourceVersion']
        assert event['object']['kind'] == 'ConfigMap'
        assert await events.quiet()
        _, modified, _ = await call(emu, 'PATCH', f'{CMS}/a', {'data': {'k': 'z'}}, content_type=MERGE)
        event = await events.next()
        assert event['type'] == 'MODIFIED'
        assert event['object']['metadata']['resourceVersion'] == modified['metadata']['resourceVersion']
        await call(emu, 'DELETE', f'{CMS}/b')
        event = await events.next()
        assert (event['type'], event['object']['metadata']['name']) == ('DELETED', 'b')
        assert int(event['object']['metadata']['resourceVersion']) == emu.resource_version
    async with watch(emu, CMS) as events:
        names = [(await events.next())['object']['metadata']['name'] for _ in range(2)]
        assert names == ['a', 'c'] and await events.quiet()


async def test_label_and_field_selectors(emu: KubeEmulator) -> None:
    """Operators list children by label; a watch with a selector sees objects enter and leave the selection."""
    await create(emu, CMS, cm('x1', app='x', tier='db'))
    await create(emu, CMS, cm('x2', app='x'))
    await create(emu, CMS, cm('y1', app='y', tier='web'))

    async def names(**params: str) -> list[str]:
        status, listing, _ = await call(emu, 'GET', CMS, **params)
        assert status == 200, listing
        return [o['metadata']['name'] for o in listing['items']]

    assert await names(labelSelector='app=x') == ['x1', 'x2']
    assert await names(labelSelector='app==x,tier') == ['x1']
    assert await names(labelSelector='app in (x, y),!tier') == ['x2']
    assert await names(labelSelector='tier notin (db),app') == ['x2', 'y1']
    assert await names(labelSelector='app!=x') == ['y1']
    assert await names(fieldSelector='metadata.name=y1') == ['y1']
    assert (await call(emu, 'GET', CMS, labelSelector='app=(x'))[0] == 400
    assert (await call(emu, 'GET', CMS, fieldSelector='data.k=v'))[0] == 400  # unsupported field label
    assert emu.list('configmaps', 'default', labels={'app': 'y'})[0]['metadata']['name'] == 'y1'

    async with watch(emu, CMS, labelSelector='app=x', resourceVersion=str(emu.resource_version)) as events:
        await create(emu, CMS, cm('x3', app='x'))
        assert (await events.next())['type'] == 'ADDED'
        await call(emu, 'PATCH', f'{CMS}/x3', {'metadata': {'labels': {'app': 'z'}}}, content_type=MERGE)
        assert (await events.next())['type'] == 'DELETED'  # left the selection
        await call(emu, 'PATCH', f'{CMS}/x3', {'metadata': {'labels': {'app': 'x'}}}, content_type=MERGE)
        assert (await events.next())['type'] == 'ADDED'  # entered it again
        await create(emu, CMS, cm('other', app='q'))
        assert await events.quiet()


async def test_pagination_and_compaction(emu: KubeEmulator) -> None:
    """limit/continue pages come from one snapshot; after compaction an old resourceVersion is 410 Gone."""
    for i in range(5):
        await create(emu, CMS, cm(f'c{i}'))
    _, page, _ = await call(emu, 'GET', CMS, limit='2')
    assert [o['metadata']['name'] for o in page['items']] == ['c0', 'c1']
    assert page['metadata']['remainingItemCount'] == 3
    await create(emu, CMS, cm('c9'))  # after the snapshot: not in the next pages
    await call(emu, 'DELETE', f'{CMS}/c3')  # deleted after the snapshot: still in the next pages
    _, page, _ = await call(emu, 'GET', CMS, limit='10', **{'continue': page['metadata']['continue']})
    assert [o['metadata']['name'] for o in page['items']] == ['c2', 'c3', 'c4']
    assert 'continue' not in page['metadata']
    _, first, _ = await call(emu, 'GET', CMS, limit='2')  # a new listing: c3 is gone, c9 is there
    await call(emu, 'PATCH', f'{CMS}/c4', {'data': {'k': 'changed'}},
               content_type='application/merge-patch+json')  # after the snapshot: its next page has the old state
    _, rest, _ = await call(emu, 'GET', CMS, limit='10', **{'continue': first['metadata']['continue']})
    assert [o['metadata']['name'] for o in rest['items']] == ['c2', 'c4', 'c9']
    assert rest['items'][1].get('data') != {'k': 'changed'}
    _, again, _ = await call(emu, 'GET', CMS, limit='2')
    emu.compact()  # a continue token of a compacted revision is expired, as on an API server
    status, _, _ = await call(emu, 'GET', CMS, limit='10', **{'continue': again['metadata']['continue']})
    assert status == 410
    old_rv = str(emu.resource_version)
    emu.compact()
    async with watch(emu, CMS, resourceVersion=old_rv) as events:
        event = await events.next()
        assert event['type'] == 'ERROR' and event['object']['code'] == 410


async def test_sendinitialevents_is_refused_like_v1_28(emu: KubeEmulator) -> None:
    """WatchList is alpha and off in v1.28: keep Kopf's initial_streaming off."""
    status, error, _ = await call(emu, 'GET', CMS, watch='true', sendInitialEvents='true')
    assert status == 422 and 'WatchList' in error['message']


# --------------------------------------------------------------------------------------------------------------
# Events and kind-specific rules.
# --------------------------------------------------------------------------------------------------------------

async def test_events_are_recorded_from_both_apis_and_validated(emu: KubeEmulator) -> None:
    """Kopf posts core/v1 Events; events.k8s.io/v1 shares the storage; both are validated as on v1.28."""
    obj = await create(emu, OMS, om('ev'))
    ref = {'apiVersion': 'openmodel.io/v1alpha1', 'kind': 'OpenModel', 'name': 'ev', 'namespace': 'default',
           'uid': obj['metadata']['uid']}
    now = '2024-01-01T00:00:00Z'
    core = {'metadata': {'generateName': 'kopf-event-'}, 'action': 'Action?', 'type': 'Normal', 'reason': 'Ready',
            'message': 'done', 'reportingComponent': 'kopf', 'reportingInstance': 'dev',
            'source': {'component': 'kopf'}, 'involvedObject': ref, 'firstTimestamp': now, 'lastTimestamp': now,
            'eventTime': now}
    await create(emu, '/api/v1/namespaces/default/events', core)
    new = {'metadata': {'name': 'ev.1'}, 'eventTime': '2024-01-01T00:00:00.000000Z', 'type': 'Warning',
           'reason': 'Slow', 'note': 'pulling', 'action': 'Pull', 'reportingController': 'openmodel.io/operator',
           'reportingInstance': 'op-1', 'regarding': ref}
    await create(emu, '/apis/events.k8s.io/v1/namespaces/default/events', new)
    assert [(e['reason'], e['message']) for e in emu.events_for('ev')] == [('Ready', 'done'), ('Slow', 'pulling')]
    _, listing, _ = await call(emu, 'GET', '/apis/events.k8s.io/v1/namespaces/default/events')
    assert {e['note'] for e in listing['items']} == {'done', 'pulling'}

    wrong_ns = {**core, 'involvedObject': {**ref, 'namespace': 'kube-system'}, 'eventTime': None}
    status, error, _ = await call(emu, 'POST', '/api/v1/namespaces/default/events', wrong_ns)
    assert status == 422 and 'involvedObject.namespace' in error['message']
    status, error, _ = await call(emu, 'POST', '/apis/events.k8s.io/v1/namespaces/default/events',
                                  {**new, 'metadata': {'name': 'ev.2'}, 'eventTime': None})
    assert status == 422 and 'eventTime' in error['message']


def job(name: str, **pod_spec: Any) -> dict[str, Any]:
    spec = {'containers': [{'name': 'main', 'image': 'busybox:1'}], 'restartPolicy': 'Never', **pod_spec}
    return {'apiVersion': 'batch/v1', 'kind': 'Job', 'metadata': {'name': name},
            'spec': {'template': {'spec': spec}}}


async def test_builtin_kind_rules_operators_trip_over(emu: KubeEmulator) -> None:
    """Secrets, ConfigMaps, Jobs, Deployments, Pods and Services are defaulted and validated like v1.28."""
    secret = await create(emu, '/api/v1/namespaces/default/secrets', {
        'metadata': {'name': 's'}, 'stringData': {'token': 'hunter2'}})
    assert secret['type'] == 'Opaque' and 'stringData' not in secret
    assert base64.b64decode(secret['data']['token']) == b'hunter2'
    status, _, _ = await call(emu, 'POST', '/api/v1/namespaces/default/secrets',
                              {'metadata': {'name': 's2'}, 'data': {'x': 'not base64!'}})
    assert status == 400
    status, error, _ = await call(emu, 'POST', CMS, {'metadata': {'name': 'bad'}, 'data': {'no/slash': 'x'}})
    assert status == 422 and 'data[no/slash]' in error['message']
    status, error, _ = await call(emu, 'POST', CMS, cm('Upper'))
    assert status == 422 and 'RFC 1123' in error['message']
    status, error, _ = await call(emu, 'POST', CMS, cm('lbl', app='x' * 64))
    assert status == 422 and 'metadata.labels' in error['message']
    await create(emu, CMS, {**cm('frozen'), 'immutable': True})
    status, _, _ = await call(emu, 'PATCH', f'{CMS}/frozen', {'data': {'k': 'changed'}}, content_type=MERGE)
    assert status == 422

    status, error, _ = await call(emu, 'POST', JOBS, job('always', restartPolicy='Always'))
    assert status == 422 and 'restartPolicy' in error['message']
    made = await create(emu, JOBS, job('ok'))
    uid = made['metadata']['uid']
    assert made['spec']['selector'] == {'matchLabels': {'batch.kubernetes.io/controller-uid': uid}}
    assert made['spec']['template']['metadata']['labels']['job-name'] == 'ok'
    assert made['spec']['backoffLimit'] == 6 and 'status' not in made
    status, error, _ = await call(emu, 'PATCH', f'{JOBS}/ok', {'spec': {'template': {'spec': {
        'containers': [{'name': 'main', 'image': 'busybox:2'}]}}}}, content_type=STRATEGIC)
    assert status == 422 and 'spec.template' in error['message']

    bad = deployment('d')
    bad['spec']['template']['metadata']['labels'] = {'app': 'other'}
    status, error, _ = await call(emu, 'POST', DEPLOYS, bad)
    assert status == 422 and '`selector` does not match template `labels`' in error['message']

    pod = {'metadata': {'name': 'p'}, 'spec': {'containers': [{'name': 'main', 'image': 'busybox:1'}]}}
    status, error, _ = await call(emu, 'POST', '/api/v1/namespaces/default/pods', pod)
    assert status == 403 and 'serviceaccount "default" not found' in error['message']  # no controller-manager
    await create(emu, '/api/v1/namespaces/default/serviceaccounts', {'metadata': {'name': 'default'}})
    made = await create(emu, '/api/v1/namespaces/default/pods', pod)
    assert made['status'] == {'phase': 'Pending', 'qosClass': 'BestEffort'}

    svc = await create(emu, '/api/v1/namespaces/default/services', {
        'metadata': {'name': 'svc'}, 'spec': {'selector': {'app': 'x'}, 'ports': [{'port': 80}]}})
    allocated = svc['spec']['clusterIP']
    assert allocated.startswith('10.9') and svc['spec']['ports'][0]['targetPort'] == 80
    svc['spec'].pop('clusterIP')
    svc['spec'].pop('clusterIPs')
    status, again, _ = await call(emu, 'PUT', '/api/v1/namespaces/default/services/svc', svc)
    assert status == 200 and again['spec']['clusterIP'] == allocated  # allocated values survive a PUT


# --------------------------------------------------------------------------------------------------------------
# CRD schemas.
# --------------------------------------------------------------------------------------------------------------

WIDGETS = '/apis/example.com/v1/namespaces/default/widgets'
WIDGET_CRD: dict[str, Any] = {
    'apiVersion': 'apiextensions.k8s.io/v1', 'kind': 'CustomResourceDefinition',
    'metadata': {'name': 'widgets.example.com'},
    'spec': {'group': 'example.com', 'scope': 'Namespaced',
             'names': {'plural': 'widgets', 'singular': 'widget', 'kind': 'Widget'},
             'versions': [{'name': 'v1', 'served': True, 'storage': True, 'subresources': {'status': {}},
                           'schema': {'openAPIV3Schema': {'type': 'object', 'properties': {
                               'spec': {'type': 'object', 'required': ['size'], 'properties': {
                                   'size': {'type': 'integer', 'minimum': 1},
                                   'mode': {'type': 'string', 'enum': ['fast', 'safe'], 'default': 'safe'},
                                   'image': {'type': 'string'}},
                                   'x-kubernetes-validations': [{
                                       'rule': "self.mode != 'fast' || !has(self.image)",
                                       'message': 'image has no effect in fast mode'}]},
                               'status': {'type': 'object', 'properties': {
                                   'phase': {'type': 'string'},
                                   'operator': {'type': 'object', 'x-kubernetes-preserve-unknown-fields': True}}}}}}}]},
}


async def test_crd_schema_pruning_defaulting_validation_and_cel(emu: KubeEmulator) -> None:
    """Installed CRD schemas prune unknown fields, default, validate and run CEL rules, as the apiserver does."""
    status, _, _ = await call(emu, 'POST', '/apis/apiextensions.k8s.io/v1/customresourcedefinitions', WIDGET_CRD)
    assert status == 201  # served from now on (Established at once)
    widget = {'apiVersion': 'example.com/v1', 'kind': 'Widget', 'metadata': {'name': 'w'},
              'spec': {'size': 2, 'colour': 'red'}}
    status, obj, headers = await call(emu, 'POST', WIDGETS, widget)
    assert status == 201 and obj['spec'] == {'size': 2, 'mode': 'safe'}  # pruned and defaulted
    assert 'unknown field \\"spec.colour\\"' in headers['Warning']
    status, error, _ = await call(emu, 'POST', WIDGETS, {**widget, 'metadata': {'name': 'w2'}},
                                  fieldValidation='Strict')
    assert status == 400 and 'spec.colour' in error['message']
    status, error, _ = await call(emu, 'POST', WIDGETS, {**widget, 'metadata': {'name': 'w3'},
                                                         'spec': {'size': 0, 'mode': 'turbo'}})
    assert status == 422 and {c['field'] for c in error['details']['causes']} == {'spec.size', 'spec.mode'}
    status, error, _ = await call(emu, 'POST', WIDGETS, {**widget, 'metadata': {'name': 'w4'},
                                                         'spec': {'size': 1, 'mode': 'fast', 'image': 'x'}})
    assert status == 422 and 'image has no effect in fast mode' in error['message']
    _, obj, _ = await call(emu, 'PATCH', f'{WIDGETS}/w/status', {'status': {
        'phase': 'Ready', 'junk': 1, 'operator': {'lastApplied': '{}', 'anything': {'goes': True}}}},
        content_type=MERGE)
    assert obj['status'] == {'phase': 'Ready', 'operator': {'lastApplied': '{}', 'anything': {'goes': True}}}


async def test_kube_fixture_serves_the_repository_crds(kube: KubeEmulator) -> None:
    """The ``kube`` fixture installs crds/*.yaml, so objects are checked against the project's real schema."""
    crd = kube.get('customresourcedefinitions', None, 'openmodels.openmodel.io')
    assert crd is not None
    assert [c['type'] for c in crd['status']['conditions']] == ['NamesAccepted', 'Established']
    status, error, _ = await call(kube, 'POST', OMS, {**om('bad'), 'spec': {'source': {}}})
    assert status == 422 and 'spec.source.uri' in error['message']


# --------------------------------------------------------------------------------------------------------------
# The test-facing API.
# --------------------------------------------------------------------------------------------------------------

async def test_test_facing_api(emu: KubeEmulator) -> None:
    """Tests read state, play the controllers that are absent, count requests and inject conflicts."""
    emu.reset_counters()
    await create(emu, JOBS, job('j'))
    await create(emu, DEPLOYS, deployment('d'))
    await create(emu, OMS, om('m'))
    assert [o['metadata']['name'] for o in emu.objects_of('OpenModel')] == ['m']
    assert emu.get('jobs', 'default', 'j')['kind'] == 'Job'  # type: ignore[index]
    assert emu.objects['batch/v1/jobs', 'default', 'j'] >= {'spec': {'backoffLimit': 6}}  # kmock's view works too

    done = emu.complete_job('default', 'j')
    assert done['status']['succeeded'] == 1 and done['status']['conditions'][0]['type'] == 'Complete'
    available = emu.mark_deployment_available('default', 'd')
    assert available['status']['availableReplicas'] == 1
    assert available['status']['observedGeneration'] == available['metadata']['generation']
    patched = emu.patch_status('openmodels', 'default', 'm', {'phase': 'Ready'})
    assert patched['status'] == {'phase': 'Ready'}

    emu.inject_conflict('openmodels', 'default', 'm')
    status, error, _ = await call(emu, 'PATCH', f'{OMS}/m', {'spec': {'x': 1}}, content_type=MERGE)
    assert status == 409 and error['reason'] == 'Conflict'
    status, _, _ = await call(emu, 'PATCH', f'{OMS}/m', {'spec': {'x': 1}}, content_type=MERGE)
    assert status == 200  # only once

    assert emu.request_counts['create'] == 3 and emu.request_counts['patch'] == 2
    assert emu.requests_total == 5
    assert [r.code for r in emu.request_log if r.verb == 'patch'] == [409, 200]

    emu[f'get {CMS}/flaky'] << 503  # kmock's DSL reactions still take precedence over the emulation
    assert (await call(emu, 'GET', f'{CMS}/flaky'))[0] == 503

    async def later() -> None:
        await asyncio.sleep(0.05)
        emu.patch_object('openmodels', 'default', 'm', {'metadata': {'labels': {'seen': 'yes'}}})
    task = asyncio.create_task(later())
    labels = await emu.wait_for(lambda: (emu.get('openmodels', 'default', 'm') or {})['metadata'].get('labels'),
                                timeout=2)
    assert labels == {'seen': 'yes'}
    await task


# --------------------------------------------------------------------------------------------------------------
# A real Kopf operator against the emulator.
# --------------------------------------------------------------------------------------------------------------

def tiny_operator(kube: KubeEmulator, runs: collections.Counter[str]) -> kopf.OperatorRegistry:
    """An operator in miniature: on create, write a child ConfigMap and the status; on delete, count."""
    registry = kopf.OperatorRegistry()

    @kopf.on.create('openmodel.io', 'v1alpha1', 'openmodels', registry=registry)
    async def created(body: kopf.Body, name: str, namespace: str | None, patch: kopf.Patch, **_: Any) -> None:
        runs['create'] += 1
        child = {'apiVersion': 'v1', 'kind': 'ConfigMap', 'metadata': {'name': f'{name}-manifest'},
                 'data': {'uri': body['spec']['source']['uri']}}
        kopf.adopt(child, owner=body)
        async with aiohttp.ClientSession(kube.base_url) as session, \
                session.post(f'/api/v1/namespaces/{namespace}/configmaps', json=child) as response:
            assert response.status == 201, await response.text()
        patch.status['phase'] = 'Ready'
        kopf.info(body, reason='Provisioned', message='manifest written')

    @kopf.on.delete('openmodel.io', 'v1alpha1', 'openmodels', registry=registry)
    async def deleted(**_: Any) -> None:
        runs['delete'] += 1

    return registry


async def test_kopf_operator_runs_against_the_emulator(kube: KubeEmulator, run_operator: Any) -> None:
    """Handlers run exactly once (no watch replay), state lives in status, the finalizer guards deletion."""
    runs: collections.Counter[str] = collections.Counter()
    registry = tiny_operator(kube, runs)
    finalizer = 'kopf.zalando.org/KopfFinalizerMarker'
    operator: RunningOperator
    async with run_operator(registry) as operator:
        await create(kube, OMS, om('tiny'))
        obj = await kube.wait_for(lambda: (o := kube.get('openmodels', 'default', 'tiny')) and
                                  o.get('status', {}).get('phase') == 'Ready' and o)
        assert finalizer in obj['metadata']['finalizers']
        assert 'annotations' not in obj['metadata']  # Kopf's state is in status.operator (kept by the CRD)
        assert 'lastApplied' in obj['status']['operator']
        child = kube.get('configmaps', 'default', 'tiny-manifest')
        assert child is not None and child['metadata']['ownerReferences'][0]['uid'] == obj['metadata']['uid']
        events = await kube.wait_for(lambda: kube.events_for('tiny'))
        assert events[0]['reason'] == 'Provisioned' and events[0]['reportingComponent'] == 'kopf'
        await asyncio.sleep(0.3)  # time enough for a second (wrong) run
        assert runs['create'] == 1
        assert not operator.task.done()

    async with run_operator(registry):  # a restart lists again: the diff-base in status prevents a re-run
        await kube.wait_for(lambda: kube.request_counts['watch'] >= 2)
        await asyncio.sleep(0.3)
        assert runs['create'] == 1

        status, deleting, _ = await call(kube, 'DELETE', f'{OMS}/tiny')
        assert status == 200 and deleting['metadata']['deletionTimestamp']  # held by Kopf's finalizer
        await kube.wait_for(lambda: kube.get('openmodels', 'default', 'tiny') is None)
        assert runs == {'create': 1, 'delete': 1}

    assert kube.get('configmaps', 'default', 'tiny-manifest') is not None  # no GC in a bare apiserver
    assert kube.collect_garbage() == 1
    assert kube.get('configmaps', 'default', 'tiny-manifest') is None
