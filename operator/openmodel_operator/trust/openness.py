"""How open a model is: Model Openness Framework (MOF) class and Open Source AI Definition (OSAID).

A Hub card says little beyond the weights' license, so a publisher can add an ``openness.yaml``
(an ``OpennessDeclaration``) at the repository root naming where each other component lives and
under which license. This module turns card + declaration into :class:`OpennessEvidence`, and
evidence + a policy's ``spec.openness`` into violations. The mapping is documented, with its
sources, in ``docs/openness.md``; it follows the LF AI & Data Model Openness Tool's component
table (MOF, arXiv:2403.13784) and the OSAID v1.0 text.

Nothing here raises on bad input: a malformed declaration yields :class:`DeclarationError` values
and only its well-formed components count.
"""

from __future__ import annotations

import dataclasses
import functools
import re
from collections.abc import Mapping, Sequence
from enum import StrEnum
from typing import Any, Literal

from openmodel_operator.evidence.documents import MAX_DECLARATION_BYTES, card_metadata, load_yaml_mapping
from openmodel_operator.evidence.errors import SourceError
from openmodel_operator.evidence.records import OpennessEvidence, Reason
from openmodel_operator.trust.licenses import (
    LicenseId,
    card_license,
    license_data,
    normalize_license,
    parse_license,
    satisfies,
)

API_VERSION = "openmodel.io/v1alpha1"
KIND = "OpennessDeclaration"
DECLARATION_FILE = "openness.yaml"
DOCS = "docs/openness.md"


class Component(StrEnum):
    """A model component; the value is its key in ``openness.yaml`` and in the evidence."""

    # code
    MODEL_ARCHITECTURE = "modelArchitecture"
    INFERENCE_CODE = "inferenceCode"
    TRAINING_CODE = "trainingCode"
    DATA_PROCESSING_CODE = "dataProcessingCode"
    EVALUATION_CODE = "evaluationCode"
    SUPPORTING_LIBRARIES = "supportingLibraries"
    # data
    WEIGHTS = "weights"
    INTERMEDIATE_CHECKPOINTS = "intermediateCheckpoints"
    DATASETS = "datasets"
    EVALUATION_DATA = "evaluationData"
    MODEL_METADATA = "modelMetadata"
    # documentation
    SAMPLE_OUTPUTS = "sampleOutputs"
    MODEL_CARD = "modelCard"
    DATA_CARD = "dataCard"
    TECHNICAL_REPORT = "technicalReport"
    RESEARCH_PAPER = "researchPaper"
    EVALUATION_RESULTS = "evaluationResults"
    DATA_INFORMATION = "dataInformation"  # OSAID only: the description of the training data


ContentType = Literal["code", "data", "document"]
MofClass = Literal["ClassI", "ClassII", "ClassIII", "None"]


@dataclasses.dataclass(frozen=True)
class ComponentSpec:
    """Where a component sits in the MOF: its content type, the class introducing it, required?"""

    component: Component
    title: str  # the MOF's own name for it
    content: ContentType
    mof_class: int | None  # 3 (Class III) .. 1 (Class I); None: not an MOF component
    required: bool


_C = Component
COMPONENTS: tuple[ComponentSpec, ...] = (
    # Class III - Open Model
    ComponentSpec(_C.MODEL_ARCHITECTURE, "Model architecture", "code", 3, True),
    ComponentSpec(_C.WEIGHTS, "Model parameters (Final)", "data", 3, True),
    ComponentSpec(_C.TECHNICAL_REPORT, "Technical report", "document", 3, True),
    ComponentSpec(_C.EVALUATION_RESULTS, "Evaluation results", "document", 3, True),
    ComponentSpec(_C.MODEL_CARD, "Model card", "document", 3, True),
    ComponentSpec(_C.DATA_CARD, "Data card", "document", 3, True),
    ComponentSpec(_C.SAMPLE_OUTPUTS, "Sample model outputs", "document", 3, False),
    # Class II - Open Tooling
    ComponentSpec(_C.TRAINING_CODE, "Training code", "code", 2, True),
    ComponentSpec(_C.INFERENCE_CODE, "Inference code", "code", 2, True),
    ComponentSpec(_C.EVALUATION_CODE, "Evaluation code", "code", 2, True),
    ComponentSpec(_C.EVALUATION_DATA, "Evaluation data", "data", 2, True),
    ComponentSpec(_C.SUPPORTING_LIBRARIES, "Supporting libraries and tools", "code", 2, False),
    # Class I - Open Science
    ComponentSpec(_C.RESEARCH_PAPER, "Research paper", "document", 1, True),
    ComponentSpec(_C.DATASETS, "Datasets", "data", 1, True),
    ComponentSpec(_C.DATA_PROCESSING_CODE, "Data preprocessing code", "code", 1, True),
    ComponentSpec(_C.INTERMEDIATE_CHECKPOINTS, "Model parameters (Intermediate)", "data", 1, True),
    ComponentSpec(_C.MODEL_METADATA, "Model metadata", "data", 1, False),
    # OSAID v1.0 "Data Information"
    ComponentSpec(_C.DATA_INFORMATION, "Data information (OSAID)", "document", None, False),
)
SPECS: Mapping[Component, ComponentSpec] = {spec.component: spec for spec in COMPONENTS}

