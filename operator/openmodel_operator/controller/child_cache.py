"""The operator's own children as the watch shows them, by the model they belong to: what a pass compares
with its plan (no list call per pass).

Kopf's index held each child in a store of its own with a reverse set (about 1.5 KB per child, five
children per model: issue 13's memory goal). Here a child is one entry under its owner, plus one entry
saying where it is, so that a child whose owner label is changed (by hand) moves: the model it left sees
it missing and restores its own, and never keeps trusting a stale copy of an object it no longer owns.

What is kept of a child is what the reconciler reads: no managedFields (``kopf_watch`` drops them), and no
spec of a Job or a claim, which the operator creates once and never compares (their status tells the pull).
A Deployment, a Service, a Job and a claim are kept as compressed JSON (a serving model's Deployment with the
server's defaults and status is ~20 KB of Python dicts, ~1.5 KB packed) and unpacked only for the pass of
their model, every resync interval at most. The manifest ConfigMap stays a dict: its large value is interned
(``kopf_watch``) and so held once for every model of the same content, which packing would undo.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Callable, Mapping
from typing import Any

from openmodel_operator.controller.kopf_watch import interned

OWNER_LABEL = "openmodel.io/name"
COMPONENT_LABEL = "app.kubernetes.io/component"
ATTESTATIONS = "attestations"  # planning.attestation_history.COMPONENT
KEPT_FIELDS = ("apiVersion", "kind", "metadata", "spec", "status", "data")
WITHOUT_SPEC = frozenset({"Job", "PersistentVolumeClaim"})
PACKED = frozenset({"Deployment", "Service", "Job", "PersistentVolumeClaim"})

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
    if out.get("kind") == "ConfigMap" and (meta.get("labels") or {}).get(COMPONENT_LABEL) == ATTESTATIONS:
        out.pop("data", None)  # up to ~900 KiB of signed history per model: read by GET on a new decision only
    return out


def _pack(body: Mapping[str, Any]) -> bytes:
    return zlib.compress(json.dumps(body, separators=(",", ":")).encode(), 1)


def _unpack(held: Mapping[str, Any] | bytes) -> Mapping[str, Any]:
    if isinstance(held, bytes):
        unpacked: dict[str, Any] = json.loads(zlib.decompress(held))
        return unpacked
    return held


def _where(body: Mapping[str, Any], kind: str) -> tuple[str, Ident, str | None]:
    meta = body.get("metadata") or {}
    owner = (meta.get("labels") or {}).get(OWNER_LABEL)
    return str(meta.get("namespace") or ""), (kind, str(meta.get("name") or "")), owner or None


class ChildCache:
    """Children by (namespace, owner label), each under exactly one owner at a time."""

    def __init__(self) -> None:
        # (namespace, owner) -> (kind, name) -> (resourceVersion, body or packed body)
        self._by_owner: dict[Owner, dict[Ident, tuple[str, Mapping[str, Any] | bytes]]] = {}
        self._owner: dict[tuple[str, Ident], str] = {}  # (namespace, (kind, name)) -> owner label value

    def __len__(self) -> int:
        return len(self._owner)

    def holds(self, namespace: str, kind: str, name: str) -> bool:
        """Whether a child of that kind and name is one of the operator's, as the watch shows it now."""
        return (namespace, (kind, name)) in self._owner

    def put(self, kind: str, body: Mapping[str, Any]) -> str | None:
        """The child as the watch shows it now (an ADDED or MODIFIED event, or a listing); the owner it had
        before when that was another one (it moved)."""
        namespace, ident, owner = _where(body, kind)
        before = self._owner.get((namespace, ident))
        moved = before if before is not None and before != owner else None
        if moved is not None:
            self._drop(namespace, ident, moved)
        if owner is None:
            return moved  # not a model's child (any more)
        self._owner[(namespace, ident)] = owner
        kept = trimmed(body)
        version = str((kept.get("metadata") or {}).get("resourceVersion") or "")
        held = _pack(kept) if kind in PACKED else interned(kept)  # interned only what is kept as objects
        self._by_owner.setdefault((namespace, owner), {})[ident] = (version, held)
        return moved

    def version_of(self, kind: str, body: Mapping[str, Any]) -> str | None:
        """The resourceVersion held for this child (None: not held)."""
        namespace, ident, _ = _where(body, kind)
        owner = self._owner.get((namespace, ident))
        held = self._by_owner.get((namespace, owner), {}).get(ident) if owner is not None else None
        return held[0] if held is not None else None

    def remove(self, kind: str, body: Mapping[str, Any]) -> str | None:
        """The child is gone (a DELETED event, or it stopped matching the operator's label selector); the
        owner it had."""
        namespace, ident, _ = _where(body, kind)
        before = self._owner.get((namespace, ident))
        if before is not None:
            self._drop(namespace, ident, before)
        return before

    def retain(self, kind: str, namespace: str | None, names: set[tuple[str, str]]) -> list[tuple[str, str, str]]:
        """A listing of ``kind`` in ``namespace`` (None: every namespace) held only ``names``: the others
        vanished while the watch was down (Kopf re-lists after 410 Gone and reports no deletion). Returns the
        (namespace, owner, name) of each child dropped."""
        gone = [
            (ns, ident, owner)
            for (ns, ident), owner in self._owner.items()
            if ident[0] == kind and (namespace is None or ns == namespace) and (ns, ident[1]) not in names
        ]
        for ns, ident, owner in gone:
            self._drop(ns, ident, owner)
        return [(ns, owner, ident[1]) for ns, ident, owner in gone]

    def _drop(self, namespace: str, ident: Ident, owner: str) -> None:
        self._owner.pop((namespace, ident), None)
        held = self._by_owner.get((namespace, owner))
        if held is not None:
            held.pop(ident, None)
            if not held:
                del self._by_owner[(namespace, owner)]

    def of(self, namespace: str, owner: str) -> list[Mapping[str, Any]]:
        """The children of one model (its owner label value)."""
        return [_unpack(held) for _, held in self._by_owner.get((namespace, owner), {}).values()]

    def versions(self, namespace: str, owner: str) -> tuple[tuple[str, str, str], ...]:
        """(kind, name, resourceVersion) of each child of one model, without unpacking any: what changed."""
        held = self._by_owner.get((namespace, owner), {})
        return tuple(sorted((kind, name, version) for (kind, name), (version, _) in held.items()))


