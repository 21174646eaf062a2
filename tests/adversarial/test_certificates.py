"""Issue 8, property 7: a certificate signs models only when it is meant for code signing, valid now, and
(optionally) issued to a signer the CA entry names.

Attack: a CA the policy trusts also issues TLS server certificates (digitalSignature + serverAuth, accepted
by model-signing's own rule) or certificates for other people; a stolen key whose certificate expired years
ago; a leaf dated in the future; an end-entity certificate posing as an intermediate. Each is refused, next
to a code-signing control that passes.
"""

from __future__ import annotations

import dataclasses
import datetime
import pathlib
from collections.abc import Callable, Sequence

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from openmodel_operator.evidence.records import Reason, SignatureEvidence, SignatureFailure
from openmodel_operator.signing.signature import TrustAnchors, TrustedCA, verify_bundle
from openmodel_operator.trust.policies import PolicyError, policy_from_manifest, trust_anchors
from signing_fixtures import TINY_MODEL, CertChain, KeyPair, new_key, sign_with_certificate, write_model

NOW = datetime.datetime.now(datetime.UTC).replace(microsecond=0)
SIGNER = "release-bot@example.org"
Signer = Callable[[CertChain], bytes]


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Adversarial"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _usage(digital_signature: bool, key_cert_sign: bool = False) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=digital_signature,
        content_commitment=False,
        key_encipherment=not digital_signature and not key_cert_sign,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=key_cert_sign,
        crl_sign=key_cert_sign,
        encipher_only=False,
        decipher_only=False,
    )


def _cert(
    subject: str,
    key: KeyPair,
    issuer: str,
    issuer_key: KeyPair,
    *,
    ca: bool | None,
    key_usage: x509.KeyUsage | None,
    eku: Sequence[x509.ObjectIdentifier] | None = None,
    sans: Sequence[x509.GeneralName] = (),
    not_before: datetime.datetime = NOW - datetime.timedelta(days=1),
    not_after: datetime.datetime = NOW + datetime.timedelta(days=30),
) -> x509.Certificate:
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(_name(issuer))
        .public_key(key.private_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
    )
    if ca is not None:
        builder = builder.add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    if key_usage is not None:
        builder = builder.add_extension(key_usage, critical=True)
    if eku is not None:
        builder = builder.add_extension(x509.ExtendedKeyUsage(list(eku)), critical=False)
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(list(sans)), critical=False)
    return builder.sign(issuer_key.private_key, hashes.SHA256())


@dataclasses.dataclass(frozen=True)
class Pki:
    """A root and an intermediate CA that issue leaves shaped as each test needs."""

    root: x509.Certificate
    root_key: KeyPair
    intermediate: x509.Certificate
    intermediate_key: KeyPair

    def chain(
        self,
        *,
        key_usage: x509.KeyUsage | None = None,
        eku: Sequence[x509.ObjectIdentifier] | None = (ExtendedKeyUsageOID.CODE_SIGNING,),
        ca: bool | None = False,
        cn: str = SIGNER,
        sans: Sequence[x509.GeneralName] = (x509.RFC822Name(SIGNER),),
        not_before: datetime.datetime = NOW - datetime.timedelta(minutes=5),
        not_after: datetime.datetime = NOW + datetime.timedelta(days=30),
        intermediate: x509.Certificate | None = None,
        issuer_key: KeyPair | None = None,
    ) -> CertChain:
        leaf_key = new_key()
        leaf = _cert(
            cn,
            leaf_key,
            (intermediate or self.intermediate).subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value,  # type: ignore[arg-type]
            issuer_key or self.intermediate_key,
            ca=ca,
            key_usage=_usage(True) if key_usage is None else key_usage,
            eku=eku,
            sans=sans,
            not_before=not_before,
            not_after=not_after,
        )
        return CertChain(self.root, intermediate or self.intermediate, leaf, leaf_key)

    @property
    def ca_pem(self) -> bytes:
        return self.root.public_bytes(serialization.Encoding.PEM)


@pytest.fixture(scope="module")
def pki() -> Pki:
    root_key, intermediate_key = new_key(ec.SECP384R1()), new_key()
    start = NOW - datetime.timedelta(days=365)
    end = NOW + datetime.timedelta(days=3650)
    ca_usage = _usage(False, key_cert_sign=True)
    root = _cert("Root", root_key, "Root", root_key, ca=True, key_usage=ca_usage, not_before=start, not_after=end)
    intermediate = _cert(
        "Intermediate", intermediate_key, "Root", root_key, ca=True, key_usage=ca_usage, not_before=start, not_after=end
    )
    return Pki(root, root_key, intermediate, intermediate_key)


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> pathlib.Path:
    return write_model(tmp_path_factory.mktemp("certs") / "tiny", TINY_MODEL)


@pytest.fixture
def sign(model: pathlib.Path, tmp_path: pathlib.Path) -> Signer:
    def _sign(chain: CertChain) -> bytes:
        return sign_with_certificate(model, chain, tmp_path / "sig")

    return _sign


