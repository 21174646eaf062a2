"""Issue 8, properties 14/16/17 for signature bundles: hostile bundles and statements never crash the
verifier, and evidence comes only from what the trusted signer signed.

The bundle is the one file of a model read before the decision and it is entirely attacker-chosen:
arbitrary JSON, byte-level mutations of a valid bundle, re-signed hostile statements, nesting deep enough
to exhaust Python's recursion limit, and resource names that display as something else (bidi overrides,
control characters, line separators). Bounded hypothesis runs keep CI fast.
"""

from __future__ import annotations

import base64
import copy
import json
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from openmodel_operator.evidence.manifest import subject_digest_of
from openmodel_operator.evidence.records import Reason, SignatureEvidence, SignatureFailure
from openmodel_operator.signing.signature import TrustAnchors, TrustedKey, verify_bundle
from signing_fixtures import (
    TINY_MODEL,
    KeyPair,
    decode_payload,
    new_key,
    sign_statement_with_key,
    sign_with_key,
    write_model,
)

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=25,
)


@pytest.fixture(scope="module")
def key() -> KeyPair:
    return new_key()


@pytest.fixture(scope="module")
def anchors(key: KeyPair) -> TrustAnchors:
    return TrustAnchors(keys=[TrustedKey("release", key.public_pem)])


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory, key: KeyPair) -> bytes:
    work = tmp_path_factory.mktemp("fuzz")
    return sign_with_key(write_model(work / "tiny", TINY_MODEL), key, work / "sig")


@pytest.fixture(scope="module")
def original(bundle: bytes, anchors: TrustAnchors) -> SignatureEvidence:
    result = verify_bundle(bundle, anchors)
    assert isinstance(result, SignatureEvidence), result  # control: the untouched bundle verifies
    return result


def failure(result: SignatureEvidence | SignatureFailure) -> SignatureFailure:
    assert isinstance(result, SignatureFailure), result
    return result


# ---------------------------------------------------------------- arbitrary input


@FUZZ
@given(value=JSON)
def test_arbitrary_json_is_never_evidence(value: Any, anchors: TrustAnchors) -> None:
    failure(verify_bundle(json.dumps(value).encode(), anchors))


@FUZZ
@given(material=JSON, envelope=JSON)
def test_bundle_shaped_json_is_never_evidence(material: Any, envelope: Any, anchors: TrustAnchors) -> None:
    hostile = {
        "mediaType": "application/vnd.dev.sigstore.bundle.v0.3+json",
        "verificationMaterial": material if isinstance(material, dict) else {"publicKey": material},
        "dsseEnvelope": envelope,
    }
    failure(verify_bundle(json.dumps(hostile).encode(), anchors))


@FUZZ
@given(data=st.binary(max_size=256))
def test_arbitrary_bytes_are_never_evidence(data: bytes, anchors: TrustAnchors) -> None:
    failure(verify_bundle(data, anchors))


# ---------------------------------------------------------------- mutations of a valid bundle


@FUZZ
@given(
    edits=st.lists(st.tuples(st.integers(min_value=0), st.integers(min_value=1, max_value=255)), min_size=1, max_size=4)
)
def test_byte_mutations_never_yield_other_evidence(
    edits: list[tuple[int, int]], bundle: bytes, anchors: TrustAnchors, original: SignatureEvidence
) -> None:
    """A mutated bundle either fails or (whitespace, base64 padding bits) still states exactly what was signed."""
    data = bytearray(bundle)
    for position, flip in edits:
        data[position % len(data)] ^= flip
    result = verify_bundle(bytes(data), anchors)
    if isinstance(result, SignatureEvidence):
        assert result.resources == original.resources and result.manifest_digest == original.manifest_digest
        assert result.identity == original.identity and result.anchor == original.anchor


def _envelope_with(bundle: bytes, field: str, mutate: Any) -> bytes:
    doc = json.loads(bundle)
    envelope = doc["dsseEnvelope"]
    if field == "payload":
        envelope["payload"] = base64.b64encode(mutate(base64.b64decode(envelope["payload"]))).decode()
    else:
        signature = envelope["signatures"][0]
        signature["sig"] = base64.b64encode(mutate(base64.b64decode(signature["sig"]))).decode()
    return json.dumps(doc).encode()