CLASS_NUMBER: Mapping[str, int] = {"ClassIII": 3, "ClassII": 2, "ClassI": 1}
_RANK: Mapping[str, int] = {"None": 0, "ClassIII": 1, "ClassII": 2, "ClassI": 3}
_ASCENDING: tuple[MofClass, ...] = ("ClassIII", "ClassII", "ClassI")

# OSAID v1.0: weights, the code to process data, train and run the model, and data information.
OSAID_COMPONENTS: tuple[Component, ...] = (
    _C.WEIGHTS,
    _C.MODEL_ARCHITECTURE,
    _C.INFERENCE_CODE,
    _C.TRAINING_CODE,
    _C.DATA_PROCESSING_CODE,
    _C.DATA_INFORMATION,
)

# Licenses the Model Openness Tool counts as open besides OSI-approved and FSF-libre ones
# (its LicenseHandler::OPEN_DATA_LICENSES and OPEN_LICENSES), spelled as current SPDX ids.
OPEN_DATA_LICENSES: frozenset[str] = frozenset(
    {
        "CC0-1.0",
        "CC-BY-1.0",
        "CC-BY-2.0",
        "CC-BY-2.5",
        "CC-BY-2.5-AU",
        "CC-BY-3.0",
        "CC-BY-3.0-AT",
        "CC-BY-3.0-AU",
        "CC-BY-3.0-DE",
        "CC-BY-3.0-IGO",
        "CC-BY-3.0-NL",
        "CC-BY-3.0-US",
        "CC-BY-4.0",
        "CC-BY-SA-1.0",
        "CC-BY-SA-2.0",
        "CC-BY-SA-2.0-UK",
        "CC-BY-SA-2.1-JP",
        "CC-BY-SA-2.5",
        "CC-BY-SA-3.0",
        "CC-BY-SA-3.0-AT",
        "CC-BY-SA-4.0",
        "CDLA-Permissive-1.0",
        "CDLA-Permissive-2.0",
        "CDLA-Sharing-1.0",
        "PDDL-1.0",
        "ODC-By-1.0",
        "ODbL-1.0",
        "GFDL-1.3-only",
        "GFDL-1.3-or-later",
        "OGL-Canada-2.0",
        "OGL-UK-2.0",
        "OGL-UK-3.0",
        "OpenMDW-1.0",
    }
)

_URL = re.compile(r"^https?://[^\s/]+\S*$")
_ARXIV_TAG = re.compile(r"^arxiv:(\S+)$")
_REPO_LOCATED = frozenset({_C.WEIGHTS, _C.MODEL_CARD})  # the repository itself holds them


def is_open_license(spdx: str | None) -> bool:
    """Open in the MOF sense: OSI-approved, FSF-libre, or an open data/content license."""
    expr = parse_license(spdx) if spdx else None
    if expr is None:
        return False
    data = license_data()

    def accept(leaf: LicenseId) -> bool:
        return leaf.id in data.osi_approved or leaf.id in data.fsf_libre or leaf.id in OPEN_DATA_LICENSES

    return satisfies(expr, accept)


def _osi_terms(spdx: str | None) -> bool:
    expr = parse_license(spdx) if spdx else None
    osi = license_data().osi_approved
    return expr is not None and satisfies(expr, lambda leaf: leaf.id in osi)


# --------------------------------------------------------------------------------------------
# The declaration


