"""Issue 8, properties 1 and 6: each policy is judged with its own anchors, and unusable anchors fail closed.

Attack: a second policy in the same namespace (or a tenant who controls one signer) trusts another key, CA
or Sigstore instance; its anchors must never satisfy the first policy's identities. Attack: a policy whose
PEM or trusted root cannot be used must not quietly trust fewer signers (or none) — it makes every model it
governs fail with ``PolicyInvalid``. Each hostile case sits next to a control that passes.
"""

from __future__ import annotations

import dataclasses
import datetime
import pathlib
from collections.abc import Mapping
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from openmodel_operator.api.vocabulary import TrustTier
from openmodel_operator.evidence.records import FileEntry, Reason, ResolvedSource
from openmodel_operator.trust.decision import Evidence, PolicyOutcome, Verdict, decide
from openmodel_operator.trust.policies import Policy, PolicyError, policy_from_manifest, trust_anchors
from signing_fixtures import (
    TINY_MODEL,
    CertChain,
    FakeSigstore,
    KeyPair,
    file_entries,
    new_cert_chain,
    new_key,
    sign_with_certificate,
    sign_with_key,
    write_model,
)

ISSUER = "https://token.actions.githubusercontent.com"
EMAIL = "release-bot@example.org"
CARD = {"license": "apache-2.0"}
# the signed model card carries the license: only covered bytes are evidence
MODEL = {**TINY_MODEL, "README.md": b"---\nlicense: apache-2.0\n---\n# tiny\n"}


def make_policy(name: str, signature: Mapping[str, Any], mode: str = "Enforce") -> Policy:
    return policy_from_manifest(
        {
            "apiVersion": "openmodel.io/v1alpha1",
            "kind": "ModelTrustPolicy",
            "metadata": {"name": name},
            "spec": {"mode": mode, "signature": dict(signature)},
        }
    )


def key_policy(name: str, key: KeyPair, key_name: str = "release", mode: str = "Enforce") -> Policy:
    return make_policy(name, {"keys": [{"name": key_name, "publicKey": key.public_pem.decode()}]}, mode)


def ca_policy(name: str, chain: CertChain, ca_name: str) -> Policy:
    return make_policy(name, {"certificates": [{"name": ca_name, "caBundle": chain.ca_bundle_pem.decode()}]})


def keyless_policy(name: str, root: bytes | None, with_ref: bool = False) -> Policy:
    signature: dict[str, Any] = {"keyless": [{"issuer": ISSUER, "subject": EMAIL}]}
    if with_ref:
        signature["trustedRoot"] = {"name": f"{name}-root", "namespace": "openmodel-system", "key": "root.json"}
    # what the operator does: the policy's own trustedRoot ConfigMap content is inlined into that policy
    return dataclasses.replace(make_policy(name, signature), trusted_root_json=root)


def model_evidence(bundle: bytes | None, files: Mapping[str, bytes] = MODEL) -> Evidence:
    entries: tuple[FileEntry, ...] = tuple(file_entries(files))
    source = ResolvedSource(
        uri="hf://example/tiny",
        kind="hf",
        files=entries,
        revision="a" * 40,
        card=CARD,
        openness_bytes=files.get("openness.yaml"),
        readme=files.get("README.md"),
    )
    return Evidence(source, bundle, "model.sig", None)


def outcome(verdict: Verdict, name: str) -> PolicyOutcome:
    (found,) = [o for o in verdict.outcomes if o.name == name]
    return found


def reasons(verdict: Verdict, name: str) -> list[Reason]:
    return [v.reason for v in outcome(verdict, name).violations]


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> pathlib.Path:
    return write_model(tmp_path_factory.mktemp("anchors") / "tiny", MODEL)


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> pathlib.Path:
    return tmp_path_factory.mktemp("anchors-work")


# ---------------------------------------------------------------- property 1: keys


@pytest.fixture(scope="module")
def keys() -> tuple[KeyPair, KeyPair]:
    return new_key(), new_key()


