"""`openmodel bom`: AI-BOMs (SPDX 3.0.1, CycloneDX 1.6) of signed, pinned and unverified models from the Hub stand-in.

Every document is validated (schema and SHACL for SPDX 3, the official JSON schema for CycloneDX) and read back
in its own terms; what it says must equal the decision `openmodel verify --json` records for the same model:
the files and digests, the license, signer, tier, openness and every policy with its verdict. Card facts
(datasets, base model, evaluation) appear only when the decision read the card as evidence: a card the
signature does not cover says nothing, whatever the endpoint's metadata claims.
"""

from __future__ import annotations

import hashlib
import json
import pathlib
from typing import Any

import pytest
import yaml

from bom_checks import BomFacts, cyclonedx_errors, cyclonedx_facts, spdx3_errors, spdx3_facts
from hubstub import HubStub
from openmodel_operator.cli import main
from signing_fixtures import KeyPair, new_key, sign_with_key, write_model
from test_verify_cli import key_policy, write_policy

pytestmark = pytest.mark.usefixtures("stub_origins_allowed")

CARD = b"""---
license: apache-2.0
datasets: [example/corpus, https://data.example.org/set.tar]
base_model: example/base-1b
base_model_relation: finetune
pipeline_tag: text-generation
model-index:
- name: model
  results:
  - task: {type: text-generation}
    dataset: {name: MMLU, type: cais/mmlu}
    metrics:
    - {type: accuracy, value: 61.2, name: MMLU 5-shot}
---
# Model
## Intended uses
Answering questions about open models.
## Limitations
It makes things up.
"""
# claims only unverified metadata may make: none of them may reach a BOM
HOSTILE_CARD = b"""---
license: mit
datasets: [claimed/secret-corpus]
base_model: claimed/base
model-index:
- name: model
  results:
  - task: {type: text-generation}
    dataset: {name: Claimed}
    metrics:
    - {type: accuracy, value: 99.9}
---
## Limitations
None at all.
"""
FILES = {
    "README.md": CARD,
    "config.json": b'{"hidden_size": 8}\n',
    "model.safetensors": b"\x00weights" * 512,
    "tokenizer.json": b'{"version": "1.0"}\n',
}


def sha256s(files: dict[str, bytes]) -> dict[str, str]:
    return {path: hashlib.sha256(data).hexdigest() for path, data in files.items()}


def run(capsys: pytest.CaptureFixture[str], command: str, *args: str) -> tuple[int, str, str]:
    code = main([command, *args])
    out, err = capsys.readouterr()
    return code, out, err


