"""JSON value helpers shared by the whole emulator: equality that tells ``true`` from ``1``, digging into
nested maps, timestamps as the apiserver writes them, and the small merges server-side apply needs.
"""

from __future__ import annotations

import copy
import datetime
from collections.abc import Iterable
from typing import Any

JsonDict = dict[str, Any]
FieldPath = tuple[str, ...]  # a path of map keys, e.g. ('spec', 'source', 'uri')
MISSING: Any = object()  # "no value", distinct from a JSON null


def timestamp(offset: float = 0) -> str:
    """Now (plus ``offset`` seconds) as the apiserver writes timestamps: RFC 3339, seconds, UTC."""
    moment = datetime.datetime.now(datetime.UTC) + datetime.timedelta(seconds=offset)
    return moment.strftime('%Y-%m-%dT%H:%M:%SZ')


def json_equal(a: Any, b: Any) -> bool:
    """JSON equality that, unlike Python's ``==``, tells ``true`` from ``1``."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(json_equal(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(json_equal(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return a == b
    return type(a) is type(b) and a == b


def metadata_of(obj: JsonDict) -> JsonDict:
    """``obj['metadata']``, created empty if it is missing or not a map."""
    meta = obj.get('metadata')
    if not isinstance(meta, dict):
        meta = obj['metadata'] = {}
    return meta


def dig(obj: Any, path: Iterable[str]) -> Any:
    """The value at ``path`` in nested maps, or None."""
    for key in path:
        if not isinstance(obj, dict):
            return None
        obj = obj.get(key)
    return obj


def drop_nulls(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: drop_nulls(v) for k, v in value.items() if v is not None}
    return value


def deep_merge(base: JsonDict, overlay: JsonDict) -> JsonDict:
    result = copy.deepcopy(base)
    for key, value in overlay.items():
        if isinstance(value, dict) and isinstance(result.get(key), dict):
            result[key] = deep_merge(result[key], value)
        else:
            result[key] = copy.deepcopy(value)
    return result


def remove_path(obj: JsonDict, path: FieldPath) -> None:
    parents: list[tuple[JsonDict, str]] = []
    node: Any = obj
    for key in path[:-1]:
        if not isinstance(node, dict) or key not in node:
            return
        parents.append((node, key))
        node = node[key]
    if isinstance(node, dict):
        node.pop(path[-1], None)
    for parent, key in reversed(parents):  # drop maps emptied by the removal (not the top-level stanzas)
        if parent[key] == {} and parent is not obj:
            del parent[key]
