"""AI-BOMs of a verified model: an SPDX 3.0.1 document (AI profile) and a CycloneDX 1.6 document.

Built only from what the trust decision itself stands on: the provenance record (the decision as status
shows it: source, commit, manifest digest, tier, signer, license, openness, every policy and its verdict),
the pinned manifest (the verified files with their sha256, bound to that digest) and the facts of the model
card the decision read as evidence (``trust.card.verified_card``). Nothing comes from endpoint metadata
(``cardData``, Hub listings) or from files no signature or pin covers, so an auditor reads exactly what
admitted the model. The CLI (``openmodel bom``) and the operator (one ConfigMap per served revision) call
the same builders with the same input, so both give the same documents for the same decision.

Deterministic: identifiers derive from the manifest digest, the only timestamp is the decision's
``verifiedAt``, files are sorted, so re-building a BOM of the same decision gives the same bytes.

The documents are made with the field's libraries (``spdx-python-model``, ``cyclonedx-python-lib``). The
CycloneDX ``modelCard`` is not modelled by the library yet: it is added to the serialized document as data
(the tests validate the whole document against the official CycloneDX 1.6 JSON schema).
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import re
import uuid
from collections.abc import Sequence
from typing import Any

from cyclonedx.model import ExternalReference, ExternalReferenceType, HashAlgorithm, HashType, Property, XsUri
from cyclonedx.model.bom import Bom, BomMetaData
from cyclonedx.model.component import Component, ComponentType, Pedigree
from cyclonedx.model.license import LicenseExpression
from cyclonedx.model.tool import ToolRepository
from cyclonedx.output.json import JsonV1Dot6
from packageurl import PackageURL
from spdx_python_model import v3_0_1 as spdx

from openmodel_operator import __version__
from openmodel_operator.api.openmodel import ContentProvenance
from openmodel_operator.evidence.model_card import CardFacts, Metric
from openmodel_operator.evidence.pinned import PinnedManifest

SPDX3 = "spdx3"
CYCLONEDX = "cyclonedx"
FORMATS = (SPDX3, CYCLONEDX)
PUBLIC_HUB = "https://huggingface.co"
TOOL_NAME = "openmodel-operator"
PROPERTY_PREFIX = "openmodel:"  # CycloneDX property names of this project's own facts
JSON_MEDIA_TYPE = "application/json"
_REPO_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,95}(/[A-Za-z0-9][A-Za-z0-9_.-]{0,95})?")
_URL = re.compile(r"https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?(/[A-Za-z0-9._~!$&'()*+,;=:@%/-]*)?")


class BomError(ValueError):
    """The inputs do not describe one verified decision (the message names the field and the fix)."""


@dataclasses.dataclass(frozen=True)
class BomInput:
    """One verified decision: its provenance record, the pinned manifest it admitted and its verified card.

    Only trusted (admitted) content has a BOM: the callers build one after a trusted verdict.
    """

    provenance: ContentProvenance
    pinned: PinnedManifest
    card: CardFacts = dataclasses.field(default_factory=CardFacts)

    def __post_init__(self) -> None:
        record, pinned = self.provenance, self.pinned
        if record.manifest_digest != pinned.manifest_digest:
            raise BomError(
                f"provenance.manifestDigest {record.manifest_digest!r} is not the pinned manifest's "
                f"{pinned.manifest_digest!r}: a BOM describes one decision; build it from the pinned manifest of "
                "the same decision"
            )
        if record.verified_at is None:
            raise BomError("provenance.verifiedAt is not set: a BOM is built from a decision, which records its time")

    @property
    def digest_hex(self) -> str:
        return self.pinned.manifest_digest.removeprefix("sha256:")

    @property
    def verified_at(self) -> datetime.datetime:
        assert self.provenance.verified_at is not None  # checked in __post_init__
        return self.provenance.verified_at

    @property
    def name(self) -> str:
        """The canonical repository for a Hub model, else the source URI (a claim, a directory)."""
        return self.provenance.repository or self.provenance.source

    @property
    def version(self) -> str:
        """The pinned commit; a claim or a directory has none, so its manifest digest names the content."""
        return self.provenance.resolved_revision or self.pinned.manifest_digest

    @property
    def hub(self) -> str | None:
        """The endpoint a Hub model was resolved from (None for other sources)."""
        if not self.provenance.source.startswith("hf://"):
            return None
        return (self.provenance.endpoint or PUBLIC_HUB).rstrip("/")

    @property
    def download_location(self) -> str:
        """Where exactly these bytes are published: the repository tree at the pinned commit, or the source URI."""
        if self.hub is not None and self.provenance.repository and self.provenance.resolved_revision:
            return f"{self.hub}/{self.provenance.repository}/tree/{self.provenance.resolved_revision}"
        return self.provenance.source

    @property
    def purl(self) -> PackageURL | None:
        """``pkg:huggingface/<org>/<name>@<commit>`` (with ``repository_url`` for a mirror)."""
        repository, commit = self.provenance.repository, self.provenance.resolved_revision
        if self.hub is None or not repository or not commit:
            return None
        namespace, _, name = repository.rpartition("/")
        qualifiers = {} if self.hub == PUBLIC_HUB else {"repository_url": self.hub}
        return PackageURL("huggingface", namespace or None, name, commit, qualifiers or None)

    def related_location(self, name: str, kind: str) -> str | None:
        """Where a dataset or base model the card names is published: a plain http(s) URL as given, a Hub id
        (``org/name``) on this model's Hub; None for anything else (a card's text never becomes a malformed link)."""
        if _URL.fullmatch(name):
            return name
        if self.hub is not None and _REPO_ID.fullmatch(name):
            return f"{self.hub}/datasets/{name}" if kind == "dataset" else f"{self.hub}/{name}"
        return None


# ---------------------------------------------------------------- the decision as data (both formats)


def _signature(bom: BomInput) -> dict[str, Any]:
    sig = bom.provenance.signature
    if sig is None or sig.method == "none":
        return {"method": "none"}
    return sig.to_wire()  # type: ignore[no-any-return]


def trust_facts(bom: BomInput) -> dict[str, Any]:
    """Identity and trust of the content: what both documents state about the decision, in status's words."""
    record = bom.provenance
    return {
        "source": record.source,
        "repository": record.repository,
        "endpoint": record.endpoint,
        "requestedRevision": record.requested_revision,
        "resolvedRevision": record.resolved_revision,
        "manifestDigest": bom.pinned.manifest_digest,
        "fileCount": len(bom.pinned.files),
        "totalBytes": bom.pinned.total_bytes,
        "trustTier": record.trust_tier.value if record.trust_tier is not None else None,
        "signature": _signature(bom),
        "license": record.license,
        "verifiedAt": bom.verified_at.isoformat().replace("+00:00", "Z"),
    }


