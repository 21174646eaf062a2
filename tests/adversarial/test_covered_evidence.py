"""Issue 8, property 3: license and openness come only from bytes a signature or the pin covers.

Threat: a mirror or endpoint (or whoever can push an unsigned commit) states a license or an openness
class the publisher never signed — in endpoint metadata (``cardData``), in a README changed after
signing, in a README the signer left out, or in an ``openness.yaml`` nothing vouches for. None of it
may become evidence: the license then counts as unknown, which an Enforce license rule refuses.
Each hostile case sits next to a legitimate control that must still pass.
"""

from __future__ import annotations

import hashlib
import json
import pathlib
from collections.abc import Mapping
from typing import Any

import pytest
import yaml

from hubstub import STUB_ORIGINS, HubStub
from openmodel_operator.api.vocabulary import TrustTier
from openmodel_operator.cli import main
from openmodel_operator.evidence.manifest import manifest_digest
from openmodel_operator.evidence.records import Reason, ResolvedSource
from openmodel_operator.sources.examine import examine
from openmodel_operator.trust.decision import Evidence, decide
from openmodel_operator.trust.examination import ModelRequest
from openmodel_operator.trust.policies import Policy, policy_from_manifest
from signing_fixtures import KeyPair, file_entries, new_key, sign_with_key, write_model

ROOT = pathlib.Path(__file__).resolve().parents[2]
EXAMPLE_MODEL = ROOT / "examples" / "models" / "tiny-signed"

LICENSED_README = b"---\nlicense: apache-2.0\ndatasets: [example/corpus]\n---\n# demo\n"
SILENT_README = b"# demo\n\nNo metadata here.\n"
CLASS_I_CLAIM: dict[str, Any] = {
    "apiVersion": "openmodel.io/v1alpha1",
    "kind": "OpennessDeclaration",
    "components": {
        name: {"license": "Apache-2.0", "url": f"https://example.org/{name}"}
        for name in (
            "modelArchitecture",
            "technicalReport",
            "evaluationResults",
            "dataCard",
            "trainingCode",
            "inferenceCode",
            "evaluationCode",
            "evaluationData",
            "researchPaper",
            "dataProcessingCode",
            "intermediateCheckpoints",
        )
    }
    | {
        "trainingData": {
            "information": "https://example.org/data",
            "datasets": ["example/corpus"],
            "license": "CC-BY-4.0",
        }
    },
}


def files_with(readme: bytes, declaration: Mapping[str, Any] | None = None) -> dict[str, bytes]:
    files = {
        "README.md": readme,
        "config.json": b'{"hidden_size": 8}\n',
        "model.safetensors": b"\x08\x00\x00\x00\x00\x00\x00\x00{}      " + bytes(range(64)),
    }
    if declaration is not None:
        files["openness.yaml"] = yaml.safe_dump(declaration).encode()
    return files


# the Hub stand-in is a mirror, not the public Hub: the test policies allow its origin
pytestmark = pytest.mark.usefixtures("stub_origins_allowed")


def policy(name: str = "org", mode: str = "Enforce", key: KeyPair | None = None, **spec: Any) -> Policy:
    spec.setdefault("sources", {"endpoints": {"allow": list(STUB_ORIGINS)}})
    if key is not None:
        spec.setdefault(
            "signature", {"required": True, "keys": [{"name": "release", "publicKey": key.public_pem.decode()}]}
        )
    doc = {
        "apiVersion": "openmodel.io/v1alpha1",
        "kind": "ModelTrustPolicy",
        "metadata": {"name": name},
        "spec": {"mode": mode, **spec},
    }
    return policy_from_manifest(doc)


def sign(tmp_path: pathlib.Path, files: Mapping[str, bytes], key: KeyPair, ignore: tuple[str, ...] = ()) -> bytes:
    work = tmp_path / f"sign-{hashlib.sha256(repr(sorted(files.items())).encode()).hexdigest()[:8]}"
    return sign_with_key(write_model(work / "model", files), key, work / "out", ignore)


def evidence(
    files: Mapping[str, bytes],
    bundle: bytes | None = None,
    pinned: str | None = None,
    readme: bytes | None = None,
    openness: bytes | None = None,
) -> Evidence:
    """Evidence as the resolver builds it; ``readme``/``openness`` override the bytes read (default: the file's)."""
    source = ResolvedSource(
        uri="hf://org/model",
        kind="hf",
        files=tuple(file_entries(files)),
        revision="a" * 40,
        requested_revision="main",
        readme=files.get("README.md") if readme is None else readme,
        openness_bytes=files.get("openness.yaml") if openness is None else openness,
    )
    return Evidence(source, bundle, "model.sig", pinned)


@pytest.fixture
def key() -> KeyPair:
    return new_key()


# ------------------------------------------------------------------------------- end to end through the Hub


