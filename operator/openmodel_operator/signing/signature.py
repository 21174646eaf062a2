"""Verify a model-signing bundle against trust anchors, before any weight is pulled.

Only the bundle bytes are needed: the signature is checked here and the signed file list is returned
as evidence; ``evidence.manifest.compare_manifest`` then compares it with the digests the Hub lists.
model-signing's own verifiers insist on hashing a model directory, so the small parts they do on
the bundle alone (DSSE/PAE signature, certificate chain) are done here with the same semantics; the
keyless path uses sigstore-python's ``Verifier`` with an offline trusted root.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import datetime
import hashlib
import importlib.resources
import json
import logging
import re
from collections.abc import Mapping, Sequence
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID, ObjectIdentifier

from openmodel_operator.evidence.manifest import digest_ref, subject_digest_of
from openmodel_operator.evidence.records import Reason, SignatureEvidence, SignatureFailure
from openmodel_operator.evidence.text import clip, is_unsafe_char, visible

logger = logging.getLogger(__name__)

BUNDLE_MEDIA_TYPE = "application/vnd.dev.sigstore.bundle.v0.3+json"
BUNDLE_MEDIA_TYPE_ALT = "application/vnd.dev.sigstore.bundle+json;version=0.3"
IN_TOTO_PAYLOAD_TYPE = "application/vnd.in-toto+json"
IN_TOTO_STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PREDICATE_TYPE = "https://model_signing/signature/v1.0"
MAX_BUNDLE_BYTES = 64 * 1024 * 1024
MAX_IGNORE_PATHS = 1024
MAX_IGNORE_PATH_CHARS = 4096
_MAX_CHAIN = 10  # leaf + intermediates in a certificate-mode bundle

_KEYS_FIELD = "spec.signature.keys"
_CAS_FIELD = "spec.signature.certificates"
_KEYLESS_FIELD = "spec.signature.keyless"
_ROOT_FIELD = "spec.signature.trustedRoot"
_HEX64 = re.compile(r"^[0-9a-fA-F]{64}$")
_OIDC_ISSUER_OID = ObjectIdentifier("1.3.6.1.4.1.57264.1.1")
_OTHERNAME_OID = ObjectIdentifier("1.3.6.1.4.1.57264.1.7")
# The public-good Sigstore root shipped inside sigstore-python: the offline default for keyless.
_SHIPPED_ROOT = ("sigstore", "_store", "https%3A%2F%2Ftuf-repo-cdn.sigstore.dev", "trusted_root.json")


# ---------------------------------------------------------------- trust anchors


@dataclasses.dataclass(frozen=True)
class TrustedKey:
    """A public key (PEM SubjectPublicKeyInfo) whose signatures are trusted; ``name`` is the signer shown."""

    name: str
    public_key_pem: str | bytes


@dataclasses.dataclass(frozen=True)
class TrustedCA:
    """A CA whose signing certificates are trusted: PEM root plus optional intermediates.

    ``identities`` constrains the leaf: when not empty, the signing certificate must carry one of
    these values exactly, as a SAN (email, URI, DNS name) or as its subject common name. Without it a
    CA vouches for every code-signing certificate it issues.
    """

    name: str
    ca_bundle_pem: str | bytes
    identities: tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True)
class KeylessIdentity:
    """A Sigstore keyless signer: the OIDC issuer and the exact certificate SAN it vouched for."""

    issuer: str
    subject: str


@dataclasses.dataclass(frozen=True)
class TrustAnchors:
    """Everything a signature may chain to; ``trusted_root_json`` is a Sigstore trusted_root.json.

    Without ``trusted_root_json`` keyless bundles are checked against the public-good root shipped in
    the sigstore package (offline: no TUF refresh ever happens here). One TrustAnchors belongs to one
    policy: its root never verifies another policy's keyless identities. ``trusted_root_name`` is how
    the root is named in the recorded anchor (``keyless:<issuer> <subject> via <root name>``).
    """

    keys: Sequence[TrustedKey] = ()
    cas: Sequence[TrustedCA] = ()
    keyless: Sequence[KeylessIdentity] = ()
    trusted_root_json: bytes | None = None
    trusted_root_name: str | None = None

    @property
    def empty(self) -> bool:
        """True when no signer at all is trusted."""
        return not (self.keys or self.cas or self.keyless)


# ---------------------------------------------------------------- internals


class _Rejected(Exception):
    """Internal: carries a failure up to ``verify_bundle``, which turns it into a SignatureFailure."""

    def __init__(self, reason: Reason, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


def _malformed(message: str) -> _Rejected:
    return _Rejected(Reason.SIGNATURE_MALFORMED, message)


@dataclasses.dataclass(frozen=True)
class _Envelope:
    payload_type: str
    payload: bytes
    signature: bytes


@dataclasses.dataclass(frozen=True)
class _Verified:
    """Who signed, as established by one of the three methods."""

    method: str
    identity: str
    issuer: str | None
    key_fingerprint: str
    payload_type: str
    payload: bytes
    anchor: str


def _clip(text: str, limit: int = 200) -> str:
    """Signer-controlled text (certificate names, SANs) is shortened and escaped before it reaches a message.

    The characters escaped are those that make a name display as something else (``text.is_unsafe_char``):
    controls, bidi overrides and isolates, zero-width and format characters, line/paragraph separators.
    """
    return clip(visible(text[: limit * 2]), limit)


def _as_bytes(value: str | bytes) -> bytes:
    return value.encode() if isinstance(value, str) else value


def _b64(value: object, field: str) -> bytes:
    if not isinstance(value, str) or not value:
        raise _malformed(f"the signature bundle has no {field}; re-sign the model with model-signing")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise _malformed(f"the signature bundle's {field} is not valid base64; the file is corrupt") from None


def fingerprint(public_key: Any) -> str:
    """``SHA256:<hex>`` of a public key's DER SubjectPublicKeyInfo, as shown in status and messages."""
    der = public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return f"SHA256:{hashlib.sha256(der).hexdigest()}"


