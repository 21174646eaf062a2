"""Key material, certificate chains, tiny models and signed bundles for tests.

Key and certificate bundles are made by model-signing itself (through ``signing.signer``), so the
verifier is tested against the real format. Keyless bundles are made by ``FakeSigstore``: our own
Fulcio-like CA, CT log and Rekor keys, published in a trusted_root.json, with a leaf certificate that
carries an embedded SCT and a Rekor v1 ``dsse`` entry with inclusion proof, signed checkpoint and
signed entry timestamp, which sigstore-python's offline ``Verifier`` accepts.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime
import hashlib
import json
import pathlib
import struct
from collections.abc import Mapping, Sequence
from typing import Any

import model_signing
import rfc8785
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID, ObjectIdentifier
from google.protobuf import json_format

from openmodel_operator.evidence.records import FileEntry
from openmodel_operator.signing.signer import sign_directory, sign_directory_with_certificate

OIDC_ISSUER_OID = ObjectIdentifier("1.3.6.1.4.1.57264.1.1")
OIDC_ISSUER_V2_OID = ObjectIdentifier("1.3.6.1.4.1.57264.1.8")
SCT_LIST_OID = ObjectIdentifier("1.3.6.1.4.1.11129.2.4.2")
IN_TOTO = "application/vnd.in-toto+json"


def _utcnow() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC).replace(microsecond=0)


def ms_config(module: str) -> Any:
    """``model_signing.<module>.Config()`` (untyped upstream), for tests that call model-signing directly."""
    return getattr(model_signing, module).Config()


# ---------------------------------------------------------------- keys


@dataclasses.dataclass(frozen=True)
class KeyPair:
    """An EC key pair, its PEM encodings and its fingerprint as the verifier reports it."""

    private_key: ec.EllipticCurvePrivateKey
    private_pem: bytes
    public_pem: bytes

    @property
    def fingerprint(self) -> str:
        der = self.private_key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        return f"SHA256:{hashlib.sha256(der).hexdigest()}"

    def write_private(self, path: pathlib.Path) -> pathlib.Path:
        path.write_bytes(self.private_pem)
        return path


def new_key(curve: ec.EllipticCurve | None = None) -> KeyPair:
    """A fresh EC key (P-256 unless told otherwise)."""
    key = ec.generate_private_key(curve or ec.SECP256R1())
    return KeyPair(
        key,
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()),
        key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo),
    )


# ---------------------------------------------------------------- certificates


def _name(common_name: str, org: str = "OpenModel Tests") -> x509.Name:
    return x509.Name(
        [x509.NameAttribute(NameOID.ORGANIZATION_NAME, org), x509.NameAttribute(NameOID.COMMON_NAME, common_name)]
    )


def _ca_cert(
    subject: x509.Name,
    key: KeyPair,
    issuer: x509.Name,
    issuer_key: KeyPair,
    not_before: datetime.datetime,
    path_length: int | None,
) -> x509.Certificate:
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key.private_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_before + datetime.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=path_length), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.private_key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.private_key.public_key()), critical=False
        )
        .sign(issuer_key.private_key, hashes.SHA256())
    )


def _pem(*certs: x509.Certificate) -> bytes:
    return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certs)


@dataclasses.dataclass(frozen=True)
class CertChain:
    """root -> intermediate -> leaf, the leaf's key, and ``ca_bundle_pem`` (root + intermediate)."""

    root: x509.Certificate
    intermediate: x509.Certificate
    leaf: x509.Certificate
    leaf_key: KeyPair

    @property
    def root_pem(self) -> bytes:
        return _pem(self.root)

    @property
    def ca_bundle_pem(self) -> bytes:
        return _pem(self.root, self.intermediate)

    def write(self, directory: pathlib.Path) -> tuple[pathlib.Path, list[pathlib.Path]]:
        """Write the leaf key and [leaf cert, intermediate cert]; return (key path, cert paths)."""
        directory.mkdir(parents=True, exist_ok=True)
        key_path = self.leaf_key.write_private(directory / "leaf.key")
        leaf_path = directory / "leaf.pem"
        leaf_path.write_bytes(_pem(self.leaf))
        intermediate_path = directory / "intermediate.pem"
        intermediate_path.write_bytes(_pem(self.intermediate))
        return key_path, [leaf_path, intermediate_path]