def openness_facts(bom: BomInput) -> dict[str, Any]:
    openness = bom.provenance.openness
    if openness is None:
        return {"mofClass": "None", "osaid": False, "openComponents": [], "missing": []}
    return {
        "mofClass": openness.mof_class,
        "osaid": openness.osaid,
        "openComponents": list(openness.open_components or []),
        "missing": list(openness.missing or []),
    }


def policy_facts(bom: BomInput) -> list[dict[str, Any]]:
    return [
        {
            "name": p.name,
            "generation": p.generation,
            "mode": p.mode,
            "verdict": p.verdict,
            "reasons": list(p.reasons or []),
            **({"anchor": p.anchor} if p.anchor else {}),
        }
        for p in bom.provenance.policies or []
    ]


def _compliance(bom: BomInput) -> list[str]:
    openness = openness_facts(bom)
    out = []
    if openness["mofClass"] != "None":
        out.append(f"Model Openness Framework {openness['mofClass']}")
    if openness["osaid"]:
        out.append("Open Source AI Definition 1.0")
    return out


def _metric_key(metric: Metric) -> str:
    """``<metric name or type> on <dataset>``: what CycloneDX states as a performance metric's type and slice."""
    what = metric.name or metric.type
    return f"{what} on {metric.dataset}" if metric.dataset else what