def boms(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[BomFacts, BomFacts, dict[str, Any]]:
    """Both BOMs of a model (each validated) and the decision `verify --json` records for it."""
    code, out, err = run(capsys, "verify", *args, "--json")
    assert code == 0, err
    decision = json.loads(out)["predicate"]
    facts = []
    for fmt, errors, read in (("spdx3", spdx3_errors, spdx3_facts), ("cyclonedx", cyclonedx_errors, cyclonedx_facts)):
        code, out, err = run(capsys, "bom", *args, "--format", fmt)
        assert code == 0, err
        document = json.loads(out)
        assert errors(document) == [], fmt
        facts.append(read(document))
    return facts[0], facts[1], decision


def assert_matches_decision(bom: BomFacts, decision: dict[str, Any], files: dict[str, bytes]) -> None:
    """The BOM states the decision: content, license, signer, tier, openness, every policy and its verdict."""
    assert bom.files == sha256s(files)  # the verified files and their digests, nothing else
    assert bom.version == decision["source"]["resolvedRevision"]
    assert bom.license == decision["license"]
    assert bom.tier == decision["trustTier"]
    assert bom.signer == decision["signature"].get("identity")
    assert bom.mof_class == decision["openness"]["mofClass"]
    assert bom.missing == decision["openness"]["missing"]
    assert bom.policies == [
        {"name": p["name"], "mode": p["mode"], "verdict": p["verdict"], "reasons": p["reasons"]}
        for p in decision["policies"]
    ]


@pytest.fixture
def key() -> KeyPair:
    return new_key()


def publish_signed(hub: HubStub, tmp: pathlib.Path, key: KeyPair, files: dict[str, bytes], **sign: Any) -> str:
    bundle = sign_with_key(write_model(tmp / "src", files), key, tmp / "sig", **sign)
    return hub.add_model("org/model", {**files, "model.sig": bundle})


def test_signed_model_bom_states_the_decision_and_the_verified_card(
    hub: HubStub, tmp_path: pathlib.Path, key: KeyPair, capsys: pytest.CaptureFixture[str]
) -> None:
    commit = publish_signed(hub, tmp_path, key, FILES)
    args = ("hf://org/model", "--endpoint", hub.url, "--policy", str(key_policy(tmp_path, key)))
    spdx, cdx, decision = boms(capsys, *args)
    assert decision["trustTier"] == "Signed" and decision["license"] == "Apache-2.0"
    for bom in (spdx, cdx):
        assert_matches_decision(bom, decision, FILES)
        assert bom.name == "org/model" and bom.version == commit
        assert bom.manifest_digest == decision["manifest"]["digest"]
        assert bom.signer == "org-release"
        assert "OSAID:trainingCode" in bom.missing  # what the model lacks for the Open Source AI Definition
        assert bom.datasets == ["example/corpus", "https://data.example.org/set.tar"]
        assert bom.base_models == ["example/base-1b"]
        assert bom.metrics == {"MMLU 5-shot on MMLU": "61.2"}
        assert bom.intended_use == "Answering questions about open models."
        assert bom.limitations == "It makes things up."


def test_card_the_signer_left_out_says_nothing_in_the_bom(
    hub: HubStub, tmp_path: pathlib.Path, key: KeyPair, capsys: pytest.CaptureFixture[str]
) -> None:
    # signed, but README.md is in the signer's ignore_paths: the endpoint's cardData still claims a license,
    # datasets, a base model and results; an Audit policy admits the model without a license
    files = {**FILES, "README.md": HOSTILE_CARD}
    publish_signed(hub, tmp_path, key, files, ignore=["README.md"])
    policy = key_policy(tmp_path, key, mode="Audit")
    spdx, cdx, decision = boms(capsys, "hf://org/model", "--endpoint", hub.url, "--policy", str(policy))
    assert decision["trustTier"] == "Signed" and decision["license"] is None
    verified = {path: data for path, data in files.items() if path != "README.md"}  # the signed set
    for bom in (spdx, cdx):
        assert_matches_decision(bom, decision, verified)
        assert bom.license is None and bom.datasets == [] and bom.base_models == []
        assert bom.metrics == {} and bom.limitations is None
        assert "LicenseUnknown" in bom.policies[0]["reasons"]


def test_pinned_model_from_a_manifest_bom(
    hub: HubStub, tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    hub.add_model("org/model", FILES)
    policy = write_policy(tmp_path / "p.yaml", {"signature": {"required": False, "allowPinnedDigest": True}})
    code, out, _ = run(capsys, "verify", "hf://org/model", "--endpoint", hub.url, "--policy", str(policy), "--json")
    assert code == 1  # neither signed nor pinned yet
    digest = json.loads(out)["predicate"]["manifest"]["digest"]  # what a reviewer pins
    manifest = tmp_path / "openmodel.yaml"
    source = {"uri": "hf://org/model", "endpoint": hub.url, "digest": digest}
    body = {"apiVersion": "openmodel.io/v1alpha1", "kind": "OpenModel", "metadata": {"name": "m"}}
    manifest.write_text(yaml.safe_dump({**body, "spec": {"source": source}}))
    spdx, cdx, decision = boms(capsys, "-f", str(manifest), "--policy", str(policy))
    assert decision["trustTier"] == "Pinned"
    for bom in (spdx, cdx):
        assert_matches_decision(bom, decision, FILES)
        assert bom.signer is None and bom.manifest_digest == digest
        assert bom.license == "Apache-2.0" and bom.datasets[0] == "example/corpus"  # the pin covers the card


def test_unverified_model_admitted_by_audit_bom_claims_nothing_from_its_card(
    hub: HubStub, tmp_path: pathlib.Path, key: KeyPair, capsys: pytest.CaptureFixture[str]
) -> None:
    files = {**FILES, "README.md": HOSTILE_CARD}
    hub.add_model("org/model", files)
    policy = key_policy(tmp_path, key, mode="Audit")
    spdx, cdx, decision = boms(capsys, "hf://org/model", "--endpoint", hub.url, "--policy", str(policy))
    assert decision["trustTier"] == "Unverified"
    for bom in (spdx, cdx):
        assert_matches_decision(bom, decision, files)  # every file listed, as the pinned manifest has them
        assert bom.tier == "Unverified" and bom.signer is None and bom.license is None
        assert bom.datasets == [] and bom.base_models == [] and bom.metrics == {}
        assert bom.policies == [{"name": "org", "mode": "Audit", "verdict": "Fail", "reasons": ["SignatureMissing"]}]


@pytest.mark.parametrize("fmt", ["spdx3", "cyclonedx"])
def test_rejected_model_exits_1_and_prints_no_bom(
    hub: HubStub, tmp_path: pathlib.Path, key: KeyPair, capsys: pytest.CaptureFixture[str], fmt: str
) -> None:
    hub.add_model("org/unsigned", FILES)
    publish_signed(hub, tmp_path, key, FILES)
    policy = str(key_policy(tmp_path, key))
    code, out, err = run(capsys, "bom", "hf://org/unsigned", "--endpoint", hub.url, "--policy", policy, "--format", fmt)
    assert code == 1 and out == ""
    assert "SignatureMissing" in err and "No BOM: the model is not trusted" in err
    # the signed model under the same policy has one
    code, out, _ = run(capsys, "bom", "hf://org/model", "--endpoint", hub.url, "--policy", policy, "--format", fmt)
    assert code == 0 and json.loads(out)


def test_output_file_and_same_decision_same_bom(
    hub: HubStub, tmp_path: pathlib.Path, key: KeyPair, capsys: pytest.CaptureFixture[str]
) -> None:
    publish_signed(hub, tmp_path, key, FILES)
    args = ("hf://org/model", "--endpoint", hub.url, "--policy", str(key_policy(tmp_path, key)))
    target = tmp_path / "bom.cdx.json"
    code, out, _ = run(capsys, "bom", *args, "--format", "cyclonedx", "-o", str(target))
    assert code == 0 and str(target) in out
    assert cyclonedx_errors(json.loads(target.read_text())) == []
    code, _, err = run(capsys, "bom", *args, "-o", str(tmp_path / "missing-dir" / "bom.json"))
    assert code == 2 and "--output" in err