def _leaf_key_usage(code_signing: bool) -> x509.KeyUsage:
    """A leaf's KeyUsage: digitalSignature for a code-signing leaf, keyEncipherment for a TLS-like one."""
    return x509.KeyUsage(
        digital_signature=code_signing,
        content_commitment=False,
        key_encipherment=not code_signing,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=False,
        crl_sign=False,
        encipher_only=False,
        decipher_only=False,
    )


def new_cert_chain(
    leaf_cn: str = "release-bot@example.org",
    *,
    code_signing: bool = True,
    leaf_not_before: datetime.datetime | None = None,
    leaf_lifetime: datetime.timedelta = datetime.timedelta(days=30),
) -> CertChain:
    """A private PKI in the shape model-signing's certificate mode expects (code-signing leaf)."""
    now = _utcnow()
    root_key, intermediate_key, leaf_key = new_key(ec.SECP384R1()), new_key(), new_key()
    root_name, intermediate_name = _name("Test Root CA"), _name("Test Intermediate CA")
    ca_start = now - datetime.timedelta(days=365)
    root = _ca_cert(root_name, root_key, root_name, root_key, ca_start, None)
    intermediate = _ca_cert(intermediate_name, intermediate_key, root_name, root_key, ca_start, 0)
    start = leaf_not_before or now - datetime.timedelta(minutes=5)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(leaf_cn))
        .issuer_name(intermediate_name)
        .public_key(leaf_key.private_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + leaf_lifetime)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(intermediate_key.private_key.public_key()),
            critical=False,
        )
        .add_extension(x509.SubjectAlternativeName([x509.RFC822Name(leaf_cn)]), critical=False)
    )
    # model-signing accepts a leaf with KeyUsage digitalSignature or EKU codeSigning; a TLS server
    # certificate (keyEncipherment, serverAuth) has neither.
    builder = builder.add_extension(_leaf_key_usage(code_signing), critical=True)
    eku = ExtendedKeyUsageOID.CODE_SIGNING if code_signing else ExtendedKeyUsageOID.SERVER_AUTH
    builder = builder.add_extension(x509.ExtendedKeyUsage([eku]), critical=False)
    leaf = builder.sign(intermediate_key.private_key, hashes.SHA256())
    return CertChain(root, intermediate, leaf, leaf_key)


# ---------------------------------------------------------------- models


def flip_last_byte(data: bytes) -> bytes:
    """The same bytes with the last one inverted: a tamper that always changes the content.

    (Setting it to a fixed value does not: random test weights end in that value one time in 256.)
    """
    return data[:-1] + bytes([data[-1] ^ 0xFF])


def write_model(directory: pathlib.Path, files: Mapping[str, bytes]) -> pathlib.Path:
    """Write ``{relative path: bytes}`` under ``directory`` (created)."""
    directory.mkdir(parents=True, exist_ok=True)
    for name, content in files.items():
        path = directory / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
    return directory


TINY_MODEL: Mapping[str, bytes] = {
    "config.json": b'{"model_type": "tiny"}\n',
    "model.safetensors": b"\x08\x00\x00\x00\x00\x00\x00\x00{}      " + bytes(range(64)),
    "tokenizer/tokenizer.json": b'{"version": "1.0"}\n',
    "README.md": b"# tiny\n",
}


def file_entries(files: Mapping[str, bytes]) -> list[FileEntry]:
    """The FileEntry list a resolver would report for these files (plain sha256, as the Hub lists)."""
    return [FileEntry(name, len(data), hashlib.sha256(data).hexdigest()) for name, data in files.items()]


def sign_with_key(model_dir: pathlib.Path, key: KeyPair, work: pathlib.Path, ignore: Sequence[str] = ()) -> bytes:
    """model-signing key mode; the bundle is written beside the model, not inside it."""
    work.mkdir(parents=True, exist_ok=True)
    return sign_directory(model_dir, key.write_private(work / "signing.key"), work / "model.sig", ignore)


