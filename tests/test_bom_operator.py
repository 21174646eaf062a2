"""The operator keeps the AI-BOMs of a decided revision in a ConfigMap it owns, and names it on status.

Planner rules from plain data first (built per decision, left alone by passes that decide nothing, bounded,
removed with their revision), then the real operator against the emulator and the Hub stand-in: a served model
has both documents in the cluster, valid, and saying what status says; an oversized one is not kept and status
says how to get it.
"""

from __future__ import annotations

import base64
import dataclasses
import gzip
import hashlib
import json
from typing import Any

import pytest

from apiserver_validation import admit
from bom_checks import cyclonedx_errors, cyclonedx_facts, spdx3_errors, spdx3_facts
from openmodel_operator.api.openmodel import OpenModelSpec, OpenModelStatus
from openmodel_operator.crd.definitions import openmodel_crd
from openmodel_operator.evidence.bom import BomInput, cyclonedx_document, spdx3_document
from openmodel_operator.planning import bom as bom_plan
from openmodel_operator.planning import children, planner, revision_slots
from openmodel_operator.planning.conditions import Cond
from openmodel_operator.planning.trust_result import TrustResult
from test_bom import CARD, DIGEST, NOW, PINNED, PROVENANCE
from test_operator import FILES, NS, World, operator, world

pytest_plugins = ["kube_fixtures"]
FIXTURES = (operator, world)  # the operator test world of tests/test_operator.py

REF = children.ModelRef(name="granite", namespace="models", uid="uid-1", generation=2)
SETTINGS = children.ChildSettings(operator_image="op:1", vllm_image="vllm:1")
TRUSTED = TrustResult(True, (Cond("Trusted", "True", "PoliciesPassed", "ok"),), PROVENANCE, PINNED, card=CARD)


def spec() -> OpenModelSpec:
    return OpenModelSpec.model_validate({"source": {"uri": "hf://org/granite"}})


def documents(configmap: dict[str, Any]) -> dict[str, Any]:
    """The documents of a BOM ConfigMap, decompressed, by key."""
    binary = configmap["binaryData"]
    return {key: json.loads(gzip.decompress(base64.b64decode(value))) for key, value in binary.items()}


def test_a_decision_keeps_its_boms_in_a_configmap_named_on_status() -> None:
    result = planner.plan(REF, spec(), OpenModelStatus(), TRUSTED, planner.Observed(), SETTINGS, NOW)
    (configmap,) = [o for o in result.apply if o["metadata"]["name"] == children.bom_configmap_name(REF, DIGEST)]
    assert configmap["metadata"]["ownerReferences"][0]["uid"] == "uid-1"
    assert configmap["metadata"]["labels"][children.COMPONENT_LABEL] == "bom"
    record = result.status.provenance.bom if result.status.provenance else None
    assert record is not None and record.config_map == configmap["metadata"]["name"] and record.message is None
    kept = documents(configmap)
    assert kept[record.spdx3_key] == spdx3_document(BomInput(PROVENANCE, PINNED, CARD))
    assert kept[record.cyclonedx_key] == cyclonedx_document(BomInput(PROVENANCE, PINNED, CARD))
    # a pass that only reuses what status recorded has no card: the ConfigMap and the record stay as they are
    reused = dataclasses.replace(TRUSTED, card=None, provenance=result.status.provenance)
    again = planner.plan(REF, spec(), result.status, reused, planner.Observed(), SETTINGS, NOW)
    assert not any(o["metadata"]["name"] == configmap["metadata"]["name"] for o in again.apply)
    assert again.status.provenance is not None and again.status.provenance.bom == record
    # nothing is kept for a rejected decision
    assert bom_plan.bom_input(dataclasses.replace(TRUSTED, trusted=False)) is None


