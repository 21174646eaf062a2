"""Parsers of hostile input run in bounded time and fail only with SourceError (issue 8, property 16).

Fuzzed with hypothesis (bounded: max_examples <= 200, no per-example deadline, a wall-clock
bound asserted instead): the README front matter, the YAML reader, the Hub JSON reader, file
names, and the redaction helpers. Known pathological inputs are checked by name too.
"""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from openmodel_operator.evidence.documents import MAX_METADATA_BYTES, card_metadata, front_matter, load_yaml_mapping
from openmodel_operator.evidence.errors import SourceError
from openmodel_operator.evidence.paths import check_relative_path
from openmodel_operator.evidence.records import Reason
from openmodel_operator.evidence.text import REDACTED, is_unsafe_char, printable, redact
from openmodel_operator.sources.hub import HubClient, parse_json

FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
# huggingface_hub's own front-matter expression: what the Hub parses into cardData. Fine on short
# texts (the fuzz compares against it); quadratic on long ones, which is why it is not used.
HUB_FRONT_MATTER = re.compile(r"^(\s*---[\r\n]+)([\S\s]*?)([\r\n]+---(\r\n|\n|$))")
CLIENT = HubClient("https://hub.example", "org/m", "main")
SLOW = 2.0  # seconds: each pathological input must be handled well within this


def timed(call: Callable[[], Any]) -> float:
    started = time.monotonic()
    with contextlib.suppress(SourceError):
        call()
    return time.monotonic() - started


# ------------------------------------------------------------------ front matter


@FUZZ
@given(
    st.lists(st.sampled_from(["-", "---", "\n", "\r", "\r\n", " ", "\t", "a", "x: 1", ":", "\u2028"]), max_size=25).map(
        "".join
    )
)
def test_front_matter_agrees_with_the_hub(text: str) -> None:
    match = HUB_FRONT_MATTER.search(text)
    assert front_matter(text) == (match.group(2) if match else None)


@pytest.mark.parametrize(
    "card",
    [
        "---\n" + "\r" * 1_000_000,
        "---\n" + "\n-" * 500_000,
        "---\n" + "\n--" * 400_000,
        "---\n" + "---" * 400_000,
        " " * 1_000_000 + "---\n",
        "---\n" + "a: [" * 100_000,
    ],
    ids=["cr", "newline-dash", "newline-dashes", "dashes", "spaces", "deep-yaml"],
)
def test_pathological_cards_are_handled_quickly(card: str) -> None:
    assert timed(lambda: card_metadata(card)) < SLOW
    assert timed(lambda: card_metadata(card.encode())) < SLOW


@FUZZ
@given(st.binary(max_size=2000))
def test_card_metadata_never_raises(data: bytes) -> None:
    started = time.monotonic()
    result = card_metadata(data)
    assert isinstance(result, dict)
    assert time.monotonic() - started < SLOW


def test_a_card_beyond_the_cap_is_cut_not_parsed_whole() -> None:
    card = "---\nlicense: mit\n---\n" + "x" * (5 * MAX_METADATA_BYTES)
    assert card_metadata(card) == {"license": "mit"}


# ------------------------------------------------------------------ YAML


@pytest.mark.parametrize(
    ("document", "detail"),
    [
        ("a: &a [x, x]\nb: &b [*a, *a]\nc: &c [*b, *b]\nd: [*c, *c]\n", "aliases"),  # billion laughs
        ("a: " + "[" * 70 + "]" * 70, "nested"),
        ("a: " + "{b: " * 70 + "1" + "}" * 70, "nested"),
        ("a: " + "[" * 200_000, "nested"),
        ("a: " + "1" * 5000, "not valid YAML"),  # beyond Python's int digit limit
        ("- just\n- a list\n", "mapping"),
    ],
    ids=["billion-laughs", "deep-flow-list", "deep-flow-map", "deep-unclosed", "huge-int", "not-a-mapping"],
)
def test_hostile_yaml_is_refused_quickly(document: str, detail: str) -> None:
    started = time.monotonic()
    with pytest.raises(SourceError) as exc:
        load_yaml_mapping(document, "openness.yaml")
    assert time.monotonic() - started < SLOW
    assert exc.value.reason in (Reason.INVALID_SOURCE, Reason.FILE_TOO_LARGE)
    assert detail in exc.value.message