def sign_with_certificate(
    model_dir: pathlib.Path, chain: CertChain, work: pathlib.Path, ignore: Sequence[str] = ()
) -> bytes:
    """model-signing certificate mode (leaf + intermediate embedded in the bundle)."""
    key_path, cert_paths = chain.write(work / "pki")
    return sign_directory_with_certificate(model_dir, key_path, cert_paths, work / "model.sig", ignore)


def decode_payload(bundle: bytes) -> dict[str, object]:
    """The in-toto statement inside a bundle, for assertions."""
    envelope = json.loads(bundle)["dsseEnvelope"]
    statement: dict[str, object] = json.loads(base64.b64decode(envelope["payload"]))
    return statement


def replace_payload(bundle: bytes, statement: Mapping[str, object]) -> bytes:
    """The same bundle (same signature) around another statement: a tampered bundle."""
    data = json.loads(bundle)
    data["dsseEnvelope"]["payload"] = base64.b64encode(json.dumps(statement, indent=2).encode()).decode()
    return json.dumps(data).encode()


def sign_statement_with_key(statement: Mapping[str, object], key: KeyPair) -> bytes:
    """A key-mode bundle shaped like model-signing's around any statement (validly signed by ``key``)."""
    payload = json.dumps(statement, indent=2).encode()
    signature = key.private_key.sign(_pae(IN_TOTO, payload), ec.ECDSA(hashes.SHA256()))
    bundle = {
        "mediaType": "application/vnd.dev.sigstore.bundle.v0.3+json",
        "verificationMaterial": {"publicKey": {"hint": hashlib.sha256(key.public_pem).hexdigest()}, "tlogEntries": []},
        "dsseEnvelope": {
            "payload": _b64(payload),
            "payloadType": IN_TOTO,
            "signatures": [{"sig": _b64(signature), "keyid": ""}],
        },
    }
    return json.dumps(bundle, indent=2).encode()


# ---------------------------------------------------------------- keyless (fake Sigstore instance)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _spki_der(key: KeyPair) -> bytes:
    return key.private_key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _pae(payload_type: str, payload: bytes) -> bytes:
    return b"DSSEv1 %d %s %d %s" % (len(payload_type), payload_type.encode(), len(payload), payload)


def _tls_opaque(data: bytes, length_bytes: int) -> bytes:
    return len(data).to_bytes(length_bytes, "big") + data


