"""``metadata.managedFields``: which field manager owns which leaf fields (server-side apply bookkeeping).
Maps are granular, every list is atomic (the real server merges associative lists such as containers by
name: not emulated).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from typing import Any

from .json_values import FieldPath, JsonDict, dig, json_equal, timestamp
from .metadata import SYSTEM_META
from .resources import ResourceDef


def field_leaves(obj: JsonDict, scope: str) -> dict[FieldPath, Any]:
    """Paths of the tracked leaf fields: ``main`` (no status if it is a subresource), ``status`` or ``all``."""
    leaves: dict[FieldPath, Any] = {}

    def walk(value: Any, path: FieldPath) -> None:
        if isinstance(value, dict) and value:
            for key, sub in value.items():
                walk(sub, (*path, key))
        else:
            leaves[path] = value

    for key, value in obj.items():
        if key in ('apiVersion', 'kind'):
            continue
        if scope == 'status' and key != 'status':
            continue
        if scope == 'main' and key == 'status':
            continue
        if key == 'metadata' and isinstance(value, dict):
            for mkey, mvalue in value.items():
                if mkey not in SYSTEM_META and mkey not in ('name', 'namespace'):
                    walk(mvalue, ('metadata', mkey))
        else:
            walk(value, (key,))
    return leaves


def encode_fields(paths: Iterable[FieldPath]) -> JsonDict:
    root: JsonDict = {}
    for path in sorted(paths):
        node = root
        for key in path:
            node = node.setdefault(f'f:{key}', {})
    return root


def decode_fields(fields: Mapping[str, Any], prefix: FieldPath = ()) -> set[FieldPath]:
    paths: set[FieldPath] = set()
    children = {k: v for k, v in fields.items() if k.startswith('f:')}
    if not children and prefix:
        paths.add(prefix)
    for key, sub in children.items():
        paths |= decode_fields(sub if isinstance(sub, dict) else {}, (*prefix, key[2:]))
    return paths


def paths_overlap(a: FieldPath, b: FieldPath) -> bool:
    n = min(len(a), len(b))
    return a[:n] == b[:n]


@dataclasses.dataclass
class FieldManager:
    manager: str
    operation: str
    subresource: str
    api_version: str
    time: str
    paths: set[FieldPath]

    @property
    def ident(self) -> tuple[str, str, str]:
        return self.manager, self.operation, self.subresource

    def render(self) -> JsonDict:
        entry: JsonDict = {'manager': self.manager, 'operation': self.operation, 'apiVersion': self.api_version,
                           'time': self.time, 'fieldsType': 'FieldsV1', 'fieldsV1': encode_fields(self.paths)}
        if self.subresource:
            entry['subresource'] = self.subresource
        return entry


def read_managers(obj: JsonDict | None) -> list[FieldManager]:
    result: list[FieldManager] = []
    for entry in (dig(obj, ('metadata', 'managedFields')) or []) if obj else []:
        result.append(FieldManager(entry.get('manager', ''), entry.get('operation', 'Update'),
                                   entry.get('subresource', ''), entry.get('apiVersion', ''),
                                   entry.get('time', ''), decode_fields(entry.get('fieldsV1') or {})))
    return result


def update_managers(rd: ResourceDef, old: JsonDict, new: JsonDict, manager: str, operation: str,
                    subresource: str, apply_paths: set[FieldPath] | None, forced: set[FieldPath] | None) -> None:
    """Record a write of ``manager`` in ``new``'s managedFields: others lose the fields it changed."""
    if subresource == 'finalize':
        subresource = ''
    scope = 'status' if subresource == 'status' else ('main' if rd.has_status else 'all')
    old_leaves, new_leaves = field_leaves(old, scope), field_leaves(new, scope)
    touched = {p for p, v in new_leaves.items() if p not in old_leaves or not json_equal(old_leaves[p], v)}
    touched |= set(old_leaves) - set(new_leaves)
    touched |= forced or set()
    managers = read_managers(old)
    mine = next((m for m in managers if m.ident == (manager, operation, subresource)), None)
    for entry in managers:
        in_scope = (entry.subresource == 'status') == (subresource == 'status')
        if entry is mine or not in_scope:
            continue
        kept = {p for p in entry.paths if not any(paths_overlap(p, t) for t in touched)}
        if kept != entry.paths:
            entry.paths, entry.time = kept, timestamp()
    if apply_paths is not None:
        wanted = set(apply_paths)
    else:
        wanted = {p for p in (mine.paths if mine else set()) if p in new_leaves} | (touched & new_leaves.keys())
    if mine is None and wanted:
        managers.append(FieldManager(manager, operation, subresource, rd.api_version, timestamp(), wanted))
    elif mine is not None and mine.paths != wanted:
        mine.paths, mine.time = wanted, timestamp()
    rendered = [m.render() for m in managers if m.paths]
    if rendered:
        new['metadata']['managedFields'] = rendered
    else:
        new['metadata'].pop('managedFields', None)
