"""Issue 11: each trust decision as a signed SLSA verification summary, kept per model in a bounded history.

The Statements are built from real decisions (a signed model admitted by a policy trusting its key, then
rejected by a policy trusting another key), signed with an operator key, and checked the way an auditor does:
offline, with the public key. Each hostile case (one changed byte, another key, a swapped payload) sits next
to the legitimate one that must verify.
"""

from __future__ import annotations

import base64
import datetime
import json
import pathlib
import re
from typing import Any

import pytest

from openmodel_operator.api.common import CONFIG_KEY
from openmodel_operator.api.openmodel import Provenance
from openmodel_operator.cli import main
from openmodel_operator.evidence.attestation import (
    EXTENSION,
    PREDICATE_TYPE,
    STATEMENT_TYPE,
    AttestationError,
    decision_key,
    describe,
    sha256_ref,
    verification_summary,
)
from openmodel_operator.planning import attestation_history as history
from openmodel_operator.planning import children
from openmodel_operator.planning.trust_result import from_examination
from openmodel_operator.signing.attestation import (
    generate_private_key_pem,
    load_private_key,
    load_public_key,
    public_key_pem,
    sign_statement,
    verify_attestation,
)
from openmodel_operator.sources.examine import examine
from openmodel_operator.trust.examination import ModelRequest
from openmodel_operator.trust.policies import Policy, policy_from_manifest
from signing_fixtures import TINY_MODEL, KeyPair, new_key, sign_with_key, write_model

MODEL = {**TINY_MODEL, "README.md": b"---\nlicense: apache-2.0\n---\n# tiny\n"}
NOW = datetime.datetime(2026, 11, 3, 10, 0, tzinfo=datetime.UTC)


def key_policy(name: str, key: KeyPair, generation: int) -> Policy:
    doc = {
        "apiVersion": "openmodel.io/v1alpha1",
        "kind": "ModelTrustPolicy",
        "metadata": {"name": name, "generation": generation},
        "spec": {"mode": "Enforce", "signature": {"keys": [{"name": "release", "publicKey": key.public_pem.decode()}]}},
    }
    policy = policy_from_manifest(doc)
    assert policy.generation == generation
    return policy