def _json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


# ---------------------------------------------------------------- SPDX 3.0.1


def spdx3_document(bom: BomInput) -> dict[str, Any]:
    """The SPDX 3.0.1 JSON-LD document: an ``ai_AIPackage`` containing every verified file, its license,
    training datasets, base model, and review annotations recording the trust decision."""
    base = f"urn:openmodel:bom:{bom.digest_hex}"
    info = spdx.CreationInfo(
        specVersion="3.0.1",
        created=bom.verified_at,
        comment="Built from the verified evidence of the trust decision, not from endpoint metadata",
    )
    agent = spdx.SoftwareAgent(spdxId=f"{base}:agent", name=TOOL_NAME, creationInfo=info)
    info.createdBy = [agent]
    tool = spdx.Tool(spdxId=f"{base}:tool", name=f"{TOOL_NAME} {__version__}", creationInfo=info)
    info.createdUsing = [tool]
    card = bom.card
    facts = trust_facts(bom)
    model = spdx.ai_AIPackage(
        spdxId=f"{base}:model",
        name=bom.name,
        creationInfo=info,
        software_packageVersion=bom.version,
        software_downloadLocation=bom.download_location,
        software_primaryPurpose=spdx.software_SoftwarePurpose.model,
        verifiedUsing=[
            spdx.Hash(
                algorithm=spdx.HashAlgorithm.sha256,
                hashValue=bom.digest_hex,
                comment="manifest digest (model-signing, name-bound) of the verified files",
            )
        ],
        ai_standardCompliance=_compliance(bom),
        comment=f"trust tier {facts['trustTier']}, verified {facts['verifiedAt']}",
    )
    purl = bom.purl
    if purl is not None:
        model.software_packageUrl = purl.to_string()
    if card.task:
        model.ai_domain = [card.task]
    if card.intended_use:
        model.ai_informationAboutApplication = card.intended_use
    if card.limitations:
        model.ai_limitation = card.limitations
    if card.metrics:
        model.ai_metric = [spdx.DictionaryEntry(key=_metric_key(m), value=m.value) for m in card.metrics]

    elements: list[Any] = [model, agent, tool]
    files = [
        spdx.software_File(
            spdxId=f"{base}:file:{index}",
            name=entry.path,
            creationInfo=info,
            software_fileKind=spdx.software_FileKindType.file,
            verifiedUsing=[spdx.Hash(algorithm=spdx.HashAlgorithm.sha256, hashValue=entry.sha256)],
        )
        for index, entry in enumerate(sorted(bom.pinned.files))
    ]
    elements.extend(files)

    def relate(key: str, kind: Any, targets: Sequence[Any], comment: str | None = None) -> None:
        rel = spdx.Relationship(
            spdxId=f"{base}:relationship:{key}",
            creationInfo=info,
            from_=model,
            relationshipType=kind,
            to=list(targets),
            completeness=spdx.RelationshipCompleteness.complete,
        )
        if comment:
            rel.comment = comment
        elements.append(rel)

    if files:
        relate("contains", spdx.RelationshipType.contains, files, "exactly the verified files of the pinned manifest")
    if bom.provenance.license:
        expression = spdx.simplelicensing_LicenseExpression(
            spdxId=f"{base}:license",
            creationInfo=info,
            simplelicensing_licenseExpression=bom.provenance.license,
        )
        elements.append(expression)
        relate(
            "declared-license", spdx.RelationshipType.hasDeclaredLicense, [expression], "stated by the verified card"
        )
        relate("concluded-license", spdx.RelationshipType.hasConcludedLicense, [expression], "the license decided on")
    datasets = []
    for index, name in enumerate(card.datasets):
        dataset = spdx.dataset_DatasetPackage(
            spdxId=f"{base}:dataset:{index}",
            name=name,
            creationInfo=info,
            software_primaryPurpose=spdx.software_SoftwarePurpose.data,
            dataset_datasetType=[spdx.dataset_DatasetType.noAssertion],
        )
        location = bom.related_location(name, "dataset")
        if location:
            dataset.software_downloadLocation = location
        datasets.append(dataset)
    if datasets:
        elements.extend(datasets)
        relate("trained-on", spdx.RelationshipType.trainedOn, datasets, "datasets the verified card names")
    bases = []
    for index, name in enumerate(card.base_models):
        ancestor = spdx.ai_AIPackage(
            spdxId=f"{base}:base-model:{index}",
            name=name,
            creationInfo=info,
            software_primaryPurpose=spdx.software_SoftwarePurpose.model,
        )
        location = bom.related_location(name, "model")
        if location:
            ancestor.software_downloadLocation = location
        bases.append(ancestor)
    if bases:
        elements.extend(bases)
        relation = card.base_model_relation or "unspecified"
        relate("base-model", spdx.RelationshipType.descendantOf, bases, f"base_model_relation: {relation}")

    annotations = [
        ("trust", {"openmodel": "trust", **facts}),
        ("openness", {"openmodel": "openness", **openness_facts(bom)}),
        *((f"policy:{i}", {"openmodel": "policy", **p}) for i, p in enumerate(policy_facts(bom))),
    ]
    for key, statement in annotations:
        elements.append(
            spdx.Annotation(
                spdxId=f"{base}:annotation:{key}",
                creationInfo=info,
                annotationType=spdx.AnnotationType.review,
                subject=model,
                contentType=JSON_MEDIA_TYPE,
                statement=_json(statement),
            )
        )
    document = spdx.SpdxDocument(
        spdxId=base,
        name=f"AI-BOM of {bom.name}@{bom.version}",
        creationInfo=info,
        rootElement=[model],
        element=elements,
        profileConformance=[
            spdx.ProfileIdentifierType.core,
            spdx.ProfileIdentifierType.software,
            spdx.ProfileIdentifierType.simpleLicensing,
            spdx.ProfileIdentifierType.ai,
            spdx.ProfileIdentifierType.dataset,
        ],
    )
    objects = spdx.SHACLObjectSet()
    for obj in [document, *elements]:
        objects.add(obj)
    data: dict[str, Any] = spdx.JSONLDSerializer().serialize_data(objects, force_at_graph=True)
    data["@graph"].sort(key=lambda node: str(node.get("spdxId") or node.get("@id") or ""))
    return data