def key_hint(public_key: ec.EllipticCurvePublicKey) -> str:
    """model-signing's ``publicKey.hint``: sha256 hex of the PEM-encoded SubjectPublicKeyInfo."""
    pem = public_key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(pem).hexdigest()


def _ec_hash(public_key: ec.EllipticCurvePublicKey) -> hashes.HashAlgorithm:
    """The hash model-signing pairs with each supported curve."""
    size = public_key.curve.key_size
    if size == 256:
        return hashes.SHA256()
    if size == 384:
        return hashes.SHA384()
    if size == 521:
        return hashes.SHA512()
    raise ValueError(f"unsupported curve {public_key.curve.name}")


def pae(payload_type: str, payload: bytes) -> bytes:
    """DSSE v1 pre-authentication encoding: what the signature actually covers."""
    return b"DSSEv1 %d %s %d %s" % (len(payload_type.encode()), payload_type.encode(), len(payload), payload)


def _ec_verifies(public_key: ec.EllipticCurvePublicKey, envelope: _Envelope) -> bool:
    try:
        public_key.verify(
            envelope.signature, pae(envelope.payload_type, envelope.payload), ec.ECDSA(_ec_hash(public_key))
        )
    except (InvalidSignature, ValueError):
        return False
    return True


def _parse_envelope(bundle: Mapping[str, Any]) -> _Envelope:
    envelope = bundle.get("dsseEnvelope")
    if not isinstance(envelope, dict):
        if "messageSignature" in bundle:
            raise _malformed(
                "the signature bundle signs a single blob (messageSignature), not a model manifest "
                "(dsseEnvelope); sign the model directory with model-signing"
            )
        raise _malformed("the signature bundle has no dsseEnvelope; re-sign the model with model-signing")
    payload_type = envelope.get("payloadType")
    if payload_type != IN_TOTO_PAYLOAD_TYPE:
        raise _malformed(
            f"the signature bundle's dsseEnvelope.payloadType is {str(payload_type)[:80]!r}, expected "
            f"{IN_TOTO_PAYLOAD_TYPE!r}; re-sign the model with model-signing"
        )
    payload = _b64(envelope.get("payload"), "dsseEnvelope.payload")
    signatures = envelope.get("signatures")
    if not isinstance(signatures, list) or len(signatures) != 1 or not isinstance(signatures[0], dict):
        raise _malformed(
            "the signature bundle's dsseEnvelope.signatures must hold exactly one signature; "
            "re-sign the model with model-signing"
        )
    signature = _b64(signatures[0].get("sig"), "dsseEnvelope.signatures[0].sig")
    return _Envelope(payload_type, payload, signature)


def _load_bundle(bundle_bytes: bytes) -> dict[str, Any]:
    if len(bundle_bytes) > MAX_BUNDLE_BYTES:
        raise _malformed(
            f"the signature bundle is {len(bundle_bytes)} bytes, over the {MAX_BUNDLE_BYTES} byte limit; "
            "it is not a model-signing bundle"
        )
    try:
        bundle = json.loads(bundle_bytes)
    except RecursionError:  # json's decoder recurses per nesting level; a hostile bundle must not crash
        raise _malformed("the signature file is JSON nested too deeply to be a Sigstore bundle; re-sign") from None
    except (UnicodeDecodeError, ValueError):
        raise _malformed(
            "the signature file is not JSON, so not a Sigstore bundle; point spec.trust.signature.path at the "
            "model-signing bundle (default model.sig) or re-sign the model"
        ) from None
    if not isinstance(bundle, dict):
        raise _malformed("the signature file is JSON but not a Sigstore bundle object; re-sign the model")
    media_type = bundle.get("mediaType")
    if media_type not in (BUNDLE_MEDIA_TYPE, BUNDLE_MEDIA_TYPE_ALT):
        raise _malformed(
            f"the signature bundle's mediaType is {str(media_type)[:80]!r}, expected {BUNDLE_MEDIA_TYPE!r}; "
            "re-sign the model with model-signing >= 1.0"
        )
    if not isinstance(bundle.get("verificationMaterial"), dict):
        raise _malformed("the signature bundle has no verificationMaterial; re-sign the model")
    return bundle


