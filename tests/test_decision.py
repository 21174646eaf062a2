"""The pure trust decision: every policy rule, the tiers and Audit vs Enforce, from plain evidence."""

from __future__ import annotations

import pathlib
from collections.abc import Mapping
from typing import Any

import pytest
import yaml

from openmodel_operator.api.vocabulary import TrustTier
from openmodel_operator.evidence.manifest import manifest_digest
from openmodel_operator.evidence.records import Reason, ResolvedSource
from openmodel_operator.trust.decision import Evidence, decide
from openmodel_operator.trust.policies import (
    BUILTIN_DEFAULT,
    Policy,
    PolicyError,
    governing_policies,
    load_policy_file,
    policy_from_manifest,
)
from signing_fixtures import (
    TINY_MODEL,
    KeyPair,
    file_entries,
    flip_last_byte,
    new_cert_chain,
    new_key,
    sign_with_certificate,
    sign_with_key,
    write_model,
)

CARD = {"license": "apache-2.0", "datasets": ["example/corpus"]}


def card_readme(card: Mapping[str, Any]) -> bytes:
    """README.md holding ``card`` as front matter (the plain TINY_MODEL README when empty)."""
    body = TINY_MODEL["README.md"]
    return b"---\n" + yaml.safe_dump(dict(card)).encode() + b"---\n" + body if card else body


# the example model with CARD in its README: signed below, so the card is covered evidence
MODEL: Mapping[str, bytes] = {**TINY_MODEL, "README.md": card_readme(CARD)}


def policy(name: str = "p", mode: str = "Enforce", **spec: Any) -> Policy:
    return policy_from_manifest(
        {
            "apiVersion": "openmodel.io/v1alpha1",
            "kind": "ModelTrustPolicy",
            "metadata": {"name": name},
            "spec": {"mode": mode, **spec},
        }
    )


def key_policy(key: KeyPair, name: str = "p", mode: str = "Enforce", **spec: Any) -> Policy:
    sig = {"required": True, "keys": [{"name": "release", "publicKey": key.public_pem.decode()}]}
    sig.update(spec.pop("signature", {}))
    return policy(name, mode, signature=sig, **spec)


def evidence(
    files: Mapping[str, bytes] = MODEL,
    bundle: bytes | None = None,
    card: Mapping[str, Any] = CARD,
    pinned: str | None = None,
    uri: str = "hf://example/tiny",
    declaration: Mapping[str, Any] | None = None,
) -> Evidence:
    """The resolved model with ``card`` as its README front matter (and ``declaration`` as openness.yaml)."""
    files = {**files, "README.md": card_readme(card)}
    if declaration is not None:
        files["openness.yaml"] = yaml.safe_dump(dict(declaration)).encode()
    entries = tuple(file_entries(files))
    source = ResolvedSource(
        uri=uri,
        kind="hf",
        files=entries,
        revision="a" * 40,
        requested_revision="main",
        readme=files["README.md"],
        openness_bytes=files.get("openness.yaml"),
    )
    return Evidence(source, bundle, "model.sig", pinned)


@pytest.fixture
def key() -> KeyPair:
    return new_key()


@pytest.fixture
def signed(tmp_path: pathlib.Path, key: KeyPair) -> bytes:
    return sign_with_key(write_model(tmp_path / "model", MODEL), key, tmp_path / "work")


def test_signed_model_passes_with_tier_signed(key: KeyPair, signed: bytes) -> None:
    verdict = decide([key_policy(key)], evidence(bundle=signed))
    assert verdict.trusted and verdict.tier is TrustTier.SIGNED
    assert verdict.signature is not None and verdict.signature.identity == "release"
    assert verdict.signature.key_fingerprint == key.fingerprint
    assert verdict.manifest_digest == manifest_digest(file_entries(MODEL))
    assert [(o.name, o.passed) for o in verdict.outcomes] == [("p", True)]


def test_certificate_signed_model_passes(tmp_path: pathlib.Path) -> None:
    chain = new_cert_chain()
    bundle = sign_with_certificate(write_model(tmp_path / "m", MODEL), chain, tmp_path / "w")
    pol = policy(
        signature={"required": True, "certificates": [{"name": "corp", "caBundle": chain.ca_bundle_pem.decode()}]}
    )
    verdict = decide([pol], evidence(bundle=bundle))
    assert verdict.trusted and verdict.tier is TrustTier.SIGNED
    assert verdict.signature is not None and verdict.signature.method == "certificate"


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"model.safetensors": flip_last_byte(TINY_MODEL["model.safetensors"])}, "DigestMismatch"),
        ({"extra.safetensors": b"payload"}, "Unsigned"),
        ({"loader.py": b"import os"}, "Unsigned"),
    ],
)
def test_content_that_differs_from_the_signed_manifest_is_rejected(
    key: KeyPair, signed: bytes, change: dict[str, bytes], problem: str
) -> None:
    verdict = decide([key_policy(key)], evidence(files={**MODEL, **change}, bundle=signed))
    assert not verdict.trusted
    assert verdict.reasons == (Reason.MANIFEST_MISMATCH,)
    assert problem in verdict.violations[0].message