def test_another_policys_key_does_not_satisfy_a_policy(
    model: pathlib.Path, work: pathlib.Path, keys: tuple[KeyPair, KeyPair]
) -> None:
    key_a, key_b = keys
    policy_a, policy_b = key_policy("a", key_a, "ka"), key_policy("b", key_b, "kb")
    bundle_b = sign_with_key(model, key_b, work / "kb")

    verdict = decide([policy_a, policy_b], model_evidence(bundle_b))
    assert reasons(verdict, "a") == [Reason.UNTRUSTED_SIGNER]
    assert outcome(verdict, "a").anchor is None
    assert outcome(verdict, "b").passed and outcome(verdict, "b").anchor == "key:kb"
    assert not verdict.trusted  # every Enforce policy must pass

    # control: each policy's own signer passes it, and the anchor is recorded per policy
    bundle_a = sign_with_key(model, key_a, work / "ka")
    verdict = decide([policy_a, policy_b], model_evidence(bundle_a))
    assert outcome(verdict, "a").passed and outcome(verdict, "a").anchor == "key:ka"
    assert reasons(verdict, "b") == [Reason.UNTRUSTED_SIGNER]
    alone = decide([policy_b], model_evidence(bundle_b))
    assert alone.trusted and alone.tier is TrustTier.SIGNED
    assert alone.signature is not None and alone.signature.anchor == "key:kb"


# ---------------------------------------------------------------- property 1: keyless roots


@pytest.fixture(scope="module")
def instances() -> tuple[FakeSigstore, FakeSigstore]:
    """Two Sigstore instances that both issue certificates for the same OIDC identity."""
    return FakeSigstore(), FakeSigstore()


def test_another_policys_trusted_root_does_not_satisfy_a_policy(
    model: pathlib.Path, instances: tuple[FakeSigstore, FakeSigstore]
) -> None:
    first, second = instances
    policy_a = keyless_policy("a", first.trusted_root_json(), with_ref=True)
    policy_b = keyless_policy("b", second.trusted_root_json())
    public_good = keyless_policy("c", None)  # no trustedRoot: the shipped public-good root, never b's
    bundle_second = second.sign_model(model, EMAIL, ISSUER)

    verdict = decide([policy_a, policy_b, public_good], model_evidence(bundle_second))
    assert reasons(verdict, "a") == [Reason.UNTRUSTED_SIGNER]
    assert reasons(verdict, "c") == [Reason.UNTRUSTED_SIGNER]
    anchor_b = outcome(verdict, "b").anchor
    assert outcome(verdict, "b").passed and anchor_b is not None
    assert anchor_b.startswith(f"keyless:{ISSUER} {EMAIL} via trusted root sha256:")

    # control: the first instance's signature passes the policy that trusts that instance's root
    verdict = decide([policy_a, policy_b], model_evidence(first.sign_model(model, EMAIL, ISSUER)))
    anchor_a = outcome(verdict, "a").anchor
    assert outcome(verdict, "a").passed and anchor_a is not None
    assert anchor_a.startswith(f"keyless:{ISSUER} {EMAIL} via trustedRoot openmodel-system/a-root (sha256:")
    assert reasons(verdict, "b") == [Reason.UNTRUSTED_SIGNER]


def test_a_policy_naming_a_trusted_root_that_was_not_inlined_fails_closed() -> None:
    """The CLI cannot read the trustedRoot ConfigMap: the public-good root is not silently used instead."""
    policy = keyless_policy("a", None, with_ref=True)
    with pytest.raises(PolicyError, match=r"spec\.signature\.trustedRoot.*--trusted-root"):
        trust_anchors(policy)
    assert reasons(decide([policy], model_evidence(None)), "a") == [Reason.POLICY_INVALID]


# ---------------------------------------------------------------- property 1: CAs


def test_another_policys_ca_does_not_satisfy_a_policy(model: pathlib.Path, work: pathlib.Path) -> None:
    chain_a, chain_b = new_cert_chain(), new_cert_chain()  # same leaf name, different PKIs
    policy_a, policy_b = ca_policy("a", chain_a, "corp-a"), ca_policy("b", chain_b, "corp-b")
    bundle_b = sign_with_certificate(model, chain_b, work / "ca-b")

    verdict = decide([policy_a, policy_b], model_evidence(bundle_b))
    assert reasons(verdict, "a") == [Reason.UNTRUSTED_SIGNER]
    assert outcome(verdict, "b").passed and outcome(verdict, "b").anchor == "ca:corp-b"

    bundle_a = sign_with_certificate(model, chain_a, work / "ca-a")  # control
    verdict = decide([policy_a, policy_b], model_evidence(bundle_a))
    assert outcome(verdict, "a").passed and outcome(verdict, "a").anchor == "ca:corp-a"
    assert reasons(verdict, "b") == [Reason.UNTRUSTED_SIGNER]


