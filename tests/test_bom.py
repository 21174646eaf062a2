"""The AI-BOM builders, the card facts they quote and the BOM ConfigMap the planner keeps per revision.

Pure tests: plain values in, documents out. Each hostile case (a card that lies or floods, a document broken
on purpose, a BOM too large for a ConfigMap) runs beside its legitimate twin.
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib

import pytest

from bom_checks import cyclonedx_errors, cyclonedx_facts, spdx3_errors, spdx3_facts
from openmodel_operator.api.openmodel import Provenance
from openmodel_operator.evidence.bom import BomError, BomInput, cyclonedx_document, render, spdx3_document
from openmodel_operator.evidence.manifest import manifest_digest_of
from openmodel_operator.evidence.model_card import MAX_ITEMS, MAX_SECTION_CHARS, CardFacts, card_facts
from openmodel_operator.evidence.pinned import PinnedManifest
from openmodel_operator.evidence.records import FileEntry
from openmodel_operator.planning import children

NOW = datetime.datetime(2026, 12, 2, 6, 0, tzinfo=datetime.UTC)
FILES = (FileEntry("config.json", 10, "a" * 64), FileEntry("model.safetensors", 1000, "b" * 64))
DIGEST = manifest_digest_of(FILES)
PINNED = PinnedManifest("hf://org/granite", "c" * 40, DIGEST, FILES, "https://hub.example.org")
PROVENANCE = Provenance.model_validate(
    {
        "source": "hf://org/granite",
        "endpoint": "https://hub.example.org",
        "repository": "org/granite",
        "requestedRevision": "main",
        "resolvedRevision": "c" * 40,
        "manifestDigest": DIGEST,
        "fileCount": 2,
        "totalBytes": 1010,
        "trustTier": "Signed",
        "signature": {"method": "key", "identity": "org-release", "verifiedAt": "2026-12-02T06:00:00Z"},
        "license": "Apache-2.0",
        "openness": {"mofClass": "ClassIII", "osaid": False, "missing": ["OSAID:trainingCode"]},
        "policies": [{"name": "org", "generation": 1, "mode": "Enforce", "verdict": "Pass", "reasons": []}],
        "verifiedAt": "2026-12-02T06:00:00Z",
    }
)
CARD = CardFacts(datasets=("org/corpus",), base_models=("org/base",), base_model_relation="quantized")
REF = children.ModelRef(name="granite", namespace="models", uid="uid-1", generation=2)
SETTINGS = children.ChildSettings(operator_image="op:1", vllm_image="vllm:1")


def test_both_documents_are_valid_deterministic_and_agree() -> None:
    bom = BomInput(PROVENANCE, PINNED, CARD)
    spdx, cdx = spdx3_document(bom), cyclonedx_document(bom)
    assert spdx3_errors(spdx) == [] and cyclonedx_errors(cdx) == []
    assert spdx["@context"] == "https://spdx.org/rdf/3.0.1/spdx-context.jsonld" and cdx["specVersion"] == "1.6"
    # the same decision, the same bytes (stable ids, the decision's time, sorted files)
    assert render(spdx3_document(BomInput(PROVENANCE, PINNED, CARD))) == render(spdx)
    assert render(cyclonedx_document(BomInput(PROVENANCE, PINNED, CARD))) == render(cdx)
    for facts in (spdx3_facts(spdx), cyclonedx_facts(cdx)):
        assert facts.files == {"config.json": "a" * 64, "model.safetensors": "b" * 64}
        assert facts.manifest_digest == DIGEST and facts.version == "c" * 40
        assert facts.license == "Apache-2.0" and facts.tier == "Signed" and facts.signer == "org-release"
        assert facts.datasets == ["org/corpus"] and facts.base_models == ["org/base"]
    # a mirror is named in the package URL and where the content is published
    model = cdx["metadata"]["component"]
    assert model["purl"] == f"pkg:huggingface/org/granite@{'c' * 40}?repository_url=https://hub.example.org"
    assert cdx["metadata"]["timestamp"].startswith("2026-12-02T06:00:00")
    relation = [n for n in spdx["@graph"] if n.get("relationshipType") == "descendantOf"]
    assert relation[0]["comment"] == "base_model_relation: quantized"


def test_the_validators_catch_broken_documents() -> None:
    """The validation the other tests rely on fails on documents broken the way a builder bug would break them."""
    bom = BomInput(PROVENANCE, PINNED, CARD)
    spdx, cdx = spdx3_document(bom), cyclonedx_document(bom)
    (document,) = [n for n in spdx["@graph"] if n["type"] == "SpdxDocument"]
    document["rootElement"] = ["urn:openmodel:nothing-here"]  # a root that is no element
    assert any("shacl" in e for e in spdx3_errors(spdx))
    broken = spdx3_document(bom)
    next(n for n in broken["@graph"] if n["type"] == "software_File")["verifiedUsing"][0]["algorithm"] = "sha257"
    assert spdx3_errors(broken)
    cdx["metadata"]["component"]["modelCard"]["intendedUse"] = "not a CycloneDX field"
    assert cyclonedx_errors(cdx)
    assert spdx3_errors({**spdx3_document(bom), "@context": "https://example.org/ctx"})


def test_a_bom_describes_one_decision() -> None:
    other = dataclasses.replace(PINNED, manifest_digest="sha256:" + "d" * 64)
    with pytest.raises(BomError, match=r"provenance\.manifestDigest"):
        BomInput(PROVENANCE, other, CARD)
    with pytest.raises(BomError, match=r"provenance\.verifiedAt"):
        BomInput(PROVENANCE.model_copy(update={"verified_at": None}), PINNED, CARD)


def test_names_a_card_gives_never_become_malformed_links() -> None:
    names = ('org/x"y', "https://data.example.org/a b", "https://data.example.org/set.tar", "org/ok", "x\\y")
    bom = BomInput(PROVENANCE, PINNED, CardFacts(datasets=names, base_models=("<script>",)))
    spdx, cdx = spdx3_document(bom), cyclonedx_document(bom)
    assert spdx3_errors(spdx) == [] and cyclonedx_errors(cdx) == []
    links = {c["name"]: c.get("externalReferences", [{}])[0].get("url") for c in cdx["components"]}
    assert links == {
        'org/x"y': None,
        "https://data.example.org/a b": None,
        "https://data.example.org/set.tar": "https://data.example.org/set.tar",
        "org/ok": "https://hub.example.org/datasets/org/ok",
        "x\\y": None,
    }
    assert spdx3_facts(spdx).datasets == list(names)  # every name is still listed, as the card says


def test_unknown_license_and_local_sources() -> None:
    record = PROVENANCE.model_copy(
        update={"license": None, "source": "pvc://models/weights", "repository": None, "resolved_revision": None}
    )
    pinned = dataclasses.replace(PINNED, source="pvc://models/weights", revision=None, endpoint=None)
    bom = BomInput(record, pinned, CardFacts(datasets=("local corpus",)))
    spdx, cdx = spdx3_document(bom), cyclonedx_document(bom)
    assert spdx3_errors(spdx) == [] and cyclonedx_errors(cdx) == []
    for facts in (spdx3_facts(spdx), cyclonedx_facts(cdx)):
        assert facts.license is None  # no assertion, never a guess
        assert facts.version == DIGEST and facts.name == "pvc://models/weights"
    assert "purl" not in cdx["metadata"]["component"]
    dataset = next(c for c in cdx["components"] if c["type"] == "data")
    assert "externalReferences" not in dataset  # a bare name is no Hub id to link


CARD_TEXT = """---
datasets: [org/a, org/b]
base_model: [org/base]
base_model_relation: finetune
pipeline_tag: text-generation
model-index:
- name: m
  results:
  - task: {type: text-generation}
    dataset: {name: MMLU}
    metrics:
    - {type: accuracy, value: 61.2}
