"""Label selectors (``a=b,c!=d,e,!f,g in (h,i),j notin (k)``; and the ``matchLabels``/``matchExpressions``
form of workloads) and field selectors (``metadata.name``/``metadata.namespace`` plus each resource's
own field labels; anything else is a 400, as on the real server).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping

from .errors import bad_request
from .json_values import JsonDict, dig
from .metadata import label_key_error, label_value_error
from .resources import ResourceDef

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


@dataclasses.dataclass(frozen=True)
class Requirement:
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


def parse_label_selector(text: str) -> list[Requirement]:
    """Parse ``a=b,c!=d,e,!f,g in (h,i),j notin (k)`` or raise a 400 :class:`ApiError`."""
    result: list[Requirement] = []
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
            raise bad_request(f'unable to parse requirement: found {part!r}, expected a label requirement')
        if error := label_key_error(key):
            raise bad_request(f'unable to parse requirement: key: Invalid value: "{key}": {error}')
        for value in values:
            if error := label_value_error(value):
                raise bad_request(f'unable to parse requirement: values[0][{key}]: Invalid value: '
                                  f'"{value}": {error}')
        result.append(Requirement(key, op, values))
    return result


def parse_field_selector(text: str, rd: ResourceDef) -> list[tuple[str, str, str]]:
    """Parse ``metadata.name=x,status.phase!=Running``; unsupported fields are a 400 like the real API."""
    result: list[tuple[str, str, str]] = []
    allowed = {'metadata.name', 'metadata.namespace'} | _FIELD_LABELS.get((rd.group, rd.plural), set())
    for part in _split_top(text or ''):
        m = re.fullmatch(r'([^=!]+?)\s*(==|=|!=)\s*(.*)', part)
        if not m:
            raise bad_request(f'invalid selector: {text!r}; can\'t understand {part!r}')
        field, op, value = m.group(1).strip(), m.group(2), m.group(3).strip()
        if field not in allowed:
            raise bad_request(f'field label not supported: {field}')
        result.append((field, '!=' if op == '!=' else '=', value))
    return result


def field_value(obj: JsonDict, field: str) -> str:
    value = dig(obj, field.split('.'))
    if isinstance(value, bool):
        return 'true' if value else 'false'
    return '' if value is None else str(value)


def label_selector_matches(selector: JsonDict, labels: Mapping[str, str]) -> bool:
    for key, value in (selector.get('matchLabels') or {}).items():
        if labels.get(key) != value:
            return False
    for expr in selector.get('matchExpressions') or []:
        op = {'In': 'in', 'NotIn': 'notin', 'Exists': 'exists', 'DoesNotExist': '!'}.get(expr.get('operator'), '')
        if not Requirement(expr.get('key', ''), op, tuple(expr.get('values') or ())).matches(labels):
            return False
    return True