def test_no_anchor_is_recorded_when_the_signature_does_not_cover_the_content(
    model: pathlib.Path, work: pathlib.Path, keys: tuple[KeyPair, KeyPair]
) -> None:
    key_a, _ = keys
    bundle = sign_with_key(model, key_a, work / "cover")
    extra = {**MODEL, "loader.py": b"import os\n"}
    verdict = decide([key_policy("a", key_a, "ka")], model_evidence(bundle, extra))
    assert reasons(verdict, "a") == [Reason.MANIFEST_MISMATCH] and outcome(verdict, "a").anchor is None


# ---------------------------------------------------------------- property 6: unusable anchors fail closed


def _pem(public_key: Any) -> str:
    return str(
        public_key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    )


UNUSABLE_KEYS = {
    "garbage": "-----BEGIN PUBLIC KEY-----\nbm90IGEga2V5\n-----END PUBLIC KEY-----\n",
    "rsa": _pem(rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key()),
    "ed25519": _pem(ed25519.Ed25519PrivateKey.generate().public_key()),
    "p224": _pem(ec.generate_private_key(ec.SECP224R1()).public_key()),
}


@pytest.mark.parametrize("kind", sorted(UNUSABLE_KEYS))
def test_an_unusable_key_makes_the_policy_invalid(
    kind: str, model: pathlib.Path, work: pathlib.Path, keys: tuple[KeyPair, KeyPair]
) -> None:
    key_a, _ = keys
    good = {"name": "good", "publicKey": key_a.public_pem.decode()}
    bad = {"name": f"bad-{kind}", "publicKey": UNUSABLE_KEYS[kind]}
    policy = make_policy("p", {"keys": [good, bad]}, mode="Audit")
    with pytest.raises(PolicyError) as raised:
        trust_anchors(policy)
    message = str(raised.value)
    assert "'p'" in message and f"spec.signature.keys['bad-{kind}'].publicKey" in message and "PEM" in message
    assert "-----BEGIN" not in message and "bm90IGEga2V5" not in message  # no key material repeated

    # the good key alone would verify: the bad one must not be skipped, even under Audit, even unsigned
    bundle = sign_with_key(model, key_a, work / f"invalid-{kind}")
    for evidence in (model_evidence(bundle), model_evidence(None)):
        verdict = decide([policy], evidence)
        (violation,) = verdict.violations
        assert violation.reason is Reason.POLICY_INVALID and violation.enforced and not verdict.trusted
        assert violation.policy == "p" and "spec.signature.keys" in violation.message

    # control: without the bad entry the same policy admits the model
    assert decide([make_policy("p", {"keys": [good]})], model_evidence(bundle)).trusted


def test_an_invalid_policy_is_not_outvoted_by_a_valid_one(
    model: pathlib.Path, work: pathlib.Path, keys: tuple[KeyPair, KeyPair]
) -> None:
    key_a, _ = keys
    bundle = sign_with_key(model, key_a, work / "outvoted")
    broken = make_policy("broken", {"required": False, "keys": [{"name": "x", "publicKey": UNUSABLE_KEYS["rsa"]}]})
    verdict = decide([key_policy("good", key_a), broken], model_evidence(bundle))
    assert outcome(verdict, "good").passed and reasons(verdict, "broken") == [Reason.POLICY_INVALID]
    assert not verdict.trusted


def test_an_unusable_ca_bundle_makes_the_policy_invalid(model: pathlib.Path, work: pathlib.Path) -> None:
    chain = new_cert_chain()
    leaf_pem = chain.leaf.public_bytes(serialization.Encoding.PEM).decode()
    bundle = sign_with_certificate(model, chain, work / "ca-invalid")
    cases = {
        "garbage": "-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydA==\n-----END CERTIFICATE-----\n",
        "leaf-in-bundle": chain.ca_bundle_pem.decode() + leaf_pem,  # a leaf would be a trust anchor
        "leaf-only": leaf_pem,
    }
    for case, pem in cases.items():
        policy = make_policy("p", {"certificates": [{"name": case, "caBundle": pem}]})
        with pytest.raises(PolicyError, match=rf"spec\.signature\.certificates\['{case}'\]\.caBundle"):
            trust_anchors(policy)
        assert reasons(decide([policy], model_evidence(bundle)), "p") == [Reason.POLICY_INVALID]
    assert decide([ca_policy("p", chain, "corp")], model_evidence(bundle)).trusted  # control


