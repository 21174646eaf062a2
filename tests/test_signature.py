"""Signature bundles verified from their bytes alone, against keys, CAs and keyless identities."""

from __future__ import annotations

import base64
import copy
import hashlib
import json
import pathlib
from collections.abc import Mapping
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from openmodel_operator.evidence.manifest import compare_manifest, subject_digest_of
from openmodel_operator.evidence.manifest import subject_digest as files_subject_digest
from openmodel_operator.evidence.records import FileProblem, Reason, SignatureEvidence, SignatureFailure
from openmodel_operator.signing.signature import (
    KeylessIdentity,
    TrustAnchors,
    TrustedCA,
    TrustedKey,
    verify_bundle,
)
from openmodel_operator.signing.signer import sign_directory
from signing_fixtures import (
    TINY_MODEL,
    CertChain,
    FakeSigstore,
    KeyPair,
    decode_payload,
    file_entries,
    ms_config,
    new_cert_chain,
    new_key,
    replace_payload,
    sign_statement_with_key,
    sign_with_certificate,
    sign_with_key,
    write_model,
)

ISSUER = "https://token.actions.githubusercontent.com"
EMAIL = "release-bot@example.org"


@pytest.fixture(scope="module")
def key() -> KeyPair:
    return new_key()


@pytest.fixture(scope="module")
def chain() -> CertChain:
    return new_cert_chain()


@pytest.fixture(scope="module")
def sigstore() -> FakeSigstore:
    return FakeSigstore()


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> pathlib.Path:
    return tmp_path_factory.mktemp("signature")


@pytest.fixture(scope="module")
def model(work: pathlib.Path) -> pathlib.Path:
    return write_model(work / "tiny", TINY_MODEL)


@pytest.fixture(scope="module")
def key_bundle(model: pathlib.Path, key: KeyPair, work: pathlib.Path) -> bytes:
    return sign_with_key(model, key, work / "key")


@pytest.fixture(scope="module")
def cert_bundle(model: pathlib.Path, chain: CertChain, work: pathlib.Path) -> bytes:
    return sign_with_certificate(model, chain, work / "cert")


@pytest.fixture(scope="module")
def keyless_bundle(model: pathlib.Path, sigstore: FakeSigstore) -> bytes:
    return sigstore.sign_model(model, EMAIL, ISSUER)


def key_anchors(*keys: KeyPair) -> TrustAnchors:
    return TrustAnchors(keys=[TrustedKey(f"key-{i}", k.public_pem.decode()) for i, k in enumerate(keys)])


def keyless_anchors(sigstore: FakeSigstore, *identities: tuple[str, str]) -> TrustAnchors:
    return TrustAnchors(
        keyless=[KeylessIdentity(issuer, subject) for issuer, subject in identities],
        trusted_root_json=sigstore.trusted_root_json(),
    )


def evidence(result: SignatureEvidence | SignatureFailure) -> SignatureEvidence:
    assert isinstance(result, SignatureEvidence), result
    return result


def failure(result: SignatureEvidence | SignatureFailure, reason: Reason) -> SignatureFailure:
    assert isinstance(result, SignatureFailure), result
    assert result.reason == reason, result.message
    assert "-----BEGIN" not in result.message
    return result


def expected_resources(files: Mapping[str, bytes]) -> dict[str, str]:
    return {name: hashlib.sha256(data).hexdigest() for name, data in files.items()}


def subject_digest(bundle: bytes) -> str:
    subjects: Any = decode_payload(bundle)["subject"]
    return f"sha256:{subjects[0]['digest']['sha256']}"


def tampered(bundle: bytes, path: str, new_digest: str = "0" * 64) -> bytes:
    """Change one file digest in the signed payload and keep the subject consistent with it."""
    statement: Any = copy.deepcopy(decode_payload(bundle))
    resources = {r["name"]: r["digest"] for r in statement["predicate"]["resources"]}
    for resource in statement["predicate"]["resources"]:
        if resource["name"] == path:
            resource["digest"] = new_digest
    resources[path] = new_digest
    statement["subject"][0]["digest"]["sha256"] = subject_digest_of(resources).removeprefix("sha256:")
    return replace_payload(bundle, statement)


# ---------------------------------------------------------------- happy paths


