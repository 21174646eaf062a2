"""The child cache a pass compares its plan with (controller/child_cache.py): what it keeps, and that a
child belongs to exactly one model at a time."""

from __future__ import annotations

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