---
# Model
## Intended uses & limitations
Chat.
```
## not a heading inside code
```
## Limitations
Makes things up.
"""


def test_card_facts_from_a_legitimate_card() -> None:
    facts = card_facts(CARD_TEXT.encode())
    assert facts.datasets == ("org/a", "org/b") and facts.base_models == ("org/base",)
    assert facts.base_model_relation == "finetune" and facts.task == "text-generation"
    assert facts.intended_use == "Chat.\n```\n## not a heading inside code\n```"
    assert facts.limitations == "Makes things up."  # its own section wins over the combined heading
    ((metric),) = facts.metrics
    assert (metric.type, metric.value, metric.dataset) == ("accuracy", "61.2", "MMLU")


def test_card_facts_of_a_hostile_card_are_bounded_and_printable() -> None:
    flood = "\n".join(f"  - org/d{i}" for i in range(5 * MAX_ITEMS))
    text = (
        f"---\ndatasets:\n{flood}\nbase_model: {{not: a name}}\nbase_model_relation: stolen\n"
        'pipeline_tag: "gen\\u202eeration"\n---\n## Limitations\n' + "x" * (10 * MAX_SECTION_CHARS) + "\n"
    )
    facts = card_facts(text.encode())
    assert len(facts.datasets) == MAX_ITEMS
    assert facts.base_models == () and facts.base_model_relation is None  # not a name, not a relation
    assert facts.task == "gen\\u202eeration"  # a bidi override is shown escaped, never applied
    assert facts.limitations is not None and len(facts.limitations) <= MAX_SECTION_CHARS
    assert card_facts(b"---\ndate: 2024-13-45\n---\n") == CardFacts()  # a front matter that does not parse
    assert card_facts(b"\xff\xfe not a card") == CardFacts()


def test_models_decided_alike_share_the_documents_and_only_an_equal_decision_does(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """After a restart or a policy change every model of one content is decided again in the same second: the
    documents are built once for equal decisions (they name no model), and never handed to another decision."""
    from openmodel_operator.planning import bom as bom_plan

    built: list[BomInput] = []
    real = bom_plan.spdx3_document

    def counted(bom: BomInput) -> dict[str, object]:
        built.append(bom)
        return real(bom)

    monkeypatch.setattr(bom_plan, "spdx3_document", counted)
    monkeypatch.setattr(bom_plan, "_HELD", type(bom_plan._HELD)())
    other_ref = children.ModelRef(name="granite-2", namespace="other", uid="uid-2", generation=1)
    first, first_record = bom_plan.bom_child(REF, BomInput(PROVENANCE, PINNED, CARD))
    # another model, an equal decision made of other objects: the same documents, its own ConfigMap
    again, again_record = bom_plan.bom_child(other_ref, BomInput(PROVENANCE.model_copy(deep=True), PINNED, CARD))
    assert len(built) == 1
    assert first is not None and again is not None
    assert again["binaryData"] == first["binaryData"] and again["metadata"]["namespace"] == "other"
    assert again_record.model_copy(update={"config_map": None}) == first_record.model_copy(update={"config_map": None})
    # any difference in the decision is another BOM: its time, a policy's generation, the card
    later = PROVENANCE.model_copy(update={"verified_at": NOW + datetime.timedelta(seconds=1)})
    policy = PROVENANCE.policies[0].model_copy(update={"generation": 2}) if PROVENANCE.policies else None
    regoverned = PROVENANCE.model_copy(update={"policies": [policy]})
    for changed in (
        BomInput(later, PINNED, CARD),
        BomInput(regoverned, PINNED, CARD),
        BomInput(PROVENANCE, PINNED, dataclasses.replace(CARD, datasets=("org/other",))),
    ):
        configmap, record = bom_plan.bom_child(REF, changed)
        assert configmap is not None and built[-1] is changed
        assert record.spdx3_digest != first_record.spdx3_digest
        uncached = render(real(changed))
        assert record.spdx3_digest == f"sha256:{hashlib.sha256(uncached.encode()).hexdigest()}"
    assert len(built) == 4
