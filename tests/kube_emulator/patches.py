"""The patch formats of ``PATCH`` requests: JSON merge patch (RFC 7386), JSON patch (RFC 6902, a failed
``test`` is an error of its own) and strategic merge patch for built-in kinds (common merge keys only).
"""

from __future__ import annotations

import copy
from typing import Any

from .json_values import json_equal

PATCH_TYPES = {
    'application/json-patch+json': 'json',
    'application/merge-patch+json': 'merge',
    'application/strategic-merge-patch+json': 'strategic',
    'application/apply-patch+yaml': 'apply',
}


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
                if not json_equal(actual, op['value']):
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