@dataclasses.dataclass(frozen=True)
class DeclarationError:
    """One problem in ``openness.yaml``: the field's path, the offending value and how to fix it."""

    field: str
    value: str
    fix: str

    def __str__(self) -> str:
        return f"{DECLARATION_FILE}: {self.field}: {self.value} - {self.fix}"


@dataclasses.dataclass(frozen=True)
class DeclaredComponent:
    """A well-formed component entry: its normalized license and where it is published."""

    component: Component
    license: str
    location: str | None
    field: str


_ENTRY_FIELDS = frozenset({"license", "url", "path", "description"})
_TRAINING_DATA_FIELDS = frozenset({"information", "informationLicense", "datasets", "license", "description"})
_DATASET_FIELDS = frozenset({"name", "url", "license"})
_TOP_FIELDS = frozenset({"apiVersion", "kind", "metadata", "components"})
# trainingData declares both the data information and the datasets (OSAID keeps them apart).
_DECLARABLE = (*(c.value for c in Component if c not in (_C.DATASETS, _C.DATA_INFORMATION)), "trainingData")


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


class _Reader:
    """Collects components and errors while walking one declaration."""

    def __init__(self) -> None:
        self.components: list[DeclaredComponent] = []
        self.errors: list[DeclarationError] = []

    def error(self, field: str, value: Any, fix: str) -> None:
        self.errors.append(DeclarationError(field, _show(value), fix))

    def unknown_fields(self, field: str, entry: Mapping[str, Any], allowed: frozenset[str]) -> bool:
        # keys need not be strings (YAML allows `1: x`): sort by their text, read values by the key itself
        extra = sorted((key for key in entry if key not in allowed), key=str)
        for key in extra:
            self.error(f"{field}.{key}", entry[key], f"remove it; allowed fields: {', '.join(sorted(allowed))}")
        return bool(extra)

    def license(self, field: str, value: Any) -> str | None:
        if not isinstance(value, str) or not value.strip():
            self.error(field, value, "set an SPDX license id or expression, e.g. Apache-2.0")
            return None
        normalized = normalize_license(value)
        if normalized is None:
            self.error(field, value, "name the actual license (an SPDX id); 'unknown' does not make it open")
        return normalized

    def location(self, field: str, value: Any) -> str | None:
        if not isinstance(value, str) or not value.strip():
            self.error(field, value, "give an http(s) URL or a path relative to the repository root")
            return None
        text = value.strip()
        if "://" in text:
            if not _URL.match(text):
                self.error(field, value, "use an http:// or https:// URL")
                return None
            return text
        parts = text.split("/")
        if text.startswith("/") or ".." in parts or "\\" in text:
            self.error(field, value, "use a relative POSIX path inside the repository (no '/', '..' or '\\')")
            return None
        return text

    def entry(self, key: str, component: Component, entry: Any) -> None:
        field = f"components.{key}"
        if not isinstance(entry, Mapping):
            self.error(field, entry, "make it a mapping, e.g. {license: Apache-2.0, url: https://...}")
            return
        before = len(self.errors)
        self.unknown_fields(field, entry, _ENTRY_FIELDS)
        spdx = self.license(f"{field}.license", entry.get("license"))
        location = None
        for name in ("url", "path"):
            if name in entry:
                location = self.location(f"{field}.{name}", entry[name]) or location
        if "url" not in entry and "path" not in entry and component not in _REPO_LOCATED:
            self.error(field, dict(entry), "add url: (where it is published) or path: (inside the repository)")
        if spdx is not None and len(self.errors) == before:
            self.components.append(DeclaredComponent(component, spdx, location, field))

    def training_data(self, entry: Any) -> None:
        field = "components.trainingData"
        if not isinstance(entry, Mapping):
            self.error(field, entry, "make it a mapping with information:, datasets: and license:")
            return
        self.unknown_fields(field, entry, _TRAINING_DATA_FIELDS)
        if "information" not in entry and "datasets" not in entry:
            self.error(field, dict(entry), "add information: (URL or path of the data description) and/or datasets:")
        if "information" in entry:
            self._information(field, entry)
        if "datasets" in entry:
            self._datasets(field, entry)

    def _information(self, field: str, entry: Mapping[str, Any]) -> None:
        before = len(self.errors)
        location = self.location(f"{field}.information", entry["information"])
        key = "informationLicense" if "informationLicense" in entry else "license"
        spdx = self.license(f"{field}.{key}", entry.get(key))
        if location is not None and spdx is not None and len(self.errors) == before:
            self.components.append(DeclaredComponent(_C.DATA_INFORMATION, spdx, location, f"{field}.information"))

    def _datasets(self, field: str, entry: Mapping[str, Any]) -> None:
        datasets = entry["datasets"]
        if not isinstance(datasets, list) or not datasets:
            self.error(f"{field}.datasets", datasets, "list the training datasets (names or URLs)")
            return
        before = len(self.errors)
        default = entry.get("license")
        licenses: list[str] = []
        for index, item in enumerate(datasets):
            item_field = f"{field}.datasets[{index}]"
            item_license = default
            if isinstance(item, Mapping):
                self.unknown_fields(item_field, item, _DATASET_FIELDS)
                if not isinstance(item.get("name", item.get("url")), str):
                    self.error(item_field, dict(item), "give the dataset a name: or url:")
                if "url" in item:
                    self.location(f"{item_field}.url", item["url"])
                item_license = item.get("license", default)
            elif not isinstance(item, str) or not item.strip():
                self.error(item_field, item, "write the dataset's name or URL, or {name:, url:, license:}")
                continue
            if item_license is None:
                self.error(f"{item_field}.license", None, f"set {field}.license or a license: on this dataset")
                continue
            spdx = self.license(f"{item_field}.license", item_license)
            if spdx is not None and spdx not in licenses:
                licenses.append(spdx)
        if licenses and len(self.errors) == before:
            combined = licenses[0] if len(licenses) == 1 else " AND ".join(f"({lic})" for lic in licenses)
            spdx = normalize_license(combined) or combined
            self.components.append(DeclaredComponent(_C.DATASETS, spdx, None, f"{field}.datasets"))