def test_an_invalid_trusted_root_makes_the_policy_invalid(
    model: pathlib.Path, instances: tuple[FakeSigstore, FakeSigstore]
) -> None:
    first, _ = instances
    bundle = first.sign_model(model, EMAIL, ISSUER)
    for root in (b"{", b"[]", b'{"mediaType": "application/vnd.dev.sigstore.trustedroot+json;version=0.1"}'):
        policy = keyless_policy("p", root)
        with pytest.raises(PolicyError, match=r"spec\.signature\.trustedRoot is unusable"):
            trust_anchors(policy)
        assert reasons(decide([policy], model_evidence(bundle)), "p") == [Reason.POLICY_INVALID]
    assert decide([keyless_policy("p", first.trusted_root_json())], model_evidence(bundle)).trusted  # control


# ---------------------------------------------------------------- the operator and the CLI wire roots per policy


async def test_the_operator_inlines_each_policys_own_trusted_root(tmp_path: pathlib.Path) -> None:
    from openmodel_operator.controller.reconciler import Reconciler
    from openmodel_operator.controller.settings import OperatorSettings

    class Kube:
        async def read_configmap_key(self, namespace: str, name: str, key: str) -> bytes:
            return f"{namespace}/{name}/{key}".encode()

    settings_root = tmp_path / "root.json"
    settings_root.write_bytes(b"operator-wide")
    reconciler = Reconciler(Kube(), OperatorSettings(trusted_root_path=str(settings_root)), lambda *_: None)  # type: ignore[arg-type]
    own = keyless_policy("a", None, with_ref=True)
    other = keyless_policy("b", None)
    inlined = [r.policy for r in await reconciler._inputs.resolve([own, other])]
    assert [p.trusted_root_json for p in inlined] == [b"openmodel-system/a-root/root.json", b"operator-wide"]


def test_the_cli_trusted_root_is_given_to_the_loaded_policies(
    tmp_path: pathlib.Path, instances: tuple[FakeSigstore, FakeSigstore], capsys: pytest.CaptureFixture[str]
) -> None:
    import yaml

    from openmodel_operator.cli import main

    first, _ = instances
    model = write_model(tmp_path / "model", {**TINY_MODEL, "README.md": b"---\nlicense: apache-2.0\n---\n# tiny\n"})
    (model / "model.sig").write_bytes(first.sign_model(model, EMAIL, ISSUER))
    doc = {
        "apiVersion": "openmodel.io/v1alpha1",
        "kind": "ModelTrustPolicy",
        "metadata": {"name": "keyless"},
        "spec": {"signature": {"keyless": [{"issuer": ISSUER, "subject": EMAIL}]}},
    }
    policy_file = tmp_path / "policy.yaml"
    policy_file.write_text(yaml.safe_dump(doc))
    root_file = tmp_path / "root.json"
    root_file.write_bytes(first.trusted_root_json())
    # without the root, the shipped public-good root is used, which did not issue this certificate
    assert main(["verify", str(model), "--policy", str(policy_file)]) == 1
    assert "UntrustedSigner" in capsys.readouterr().out
    assert main(["verify", str(model), "--policy", str(policy_file), "--trusted-root", str(root_file)]) == 0
    assert "Tier       Signed" in capsys.readouterr().out


def test_a_long_signer_identity_keeps_status_within_its_schema(work: pathlib.Path) -> None:
    """A keyless subject and issuer are signer-chosen text: the recorded anchor is clipped to the CRD's limit,
    so a real apiserver never refuses the status write (which would freeze the model)."""
    from openmodel_operator.api.openmodel import Provenance
    from openmodel_operator.planning.trust_result import MAX_ANCHOR_CHARS, from_examination
    from openmodel_operator.sources.examine import examine
    from openmodel_operator.trust.examination import ModelRequest

    key_a = new_key()
    model_dir = write_model(work / "long-anchor", MODEL)
    (model_dir / "model.sig").write_bytes(sign_with_key(model_dir, key_a, work / "long-anchor-sig"))
    exam = examine(ModelRequest(uri=str(model_dir)), [key_policy("a", key_a)])
    assert exam.verdict.trusted  # control: the ordinary anchor is recorded as is
    long = dataclasses.replace(exam.verdict.outcomes[0], anchor="keyless:" + "x" * 3000)
    exam = dataclasses.replace(exam, verdict=dataclasses.replace(exam.verdict, outcomes=(long,)))
    typed = from_examination(exam, datetime.datetime(2026, 12, 1, tzinfo=datetime.UTC)).provenance
    assert typed is not None
    provenance = typed.to_wire()  # what the status patch carries
    (record,) = provenance["policies"]
    assert len(record["anchor"]) == MAX_ANCHOR_CHARS
    Provenance.model_validate(provenance)  # what the CRD schema says, max lengths included