# ---------------------------------------------------------------- CycloneDX 1.6


def _properties(prefix: str, values: dict[str, Any]) -> list[Property]:
    out = []
    for key, value in values.items():
        if value is None:
            continue
        if isinstance(value, dict):
            out.extend(_properties(f"{prefix}{key}:", value))
        elif isinstance(value, list):
            out.extend(Property(name=f"{prefix}{key}", value=str(item)) for item in value)
        else:
            out.append(
                Property(name=f"{prefix}{key}", value=str(value).lower() if isinstance(value, bool) else str(value))
            )
    return out


def _distribution(location: str | None) -> list[ExternalReference]:
    """Where a component is published, as CycloneDX says it (nothing when the card gave no usable location)."""
    return [ExternalReference(type=ExternalReferenceType.DISTRIBUTION, url=XsUri(location))] if location else []


def _model_card(bom: BomInput, dataset_refs: Sequence[str]) -> dict[str, Any]:
    """The CycloneDX ``modelCard`` (built as data: the library does not model it yet)."""
    card = bom.card
    parameters: dict[str, Any] = {}
    if card.task:
        parameters["task"] = card.task
    if dataset_refs:
        parameters["datasets"] = [{"ref": ref} for ref in dataset_refs]
    out: dict[str, Any] = {"bom-ref": "model-card"}
    if parameters:
        out["modelParameters"] = parameters
    if card.metrics:
        out["quantitativeAnalysis"] = {
            "performanceMetrics": [
                {"type": m.name or m.type, "value": m.value, **({"slice": m.dataset} if m.dataset else {})}
                for m in card.metrics
            ]
        }
    considerations: dict[str, Any] = {}
    if card.intended_use:
        considerations["useCases"] = [card.intended_use]
    if card.limitations:
        considerations["technicalLimitations"] = [card.limitations]
    if considerations:
        out["considerations"] = considerations
    openness = openness_facts(bom)
    out["properties"] = [
        {"name": prop.name, "value": prop.value} for prop in _properties(f"{PROPERTY_PREFIX}openness:", openness)
    ]
    return out