def test_endpoint_carddata_is_not_evidence(hub: HubStub, tmp_path: pathlib.Path, key: KeyPair) -> None:
    """A mirror answering cardData `license: apache-2.0` for a model whose signed README says nothing."""
    files = files_with(SILENT_README)
    hub.add_model(
        "org/model", {**files, "model.sig": sign(tmp_path, files, key)}, card_metadata={"license": "apache-2.0"}
    )
    exam = examine(ModelRequest("hf://org/model", endpoint=hub.url), [policy(key=key)])
    assert exam.verdict.tier is TrustTier.SIGNED
    assert exam.verdict.openness.license is None
    assert not exam.verdict.trusted and exam.verdict.reasons == (Reason.LICENSE_UNKNOWN,)


def test_control_signed_readme_license_is_read(hub: HubStub, tmp_path: pathlib.Path, key: KeyPair) -> None:
    files = files_with(LICENSED_README)
    hub.add_model("org/model", {**files, "model.sig": sign(tmp_path, files, key)}, card_metadata={})
    exam = examine(ModelRequest("hf://org/model", endpoint=hub.url), [policy(key=key)])
    assert exam.verdict.trusted and exam.verdict.tier is TrustTier.SIGNED
    assert exam.verdict.openness.license == "Apache-2.0"
    assert exam.verdict.evidence_files == ("README.md",)


def test_readme_changed_after_signing_is_not_evidence(hub: HubStub, tmp_path: pathlib.Path, key: KeyPair) -> None:
    """An unsigned commit adds a license to the README: the signature no longer covers it."""
    bundle = sign(tmp_path, files_with(SILENT_README), key)
    hub.add_model("org/model", {**files_with(LICENSED_README), "model.sig": bundle})
    exam = examine(ModelRequest("hf://org/model", endpoint=hub.url), [policy(key=key)])
    assert not exam.verdict.trusted and exam.verdict.reasons == (Reason.MANIFEST_MISMATCH,)
    assert exam.verdict.openness.license is None and exam.verdict.evidence_files == ()
    # an Audit policy needing nothing records the consequence: the unsigned card is not read
    audit = decide([policy(mode="Audit", signature={"required": False})], exam.evidence)
    assert [(v.reason, v.enforced) for v in audit.violations] == [(Reason.LICENSE_UNKNOWN, False)]
    assert "README.md is present but not covered" in audit.violations[0].message


# ------------------------------------------------------------------------------- the pure decision


def test_readme_bytes_that_differ_from_the_listing_are_not_evidence(tmp_path: pathlib.Path, key: KeyPair) -> None:
    """The listing (signed) says one README, the bytes read say another (changed after hashing, or served so)."""
    files = files_with(SILENT_README)
    verdict = decide([policy(key=key)], evidence(files, sign(tmp_path, files, key), readme=LICENSED_README))
    assert verdict.tier is TrustTier.SIGNED and verdict.openness.license is None
    assert verdict.reasons == (Reason.LICENSE_UNKNOWN,)


def test_readme_the_signer_ignored_is_not_evidence(tmp_path: pathlib.Path, key: KeyPair) -> None:
    files = files_with(LICENSED_README)
    bundle = sign(tmp_path, files, key, ignore=("README.md",))
    verdict = decide([policy(key=key)], evidence(files, bundle))
    assert verdict.tier is TrustTier.SIGNED  # the rest is covered: README.md is not loadable, so it may be left out
    assert verdict.openness.license is None and verdict.reasons == (Reason.LICENSE_UNKNOWN,)
    assert "README.md is present but not covered" in verdict.violations[0].message
    # control: the same model signed with its README
    assert decide([policy(key=key)], evidence(files, sign(tmp_path, files, key))).trusted


def test_uncovered_openness_declaration_is_ignored(tmp_path: pathlib.Path, key: KeyPair) -> None:
    """A Class I claim in an openness.yaml whose bytes are not the signed ones counts for nothing."""
    honest = files_with(
        LICENSED_README,
        {
            "apiVersion": "openmodel.io/v1alpha1",
            "kind": "OpennessDeclaration",
            "components": {"modelArchitecture": {"license": "Apache-2.0", "url": "https://example.org/a"}},
        },
    )
    bundle = sign(tmp_path, honest, key)
    strict = policy(key=key, openness={"minimumClass": "ClassI", "requireOSAID": True})
    claimed = yaml.safe_dump(CLASS_I_CLAIM).encode()
    verdict = decide([strict], evidence(honest, bundle, openness=claimed))
    assert verdict.openness.license == "Apache-2.0"  # the README is covered
    assert verdict.evidence_files == ("README.md",)
    assert verdict.openness.mof_class == "None" and not verdict.openness.osaid_compliant
    assert not verdict.openness.components["trainingCode"]
    assert set(verdict.reasons) == {Reason.OPENNESS_BELOW_MINIMUM, Reason.OSAID_COMPONENTS_MISSING}
    assert any("openness.yaml: not covered" in s for s in verdict.openness.sources)
    # control: the same Class I declaration, signed, is read
    signed_claim = files_with(LICENSED_README, CLASS_I_CLAIM)
    good = decide([strict], evidence(signed_claim, sign(tmp_path, signed_claim, key)))
    assert good.trusted and good.openness.mof_class == "ClassI" and good.openness.osaid_compliant


