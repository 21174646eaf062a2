"""Structural schemas of CRDs (the OpenAPI v3 subset Kubernetes uses): pruning of unknown fields and
non-nullable nulls, defaulting, and validation with the apiserver's messages. CEL rules: :mod:`.cel`.
"""

from __future__ import annotations

import copy
import datetime
import json
import re
from typing import Any

from .errors import FieldError
from .json_values import JsonDict, dig, json_equal

_META_FIELDS = {'name', 'generateName', 'namespace', 'selfLink', 'uid', 'resourceVersion', 'generation',
                'creationTimestamp', 'deletionTimestamp', 'deletionGracePeriodSeconds', 'labels', 'annotations',
                'ownerReferences', 'finalizers', 'managedFields'}


def format_path(path: str, key: str, *, is_map: bool = False) -> str:
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
            sub_path = format_path(path, key)
            if (root or embedded) and key in ('apiVersion', 'kind'):
                result[key] = sub
            elif (root or embedded) and key == 'metadata' and isinstance(sub, dict):
                result[key] = {k: v for k, v in sub.items() if k in _META_FIELDS}
                pruned.extend(format_path(sub_path, k) for k in sub if k not in _META_FIELDS)
            elif key in props:
                if sub is None and not props[key].get('nullable'):
                    continue
                result[key] = schema_prune(sub, props[key], sub_path, pruned,
                                           embedded=bool(props[key].get('x-kubernetes-embedded-resource')))
            elif isinstance(additional, dict):
                if sub is None and not additional.get('nullable'):
                    continue
                result[key] = schema_prune(sub, additional, format_path(path, key, is_map=True), pruned)
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


def json_type(value: Any) -> str:
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


def schema_validate(value: Any, schema: JsonDict | None, path: str, errors: list[FieldError]) -> None:
    """Validate a (pruned, defaulted) value against an OpenAPI v3 structural schema (CEL: ``schema_cel``)."""
    if schema is None:
        return
    where = path or '<root>'
    actual = json_type(value)
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
    if 'enum' in schema and not any(json_equal(value, option) for option in schema['enum']):
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
                ident = item if list_type == 'set' else [dig(item, (k,)) for k in keys]
                if any(json_equal(ident, other) for other in seen):
                    errors.append(FieldError(f'{path}[{i}]', 'Duplicate', value=ident))
                seen.append(ident)
        if isinstance(schema.get('items'), dict):
            for i, item in enumerate(value):
                schema_validate(item, schema['items'], f'{path}[{i}]', errors)
    if actual == 'object':
        for key in schema.get('required') or []:
            if key not in value:
                errors.append(FieldError(format_path(path, key), 'Required'))
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
                schema_validate(sub, props[key], format_path(path, key), errors)
            elif isinstance(additional, dict):
                schema_validate(sub, additional, format_path(path, key, is_map=True), errors)
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
