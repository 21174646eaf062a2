"""The attestation history is the operator's record, not the tenant's: entries a tenant plants in
``<model>-attestations`` (a ConfigMap in the tenant's own namespace) never push the operator's own decisions
out, and ``openmodel attest verify`` refuses a genuine entry that was moved under another key or copied
from another model's history (an auditor reads the keys in order: "a later line stops it").

Each hostile case sits next to the legitimate one.
"""

from __future__ import annotations

import asyncio
import datetime
import json
import pathlib
from collections.abc import Mapping
from typing import Any

import pytest

from openmodel_operator.api.openmodel import Provenance
from openmodel_operator.cli import main
from openmodel_operator.controller.attestations import PRIVATE_KEY, Attestor
from openmodel_operator.evidence.attestation import verification_summary
from openmodel_operator.planning import attestation_history as history
from openmodel_operator.planning import children
from openmodel_operator.planning.trust_result import from_examination
from openmodel_operator.signing.attestation import (
    generate_private_key_pem,
    load_private_key,
    public_key_pem,
    sign_statement,
)
from openmodel_operator.sources.examine import examine
from openmodel_operator.trust.examination import ModelRequest
from openmodel_operator.trust.policies import Policy, policy_from_manifest
from signing_fixtures import TINY_MODEL, KeyPair, new_key, sign_with_key, write_model

NOW = datetime.datetime(2026, 11, 3, 10, 0, tzinfo=datetime.UTC)
REF = children.ModelRef(name="tiny", namespace="models", uid="u-1", generation=1)
OTHER = children.ModelRef(name="other", namespace="models", uid="u-2", generation=1)


def _policy(key: KeyPair, generation: int) -> Policy:
    return policy_from_manifest(
        {
            "apiVersion": "openmodel.io/v1alpha1",
            "kind": "ModelTrustPolicy",
            "metadata": {"name": "org", "generation": generation},
            "spec": {
                "mode": "Enforce",
                "signature": {"keys": [{"name": "release", "publicKey": key.public_pem.decode()}]},
            },
        }
    )


@pytest.fixture(scope="module")
def decided(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Provenance, bool, Policy]]:
    work = tmp_path_factory.mktemp("history")
    signer, other = new_key(), new_key()
    model = write_model(work / "tiny", {**TINY_MODEL, "README.md": b"---\nlicense: apache-2.0\n---\n# tiny\n"})
    (model / "model.sig").write_bytes(sign_with_key(model, signer, work / "sig"))
    out = {}
    for label, policy, moment in (
        ("admit", _policy(signer, 3), NOW),
        ("reject", _policy(other, 4), NOW + datetime.timedelta(days=3)),
    ):
        exam = examine(ModelRequest(uri=str(model)), [policy])
        result = from_examination(exam, moment)
        assert result.provenance is not None
        provenance = result.provenance.model_copy(update={"verified_at": moment})
        out[label] = (provenance, exam.verdict.trusted, policy)
    return out


class FakeKube:
    """The two objects the Attestor touches: its key Secret and the history ConfigMap (apply replaces data)."""

    def __init__(self, pem: bytes) -> None:
        self.pem = pem
        self.objects: dict[tuple[str, str], dict[str, Any]] = {}

    async def read_secret_key(self, namespace: str, name: str, key: str) -> str:
        assert key == PRIVATE_KEY
        return self.pem.decode()

    async def get(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        return self.objects.get((namespace, name))

    async def apply(self, obj: Mapping[str, Any]) -> None:
        self.objects[(obj["metadata"]["namespace"], obj["metadata"]["name"])] = json.loads(json.dumps(obj))


def _record(kube: FakeKube, decided: dict[str, Any], label: str) -> None:
    provenance, trusted, policy = decided[label]
    attestor = Attestor(kube, "openmodel-system/key", 20)  # type: ignore[arg-type]
    assert asyncio.run(attestor.record(REF, provenance, trusted, [policy], None, None)) is not None


def _entries(kube: FakeKube) -> dict[str, str]:
    return history.entries(kube.objects[("models", history.configmap_name(REF))]["data"])


def test_the_operator_keeps_each_of_its_decisions(decided: dict[str, Any]) -> None:
    kube = FakeKube(generate_private_key_pem())
    _record(kube, decided, "admit")
    _record(kube, decided, "reject")
    keys = sorted(_entries(kube))
    assert len(keys) == 2 and "-passed-" in keys[0] and "-failed-" in keys[1]


def test_entries_a_tenant_planted_never_push_the_operators_decision_out(decided: dict[str, Any]) -> None:
    """A tenant makes ``tiny-attestations`` first, with the history's labels but not managed-by (the children
    guard's objectSelector does not see it), holding 20 entries keyed far in the future: copies of the
    operator's own admit. The operator's reject must be kept, and the planted entries must not stay
    under keys that do not match what they say."""
    pem = generate_private_key_pem()
    kube = FakeKube(pem)
    _record(kube, decided, "admit")
    genuine = next(iter(_entries(kube).values()))
    planted = {f"99991231T2359{n:02d}Z-passed-0000000000.json": genuine for n in range(20)}
    name = history.configmap_name(REF)
    kube.objects[("models", name)] = {
        "metadata": {
            "name": name,
            "namespace": "models",
            "labels": {children.NAME_LABEL: "tiny", children.COMPONENT_LABEL: history.COMPONENT},
        },
        "data": planted,
    }
    _record(kube, decided, "reject")
    kept = _entries(kube)
    assert any("-failed-" in k for k in kept), sorted(kept)  # the revocation is on record
    assert not set(kept) & set(planted)


def _verify(tmp_path: pathlib.Path, pem: bytes, data: dict[str, str], ref: children.ModelRef = REF) -> int:
    pub = tmp_path / "operator.pub"
    pub.write_bytes(public_key_pem(load_private_key(pem)))
    configmap = history.history_configmap(ref, data, "d", "SHA256:x", pub.read_text())
    path = tmp_path / "history.json"
    path.write_text(json.dumps(configmap))
    return main(["attest", "verify", str(path), "--public-key", str(pub), "--brief"])


def test_attest_verify_refuses_an_entry_moved_or_copied(
    tmp_path: pathlib.Path, decided: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    pem = generate_private_key_pem()
    kube = FakeKube(pem)
    _record(kube, decided, "admit")
    _record(kube, decided, "reject")
    real = _entries(kube)
    assert _verify(tmp_path, pem, real) == 0  # the operator's history as written
    capsys.readouterr()
    (admit_key, admit), (reject_key, _) = sorted(real.items())
    # the old admit replayed after the revocation: an auditor reads "a later PASSED line" as admitted again
    moved = {**real, "20261201T000000Z-passed-" + admit_key.split("-passed-")[1]: admit}
    assert _verify(tmp_path, pem, moved) == 1
    assert "INVALID models/tiny-attestations:20261201T000000Z-passed-" in capsys.readouterr().out
    # another model's genuine entry copied into this history
    assert _verify(tmp_path, pem, {admit_key: admit}, OTHER) == 1
    assert "INVALID models/other-attestations:" in capsys.readouterr().out
    # a statement signed with the key but stored under its own name verifies (control for the above)
    provenance, trusted, _ = decided["admit"]
    statement = verification_summary(
        provenance, trusted=trusted, namespace="models", model="tiny", spec_digests={}, verifier_version="0"
    )
    signed = sign_statement(statement, load_private_key(pem)).decode()
    assert _verify(tmp_path, pem, {admit_key: signed}) == 0
    assert reject_key > admit_key
