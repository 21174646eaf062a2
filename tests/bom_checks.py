"""Reading the AI-BOMs back in tests: validation of each format, and the facts each states, side by side.

Both documents are validated as a consumer would: CycloneDX with the library's strict JSON validator (the
official 1.6 schema, the hand-built ``modelCard`` included), SPDX 3.0.1 with spdx3-validate's schema and SHACL
checks (``spdx3_offline``). The facts are then read from each format in its own terms, so a test can compare
both with the decision.
"""

from __future__ import annotations

import dataclasses
import json
from collections import defaultdict
from typing import Any

from cyclonedx.schema import SchemaVersion
from cyclonedx.validation.json import JsonStrictValidator

from spdx3_offline import spdx3_errors

__all__ = ["BomFacts", "cyclonedx_errors", "cyclonedx_facts", "spdx3_errors", "spdx3_facts"]


def cyclonedx_errors(document: dict[str, Any]) -> list[str]:
    """The first schema violation of a CycloneDX 1.6 JSON document (empty: valid)."""
    error = JsonStrictValidator(SchemaVersion.V1_6).validate_str(json.dumps(document))
    return [] if error is None else [str(error).splitlines()[0]]


@dataclasses.dataclass
class BomFacts:
    """What one BOM says, in the decision's terms."""

    name: str
    version: str
    manifest_digest: str
    files: dict[str, str]  # path -> sha256
    license: str | None
    tier: str
    signer: str | None
    mof_class: str
    missing: list[str]
    policies: list[dict[str, Any]]  # name, mode, verdict, reasons
    datasets: list[str]
    base_models: list[str]
    metrics: dict[str, str]
    intended_use: str | None
    limitations: str | None


def _policy(raw: dict[str, Any]) -> dict[str, Any]:
    return {"name": raw["name"], "mode": raw["mode"], "verdict": raw["verdict"], "reasons": list(raw["reasons"])}


def spdx3_facts(document: dict[str, Any]) -> BomFacts:
    nodes = document["@graph"]
    by_id = {n.get("spdxId"): n for n in nodes}
    (doc,) = [n for n in nodes if n["type"] == "SpdxDocument"]
    (root,) = doc["rootElement"]
    model = by_id[root]
    assert model["type"] == "ai_AIPackage"
    relations = [n for n in nodes if n["type"] == "Relationship" and n["from"] == root]

    def related(kind: str) -> list[dict[str, Any]]:
        return [by_id[target] for r in relations if r["relationshipType"] == kind for target in r["to"]]

    files = {f["name"]: f["verifiedUsing"][0]["hashValue"] for f in related("contains")}
    assert len(files) == len([n for n in nodes if n["type"] == "software_File"])  # every file is contained
    concluded = [n["simplelicensing_licenseExpression"] for n in related("hasConcludedLicense")]
    statements = [json.loads(n["statement"]) for n in nodes if n["type"] == "Annotation" and n["subject"] == root]
    (trust,) = [s for s in statements if s["openmodel"] == "trust"]
    (openness,) = [s for s in statements if s["openmodel"] == "openness"]
    return BomFacts(
        name=model["name"],
        version=model["software_packageVersion"],
        manifest_digest="sha256:" + model["verifiedUsing"][0]["hashValue"],
        files=files,
        license=concluded[0] if concluded else None,
        tier=trust["trustTier"],
        signer=trust["signature"].get("identity"),
        mof_class=openness["mofClass"],
        missing=openness["missing"],
        policies=[_policy(s) for s in statements if s["openmodel"] == "policy"],
        datasets=[n["name"] for n in related("trainedOn")],
        base_models=[n["name"] for n in related("descendantOf")],
        metrics={m["key"]: m["value"] for m in model.get("ai_metric", [])},
        intended_use=model.get("ai_informationAboutApplication"),
        limitations=model.get("ai_limitation"),
    )


def cyclonedx_facts(document: dict[str, Any]) -> BomFacts:
    model = document["metadata"]["component"]
    assert model["type"] == "machine-learning-model"
    props: dict[str, list[str]] = defaultdict(list)
    for prop in model.get("properties", []):
        props[prop["name"]].append(prop["value"])
    card = model["modelCard"]
    openness: dict[str, list[str]] = defaultdict(list)
    for prop in card.get("properties", []):
        openness[prop["name"]].append(prop["value"])
    names = sorted({key.split(":")[2] for key in props if key.startswith("openmodel:policy:")})
    policies = [
        {
            "name": name,
            "mode": props[f"openmodel:policy:{name}:mode"][0],
            "verdict": props[f"openmodel:policy:{name}:verdict"][0],
            "reasons": props.get(f"openmodel:policy:{name}:reasons", []),
        }
        for name in names
    ]
    considerations = card.get("considerations", {})
    data_refs = {d["ref"] for d in card.get("modelParameters", {}).get("datasets", [])}
    datasets = [c for c in document.get("components", []) if c["type"] == "data"]
    assert data_refs == {c["bom-ref"] for c in datasets}  # the card's datasets are the BOM's data components
    return BomFacts(
        name=model["name"],
        version=model["version"],
        manifest_digest=props["openmodel:manifestDigest"][0],
        files={f["name"]: f["hashes"][0]["content"] for f in model.get("components", [])},
        license=(model.get("licenses") or [{}])[0].get("expression"),
        tier=props["openmodel:trustTier"][0],
        signer=(props.get("openmodel:signature:identity") or [None])[0],
        mof_class=openness["openmodel:openness:mofClass"][0],
        missing=openness.get("openmodel:openness:missing", []),
        policies=policies,
        datasets=[c["name"] for c in datasets],
        base_models=[a["name"] for a in model.get("pedigree", {}).get("ancestors", [])],
        metrics={
            m["type"] + (f" on {m['slice']}" if "slice" in m else ""): m["value"]
            for m in card.get("quantitativeAnalysis", {}).get("performanceMetrics", [])
        },
        intended_use=(considerations.get("useCases") or [None])[0],
        limitations=(considerations.get("technicalLimitations") or [None])[0],
    )
