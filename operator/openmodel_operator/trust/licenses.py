"""Model licenses: normalize Hub card values to SPDX, check OSI approval, apply a policy's rules.

Hub cards carry lowercase tags (``apache-2.0``, ``llama3``, ``other`` + ``license_name``), not
always SPDX ids, so every comparison goes through :func:`normalize_license` first. Expressions are
parsed by ``license-expression`` (AboutCode), which knows the SPDX license and exception ids; the
Hub-tag mapping is shipped data (``data/license_tags.json``), and so is the list of OSI-approved
licenses (``data/osi_licenses.json``, produced from the SPDX License List by
``scripts/update_osi_licenses.py``) because the operator must decide offline.

Expressions follow SPDX precedence (``WITH`` > ``AND`` > ``OR``): ``A OR B`` is acceptable when
either side is, ``A AND B`` only when both are, ``A WITH exc`` when ``A`` is *and* ``exc`` is an SPDX
exception id. Anything else after ``WITH`` (``Commons-Clause``, a made-up name, a license id) may add
any restriction at all, so such a term is never OSI-approved nor accepted by a license id alone; only
a policy naming the whole expression admits it.

The text comes from a model card, i.e. from whoever published the model: input is bounded (length,
token count, nesting) before any parsing, and nothing here raises on any string.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import re
from collections.abc import Callable, Iterable, Mapping
from importlib import resources
from typing import Any, Literal

from license_expression import (
    LicenseSymbol,
    LicenseWithExceptionSymbol,
    Licensing,
    get_license_index,
)

from openmodel_operator.evidence.records import Reason

# Bounds on an expression before it reaches the parser: real SPDX expressions are a few ids long.
MAX_EXPRESSION_CHARS = 1024
MAX_EXPRESSION_TOKENS = 100
MAX_EXPRESSION_DEPTH = 10
MAX_LICENSE_ITEMS = 16  # licenses listed in one card

# Values that say "no license is known": normalized to None.
_NO_LICENSE = frozenset({"", "unknown", "none", "noassertion"})
_OPERATORS = frozenset({"AND", "OR", "WITH"})
_TOKEN = re.compile(r"\(|\)|[^ \t\n\r\f\v()]+")
# What an expression may consist of: SPDX id characters (plus ":" for DocumentRef), operators, parens.
_EXPRESSION_CHARS = re.compile(r"[A-Za-z0-9.+:_() \t-]*")
_NOT_ID_CHARS = re.compile(r"[^a-z0-9.+-]+")
_REF_PREFIXES = {"licenseref-": "LicenseRef-", "documentref-": "DocumentRef-", "additionref-": "AdditionRef-"}


def _data_file(name: str) -> Any:
    return json.loads(resources.files("openmodel_operator").joinpath(f"data/{name}").read_text(encoding="utf-8"))


# Hub license tags (huggingface.co/docs/hub/repositories-licenses) that case-insensitive SPDX
# matching would not resolve (data/license_tags.json). ``None``: no SPDX license exists (a family
# name or a custom model license); the lowercase tag itself is then the normalized value, so a
# policy can allow it by name.
HUB_LICENSE_TAGS: Mapping[str, str | None] = dict(_data_file("license_tags.json")["hub_tags"])


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
    raw = _data_file("osi_licenses.json")
    return LicenseData(
        source=str(raw["source"]),
        retrieved=str(raw["retrieved"]),
        osi_approved=frozenset(raw["licenses"]),
        fsf_libre=frozenset(raw["fsf_libre"]),
        by_lower={key.lower(): key for key in raw["spdx_ids"]},
        deprecated=dict(raw["deprecated"]),
    )


def _is_ref(key: str) -> bool:
    return key.lower().startswith(tuple(_REF_PREFIXES))


@dataclasses.dataclass(frozen=True)
class _Spdx:
    licensing: Licensing
    exceptions: frozenset[str]  # SPDX exception ids, as SPDX spells them


@functools.cache
def _spdx() -> _Spdx:
    """A Licensing that knows only SPDX ids (license-expression's index, plus newer ids of our shipped list).

    Left out on purpose: ScanCode's own ``LicenseRef-scancode-*`` keys (not SPDX: an exception spelled that
    way must not pass as an SPDX exception), aliases that are ``LicenseRef-*`` names (``LicenseRef-Apache``
    is whatever its author says, not Apache-2.0), aliases with spaces, and aliases equal to a Hub tag (whose
    meaning the shipped tag mapping decides).
    """
    symbols: list[LicenseSymbol] = []
    taken: set[str] = set()
    exceptions: set[str] = set()
    entries = sorted(get_license_index(), key=lambda e: str(e.get("spdx_license_key") or ""))
    for entry in entries:
        key = entry.get("spdx_license_key")
        if not isinstance(key, str) or not key or _is_ref(key) or key.lower() in taken:
            continue
        taken.add(key.lower())
        aliases = []
        for alias in entry.get("other_spdx_license_keys") or []:
            lower = alias.lower()
            if _is_ref(alias) or " " in alias or lower in HUB_LICENSE_TAGS or lower in taken:
                continue
            taken.add(lower)
            aliases.append(alias)
        is_exception = bool(entry.get("is_exception"))
        if is_exception:
            exceptions.add(key)
        symbols.append(LicenseSymbol(key, aliases=tuple(aliases), is_exception=is_exception))
    for spdx in license_data().by_lower.values():  # ids newer than license-expression's copy of the list
        if spdx.lower() not in taken:
            taken.add(spdx.lower())
            symbols.append(LicenseSymbol(spdx))
    return _Spdx(Licensing(symbols, quiet=True), frozenset(exceptions))


def spdx_exception_ids() -> frozenset[str]:
    """The SPDX license exception ids (``LLVM-exception``, ``Classpath-exception-2.0``, ...)."""
    return _spdx().exceptions


@dataclasses.dataclass(frozen=True)
class LicenseId:
    """One license of an expression, with the exception of a ``WITH`` clause if any."""

    id: str
    exception: str | None = None

    @property
    def exception_known(self) -> bool:
        """No ``WITH``, or a ``WITH`` naming an SPDX exception id (only those have known, reviewed terms)."""
        return self.exception is None or self.exception in spdx_exception_ids()

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


def _canonical_ref(token: str) -> str:
    prefix, _, rest = token.partition("-")
    return _REF_PREFIXES[prefix.lower() + "-"] + rest


def _canonical_id(token: str) -> str:
    """SPDX spelling for an id (case-insensitive), the Hub tag mapping, or the lowercase token."""
    lower = token.lower()
    if _is_ref(token):
        return _canonical_ref(token)
    if lower in HUB_LICENSE_TAGS:
        return HUB_LICENSE_TAGS[lower] or lower
    data = license_data()
    spdx = data.by_lower.get(lower)
    if spdx is None:
        known = _spdx().licensing.known_symbols_lowercase.get(lower)
        spdx = known.key if known is not None and not known.is_exception else None
    if spdx is None:
        return lower
    return data.deprecated.get(spdx, spdx)


def _leaf(symbol: LicenseSymbol) -> str:
    """The normalized id of a parsed license symbol: license-expression resolved case and aliases of SPDX ids."""
    key = str(symbol.key)
    if key in _spdx().licensing.known_symbols:
        return license_data().deprecated.get(key, key)
    return _canonical_id(key)


def _exception(symbol: LicenseSymbol) -> str:
    key = str(symbol.key)
    if symbol.is_exception and key in spdx_exception_ids():
        return key
    if _is_ref(key):
        return _canonical_ref(key)
    return _canonical_id(key)  # a license id or an unknown name: never an SPDX exception


def _within_limits(text: str) -> bool:
    """Length, token count and parenthesis nesting within the bounds (checked before any parsing)."""
    if len(text) > MAX_EXPRESSION_CHARS:
        return False
    tokens = _TOKEN.findall(text)
    if len(tokens) > MAX_EXPRESSION_TOKENS:
        return False
    depth = 0
    for token in tokens:
        depth += token == "("
        depth -= token == ")"
        if depth > MAX_EXPRESSION_DEPTH:
            return False
    return True


def _convert(node: Any, licensing: Licensing, depth: int = 0) -> Expression:
    if depth > 2 * MAX_EXPRESSION_DEPTH + 2:
        raise ValueError("expression nested too deeply")
    if isinstance(node, LicenseWithExceptionSymbol):
        return LicenseId(_leaf(node.license_symbol), _exception(node.exception_symbol))
    if isinstance(node, LicenseSymbol):
        return LicenseId(_leaf(node))
    op: Literal["AND", "OR"]
    if isinstance(node, licensing.AND):
        op = "AND"
    elif isinstance(node, licensing.OR):
        op = "OR"
    else:
        raise ValueError(f"unexpected node {type(node).__name__}")
    flat: list[Expression] = []
    for arg in node.args:
        sub = _convert(arg, licensing, depth + 1)
        flat.extend(sub.args if isinstance(sub, Compound) and sub.op == op else (sub,))
    return Compound(op, tuple(flat))


def parse_license(value: str) -> Expression | None:
    """Parse an already-normalized (or raw SPDX) expression; None when it is not one (or is too large)."""
    if not isinstance(value, str) or not _EXPRESSION_CHARS.fullmatch(value) or not value.strip():
        return None
    if not _within_limits(value):
        return None
    licensing = _spdx().licensing
    try:
        parsed = licensing.parse(value, validate=False, strict=False, simple=True)
        return None if parsed is None else _convert(parsed, licensing)
    # license-expression raises assorted types on malformed input (ExpressionError, boolean's ParseError,
    # IndexError for "()", ...); any of them only means "not an expression".
    except Exception:
        return None


def _replace_other(expr: Expression, name: str) -> Expression:
    if isinstance(expr, LicenseId):
        return LicenseId(name, expr.exception) if expr.id == "other" else expr
    return Compound(expr.op, tuple(_replace_other(arg, name) for arg in expr.args))


def _normalize_one(value: str) -> str | None:
    text = value.strip()
    if not _within_limits(text) or text.lower() in _NO_LICENSE:
        return None  # beyond the bounds: unknown, never guessed at
    expr = parse_license(text)
    if expr is not None:
        return expr.render()
    if "(" in text or ")" in text:
        return None  # a malformed expression, not free text: folding it could drop an operator
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
    A value beyond the bounds (characters, tokens, nesting, listed items) counts as unknown.
    Idempotent: ``normalize_license(normalize_license(x)) == normalize_license(x)``.
    """
    del license_link  # accepted so callers can pass the card's fields as they are; see docstring
    if value is None:
        return None
    items = [value] if isinstance(value, str) else [item for item in value if isinstance(item, str)]
    if len(items) > MAX_LICENSE_ITEMS:
        return None
    parts: list[str] = []
    for item in items:
        normalized = _normalize_one(item)
        if normalized is not None and normalized not in parts:
            parts.append(normalized)
    if not parts:
        return None
    joined = parts[0] if len(parts) == 1 else " AND ".join(f"({part})" for part in parts)
    expr = parse_license(joined)
    if expr is None:  # the parts together exceed the bounds
        return None
    name = _normalize_one(license_name) if license_name else None
    if name is not None and " " not in name:  # a single id; an expression cannot stand in one leaf
        expr = _replace_other(expr, name)
    rendered = expr.render()
    return rendered if parse_license(rendered) is not None else None


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
    """Whether a choice of licenses allowed by the expression is entirely accepted.

    A term whose ``WITH`` names no SPDX exception is never accepted here, whatever ``accept`` says.
    """
    if isinstance(expression, LicenseId):
        return expression.exception_known and accept(expression)
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

    Deny wins: an expression is denied when every way to satisfy it uses a denied license (or a denied
    exception). A ``WITH`` naming no SPDX exception is accepted only by allowing the whole expression.
    """
    normalized = normalize_license(spdx) if spdx else None
    if normalized is None:
        return [
            (
                Reason.LICENSE_UNKNOWN,
                "the model declares no license (the card's `license:` metadata is missing or 'unknown', or is not "
                "a readable SPDX expression); ask the publisher to set an SPDX id in the model card, or choose "
                "another model",
            )
        ]
    expr = parse_license(normalized) or LicenseId(normalized)
    denied = _normalized_set(deny)
    allowed = _normalized_set(allow)
    osi = license_data().osi_approved
    whole = normalized.lower()

    def is_denied(leaf: LicenseId) -> bool:
        return leaf.id.lower() in denied or (leaf.exception is not None and leaf.exception.lower() in denied)

    if whole in denied or not _any_choice(expr, lambda leaf: not is_denied(leaf)):
        names = sorted(
            {
                name
                for leaf in license_ids(expr)
                for name in (leaf.id, leaf.exception)
                if name and name.lower() in denied
            }
            or {normalized}
        )
        return [
            (
                Reason.LICENSE_DENIED,
                f"license '{normalized}' is refused by spec.licenses.deny of ModelTrustPolicy "
                f"({', '.join(names)}; deny wins over allow and allowOsiApproved); "
                "remove it from deny if your legal review accepts it, or choose another model",
            )
        ]

    def accept(leaf: LicenseId) -> bool:
        if is_denied(leaf):  # the other side of an OR must carry the expression then
            return False
        return leaf.id.lower() in allowed or (allow_osi_approved and leaf.id in osi)

    if whole in allowed or satisfies(expr, accept):
        return []
    blocking = sorted({leaf.render() for leaf in license_ids(expr) if not (leaf.exception_known and accept(leaf))})
    labels = [f"{name} (denied)" if name.lower() in denied else name for name in blocking]
    detail = "" if blocking == [normalized] else f" ({', '.join(labels)} not accepted)"
    unknown = sorted({leaf.exception for leaf in license_ids(expr) if leaf.exception and not leaf.exception_known})
    if unknown:
        detail += (
            f"; WITH {', '.join(unknown)} is not an SPDX license exception, so the terms are not those of an "
            "OSI-approved license"
        )
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


def _any_choice(expression: Expression, accept: Callable[[LicenseId], bool]) -> bool:
    """Like :func:`satisfies` but judging terms only by ``accept`` (the deny check must not depend on WITH)."""
    if isinstance(expression, LicenseId):
        return accept(expression)
    results = (_any_choice(arg, accept) for arg in expression.args)
    return all(results) if expression.op == "AND" else any(results)