def test_missing_file_is_rejected(key: KeyPair, signed: bytes) -> None:
    files = {k: v for k, v in MODEL.items() if k != "config.json"}
    verdict = decide([key_policy(key)], evidence(files=files, bundle=signed))
    assert verdict.reasons == (Reason.MANIFEST_MISMATCH,)
    assert "config.json (Missing)" in verdict.violations[0].message


def test_replayed_bundle_for_other_bytes_is_rejected(tmp_path: pathlib.Path, key: KeyPair) -> None:
    old = {**MODEL, "model.safetensors": b"old weights"}
    replay = sign_with_key(write_model(tmp_path / "old", old), key, tmp_path / "w")
    verdict = decide([key_policy(key)], evidence(bundle=replay))
    assert not verdict.trusted and verdict.tier is TrustTier.UNVERIFIED
    assert verdict.reasons == (Reason.MANIFEST_MISMATCH,)


def test_wrong_key_is_an_untrusted_signer(signed: bytes) -> None:
    verdict = decide([key_policy(new_key())], evidence(bundle=signed))
    assert verdict.reasons == (Reason.UNTRUSTED_SIGNER,)
    assert verdict.tier is TrustTier.UNVERIFIED


def test_untrusted_ca_is_an_untrusted_signer(tmp_path: pathlib.Path) -> None:
    bundle = sign_with_certificate(write_model(tmp_path / "m", MODEL), new_cert_chain(), tmp_path / "w")
    other = new_cert_chain()
    pol = policy(
        signature={"required": True, "certificates": [{"name": "corp", "caBundle": other.ca_bundle_pem.decode()}]}
    )
    assert decide([pol], evidence(bundle=bundle)).reasons == (Reason.UNTRUSTED_SIGNER,)


def test_unsigned_model_under_required_signature(key: KeyPair) -> None:
    verdict = decide([key_policy(key)], evidence())
    assert verdict.reasons == (Reason.SIGNATURE_MISSING,)
    assert "spec.trust.signature.configMapRef" in verdict.violations[0].message


def test_builtin_default_rejects_unsigned_and_says_why() -> None:
    verdict = decide(governing_policies([], {}), evidence())
    assert [o.name for o in verdict.outcomes] == ["builtin-default"]
    assert verdict.reasons == (Reason.SIGNATURE_MISSING,)
    assert "no ModelTrustPolicy selects this namespace" in verdict.violations[0].message


def test_pinned_tier_when_policy_allows_it() -> None:
    pol = policy(signature={"required": False, "allowPinnedDigest": True})
    digest = manifest_digest(file_entries(MODEL))
    verdict = decide([pol], evidence(pinned=digest))
    assert verdict.trusted and verdict.tier is TrustTier.PINNED
    unpinned = decide([pol], evidence())
    assert not unpinned.trusted and unpinned.reasons == (Reason.SIGNATURE_MISSING,)


def test_wrong_pin_always_rejects_even_under_audit() -> None:
    pol = policy(mode="Audit", signature={"required": False})
    verdict = decide([pol], evidence(pinned="sha256:" + "0" * 64))
    # the card of content nothing vouches for is not evidence: the Audit policy records LicenseUnknown
    assert not verdict.trusted and verdict.reasons == (Reason.DIGEST_PIN_MISMATCH, Reason.LICENSE_UNKNOWN)
    assert [v.enforced for v in verdict.violations] == [True, False]
    assert verdict.violations[0].policy == "spec.source.digest"


def test_unverified_admitted_when_nothing_required() -> None:
    # Unverified content has no covered card: its license is unknown, which an Enforce license rule refuses
    # (issue 8, property 3); a policy that records only (Audit) admits it.
    enforced = decide([policy(signature={"required": False})], evidence())
    assert not enforced.trusted and enforced.tier is TrustTier.UNVERIFIED
    assert enforced.reasons == (Reason.LICENSE_UNKNOWN,)
    assert "README.md is present but not covered" in enforced.violations[0].message
    verdict = decide([policy(mode="Audit", signature={"required": False})], evidence())
    assert verdict.trusted and verdict.tier is TrustTier.UNVERIFIED
    assert [(v.reason, v.enforced) for v in verdict.violations] == [(Reason.LICENSE_UNKNOWN, False)]


