"""Per-kind rules of built-in resources, as their registries do (defaulting, normalization, validation):
Namespaces, core/v1 and events.k8s.io/v1 Events, ConfigMaps, Secrets, Services (clusterIP/nodePort
allocation), PersistentVolumeClaims, Pods, Deployments and Jobs. Found by name by
:meth:`~kube_emulator.admission.AdmissionMixin._normalize`: ``_kind_<group with _>_<plural>``.
"""

from __future__ import annotations

import base64
import copy
from typing import Any

from .builtin_kinds import (
    DATA_LIMIT,
    data_key_errors,
    decode_base64,
    immutable_data_errors,
    pod_spec_errors,
    qos_class,
    workload_errors,
)
from .errors import FieldError, bad_request
from .json_values import JsonDict, dig, json_equal
from .metadata import label_key_error, name_errors
from .resources import ResourceDef
from .state import EmulatorState


class KindRulesMixin(EmulatorState):
    """The ``_kind_*`` hooks of built-in kinds."""

    __slots__ = ()

    def _kind__namespaces(self, obj: JsonDict, old: JsonDict | None, **_: Any) -> list[FieldError]:
        meta = obj['metadata']
        meta.setdefault('labels', {})['kubernetes.io/metadata.name'] = meta.get('name', '')
        if old is None:
            obj.setdefault('spec', {}).setdefault('finalizers', ['kubernetes'])
            obj['status'] = {'phase': 'Active'}
        return []

    def _kind__events(self, obj: JsonDict, old: JsonDict | None, *, requested: ResourceDef,
                      **_: Any) -> list[FieldError]:
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
            elif label_key_error(obj['reportingComponent']):
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
            errors += name_errors(obj['metadata'].get('name') or '', 'subdomain')
        return errors

    def _kind__configmaps(self, obj: JsonDict, old: JsonDict | None, **_: Any) -> list[FieldError]:
        errors = data_key_errors(obj, ('data', 'binaryData'))
        for key, value in (obj.get('data') or {}).items():
            if not isinstance(value, str):
                errors.append(FieldError(f'data[{key}]', 'Invalid', 'must be a string', value))
        for key, value in (obj.get('binaryData') or {}).items():
            if decode_base64(value) is None:
                raise bad_request(f'illegal base64 data in binaryData[{key}]')
        size = sum(len(k) + len(str(v)) for k, v in (obj.get('data') or {}).items())
        size += sum(len(k) + len(decode_base64(v) or b'') for k, v in (obj.get('binaryData') or {}).items())
        if size > DATA_LIMIT:
            errors.append(FieldError('', 'TooLong', f'must have at most {DATA_LIMIT} bytes'))
        errors += immutable_data_errors(obj, old, ('data', 'binaryData'))
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
        errors = data_key_errors(obj, ('data',))
        total = 0
        for key, value in (obj.get('data') or {}).items():
            decoded = decode_base64(value)
            if decoded is None:
                raise bad_request(f'Secret in version "v1" cannot be handled as a Secret: illegal base64 data at '
                                  f'input byte 0 (data[{key}])')
            total += len(decoded)
        if total > DATA_LIMIT:
            errors.append(FieldError('data', 'TooLong', f'must have at most {DATA_LIMIT} bytes'))
        required = {'kubernetes.io/tls': ('tls.crt', 'tls.key'), 'kubernetes.io/dockerconfigjson':
                    ('.dockerconfigjson',), 'kubernetes.io/dockercfg': ('.dockercfg',),
                    'kubernetes.io/ssh-auth': ('ssh-privatekey',)}.get(obj['type'], ())
        for key in required:
            if key not in (obj.get('data') or {}):
                errors.append(FieldError(f'data[{key}]', 'Required'))
        if obj['type'] == 'kubernetes.io/service-account-token' and not dig(
                obj, ('metadata', 'annotations', 'kubernetes.io/service-account.name')):
            errors.append(FieldError('metadata.annotations[kubernetes.io/service-account.name]', 'Required'))
        if old is not None and old.get('type', 'Opaque') != obj['type']:
            errors.append(FieldError('type', 'Invalid', 'field is immutable', obj['type']))
        errors += immutable_data_errors(obj, old, ('data',))
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
        if not dig(spec, ('resources', 'requests', 'storage')):
            errors.append(FieldError('spec.resources[storage]', 'Required'))
        if old is None:
            obj['status'] = {'phase': 'Pending'}
        elif not json_equal(spec, old.get('spec')):
            bound = dig(old, ('status', 'phase')) == 'Bound'
            masked = {**spec, 'resources': None} if bound else spec
            old_masked = {**old.get('spec', {}), 'resources': None} if bound else old.get('spec')
            if not json_equal(masked, old_masked):
                errors.append(FieldError('spec', 'Forbidden', 'spec is immutable after creation except '
                                                              'resources.requests for bound claims'))
        return errors

    def _kind__pods(self, obj: JsonDict, old: JsonDict | None, subresource: str | None = None,
                    **_: Any) -> list[FieldError]:
        spec = obj.setdefault('spec', {})
        errors = pod_spec_errors(spec, 'spec', restart_policies=('Always', 'OnFailure', 'Never'))
        if old is None:
            self._admit_service_account(obj)
            obj['status'] = {'phase': 'Pending', 'qosClass': qos_class(spec)}
        else:
            def mutable_masked(s: JsonDict) -> JsonDict:
                masked = copy.deepcopy(s)
                for key in ('containers', 'initContainers'):
                    for container in masked.get(key) or []:
                        container.pop('image', None)
                for key in ('activeDeadlineSeconds', 'tolerations', 'schedulingGates', 'terminationGracePeriodSeconds'):
                    masked.pop(key, None)
                if subresource == 'ephemeralcontainers':  # kubectl debug: only what this subresource writes
                    masked.pop('ephemeralContainers', None)
                return masked
            if not json_equal(mutable_masked(spec), mutable_masked(old.get('spec') or {})):
                errors.append(FieldError('spec', 'Forbidden', 'pod updates may not change fields other than '
                                         '`spec.containers[*].image`,`spec.initContainers[*].image`,'
                                         '`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to '
                                         'existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to '
                                         'be set to 1 if it was previously negative)'))
        return errors

    def _kind_apps_deployments(self, obj: JsonDict, old: JsonDict | None, **_: Any) -> list[FieldError]:
        spec = obj.setdefault('spec', {})
        spec.setdefault('replicas', 1)
        spec.setdefault('revisionHistoryLimit', 10)
        spec.setdefault('progressDeadlineSeconds', 600)
        strategy = spec.setdefault('strategy', {'type': 'RollingUpdate'})
        if strategy.get('type', 'RollingUpdate') == 'RollingUpdate':
            strategy.setdefault('rollingUpdate', {}).setdefault('maxUnavailable', '25%')
            strategy['rollingUpdate'].setdefault('maxSurge', '25%')
        errors = workload_errors(spec, old, restart_policies=('Always',))
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
        errors += workload_errors(spec, old, restart_policies=('OnFailure', 'Never'))
        if old is not None:
            old_spec = old.get('spec') or {}
            for key in ('template', 'completions', 'completionMode', 'manualSelector'):
                if not json_equal(spec.get(key), old_spec.get(key)):
                    errors.append(FieldError(f'spec.{key}', 'Invalid', 'field is immutable', spec.get(key)))
        return errors