# ---------------------------------------------------------------- anchor validation (policy load time)


def key_problem(public_key_pem: str | bytes) -> str | None:
    """None when the PEM is a public key model-signing signs with (EC P-256/384/521), else what is wrong."""
    try:
        public_key = serialization.load_pem_public_key(_as_bytes(public_key_pem))
    except (ValueError, TypeError):
        return "it is not a PEM public key (a BEGIN PUBLIC KEY block) that parses"
    except Exception as exc:  # cryptography raises UnsupportedAlgorithm for unknown key types
        return f"it cannot be loaded as a public key ({type(exc).__name__})"
    if not isinstance(public_key, ec.EllipticCurvePublicKey):
        kind = type(public_key).__name__.lstrip("_")
        return f"it is not an elliptic-curve key ({kind}); model-signing signs with EC P-256/384/521 keys only"
    if public_key.curve.key_size not in (256, 384, 521):
        return f"it is on curve {public_key.curve.name}, not P-256, P-384 or P-521"
    return None


def ca_bundle_problem(ca_bundle_pem: str | bytes) -> str | None:
    """None when every certificate of the PEM bundle is a CA certificate (and there is one), else what is wrong.

    Each certificate of a caBundle is a trust anchor, so a leaf (or any certificate without
    basicConstraints CA:true) there is a configuration error, not something to skip.
    """
    try:
        certs = x509.load_pem_x509_certificates(_as_bytes(ca_bundle_pem))
    except ValueError:
        return "it holds no PEM certificate that parses"
    for index, cert in enumerate(certs):
        try:
            constraints = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
            is_ca = constraints.ca
        except x509.ExtensionNotFound:
            is_ca = False
        except ValueError:
            return f"certificate #{index + 1} has extensions that do not parse"
        if not is_ca:
            return (
                f"certificate #{index + 1} ({_clip(cert.subject.rfc4514_string() or '(empty subject)', 120)}) is not "
                "a CA certificate (no basicConstraints CA:true)"
            )
    return None


# ---------------------------------------------------------------- key mode


def _load_keys(keys: Sequence[TrustedKey]) -> tuple[list[tuple[TrustedKey, ec.EllipticCurvePublicKey]], list[str]]:
    """The configured keys model-signing can verify with (EC P-256/384/521), and the names of the rest."""
    usable: list[tuple[TrustedKey, ec.EllipticCurvePublicKey]] = []
    unusable: list[str] = []
    for key in keys:
        try:
            public_key = serialization.load_pem_public_key(_as_bytes(key.public_key_pem))
        except (ValueError, TypeError):
            unusable.append(key.name)
            continue
        if isinstance(public_key, ec.EllipticCurvePublicKey) and public_key.curve.key_size in (256, 384, 521):
            usable.append((key, public_key))
        else:  # model-signing 1.1 signs with elliptic-curve keys only
            unusable.append(key.name)
    return usable, unusable


def _verify_key(material: Mapping[str, Any], envelope: _Envelope, anchors: TrustAnchors) -> _Verified:
    if not anchors.keys:
        raise _Rejected(
            Reason.UNTRUSTED_SIGNER,
            f"the bundle was signed with a private key but {_KEYS_FIELD} is empty in the ModelTrustPolicy; "
            "add the signer's public key to the policy or have the model signed by a trusted signer",
        )
    usable, unusable = _load_keys(anchors.keys)
    unusable_note = (
        f" ({len(unusable)} configured key(s) are not PEM elliptic-curve public keys and were skipped: "
        f"{', '.join(unusable)})"
        if unusable
        else ""
    )
    public_key_field = material.get("publicKey")
    hint = public_key_field.get("hint") if isinstance(public_key_field, dict) else None
    hint = hint.lower() if isinstance(hint, str) and hint else None
    candidates = usable
    if hint is not None:
        candidates = [(key, pub) for key, pub in usable if key_hint(pub) == hint]
        if not candidates:
            raise _Rejected(
                Reason.UNTRUSTED_SIGNER,
                f"the bundle was signed by a key that is not in the ModelTrustPolicy's {_KEYS_FIELD} "
                f"(bundle key hint {_clip(hint, 80)}, the sha256 of the signer's PEM public key){unusable_note}; "
                "add the signer's public key to the policy or re-sign with a trusted key",
            )
    for key, public_key in candidates:
        if _ec_verifies(public_key, envelope):
            return _Verified(
                "key",
                key.name,
                None,
                fingerprint(public_key),
                envelope.payload_type,
                envelope.payload,
                f"key:{key.name}",
            )
    if hint is not None:
        key, public_key = candidates[0]
        raise _Rejected(
            Reason.SIGNATURE_INVALID,
            f"the bundle names trusted key {key.name!r} ({fingerprint(public_key)}) but its signature does not "
            "verify: the bundle was altered after signing or is corrupt; fetch the original signature file "
            "or re-sign the model",
        )
    names = ", ".join(f"{key.name} ({fingerprint(pub)})" for key, pub in usable) or "none usable"
    raise _Rejected(
        Reason.UNTRUSTED_SIGNER,
        f"the bundle's signature does not verify with any key in {_KEYS_FIELD} (tried: {names}){unusable_note}; "
        "add the signer's public key to the policy or re-sign with a trusted key",
    )