def test_audit_records_but_admits(key: KeyPair) -> None:
    verdict = decide(
        [key_policy(key, mode="Audit", signature={"required": False})], evidence(card={"license": "llama3"})
    )
    assert verdict.trusted
    assert verdict.tier is TrustTier.UNVERIFIED
    # an unsigned card is not evidence: the license is unknown, not llama3 (issue 8, property 3)
    assert {v.reason for v in verdict.violations} == {Reason.LICENSE_UNKNOWN}
    assert verdict.openness.license is None
    signed_audit = decide([key_policy(key, mode="Audit")], evidence(card={"license": "llama3"}))
    assert signed_audit.trusted and {v.reason for v in signed_audit.violations} == {Reason.SIGNATURE_MISSING}
    assert not any(v.enforced for v in verdict.violations)
    assert verdict.outcomes[0].passed is False


def test_every_enforce_policy_must_pass(key: KeyPair, signed: bytes) -> None:
    other = new_key()
    verdict = decide([key_policy(key, "a"), key_policy(other, "b")], evidence(bundle=signed))
    assert not verdict.trusted
    assert [(o.name, o.passed) for o in verdict.outcomes] == [("a", True), ("b", False)]
    assert verdict.tier is TrustTier.SIGNED  # it is signed, by a signer only one policy trusts


def test_license_rules(tmp_path: pathlib.Path, key: KeyPair, signed: bytes) -> None:
    cardless = sign_with_key(write_model(tmp_path / "cardless", TINY_MODEL), key, tmp_path / "w")
    assert decide([key_policy(key)], evidence(bundle=cardless, card={})).reasons == (Reason.LICENSE_UNKNOWN,)
    denied = key_policy(key, licenses={"deny": ["Apache-2.0"]})
    assert decide([denied], evidence(bundle=signed)).reasons == (Reason.LICENSE_DENIED,)
    allowed = key_policy(key, licenses={"allowOSIApproved": False, "allow": ["Apache-2.0"]})
    assert decide([allowed], evidence(bundle=signed)).trusted


def test_openness_rules(key: KeyPair, signed: bytes) -> None:
    verdict = decide(
        [key_policy(key, openness={"minimumClass": "ClassI", "requireOSAID": True})], evidence(bundle=signed)
    )
    assert set(verdict.reasons) == {Reason.OPENNESS_BELOW_MINIMUM, Reason.OSAID_COMPONENTS_MISSING}
    osaid = next(v for v in verdict.violations if v.reason is Reason.OSAID_COMPONENTS_MISSING)
    assert "trainingCode" in osaid.message and "dataProcessingCode" in osaid.message


def test_source_rules(key: KeyPair, signed: bytes) -> None:
    pol = key_policy(key, sources={"allow": ["hf://ibm-granite/*"]})
    verdict = decide([pol], evidence(bundle=signed))
    assert verdict.reasons == (Reason.SOURCE_NOT_ALLOWED,)
    assert "hf://ibm-granite/*" in verdict.violations[0].message
    deny = key_policy(key, sources={"allow": ["*"], "deny": ["hf://example/*"]})
    assert decide([deny], evidence(bundle=signed)).reasons == (Reason.SOURCE_NOT_ALLOWED,)


def test_namespace_selection() -> None:
    strict = policy("strict", namespaceSelector={"matchLabels": {"trust": "strict"}}, signature={"required": False})
    labs = policy(
        "labs",
        namespaceSelector={"matchExpressions": [{"key": "team", "operator": "In", "values": ["ml", "research"]}]},
        signature={"required": False},
    )
    assert [p.name for p in governing_policies([strict, labs], {"trust": "strict", "team": "ml"})] == ["labs", "strict"]
    assert [p.name for p in governing_policies([strict, labs], {"team": "ops"})] == [BUILTIN_DEFAULT.name]


def test_policy_files_are_validated() -> None:
    with pytest.raises(PolicyError, match=r"spec\.mode"):
        load_policy_file("kind: ModelTrustPolicy\nmetadata: {name: x}\nspec: {mode: Warn}\n", "p.yaml")
    with pytest.raises(PolicyError, match="kind is 'OpenModel'"):
        load_policy_file("kind: OpenModel\nmetadata: {name: x}\n", "p.yaml")
    two = load_policy_file(
        "kind: ModelTrustPolicy\nmetadata: {name: a}\n---\nkind: ModelTrustPolicy\nmetadata: {name: b}\n", "p.yaml"
    )
    assert [p.name for p in two] == ["a", "b"]