@FUZZ
@given(
    field=st.sampled_from(["payload", "sig"]),
    position=st.integers(min_value=0),
    flip=st.integers(min_value=1, max_value=255),
    insert=st.binary(max_size=3),
)
def test_signed_bytes_cannot_change(
    field: str, position: int, flip: int, insert: bytes, bundle: bytes, anchors: TrustAnchors
) -> None:
    """Any change of the signed payload or of the signature is a failure, never evidence."""

    def mutate(raw: bytes) -> bytes:
        data = bytearray(raw)
        index = position % len(data)
        data[index] ^= flip
        return bytes(data[:index]) + insert + bytes(data[index:])

    failure(verify_bundle(_envelope_with(bundle, field, mutate), anchors))


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every path inside a JSON value (its containers and leaves)."""
    found = [prefix]
    if isinstance(value, dict):
        for k, v in value.items():
            found += _paths(v, (*prefix, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            found += _paths(v, (*prefix, i))
    return found


@FUZZ
@given(choice=st.integers(min_value=0), replacement=JSON)
def test_hostile_statements_signed_by_a_trusted_key(
    choice: int, replacement: Any, bundle: bytes, key: KeyPair, anchors: TrustAnchors
) -> None:
    """Even a trusted signer's statement is parsed defensively: a hostile one fails, never crashes, and any
    evidence that comes out is consistent (its subject digest is the digest of its listed files)."""
    statement = decode_payload(bundle)
    paths = _paths(statement)[1:]
    path = paths[choice % len(paths)]
    hostile: Any = copy.deepcopy(statement)
    target = hostile
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = replacement
    result = verify_bundle(sign_statement_with_key(hostile, key), anchors)
    if isinstance(result, SignatureEvidence):
        assert subject_digest_of(result.resources) == result.manifest_digest
    else:
        assert result.reason is Reason.SIGNATURE_MALFORMED, result.message


# ---------------------------------------------------------------- recursion cannot be driven by a payload


@pytest.mark.parametrize("depth", [10_000, 200_000])
def test_deeply_nested_bundle_is_malformed_not_a_crash(depth: int, anchors: TrustAnchors) -> None:
    for nested in (b"[" * depth + b"]" * depth, b'{"a":' * depth + b"1" + b"}" * depth):
        result = failure(verify_bundle(nested, anchors))
        assert result.reason is Reason.SIGNATURE_MALFORMED and "nested too deeply" in result.message


@pytest.mark.parametrize("depth", [10_000, 200_000])
def test_deeply_nested_signed_statement_is_malformed_not_a_crash(
    depth: int, bundle: bytes, key: KeyPair, anchors: TrustAnchors
) -> None:
    doc = json.loads(bundle)
    payload = b"[" * depth + b"]" * depth
    payload_type = b"application/vnd.in-toto+json"
    pae = b"DSSEv1 %d %s %d %s" % (len(payload_type), payload_type, len(payload), payload)
    signature = key.private_key.sign(pae, ec.ECDSA(hashes.SHA256()))
    doc["dsseEnvelope"]["payload"] = base64.b64encode(payload).decode()
    doc["dsseEnvelope"]["signatures"][0]["sig"] = base64.b64encode(signature).decode()
    result = failure(verify_bundle(json.dumps(doc).encode(), anchors))
    assert result.reason is Reason.SIGNATURE_MALFORMED and "nested too deeply" in result.message


# ---------------------------------------------------------------- names that display as something else


DECEPTIVE = {
    "rlo": "model\u202egpj.safetensors",  # right-to-left override
    "lri": "model\u2066x\u2069.safetensors",  # isolate
    "rlm": "model\u200f.safetensors",
    "alm": "model\u061c.safetensors",
    "zwsp": "mod\u200bel.safetensors",
    "esc": "model\x1b[2K.safetensors",
    "nel": "model\x85.safetensors",  # C1
    "csi": "model\x9b.safetensors",  # C1
    "del": "model\x7f.safetensors",
    "ls": "model\u2028config.json",
    "ps": "model\u2029config.json",
    "newline": "model\nconfig.json",
}


def _statement_with_name(bundle: bytes, name: str) -> dict[str, Any]:
    statement: Any = copy.deepcopy(decode_payload(bundle))
    statement["predicate"]["resources"][0]["name"] = name
    resources = {r["name"]: r["digest"] for r in statement["predicate"]["resources"]}
    statement["subject"][0]["digest"]["sha256"] = subject_digest_of(resources).removeprefix("sha256:")
    return dict(statement)


@pytest.mark.parametrize("kind", sorted(DECEPTIVE))
def test_deceptive_signed_names_are_refused_and_shown_escaped(
    kind: str, bundle: bytes, key: KeyPair, anchors: TrustAnchors
) -> None:
    name = DECEPTIVE[kind]
    result = failure(verify_bundle(sign_statement_with_key(_statement_with_name(bundle, name), key), anchors))
    assert result.reason is Reason.SIGNATURE_MALFORMED and "unsafe path" in result.message
    odd = [c for c in name if not c.isascii() or not c.isprintable()]
    assert odd and not any(c in result.message for c in odd)  # escaped, never raw
    assert f"\\u{ord(odd[0]):04x}" in result.message or f"\\x{ord(odd[0]):02x}" in result.message


def test_international_names_are_not_deceptive(bundle: bytes, key: KeyPair, anchors: TrustAnchors) -> None:
    """Control: letters outside ASCII are fine; only characters that change how a name displays are refused."""
    name = "modèle/权重-😀.safetensors"
    result = verify_bundle(sign_statement_with_key(_statement_with_name(bundle, name), key), anchors)
    assert isinstance(result, SignatureEvidence), result
    assert name in result.resources


# ---------------------------------------------------------------- signer globs are bounded


@pytest.mark.parametrize("ignore", [["*" * 4097], [f"dir{i}/*" for i in range(1025)]])
def test_oversized_signer_ignore_paths_are_refused(
    ignore: list[str], bundle: bytes, key: KeyPair, anchors: TrustAnchors
) -> None:
    """Each ignore pattern is matched against every file: a trusted signer cannot make that unbounded."""
    statement: Any = copy.deepcopy(decode_payload(bundle))
    statement["predicate"]["serialization"]["ignore_paths"] = ignore
    result = failure(verify_bundle(sign_statement_with_key(statement, key), anchors))
    assert result.reason is Reason.SIGNATURE_MALFORMED and "ignore_paths" in result.message


def test_control_ordinary_ignore_paths_verify(bundle: bytes, key: KeyPair, anchors: TrustAnchors) -> None:
    statement: Any = copy.deepcopy(decode_payload(bundle))
    statement["predicate"]["serialization"]["ignore_paths"] = [".git", ".gitattributes", "docs/*"]
    assert isinstance(verify_bundle(sign_statement_with_key(statement, key), anchors), SignatureEvidence)