def test_an_oversized_bom_is_not_kept_and_status_says_how_to_get_it() -> None:
    bom = BomInput(PROVENANCE, PINNED, CARD)
    configmap, record = bom_plan.bom_child(REF, bom)
    assert configmap is not None and record.config_map is not None
    too_big, record = bom_plan.bom_child(REF, bom, max_bytes=100)
    assert too_big is None and record.config_map is None and record.manifest_digest == DIGEST
    assert record.message is not None and "compressed" in record.message and "openmodel bom" in record.message
    too_many, record = bom_plan.bom_child(REF, bom, max_files=1)
    assert too_many is None and record.message is not None and "2 files" in record.message


def test_the_bom_of_a_revision_no_longer_kept_is_removed_with_it() -> None:
    old = "sha256:" + "e" * 64
    names = [
        children.manifest_configmap_name(REF, DIGEST),
        children.bom_configmap_name(REF, DIGEST),
        children.manifest_configmap_name(REF, old),
        children.bom_configmap_name(REF, old),
    ]
    cleanup = revision_slots.cleanup(REF, {}, names, [DIGEST], SETTINGS, on_claim=False)
    assert sorted(name for _, name in cleanup.delete) == sorted(names[2:])
    kept = revision_slots.cleanup(REF, {}, names, [DIGEST, old], SETTINGS, on_claim=False)
    assert kept.delete == ()


# ---------------------------------------------------------------- the operator


async def test_the_operator_keeps_the_boms_of_a_served_revision(world: World, operator: Any) -> None:
    world.publish()
    world.policy()
    world.model()
    async with operator():
        await world.serve()
        provenance = world.status()["provenance"]
        record = provenance["bom"]
        assert record["manifestDigest"] == provenance["manifestDigest"]
        configmap = world.child("configmaps", record["configMap"])
        assert configmap is not None
        assert configmap["metadata"]["ownerReferences"][0]["uid"] == world.get()["metadata"]["uid"]
        kept = documents(configmap)
        spdx, cdx = kept[record["spdx3Key"]], kept[record["cyclonedxKey"]]
        # status binds the documents: an auditor checks the ConfigMap (the tenant's to edit) against it
        for key, digest in (
            (record["spdx3Key"], record["spdx3Digest"]),
            (record["cyclonedxKey"], record["cyclonedxDigest"]),
        ):
            raw = gzip.decompress(base64.b64decode(configmap["binaryData"][key]))
            assert f"sha256:{hashlib.sha256(raw).hexdigest()}" == digest
        assert spdx3_errors(spdx) == [] and cyclonedx_errors(cdx) == []
        for facts in (spdx3_facts(spdx), cyclonedx_facts(cdx)):
            assert facts.files == {path: hashlib.sha256(data).hexdigest() for path, data in FILES.items()}
            assert facts.manifest_digest == provenance["manifestDigest"]
            assert facts.version == provenance["resolvedRevision"]
            assert facts.license == provenance["license"] == "Apache-2.0"
            assert facts.tier == "Signed" and facts.signer == provenance["signature"]["identity"]
            assert facts.policies == [
                {k: p[k] for k in ("name", "mode", "verdict", "reasons")} for p in provenance["policies"]
            ]
            assert facts.datasets == ["example/corpus"]  # from the signed card
        # everything written to status is declared in the CRD (a real apiserver would prune nothing)
        stored = world.get()
        _, errors = admit(openmodel_crd(), {k: v for k, v in stored.items() if k != "metadata"})
        assert errors == []


async def test_an_oversized_bom_is_not_kept_and_the_model_still_serves(
    world: World, operator: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(bom_plan, "MAX_BOM_BYTES", 100)
    world.publish()
    world.policy()
    world.model()
    async with operator():
        await world.serve()
        record = world.status()["provenance"]["bom"]
        assert record.get("configMap") is None and "openmodel bom" in record["message"]
        boms = world.kube.list("configmaps", NS, labels={"openmodel.io/name": "m", children.COMPONENT_LABEL: "bom"})
        assert boms == []