def cyclonedx_document(bom: BomInput) -> dict[str, Any]:
    """The CycloneDX 1.6 JSON document: a ``machine-learning-model`` component with every verified file, its
    license, base model (pedigree), training datasets (data components) and a model card, the decision in
    ``openmodel:`` properties."""
    card = bom.card
    facts = trust_facts(bom)
    files = [
        Component(
            type=ComponentType.FILE,
            name=entry.path,
            bom_ref=f"file-{index}",
            hashes=[HashType(alg=HashAlgorithm.SHA_256, content=entry.sha256)],
        )
        for index, entry in enumerate(sorted(bom.pinned.files))
    ]
    datasets = [
        Component(
            type=ComponentType.DATA,
            name=name,
            bom_ref=f"dataset-{index}",
            external_references=_distribution(bom.related_location(name, "dataset")),
        )
        for index, name in enumerate(card.datasets)
    ]
    relation = card.base_model_relation or "unspecified"
    ancestors = [
        Component(
            type=ComponentType.MACHINE_LEARNING_MODEL,
            name=name,
            bom_ref=f"base-model-{index}",
            external_references=_distribution(bom.related_location(name, "model")),
            properties=[Property(name=f"{PROPERTY_PREFIX}baseModelRelation", value=relation)],
        )
        for index, name in enumerate(card.base_models)
    ]
    properties = _properties(PROPERTY_PREFIX, {k: v for k, v in facts.items() if k != "license"})
    for policy in policy_facts(bom):
        name = policy.pop("name")
        properties.extend(_properties(f"{PROPERTY_PREFIX}policy:{name}:", policy))
    model = Component(
        type=ComponentType.MACHINE_LEARNING_MODEL,
        name=bom.name,
        version=bom.version,
        bom_ref="model",
        purl=bom.purl,
        licenses=[LicenseExpression(bom.provenance.license)] if bom.provenance.license else [],
        external_references=_distribution(bom.download_location),
        components=files,
        pedigree=Pedigree(ancestors=ancestors) if ancestors else None,
        properties=properties,
    )
    document = Bom(
        serial_number=uuid.uuid5(uuid.NAMESPACE_URL, f"urn:openmodel:bom:{bom.digest_hex}:{facts['verifiedAt']}"),
        version=1,
        components=datasets,
        metadata=BomMetaData(
            timestamp=bom.verified_at,
            component=model,
            tools=ToolRepository(
                components=[Component(type=ComponentType.APPLICATION, name=TOOL_NAME, version=__version__)]
            ),
        ),
    )
    if datasets:
        # the model depends on the data it was trained on: the graph is complete with that edge (the library
        # warns about a root with other components and no dependencies)
        document.register_dependency(model, datasets)
    data: dict[str, Any] = json.loads(JsonV1Dot6(document).output_as_string())
    data["metadata"]["component"]["modelCard"] = _model_card(bom, [d.bom_ref.value or "" for d in datasets])
    return data


def bom_documents(bom: BomInput) -> dict[str, dict[str, Any]]:
    """Both documents, by format name."""
    return {SPDX3: spdx3_document(bom), CYCLONEDX: cyclonedx_document(bom)}


def render(document: dict[str, Any]) -> str:
    """Stable JSON text of one document (sorted keys, two-space indent, a final newline)."""
    return json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
