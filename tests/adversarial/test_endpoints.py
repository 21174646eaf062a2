"""Property 4 (policy side): a tenant-chosen endpoint is refused unless a governing policy allows its origin.

The tenant writes spec.source.endpoint; a mirror the cluster admin did not allow would decide what "the
repository" contains. Origins are compared after strict normalisation; anything that is not a plain origin
is refused outright. Source globs match case-insensitively, so a case change neither escapes a deny nor
misses an allow.
"""

from __future__ import annotations

import time

import pytest
from policy_fixtures import manifest, model_evidence, open_policy
from pydantic import ValidationError

from openmodel_operator.api.trustpolicy import ModelTrustPolicySpec
from openmodel_operator.evidence.records import Reason
from openmodel_operator.trust.decision import (
    DEFAULT_ENDPOINT,
    decide,
    endpoint_violations,
    glob_match,
    normalize_origin,
    source_allowed,
)
from openmodel_operator.trust.policies import BUILTIN_DEFAULT, governing_policies, invalid_policy

LOCAL = "http://127.0.0.1:8765"


def test_local_endpoint_under_builtin_default_is_refused() -> None:
    policies = governing_policies([], {})
    assert policies == [BUILTIN_DEFAULT]
    [violation] = endpoint_violations(policies, LOCAL)
    assert violation.reason is Reason.ENDPOINT_NOT_ALLOWED and violation.enforced
    assert "'http://127.0.0.1:8765'" in violation.message and "spec.sources.endpoints.allow" in violation.message
    assert "built-in default" in violation.message
    verdict = decide(policies, model_evidence(endpoint=LOCAL))
    assert not verdict.trusted and Reason.ENDPOINT_NOT_ALLOWED in verdict.reasons


def test_policy_allowing_the_origin_admits_it() -> None:
    allow = open_policy(sources={"endpoints": {"allow": [LOCAL]}})
    assert endpoint_violations([allow], LOCAL) == []
    assert endpoint_violations([allow], "HTTP://127.0.0.1:8765/") == []  # same origin, other spelling
    verdict = decide([allow], model_evidence(endpoint=LOCAL))
    assert verdict.trusted, verdict.violations
    # control for the control: the same policy without the allow entry refuses it
    assert Reason.ENDPOINT_NOT_ALLOWED in decide([open_policy()], model_evidence(endpoint=LOCAL)).reasons


def test_one_policy_allows_another_denies_refused() -> None:
    allow = open_policy("a-allows", sources={"endpoints": {"allow": [LOCAL]}})
    deny = open_policy("b-denies", sources={"endpoints": {"deny": [LOCAL]}})
    verdict = decide([allow, deny], model_evidence(endpoint=LOCAL))
    assert not verdict.trusted
    assert [(v.policy, v.reason) for v in verdict.violations] == [("b-denies", Reason.ENDPOINT_NOT_ALLOWED)]
    outcomes = {o.name: o.passed for o in verdict.outcomes}
    assert outcomes == {"a-allows": True, "b-denies": False}


def test_allowed_in_one_policy_is_enough_when_none_denies() -> None:
    allow = open_policy("a", sources={"endpoints": {"allow": [LOCAL]}})
    silent = open_policy("b")
    assert decide([allow, silent], model_evidence(endpoint=LOCAL)).trusted


def test_public_hub_is_allowed_unless_denied() -> None:
    for spelling in (None, "https://huggingface.co", "https://HuggingFace.CO/", "https://huggingface.co:443"):
        assert endpoint_violations([BUILTIN_DEFAULT], spelling) == [], spelling
        assert decide([open_policy()], model_evidence(endpoint=spelling)).trusted
    no_hub = open_policy(sources={"endpoints": {"deny": [DEFAULT_ENDPOINT]}})
    assert Reason.ENDPOINT_NOT_ALLOWED in decide([no_hub], model_evidence()).reasons
    # a pvc:// source has no endpoint: denying the Hub does not touch it
    assert decide([no_hub], model_evidence(uri="pvc://weights/tiny")).trusted


@pytest.mark.parametrize(
    "endpoint",
    [
        "https://huggingface.co@evil.example",  # userinfo: the host is evil.example
        "https://huggingface.co.evil.example",
        "https://huggingface.co/../evil",
        "https://huggingface.co/api",  # a path: its own origin, never the public Hub
        "https://huggingface.co?x=1",
        "https://huggingface.co#frag",
        "https://huggingface.co.",  # trailing dot
        "http://huggingface.co",  # another scheme is another origin
        "https://huggingface.co:8443",
        "https://huggingface.co:0443",
        "https://huggingface.co:99999",
        "https://hugging%66ace.co",
        "https://huggingface.co\n",
        "https://huggingface.co\u2028",
        "https://hu\u0261gingface.co",  # a look-alike letter
        "ftp://huggingface.co",
        "huggingface.co",
        "",
        "https://" + "a" * 5000 + ".example",
    ],
)
def test_anything_but_the_plain_public_origin_needs_an_allow(endpoint: str) -> None:
    violations = endpoint_violations([BUILTIN_DEFAULT], endpoint)
    assert [v.reason for v in violations] == [Reason.ENDPOINT_NOT_ALLOWED]
    assert len(violations[0].message) < 800  # the tenant's value is clipped and escaped