def parse_declaration(raw: Any) -> tuple[list[DeclaredComponent], list[DeclarationError]]:
    """The well-formed components of a parsed ``openness.yaml`` and every error found in it."""
    reader = _Reader()
    if not isinstance(raw, Mapping):
        reader.error("(document)", raw, f"write a YAML mapping with apiVersion: {API_VERSION} and kind: {KIND}")
        return [], reader.errors
    reader.unknown_fields("(document)", raw, _TOP_FIELDS)
    header_ok = True
    if raw.get("apiVersion") != API_VERSION:
        reader.error("apiVersion", raw.get("apiVersion"), f"set apiVersion: {API_VERSION}")
        header_ok = False
    if raw.get("kind") != KIND:
        reader.error("kind", raw.get("kind"), f"set kind: {KIND}")
        header_ok = False
    components = raw.get("components")
    if not isinstance(components, Mapping) or not components:
        reader.error("components", components, f"add components: mapping component names ({DOCS}) to entries")
        return [], reader.errors
    for key, entry in components.items():
        if key == "trainingData":
            reader.training_data(entry)
        elif isinstance(key, str) and key in _DECLARABLE:
            reader.entry(key, Component(key), entry)
        else:
            reader.error(f"components.{key}", entry, f"use one of: {', '.join(_DECLARABLE)}")
    # A document that is not an OpennessDeclaration says nothing trustworthy about openness.
    return (reader.components if header_ok else []), reader.errors


def validate_declaration(raw: Any) -> list[DeclarationError]:
    """Every problem in a parsed ``openness.yaml``; empty when it is well-formed."""
    return parse_declaration(raw)[1]


# --------------------------------------------------------------------------------------------
# Assessment


def _is_open(components: Mapping[str, bool], component: Component) -> bool:
    if component == _C.TECHNICAL_REPORT:  # the MOF accepts a research paper in its place
        return bool(components.get(_C.TECHNICAL_REPORT) or components.get(_C.RESEARCH_PAPER))
    return bool(components.get(component))


def class_requirements(mof_class: str) -> tuple[Component, ...]:
    """Required components of an MOF class, including those of the classes below it."""
    number = CLASS_NUMBER[mof_class]
    return tuple(
        spec.component
        for spec in COMPONENTS
        if spec.required and spec.mof_class is not None and spec.mof_class >= number
    )


def missing_for(components: Mapping[str, bool], mof_class: str) -> list[str]:
    """Required components (cumulative) of ``mof_class`` that are not open."""
    return [c.value for c in class_requirements(mof_class) if not _is_open(components, c)]


