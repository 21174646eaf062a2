"""``spec.serving.env[].valueFrom`` is typed (issue 13 review): as a free-form field a tenant could store JSON
nested deeper than a JSON decoder recurses (Python's raises RecursionError near depth 1,000; the API server
accepts up to 10,000), and the watch of every tenant's OpenModels would fail on that one object. Typed, the
API server prunes what the schema does not name, so what is stored has a bounded depth; the documented
sources (secretKeyRef, configMapKeyRef, fieldRef, resourceFieldRef) are stored and served as before.
"""

from __future__ import annotations

import json
from typing import Any

import pydantic
import pytest

from kube_emulator import KubeEmulator
from kube_fixtures import kube
from openmodel_operator.api.openmodel import EnvVar

__all__ = ["kube"]


def deep(levels: int) -> dict[str, Any]:
    node: dict[str, Any] = {}
    for _ in range(levels):
        node = {"x": node}
    return node


def model(value_from: dict[str, Any]) -> dict[str, Any]:
    env = [{"name": "POD_IP", "valueFrom": value_from}]
    return {
        "apiVersion": "openmodel.io/v1alpha1",
        "kind": "OpenModel",
        "metadata": {"name": "m", "namespace": "default"},
        "spec": {"source": {"uri": "hf://org/model"}, "serving": {"env": env}},
    }


async def test_a_deeply_nested_value_from_is_pruned_and_the_documented_sources_are_kept(kube: KubeEmulator) -> None:
    field_ref = {"fieldRef": {"fieldPath": "status.podIP"}}
    kube.create_object(model({**field_ref, "evil": deep(400)}))  # the emulator is Python: it recurses too
    stored = kube.get("openmodels", "default", "m")
    assert stored is not None
    value_from = stored["spec"]["serving"]["env"][0]["valueFrom"]
    assert value_from == field_ref  # control: the documented source is kept; the nesting is gone
    json.loads(json.dumps(stored))  # nothing deeper than the schema is stored


def test_the_operator_refuses_keys_the_schema_does_not_name() -> None:
    """Were an unpruned body ever read (another API server, an old CRD), the spec is refused, not decoded
    into an unbounded dict."""
    with pytest.raises(pydantic.ValidationError):
        EnvVar.model_validate({"name": "A", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}, "evil": {}}})
    ok = EnvVar.model_validate({"name": "A", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}})
    assert ok.to_wire() == {"name": "A", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}
