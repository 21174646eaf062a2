"""Generic object-metadata validation, as apimachinery's ``ValidateObjectMeta``: names (RFC 1123 label or
subdomain, DNS-1035 label), label keys and values, annotations' size, owner references and finalizers.
"""

from __future__ import annotations

import re

from .errors import FieldError
from .json_values import JsonDict, metadata_of

SYSTEM_META = ('uid', 'resourceVersion', 'generation', 'creationTimestamp', 'deletionTimestamp',
               'deletionGracePeriodSeconds', 'managedFields', 'selfLink')


_DNS1123_LABEL = re.compile(r'[a-z0-9]([-a-z0-9]*[a-z0-9])?')
_DNS1123_SUBDOMAIN = re.compile(r'[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')
_DNS1035_LABEL = re.compile(r'[a-z]([-a-z0-9]*[a-z0-9])?')
_QUALIFIED_NAME = re.compile(r'([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')
_LABEL_VALUE = re.compile(r'(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')
_ANNOTATIONS_LIMIT = 256 * 1024


def label_key_error(key: str) -> str | None:
    prefix, _, name = key.rpartition('/')
    if prefix and (len(prefix) > 253 or not _DNS1123_SUBDOMAIN.fullmatch(prefix)):
        return 'prefix part must be a lowercase RFC 1123 subdomain'
    if not name or len(name) > 63 or not _QUALIFIED_NAME.fullmatch(name):
        return ("name part must consist of alphanumeric characters, '-', '_' or '.', and must start and "
                "end with an alphanumeric character (max 63 characters)")
    return None


def label_value_error(value: str) -> str | None:
    if len(value) > 63 or not _LABEL_VALUE.fullmatch(value):
        return ("a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or "
                "'.', and must start and end with an alphanumeric character (max 63 characters)")
    return None


def name_errors(name: str, style: str, field: str = 'metadata.name') -> list[FieldError]:
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


def meta_errors(obj: JsonDict, name_style: str) -> list[FieldError]:
    meta = metadata_of(obj)
    errors: list[FieldError] = []
    name = meta.get('name')
    if not isinstance(name, str) or not name:
        errors.append(FieldError('metadata.name', 'Required', 'name or generateName is required'))
    else:
        errors += name_errors(name, name_style)
    labels = meta.get('labels') or {}
    if not isinstance(labels, dict):
        errors.append(FieldError('metadata.labels', 'Invalid', 'must be a map of strings', labels))
        labels = {}
    for key, value in labels.items():
        if error := label_key_error(key):
            errors.append(FieldError('metadata.labels', 'Invalid', error, key))
        if not isinstance(value, str):
            errors.append(FieldError(f'metadata.labels[{key}]', 'Invalid', 'must be a string', value))
        elif error := label_value_error(value):
            errors.append(FieldError('metadata.labels', 'Invalid', error, value))
    annotations = meta.get('annotations') or {}
    total = 0
    for key, value in annotations.items():
        if error := label_key_error(key.lower()):
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
        if not isinstance(finalizer, str) or label_key_error(finalizer):
            errors.append(FieldError(f'metadata.finalizers[{i}]', 'Invalid', 'name part must consist of '
                                     "alphanumeric characters, '-', '_' or '.'", finalizer))
    return errors
