"""Threat: the evidence kept for offline re-decisions is edited by a tenant, or is stale (issue 8, 2 and 5).

The recorded examination lives in memory and beside the pinned manifest in a tenant-editable ConfigMap.
Read back, every field must be bound to what status (written by the operator only) records; re-decided,
it must be decided under today's spec (its pin), not the one it was gathered for.
"""

from __future__ import annotations

import dataclasses
import json
import weakref
from typing import Any

import pytest

from openmodel_operator.api.openmodel import OpenModelSpec, OpenModelStatus
from openmodel_operator.api.trustpolicy import ModelTrustPolicySpec
from openmodel_operator.controller import memory as memory_module
from openmodel_operator.controller.memory import ModelMemory
from openmodel_operator.controller.reconciler import Reconciler
from openmodel_operator.controller.settings import OperatorSettings
from openmodel_operator.planning.examination_plan import Due
from openmodel_operator.planning.recorded import as_binary_data
from openmodel_operator.planning.trust_result import TrustResult
from openmodel_operator.sources.examine import examine
from openmodel_operator.trust.examination import Examination, ModelRequest
from openmodel_operator.trust.policies import Policy
from signing_fixtures import TINY_MODEL, write_model

PINNED, FORGED = "c" * 40, "d" * 40
POLICY = Policy(
    "pin",
    ModelTrustPolicySpec.model_validate({"signature": {"required": False, "allowPinnedDigest": True}}),
    generation=1,
)