def _der_octet_string(data: bytes) -> bytes:
    length = len(data)
    if length < 0x80:
        return b"\x04" + bytes([length]) + data
    encoded = length.to_bytes((length.bit_length() + 7) // 8, "big")
    return b"\x04" + bytes([0x80 | len(encoded)]) + encoded + data


class FakeSigstore:
    """A private Sigstore instance: Fulcio-like root CA, CT log key and Rekor key, all in memory."""

    rekor_url = "https://rekor.openmodel.invalid"
    log_name = "rekor.openmodel.invalid"
    origin = "rekor.openmodel.invalid - 1"

    def __init__(self) -> None:
        now = _utcnow()
        self.start = now - datetime.timedelta(days=30)
        self.ca_key, self.ct_key, self.rekor_key = new_key(ec.SECP384R1()), new_key(), new_key()
        name = _name("fulcio.openmodel.invalid", org="openmodel.invalid")
        self.ca_cert = _ca_cert(name, self.ca_key, name, self.ca_key, self.start, 1)
        self.ct_log_id = hashlib.sha256(_spki_der(self.ct_key)).digest()
        self.rekor_log_id = hashlib.sha256(_spki_der(self.rekor_key)).digest()

    def trusted_root_json(self) -> bytes:
        """A trusted_root.json naming only this instance's keys."""
        valid_for = {"start": self.start.strftime("%Y-%m-%dT%H:%M:%SZ")}

        def log(url: str, key: KeyPair, log_id: bytes) -> dict[str, object]:
            return {
                "baseUrl": url,
                "hashAlgorithm": "SHA2_256",
                "publicKey": {
                    "rawBytes": _b64(_spki_der(key)),
                    "keyDetails": "PKIX_ECDSA_P256_SHA_256",
                    "validFor": valid_for,
                },
                "logId": {"keyId": _b64(log_id)},
            }

        root = {
            "mediaType": "application/vnd.dev.sigstore.trustedroot+json;version=0.1",
            "tlogs": [log(self.rekor_url, self.rekor_key, self.rekor_log_id)],
            "certificateAuthorities": [
                {
                    "subject": {"organization": "openmodel.invalid", "commonName": "fulcio.openmodel.invalid"},
                    "uri": "https://fulcio.openmodel.invalid",
                    "certChain": {
                        "certificates": [{"rawBytes": _b64(self.ca_cert.public_bytes(serialization.Encoding.DER))}]
                    },
                    "validFor": valid_for,
                }
            ],
            "ctlogs": [log("https://ctfe.openmodel.invalid", self.ct_key, self.ct_log_id)],
            "timestampAuthorities": [],
        }
        return json.dumps(root, indent=2).encode()

    def client_trust_config_json(self) -> bytes:
        """The same root wrapped as a ClientTrustConfig, for model-signing's own keyless verifier."""
        valid_for = {"start": self.start.strftime("%Y-%m-%dT%H:%M:%SZ")}

        def service(url: str) -> dict[str, object]:
            return {"url": url, "majorApiVersion": 1, "validFor": valid_for, "operator": "openmodel.invalid"}

        config = {
            "mediaType": "application/vnd.dev.sigstore.clienttrustconfig.v0.1+json",
            "trustedRoot": json.loads(self.trusted_root_json()),
            "signingConfig": {
                "mediaType": "application/vnd.dev.sigstore.signingconfig.v0.2+json",
                "caUrls": [service("https://fulcio.openmodel.invalid")],
                "oidcUrls": [service("https://oauth2.openmodel.invalid/auth")],
                "rekorTlogUrls": [service(self.rekor_url)],
                "tsaUrls": [],
                "rekorTlogConfig": {"selector": "ANY"},
                "tsaConfig": {"selector": "ANY"},
            },
        }
        return json.dumps(config, indent=2).encode()

    # -- Fulcio + CT

    def issue(self, key: KeyPair, email: str, oidc_issuer: str, not_before: datetime.datetime) -> x509.Certificate:
        """A Fulcio-shaped leaf for ``email`` with an embedded precertificate SCT from our CT log."""

        def builder() -> x509.CertificateBuilder:
            return (
                x509.CertificateBuilder()
                .subject_name(x509.Name([]))
                .issuer_name(self.ca_cert.subject)
                .public_key(key.private_key.public_key())
                .serial_number(serial)
                .not_valid_before(not_before)
                .not_valid_after(not_before + datetime.timedelta(minutes=10))
                .add_extension(_leaf_key_usage(code_signing=True), critical=True)
                .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CODE_SIGNING]), critical=False)
                .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.private_key.public_key()), critical=False)
                .add_extension(
                    x509.AuthorityKeyIdentifier.from_issuer_public_key(self.ca_key.private_key.public_key()),
                    critical=False,
                )
                .add_extension(x509.SubjectAlternativeName([x509.RFC822Name(email)]), critical=True)
                .add_extension(x509.UnrecognizedExtension(OIDC_ISSUER_OID, oidc_issuer.encode()), critical=False)
                .add_extension(
                    x509.UnrecognizedExtension(
                        OIDC_ISSUER_V2_OID, b"\x0c" + bytes([len(oidc_issuer)]) + oidc_issuer.encode()
                    ),
                    critical=False,
                )
            )

        serial = x509.random_serial_number()
        precert = builder().sign(self.ca_key.private_key, hashes.SHA256())
        # RFC 6962 precert entry: issuer key hash + the TBS without the SCT list extension, which is
        # exactly the TBS of the certificate built without it.
        issuer_key_hash = hashlib.sha256(_spki_der(self.ca_key)).digest()
        timestamp_ms = int(not_before.timestamp() * 1000) + 1000
        signed = struct.pack("!BBQH", 0, 0, timestamp_ms, 1) + issuer_key_hash
        signed += _tls_opaque(precert.tbs_certificate_bytes, 3) + _tls_opaque(b"", 2)
        sct_signature = self.ct_key.private_key.sign(signed, ec.ECDSA(hashes.SHA256()))
        sct = (
            b"\x00"
            + self.ct_log_id
            + struct.pack("!Q", timestamp_ms)
            + _tls_opaque(b"", 2)
            + b"\x04\x03"
            + _tls_opaque(sct_signature, 2)  # sha256 / ecdsa
        )
        sct_list = _tls_opaque(_tls_opaque(sct, 2), 2)
        extension = x509.UnrecognizedExtension(SCT_LIST_OID, _der_octet_string(sct_list))
        return builder().add_extension(extension, critical=False).sign(self.ca_key.private_key, hashes.SHA256())

    # -- Rekor

    def _checkpoint(self, root_hash: bytes, size: int) -> str:
        note = f"{self.origin}\n{size}\n{_b64(root_hash)}\n"
        signature = self.rekor_key.private_key.sign(note.encode(), ec.ECDSA(hashes.SHA256()))
        # The signature line names the log by host only (no spaces), as Rekor does.
        return f"{note}\n\u2014 {self.log_name} {_b64(self.rekor_log_id[:4] + signature)}\n"

    def log_entry(
        self, cert: x509.Certificate, envelope: Mapping[str, object], payload: bytes, integrated: datetime.datetime
    ) -> dict[str, object]:
        """A Rekor v1 ``dsse`` 0.0.1 entry, alone in a tree of size 1, with checkpoint and SET."""
        cert_pem_b64 = _b64(cert.public_bytes(serialization.Encoding.PEM))
        signatures = envelope["signatures"]
        assert isinstance(signatures, list)
        body: dict[str, Any] = {
            "apiVersion": "0.0.1",
            "kind": "dsse",
            "spec": {
                "envelopeHash": {
                    "algorithm": "sha256",
                    "value": hashlib.sha256(json.dumps(envelope).encode()).hexdigest(),
                },
                "payloadHash": {"algorithm": "sha256", "value": hashlib.sha256(payload).hexdigest()},
                "signatures": [{"signature": s["sig"], "verifier": cert_pem_b64} for s in signatures],
            },
        }
        canonical_body = rfc8785.dumps(body)
        leaf_hash = hashlib.sha256(b"\x00" + canonical_body).digest()
        integrated_time = int(integrated.timestamp())
        set_payload = rfc8785.dumps(
            {
                "body": _b64(canonical_body),
                "integratedTime": integrated_time,
                "logID": self.rekor_log_id.hex(),
                "logIndex": 0,
            }
        )
        signed_entry_timestamp = self.rekor_key.private_key.sign(set_payload, ec.ECDSA(hashes.SHA256()))
        return {
            "logIndex": "0",
            "logId": {"keyId": _b64(self.rekor_log_id)},
            "kindVersion": {"kind": "dsse", "version": "0.0.1"},
            "integratedTime": str(integrated_time),
            "inclusionPromise": {"signedEntryTimestamp": _b64(signed_entry_timestamp)},
            "inclusionProof": {
                "logIndex": "0",
                "rootHash": _b64(leaf_hash),
                "treeSize": "1",
                "hashes": [],
                "checkpoint": {"envelope": self._checkpoint(leaf_hash, 1)},
            },
            "canonicalizedBody": _b64(canonical_body),
        }

    def sign_model(self, model_dir: pathlib.Path, email: str, oidc_issuer: str, ignore: Sequence[str] = ()) -> bytes:
        """A keyless bundle over ``model_dir`` (payload built by model-signing's own Payload class)."""
        from model_signing._signing import signing as ms_signing

        config = ms_config("hashing").set_ignored_paths(paths=list(ignore))
        payload = json_format.MessageToJson(ms_signing.Payload(config.hash(model_dir)).statement.pb).encode()
        key = new_key()
        now = _utcnow()
        cert = self.issue(key, email, oidc_issuer, now - datetime.timedelta(minutes=1))
        signature = key.private_key.sign(_pae(IN_TOTO, payload), ec.ECDSA(hashes.SHA256()))
        envelope = {"payload": _b64(payload), "payloadType": IN_TOTO, "signatures": [{"sig": _b64(signature)}]}
        bundle = {
            "mediaType": "application/vnd.dev.sigstore.bundle.v0.3+json",
            "verificationMaterial": {
                "certificate": {"rawBytes": _b64(cert.public_bytes(serialization.Encoding.DER))},
                "tlogEntries": [self.log_entry(cert, envelope, payload, now)],
            },
            "dsseEnvelope": envelope,
        }
        return json.dumps(bundle, indent=2).encode()