def test_ordinary_yaml_still_loads() -> None:
    doc = "components:\n  weights: open\n  data: {license: cc-by-4.0, url: 'https://x'}\nlist: [1, 2, [3]]\n"
    assert load_yaml_mapping(doc, "openness.yaml")["components"]["weights"] == "open"


@FUZZ
@given(st.text(max_size=500))
def test_load_yaml_mapping_fails_only_with_source_error(text: str) -> None:
    started = time.monotonic()
    try:
        assert isinstance(load_yaml_mapping(text, "openness.yaml"), dict)
    except SourceError as exc:
        assert not any(is_unsafe_char(ch) for ch in exc.message)
    assert time.monotonic() - started < SLOW


# ------------------------------------------------------------------ Hub JSON


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner, max_size=4),
    max_leaves=30,
)


@FUZZ
@given(st.binary(max_size=500) | json_values.map(lambda v: repr(v).encode()))
def test_parse_json_fails_only_with_source_error(body: bytes) -> None:
    try:
        parse_json(body, CLIENT, "a page")
    except SourceError as exc:
        assert exc.reason in (Reason.INVALID_SOURCE, Reason.RESPONSE_TOO_LARGE)


@pytest.mark.parametrize(
    "body",
    [b"[" * 90_000 + b"]" * 90_000, b'{"a":' * 40_000 + b"1" + b"}" * 40_000, b"[" * 3_000_000, b"1" * 1_000_000],
    ids=["deep-list", "deep-object", "unclosed", "huge-number"],
)
def test_hostile_json_is_refused_quickly(body: bytes) -> None:
    started = time.monotonic()
    with pytest.raises(SourceError):
        parse_json(body, CLIENT, "a page")
    assert time.monotonic() - started < SLOW


# ------------------------------------------------------------------ file names and text


@FUZZ
@given(st.text(max_size=300))
def test_check_relative_path_refuses_with_an_escaped_display(name: str) -> None:
    try:
        assert check_relative_path(name, "fuzz") == name
        assert not any(is_unsafe_char(ch) for ch in name)
    except SourceError as exc:
        assert exc.reason in (Reason.UNSAFE_PATH, Reason.UNSAFE_FILE_NAME)
        assert not any(is_unsafe_char(ch) for ch in exc.message)


@FUZZ
@given(
    st.text(max_size=200),
    st.text(alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-.", min_size=8, max_size=40),
)
def test_redact_removes_a_secret_wherever_it_is(text: str, secret: str) -> None:
    assume(secret not in REDACTED)  # the marker itself may spell a (silly) secret
    mixed = text[: len(text) // 2] + secret + text[len(text) // 2 :] + secret
    assert secret not in redact(mixed, [secret])


@FUZZ
@given(st.text(max_size=400), st.integers(min_value=0, max_value=300))
def test_printable_output_is_safe_and_bounded(text: str, limit: int) -> None:
    shown = printable(text, limit)
    assert not any(is_unsafe_char(ch) for ch in shown)
    assert len(shown) <= limit + 3


def test_a_huge_front_matter_is_not_parsed(monkeypatch: pytest.MonkeyPatch) -> None:
    """1 MiB of YAML costs seconds of pure-Python CPU: a front matter over 64 KiB is not a card's, not parsed."""
    from openmodel_operator.evidence import documents as directory

    parsed: list[int] = []
    real = directory.load_yaml_mapping

    def spy(data: bytes | str, what: str) -> dict[str, Any]:
        parsed.append(len(data))
        return real(data, what)

    monkeypatch.setattr(directory, "load_yaml_mapping", spy)
    hostile = b"---\nlicense: apache-2.0\nx: [" + b"1," * 400_000 + b"1]\n---\n# card\n"
    assert directory.card_metadata(hostile) == {} and parsed == []
    control = directory.card_metadata(b"---\nlicense: apache-2.0\n---\n# card\n")
    assert control == {"license": "apache-2.0"} and len(parsed) == 1
