"""Pure helpers of the per-kind rules of built-in resources (the rules themselves: :mod:`.kind_rules`):
ConfigMap/Secret data keys, size and ``immutable``, base64, PodSpec defaulting and validation, the
selector/template checks of workloads, a Pod's QoS class.
"""

from __future__ import annotations

import base64
import binascii
import re
from typing import Any

from .errors import FieldError
from .json_values import JsonDict, json_equal
from .metadata import name_errors
from .selectors import label_selector_matches

_CONFIG_KEY = re.compile(r'[-._a-zA-Z0-9]+')
DATA_LIMIT = 1024 * 1024  # ConfigMap/Secret total data size


def decode_base64(value: Any) -> bytes | None:
    if not isinstance(value, str):
        return None
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return None


def data_key_errors(obj: JsonDict, stanzas: tuple[str, ...]) -> list[FieldError]:
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


def immutable_data_errors(obj: JsonDict, old: JsonDict | None, stanzas: tuple[str, ...]) -> list[FieldError]:
    if old is None or not old.get('immutable'):
        return []
    errors: list[FieldError] = []
    if not obj.get('immutable'):
        errors.append(FieldError('immutable', 'Forbidden', 'field is immutable when `immutable` is set'))
    for stanza in stanzas:
        if not json_equal(obj.get(stanza) or {}, old.get(stanza) or {}):
            errors.append(FieldError(stanza, 'Forbidden', 'field is immutable when `immutable` is set'))
    return errors


def qos_class(spec: JsonDict) -> str:
    containers = (spec.get('containers') or []) + (spec.get('initContainers') or [])
    resources = [c.get('resources') or {} for c in containers]
    if not any(r.get('requests') or r.get('limits') for r in resources):
        return 'BestEffort'
    guaranteed = all(
        all((r.get('limits') or {}).get(k) and (r.get('requests') or {}).get(k, (r.get('limits') or {}).get(k))
            == (r.get('limits') or {}).get(k) for k in ('cpu', 'memory'))
        for r in resources)
    return 'Guaranteed' if guaranteed else 'Burstable'


def pod_spec_errors(spec: JsonDict, path: str, *, restart_policies: tuple[str, ...]) -> list[FieldError]:
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
                errors += name_errors(name, 'label', f'{where}.name')
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


def workload_errors(spec: JsonDict, old: JsonDict | None, *, restart_policies: tuple[str, ...]) -> list[FieldError]:
    errors: list[FieldError] = []
    template = spec.setdefault('template', {})
    errors += pod_spec_errors(template.setdefault('spec', {}), 'spec.template.spec',
                              restart_policies=restart_policies)
    selector = spec.get('selector')
    labels = (template.get('metadata') or {}).get('labels') or {}
    if not selector:
        errors.append(FieldError('spec.selector', 'Required'))
    elif not (selector.get('matchLabels') or selector.get('matchExpressions')):
        errors.append(FieldError('spec.selector', 'Invalid', 'empty selector is invalid for deployment', selector))
    elif not label_selector_matches(selector, labels):
        errors.append(FieldError('spec.template.metadata.labels', 'Invalid', '`selector` does not match template '
                                                                             '`labels`', labels))
    if old is not None and not json_equal(selector, (old.get('spec') or {}).get('selector')):
        errors.append(FieldError('spec.selector', 'Invalid', 'field is immutable', selector))
    return errors
