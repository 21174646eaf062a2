"""Property 8 (and 16 for SPDX): license expressions parsed by license-expression, WITH only with SPDX exceptions.

The license text comes from the model card, i.e. from the publisher. ``X WITH Y`` keeps ``X``'s approval only
when ``Y`` is an SPDX exception id; any other ``Y`` (Commons-Clause, a made-up name, a license id, a
ScanCode key) may add any restriction, so the expression is not OSI-approved and an ``allowOSIApproved``
policy refuses it. Parsing is bounded: no string makes it raise or take long.
"""

from __future__ import annotations

import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from policy_fixtures import model_evidence, open_policy

from openmodel_operator.evidence.records import Reason
from openmodel_operator.trust.decision import decide
from openmodel_operator.trust.licenses import (
    HUB_LICENSE_TAGS,
    MAX_EXPRESSION_CHARS,
    card_license,
    evaluate_license,
    is_osi_approved,
    normalize_license,
    parse_license,
    spdx_exception_ids,
)
from openmodel_operator.trust.openness import is_open_license


@pytest.mark.parametrize(
    "expression",
    [
        "Apache-2.0 WITH LLVM-exception",
        "apache-2.0 with llvm-exception",
        "GPL-2.0-only WITH Classpath-exception-2.0",
        "GPL-2.0+ WITH GCC-exception-2.0",
        "MIT OR Apache-2.0",
    ],
)
def test_spdx_exceptions_keep_osi_approval(expression: str) -> None:
    assert is_osi_approved(expression)
    assert evaluate_license(expression, True, [], []) == []
    assert decide([open_policy()], model_evidence(card={"license": expression})).trusted


@pytest.mark.parametrize(
    "expression",
    [
        "Apache-2.0 WITH Commons-Clause",
        "MIT WITH anything-made-up",
        "MIT WITH Apache-2.0",  # a license is not an exception
        "MIT WITH LicenseRef-scancode-alfresco-exception-0.5",  # ScanCode's key, not SPDX
        "MIT WITH AdditionRef-no-commercial-use",
        "MIT WITH MIT",
        "(MIT OR Apache-2.0) WITH LLVM-exception",  # WITH applies to one license only
        "MIT AND Apache-2.0 WITH Commons-Clause",
    ],
)
def test_non_spdx_exception_is_not_osi_and_refused(expression: str) -> None:
    assert not is_osi_approved(expression)
    assert not is_open_license(normalize_license(expression))
    # a malformed expression is unknown, a well-formed one with a foreign WITH is not allowed: both refuse
    refusals = {Reason.LICENSE_NOT_ALLOWED, Reason.LICENSE_UNKNOWN}
    [(reason, _)] = evaluate_license(expression, True, [], [])
    assert reason in refusals
    verdict = decide([open_policy()], model_evidence(card={"license": expression}))
    assert not verdict.trusted and set(verdict.reasons) <= refusals
    # allowing the license id alone does not admit the restricted variant
    assert evaluate_license(expression, False, ["MIT", "Apache-2.0"], []) != []


def test_message_names_the_unknown_exception() -> None:
    [(reason, message)] = evaluate_license("Apache-2.0 WITH Commons-Clause", True, [], [])
    assert reason is Reason.LICENSE_NOT_ALLOWED
    assert "WITH commons-clause is not an SPDX license exception" in message


def test_or_with_a_clean_side_is_still_acceptable() -> None:
    """The licensee may pick the clean side of an OR, as SPDX says."""
    assert is_osi_approved("MIT OR Apache-2.0 WITH Commons-Clause")


def test_deny_reaches_exceptions() -> None:
    [(reason, _)] = evaluate_license("GPL-2.0-only WITH Classpath-exception-2.0", True, [], ["Classpath-exception-2.0"])
    assert reason is Reason.LICENSE_DENIED


def test_scancode_aliases_do_not_rename_licenserefs() -> None:
    """license-expression's index maps LicenseRef-Apache to Apache-2.0; a LicenseRef is its author's own text."""
    assert normalize_license("LicenseRef-Apache") == "LicenseRef-Apache"
    assert not is_osi_approved("LicenseRef-MIT-Discord")


def test_exception_ids_are_spdx_only() -> None:
    ids = spdx_exception_ids()
    assert {"LLVM-exception", "Classpath-exception-2.0"} <= ids
    assert not any(i.startswith("LicenseRef-") for i in ids)
    assert "Commons-Clause" not in ids


def test_hub_tag_mapping_is_data() -> None:
    assert HUB_LICENSE_TAGS["llama3"] is None and normalize_license("llama3") == "llama3"
    assert HUB_LICENSE_TAGS["gpl-3.0"] == "GPL-3.0-only"
    assert card_license({"license": "gpl"}) == "gpl"  # not ScanCode's GPL-1.0-or-later reading


@pytest.mark.parametrize(
    "value",
    [
        "MIT OR " * 2000 + "MIT",
        "(" * 500 + "MIT" + ")" * 500,
        "(" * 11 + "MIT" + ")" * 11,
        "MIT AND " * 120 + "MIT",
        "()",
        ")(",
        "MIT WITH",
        "WITH WITH WITH",
        "MIT\u2028OR\u2028Apache-2.0",
        "A" * 100_000,
    ],
)
def test_hostile_expressions_are_bounded_and_never_raise(value: str) -> None:
    start = time.perf_counter()
    normalized = normalize_license(value)
    assert evaluate_license(value, True, [], []) != []
    assert not is_osi_approved(value)
    assert normalized is None or len(normalized) <= MAX_EXPRESSION_CHARS
    assert time.perf_counter() - start < 1.0


def test_long_lists_are_unknown() -> None:
    assert normalize_license(["MIT"] * 17) is None
    assert normalize_license(["MIT"] * 3) == "MIT"


_ATOMS = st.sampled_from(
    ["MIT", "Apache-2.0", "LLVM-exception", "Commons-Clause", "WITH", "AND", "OR", "(", ")", "+", "LicenseRef-x", "gpl"]
)


@settings(max_examples=200, deadline=None)
@given(st.one_of(st.text(max_size=200), st.lists(_ATOMS, max_size=40).map(" ".join)))
def test_fuzz_never_raises_and_is_quick(value: str) -> None:
    start = time.perf_counter()
    normalized = normalize_license(value)
    parse_license(value)
    evaluate_license(value, True, ["MIT"], ["GPL-3.0-only"])
    is_osi_approved(value)
    assert normalize_license(normalized) == normalized
    assert time.perf_counter() - start < 0.5
