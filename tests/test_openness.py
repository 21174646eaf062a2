"""MOF class, OSAID compliance and the openness.yaml declaration."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from openmodel_operator.evidence.records import Reason
from openmodel_operator.trust.licenses import license_data
from openmodel_operator.trust.openness import (
    OPEN_DATA_LICENSES,
    OSAID_COMPONENTS,
    Component,
    assess_openness,
    class_requirements,
    classify,
    evaluate_openness,
    is_open_license,
    missing_for,
    validate_declaration,
)

DOCS = Path(__file__).resolve().parents[1] / "docs" / "openness.md"
RANK = {"None": 0, "ClassIII": 1, "ClassII": 2, "ClassI": 3}
CARD = {"license": "apache-2.0", "pipeline_tag": "text-generation"}

CLASS_III = {
    "modelArchitecture": {"license": "Apache-2.0", "url": "https://github.com/acme/model"},
    "technicalReport": {"license": "CC-BY-4.0", "url": "https://acme.example/report.pdf"},
    "evaluationResults": {"license": "CC-BY-4.0", "path": "EVAL.md"},
    "dataCard": {"license": "CC-BY-4.0", "path": "DATA_CARD.md"},
}
CLASS_II = {
    **CLASS_III,
    "trainingCode": {"license": "Apache-2.0", "url": "https://github.com/acme/train"},
    "inferenceCode": {"license": "Apache-2.0", "url": "https://github.com/acme/model"},
    "evaluationCode": {"license": "MIT", "url": "https://github.com/acme/eval"},
    "evaluationData": {"license": "CC-BY-SA-4.0", "url": "https://acme.example/eval-data"},
}
CLASS_I = {
    **CLASS_II,
    "researchPaper": {"license": "CC-BY-4.0", "url": "https://arxiv.org/abs/2403.13784"},
    "dataProcessingCode": {"license": "Apache-2.0", "url": "https://github.com/acme/data"},
    "intermediateCheckpoints": {"license": "Apache-2.0", "url": "https://acme.example/ckpt"},
    "trainingData": {
        "information": "https://acme.example/data.md",
        "datasets": ["HuggingFaceFW/fineweb", {"name": "acme/code", "license": "ODC-By-1.0"}],
        "license": "CDLA-Permissive-2.0",
    },
}


def declaration(components: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": "openmodel.io/v1alpha1", "kind": "OpennessDeclaration", "components": components}


def test_open_license_sets_are_spdx_ids() -> None:
    data = license_data()
    for spdx in OPEN_DATA_LICENSES:
        assert spdx in data.by_lower.values(), spdx
    assert is_open_license("CC-BY-4.0") and is_open_license("Apache-2.0") and is_open_license("GPL-3.0-only")
    assert not is_open_license("CC-BY-NC-4.0") and not is_open_license("llama3") and not is_open_license(None)


def test_card_alone_is_not_class_iii() -> None:
    evidence = assess_openness(CARD, None, "Apache-2.0")
    assert evidence.license_osi_approved
    assert evidence.components["weights"] and evidence.components["modelCard"]
    assert evidence.mof_class == "None"
    assert not evidence.osaid_compliant
    assert "ClassIII:modelArchitecture" in evidence.missing
    assert "ClassIII:dataCard" in evidence.missing
    assert "ClassII:trainingCode" not in evidence.missing  # only the next class is listed
    assert {f"OSAID:{c}" for c in ("trainingCode", "dataProcessingCode", "dataInformation")} <= set(evidence.missing)
    assert any(source.startswith("card: license 'Apache-2.0'") for source in evidence.sources)


@pytest.mark.parametrize(
    ("components", "expected", "next_missing"),
    [
        (CLASS_III, "ClassIII", "ClassII:trainingCode"),
        (CLASS_II, "ClassII", "ClassI:datasets"),
        (CLASS_I, "ClassI", None),
    ],
)
def test_each_class(components: dict[str, Any], expected: str, next_missing: str | None) -> None:
    evidence = assess_openness(CARD, declaration(components), "Apache-2.0")
    assert evidence.mof_class == expected
    assert validate_declaration(declaration(components)) == []
    if next_missing:
        assert next_missing in evidence.missing
    else:
        assert not [item for item in evidence.missing if item.startswith("Class")]


def test_closed_weights_cap_the_class() -> None:
    evidence = assess_openness({"license": "llama3"}, declaration(CLASS_I), "llama3")
    assert not evidence.components["weights"]
    assert evidence.mof_class == "None"
    assert "ClassIII:weights" in evidence.missing
    assert not evidence.license_osi_approved


def test_non_open_component_license_does_not_count() -> None:
    components = {**CLASS_II, "trainingCode": {"license": "llama3", "url": "https://github.com/acme/train"}}
    evidence = assess_openness(CARD, declaration(components), "Apache-2.0")
    assert evidence.mof_class == "ClassIII"
    assert "ClassII:trainingCode" in evidence.missing
    assert any("trainingCode not open ('llama3'" in source for source in evidence.sources)


def test_research_paper_stands_in_for_technical_report() -> None:
    components = {key: value for key, value in CLASS_III.items() if key != "technicalReport"}
    components["researchPaper"] = {"license": "CC-BY-4.0", "url": "https://arxiv.org/abs/1"}
    assert assess_openness(CARD, declaration(components), "Apache-2.0").mof_class == "ClassIII"


def test_card_metadata_facts() -> None:
    card = {
        "license": "mit",
        "datasets": ["HuggingFaceFW/fineweb"],
        "tags": ["arxiv:2403.13784"],
        "model-index": [{"name": "m", "results": [{"task": {"type": "text-generation"}}]}],
    }
    evidence = assess_openness(card, None, "MIT")
    assert evidence.components["dataInformation"]
    assert evidence.components["evaluationResults"]
    assert not evidence.components["technicalReport"]  # an arXiv tag does not say the paper's license
    assert any("arxiv:2403.13784" in source for source in evidence.sources)


def test_osaid_pass() -> None:
    components = {
        "modelArchitecture": {"license": "Apache-2.0", "url": "https://github.com/acme/model"},
        "inferenceCode": {"license": "Apache-2.0", "url": "https://github.com/acme/model"},
        "trainingCode": {"license": "Apache-2.0", "url": "https://github.com/acme/train"},
        "dataProcessingCode": {"license": "MIT", "url": "https://github.com/acme/data"},
        "trainingData": {"information": "DATA.md", "license": "CC-BY-4.0"},
    }
    evidence = assess_openness(CARD, declaration(components), "Apache-2.0")
    assert evidence.osaid_compliant
    assert not [item for item in evidence.missing if item.startswith("OSAID:")]
    assert evaluate_openness(evidence, None, True) == []


def test_osaid_needs_osi_terms_for_weights_and_code() -> None:
    components = {
        "modelArchitecture": {"license": "Apache-2.0", "url": "https://github.com/acme/model"},
        "inferenceCode": {"license": "Apache-2.0", "url": "https://github.com/acme/model"},
        "trainingCode": {"license": "CC-BY-4.0", "url": "https://github.com/acme/train"},  # open, not OSI
    }
    card = {"license": "cc-by-4.0", "datasets": ["acme/corpus"]}
    evidence = assess_openness(card, declaration(components), "CC-BY-4.0")
    assert evidence.components["weights"] and evidence.components["trainingCode"]  # open in the MOF sense
    assert not evidence.osaid_compliant
    missing = [item for item in evidence.missing if item.startswith("OSAID:")]
    assert missing == ["OSAID:weights", "OSAID:trainingCode", "OSAID:dataProcessingCode"]
    [(reason, message)] = evaluate_openness(evidence, None, True)
    assert reason is Reason.OSAID_COMPONENTS_MISSING
    assert "weights, trainingCode, dataProcessingCode" in message
    assert "openness.yaml" in message


def test_below_minimum_names_what_is_missing() -> None:
    evidence = assess_openness(CARD, declaration(CLASS_III), "Apache-2.0")
    assert evaluate_openness(evidence, "ClassIII", False) == []
    assert evaluate_openness(evidence, None, False) == []
    assert evaluate_openness(evidence, "None", False) == []
    [(reason, message)] = evaluate_openness(evidence, "ClassI", False)
    assert reason is Reason.OPENNESS_BELOW_MINIMUM
    assert "MOF ClassIII" in message and "minimumClass" in message
    for name in ("trainingCode", "evaluationData", "datasets", "intermediateCheckpoints"):
        assert name in message
    with pytest.raises(ValueError, match="ClassIV"):
        evaluate_openness(evidence, "ClassIV", False)


def test_weights_license_conflict_keeps_the_card() -> None:
    decl = declaration({"weights": {"license": "MIT"}})
    evidence = assess_openness({"license": "llama3"}, decl, "llama3")
    assert not evidence.components["weights"]
    assert any("differs from the card's 'llama3'" in source for source in evidence.sources)
    assert assess_openness({}, decl, None).components["weights"]


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        ("just a string", "(document)"),
        ({**declaration(CLASS_III), "apiVersion": "v1"}, "apiVersion"),
        ({**declaration(CLASS_III), "kind": "Openness"}, "kind"),
        (declaration({}), "components"),
        (declaration({"weigths": {"license": "MIT"}}), "components.weigths"),
        (declaration({"trainingCode": "Apache-2.0"}), "components.trainingCode"),
        (declaration({"trainingCode": {"url": "https://x.example"}}), "components.trainingCode.license"),
        (declaration({"trainingCode": {"license": "MIT"}}), "components.trainingCode"),
        (declaration({"trainingCode": {"license": "MIT", "url": "ftp://x"}}), "components.trainingCode.url"),
        (declaration({"dataCard": {"license": "MIT", "path": "../secret"}}), "components.dataCard.path"),
        (declaration({"dataCard": {"licence": "MIT", "path": "x"}}), "components.dataCard.licence"),
        (
            declaration({"trainingCode": {"license": "unknown", "url": "https://x.example"}}),
            "components.trainingCode.license",
        ),
        (declaration({"trainingData": {}}), "components.trainingData"),
        (declaration({"trainingData": {"datasets": "fineweb", "license": "MIT"}}), "components.trainingData.datasets"),
        (declaration({"trainingData": {"datasets": ["a"]}}), "components.trainingData.datasets[0].license"),
        (declaration({"trainingData": {"information": "DATA.md"}}), "components.trainingData.license"),
    ],
)
def test_malformed_declaration_is_reported_not_raised(raw: Any, field: str) -> None:
    errors = validate_declaration(raw)
    assert field in [error.field for error in errors]
    assert all(error.fix for error in errors)
    assert str(errors[0]).startswith("openness.yaml: ")
    evidence = assess_openness(CARD, raw, "Apache-2.0")  # ignored, not fatal
    assert any(source.startswith("openness.yaml: ignored") for source in evidence.sources)


def test_malformed_entry_does_not_spoil_the_rest() -> None:
    components = {**CLASS_III, "trainingCode": {"license": "MIT"}}  # no url
    evidence = assess_openness(CARD, declaration(components), "Apache-2.0")
    assert evidence.mof_class == "ClassIII"
    assert not evidence.components["trainingCode"]


def test_docs_example_is_valid_and_class_i() -> None:
    text = DOCS.read_text(encoding="utf-8")
    block = re.search(r"```yaml\n(apiVersion: openmodel.io/v1alpha1\n.*?)```", text, re.S)
    assert block, "docs/openness.md must carry an OpennessDeclaration example"
    raw = yaml.safe_load(block.group(1))
    assert validate_declaration(raw) == []
    evidence = assess_openness({"license": "apache-2.0"}, raw, "Apache-2.0")
    assert evidence.mof_class == "ClassI"
    assert evidence.osaid_compliant


_COMPONENT_NAMES = [c.value for c in Component]


@given(st.sets(st.sampled_from(_COMPONENT_NAMES)), st.sets(st.sampled_from(_COMPONENT_NAMES)))
def test_class_is_monotonic_in_open_components(some: set[str], more: set[str]) -> None:
    smaller = {name: name in some for name in _COMPONENT_NAMES}
    larger = {name: name in some | more for name in _COMPONENT_NAMES}
    assert RANK[classify(smaller)] <= RANK[classify(larger)]
    achieved = classify(smaller)
    for target in ("ClassIII", "ClassII", "ClassI"):
        assert (missing_for(smaller, target) == []) == (RANK[achieved] >= RANK[target])


def test_class_requirements_are_cumulative() -> None:
    assert set(class_requirements("ClassIII")) < set(class_requirements("ClassII")) < set(class_requirements("ClassI"))
    assert Component.SAMPLE_OUTPUTS not in class_requirements("ClassI")  # optional in the MOF
    assert set(OSAID_COMPONENTS) <= {*class_requirements("ClassI"), Component.DATA_INFORMATION}


_YAML_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=12) | st.sampled_from(_COMPONENT_NAMES),
    lambda children: (
        st.lists(children, max_size=3)
        | st.dictionaries(
            st.text(max_size=12)
            | st.sampled_from([*_COMPONENT_NAMES, "license", "url", "path", "trainingData", "datasets", "information"]),
            children,
            max_size=4,
        )
    ),
    max_leaves=12,
)


@given(_YAML_VALUES)
def test_any_yaml_value_never_raises(components: Any) -> None:
    errors = validate_declaration(declaration(components) if isinstance(components, dict) else components)
    assert all(error.field and error.fix for error in errors)
    assess_openness(CARD, declaration(components), "Apache-2.0")