def test_key_mode(key_bundle: bytes, key: KeyPair, model: pathlib.Path, work: pathlib.Path) -> None:
    other = new_key()
    result = evidence(verify_bundle(key_bundle, key_anchors(other, key)))
    assert result.method == "key"
    assert result.identity == "key-1"
    assert result.issuer is None
    assert result.key_fingerprint == key.fingerprint
    assert dict(result.resources) == expected_resources(TINY_MODEL)
    assert result.manifest_digest == files_subject_digest(file_entries(TINY_MODEL))
    assert result.manifest_digest == subject_digest(key_bundle)
    assert result.bundle_digest == "sha256:" + hashlib.sha256(key_bundle).hexdigest()
    assert compare_manifest(result.resources, file_entries(TINY_MODEL), "model.sig", result.ignore_paths) == []
    # model-signing's own verifier accepts what trust.signing wrote
    (work / "pub.pem").write_bytes(key.public_pem)
    ms_config("verifying").use_elliptic_key_verifier(public_key=work / "pub.pem").verify(
        model, work / "key" / "model.sig"
    )


def test_certificate_mode(cert_bundle: bytes, chain: CertChain, model: pathlib.Path, work: pathlib.Path) -> None:
    unrelated = TrustedCA("other-ca", new_cert_chain().ca_bundle_pem)
    result = evidence(verify_bundle(cert_bundle, TrustAnchors(cas=[unrelated, TrustedCA("corp", chain.ca_bundle_pem)])))
    assert result.method == "certificate"
    assert result.identity == EMAIL
    assert result.issuer == "Test Intermediate CA"
    assert result.key_fingerprint == chain.leaf_key.fingerprint
    assert dict(result.resources) == expected_resources(TINY_MODEL)
    assert result.manifest_digest == files_subject_digest(file_entries(TINY_MODEL)) == subject_digest(cert_bundle)
    # the bundle carries the intermediate, so the root alone is enough as anchor
    assert isinstance(
        verify_bundle(cert_bundle, TrustAnchors(cas=[TrustedCA("root", chain.root_pem)])), SignatureEvidence
    )
    (work / "root.pem").write_bytes(chain.root_pem)
    ms_config("verifying").use_certificate_verifier(certificate_chain=[work / "root.pem"]).verify(
        model, work / "cert" / "model.sig"
    )


def test_keyless_mode(keyless_bundle: bytes, sigstore: FakeSigstore, model: pathlib.Path, work: pathlib.Path) -> None:
    anchors = keyless_anchors(sigstore, (ISSUER, "someone-else@example.org"), (ISSUER, EMAIL))
    result = evidence(verify_bundle(keyless_bundle, anchors))
    assert result.method == "keyless"
    assert result.identity == EMAIL
    assert result.issuer == ISSUER
    assert result.key_fingerprint is not None and result.key_fingerprint.startswith("SHA256:")
    assert dict(result.resources) == expected_resources(TINY_MODEL)
    assert result.manifest_digest == files_subject_digest(file_entries(TINY_MODEL)) == subject_digest(keyless_bundle)
    # model-signing's own keyless verifier accepts the fake instance's bundle as well
    (work / "trust.json").write_bytes(sigstore.client_trust_config_json())
    (work / "keyless.sig").write_bytes(keyless_bundle)
    ms_config("verifying").use_sigstore_verifier(
        identity=EMAIL, oidc_issuer=ISSUER, trust_config=work / "trust.json"
    ).verify(model, work / "keyless.sig")


def test_ignore_paths_are_recorded_and_git_metadata_skipped(key: KeyPair, work: pathlib.Path) -> None:
    files = {**TINY_MODEL, ".gitmodules": b"[submodule]\n", "docs/notes.md": b"notes\n"}
    model = write_model(work / "ignored", files)
    bundle = sign_directory(model, key.write_private(work / "k.pem"), model / "model.sig", ignore_paths=["docs"])
    result = evidence(verify_bundle(bundle, key_anchors(key)))
    assert "docs" in result.ignore_paths
    assert set(result.resources) == {"config.json", "model.safetensors", "tokenizer/tokenizer.json", "README.md"}
    listed = [*file_entries(files), *file_entries({"model.sig": bundle})]
    assert compare_manifest(result.resources, listed, "model.sig", result.ignore_paths) == []


def test_key_bundle_without_hint_tries_every_key(key_bundle: bytes, key: KeyPair) -> None:
    data = json.loads(key_bundle)
    data["verificationMaterial"]["publicKey"] = {}
    bundle = json.dumps(data).encode()
    assert evidence(verify_bundle(bundle, key_anchors(new_key(), key))).identity == "key-1"
    failure(verify_bundle(bundle, key_anchors(new_key())), Reason.UNTRUSTED_SIGNER)


