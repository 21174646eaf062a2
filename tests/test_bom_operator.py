"""The operator keeps the AI-BOMs of a decided revision in a ConfigMap it owns, and names it on status.

Planner rules from plain data first (built per decision, left alone by passes that decide nothing, bounded,
removed with their revision), then the real operator against the emulator and the Hub stand-in: a served model
has both documents in the cluster, valid, and saying what status says; an oversized one is not kept and status
says how to get it.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime
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


def _bom_of(result: planner.Plan) -> list[dict[str, Any]]:
    return [o for o in result.apply if o["metadata"]["name"] == children.bom_configmap_name(REF, DIGEST)]


def _live(configmap: dict[str, Any]) -> dict[str, dict[str, str]]:
    """What the watch shows of an AI-BOM ConfigMap: its annotations, by name."""
    return {configmap["metadata"]["name"]: dict(configmap["metadata"]["annotations"])}


def _decided(provenance: Any) -> TrustResult:
    return dataclasses.replace(TRUSTED, provenance=provenance)


def test_a_later_decision_stating_the_same_keeps_the_boms_and_one_stating_more_gets_new_ones() -> None:
    """A policy edit that changes no verdict, or a re-verification, decides every model again: the documents stay
    (they state the decision that first said it; status records every one); any other difference is new ones."""
    first = planner.plan(REF, spec(), OpenModelStatus(), TRUSTED, planner.Observed(), SETTINGS, NOW)
    (configmap,) = _bom_of(first)
    observed = planner.Observed(boms=_live(configmap))
    record = first.status.provenance.bom if first.status.provenance else None
    assert record is not None
    later = NOW + datetime.timedelta(minutes=5)
    assert PROVENANCE.policies and PROVENANCE.signature
    regoverned = PROVENANCE.model_copy(
        update={
            "verified_at": later,
            "signature": PROVENANCE.signature.model_copy(update={"verified_at": later}),
            "policies": [
                p.model_copy(update={"generation": 7, "inputs_digest": "sha256:" + "1" * 64})
                for p in PROVENANCE.policies
            ],
        }
    )
    again = planner.plan(REF, spec(), first.status, _decided(regoverned), observed, SETTINGS, later)
    assert _bom_of(again) == [], "a decision stating the same rewrote the AI-BOMs"
    assert again.status.provenance is not None and again.status.provenance.bom == record
    assert again.status.provenance.policies and again.status.provenance.policies[0].generation == 7  # status moves
    # anything the documents state that differs: new documents, and status names them
    policy = PROVENANCE.policies[0]
    for changed in (
        PROVENANCE.model_copy(update={"policies": [policy.model_copy(update={"mode": "Audit"})]}),
        PROVENANCE.model_copy(update={"policies": [policy.model_copy(update={"reasons": ["LicenseUnknown"]})]}),
        PROVENANCE.model_copy(update={"license": "MIT"}),
        PROVENANCE.model_copy(update={"signature": PROVENANCE.signature.model_copy(update={"identity": "other"})}),
    ):
        result = planner.plan(REF, spec(), first.status, _decided(changed), observed, SETTINGS, later)
        (rebuilt,) = _bom_of(result)
        assert result.status.provenance is not None and result.status.provenance.bom != record
        assert rebuilt["metadata"]["annotations"] != configmap["metadata"]["annotations"]
    other_card = dataclasses.replace(TRUSTED, card=dataclasses.replace(CARD, datasets=("org/other",)))
    assert _bom_of(planner.plan(REF, spec(), first.status, other_card, observed, SETTINGS, later))


def test_a_forged_configmap_cannot_keep_the_documents_of_another_signer(monkeypatch: pytest.MonkeyPatch) -> None:
    """Hostile (review): the same content re-signed by another identity the policy trusts. The tenant may copy
    or rewrite every annotation of the BOM ConfigMap; what the documents state is compared on status only, so
    the new signer gets new documents. An operator upgrade is new documents too (a fixed builder)."""
    first = planner.plan(REF, spec(), OpenModelStatus(), TRUSTED, planner.Observed(), SETTINGS, NOW)
    (configmap,) = _bom_of(first)
    annotations = {**configmap["metadata"]["annotations"], "openmodel.io/bom-decision": "forged"}
    observed = planner.Observed(boms={configmap["metadata"]["name"]: annotations})
    assert PROVENANCE.signature is not None
    resigned = PROVENANCE.model_copy(
        update={"signature": PROVENANCE.signature.model_copy(update={"identity": "release-2"})}
    )
    result = planner.plan(REF, spec(), first.status, _decided(resigned), observed, SETTINGS, NOW)
    (rebuilt,) = _bom_of(result)
    assert result.status.provenance is not None and result.status.provenance.bom is not None
    assert "release-2" in json.dumps(documents(rebuilt))
    kept = planner.plan(REF, spec(), first.status, TRUSTED, observed, SETTINGS, NOW)
    assert _bom_of(kept) == []  # control: the same decision keeps them, whatever the annotations say
    monkeypatch.setattr(bom_plan, "__version__", "99.0.0")
    assert _bom_of(planner.plan(REF, spec(), first.status, TRUSTED, observed, SETTINGS, NOW))


def test_boms_that_are_not_the_ones_status_names_are_built_again() -> None:
    """Hostile: the ConfigMap is the tenant's to edit. Documents whose digest is not status's record, a missing
    ConfigMap, a record naming another one, or one that does not say what its documents state (an operator
    before this record) never stand for this decision."""
    first = planner.plan(REF, spec(), OpenModelStatus(), TRUSTED, planner.Observed(), SETTINGS, NOW)
    (configmap,) = _bom_of(first)
    name = configmap["metadata"]["name"]
    annotations = dict(configmap["metadata"]["annotations"])
    record = first.status.provenance.bom if first.status.provenance else None
    assert record is not None and first.status.provenance is not None
    edited = {**annotations, children.BOM_ANNOTATION: "sha256:" + "0" * 64}  # other documents, the key copied
    renamed = first.status.provenance.model_copy(update={"bom": record.model_copy(update={"config_map": "x"})})
    elsewhere = first.status.model_copy(update={"provenance": renamed})
    unstated = first.status.provenance.model_copy(update={"bom": record.model_copy(update={"statement_digest": None})})
    older = first.status.model_copy(update={"provenance": unstated})
    for status, live in (
        (first.status, {name: edited}),
        (first.status, {}),
        (elsewhere, {name: annotations}),
        (older, {name: annotations}),
        (OpenModelStatus(), {name: annotations}),
    ):
        result = planner.plan(REF, spec(), status, TRUSTED, planner.Observed(boms=live), SETTINGS, NOW)
        assert _bom_of(result), live
        assert result.status.provenance is not None and result.status.provenance.bom == record
    # control: the same status and ConfigMap keep them
    kept = planner.plan(REF, spec(), first.status, TRUSTED, planner.Observed(boms={name: annotations}), SETTINGS, NOW)
    assert _bom_of(kept) == []


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


async def test_a_policy_edit_changing_no_verdict_leaves_the_boms_and_one_changing_the_mode_rewrites_them(
    world: World, operator: Any
) -> None:
    world.publish()
    world.policy()
    world.model()
    async with operator():
        await world.serve()
        record = world.status()["provenance"]["bom"]
        written = world.child("configmaps", record["configMap"])
        assert written is not None
        version = written["metadata"]["resourceVersion"]
        # one more license accepted: every model is decided again (generation 2), none of them differently
        world.kube.patch_object("modeltrustpolicies", None, "org", {"spec": {"licenses": {"allow": ["CC-BY-4.0"]}}})

        def generation() -> int:
            return int(world.status()["provenance"]["policies"][0]["generation"])

        await world.until(lambda: generation() == 2, timeout=10)
        assert world.status()["provenance"]["bom"] == record
        kept = world.child("configmaps", record["configMap"])
        assert kept is not None and kept["metadata"]["resourceVersion"] == version, "the AI-BOMs were rewritten"
        # control: the mode is stated in the documents, so a change of it is new documents, named on status
        world.kube.patch_object("modeltrustpolicies", None, "org", {"spec": {"mode": "Audit"}})
        await world.until(lambda: world.status()["provenance"]["bom"] != record, timeout=10)
        new = world.status()["provenance"]["bom"]
        rewritten = world.child("configmaps", new["configMap"])
        assert rewritten is not None and rewritten["metadata"]["resourceVersion"] != version
        spdx = documents(rewritten)[new["spdx3Key"]]
        assert [p["mode"] for p in spdx3_facts(spdx).policies] == ["Audit"]


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