# ---------------------------------------------------------------- certificate mode


def _cert_subject(cert: x509.Certificate) -> str:
    """Common name of the subject, else its first SAN, else the full RFC 4514 subject."""
    common_names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    if common_names:
        return str(common_names[0].value)
    sans = _sans(cert)
    if sans:
        return sans[0]
    return cert.subject.rfc4514_string() or "(empty subject)"


def _cert_issuer(cert: x509.Certificate) -> str:
    common_names = cert.issuer.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(common_names[0].value) if common_names else cert.issuer.rfc4514_string()


def _sans(cert: x509.Certificate) -> list[str]:
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return []
    values: list[str] = list(san.get_values_for_type(x509.RFC822Name))
    values += san.get_values_for_type(x509.UniformResourceIdentifier)
    values += san.get_values_for_type(x509.DNSName)
    for other in san.get_values_for_type(x509.OtherName):
        if other.type_id == _OTHERNAME_OID:
            values.append(other.value.decode(errors="replace"))
    return values


def _signing_use_error(cert: x509.Certificate) -> str | None:
    """None when the leaf is meant for code signing, else what its extensions say instead.

    Stricter than model-signing (which takes KeyUsage digitalSignature *or* EKU codeSigning): a
    certificate issued for another purpose (a TLS server certificate has digitalSignature too) must
    not sign models. With ExtendedKeyUsage present it must list codeSigning; with KeyUsage present it
    must allow digitalSignature; at least one of them must be there; a CA certificate is no signer.
    """
    try:
        key_usage: x509.KeyUsage | None = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        key_usage = None
    try:
        extended: x509.ExtendedKeyUsage | None = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        extended = None
    try:
        is_ca = cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except x509.ExtensionNotFound:
        is_ca = False
    if is_ca:
        return "it is a CA certificate (basicConstraints CA:true), not a signing certificate"
    if key_usage is None and extended is None:
        return "it has neither a KeyUsage nor an ExtendedKeyUsage extension, so nothing says it may sign code"
    if extended is not None and ExtendedKeyUsageOID.CODE_SIGNING not in extended:
        usages = ", ".join(getattr(oid, "_name", None) or oid.dotted_string for oid in extended)
        return f"its ExtendedKeyUsage ({_clip(usages, 120)}) does not include codeSigning"
    if key_usage is not None and not key_usage.digital_signature:
        return "its KeyUsage does not allow digitalSignature"
    return None


def _validity_error(cert: x509.Certificate, now: datetime.datetime) -> str | None:
    """None when ``now`` lies within the leaf's validity period, else why not.

    model-signing's certificate bundles carry no trusted timestamp (no transparency-log entry, no
    RFC 3161 countersignature), so nothing proves the signature was made while the certificate was
    valid: an expired leaf is refused like a not-yet-valid one.
    """
    not_before, not_after = cert.not_valid_before_utc, cert.not_valid_after_utc
    if now < not_before:
        return f"it is not valid before {not_before.isoformat()} (now {now.isoformat(timespec='seconds')})"
    if now > not_after:
        return (
            f"it expired on {not_after.isoformat()}; a certificate-mode bundle carries no trusted timestamp that "
            "would prove the model was signed while it was valid, so an expired signing certificate is refused"
        )
    return None