def anchors(pki: Pki, identities: Sequence[str] = ()) -> TrustAnchors:
    return TrustAnchors(cas=[TrustedCA("corp", pki.ca_pem, tuple(identities))])


def passes(bundle: bytes, trusted: TrustAnchors, now: datetime.datetime | None = None) -> SignatureEvidence:
    result = verify_bundle(bundle, trusted, now=now)
    assert isinstance(result, SignatureEvidence), result
    assert result.method == "certificate" and result.anchor == "ca:corp"
    return result


def refused(bundle: bytes, trusted: TrustAnchors, *needles: str, now: datetime.datetime | None = None) -> str:
    result = verify_bundle(bundle, trusted, now=now)
    assert isinstance(result, SignatureFailure), result
    assert result.reason is Reason.UNTRUSTED_SIGNER, result.message
    for needle in needles:
        assert needle in result.message, result.message
    return result.message


# ---------------------------------------------------------------- purpose: code signing only


def test_code_signing_leaf_passes(pki: Pki, sign: Signer) -> None:
    """Control: KeyUsage digitalSignature + EKU codeSigning, issued by the trusted CA, valid now."""
    passes(sign(pki.chain()), anchors(pki))


def test_tls_server_certificate_is_refused(pki: Pki, sign: Signer) -> None:
    """digitalSignature + EKU serverAuth: model-signing's rule accepts it, ours does not."""
    bundle = sign(pki.chain(eku=[ExtendedKeyUsageOID.SERVER_AUTH]))
    refused(bundle, anchors(pki), "not a code-signing certificate", "does not include codeSigning", "serverAuth")


def test_eku_with_code_signing_among_others_passes(pki: Pki, sign: Signer) -> None:
    bundle = sign(pki.chain(eku=[ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CODE_SIGNING]))
    passes(bundle, anchors(pki))


def test_key_usage_without_digital_signature_is_refused(pki: Pki, sign: Signer) -> None:
    bundle = sign(pki.chain(key_usage=_usage(False)))
    refused(bundle, anchors(pki), "KeyUsage does not allow digitalSignature")


def test_leaf_without_any_usage_is_refused(pki: Pki, sign: Signer) -> None:
    """Nothing in the certificate says it may sign code: refused. With only EKU codeSigning it may."""
    chain = pki.chain(eku=None)
    bare = _cert(SIGNER, chain.leaf_key, "Intermediate", pki.intermediate_key, ca=None, key_usage=None)
    refused(sign(dataclasses.replace(chain, leaf=bare)), anchors(pki), "neither a KeyUsage nor an ExtendedKeyUsage")
    only_eku = _cert(
        SIGNER,
        chain.leaf_key,
        "Intermediate",
        pki.intermediate_key,
        ca=None,
        key_usage=None,
        eku=[ExtendedKeyUsageOID.CODE_SIGNING],
    )
    passes(sign(dataclasses.replace(chain, leaf=only_eku)), anchors(pki))


def test_ca_certificate_as_leaf_is_refused(pki: Pki, sign: Signer) -> None:
    bundle = sign(pki.chain(ca=True))
    refused(bundle, anchors(pki), "CA certificate")


def test_end_entity_posing_as_intermediate_is_refused(pki: Pki, sign: Signer) -> None:
    """A code-signing leaf of the trusted CA must not issue certificates: OpenSSL requires CA:true of issuers."""
    both = pki.ca_pem + pki.intermediate.public_bytes(serialization.Encoding.PEM)
    trusted = TrustAnchors(cas=[TrustedCA("corp", both)])
    for is_ca in (False, True):
        issuer_key = new_key()
        issuer = _cert(
            "Intermediate2",
            issuer_key,
            "Intermediate",
            pki.intermediate_key,
            ca=is_ca,
            key_usage=_usage(not is_ca, key_cert_sign=is_ca),
            eku=None if is_ca else [ExtendedKeyUsageOID.CODE_SIGNING],
        )
        bundle = sign(pki.chain(intermediate=issuer, issuer_key=issuer_key))
        if is_ca:
            passes(bundle, trusted)  # control: the same path through a real CA certificate
        else:
            refused(bundle, trusted, "invalid CA certificate")


# ---------------------------------------------------------------- validity: checked now


def test_not_yet_valid_leaf_is_refused(pki: Pki, sign: Signer) -> None:
    start = NOW + datetime.timedelta(days=2)
    bundle = sign(pki.chain(not_before=start, not_after=start + datetime.timedelta(days=30)))
    refused(bundle, anchors(pki), "not valid before")
    passes(bundle, anchors(pki), now=start + datetime.timedelta(hours=1))  # control: once valid, it passes


def test_expired_leaf_is_refused_and_says_why(pki: Pki, sign: Signer) -> None:
    start = NOW - datetime.timedelta(days=60)
    bundle = sign(pki.chain(not_before=start, not_after=start + datetime.timedelta(days=1)))
    refused(bundle, anchors(pki), "expired", "no trusted timestamp")
    passes(bundle, anchors(pki), now=start + datetime.timedelta(hours=1))  # control: it verified while valid