def classify(components: Mapping[str, bool]) -> MofClass:
    """The highest MOF class whose required components (and those below it) are all open."""
    achieved: MofClass = "None"
    for mof_class in _ASCENDING:
        if missing_for(components, mof_class):
            break
        achieved = mof_class
    return achieved


class _Assessment:
    """Findings per component (open? under OSI-approved terms?) and where each came from."""

    def __init__(self) -> None:
        self.open: dict[Component, bool] = {}
        self.osi_terms: dict[Component, bool] = {}
        self.sources: list[str] = []

    def add(self, component: Component, spdx: str | None, source: str, *, is_open: bool | None = None) -> None:
        """Record one finding; ``is_open`` overrides the license test for license-less facts."""
        if is_open is None:
            is_open = is_open_license(spdx)
            verdict = "open" if is_open else f"not open ('{spdx}' is not an open license)"
        else:
            verdict = "open" if is_open else "not open"
        # OSAID wants OSI-approved terms; no documentation license is OSI-approved, so the data
        # information (a document) counts when it is open in the MOF sense.
        osi = is_open if component == _C.DATA_INFORMATION else _osi_terms(spdx)
        self.open[component] = self.open.get(component, False) or is_open
        self.osi_terms[component] = self.osi_terms.get(component, False) or osi
        self.sources.append(f"{source} -> {component.value} {verdict}")

    def card(self, card: Mapping[str, Any], license: str | None) -> None:
        """Facts the Hub card metadata states (the README front matter)."""
        if license is not None:
            self.add(_C.WEIGHTS, license, f"card: license '{license}'")
        if card:
            self.add(_C.MODEL_CARD, license, "card: README model card under the repository license")
        model_index = card.get("model-index", card.get("model_index"))
        if isinstance(model_index, list) and any(
            isinstance(entry, Mapping) and entry.get("results") for entry in model_index
        ):
            self.add(_C.EVALUATION_RESULTS, license, "card: model-index results")
        datasets = card.get("datasets")
        names = [datasets] if isinstance(datasets, str) else datasets if isinstance(datasets, list) else []
        names = [name for name in names if isinstance(name, str) and name]
        if names:
            self.add(_C.DATA_INFORMATION, None, f"card: datasets [{', '.join(names)}]", is_open=True)
        tags = card.get("tags")
        for tag in tags if isinstance(tags, list) else ():
            if isinstance(tag, str) and _ARXIV_TAG.match(tag):
                self.sources.append(
                    f"card: tag {tag} links a paper; declare it as technicalReport or researchPaper "
                    f"with its license in {DECLARATION_FILE} to count it"
                )

    def declaration(self, declaration: Mapping[str, Any], license: str | None) -> None:
        """Components the publisher declares in ``openness.yaml``; malformed parts are skipped."""
        declared, errors = parse_declaration(declaration)
        self.sources.extend(f"{DECLARATION_FILE}: ignored {error.field} ({error.fix})" for error in errors)
        for item in declared:
            if item.component == _C.WEIGHTS and license is not None and item.license != license:
                self.sources.append(
                    f"{DECLARATION_FILE}: {item.field}.license '{item.license}' differs from the card's "
                    f"'{license}'; the card's license is used"
                )
                continue
            where = f" at {item.location}" if item.location else ""
            self.add(item.component, item.license, f"{DECLARATION_FILE}: {item.field} '{item.license}'{where}")


def assess_openness(
    card: Mapping[str, Any], declaration: Mapping[str, Any] | None, license: str | None
) -> OpennessEvidence:
    """Which components are open, the MOF class, OSAID compliance, and what is missing.

    ``license`` is the card's normalized license (``licenses.card_license``); it covers the
    weights and the card. ``declaration`` is the parsed ``openness.yaml``, or None.
    """
    assessment = _Assessment()
    assessment.card(card, license)
    if declaration is not None:
        assessment.declaration(declaration, license)

    components = {c.value: assessment.open.get(c, False) for c in Component}
    osaid_missing = [c.value for c in OSAID_COMPONENTS if not assessment.osi_terms.get(c, False)]
    mof_class = classify(components)
    missing: list[str] = []
    if mof_class != "ClassI":
        target = _ASCENDING[_RANK[mof_class]]
        missing.extend(f"{target}:{name}" for name in missing_for(components, target))
    missing.extend(f"OSAID:{name}" for name in osaid_missing)
    return OpennessEvidence(
        license=license,
        license_osi_approved=_osi_terms(license),
        components=components,
        mof_class=mof_class,
        osaid_compliant=not osaid_missing,
        missing=tuple(missing),
        sources=tuple(assessment.sources),
    )


