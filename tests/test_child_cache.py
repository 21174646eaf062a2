"""The child cache a pass compares its plan with (controller/child_cache.py): what it keeps, and that a
child belongs to exactly one model at a time."""

from __future__ import annotations

import json
from typing import Any

from openmodel_operator.controller.child_cache import ChildCache


def child(kind: str, name: str, owner: str | None, **extra: Any) -> dict[str, Any]:
    labels = {"app.kubernetes.io/managed-by": "openmodel-operator"}
    if owner is not None:
        labels["openmodel.io/name"] = owner
    meta = {"name": name, "namespace": "ns", "labels": labels, "managedFields": [{"manager": "x"}]}
    return {"apiVersion": "v1", "kind": kind, "metadata": meta, "spec": {"image": "vllm"}, **extra}


def test_a_relabelled_child_leaves_its_model_and_is_never_shown_to_it_again() -> None:
    cache = ChildCache()
    cache.put("Deployment", child("Deployment", "a", "a"))
    cache.put("Service", child("Service", "a", "a"))
    assert {c["kind"] for c in cache.of("ns", "a")} == {"Deployment", "Service"}
    cache.put("Deployment", child("Deployment", "a", "b"))  # a tenant moved model a's Deployment to b
    assert [c["kind"] for c in cache.of("ns", "a")] == ["Service"], "model a still trusts a copy it lost"
    assert [c["metadata"]["name"] for c in cache.of("ns", "b")] == ["a"]
    cache.put("Deployment", child("Deployment", "a", None))  # owner label removed
    assert cache.of("ns", "b") == [] and len(cache) == 1


def test_a_deleted_child_goes_and_other_kinds_of_the_same_name_stay() -> None:
    cache = ChildCache()
    cache.put("Deployment", child("Deployment", "m", "m"))
    cache.put("Service", child("Service", "m", "m"))
    cache.remove("Deployment", child("Deployment", "m", "m"))
    assert [c["kind"] for c in cache.of("ns", "m")] == ["Service"]
    cache.remove("Deployment", child("Deployment", "m", "m"))  # a second DELETED is harmless
    cache.remove("Service", child("Service", "m", "m"))
    assert cache.of("ns", "m") == [] and len(cache) == 0


def test_what_is_kept_is_what_a_pass_compares() -> None:
    cache = ChildCache()
    cache.put("Job", child("Job", "m-fetch", "m", status={"succeeded": 1}))
    cache.put("Deployment", child("Deployment", "m", "m", status={"availableReplicas": 1}))
    kept = {c["kind"]: c for c in cache.of("ns", "m")}
    assert "spec" not in kept["Job"] and kept["Job"]["status"] == {"succeeded": 1}  # created once, never compared
    assert kept["Deployment"]["spec"] == {"image": "vllm"}  # compared for drift every pass
    assert all("managedFields" not in c["metadata"] for c in kept.values())


def test_packed_children_come_back_equal_and_take_less_memory() -> None:
    """A Deployment is held packed: what a pass reads is equal to what the watch showed, and the cache holds
    less than half of what the same bodies cost as dicts (a ConfigMap, kept as dicts, is the control)."""
    import tracemalloc

    template = {"spec": {"containers": [{"name": "vllm", "image": "vllm", "args": [f"--a{i}" for i in range(40)]}]}}
    wire = []
    for i in range(200):
        body = child("Deployment", f"m{i}", f"m{i}", status={"replicas": 1})
        body["spec"] = {"replicas": 1, "template": template}
        wire.append(json.dumps(body))

    def held(kind: str) -> tuple[ChildCache, int]:
        cache = ChildCache()
        tracemalloc.start()
        before = tracemalloc.take_snapshot()
        for text in wire:
            cache.put(kind, {**json.loads(text), "kind": kind})  # decoded from the watch, then dropped
        grown = sum(s.size_diff for s in tracemalloc.take_snapshot().compare_to(before, "filename"))
        tracemalloc.stop()
        return cache, grown

    packed, packed_bytes = held("Deployment")
    _, plain_bytes = held("ConfigMap")
    got = packed.of("ns", "m7")
    want = json.loads(wire[7])
    want["metadata"].pop("managedFields")
    assert got == [want]
    assert packed_bytes < plain_bytes / 2, (packed_bytes, plain_bytes)
