"""Reading Kopf's in-memory indexes: the operator's view of policies, namespaces, models and children."""

from __future__ import annotations

from typing import Any


def store_values(index: Any, key: Any) -> list[Any]:
    """All values an index holds under a key (a Kopf index maps keys to stores)."""
    try:
        return list(index.get(key, []))
    except TypeError:
        return []


def namespace_labels(index: Any) -> list[tuple[str, dict[str, str]]]:
    """Every known namespace with its labels."""
    return [(name, dict(values[0])) for name in list(index.keys()) if (values := store_values(index, name))]