def assess_files(readme: bytes | None, declaration: bytes | None, uncovered: Sequence[str] = ()) -> OpennessEvidence:
    """Openness from the bytes of ``README.md`` and ``openness.yaml`` that a signature or the pin covers.

    Pass None for a file that is absent or not covered: it then says nothing (no card means no
    license, which a license rule reports as unknown). ``uncovered`` names the files that exist but
    were not covered, so the evidence records why they were not read. Never raises: a declaration
    that is not valid YAML is ignored and recorded.

    A pure function of its arguments, so the last results are kept (keyed by the bytes themselves: equal
    bytes, equal result): parsing a card's YAML was most of an offline re-decision, and a restart or a
    policy change re-decides every model of a content from the same shared bytes.
    """
    return _assessed(readme, declaration, tuple(uncovered))


@functools.lru_cache(maxsize=16)
def _assessed(readme: bytes | None, declaration: bytes | None, uncovered: tuple[str, ...]) -> OpennessEvidence:
    notes: list[str] = []
    card: Mapping[str, Any] = {}
    if readme is not None:
        try:
            card = card_metadata(readme)
        except Exception as exc:  # e.g. ValueError for `date: 2024-13-45`; hostile bytes never crash a decision
            notes.append(f"README.md: front matter ignored ({type(exc).__name__})")
    parsed: Mapping[str, Any] | None = None
    if declaration is not None and len(declaration) > MAX_DECLARATION_BYTES:
        notes.append(f"{DECLARATION_FILE}: ignored (more than {MAX_DECLARATION_BYTES} bytes)")
    elif declaration is not None:
        try:
            parsed = load_yaml_mapping(declaration, DECLARATION_FILE)
        except SourceError as exc:
            notes.append(f"{DECLARATION_FILE}: ignored ({exc.message})")
        except Exception as exc:  # as above
            notes.append(f"{DECLARATION_FILE}: ignored ({type(exc).__name__})")
    assessed = assess_openness(card, parsed, card_license(card))
    notes.extend(
        f"{path}: not covered by a trusted signature or spec.source.digest, so not read as evidence"
        for path in uncovered
    )
    return dataclasses.replace(assessed, sources=(*assessed.sources, *notes))


def evaluate_openness(
    evidence: OpennessEvidence, minimum_class: str | None, require_osaid: bool
) -> list[tuple[Reason, str]]:
    """Violations of a ModelTrustPolicy's ``spec.openness`` (empty: open enough)."""
    violations: list[tuple[Reason, str]] = []
    if minimum_class not in (None, "None"):
        if minimum_class not in CLASS_NUMBER:
            raise ValueError(f"unknown MOF class {minimum_class!r}; expected ClassI, ClassII or ClassIII")
        if _RANK[evidence.mof_class] < _RANK[minimum_class]:
            missing = missing_for(evidence.components, minimum_class)
            have = "no MOF class" if evidence.mof_class == "None" else f"MOF {evidence.mof_class}"
            violations.append(
                (
                    Reason.OPENNESS_BELOW_MINIMUM,
                    f"model reaches {have} but spec.openness.minimumClass of ModelTrustPolicy is "
                    f"{minimum_class}; not open: {', '.join(missing)}; publish them under open licenses and "
                    f"declare them in {DECLARATION_FILE} at the repository root ({DOCS}), "
                    "or lower minimumClass",
                )
            )
    if require_osaid and not evidence.osaid_compliant:
        missing = [item.split(":", 1)[1] for item in evidence.missing if item.startswith("OSAID:")]
        if not missing:  # evidence built elsewhere: fall back to the open components
            missing = [c.value for c in OSAID_COMPONENTS if not evidence.components.get(c.value)]
        violations.append(
            (
                Reason.OSAID_COMPONENTS_MISSING,
                "model does not meet the Open Source AI Definition v1.0 required by "
                f"spec.openness.requireOSAID of ModelTrustPolicy: {', '.join(missing)} missing or not under "
                f"OSI-approved terms; publish them under OSI-approved licenses and declare them in "
                f"{DECLARATION_FILE} ({DOCS}), or set requireOSAID: false",
            )
        )
    return violations
