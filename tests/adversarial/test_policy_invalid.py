"""Property 6: an unusable ModelTrustPolicy fails closed, and the CRD schema and the operator agree on "usable".

A policy the operator cannot read must never be "ignored, other policies decide": every model it could
govern fails with PolicyInvalid, whatever its mode. Most such policies are refused at apply time because
every schema pattern means the same to the apiserver (Go RE2: ASCII classes, ``$`` = end of text), to
pydantic (Rust regex: Unicode classes) and to Python ``re`` (``$`` also before a final newline).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Annotated, Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from policy_fixtures import manifest, model_evidence, open_policy
from pydantic import StringConstraints, TypeAdapter, ValidationError

from apiserver_validation import admit, go_pattern_match
from openmodel_operator.crd.definitions import all_crds, policy_crd
from openmodel_operator.evidence.records import Reason
from openmodel_operator.trust.decision import decide
from openmodel_operator.trust.policies import (
    Policy,
    governing_policies,
    invalid_policy,
    policy_from_manifest,
    usable_policy,
)


def _patterns() -> list[str]:
    found: set[str] = set()

    def walk(node: Any) -> Iterator[str]:
        if isinstance(node, dict):
            if isinstance(node.get("pattern"), str):
                yield node["pattern"]
            for value in node.values():
                yield from walk(value)
        elif isinstance(node, list):
            for item in node:
                yield from walk(item)

    for crd in all_crds():
        found.update(walk(crd))
    return sorted(found)


PATTERNS = _patterns()
_ADAPTERS = {p: TypeAdapter(Annotated[str, StringConstraints(pattern=p)]) for p in PATTERNS}
# Characters on which the engines could disagree: Unicode spaces and separators, non-ASCII digits and
# letters, controls, and the final newline Python's ``$`` tolerates.
TRICKY = [
    "\n",
    "\r\n",
    "\u00a0",
    "\u2028",
    "\u2029",
    "\u3000",
    "\u0663",
    "\uff11",
    "\u00e9",
    "\u0130",
    "\x00",
    "\x85",
    "\t",
    "\v",
    "\x7f",
    "\u200b",
    "\u202e",
    "_",
    "[",
    "]",
]


def _go(pattern: str, value: str) -> bool:
    """Go RE2 as the apiserver runs OpenAPI ``pattern``: unanchored search, ASCII classes, ``$`` = end of text."""
    return go_pattern_match(pattern, value)


def _answers(pattern: str, value: str) -> tuple[bool, bool, bool, bool]:
    try:
        _ADAPTERS[pattern].validate_python(value)
        pydantic_ok = True
    except ValidationError:
        pydantic_ok = False
    return (
        _go(pattern, value),
        re.fullmatch(pattern, value) is not None,
        re.fullmatch(pattern, value, flags=re.ASCII) is not None,
        pydantic_ok,
    )


def test_patterns_are_found_and_use_no_engine_dependent_escapes() -> None:
    assert len(PATTERNS) >= 15
    for pattern in PATTERNS:
        assert not re.search(r"\\[sSdDwWbB]", pattern), pattern
        assert "\\$" not in pattern, pattern  # every $ is an anchor (the Go emulation relies on it)
        assert pattern.startswith(("^", "(^")), pattern


def _samples(pattern: str) -> list[str]:
    """Strings near the pattern's language: valid samples from hypothesis' examples and tricky mutations."""
    base = {
        "DNS": "a-b.c",
        "https": "https://accounts.example.com",
        "hf": "hf://org/model",
        "pvc": "pvc://claim/dir",
        "BEGIN PUBLIC KEY": "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n",
        "BEGIN CERTIFICATE": "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----",
        "sha256": "sha256:" + "0" * 64,
    }
    seeds = [value for key, value in base.items() if key in pattern] + ["a", "A1", "1", "x-y", "main", "20Gi", "--x"]
    out: list[str] = []
    for seed in seeds:
        out.append(seed)
        for tricky in TRICKY:
            out += [seed + tricky, tricky + seed, seed[: len(seed) // 2] + tricky + seed[len(seed) // 2 :]]
            out.append(seed.replace("1", tricky).replace("a", tricky, 1))
    return out


@pytest.mark.parametrize("pattern", PATTERNS)
def test_every_engine_agrees_on_tricky_strings(pattern: str) -> None:
    disagreements = [
        (value, answers) for value in _samples(pattern) if len(set(answers := _answers(pattern, value))) > 1
    ]
    assert disagreements == [], pattern


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(st.data())
def test_every_engine_agrees_on_generated_strings(data: st.DataObject) -> None:
    pattern = data.draw(st.sampled_from(PATTERNS))
    valid = data.draw(st.from_regex(re.compile(pattern, flags=re.ASCII), fullmatch=True).filter(lambda s: len(s) < 300))
    position = data.draw(st.integers(0, len(valid)))
    tricky = data.draw(st.sampled_from(TRICKY) | st.characters())
    for value in (valid, valid[:position] + tricky + valid[position:]):
        assert len(set(_answers(pattern, value))) == 1, (pattern, value)


# ---------------------------------------------------------------- fail closed

SELECTED = {"team": "ml"}


def _bad_policy_doc() -> dict[str, Any]:
    """A policy as the operator receives it that does not validate (stored before a schema change, say)."""
    doc = manifest(
        "broken",
        mode="Audit",
        namespaceSelector={"matchLabels": SELECTED},
        signature={"required": True, "keys": [{"name": "k", "publicKey": "not a PEM key " * 200}]},
    )
    return doc


def test_invalid_policy_refuses_every_model_it_governs_even_when_another_policy_passes() -> None:
    doc = _bad_policy_doc()
    with pytest.raises(Exception, match="publicKey"):
        policy_from_manifest(doc)
    broken = usable_policy(doc, origin="ModelTrustPolicy broken")
    assert broken.problem is not None and "publicKey" in broken.problem
    assert len(broken.problem) < 400  # the 2800-character value is clipped
    valid = open_policy("valid", namespaceSelector={"matchLabels": SELECTED})

    # control: the valid policy alone admits the model
    assert decide(governing_policies([valid], SELECTED), model_evidence()).trusted

    governing = governing_policies([broken, valid], SELECTED)
    assert [p.name for p in governing] == ["broken", "valid"]
    verdict = decide(governing, model_evidence())
    assert not verdict.trusted
    [violation] = verdict.violations
    assert violation.reason is Reason.POLICY_INVALID and violation.enforced  # enforced although mode: Audit
    assert (
        "'broken'" in violation.message and "publicKey" in violation.message and "fix the policy" in violation.message
    )
    # a namespace the broken policy does not select is not affected
    assert decide(governing_policies([broken, open_policy("all")], {"team": "ops"}), model_evidence()).trusted


@pytest.mark.parametrize(
    "spec",
    [
        {"mode": "Warn"},
        {"sources": {"allow": ["hf://[a-z]*/x"]}},
        {"sources": {"endpoints": {"allow": ["https://mirror.example/path"]}}},
        {"signature": {"required": False, "keyless": [{"issuer": "https://issuer.example\n", "subject": "x"}]}},
        {"licenses": {"allow": ["MIT\n"]}},
        {"serving": {"deniedArgs": ["--x\u00a0"]}},
        {"unknownField": True},
    ],
)
def test_each_kind_of_bad_spec_fails_closed(spec: dict[str, Any]) -> None:
    broken = usable_policy(manifest("broken", **spec))
    assert broken.problem is not None
    verdict = decide([broken, open_policy("valid")], model_evidence())
    assert Reason.POLICY_INVALID in verdict.reasons and not verdict.trusted


def test_unparseable_selector_governs_every_namespace() -> None:
    doc = manifest("broken", namespaceSelector={"matchLabels": "not-a-map"})
    broken = usable_policy(doc)
    assert broken.problem is not None
    assert governing_policies([broken], {"anything": "x"}) == [broken]
    assert governing_policies([broken], {}) == [broken]


def test_unreadable_reference_reported_by_the_operator_fails_closed() -> None:
    broken = invalid_policy(
        manifest("corp", namespaceSelector={"matchLabels": SELECTED}),
        "spec.signature.keys['release'].configMapRef: ConfigMap ops/keys not found",
    )
    assert broken.spec.namespace_selector.match_labels == SELECTED
    verdict = decide([broken], model_evidence())
    assert [v.reason for v in verdict.violations] == [Reason.POLICY_INVALID]


def test_anchor_that_cannot_be_loaded_fails_closed_instead_of_raising() -> None:
    """trust_anchors() raising PolicyError (here: a configMapRef the CLI cannot read) becomes PolicyInvalid."""
    pol = policy_from_manifest(
        manifest(
            "cm",
            signature={
                "required": True,
                "keys": [{"name": "k", "configMapRef": {"name": "k", "namespace": "ops", "key": "pem"}}],
            },
        )
    )
    evidence = model_evidence()
    signed = type(evidence)(source=evidence.source, bundle=b"{}", signature_path="model.sig")
    verdict = decide([pol], signed)
    assert Reason.POLICY_INVALID in verdict.reasons and not verdict.trusted


def test_valid_policy_has_no_problem() -> None:
    pol: Policy = usable_policy(manifest("ok", signature={"required": False}))
    assert pol.problem is None and pol.name == "ok"


@pytest.mark.parametrize(
    "spec",
    [
        {"signature": {"required": False, "keyless": [{"issuer": "https://issuer.example\n", "subject": "x"}]}},
        {"signature": {"required": False, "keyless": [{"issuer": "https://issuer.example\u00a0", "subject": "x"}]}},
        {"sources": {"endpoints": {"allow": ["https://mirror.example\n"]}}},
        {"sources": {"allow": ["hf://org/\u2028*"]}},
        {"licenses": {"deny": ["MIT\n"]}},
    ],
)
def test_apiserver_and_operator_refuse_the_same_policy(spec: dict[str, Any]) -> None:
    """Refused at apply time and by the operator alike: never "admitted by the cluster, ignored by the operator"."""
    spec = {"signature": {"required": False}, **spec}
    _, errors = admit(policy_crd(), manifest("p", **spec))
    assert errors, "the apiserver would admit it"
    assert usable_policy(manifest("p", **spec)).problem is not None
    # control: the same policies without the hostile character pass both
    clean = json.loads(json.dumps(spec).replace("\\n", "").replace("\\u00a0", "").replace("\\u2028", ""))
    assert admit(policy_crd(), manifest("p", **clean))[1] == []
    assert usable_policy(manifest("p", **clean)).problem is None


def test_no_policy_at_all_means_the_builtin_default() -> None:
    """An empty policy list never admits everything: the built-in default (signature required) decides."""
    verdict = decide([], model_evidence())
    assert not verdict.trusted and Reason.SIGNATURE_MISSING in verdict.reasons
    assert [o.name for o in verdict.outcomes] == ["builtin-default"]
