"""The webhook's TLS files: given (cert-manager's Secret, your own), or a self-signed CA made at start.

Why our own and not Kopf's self-signed certificate: Kopf makes it with ``certbuilder``/``oscrypto``, an extra
dependency that fails to load with some OpenSSL 3 builds; ``cryptography`` is a dependency already. The CA
signs one server certificate for the names the API server uses (the Service's DNS names, or the URL host);
the CA goes to the webhook configuration's ``caBundle`` (Kopf patches it in), the CA key is never written.
A new CA is made at every start: nothing to rotate, nothing to store. Several replicas would each make
their own and overwrite each other's ``caBundle``: run them with a shared certificate (cert-manager).
"""

from __future__ import annotations

import dataclasses
import datetime
import ipaddress
import os
import pathlib
import tempfile
from collections.abc import Sequence

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

VALID_DAYS = 365  # a process running longer than a year restarts with a new certificate (docs/install.md)


@dataclasses.dataclass(frozen=True)
class TlsFiles:
    certfile: str
    pkeyfile: str
    cafile: str | None


def given_files(cert_dir: str) -> TlsFiles:
    """``tls.crt``/``tls.key`` (and ``ca.crt`` when present, else the certificate is its own CA bundle)."""
    directory = pathlib.Path(cert_dir)
    cert, key, ca = directory / "tls.crt", directory / "tls.key", directory / "ca.crt"
    for needed in (cert, key):
        if not needed.is_file():
            raise ValueError(
                f"webhook certificate directory {cert_dir}: {needed.name} is missing; mount a kubernetes.io/tls "
                "Secret there (cert-manager's Certificate writes tls.crt, tls.key and ca.crt) or unset "
                "OPENMODEL_WEBHOOK_CERT_DIR for a self-signed certificate"
            )
    return TlsFiles(str(cert), str(key), str(ca) if ca.is_file() else None)


def self_signed(names: Sequence[str], directory: str | None = None) -> TlsFiles:
    """A new CA and a server certificate for ``names`` (DNS names or IP addresses), in a private directory."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "openmodel-operator webhook CA")])
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=VALID_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True
        )  # keyCertSign, cRLSign
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    sans: list[x509.GeneralName] = []
    for name in dict.fromkeys(n for n in names if n):
        try:
            address = ipaddress.ip_address(name)
        except ValueError:
            sans.append(x509.DNSName(name))
        else:
            if not address.is_unspecified:
                sans.append(x509.IPAddress(address))
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0] if names else "localhost")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=VALID_DAYS))
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    where = pathlib.Path(directory or tempfile.mkdtemp(prefix="openmodel-webhook-"))
    where.mkdir(parents=True, exist_ok=True)
    os.chmod(where, 0o700)
    files = TlsFiles(str(where / "tls.crt"), str(where / "tls.key"), str(where / "ca.crt"))
    pathlib.Path(files.certfile).write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path = pathlib.Path(files.pkeyfile)
    key_path.touch(mode=0o600)
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    pathlib.Path(str(files.cafile)).write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    return files
