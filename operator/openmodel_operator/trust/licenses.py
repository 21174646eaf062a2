"""Model licenses: normalize Hub card values to SPDX, check OSI approval, apply a policy's rules.

Hub cards carry lowercase tags (``apache-2.0``, ``llama3``, ``other`` + ``license_name``), not
always SPDX ids, so every comparison goes through :func:`normalize_license` first. The list of
OSI-approved licenses is shipped data (``data/osi_licenses.json``, produced from the SPDX
License List by ``scripts/update_osi_licenses.py``) because the operator must decide offline.

Expressions follow SPDX precedence (``WITH`` > ``AND`` > ``OR``): ``A OR B`` is acceptable when
either side is, ``A AND B`` only when both are, ``A WITH exc`` when ``A`` is.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import re
from collections.abc import Callable, Iterable, Mapping
from importlib import resources
from typing import Any, Literal

from openmodel_operator.trust.evidence import Reason

# Hub license tags (huggingface.co/docs/hub/repositories-licenses) that case-insensitive SPDX
# matching would not resolve. ``None``: no SPDX license exists (a family name or a custom model
# license); the lowercase tag itself is then the normalized value, so a policy can allow it by name.
HUB_LICENSE_TAGS: Mapping[str, str | None] = {
    "agpl-3.0": "AGPL-3.0-only",
    "gpl-2.0": "GPL-2.0-only",
    "gpl-3.0": "GPL-3.0-only",
    "lgpl-2.1": "LGPL-2.1-only",
    "lgpl-3.0": "LGPL-3.0-only",
    "gfdl": None,
    "gpl": None,
    "lgpl": None,
    "bsd": None,
    "cc": None,
    "c-uda": "C-UDA-1.0",
    "odc-by": "ODC-By-1.0",
    "odbl": "ODbL-1.0",
    "pddl": "PDDL-1.0",
    "lgpl-lr": "LGPLLR",
    "openmdw-1.0": "OpenMDW-1.0",
    "openrail": None,
    "openrail++": None,
    "bigscience-openrail-m": None,
    "creativeml-openrail-m": None,
    "bigscience-bloom-rail-1.0": None,
    "bigcode-openrail-m": None,
    "deepfloyd-if-license": None,
    "fair-noncommercial-research-license": None,
    "h-research": None,
    "intel-research": None,
    "apple-ascl": None,
    "apple-amlr": None,
    "llama2": None,
    "llama3": None,
    "llama3.1": None,
    "llama3.2": None,
    "llama3.3": None,
    "llama4": None,
    "gemma": None,
    "other": None,
}

# Values that say "no license is known": normalized to None.
_NO_LICENSE = frozenset({"", "unknown", "none", "noassertion"})
_OPERATORS = frozenset({"AND", "OR", "WITH"})
_TOKEN = re.compile(r"\(|\)|[^\s()]+")
_NOT_ID_CHARS = re.compile(r"[^a-z0-9.+-]+")


@dataclasses.dataclass(frozen=True)
class LicenseData:
    """The shipped SPDX data: OSI-approved and FSF-libre ids, every id, deprecated replacements."""

    source: str
    retrieved: str
    osi_approved: frozenset[str]
    fsf_libre: frozenset[str]
    by_lower: Mapping[str, str]  # lowercase id -> SPDX spelling
    deprecated: Mapping[str, str]  # deprecated id -> current id


@functools.cache
def license_data() -> LicenseData:
    """Load ``data/osi_licenses.json`` once (package data, so it works from a wheel or a zip)."""
    raw = json.loads(
        resources.files("openmodel_operator").joinpath("data/osi_licenses.json").read_text(encoding="utf-8")
    )
    return LicenseData(
        source=str(raw["source"]),
        retrieved=str(raw["retrieved"]),
        osi_approved=frozenset(raw["licenses"]),
        fsf_libre=frozenset(raw["fsf_libre"]),
        by_lower={key.lower(): key for key in raw["spdx_ids"]},
        deprecated=dict(raw["deprecated"]),
    )


@dataclasses.dataclass(frozen=True)
class LicenseId:
    """One license of an expression, with the exception of a ``WITH`` clause if any."""

    id: str
    exception: str | None = None

    def render(self) -> str:
        return f"{self.id} WITH {self.exception}" if self.exception else self.id


@dataclasses.dataclass(frozen=True)
class Compound:
    """``AND`` / ``OR`` over two or more sub-expressions (nested same operators are flattened)."""

    op: Literal["AND", "OR"]
    args: tuple[Expression, ...]

    def render(self) -> str:
        parts = []
        for arg in self.args:
            text = arg.render()
            # AND binds tighter than OR: only an OR inside an AND needs parentheses.
            parts.append(f"({text})" if isinstance(arg, Compound) and arg.op == "OR" else text)
        return f" {self.op} ".join(parts)


Expression = LicenseId | Compound


def _canonical_id(token: str) -> str:
    """SPDX spelling for an id (case-insensitive), the Hub tag mapping, or the lowercase token."""
    lower = token.lower()
    if lower.startswith(("licenseref-", "documentref-")):
        prefix, _, rest = token.partition("-")
        return ("LicenseRef-" if prefix.lower() == "licenseref" else "DocumentRef-") + rest
    if lower in HUB_LICENSE_TAGS:
        return HUB_LICENSE_TAGS[lower] or lower
    data = license_data()
    spdx = data.by_lower.get(lower)
    if spdx is None:
        return lower
    return data.deprecated.get(spdx, spdx)


class _Parser:
    """Recursive descent over SPDX tokens; raises ValueError on anything it cannot read."""

    def __init__(self, text: str) -> None:
        self.tokens: list[str] = _TOKEN.findall(text)
        self.pos = 0

    def parse(self) -> Expression:
        expr = self._or()
        if self.pos != len(self.tokens):
            raise ValueError(f"unexpected {self.tokens[self.pos]!r}")
        return expr

    def _peek_op(self) -> str | None:
        if self.pos < len(self.tokens) and self.tokens[self.pos].upper() in _OPERATORS:
            return self.tokens[self.pos].upper()
        return None

    def _compound(self, op: Literal["AND", "OR"], sub: Callable[[], Expression]) -> Expression:
        args = [sub()]
        while self._peek_op() == op:
            self.pos += 1
            args.append(sub())
        if len(args) == 1:
            return args[0]
        flat: list[Expression] = []
        for arg in args:
            flat.extend(arg.args if isinstance(arg, Compound) and arg.op == op else (arg,))
        return Compound(op, tuple(flat))

    def _or(self) -> Expression:
        return self._compound("OR", self._and)

    def _and(self) -> Expression:
        return self._compound("AND", self._with)

    def _with(self) -> Expression:
        atom = self._atom()
        if self._peek_op() != "WITH":
            return atom
        self.pos += 1
        if not isinstance(atom, LicenseId) or atom.exception is not None:
            raise ValueError("WITH needs a single license on its left")
        return LicenseId(atom.id, self._id())

    def _atom(self) -> Expression:
        if self.pos < len(self.tokens) and self.tokens[self.pos] == "(":
            self.pos += 1
            expr = self._or()
            if self.pos >= len(self.tokens) or self.tokens[self.pos] != ")":
                raise ValueError("unbalanced parenthesis")
            self.pos += 1
            return expr
        return LicenseId(_canonical_id(self._id()))

    def _id(self) -> str:
        if self.pos >= len(self.tokens) or self.tokens[self.pos] in ("(", ")") or self._peek_op():
            raise ValueError("expected a license id")
        self.pos += 1
        return self.tokens[self.pos - 1]


def parse_license(value: str) -> Expression | None:
    """Parse an already-normalized (or raw SPDX) expression; None when it is not one."""
    try:
        return _Parser(value).parse()
    except ValueError:
        return None


def _replace_other(expr: Expression, name: str) -> Expression:
    if isinstance(expr, LicenseId):
        return LicenseId(name, expr.exception) if expr.id == "other" else expr
    return Compound(expr.op, tuple(_replace_other(arg, name) for arg in expr.args))


def _normalize_one(value: str) -> str | None:
    text = value.strip()
    if text.lower() in _NO_LICENSE:
        return None
    expr = parse_license(text)
    if expr is not None:
        return expr.render()
    # Free text ("Llama 3 Community License"): fold into one id-shaped token a policy can name.
    slug = _NOT_ID_CHARS.sub("-", text.lower()).strip("-")
    if not slug or slug.upper() in _OPERATORS or slug in _NO_LICENSE:
        return None
    return _canonical_id(slug)


def normalize_license(
    value: str | list[Any] | tuple[Any, ...] | None,
    *,
    license_name: str | None = None,
    license_link: str | None = None,
) -> str | None:
    """The card's ``license`` as an SPDX expression (or lowercase Hub tag); None when unknown.

    A list means every listed license applies (joined with ``AND``), the conservative reading of
    a card naming several. ``other`` is replaced by ``license_name`` when the card gives one;
    ``license_link`` alone cannot identify a license, so the value stays ``other`` then.
    Idempotent: ``normalize_license(normalize_license(x)) == normalize_license(x)``.
    """
    del license_link  # accepted so callers can pass the card's fields as they are; see docstring
    if value is None:
        return None
    items = [value] if isinstance(value, str) else [item for item in value if isinstance(item, str)]
    parts: list[str] = []
    for item in items:
        normalized = _normalize_one(item)
        if normalized is not None and normalized not in parts:
            parts.append(normalized)
    if not parts:
        return None
    joined = parts[0] if len(parts) == 1 else " AND ".join(f"({part})" for part in parts)
    expr = parse_license(joined)
    if expr is None:  # cannot happen: every part renders as a parseable expression
        return joined
    name = _normalize_one(license_name) if license_name else None
    if name is not None and " " not in name:  # a single id; an expression cannot stand in one leaf
        expr = _replace_other(expr, name)
    return expr.render()


def card_license(card: Mapping[str, Any]) -> str | None:
    """The normalized license of a Hub model card (``license`` field, else a ``license:`` tag)."""
    value = card.get("license")
    if value is None:
        tags = card.get("tags")
        if isinstance(tags, list):
            value = [tag.split(":", 1)[1] for tag in tags if isinstance(tag, str) and tag.startswith("license:")]
    name = card.get("license_name")
    link = card.get("license_link")
    if not isinstance(value, (str, list)):
        return None
    return normalize_license(
        value,
        license_name=name if isinstance(name, str) else None,
        license_link=link if isinstance(link, str) else None,
    )


def satisfies(expression: Expression, accept: Callable[[LicenseId], bool]) -> bool:
    """Whether a choice of licenses allowed by the expression is entirely accepted."""
    if isinstance(expression, LicenseId):
        return accept(expression)
    results = (satisfies(arg, accept) for arg in expression.args)
    return all(results) if expression.op == "AND" else any(results)


def license_ids(expression: Expression) -> list[LicenseId]:
    """Every license named in the expression, in order."""
    if isinstance(expression, LicenseId):
        return [expression]
    return [leaf for arg in expression.args for leaf in license_ids(arg)]


def is_osi_approved(spdx: str) -> bool:
    """Whether the license (or expression, under SPDX semantics) is OSI-approved."""
    normalized = normalize_license(spdx)
    expr = parse_license(normalized) if normalized else None
    if expr is None:
        return False
    osi = license_data().osi_approved
    return satisfies(expr, lambda leaf: leaf.id in osi)


def _normalized_set(values: Iterable[str] | None) -> frozenset[str]:
    """Policy ids normalized like card values, compared case-insensitively."""
    out = set()
    for value in values or ():
        normalized = normalize_license(value)
        if normalized:
            out.add(normalized.lower())
    return frozenset(out)


def evaluate_license(
    spdx: str | None,
    allow_osi_approved: bool,
    allow: Iterable[str] | None = None,
    deny: Iterable[str] | None = None,
) -> list[tuple[Reason, str]]:
    """Violations of a ModelTrustPolicy's ``spec.licenses`` (empty: the license is acceptable).

    Deny wins: an expression is denied when every way to satisfy it uses a denied license.
    """
    normalized = normalize_license(spdx) if spdx else None
    if normalized is None:
        return [
            (
                Reason.LICENSE_UNKNOWN,
                "the model declares no license (the card's `license:` metadata is missing or 'unknown'); "
                "ask the publisher to set an SPDX id in the model card, or choose another model",
            )
        ]
    expr = parse_license(normalized) or LicenseId(normalized)
    denied = _normalized_set(deny)
    allowed = _normalized_set(allow)
    osi = license_data().osi_approved
    whole = normalized.lower()

    if whole in denied or not satisfies(expr, lambda leaf: leaf.id.lower() not in denied):
        names = sorted({leaf.id for leaf in license_ids(expr) if leaf.id.lower() in denied} or {normalized})
        return [
            (
                Reason.LICENSE_DENIED,
                f"license '{normalized}' is refused by spec.licenses.deny of ModelTrustPolicy "
                f"({', '.join(names)}; deny wins over allow and allowOsiApproved); "
                "remove it from deny if your legal review accepts it, or choose another model",
            )
        ]

    def accept(leaf: LicenseId) -> bool:
        if leaf.id.lower() in denied:  # the other side of an OR must carry the expression then
            return False
        return leaf.id.lower() in allowed or (allow_osi_approved and leaf.id in osi)

    if whole in allowed or satisfies(expr, accept):
        return []
    blocking = sorted({leaf.id for leaf in license_ids(expr) if not accept(leaf)})
    labels = [f"{name} (denied)" if name.lower() in denied else name for name in blocking]
    detail = "" if blocking == [normalized] else f" ({', '.join(labels)} not accepted)"
    if allow_osi_approved:
        message = (
            f"license '{normalized}' is not OSI-approved and not in spec.licenses.allow of "
            f"ModelTrustPolicy{detail}; add it to allow if your legal review accepts it"
        )
    else:
        message = (
            f"license '{normalized}' is not in spec.licenses.allow of ModelTrustPolicy{detail} "
            "(spec.licenses.allowOsiApproved is false, so OSI approval alone does not admit it); "
            "add it to allow if your legal review accepts it"
        )
    return [(Reason.LICENSE_NOT_ALLOWED, message)]
