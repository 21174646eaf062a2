"""Sign a verification Statement with the operator's own key, and check one offline.

The Statement goes into a DSSE envelope (payload type ``application/vnd.in-toto+json``, ECDSA P-256 over the
DSSE pre-authentication encoding) inside a Sigstore bundle v0.3 whose verification material is a public key
hint — the same shape model-signing writes for key-signed models, so ``sigstore-models``/protobuf-specs
readers parse it (tests/test_attestation.py) and ``openmodel attest verify`` checks it. There is no
transparency log: the operator's key is the root of trust, checked against its published public key.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import json
from collections.abc import Mapping
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from openmodel_operator.evidence.attestation import (
    PAYLOAD_TYPE,
    AttestationError,
    canonical_json,
    checked_statement,
)
from openmodel_operator.signing.signature import BUNDLE_MEDIA_TYPE, fingerprint, key_hint, pae

MAX_ATTESTATION_BYTES = 256 * 1024  # one decision is a few KB; a larger file is not one of ours


@dataclasses.dataclass(frozen=True)
class VerifiedAttestation:
    """A Statement whose signature verified, and the fingerprint of the key that made it."""

    statement: dict[str, Any]
    key_fingerprint: str


def generate_private_key_pem() -> bytes:
    """A fresh ECDSA P-256 private key, PKCS#8 PEM without a password (it lives in a Secret)."""
    key = ec.generate_private_key(ec.SECP256R1())
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def load_private_key(pem: bytes) -> ec.EllipticCurvePrivateKey:
    """The operator's signing key; ValueError (never quoting the key) when it is not an EC P-256 PEM key."""
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError):
        raise ValueError("it is not an unencrypted PEM private key") from None
    except Exception as exc:  # cryptography's UnsupportedAlgorithm
        raise ValueError(f"it cannot be loaded ({type(exc).__name__})") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey) or key.curve.key_size != 256:
        raise ValueError("it is not an ECDSA P-256 key (make one with `openssl ecparam -name prime256v1 -genkey`)")
    return key


def public_key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    """The PEM SubjectPublicKeyInfo an auditor verifies with."""
    return key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def sign_statement(statement: Mapping[str, Any], key: ec.EllipticCurvePrivateKey) -> bytes:
    """The Statement signed as a DSSE envelope in a Sigstore bundle v0.3 (compact JSON bytes)."""
    payload = canonical_json(dict(statement))
    signature = key.sign(pae(PAYLOAD_TYPE, payload), ec.ECDSA(hashes.SHA256()))
    bundle = {
        "mediaType": BUNDLE_MEDIA_TYPE,
        "verificationMaterial": {"publicKey": {"hint": key_hint(key.public_key())}, "tlogEntries": []},
        "dsseEnvelope": {
            "payload": base64.b64encode(payload).decode(),
            "payloadType": PAYLOAD_TYPE,
            "signatures": [{"sig": base64.b64encode(signature).decode(), "keyid": ""}],
        },
    }
    return json.dumps(bundle, separators=(",", ":")).encode()


def _b64(value: Any, field: str) -> bytes:
    if not isinstance(value, str) or not value:
        raise AttestationError(f"{field} is missing; the file is not a signed attestation")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise AttestationError(f"{field} is not valid base64; the file was altered or cut") from None


def load_public_key(pem: bytes) -> ec.EllipticCurvePublicKey:
    """The operator's public key; AttestationError when it is not an EC P-256 PEM public key."""
    try:
        key = serialization.load_pem_public_key(pem)
    except Exception:
        raise AttestationError(
            "--public-key is not a PEM public key (a BEGIN PUBLIC KEY block); export it from the "
            "operator's public-key ConfigMap (docs/provenance.md)"
        ) from None
    if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.key_size != 256:
        raise AttestationError("--public-key is not an ECDSA P-256 public key; the operator signs with P-256")
    return key


def verify_attestation(bundle_bytes: bytes, public_key: ec.EllipticCurvePublicKey) -> VerifiedAttestation:
    """The Statement of a bundle signed by ``public_key``, or AttestationError saying what does not hold.

    Every byte counts: the signature covers the payload type and the payload through DSSE's PAE, so one
    changed byte of either (or of the signature) fails; a bundle whose key hint names another key fails
    before any signature is tried.
    """
    if len(bundle_bytes) > MAX_ATTESTATION_BYTES:
        raise AttestationError(
            f"the file is {len(bundle_bytes)} bytes, over {MAX_ATTESTATION_BYTES}: not one attestation"
        )
    try:
        bundle = json.loads(bundle_bytes)
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise AttestationError("the file is not JSON, so not a Sigstore bundle") from None
    if not isinstance(bundle, dict) or bundle.get("mediaType") != BUNDLE_MEDIA_TYPE:
        found = bundle.get("mediaType") if isinstance(bundle, dict) else None
        raise AttestationError(f"mediaType is {str(found)[:80]!r}, expected {BUNDLE_MEDIA_TYPE!r}")
    envelope = bundle.get("dsseEnvelope")
    if not isinstance(envelope, dict):
        raise AttestationError("the bundle has no dsseEnvelope; it is not a signed attestation")
    if envelope.get("payloadType") != PAYLOAD_TYPE:
        raise AttestationError(
            f"dsseEnvelope.payloadType is {str(envelope.get('payloadType'))[:80]!r}, expected {PAYLOAD_TYPE!r}"
        )
    signatures = envelope.get("signatures")
    if not isinstance(signatures, list) or len(signatures) != 1 or not isinstance(signatures[0], dict):
        raise AttestationError("dsseEnvelope.signatures must hold exactly one signature")
    payload = _b64(envelope.get("payload"), "dsseEnvelope.payload")
    signature = _b64(signatures[0].get("sig"), "dsseEnvelope.signatures[0].sig")
    material = bundle.get("verificationMaterial")
    hint = ((material or {}).get("publicKey") or {}).get("hint") if isinstance(material, dict) else None
    expected = key_hint(public_key)
    if hint is not None and (not isinstance(hint, str) or hint.lower() != expected):
        raise AttestationError(
            f"the bundle was signed by another key (hint {str(hint)[:80]!r}; the given key's is {expected}): check "
            "--public-key is the operator's that wrote it"
        )
    try:
        public_key.verify(signature, pae(PAYLOAD_TYPE, payload), ec.ECDSA(hashes.SHA256()))
    except (InvalidSignature, ValueError):
        raise AttestationError(
            f"the signature does not verify with {fingerprint(public_key)}: the attestation was altered after "
            "signing, or another key signed it"
        ) from None
    try:
        statement = json.loads(payload)
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise AttestationError("the signed payload is not JSON") from None
    return VerifiedAttestation(checked_statement(statement), fingerprint(public_key))
