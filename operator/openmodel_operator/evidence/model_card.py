"""What a model card says that an AI-BOM reports: datasets, base model, intended use, limitations, evaluation.

Read from the card's own bytes only (the caller passes a README the decision read as evidence, see
``trust.card``), never from the Hub's ``cardData``: a BOM states nothing the signature or the pin does not
cover. Bounded like every metadata read: the front matter through ``documents.card_metadata``, the markdown
sections to a few thousand characters, lists to a few hundred entries, every string made printable.
"""

from __future__ import annotations

import dataclasses
import functools
import re
from collections.abc import Mapping
from typing import Any

from openmodel_operator.evidence.documents import MAX_METADATA_BYTES, card_metadata, front_matter
from openmodel_operator.evidence.text import clip, printable

MAX_NAME_CHARS = 256  # a dataset, base model, metric or task name
MAX_SECTION_CHARS = 4000  # the intended use or limitations text
MAX_ITEMS = 100  # datasets, base models
MAX_METRICS = 200
BASE_MODEL_RELATIONS = frozenset({"adapter", "merge", "quantized", "finetune"})  # the Hub's base_model_relation
_HEADING = re.compile(r"^(#{1,6})[ \t]+(.*?)[ \t#]*$")
_FENCE = re.compile(r"^\s*(```|~~~)")


@dataclasses.dataclass(frozen=True)
class Metric:
    """One evaluation result of the card's ``model-index``: what was measured, on what, and the value."""

    type: str
    value: str
    name: str | None = None
    task: str | None = None
    dataset: str | None = None


@dataclasses.dataclass(frozen=True)
class CardFacts:
    """The facts of a verified model card; empty when there is no verified card."""

    datasets: tuple[str, ...] = ()
    base_models: tuple[str, ...] = ()
    base_model_relation: str | None = None  # adapter | merge | quantized | finetune, when the card says
    task: str | None = None  # pipeline_tag
    intended_use: str | None = None
    limitations: str | None = None
    metrics: tuple[Metric, ...] = ()


def _name(value: Any) -> str | None:
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        return None
    text = str(value).strip()
    return printable(text, MAX_NAME_CHARS) if text else None


def _names(value: Any) -> tuple[str, ...]:
    items = [value] if isinstance(value, str) else value if isinstance(value, list) else []
    found = [name for item in items[:MAX_ITEMS] if isinstance(item, str) and (name := _name(item))]
    return tuple(dict.fromkeys(found))


def _field(entry: Any, key: str) -> str | None:
    """``entry[key]`` as a name, or ``entry[key].name`` (``task`` and ``dataset`` may be either)."""
    if not isinstance(entry, Mapping):
        return None
    value = entry.get(key)
    if isinstance(value, Mapping):
        return _name(value.get("name")) or _name(value.get("type"))
    return _name(value)


def _metrics(card: Mapping[str, Any]) -> tuple[Metric, ...]:
    model_index = card.get("model-index", card.get("model_index"))
    out: list[Metric] = []
    for entry in model_index if isinstance(model_index, list) else ():
        results = entry.get("results") if isinstance(entry, Mapping) else None
        for result in results if isinstance(results, list) else ():
            metrics = result.get("metrics") if isinstance(result, Mapping) else None
            for metric in metrics if isinstance(metrics, list) else ():
                if not isinstance(metric, Mapping):
                    continue
                kind, value = _name(metric.get("type")), _name(metric.get("value"))
                if kind is None or value is None:
                    continue
                out.append(
                    Metric(kind, value, _name(metric.get("name")), _field(result, "task"), _field(result, "dataset"))
                )
                if len(out) >= MAX_METRICS:
                    return tuple(out)
    return tuple(out)


def _body(text: str) -> list[str]:
    """The lines of the card's markdown after its front matter."""
    lines = text.lstrip().splitlines()
    if front_matter(text) is None or not lines or lines[0].strip() != "---":
        return lines
    close = next((i for i in range(1, len(lines)) if lines[i].rstrip() == "---"), len(lines))
    return lines[close + 1 :]


def _sections(text: str) -> dict[str, str]:
    """Heading (casefolded) -> the text under it up to the next heading of the same or a higher level."""
    sections: dict[str, str] = {}
    open_: list[tuple[str, int, list[str]]] = []
    fenced = False
    for line in _body(text):
        if _FENCE.match(line):
            fenced = not fenced
        match = None if fenced else _HEADING.match(line)
        if match is None:
            for _, _, lines in open_:
                lines.append(line)
            continue
        level = len(match[1])
        while open_ and open_[-1][1] >= level:
            title, _, lines = open_.pop()
            sections.setdefault(title, "\n".join(lines).strip())
        open_.append((match[2].strip().casefold(), level, []))
    for title, _, lines in open_:
        sections.setdefault(title, "\n".join(lines).strip())
    return sections


def _section(sections: Mapping[str, str], keys: tuple[str, ...], prefer_without: str = "") -> str | None:
    """The first non-empty section whose heading contains one of ``keys`` (in the order of ``keys``).

    A heading without ``prefer_without`` wins (``## Limitations`` over ``## Intended uses & limitations``).
    """
    order = [(key, title) for key in keys for title in sections if key in title and sections[title]]
    if prefer_without:
        order.sort(key=lambda pair: prefer_without in pair[1])
    for _, title in order[:1]:
        body = sections[title]
        if body:
            lines = [printable(line, MAX_SECTION_CHARS) for line in body.splitlines()]
            return clip("\n".join(lines), MAX_SECTION_CHARS)
    return None


@functools.lru_cache(maxsize=16)
def card_facts(readme: bytes) -> CardFacts:
    """The facts of a model card from its bytes (front matter and markdown), bounded; never raises.

    Kept for the last cards (keyed by their bytes, a pure function): every decision of a content reads the same
    card again, and a restart or a policy change re-decides many models of one content at once.
    """
    try:
        card = card_metadata(readme)
    except Exception:  # hostile bytes (e.g. `date: 2024-13-45`) never fail a BOM: the card then says nothing
        card = {}
    text = readme[:MAX_METADATA_BYTES].decode("utf-8", "replace")
    sections = _sections(text)
    relation = _name(card.get("base_model_relation"))
    return CardFacts(
        datasets=_names(card.get("datasets")),
        base_models=_names(card.get("base_model")),
        base_model_relation=relation if relation in BASE_MODEL_RELATIONS else None,
        task=_name(card.get("pipeline_tag")),
        intended_use=_section(sections, ("intended use", "direct use", "uses")),
        limitations=_section(sections, ("limitation", "out-of-scope"), prefer_without="intended"),
        metrics=_metrics(card),
    )