def test_unusable_configured_keys_are_skipped(key_bundle: bytes, key: KeyPair) -> None:
    rsa_pem = (
        rsa.generate_private_key(public_exponent=65537, key_size=2048)
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    anchors = TrustAnchors(
        keys=[TrustedKey("rsa", rsa_pem), TrustedKey("junk", "not a key"), TrustedKey("good", key.public_pem)]
    )
    assert evidence(verify_bundle(key_bundle, anchors)).identity == "good"
    only_bad = TrustAnchors(keys=[TrustedKey("rsa", rsa_pem)])
    assert "rsa" in failure(verify_bundle(key_bundle, only_bad), Reason.UNTRUSTED_SIGNER).message


def test_certificate_validity_is_checked_now(model: pathlib.Path, work: pathlib.Path) -> None:
    """Stricter than model-signing (which checks the chain at the leaf's notBefore): the bundle proves no
    signing time, so an expired leaf is refused; it verified while it was valid."""
    import datetime

    old = new_cert_chain(
        leaf_not_before=datetime.datetime.now(datetime.UTC) - datetime.timedelta(days=60),
        leaf_lifetime=datetime.timedelta(days=1),
    )
    bundle = sign_with_certificate(model, old, work / "expired")
    anchors = TrustAnchors(cas=[TrustedCA("corp", old.ca_bundle_pem)])
    message = failure(verify_bundle(bundle, anchors), Reason.UNTRUSTED_SIGNER).message
    assert "expired" in message and "no trusted timestamp" in message
    then = old.leaf.not_valid_before_utc + datetime.timedelta(hours=1)
    assert evidence(verify_bundle(bundle, anchors, now=then)).method == "certificate"


# ---------------------------------------------------------------- untrusted signers


def test_no_anchors(key_bundle: bytes) -> None:
    message = failure(verify_bundle(key_bundle, TrustAnchors()), Reason.UNTRUSTED_SIGNER).message
    assert "no trusted signers are configured" in message


def test_wrong_key(key_bundle: bytes) -> None:
    message = failure(verify_bundle(key_bundle, key_anchors(new_key())), Reason.UNTRUSTED_SIGNER).message
    assert "spec.signature.keys" in message and "add the signer's public key" in message


def test_key_bundle_with_only_cas_configured(key_bundle: bytes, chain: CertChain) -> None:
    anchors = TrustAnchors(cas=[TrustedCA("corp", chain.ca_bundle_pem)])
    assert (
        "spec.signature.keys is empty" in failure(verify_bundle(key_bundle, anchors), Reason.UNTRUSTED_SIGNER).message
    )


def test_untrusted_ca(cert_bundle: bytes, chain: CertChain) -> None:
    anchors = TrustAnchors(cas=[TrustedCA("other-ca", new_cert_chain().ca_bundle_pem)])
    message = failure(verify_bundle(cert_bundle, anchors), Reason.UNTRUSTED_SIGNER).message
    assert "spec.signature.certificates" in message and chain.leaf_key.fingerprint in message
    # an intermediate alone is no trust anchor (model-signing needs the chain to reach a root)
    intermediate_only = chain.intermediate.public_bytes(serialization.Encoding.PEM)
    failure(verify_bundle(cert_bundle, TrustAnchors(cas=[TrustedCA("i", intermediate_only)])), Reason.UNTRUSTED_SIGNER)
    # certificate bundles are not accepted by key anchors
    failure(verify_bundle(cert_bundle, key_anchors(chain.leaf_key)), Reason.UNTRUSTED_SIGNER)


def test_leaf_without_code_signing(model: pathlib.Path, work: pathlib.Path) -> None:
    server = new_cert_chain(code_signing=False)
    bundle = sign_with_certificate(model, server, work / "server")
    message = failure(
        verify_bundle(bundle, TrustAnchors(cas=[TrustedCA("corp", server.ca_bundle_pem)])), Reason.UNTRUSTED_SIGNER
    ).message
    assert "codeSigning" in message


def test_keyless_identity_mismatch(keyless_bundle: bytes, sigstore: FakeSigstore) -> None:
    wrong_subject = keyless_anchors(sigstore, (ISSUER, "mallory@example.org"))
    message = failure(verify_bundle(keyless_bundle, wrong_subject), Reason.UNTRUSTED_SIGNER).message
    assert EMAIL in message and "spec.signature.keyless" in message
    wrong_issuer = keyless_anchors(sigstore, ("https://accounts.google.com", EMAIL))
    failure(verify_bundle(keyless_bundle, wrong_issuer), Reason.UNTRUSTED_SIGNER)


def test_keyless_against_another_root(keyless_bundle: bytes, sigstore: FakeSigstore) -> None:
    other = keyless_anchors(FakeSigstore(), (ISSUER, EMAIL))
    failure(verify_bundle(keyless_bundle, other), Reason.UNTRUSTED_SIGNER)
    # default: the public-good root shipped in the sigstore package, offline
    shipped = TrustAnchors(keyless=[KeylessIdentity(ISSUER, EMAIL)])
    failure(verify_bundle(keyless_bundle, shipped), Reason.UNTRUSTED_SIGNER)
    broken_root = TrustAnchors(keyless=[KeylessIdentity(ISSUER, EMAIL)], trusted_root_json=b"{")
    assert (
        "spec.signature.trustedRoot"
        in failure(verify_bundle(keyless_bundle, broken_root), Reason.UNTRUSTED_SIGNER).message
    )


def test_keyless_bundle_without_keyless_anchors(keyless_bundle: bytes, key: KeyPair) -> None:
    message = failure(verify_bundle(keyless_bundle, key_anchors(key)), Reason.UNTRUSTED_SIGNER).message
    assert "spec.signature.keyless is empty" in message and EMAIL in message


# ---------------------------------------------------------------- tampering and garbage


def test_tampered_payload(
    key_bundle: bytes, cert_bundle: bytes, keyless_bundle: bytes, key: KeyPair, chain: CertChain, sigstore: FakeSigstore
) -> None:
    for bundle, anchors in (
        (key_bundle, key_anchors(key)),
        (cert_bundle, TrustAnchors(cas=[TrustedCA("corp", chain.ca_bundle_pem)])),
        (keyless_bundle, keyless_anchors(sigstore, (ISSUER, EMAIL))),
    ):
        failure(verify_bundle(tampered(bundle, "model.safetensors"), anchors), Reason.SIGNATURE_INVALID)


def test_corrupted_signature_bytes(key_bundle: bytes, key: KeyPair) -> None:
    data = json.loads(key_bundle)
    sig = bytearray(base64.b64decode(data["dsseEnvelope"]["signatures"][0]["sig"]))
    sig[-1] ^= 0x01
    data["dsseEnvelope"]["signatures"][0]["sig"] = base64.b64encode(bytes(sig)).decode()
    message = failure(verify_bundle(json.dumps(data).encode(), key_anchors(key)), Reason.SIGNATURE_INVALID).message
    assert key.fingerprint in message


@pytest.mark.parametrize(
    "garbage",
    [
        b"\x00\xff garbage",
        b"",
        b"[]",
        b'{"mediaType": "application/vnd.dev.sigstore.bundle.v0.3+json"}',
        b'{"mediaType": "text/plain", "verificationMaterial": {}, "dsseEnvelope": {}}',
    ],
)
def test_garbage(garbage: bytes, key: KeyPair) -> None:
    failure(verify_bundle(garbage, key_anchors(key)), Reason.SIGNATURE_MALFORMED)


def test_structurally_broken_bundles(key_bundle: bytes, key: KeyPair) -> None:
    failure(verify_bundle(key_bundle[: len(key_bundle) // 2], key_anchors(key)), Reason.SIGNATURE_MALFORMED)
    data = json.loads(key_bundle)
    data["dsseEnvelope"]["payload"] = "***"
    failure(verify_bundle(json.dumps(data).encode(), key_anchors(key)), Reason.SIGNATURE_MALFORMED)
    data = json.loads(key_bundle)
    data["dsseEnvelope"]["signatures"] *= 2
    failure(verify_bundle(json.dumps(data).encode(), key_anchors(key)), Reason.SIGNATURE_MALFORMED)
    data = json.loads(key_bundle)
    data["verificationMaterial"] = {"tlogEntries": []}
    failure(verify_bundle(json.dumps(data).encode(), key_anchors(key)), Reason.SIGNATURE_MALFORMED)


def _statement(bundle: bytes) -> Any:
    return copy.deepcopy(decode_payload(bundle))


def test_wrong_predicate_type(key_bundle: bytes, key: KeyPair) -> None:
    statement = _statement(key_bundle)
    statement["predicateType"] = "https://slsa.dev/provenance/v1"
    message = failure(
        verify_bundle(sign_statement_with_key(statement, key), key_anchors(key)), Reason.SIGNATURE_MALFORMED
    ).message
    assert "predicateType" in message


def test_inconsistent_subject_digest(key_bundle: bytes, key: KeyPair) -> None:
    statement = _statement(key_bundle)
    statement["subject"][0]["digest"]["sha256"] = "ab" * 32
    message = failure(
        verify_bundle(sign_statement_with_key(statement, key), key_anchors(key)), Reason.SIGNATURE_MALFORMED
    ).message
    assert "inconsistent" in message


@pytest.mark.parametrize("name", ["../etc/passwd", "/abs", "a//b", "a/./b", ""])
def test_unsafe_resource_names(key_bundle: bytes, key: KeyPair, name: str) -> None:
    statement = _statement(key_bundle)
    statement["predicate"]["resources"][0]["name"] = name
    resources = {r["name"]: r["digest"] for r in statement["predicate"]["resources"]}
    statement["subject"][0]["digest"]["sha256"] = subject_digest_of(resources).removeprefix("sha256:")
    failure(verify_bundle(sign_statement_with_key(statement, key), key_anchors(key)), Reason.SIGNATURE_MALFORMED)


def test_shard_serialization_is_rejected(model: pathlib.Path, key: KeyPair, work: pathlib.Path) -> None:
    out = work / "shards.sig"
    ms_config("signing").use_elliptic_key_signer(private_key=key.write_private(work / "s.key")).set_hashing_config(
        ms_config("hashing").use_shard_serialization(shard_size=16)
    ).sign(model, out)
    message = failure(verify_bundle(out.read_bytes(), key_anchors(key)), Reason.SIGNATURE_MALFORMED).message
    assert "shard" in message


# ---------------------------------------------------------------- with the Hub's file list


def test_manifest_comparison(model: pathlib.Path, key: KeyPair, work: pathlib.Path) -> None:
    files = {**TINY_MODEL, "adapter.safetensors": b"adapter", "notes/changelog.md": b"log"}
    signed_model = write_model(work / "cmp", files)
    bundle = sign_with_key(signed_model, key, work / "cmp-sig", ignore=["adapter.safetensors", "notes"])
    result = evidence(verify_bundle(bundle, key_anchors(key)))
    assert "adapter.safetensors" not in result.resources

    def problems(listed: Mapping[str, bytes]) -> dict[str, FileProblem]:
        found = compare_manifest(result.resources, file_entries(listed), "model.sig", result.ignore_paths)
        return {p.path: p.problem for p in found}

    # the signer's ignore is honoured for notes, never for loadable weights
    assert problems(files) == {"adapter.safetensors": FileProblem.UNSIGNED}
    base = {k: v for k, v in files.items() if k != "adapter.safetensors"}
    assert problems(base) == {}
    flipped = bytearray(base["model.safetensors"])
    flipped[-1] ^= 0x01
    assert problems({**base, "model.safetensors": bytes(flipped)}) == {"model.safetensors": FileProblem.DIGEST_MISMATCH}
    assert problems({k: v for k, v in base.items() if k != "config.json"}) == {"config.json": FileProblem.MISSING}
    assert problems({**base, "extra.safetensors": b"x"}) == {"extra.safetensors": FileProblem.UNSIGNED}


def test_replayed_bundle(key: KeyPair, work: pathlib.Path) -> None:
    """A valid bundle for revision A presented for revision B verifies, but its files do not match."""
    rev_a = TINY_MODEL
    rev_b = {**TINY_MODEL, "model.safetensors": b"other weights", "config.json": b"{}"}
    bundle = sign_with_key(write_model(work / "rev-a", rev_a), key, work / "rev-a-sig")
    result = evidence(verify_bundle(bundle, key_anchors(key)))
    assert result.manifest_digest != files_subject_digest(file_entries(rev_b))
    found = compare_manifest(result.resources, file_entries(rev_b), "model.sig", result.ignore_paths)
    assert {(p.path, p.problem) for p in found} == {
        ("config.json", FileProblem.DIGEST_MISMATCH),
        ("model.safetensors", FileProblem.DIGEST_MISMATCH),
    }