@pytest.fixture(scope="module")
def decisions(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """An admit and a reject of the same signed content: the policy first trusts its key, then (edited) another."""
    work = tmp_path_factory.mktemp("attest")
    signer, other = new_key(), new_key()
    model = write_model(work / "tiny", MODEL)
    (model / "model.sig").write_bytes(sign_with_key(model, signer, work / "sig"))
    admitting, rejecting = key_policy("org", signer, 3), key_policy("org", other, 4)
    out: dict[str, Any] = {}
    for label, policy in (("admit", admitting), ("reject", rejecting)):
        exam = examine(ModelRequest(uri=str(model)), [policy])
        result = from_examination(exam, NOW)
        assert result.provenance is not None
        out[label] = (result.provenance, exam.verdict, policy)
    return out


def statement_of(provenance: Provenance, trusted: bool, policy: Policy) -> dict[str, Any]:
    return verification_summary(
        provenance,
        trusted=trusted,
        namespace="models",
        model="tiny",
        spec_digests={policy.name: policy.spec_digest},
        verifier_version="0.1.0",
    )


@pytest.fixture(scope="module")
def operator_key() -> bytes:
    return generate_private_key_pem()


# ------------------------------------------------------------------------------- the Statement


def test_an_admit_is_a_passed_summary_of_the_decision(decisions: dict[str, Any]) -> None:
    provenance, verdict, policy = decisions["admit"]
    assert verdict.trusted
    statement = statement_of(provenance, True, policy)
    assert statement["_type"] == STATEMENT_TYPE and statement["predicateType"] == PREDICATE_TYPE
    (subject,) = statement["subject"]
    assert subject["digest"] == {"sha256": provenance.manifest_digest.removeprefix("sha256:")}
    assert subject["name"] == provenance.source  # a directory has no commit: the source alone
    predicate = statement["predicate"]
    assert predicate["verificationResult"] == "PASSED"
    assert predicate["verifiedLevels"] == ["OPENMODEL_TIER_SIGNED"]
    assert predicate["timeVerified"] == "2026-11-03T10:00:00Z"
    assert predicate["verifier"]["version"] == {"openmodel-operator": "0.1.0"}
    (entry,) = predicate["policy"]["annotations"]["policies"]
    assert entry["name"] == "org" and entry["generation"] == 3 and entry["verdict"] == "Pass"
    assert entry["specDigest"] == sha256_ref(policy.spec.model_dump(mode="json", by_alias=True, exclude_none=True))
    assert predicate["policy"]["uri"].endswith("/modeltrustpolicies?names=org")
    # the model-signing bundle that was verified is the one input attestation
    (bundle_input,) = predicate["inputAttestations"]
    assert "sha256:" + bundle_input["digest"]["sha256"] == provenance.signature.bundle_digest
    ext = predicate[EXTENSION]
    assert ext["model"] == {"namespace": "models", "name": "tiny"} and ext["trustTier"] == "Signed"
    assert ext["modelSignature"]["identity"] == "release" and ext["modelSignature"]["method"] == "key"


def test_a_reject_is_a_failed_summary_naming_the_policy_that_failed(decisions: dict[str, Any]) -> None:
    provenance, verdict, policy = decisions["reject"]
    assert not verdict.trusted
    predicate = statement_of(provenance, False, policy)["predicate"]
    assert predicate["verificationResult"] == "FAILED"
    assert predicate["verifiedLevels"] == ["FAILED"]  # the spec's value for a failed policy evaluation
    (entry,) = predicate["policy"]["annotations"]["policies"]
    assert entry["generation"] == 4 and entry["verdict"] == "Fail" and "UntrustedSigner" in entry["reasons"]
    assert EXTENSION in predicate and "modelSignature" not in predicate[EXTENSION]  # nobody it trusts signed


def test_resource_uri_is_source_at_commit(decisions: dict[str, Any]) -> None:
    provenance, _, policy = decisions["admit"]
    pinned = provenance.model_copy(update={"source": "hf://acme/tiny", "resolved_revision": "a" * 40})
    statement = statement_of(pinned, True, policy)
    assert statement["subject"][0]["name"] == statement["predicate"]["resourceUri"] == f"hf://acme/tiny@{'a' * 40}"


def test_a_decision_without_content_or_time_is_not_attested(decisions: dict[str, Any]) -> None:
    provenance, _, policy = decisions["admit"]
    with pytest.raises(AttestationError, match="manifestDigest"):
        statement_of(provenance.model_copy(update={"manifest_digest": None}), True, policy)
    with pytest.raises(AttestationError, match="verifiedAt"):
        statement_of(provenance.model_copy(update={"verified_at": None}), True, policy)


def test_the_decision_key_ignores_time_but_not_the_verdict_or_the_policy(decisions: dict[str, Any]) -> None:
    provenance, _, policy = decisions["admit"]
    first = decision_key(statement_of(provenance, True, policy))
    later = provenance.model_copy(update={"verified_at": NOW + datetime.timedelta(hours=1)})
    assert decision_key(statement_of(later, True, policy)) == first  # a re-verification deciding the same
    assert decision_key(statement_of(provenance, False, policy)) != first
    edited = [provenance.policies[0].model_copy(update={"generation": 9})]
    assert decision_key(statement_of(provenance.model_copy(update={"policies": edited}), True, policy)) != first


# ------------------------------------------------------------------------------- signing and verifying


def _tamper_payload(bundle: bytes, position: int) -> bytes:
    doc = json.loads(bundle)
    payload = bytearray(base64.b64decode(doc["dsseEnvelope"]["payload"]))
    payload[position] ^= 0x01
    doc["dsseEnvelope"]["payload"] = base64.b64encode(bytes(payload)).decode()
    return json.dumps(doc).encode()


@pytest.mark.parametrize("label", ["admit", "reject"])
def test_a_signed_attestation_verifies_and_one_changed_byte_fails(
    decisions: dict[str, Any], operator_key: bytes, label: str
) -> None:
    provenance, verdict, policy = decisions[label]
    statement = statement_of(provenance, verdict.trusted, policy)
    key = load_private_key(operator_key)
    bundle = sign_statement(statement, key)
    public = load_public_key(public_key_pem(key))
    verified = verify_attestation(bundle, public)  # legitimate: verifies, and the Statement comes back whole
    assert verified.statement == statement
    # one byte of the payload: the result, the subject digest, anything
    result_at = base64.b64decode(json.loads(bundle)["dsseEnvelope"]["payload"]).index(b'"verificationResult"')
    for position in (0, result_at + 25, 200):
        with pytest.raises(AttestationError, match="does not verify"):
            verify_attestation(_tamper_payload(bundle, position), public)
    # one byte of the signature
    doc = json.loads(bundle)
    sig = bytearray(base64.b64decode(doc["dsseEnvelope"]["signatures"][0]["sig"]))
    sig[-1] ^= 0x01
    doc["dsseEnvelope"]["signatures"][0]["sig"] = base64.b64encode(bytes(sig)).decode()
    with pytest.raises(AttestationError, match="does not verify"):
        verify_attestation(json.dumps(doc).encode(), public)
    # one byte of the payload type (covered by DSSE's PAE)
    doc = json.loads(bundle)
    doc["dsseEnvelope"]["payloadType"] = "application/vnd.in-toto+jsoN"
    with pytest.raises(AttestationError, match="payloadType"):
        verify_attestation(json.dumps(doc).encode(), public)


def test_another_key_fails_even_with_the_hint_removed(decisions: dict[str, Any], operator_key: bytes) -> None:
    provenance, verdict, policy = decisions["admit"]
    statement = statement_of(provenance, verdict.trusted, policy)
    bundle = sign_statement(statement, load_private_key(operator_key))
    stranger = load_private_key(generate_private_key_pem())
    with pytest.raises(AttestationError, match="another key"):
        verify_attestation(bundle, load_public_key(public_key_pem(stranger)))
    doc = json.loads(bundle)
    del doc["verificationMaterial"]["publicKey"]
    with pytest.raises(AttestationError, match="does not verify"):
        verify_attestation(json.dumps(doc).encode(), load_public_key(public_key_pem(stranger)))
    # a stranger's own signature over a forged PASSED, presented with the operator's key hint: refused
    forged = json.loads(sign_statement(statement, stranger))
    forged["verificationMaterial"] = json.loads(bundle)["verificationMaterial"]
    operator_public = load_public_key(public_key_pem(load_private_key(operator_key)))
    with pytest.raises(AttestationError, match="does not verify"):
        verify_attestation(json.dumps(forged).encode(), operator_public)


def test_the_bundle_is_a_standard_sigstore_bundle(decisions: dict[str, Any], operator_key: bytes) -> None:
    """sigstore-models (the protobuf-specs bundle model sigstore-python reads) parses it as a v0.3 DSSE bundle."""
    from sigstore_models.bundle.v1 import Bundle

    provenance, verdict, policy = decisions["admit"]
    bundle = sign_statement(statement_of(provenance, verdict.trusted, policy), load_private_key(operator_key))
    parsed = Bundle.from_json(bundle.decode())
    assert parsed.media_type == "application/vnd.dev.sigstore.bundle.v0.3+json"
    assert parsed.dsse_envelope.payload_type == "application/vnd.in-toto+json"
    assert json.loads(parsed.dsse_envelope.payload)["predicateType"] == PREDICATE_TYPE


def test_the_statement_is_a_valid_in_toto_statement(decisions: dict[str, Any]) -> None:
    """The in-toto attestation bindings read the Statement's JSON and accept it, and its policy and input
    attestation as ResourceDescriptors (a reject has no input attestation: nothing it trusts signed)."""
    pytest.importorskip("in_toto_attestation")
    from google.protobuf import json_format
    from in_toto_attestation.v1 import resource_descriptor_pb2, statement_pb2
    from in_toto_attestation.v1.resource_descriptor import ResourceDescriptor
    from in_toto_attestation.v1.statement import Statement

    for label in ("admit", "reject"):
        provenance, verdict, policy = decisions[label]
        statement = statement_of(provenance, verdict.trusted, policy)
        Statement.copy_from_pb(json_format.Parse(json.dumps(statement), statement_pb2.Statement())).validate()
        predicate = statement["predicate"]
        for descriptor in [predicate["policy"], *predicate.get("inputAttestations", [])]:
            parsed = json_format.Parse(json.dumps(descriptor), resource_descriptor_pb2.ResourceDescriptor())
            ResourceDescriptor.copy_from_pb(parsed).validate()
    bad = {**statement_of(*decisions["admit"][:1], True, decisions["admit"][2]), "subject": []}
    with pytest.raises(ValueError):  # control: the validator does refuse a Statement without a subject
        Statement.copy_from_pb(json_format.Parse(json.dumps(bad), statement_pb2.Statement())).validate()


def test_describe_escapes_signer_text(decisions: dict[str, Any]) -> None:
    provenance, _, policy = decisions["admit"]
    sneaky = provenance.signature.model_copy(update={"identity": "release\u202e\x1b[2J"})
    statement = statement_of(provenance.model_copy(update={"signature": sneaky}), True, policy)
    text = "\n".join(describe(statement))
    assert "\u202e" not in text and "\x1b" not in text and "Signed by: release" in text


# ------------------------------------------------------------------------------- the bounded history


REF = children.ModelRef("tiny", "models", "uid-1", 1)


def _history(count: int, size: int = 100) -> dict[str, str]:
    out: dict[str, str] = {}
    for i in range(count):
        moment = NOW + datetime.timedelta(minutes=i)
        out[history.entry_key(moment, i % 2 == 0, "ab" * 32, out)] = "x" * size
    return out


def test_n_plus_one_decisions_keep_the_newest_n() -> None:
    entries = _history(21)
    kept = history.bounded(entries, 20)
    assert len(kept) == 20
    oldest = min(entries)
    assert oldest not in kept and max(entries) in kept  # the oldest went, the newest stayed
    assert history.bounded(_history(20), 20) == _history(20)  # control: N decisions are all kept


def test_the_byte_budget_drops_the_oldest_but_never_the_newest() -> None:
    entries = _history(10, size=100_000)
    kept = history.bounded(entries, 20, max_bytes=350_000)
    assert list(kept) == sorted(entries)[-3:]
    huge = {history.entry_key(NOW, True, "cd" * 32, {}): "y" * 2_000_000}
    assert history.bounded(huge, 20) == huge  # the latest decision is never lost to the budget
    configmap = history.history_configmap(REF, history.bounded(_history(500, 4000), 1000), "d", "SHA256:x", "pem")
    assert len(json.dumps(configmap["data"]).encode()) < 1024 * 1024  # fits a ConfigMap


def test_entry_keys_sort_in_decision_order_within_one_second() -> None:
    taken: dict[str, str] = {}
    for _ in range(12):
        taken[history.entry_key(NOW, True, "ab" * 32, taken)] = ""
    assert len(taken) == 12 and list(taken) == sorted(taken)
    assert all(re.fullmatch(CONFIG_KEY, k) for k in taken)  # valid ConfigMap keys


# ------------------------------------------------------------------------------- the CLI


def _files(tmp_path: pathlib.Path, decisions: dict[str, Any], operator_key: bytes) -> tuple[pathlib.Path, ...]:
    key = load_private_key(operator_key)
    pub = tmp_path / "operator.pub"
    pub.write_bytes(public_key_pem(key))
    entries: dict[str, str] = {}
    for label, moment in (("admit", NOW), ("reject", NOW + datetime.timedelta(days=3))):
        provenance, verdict, policy = decisions[label]
        provenance = provenance.model_copy(update={"verified_at": moment})
        statement = statement_of(provenance, verdict.trusted, policy)
        subject = statement["subject"][0]["digest"]["sha256"]  # named as the operator names it (attest verify checks)
        entries[history.entry_key(moment, verdict.trusted, subject, entries)] = sign_statement(statement, key).decode()
    configmap = history.history_configmap(REF, entries, "d", "SHA256:x", public_key_pem(key).decode())
    cm = tmp_path / "history.json"
    cm.write_text(json.dumps({"apiVersion": "v1", "kind": "List", "items": [configmap]}))
    single = tmp_path / "one.json"
    single.write_text(next(iter(entries.values())))
    return pub, cm, single


def test_attest_verify_prints_each_decision_and_exits_0(
    tmp_path: pathlib.Path, decisions: dict[str, Any], operator_key: bytes, capsys: pytest.CaptureFixture[str]
) -> None:
    pub, cm, single = _files(tmp_path, decisions, operator_key)
    assert main(["attest", "verify", str(single), "--public-key", str(pub)]) == 0
    out = capsys.readouterr().out
    assert "Result:    PASSED (OPENMODEL_TIER_SIGNED)" in out and "Signed by: release (key)" in out
    assert main(["attest", "verify", str(cm), "--public-key", str(pub), "--brief"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2 and " PASSED models/tiny " in lines[0] and " FAILED models/tiny " in lines[1]
    assert "policies=org@3" in lines[0] and "policies=org@4 reasons=UntrustedSigner" in lines[1]
    assert main(["attest", "verify", str(cm), "--public-key", str(pub), "--brief", "--since", "2026-11-05"]) == 0
    assert [line.split()[2] for line in capsys.readouterr().out.splitlines()] == ["FAILED"]


def test_attest_verify_exits_1_on_a_changed_byte_and_2_on_usage(
    tmp_path: pathlib.Path, decisions: dict[str, Any], operator_key: bytes, capsys: pytest.CaptureFixture[str]
) -> None:
    pub, cm, single = _files(tmp_path, decisions, operator_key)
    doc = json.loads(cm.read_text())
    data = doc["items"][0]["data"]
    first = sorted(k for k in data if k.endswith(".json"))[0]
    data[first] = _tamper_payload(data[first].encode(), 100).decode()
    cm.write_text(json.dumps(doc))
    assert main(["attest", "verify", str(cm), "--public-key", str(pub)]) == 1
    out = capsys.readouterr().out
    assert f"INVALID models/tiny-attestations:{first}" in out and out.count("\nOK ") + out.startswith("OK ") == 1
    other = tmp_path / "other.pub"
    other.write_bytes(public_key_pem(load_private_key(generate_private_key_pem())))
    assert main(["attest", "verify", str(single), "--public-key", str(other)]) == 1
    capsys.readouterr()
    assert main(["attest", "verify", str(single), "--public-key", str(tmp_path / "missing.pub")]) == 2
    assert main(["attest", "verify", str(single), "--public-key", str(single)]) == 2  # not a key
    (tmp_path / "empty.yaml").write_text("apiVersion: v1\nkind: List\nitems: []\n")
    assert main(["attest", "verify", str(tmp_path / "empty.yaml"), "--public-key", str(pub)]) == 2
    assert main(["attest", "verify", str(single), "--public-key", str(pub), "--since", "last month"]) == 2
    assert main(["attest"]) == 2


def test_policy_digest_prints_what_the_attestation_records(
    tmp_path: pathlib.Path, decisions: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    """An auditor recomputes a policy's spec digest from the YAML kept in Git: equal for the policy that decided,
    different once one field of the spec changes."""
    import yaml

    provenance, verdict, policy = decisions["admit"]
    recorded = statement_of(provenance, verdict.trusted, policy)["predicate"]["policy"]["annotations"]["policies"]
    doc = {
        "apiVersion": "openmodel.io/v1alpha1",
        "kind": "ModelTrustPolicy",
        "metadata": {"name": "org", "generation": 3},
        "spec": policy.spec.model_dump(mode="json", by_alias=True, exclude_none=True, exclude_defaults=True),
    }
    path = tmp_path / "policy.yaml"
    path.write_text(yaml.safe_dump(doc))
    assert main(["attest", "policy-digest", str(path)]) == 0
    assert capsys.readouterr().out.split() == ["org", "generation", "3", recorded[0]["specDigest"]]
    doc["spec"]["mode"] = "Audit"
    path.write_text(yaml.safe_dump(doc))
    assert main(["attest", "policy-digest", str(path)]) == 0
    assert capsys.readouterr().out.split()[-1] != recorded[0]["specDigest"]
    assert main(["attest", "policy-digest", str(tmp_path / "missing.yaml")]) == 2