class ChildStream:
    """The watch stream of one child kind (``kopf_watch.Sink``): fills the cache and wakes the owners.

    A watched change wakes its owner, and the owner it left if it moved. The first listing of a scope wakes
    nothing (every model gets a pass at start); a re-listing (after 410 Gone, or a pause) wakes the owners of
    the children it shows changed or new, since no resync looks for them (a settled model waits for a
    wake-up).
    """

    def __init__(self, kind: str, cache: ChildCache, wake: Callable[[str, str, str, str], None]) -> None:
        self.kind = kind
        self.cache = cache
        self.wake = wake  # (namespace, owner label value, kind, name)
        self.lists = 0
        self._listed: set[str | None] = set()  # scopes (namespaces, None: cluster-wide) listed once already

    def event(self, namespace: str | None, event_type: str | None, body: Mapping[str, Any]) -> None:
        deleted = event_type == "DELETED"
        relisted = event_type is None and namespace in self._listed
        held = self.cache.version_of(self.kind, body) if relisted else None
        before = self.cache.remove(self.kind, body) if deleted else self.cache.put(self.kind, body)
        if event_type is None and (not relisted or held == self.cache.version_of(self.kind, body)):
            return  # the first listing, or listed again as it was held: nothing to look at
        ns, (_, name), owner = _where(body, self.kind)
        for label in {owner, before} - {None}:
            self.wake(ns, str(label), self.kind, name)

    def listed(self, namespace: str | None, names: set[tuple[str, str]]) -> None:
        self.lists += 1
        self._listed.add(namespace)
        for ns, owner, name in self.cache.retain(self.kind, namespace, names):
            self.wake(ns, owner, self.kind, name)
