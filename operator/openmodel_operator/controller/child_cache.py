"""The operator's own children as the watch shows them, by the model they belong to: what a pass compares
with its plan (no list call per pass).

Kopf's index held each child in a store of its own with a reverse set (about 1.5 KB per child, five
children per model: issue 13's memory goal). Here a child is one entry under its owner, plus one entry
saying where it is, so that a child whose owner label is changed (by hand) moves: the model it left sees
it missing and restores its own, and never keeps trusting a stale copy of an object it no longer owns.

What is kept of a child is what the reconciler reads: no managedFields (``kopf_watch`` drops them), and no
spec of a Job or a claim, which the operator creates once and never compares (their status tells the pull).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

OWNER_LABEL = "openmodel.io/name"
KEPT_FIELDS = ("apiVersion", "kind", "metadata", "spec", "status", "data")
WITHOUT_SPEC = frozenset({"Job", "PersistentVolumeClaim"})

Owner = tuple[str, str]  # (namespace, owner label value)
Ident = tuple[str, str]  # (kind, name)


def trimmed(body: Mapping[str, Any]) -> dict[str, Any]:
    """What the reconciler reads of a child."""
    out = {k: body[k] for k in KEPT_FIELDS if k in body}
    meta = dict(out.get("metadata") or {})
    meta.pop("managedFields", None)
    out["metadata"] = meta
    if out.get("kind") in WITHOUT_SPEC:
        out.pop("spec", None)
    return out


def _where(body: Mapping[str, Any], kind: str) -> tuple[str, Ident, str | None]:
    meta = body.get("metadata") or {}
    owner = (meta.get("labels") or {}).get(OWNER_LABEL)
    return str(meta.get("namespace") or ""), (kind, str(meta.get("name") or "")), owner or None


class ChildCache:
    """Children by (namespace, owner label), each under exactly one owner at a time."""

    def __init__(self) -> None:
        self._by_owner: dict[Owner, dict[Ident, Mapping[str, Any]]] = {}
        self._owner: dict[tuple[str, Ident], str] = {}  # (namespace, (kind, name)) -> owner label value

    def __len__(self) -> int:
        return len(self._owner)

    def put(self, kind: str, body: Mapping[str, Any]) -> None:
        """The child as the watch shows it now (an ADDED or MODIFIED event, or the initial listing)."""
        namespace, ident, owner = _where(body, kind)
        before = self._owner.get((namespace, ident))
        if before is not None and before != owner:
            self._drop(namespace, ident, before)
        if owner is None:
            return  # not a model's child (any more)
        self._owner[(namespace, ident)] = owner
        self._by_owner.setdefault((namespace, owner), {})[ident] = trimmed(body)

    def remove(self, kind: str, body: Mapping[str, Any]) -> None:
        """The child is gone (a DELETED event, or it stopped matching the operator's label selector)."""
        namespace, ident, _ = _where(body, kind)
        before = self._owner.get((namespace, ident))
        if before is not None:
            self._drop(namespace, ident, before)

    def _drop(self, namespace: str, ident: Ident, owner: str) -> None:
        self._owner.pop((namespace, ident), None)
        held = self._by_owner.get((namespace, owner))
        if held is not None:
            held.pop(ident, None)
            if not held:
                del self._by_owner[(namespace, owner)]

    def of(self, namespace: str, owner: str) -> list[Mapping[str, Any]]:
        """The children of one model (its owner label value)."""
        return list(self._by_owner.get((namespace, owner), {}).values())