def test_expired_intermediate_is_refused(pki: Pki, sign: Signer) -> None:
    """The chain is checked now, not at the leaf's notBefore (model-signing's rule)."""
    old = NOW - datetime.timedelta(days=30)
    key = new_key()
    expired = _cert(
        "Intermediate",
        key,
        "Root",
        pki.root_key,
        ca=True,
        key_usage=_usage(False, key_cert_sign=True),
        not_before=old,
        not_after=old + datetime.timedelta(days=2),
    )
    leaf_start = old + datetime.timedelta(hours=1)
    chain = pki.chain(intermediate=expired, issuer_key=key, not_before=leaf_start)
    bundle = sign(chain)
    refused(bundle, anchors(pki), "expired")
    passes(bundle, anchors(pki), now=leaf_start + datetime.timedelta(hours=1))  # control: valid chain at that time


# ---------------------------------------------------------------- a CA entry may constrain the leaf


def test_ca_identities_constrain_the_leaf(pki: Pki, sign: Signer) -> None:
    bundle = sign(pki.chain())
    passes(bundle, anchors(pki, [SIGNER]))  # SAN email
    passes(bundle, anchors(pki, ["someone@else.org", SIGNER]))
    message = refused(bundle, anchors(pki, ["mallory@example.org"]), SIGNER, "identities")
    assert "spec.signature.certificates['corp'].identities" in message
    # exact match only: no prefix, suffix or case folding
    refused(bundle, anchors(pki, [SIGNER.upper()]))
    refused(bundle, anchors(pki, ["example.org"]))


def test_ca_identities_match_uri_san_and_common_name(pki: Pki, sign: Signer) -> None:
    workflow = "https://github.com/org/repo/.github/workflows/release.yml@refs/tags/v1"
    uri_leaf = sign(pki.chain(cn="ci", sans=[x509.UniformResourceIdentifier(workflow)]))
    passes(uri_leaf, anchors(pki, [workflow]))
    passes(uri_leaf, anchors(pki, ["ci"]))  # subject common name
    refused(uri_leaf, anchors(pki, [workflow + "x"]))


def test_ca_identities_come_from_the_policy(pki: Pki, sign: Signer) -> None:
    bundle = sign(pki.chain())

    def policy(identities: list[str] | None) -> TrustAnchors:
        entry: dict[str, object] = {"name": "corp", "caBundle": pki.ca_pem.decode()}
        if identities is not None:
            entry["identities"] = identities
        doc = {
            "apiVersion": "openmodel.io/v1alpha1",
            "kind": "ModelTrustPolicy",
            "metadata": {"name": "p"},
            "spec": {"signature": {"certificates": [entry]}},
        }
        return trust_anchors(policy_from_manifest(doc))

    passes(bundle, policy(None))
    passes(bundle, policy([SIGNER]))
    refused(bundle, policy(["mallory@example.org"]))
    with pytest.raises(PolicyError, match="identities"):
        policy([f"id-{i}@example.org" for i in range(33)])  # at most 32


def test_deceptive_certificate_names_are_shown_escaped(pki: Pki, sign: Signer) -> None:
    spoof = "release-bot@example.org\u202e\u2028"
    bundle = sign(pki.chain(cn=spoof, sans=[x509.RFC822Name("bot@example.org")]))
    message = refused(bundle, anchors(pki, [SIGNER]), "\\u202e", "\\u2028")
    assert "\u202e" not in message and "\u2028" not in message


def test_a_decision_judges_certificates_at_the_time_it_is_given(pki: Pki, sign: Signer, model: pathlib.Path) -> None:
    """The pure decision reads no clock: the reconciler's pass time decides whether a leaf is still valid, so an
    offline re-decision of recorded evidence after the leaf expired is a rejection, however it is scheduled."""
    from openmodel_operator.sources.examine import gather_evidence, resolve
    from openmodel_operator.trust.decision import decide
    from openmodel_operator.trust.examination import ModelRequest

    start = NOW - datetime.timedelta(days=1)
    bundle = sign(pki.chain(not_before=start, not_after=start + datetime.timedelta(days=2)))
    doc = {
        "apiVersion": "openmodel.io/v1alpha1",
        "kind": "ModelTrustPolicy",
        "metadata": {"name": "p"},
        "spec": {"signature": {"certificates": [{"name": "corp", "caBundle": pki.ca_pem.decode()}]}},
    }
    request = ModelRequest(uri=str(model), external_bundle=bundle)
    evidence = gather_evidence(request, resolve(request))
    policy = policy_from_manifest(doc)
    assert decide([policy], evidence, now=NOW).signature is not None  # control: valid at the pass's time
    later = decide([policy], evidence, now=start + datetime.timedelta(days=3))
    assert later.signature is None and not later.trusted
    assert Reason.UNTRUSTED_SIGNER in later.reasons