def test_unsigned_declaration_under_a_policy_that_needs_no_signature(tmp_path: pathlib.Path) -> None:
    files = files_with(LICENSED_README, CLASS_I_CLAIM)
    audit = policy(mode="Audit", signature={"required": False}, openness={"minimumClass": "ClassI"})
    verdict = decide([audit], evidence(files))
    assert verdict.trusted and verdict.tier is TrustTier.UNVERIFIED
    assert verdict.openness.license is None and verdict.openness.mof_class == "None"
    assert {v.reason for v in verdict.violations} == {Reason.LICENSE_UNKNOWN, Reason.OPENNESS_BELOW_MINIMUM}


def test_one_policys_signature_does_not_vouch_for_another_policy(tmp_path: pathlib.Path, key: KeyPair) -> None:
    """Coverage is per policy: B does not trust the signer, so B cannot read the card A can."""
    files = files_with(LICENSED_README)
    bundle = sign(tmp_path, files, key)
    a = policy("a", key=key)
    b = policy(
        "b", signature={"required": False, "keys": [{"name": "other", "publicKey": new_key().public_pem.decode()}]}
    )
    verdict = decide([a, b], evidence(files, bundle))
    assert [(o.name, o.passed) for o in verdict.outcomes] == [("a", True), ("b", False)]
    assert [v.reason for v in verdict.outcomes[1].violations] == [Reason.LICENSE_UNKNOWN]
    assert verdict.openness.license == "Apache-2.0"  # the verdict shows what the covering policy read


def test_pinned_tier_covers_the_readme(key: KeyPair) -> None:
    files = files_with(LICENSED_README)
    pinned_policy = policy(signature={"required": False, "allowPinnedDigest": True})
    digest = manifest_digest(file_entries(files))
    verdict = decide([pinned_policy], evidence(files, pinned=digest))
    assert verdict.trusted and verdict.tier is TrustTier.PINNED
    assert verdict.openness.license == "Apache-2.0" and verdict.evidence_files == ("README.md",)
    # hostile: the pinned README bytes are not the ones read
    swapped = decide([pinned_policy], evidence(files, pinned=digest, readme=LICENSED_README + b"\n"))
    assert swapped.openness.license is None and swapped.reasons == (Reason.LICENSE_UNKNOWN,)


def test_a_readme_outside_the_manifest_is_not_evidence(key: KeyPair) -> None:
    """README bytes without a listed README.md (a resolver bug or a hostile adapter) are never read."""
    files = files_with(LICENSED_README)
    listed = tuple(e for e in file_entries(files) if e.path != "README.md")
    source = ResolvedSource("hf://org/model", "hf", listed, readme=LICENSED_README, revision="a" * 40)
    digest = manifest_digest(listed)
    verdict = decide(
        [policy(signature={"required": False, "allowPinnedDigest": True})], Evidence(source, None, "model.sig", digest)
    )
    assert verdict.openness.license is None


def test_malformed_covered_card_never_crashes_the_decision(key: KeyPair) -> None:
    """Hostile but covered bytes (an impossible date, a non-mapping declaration) are ignored, not raised."""
    files = {**files_with(b"---\nlicense: mit\ndate: 2024-13-45\n---\n"), "openness.yaml": b"- [unclosed"}
    pinned = manifest_digest(file_entries(files))
    verdict = decide([policy(signature={"required": False, "allowPinnedDigest": True})], evidence(files, pinned=pinned))
    assert verdict.openness.license is None
    assert verdict.reasons == (Reason.LICENSE_UNKNOWN,)


# ------------------------------------------------------------------------------- the example model


def test_example_model_still_shows_its_signed_license(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["verify", str(EXAMPLE_MODEL), "--policy", str(ROOT / "examples" / "policy-strict.yaml")])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "License    Apache-2.0 (OSI-approved)" in out
    assert "Openness   MOF ClassIII; OSAID v1.0: no" in out
    code = main(["verify", str(EXAMPLE_MODEL), "--policy", str(ROOT / "examples" / "policy-strict.yaml"), "--json"])
    predicate = json.loads(capsys.readouterr().out)["predicate"]
    assert predicate["license"] == "Apache-2.0"
    assert predicate["openness"]["evidenceFiles"] == ["README.md", "openness.yaml"]
