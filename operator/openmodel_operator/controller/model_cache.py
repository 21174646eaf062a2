"""The OpenModels this process reconciles: the last body the watch showed of each, and what its passes remember.

Kopf held a model's last body only for its daemon; without daemons the operator keeps it here, once (the
body the watch decoded, without managedFields: ``kopf_watch``). The OpenModel stream is routed here
(``ModelStream``) and never reaches Kopf's per-object machinery, which cost ~6 ms per model and held every
body twice during a restart's listing (issue 13: 60 s of a 10,000-model restart). A model leaves when the
DELETED event or a re-listing without it says it is gone, and its memory with it: a model created again
under the same name starts from nothing, as after a restart. A model being deleted stays until its
children are removed and the finalizer is taken off (the handlers do that in the model's pass).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

from openmodel_operator.controller.kopf_watch import interned
from openmodel_operator.controller.memory import ModelMemory
from openmodel_operator.controller.work_queue import Key
from openmodel_operator.planning.children import label_value


def key_of(body: Mapping[str, Any]) -> Key:
    meta = body.get("metadata") or {}
    return str(meta.get("namespace") or ""), str(meta.get("name") or "")


def is_deleting(body: Mapping[str, Any]) -> bool:
    return bool((body.get("metadata") or {}).get("deletionTimestamp"))


def needs_pass(body: Mapping[str, Any]) -> bool:
    """A spec the operator has not acted on yet (new, edited): its pass goes before the background work."""
    generation = (body.get("metadata") or {}).get("generation")
    return bool(generation != (body.get("status") or {}).get("observedGeneration"))


class ModelCache:
    """Bodies and memories by (namespace, name); children find their model by the owner label they carry."""

    def __init__(self) -> None:
        self._bodies: dict[Key, Mapping[str, Any]] = {}
        self._memories: dict[Key, ModelMemory] = {}
        self._by_label: dict[tuple[str, str], set[str]] = {}  # (namespace, owner label value) -> names
        self._by_namespace: dict[str, set[str]] = {}

    def __len__(self) -> int:
        return len(self._bodies)

    def __iter__(self) -> Iterator[Key]:
        return iter(list(self._bodies))

    def put(self, body: Mapping[str, Any]) -> bool:
        """Keep the latest body of a model; True when the model was not held before."""
        key = key_of(body)
        new = key not in self._bodies
        self._bodies[key] = body
        if new:
            namespace, name = key
            self._by_label.setdefault((namespace, label_value(name)), set()).add(name)
            self._by_namespace.setdefault(namespace, set()).add(name)
        return new

    def remove(self, key: Key) -> None:
        """The model is gone (or being deleted): its body and its memory go."""
        if self._bodies.pop(key, None) is None:
            return
        self._memories.pop(key, None)
        namespace, name = key
        label = (namespace, label_value(name))
        _discard(self._by_label, label, name)
        _discard(self._by_namespace, namespace, name)

    def body(self, key: Key) -> Mapping[str, Any] | None:
        return self._bodies.get(key)

    def memory(self, key: Key) -> ModelMemory:
        """The model's memory (created on first use)."""
        found = self._memories.get(key)
        if found is None:
            found = self._memories[key] = ModelMemory()
        return found

    def saw_child(self, key: Key, kind: str, name: str) -> None:
        """The watch shows a child of the model as it is now: the copy of what this process applied to it
        (kept until the watch shows it) is not needed any more."""
        memory = self._memories.get(key)
        if memory is not None:
            memory.applied.pop((kind, name), None)

    def owners(self, namespace: str | None, owner_label: str | None) -> list[Key]:
        """The models a child with this owner label belongs to (one, but for a hash collision of long names)."""
        if not namespace or not owner_label:
            return []
        return [(namespace, name) for name in self._by_label.get((namespace, owner_label), ())]

    def in_namespace(self, namespace: str) -> list[Key]:
        return [(namespace, name) for name in self._by_namespace.get(namespace, ())]

    def count_in(self, namespace: str) -> int:
        return len(self._by_namespace.get(namespace, ()))


class ModelStream:
    """The OpenModel watch stream (``kopf_watch.Sink``): each object listed or watched goes to ``seen``, each
    model gone to ``gone``: its DELETED event, or a listing of its scope that no longer holds it (deleted
    while the watch was down: a dropped connection, a paused replica)."""

    def __init__(
        self,
        cache: ModelCache,
        seen: Callable[[Mapping[str, Any]], None],
        gone: Callable[[Key], None],
    ) -> None:
        self.cache = cache
        self.seen = seen
        self.gone = gone

    def event(self, namespace: str | None, event_type: str | None, body: Mapping[str, Any]) -> None:
        if event_type == "DELETED":
            self.gone(key_of(body))
        else:
            self.seen(interned(body))  # held until the next event of the model: its strings shared with others

    def listed(self, namespace: str | None, names: set[tuple[str, str]]) -> None:
        for key in list(self.cache):
            if (namespace is None or key[0] == namespace) and key not in names:
                self.gone(key)


def _discard(index: dict[Any, set[str]], at: Any, name: str) -> None:
    names = index.get(at)
    if names is not None:
        names.discard(name)
        if not names:
            del index[at]