@pytest.mark.parametrize(
    "endpoint",
    [
        "https://mirror.example/hf",
        "https://user@mirror.example",
        "https://mirror.example?x",
        "https://mirror.example:08443",
    ],
)
def test_non_origin_endpoints_are_never_allowed(endpoint: str) -> None:
    """An allow entry is an origin; a URL with more than an origin fails closed instead of matching a prefix."""
    allow = open_policy(sources={"endpoints": {"allow": ["https://mirror.example", "https://mirror.example:8443"]}})
    assert normalize_origin(endpoint) is None
    assert [v.reason for v in endpoint_violations([allow], endpoint)] == [Reason.ENDPOINT_NOT_ALLOWED]
    assert endpoint_violations([allow], "https://MIRROR.example:443/") == []  # control


def test_normalize_origin() -> None:
    assert normalize_origin("HTTPS://Mirror.Example:443/") == "https://mirror.example"
    assert normalize_origin("http://mirror.example:80") == "http://mirror.example"
    assert normalize_origin("http://[::1]:8080") == "http://[::1]:8080"
    assert normalize_origin("http://10.0.0.1:8443") == "http://10.0.0.1:8443"
    assert normalize_origin("https://mirror.example//") is None


def test_audit_policy_records_an_endpoint_it_does_not_allow() -> None:
    audit = open_policy(mode="Audit")
    verdict = decide([audit], model_evidence(endpoint=LOCAL))
    assert verdict.trusted
    assert [(v.reason, v.enforced) for v in verdict.violations] == [(Reason.ENDPOINT_NOT_ALLOWED, False)]


def test_unusable_policy_fails_the_endpoint_check_closed() -> None:
    """The operator checks the endpoint before contacting it: an invalid policy must not open it."""
    broken = invalid_policy(manifest("broken", mode="Audit"), "spec.mode: bad")
    [violation] = endpoint_violations([broken], LOCAL)
    assert violation.enforced
    assert endpoint_violations([], LOCAL) != []  # no policies: the built-in default, never "allowed"


@pytest.mark.parametrize(
    "entry",
    [
        "https://Mirror.example",
        "https://mirror.example/",
        "https://mirror.example/hf",
        "https://user@mirror.example",
        "https://mirror.example:0",
        "https://mirror.example:65536",
        "ftp://mirror.example",
        "https://mirror.example\n",
        "https://mirr\u00f6r.example",
        "https://*.example",
    ],
)
def test_policy_endpoint_entries_must_be_origins(entry: str) -> None:
    with pytest.raises(ValidationError):
        ModelTrustPolicySpec.model_validate({"sources": {"endpoints": {"allow": [entry]}}})
    ModelTrustPolicySpec.model_validate({"sources": {"endpoints": {"allow": ["https://mirror.example:8443"]}}})


# ---------------------------------------------------------------- source globs


def test_source_globs_match_case_insensitively() -> None:
    allow = open_policy(sources={"allow": ["hf://ibm-granite/*"]})
    assert source_allowed(allow, "hf://IBM-Granite/X") is None
    assert decide([allow], model_evidence(uri="hf://IBM-Granite/X")).trusted
    deny = open_policy(sources={"allow": ["*"], "deny": ["hf://evil/*"]})
    blocked = source_allowed(deny, "hf://EVIL/m")
    assert blocked is not None and blocked.reason is Reason.SOURCE_NOT_ALLOWED
    assert source_allowed(deny, "hf://good/m") is None  # control
    assert source_allowed(allow, "hf://ibm-granite-evil/x") is not None


def test_glob_brackets_are_refused_not_read_as_classes() -> None:
    """fnmatch would read hf://[a-z]*/x as a class; the schema refuses [ and ] so a glob means what it says."""
    for glob in ("hf://[evil]/*", "hf://org/]x"):
        with pytest.raises(ValidationError):
            ModelTrustPolicySpec.model_validate({"sources": {"deny": [glob]}})
    assert glob_match("hf://org/m?del", "hf://org/model")
    assert not glob_match("hf://org/m?del", "hf://org/mdel")
    assert glob_match("*", "hf://x/y") and glob_match("hf://*/*", "hf://a/b")
    assert glob_match("hf://a*b*c", "hf://aXbYc") and not glob_match("hf://a*b*c", "hf://aXbY")


def test_glob_matching_time_is_bounded() -> None:
    pattern = "hf://" + "*a" * 250 + "b"
    text = "hf://" + "a" * 505
    start = time.perf_counter()
    assert not glob_match(pattern, text)
    assert time.perf_counter() - start < 2.0