@pytest.fixture(autouse=True)
def new_process(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test is a fresh operator process: evidence another test's reconcilers still hold (until the
    garbage collector frees them) is not there to be shared."""
    monkeypatch.setattr(memory_module, "_RECORDED", weakref.WeakValueDictionary())


@pytest.fixture
def model(tmp_path: Any) -> Any:
    return write_model(tmp_path / "m", {**TINY_MODEL, "README.md": b"---\nlicense: apache-2.0\n---\n"})


def examiner_for(model: Any, seen: list[str] | None = None) -> Any:
    """The local copy stands in for the Hub: any branch resolves to PINNED, a commit to itself."""

    def examiner(request: ModelRequest, policies: Any) -> Examination:
        if seen is not None:
            seen.append(request.revision)
        exam = examine(dataclasses.replace(request, uri=str(model)), policies)
        revision = request.revision if len(request.revision) == 40 else PINNED
        resolved = dataclasses.replace(
            exam.resolved, uri="hf://org/m", kind="hf", revision=revision, endpoint="https://huggingface.co"
        )
        return dataclasses.replace(exam, resolved=resolved)

    return examiner


class ConfigMapKube:
    """Answers every GET with one manifest ConfigMap and records the names asked for."""

    def __init__(self, configmap: dict[str, Any]) -> None:
        self.configmap = configmap
        self.gets: list[str] = []

    async def get(self, kind: str, namespace: str, name: str) -> Any:
        self.gets.append(name)
        return self.configmap


async def first_decision(model: Any) -> tuple[OpenModelSpec, TrustResult]:
    digest = examine(ModelRequest(uri=str(model)), [POLICY]).verdict.manifest_digest
    spec = OpenModelSpec.model_validate({"source": {"uri": "hf://org/m", "revision": "main", "digest": digest}})
    reconciler = Reconciler(None, OperatorSettings(), lambda *_: None, examiner=examiner_for(model))  # type: ignore[arg-type]
    memory = ModelMemory()
    first, _ = await reconciler.trust_stage(
        "ns", spec, OpenModelStatus(), [POLICY], Due.NOT_EXAMINED, memory=memory, uid="u"
    )
    assert first.trusted and first.pinned is not None and first.provenance is not None
    assert first.provenance.resolved_revision == PINNED
    return spec, first


@pytest.mark.parametrize("field", ["revision", "endpoint", "source"])
async def test_an_edited_manifest_configmap_cannot_move_the_pin_after_a_restart(model: Any, field: str) -> None:
    spec, first = await first_decision(model)
    assert first.pinned is not None and first.provenance is not None
    doc = json.loads(first.pinned.to_json())
    doc[field] = {"revision": FORGED, "endpoint": "http://127.0.0.1:9", "source": "hf://org/evil"}[field]
    configmap = {"data": {"manifest.json": json.dumps(doc)}, "binaryData": as_binary_data(first.recorded or {})}
    kube = ConfigMapKube(configmap)

    seen: list[str] = []
    restarted = Reconciler(kube, OperatorSettings(), lambda *_: None, examiner=examiner_for(model, seen))  # type: ignore[arg-type]
    status = OpenModelStatus(provenance=first.provenance)
    result, _ = await restarted.trust_stage(
        "ns", spec, status, [POLICY], Due.SPEC_CHANGED, memory=ModelMemory(), uid="u", configmap_name="m-manifest"
    )
    assert result.provenance is not None
    assert result.provenance.resolved_revision == PINNED and result.provenance.source == "hf://org/m"
    assert result.provenance.endpoint == "https://huggingface.co"
    assert seen and FORGED not in seen  # not believed: the source was examined again, never at the forged commit


async def test_control_an_untouched_configmap_is_decided_offline_after_a_restart(model: Any) -> None:
    spec, first = await first_decision(model)
    assert first.pinned is not None and first.provenance is not None
    configmap = {"data": {"manifest.json": first.pinned.to_json()}, "binaryData": as_binary_data(first.recorded or {})}
    kube = ConfigMapKube(configmap)

    seen: list[str] = []
    restarted = Reconciler(kube, OperatorSettings(), lambda *_: None, examiner=examiner_for(model, seen))  # type: ignore[arg-type]
    result, _ = await restarted.trust_stage(
        "ns", spec, OpenModelStatus(provenance=first.provenance), [POLICY], Due.POLICIES_CHANGED,
        memory=ModelMemory(), uid="u", configmap_name="m-manifest",
    )  # fmt: skip
    assert result.trusted and seen == []  # no network at all


async def test_a_changed_pin_is_decided_on_the_new_pin(model: Any) -> None:
    spec, first = await first_decision(model)
    assert first.provenance is not None
    reconciler = Reconciler(None, OperatorSettings(), lambda *_: None, examiner=examiner_for(model))  # type: ignore[arg-type]
    memory = ModelMemory()
    await reconciler.trust_stage("ns", spec, OpenModelStatus(), [POLICY], Due.NOT_EXAMINED, memory=memory, uid="u")
    status = OpenModelStatus(provenance=first.provenance, observed_generation=1)
    wrong = spec.model_copy(deep=True)
    wrong.source.digest = "sha256:" + "0" * 64
    second, _ = await reconciler.trust_stage("ns", wrong, status, [POLICY], Due.SPEC_CHANGED, memory=memory, uid="u")
    assert not second.trusted
    assert any(c.reason == "DigestPinMismatch" for c in second.conditions)
    third, _ = await reconciler.trust_stage("ns", spec, status, [POLICY], Due.SPEC_CHANGED, memory=memory, uid="u")
    assert third.trusted  # control: the right pin passes again


async def test_models_of_one_record_read_one_configmap_after_a_restart_and_another_record_reads_its_own(
    model: Any,
) -> None:
    """A restart of many models of one content reads one ConfigMap (issue 13); evidence is shared only for an
    equal record, so a model whose status records other bytes never decides from this content's evidence."""
    spec, first = await first_decision(model)
    assert first.pinned is not None and first.provenance is not None
    configmap = {"data": {"manifest.json": first.pinned.to_json()}, "binaryData": as_binary_data(first.recorded or {})}
    kube = ConfigMapKube(configmap)
    gets = kube.gets

    seen: list[str] = []
    restarted = Reconciler(kube, OperatorSettings(), lambda *_: None, examiner=examiner_for(model, seen))  # type: ignore[arg-type]
    memories = [ModelMemory() for _ in range(3)]  # held, as the model cache holds them
    for i, memory in enumerate(memories):
        result, _ = await restarted.trust_stage(
            "ns", spec, OpenModelStatus(provenance=first.provenance), [POLICY], Due.POLICIES_CHANGED,
            memory=memory, uid=f"u{i}", configmap_name=f"m{i}-manifest",
        )  # fmt: skip
        assert result.trusted
    assert gets == ["m0-manifest"] and seen == []
    assert all(m.recorded is not None for m in memories)  # the next policy change is decided from memory
    other = first.provenance.model_copy(update={"manifest_digest": "sha256:" + "0" * 64})  # another content's record
    await restarted.trust_stage(
        "ns", spec, OpenModelStatus(provenance=other), [POLICY], Due.POLICIES_CHANGED,
        memory=ModelMemory(), uid="u9", configmap_name="m9-manifest",
    )  # fmt: skip
    assert gets[-1] == "m9-manifest", "a model with another record was decided from shared evidence"
    assert seen, "its own ConfigMap does not match its record: the source is examined again"


async def test_a_record_without_an_endpoint_is_never_shared(model: Any) -> None:
    """Review of issue 13: a record with no endpoint accepts any endpoint in its ConfigMap, so its evidence
    must not stand for another model's (a tenant's edited endpoint would reach the other model's fetch Job)."""
    spec, first = await first_decision(model)
    assert first.pinned is not None and first.provenance is not None
    legacy = first.provenance.model_copy(update={"endpoint": None})
    configmap = {"data": {"manifest.json": first.pinned.to_json()}, "binaryData": as_binary_data(first.recorded or {})}
    kube = ConfigMapKube(configmap)
    gets = kube.gets

    restarted = Reconciler(kube, OperatorSettings(), lambda *_: None, examiner=examiner_for(model))  # type: ignore[arg-type]
    memories = [ModelMemory() for _ in range(2)]
    for i, memory in enumerate(memories):
        await restarted.trust_stage(
            "ns", spec, OpenModelStatus(provenance=legacy), [POLICY], Due.POLICIES_CHANGED,
            memory=memory, uid=f"u{i}", configmap_name=f"m{i}-manifest",
        )  # fmt: skip
    assert gets == ["m0-manifest", "m1-manifest"]