def _leaf_identities(cert: x509.Certificate) -> list[str]:
    """What a CA's ``identities`` constraint is matched against: every SAN and the subject common names."""
    names = [str(a.value) for a in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
    return _sans(cert) + names


def _chain_error(
    ca: TrustedCA, leaf: x509.Certificate, intermediates: list[x509.Certificate], now: datetime.datetime
) -> str | None:
    """None when ``leaf`` chains to ``ca`` at time ``now``, else OpenSSL's reason.

    As in model-signing's certificate verifier, every certificate of the CA bundle is a trust anchor
    and the bundle's other certificates are untrusted intermediates; OpenSSL requires basicConstraints
    CA:true of every issuer in the path. Unlike model-signing (which validates at the leaf's own
    notBefore, so an expired or revoked-by-expiry chain still passes), the chain is checked now.
    """
    from OpenSSL import crypto  # pyOpenSSL: what model-signing's certificate mode uses

    try:
        anchors = x509.load_pem_x509_certificates(_as_bytes(ca.ca_bundle_pem))
    except ValueError:
        return "its caBundle holds no PEM certificate"
    store = crypto.X509Store()
    for anchor in anchors:
        store.add_cert(crypto.X509.from_cryptography(anchor))
    store.set_time(now)
    context = crypto.X509StoreContext(
        store,
        crypto.X509.from_cryptography(leaf),
        [crypto.X509.from_cryptography(cert) for cert in intermediates],
    )
    try:
        context.verify_certificate()
    except crypto.X509StoreContextError as exc:
        return _clip(str(exc), 300)
    return None


def _verify_certificate(
    material: Mapping[str, Any], envelope: _Envelope, anchors: TrustAnchors, now: datetime.datetime
) -> _Verified:
    chain = material.get("x509CertificateChain")
    raw = chain.get("certificates") if isinstance(chain, dict) else None
    if not isinstance(raw, list) or not raw or not all(isinstance(c, dict) for c in raw):
        raise _malformed("the signature bundle's x509CertificateChain holds no certificate; re-sign the model")
    if len(raw) > _MAX_CHAIN:
        raise _malformed(
            f"the signature bundle's x509CertificateChain holds {len(raw)} certificates, over {_MAX_CHAIN}; "
            "re-sign the model with the leaf and its intermediates only"
        )
    try:
        certs = [x509.load_der_x509_certificate(_b64(c.get("rawBytes"), "certificate rawBytes")) for c in raw]
    except ValueError:
        raise _malformed("a certificate in the signature bundle is not valid DER; the file is corrupt") from None
    leaf, intermediates = certs[0], certs[1:]
    subject = _clip(_cert_subject(leaf))
    leaf_fp = fingerprint(leaf.public_key())
    if not anchors.cas:
        raise _Rejected(
            Reason.UNTRUSTED_SIGNER,
            f"the bundle was signed with certificate {subject!r} (key {leaf_fp}) but {_CAS_FIELD} is empty "
            "in the ModelTrustPolicy; add the issuing CA to the policy or re-sign with a "
            "trusted signer",
        )
    if (problem := _validity_error(leaf, now)) is not None:
        raise _Rejected(
            Reason.UNTRUSTED_SIGNER,
            f"the signing certificate {subject!r} (key {leaf_fp}) is refused: {problem}; re-sign the model with a "
            "currently valid code-signing certificate",
        )
    errors: list[str] = []
    trusted_by: TrustedCA | None = None
    for ca in anchors.cas:
        error = _chain_error(ca, leaf, intermediates, now)
        if error is None:
            trusted_by = ca
            break
        errors.append(f"{ca.name}: {error}")
    if trusted_by is None:
        raise _Rejected(
            Reason.UNTRUSTED_SIGNER,
            f"the signing certificate {subject!r} (issuer {_clip(_cert_issuer(leaf))!r}, key {leaf_fp}) does not chain "
            f"to any CA in {_CAS_FIELD} ({_clip('; '.join(errors), 600)}); add the issuing root CA to the policy or "
            "re-sign with a certificate from a trusted CA",
        )
    if (problem := _signing_use_error(leaf)) is not None:
        raise _Rejected(
            Reason.UNTRUSTED_SIGNER,
            f"the signing certificate {subject!r} is not a code-signing certificate: {problem}; have the CA issue a "
            "certificate with KeyUsage digitalSignature and ExtendedKeyUsage codeSigning, and re-sign",
        )
    if trusted_by.identities:
        carried = _leaf_identities(leaf)
        if not any(value in trusted_by.identities for value in carried):
            raise _Rejected(
                Reason.UNTRUSTED_SIGNER,
                f"the signing certificate chains to CA {trusted_by.name!r}, but it names "
                f"{_clip(', '.join(_clip(v, 120) for v in carried) or '(no SAN or common name)', 300)}, none of "
                f"{_CAS_FIELD}[{trusted_by.name!r}].identities; add the signer's identity to that list or re-sign "
                "with an allowed signer's certificate",
            )
    public_key = leaf.public_key()
    if not isinstance(public_key, ec.EllipticCurvePublicKey) or public_key.curve.key_size not in (256, 384, 521):
        raise _Rejected(
            Reason.UNTRUSTED_SIGNER,
            f"the signing certificate {subject!r} does not hold an elliptic-curve P-256/384/521 key, the only "
            "kind model-signing signs with; re-sign with such a key",
        )
    if not _ec_verifies(public_key, envelope):
        raise _Rejected(
            Reason.SIGNATURE_INVALID,
            f"the certificate {subject!r} chains to trusted CA {trusted_by.name!r} but the bundle's signature "
            "does not verify with it: the bundle was altered after signing or is corrupt; fetch the original "
            "signature file or re-sign the model",
        )
    return _Verified(
        "certificate",
        subject,
        _cert_issuer(leaf),
        leaf_fp,
        envelope.payload_type,
        envelope.payload,
        f"ca:{trusted_by.name}",
    )


# ---------------------------------------------------------------- keyless mode


class _AnyIdentity:
    """A sigstore VerificationPolicy that accepts every identity.

    The cryptographic checks run once; the identity is then matched against each configured
    ``KeylessIdentity`` with sigstore's own ``Identity`` policy, so a wrong identity and a broken
    signature give different reasons.
    """

    def verify(self, cert: x509.Certificate) -> None:
        """Accept: identity is checked by the caller."""


PUBLIC_GOOD_ROOT_NAME = "public-good Sigstore"


def _parse_trusted_root(raw: bytes) -> Any:
    from sigstore.models import TrustedRoot
    from sigstore_models.trustroot import v1 as trustroot_v1

    return TrustedRoot(trustroot_v1.TrustedRoot.from_json(raw))


def trusted_root_problem(raw: bytes) -> str | None:
    """None when ``raw`` is a Sigstore trusted_root.json keyless bundles can be verified with, else why not."""
    from sigstore.verify import Verifier

    try:
        Verifier(trusted_root=_parse_trusted_root(raw))
    except RecursionError:
        return "it is nested too deeply to be a Sigstore trusted_root.json"
    except Exception as exc:  # pydantic, sigstore and JSON errors alike: the root is unusable
        return f"it is not a usable Sigstore trusted_root.json ({type(exc).__name__}: {_clip(str(exc), 160)})"
    return None


def _trusted_root(anchors: TrustAnchors) -> tuple[Any, str, str]:
    """The sigstore TrustedRoot to verify keyless bundles with, how to name it in messages and in the anchor."""
    if anchors.trusted_root_json is not None:
        raw = anchors.trusted_root_json
        source = _ROOT_FIELD
        name = anchors.trusted_root_name or "the policy's trusted root"
    else:
        raw = importlib.resources.files(_SHIPPED_ROOT[0]).joinpath(*_SHIPPED_ROOT[1:]).read_bytes()
        source = "the public-good Sigstore trusted root shipped with the operator"
        name = PUBLIC_GOOD_ROOT_NAME
    try:
        return _parse_trusted_root(raw), source, name
    except Exception:
        raise _Rejected(
            Reason.UNTRUSTED_SIGNER,
            f"{source} is not a valid Sigstore trusted_root.json, so no keyless signature can be trusted; "
            f"fix {_ROOT_FIELD}",
        ) from None


def _issuer_of(cert: x509.Certificate) -> str | None:
    try:
        value = cert.extensions.get_extension_for_oid(_OIDC_ISSUER_OID).value
    except x509.ExtensionNotFound:
        return None
    raw = getattr(value, "value", b"")
    return raw.decode(errors="replace") if isinstance(raw, bytes) else None


_PAYLOAD_BROKEN = (
    "DSSE: invalid signature",
    "log entry payload hash does not match",
    "log entry signatures do not match",
    "inconsistent with other materials",
)


def _verify_keyless(bundle_bytes: bytes, anchors: TrustAnchors) -> _Verified:
    from sigstore.errors import Error as SigstoreError
    from sigstore.models import Bundle
    from sigstore.verify import Verifier
    from sigstore.verify.policy import Identity

    try:
        bundle = Bundle.from_json(bundle_bytes)
    except (SigstoreError, ValueError) as exc:
        raise _malformed(
            f"the keyless Sigstore bundle is not well-formed ({_clip(str(exc), 200)}); re-sign the model"
        ) from None
    cert = bundle.signing_certificate
    sans = _sans(cert)
    cert_issuer = _issuer_of(cert)
    shown = f"SAN {_clip(', '.join(sans)) or '(none)'} from OIDC issuer {_clip(cert_issuer or '(none)')}"
    if not anchors.keyless:
        raise _Rejected(
            Reason.UNTRUSTED_SIGNER,
            f"the bundle is a Sigstore keyless signature ({shown}) but {_KEYLESS_FIELD} is empty in the "
            "ModelTrustPolicy; add the signer's issuer and subject to the policy",
        )
    trusted_root, root_source, root_name = _trusted_root(anchors)
    try:
        verifier = Verifier(trusted_root=trusted_root)
    except (SigstoreError, ValueError) as exc:
        raise _Rejected(
            Reason.UNTRUSTED_SIGNER,
            f"the Sigstore trusted root cannot verify keyless signatures ({_clip(str(exc), 200)}); fix {_ROOT_FIELD}",
        ) from None
    try:
        payload_type, payload = verifier.verify_dsse(bundle, _AnyIdentity())
    except (SigstoreError, ValueError) as exc:
        detail = _clip(str(exc), 300)
        if any(marker in detail for marker in _PAYLOAD_BROKEN):
            raise _Rejected(
                Reason.SIGNATURE_INVALID,
                f"the keyless signature by {shown} does not verify ({detail}): the bundle was altered after "
                "signing or is corrupt; fetch the original signature file or re-sign the model",
            ) from None
        raise _Rejected(
            Reason.UNTRUSTED_SIGNER,
            f"the keyless signature by {shown} does not chain to {root_source} ({detail}); set "
            f"{_ROOT_FIELD} to the trusted root of the Sigstore instance that issued the certificate, or re-sign",
        ) from None
    for identity in anchors.keyless:
        try:
            Identity(identity=identity.subject, issuer=identity.issuer).verify(cert)
        except SigstoreError:
            continue
        return _Verified(
            "keyless",
            identity.subject,
            identity.issuer,
            fingerprint(cert.public_key()),
            payload_type,
            payload,
            f"keyless:{identity.issuer} {identity.subject} via {root_name}",
        )
    raise _Rejected(
        Reason.UNTRUSTED_SIGNER,
        f"the keyless signature was made by {shown}, which matches no issuer/subject pair in {_KEYLESS_FIELD}; "
        "add this identity to the policy or have the model signed by a trusted identity",
    )


# ---------------------------------------------------------------- the in-toto statement


def _safe_name(name: object) -> bool:
    """A relative POSIX path without traversal, and without characters that display as something else.

    Control characters, bidi overrides/isolates, zero-width characters and line/paragraph separators
    would let a signed name look like another one in status, Events, logs and reviews.
    """
    if not isinstance(name, str) or not name or "\\" in name or name.startswith("/"):
        return False
    if any(is_unsafe_char(c) for c in name):
        return False
    return all(part not in ("", ".", "..") for part in name.split("/"))


def _parse_statement(payload: bytes) -> tuple[dict[str, str], str, tuple[str, ...]]:
    """The signed resources, the subject's manifest digest and the signer's ignore paths.

    Checks what model-signing's ``dsse_payload_to_manifest`` checks, plus that the subject digest
    is the canonical manifest digest (paths in model-signing's order), so it names the same value as
    ``evidence.manifest.manifest_digest``.
    """
    try:
        statement = json.loads(payload)
    except (UnicodeDecodeError, ValueError):
        raise _malformed("the signed payload is not JSON; re-sign the model with model-signing") from None
    except RecursionError:  # json's decoder recurses per nesting level; a hostile payload must not crash
        raise _malformed("the signed payload is JSON nested too deeply to be an in-toto statement; re-sign") from None
    if not isinstance(statement, dict) or statement.get("_type") != IN_TOTO_STATEMENT_TYPE:
        raise _malformed(f"the signed payload is not an in-toto {IN_TOTO_STATEMENT_TYPE} statement; re-sign")
    predicate_type = statement.get("predicateType")
    if predicate_type != PREDICATE_TYPE:
        raise _malformed(
            f"the signed statement's predicateType is {str(predicate_type)[:120]!r}, not {PREDICATE_TYPE!r}: "
            "it is not a model-signing v1.0 model signature; re-sign the model with model-signing >= 1.0"
        )
    subjects = statement.get("subject")
    digest = None
    if isinstance(subjects, list) and len(subjects) == 1 and isinstance(subjects[0], dict):
        digests = subjects[0].get("digest")
        digest = digests.get("sha256") if isinstance(digests, dict) else None
    if not isinstance(digest, str) or not _HEX64.match(digest):
        raise _malformed("the signed statement needs exactly one subject with a sha256 digest; re-sign the model")
    predicate = statement.get("predicate")
    serialization_args = predicate.get("serialization") if isinstance(predicate, dict) else None
    if not isinstance(predicate, dict) or not isinstance(serialization_args, dict):
        raise _malformed("the signed statement has no predicate.serialization; re-sign the model")
    method = serialization_args.get("method")
    if method != "files":
        raise _malformed(
            f"the signature uses predicate.serialization.method {str(method)[:40]!r}; only 'files' (model-signing's "
            "default) can be compared with the Hub's per-file sha256; re-sign without shard serialization"
        )
    if serialization_args.get("hash_type") != "sha256":
        raise _malformed(
            f"the signature hashes files with {str(serialization_args.get('hash_type'))[:40]!r}; only sha256 can "
            "be compared with the Hub's file digests; re-sign with the sha256 hash"
        )
    raw_ignore = serialization_args.get("ignore_paths", [])
    if not isinstance(raw_ignore, list) or not all(isinstance(p, str) for p in raw_ignore):
        raise _malformed("the signed predicate.serialization.ignore_paths is not a list of paths; re-sign")
    if len(raw_ignore) > MAX_IGNORE_PATHS or any(len(p) > MAX_IGNORE_PATH_CHARS for p in raw_ignore):
        # each pattern is matched against every file: a bounded list keeps the comparison cheap
        raise _malformed(
            f"the signed predicate.serialization.ignore_paths has {len(raw_ignore)} entries (at most "
            f"{MAX_IGNORE_PATHS} of at most {MAX_IGNORE_PATH_CHARS} characters are accepted); re-sign the model"
        )
    resources_raw = predicate.get("resources")
    if not isinstance(resources_raw, list) or not resources_raw:
        raise _malformed("the signed statement lists no files in predicate.resources; re-sign the model")
    resources: dict[str, str] = {}
    for item in resources_raw:
        if not isinstance(item, dict):
            raise _malformed("an entry of the signed predicate.resources is not an object; re-sign the model")
        name, algorithm, value = item.get("name"), item.get("algorithm"), item.get("digest")
        if not _safe_name(name):
            shown = _clip(name, 200) if isinstance(name, str) else type(name).__name__
            raise _malformed(
                f"the signed predicate.resources names an unsafe path '{shown}' (absolute, with '..', '.' or empty "
                "parts, a backslash, or control, bidi-override, zero-width or line-separator characters, shown "
                "escaped); rename the file and re-sign the model"
            )
        assert isinstance(name, str)
        if algorithm != "sha256" or not isinstance(value, str) or not _HEX64.match(value):
            raise _malformed(f"the signed digest of '{_clip(name)}' is not a sha256 hex digest; re-sign the model")
        if name in resources:
            raise _malformed(f"the signed predicate.resources lists '{_clip(name)}' twice; re-sign the model")
        resources[name] = value.lower()
    computed = subject_digest_of(resources)
    stated = digest_ref(digest.lower())
    if computed != stated:
        raise _malformed(
            f"the signed statement is inconsistent: its subject digest is {stated} but predicate.resources "
            f"hash to {computed}; re-sign the model with model-signing"
        )
    return resources, stated, tuple(raw_ignore)


# ---------------------------------------------------------------- entry point


def _verify(bundle_bytes: bytes, anchors: TrustAnchors, now: datetime.datetime) -> SignatureEvidence:
    if anchors.empty:
        raise _Rejected(
            Reason.UNTRUSTED_SIGNER,
            f"no trusted signers are configured: {_KEYS_FIELD}, {_CAS_FIELD} and {_KEYLESS_FIELD} are empty "
            "in the ModelTrustPolicy; add the signer's public key, CA or keyless identity",
        )
    bundle = _load_bundle(bundle_bytes)
    material: dict[str, Any] = bundle["verificationMaterial"]
    envelope = _parse_envelope(bundle)
    tlog_entries = material.get("tlogEntries")
    if material.get("certificate") is not None or (isinstance(tlog_entries, list) and tlog_entries):
        verified = _verify_keyless(bundle_bytes, anchors)
    elif material.get("x509CertificateChain") is not None:
        verified = _verify_certificate(material, envelope, anchors, now)
    elif material.get("publicKey") is not None:
        verified = _verify_key(material, envelope, anchors)
    else:
        raise _malformed(
            "the signature bundle's verificationMaterial holds no publicKey, certificate chain or "
            "certificate; re-sign the model with model-signing"
        )
    if verified.payload_type != IN_TOTO_PAYLOAD_TYPE:
        raise _malformed(f"the signed payload type is not {IN_TOTO_PAYLOAD_TYPE!r}; re-sign the model")
    resources, manifest_digest, ignore_paths = _parse_statement(verified.payload)
    return SignatureEvidence(
        method=verified.method,
        identity=verified.identity,
        resources=resources,
        manifest_digest=manifest_digest,
        bundle_digest=digest_ref(hashlib.sha256(bundle_bytes).hexdigest()),
        issuer=verified.issuer,
        key_fingerprint=verified.key_fingerprint,
        ignore_paths=ignore_paths,
        anchor=verified.anchor,
    )


def verify_bundle(
    bundle_bytes: bytes, anchors: TrustAnchors, *, now: datetime.datetime | None = None
) -> SignatureEvidence | SignatureFailure:
    """Check a model-signing bundle against the trust anchors; never raises for a bad bundle.

    Returns the signed file list as evidence when a trusted signer signed it; the caller compares
    ``evidence.resources`` with the revision's files (``evidence.manifest.compare_manifest``).
    ``now`` (default: the current time) is when certificate-mode chains must be valid.
    """
    try:
        return _verify(bundle_bytes, anchors, now or datetime.datetime.now(datetime.UTC))
    except _Rejected as rejected:
        return SignatureFailure(rejected.reason, rejected.message)
    except RecursionError:
        return SignatureFailure(
            Reason.SIGNATURE_MALFORMED,
            "the signature bundle is nested too deeply to be checked; it is not a model-signing bundle, re-sign",
        )
    except Exception as exc:  # a hostile bundle must never crash reconciliation
        logger.warning("unexpected error while verifying a signature bundle", exc_info=True)
        return SignatureFailure(
            Reason.SIGNATURE_MALFORMED,
            f"the signature bundle could not be checked ({type(exc).__name__}); re-sign the model with model-signing",
        )
