"""`openmodel verify`, `digest`: what a user sees, against a local Hub stand-in serving signed models."""

from __future__ import annotations

import json
import os
import pathlib
import shutil
from typing import Any

import pytest
import yaml

from hubstub import STUB_ORIGINS, HubStub
from openmodel_operator.cli import main
from signing_fixtures import (
    KeyPair,
    flip_last_byte,
    new_cert_chain,
    new_key,
    sign_with_certificate,
    sign_with_key,
    write_model,
)

ROOT = pathlib.Path(__file__).resolve().parent.parent
EXAMPLE_MODEL = ROOT / "examples" / "models" / "tiny-signed"
README = b"---\nlicense: apache-2.0\ndatasets: [example/corpus]\n---\n# demo\n"
WEIGHTS = os.urandom(64 * 1024)
FILES = {
    "README.md": README,
    "config.json": b'{"hidden_size": 8}\n',
    "model.safetensors": WEIGHTS,
    "tokenizer.json": b'{"version": "1.0"}\n',
}


# the Hub stand-in is a mirror, not the public Hub: the test policies allow its origin
pytestmark = pytest.mark.usefixtures("stub_origins_allowed")


def write_policy(path: pathlib.Path, spec: dict[str, Any], name: str = "org") -> pathlib.Path:
    sources = spec.get("sources", {})
    spec = {**spec, "sources": {**sources, "endpoints": sources.get("endpoints", {"allow": list(STUB_ORIGINS)})}}
    doc = {"apiVersion": "openmodel.io/v1alpha1", "kind": "ModelTrustPolicy", "metadata": {"name": name}, "spec": spec}
    path.write_text(yaml.safe_dump(doc))
    return path


def key_policy(tmp_path: pathlib.Path, key: KeyPair, **extra: Any) -> pathlib.Path:
    spec = {"signature": {"required": True, "keys": [{"name": "org-release", "publicKey": key.public_pem.decode()}]}}
    spec.update(extra)
    return write_policy(tmp_path / "policy.yaml", spec)


def publish_signed(hub: HubStub, tmp_path: pathlib.Path, key: KeyPair, repo: str = "org/model") -> str:
    model = write_model(tmp_path / "src", FILES)
    bundle = sign_with_key(model, key, tmp_path / "sig")
    return hub.add_model(repo, {**FILES, "model.sig": bundle})


def verify(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["verify", *args])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def key() -> KeyPair:
    return new_key()


def test_signed_hub_model_is_trusted_and_pinned(
    hub: HubStub, tmp_path: pathlib.Path, key: KeyPair, capsys: pytest.CaptureFixture[str]
) -> None:
    commit = publish_signed(hub, tmp_path, key)
    code, out, _ = verify(capsys, "hf://org/model", "--endpoint", hub.url, "--policy", str(key_policy(tmp_path, key)))
    assert code == 0, out
    assert f"Revision   {commit} (from main)" in out
    assert "Signature  verified: org-release (key" in out
    assert "Verdict    TRUSTED, tier Signed" in out
    assert hub.download_count("org/model", "model.safetensors") == 0  # verify-before-pull: no weights read
    assert hub.download_count("org/model", "model.sig") == 1  # read once, hashed and verified from the same bytes


def test_json_provenance_record(
    hub: HubStub, tmp_path: pathlib.Path, key: KeyPair, capsys: pytest.CaptureFixture[str]
) -> None:
    commit = publish_signed(hub, tmp_path, key)
    code, out, _ = verify(
        capsys, "hf://org/model", "--endpoint", hub.url, "--policy", str(key_policy(tmp_path, key)), "--json"
    )
    statement = json.loads(out)
    assert code == 0
    assert statement["_type"] == "https://in-toto.io/Statement/v1"
    predicate = statement["predicate"]
    assert predicate["source"]["resolvedRevision"] == commit
    assert predicate["trustTier"] == "Signed"
    assert predicate["signature"]["identity"] == "org-release"
    assert {f["name"] for f in predicate["manifest"]["files"]} == set(FILES)
    assert statement["subject"][0]["digest"]["sha256"] == predicate["manifest"]["digest"].removeprefix("sha256:")
    assert predicate["verdict"] == {"trusted": True, "violations": []}


def test_tampered_weights_on_the_hub_are_rejected(
    hub: HubStub, tmp_path: pathlib.Path, key: KeyPair, capsys: pytest.CaptureFixture[str]
) -> None:
    model = write_model(tmp_path / "src", FILES)
    bundle = sign_with_key(model, key, tmp_path / "sig")
    hub.add_model("org/model", {**FILES, "model.safetensors": flip_last_byte(WEIGHTS), "model.sig": bundle})
    code, out, _ = verify(capsys, "hf://org/model", "--endpoint", hub.url, "--policy", str(key_policy(tmp_path, key)))
    assert code == 1
    assert "ManifestMismatch" in out and "model.safetensors (DigestMismatch)" in out


def test_audit_mode_admits_and_lists_violations(
    hub: HubStub, tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    hub.add_model("org/unsigned", FILES)
    policy = write_policy(
        tmp_path / "audit.yaml",
        {
            "mode": "Audit",
            "signature": {"required": True, "keys": [{"name": "k", "publicKey": new_key().public_pem.decode()}]},
        },
    )
    code, out, _ = verify(capsys, "hf://org/unsigned", "--endpoint", hub.url, "--policy", str(policy))
    assert code == 0
    assert "SignatureMissing [audit only, org]" in out
    assert "Tier       Unverified" in out


def test_certificate_signed_model(hub: HubStub, tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]) -> None:
    chain = new_cert_chain()
    bundle = sign_with_certificate(write_model(tmp_path / "src", FILES), chain, tmp_path / "sig")
    hub.add_model("org/cert", {**FILES, "model.sig": bundle})
    policy = write_policy(
        tmp_path / "p.yaml",
        {
            "signature": {
                "required": True,
                "certificates": [{"name": "corp-ca", "caBundle": chain.ca_bundle_pem.decode()}],
            }
        },
    )
    code, out, _ = verify(capsys, "hf://org/cert", "--endpoint", hub.url, "--policy", str(policy))
    assert code == 0, out
    assert "(certificate" in out


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["hf://org/missing"], "RepositoryNotFound"),
        (["hf://org/model", "--revision", "v9"], "RevisionNotFound"),
    ],
)
def test_operational_errors_exit_2_with_a_clear_reason(
    hub: HubStub, tmp_path: pathlib.Path, key: KeyPair, capsys: pytest.CaptureFixture[str], args: list[str], needle: str
) -> None:
    publish_signed(hub, tmp_path, key)
    code, out, err = verify(capsys, *args, "--endpoint", hub.url)
    assert code == 2
    assert needle in err and "Traceback" not in err + out


def test_unreachable_endpoint_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = verify(capsys, "hf://org/model", "--endpoint", "http://127.0.0.1:9")
    assert code == 2 and "EndpointUnreachable" in err


def test_private_repo_needs_a_token(
    hub: HubStub,
    tmp_path: pathlib.Path,
    key: KeyPair,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    model = write_model(tmp_path / "src", FILES)
    hub.add_model("org/private", {**FILES, "model.sig": sign_with_key(model, key, tmp_path / "sig")}, private=True)
    policy = str(key_policy(tmp_path, key))
    monkeypatch.delenv("HF_TOKEN", raising=False)
    code, _, err = verify(capsys, "hf://org/private", "--endpoint", hub.url, "--policy", policy)
    assert code == 2 and "AccessDenied" in err
    monkeypatch.setenv("HF_TOKEN", hub.token)
    code, out, err = verify(capsys, "hf://org/private", "--endpoint", hub.url, "--policy", policy)
    assert code == 0
    assert hub.token not in out + err


def test_pull_checks_every_byte(
    hub: HubStub, tmp_path: pathlib.Path, key: KeyPair, capsys: pytest.CaptureFixture[str]
) -> None:
    publish_signed(hub, tmp_path, key)
    dest = tmp_path / "pulled"
    code, out, _ = verify(
        capsys, "hf://org/model", "--endpoint", hub.url, "--policy", str(key_policy(tmp_path, key)), "--pull", str(dest)
    )
    assert code == 0, out
    assert (dest / "model.safetensors").read_bytes() == WEIGHTS
    assert "every byte matches" in out


def test_corrupted_download_is_rejected_and_not_kept(
    hub: HubStub, tmp_path: pathlib.Path, key: KeyPair, capsys: pytest.CaptureFixture[str]
) -> None:
    publish_signed(hub, tmp_path, key)
    hub.inject_fault("org/model", "model.safetensors", "corrupt")
    dest = tmp_path / "pulled"
    code, out, _ = verify(
        capsys, "hf://org/model", "--endpoint", hub.url, "--policy", str(key_policy(tmp_path, key)), "--pull", str(dest)
    )
    assert code == 1
    assert "PULL REJECTED" in out and "model.safetensors" in out
    assert not (dest / "model.safetensors").exists()


def test_untrusted_model_is_not_pulled(
    hub: HubStub, tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    hub.add_model("org/unsigned", FILES)
    dest = tmp_path / "pulled"
    code, out, _ = verify(capsys, "hf://org/unsigned", "--endpoint", hub.url, "--pull", str(dest))
    assert code == 1
    assert "Not pulled" in out
    assert hub.download_count("org/unsigned", "model.safetensors") == 0


def test_gitops_manifest_with_pinned_digest(
    hub: HubStub, tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The Pinned tier: a reviewer pins `openmodel digest` in Git; the pre-merge check honours it."""
    hub.add_model("org/unsigned", FILES)
    assert main(["digest", str(write_model(tmp_path / "copy", FILES))]) == 0
    digest = capsys.readouterr().out.strip()
    manifest = tmp_path / "om.yaml"
    spec = {"source": {"uri": "hf://org/unsigned", "endpoint": hub.url, "digest": digest}}
    manifest.write_text(
        yaml.safe_dump(
            {"apiVersion": "openmodel.io/v1alpha1", "kind": "OpenModel", "metadata": {"name": "m"}, "spec": spec}
        )
    )
    policy = write_policy(tmp_path / "p.yaml", {"signature": {"required": False, "allowPinnedDigest": True}})
    code, out, _ = verify(capsys, "-f", str(manifest), "--policy", str(policy))
    assert code == 0, out
    assert "Tier       Pinned" in out
    spec["source"]["digest"] = "sha256:" + "1" * 64
    manifest.write_text(yaml.safe_dump({"kind": "OpenModel", "metadata": {"name": "m"}, "spec": spec}))
    code, out, _ = verify(capsys, "-f", str(manifest), "--policy", str(policy))
    assert code == 1 and "DigestPinMismatch" in out


def test_countersignature_from_a_file(
    hub: HubStub, tmp_path: pathlib.Path, key: KeyPair, capsys: pytest.CaptureFixture[str]
) -> None:
    """An org countersigns a third-party revision it reviewed; the bundle lives outside the repo."""
    hub.add_model("thirdparty/model", FILES)
    countersig = sign_with_key(write_model(tmp_path / "review", FILES), key, tmp_path / "cs")
    bundle = tmp_path / "countersig.json"
    bundle.write_bytes(countersig)
    manifest = tmp_path / "om.yaml"
    spec = {
        "source": {"uri": "hf://thirdparty/model", "endpoint": hub.url},
        "trust": {"signature": {"configMapRef": {"name": "countersig", "key": "model.sig"}}},
    }
    manifest.write_text(yaml.safe_dump({"kind": "OpenModel", "metadata": {"name": "m"}, "spec": spec}))
    policy = str(key_policy(tmp_path, key))
    code, _, err = verify(capsys, "-f", str(manifest), "--policy", policy)
    assert code == 2 and "--signature" in err
    code, out, _ = verify(capsys, "-f", str(manifest), "--policy", policy, "--signature", str(bundle))
    assert code == 0, out
    assert "Tier       Signed" in out


def test_source_not_allowed_by_policy(
    hub: HubStub, tmp_path: pathlib.Path, key: KeyPair, capsys: pytest.CaptureFixture[str]
) -> None:
    publish_signed(hub, tmp_path, key)
    policy = key_policy(tmp_path, key, sources={"allow": ["hf://ibm-granite/*"]})
    code, out, _ = verify(capsys, "hf://org/model", "--endpoint", hub.url, "--policy", str(policy))
    assert code == 1 and "SourceNotAllowed" in out


def test_the_shipped_example_verifies_and_a_tampered_copy_does_not(
    tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    policy = str(ROOT / "examples" / "policy-strict.yaml")
    code, out, _ = verify(capsys, str(EXAMPLE_MODEL), "--policy", policy)
    assert code == 0, out
    assert "example-release-key" in out
    tampered = tmp_path / "tampered"
    shutil.copytree(EXAMPLE_MODEL, tampered)
    data = bytearray((tampered / "model.safetensors").read_bytes())
    data[-1] ^= 0xFF
    (tampered / "model.safetensors").write_bytes(bytes(data))
    code, out, _ = verify(capsys, str(tampered), "--policy", policy)
    assert code == 1 and "model.safetensors (DigestMismatch)" in out


def test_digest_matches_the_signed_bundle_subject(capsys: pytest.CaptureFixture[str]) -> None:
    """`openmodel digest` is the name-bound manifest digest `verify` reports; the bundle's subject is model-signing's.

    The pin binds names (issue 8, property 5), so it is not the subject digest model-signing writes (digests
    only); both are computed from the same files, and the subject still checks the bundle's consistency.
    """
    import base64

    from openmodel_operator.evidence.manifest import manifest_digest, subject_digest
    from openmodel_operator.sources.directory import resolve_directory

    assert main(["digest", str(EXAMPLE_MODEL)]) == 0
    printed = capsys.readouterr().out.strip()
    files = resolve_directory(EXAMPLE_MODEL).files
    assert printed == manifest_digest(files)
    code, out, _ = verify(capsys, str(EXAMPLE_MODEL), "--policy", str(ROOT / "examples" / "policy-strict.yaml"))
    assert code == 0 and f"Manifest   {printed} " in out
    envelope = json.loads((EXAMPLE_MODEL / "model.sig").read_text())["dsseEnvelope"]
    statement = json.loads(base64.b64decode(envelope["payload"]))
    assert subject_digest(files) == "sha256:" + statement["subject"][0]["digest"]["sha256"] != printed


def test_usage_errors(capsys: pytest.CaptureFixture[str], tmp_path: pathlib.Path) -> None:
    assert verify(capsys, str(tmp_path / "nope"))[0] == 2
    bad = write_policy(tmp_path / "bad.yaml", {"mode": "Sometimes"})
    code, _, err = verify(capsys, str(EXAMPLE_MODEL), "--policy", str(bad))
    assert code == 2 and "spec.mode" in err


def test_countersign_a_reviewed_revision_without_downloading_it(
    hub: HubStub, tmp_path: pathlib.Path, key: KeyPair, capsys: pytest.CaptureFixture[str]
) -> None:
    """The smooth path for unsigned public models: sign the Hub's digests, keep the bundle in a ConfigMap."""
    commit = hub.add_model("thirdparty/model", FILES)
    key_file = key.write_private(tmp_path / "org.pem")
    bundle_file = tmp_path / "countersig.sig"
    code = main(
        [
            "countersign",
            "hf://thirdparty/model",
            "--endpoint",
            hub.url,
            "--key",
            str(key_file),
            "--revision",
            commit,
            "--name",
            "granite-review",
            "-n",
            "models",
            "--bundle-out",
            str(bundle_file),
        ]
    )
    out, _ = capsys.readouterr()
    assert code == 0
    assert hub.download_count("thirdparty/model", "model.safetensors") == 0
    configmap = yaml.safe_load(out)
    assert configmap["kind"] == "ConfigMap" and configmap["metadata"]["namespace"] == "models"
    assert configmap["metadata"]["annotations"]["openmodel.io/revision"] == commit
    assert configmap["data"]["model.sig"].encode() == bundle_file.read_bytes()

    policy = str(key_policy(tmp_path, key))
    code, report, _ = verify(
        capsys,
        "hf://thirdparty/model",
        "--endpoint",
        hub.url,
        "--revision",
        commit,
        "--policy",
        policy,
        "--signature",
        str(bundle_file),
    )
    assert code == 0, report
    assert "Tier       Signed" in report and "org-release" in report

    # a standard bundle: model-signing's own verifier accepts it for a directory holding those files
    import model_signing

    copy = write_model(tmp_path / "copy", FILES)
    key_pub = tmp_path / "org.pub"
    key_pub.write_bytes(key.public_pem)
    model_signing.verifying.Config().use_elliptic_key_verifier(public_key=key_pub).verify(copy, bundle_file)

    # and it covers that content only: other bytes under the same names are refused
    hub.add_model("thirdparty/model", {**FILES, "model.safetensors": os.urandom(1024)})
    code, report, _ = verify(
        capsys, "hf://thirdparty/model", "--endpoint", hub.url, "--policy", policy, "--signature", str(bundle_file)
    )
    assert code == 1 and "ManifestMismatch" in report


@pytest.mark.parametrize(
    ("serving", "refused"),
    [
        ({"args": ["--trust-remote-code"]}, True),
        ({"image": "evil/vllm:latest"}, True),
        ({"env": [{"name": "HF_ENDPOINT", "value": "https://evil.example"}]}, True),
        ({"args": ["--max-model-len", "4096"]}, False),  # control: ordinary serving fields pass
    ],
)
def test_gitops_manifest_serving_fields_are_checked(
    hub: HubStub,
    tmp_path: pathlib.Path,
    capsys: pytest.CaptureFixture[str],
    serving: dict[str, Any],
    refused: bool,
) -> None:
    """A pre-merge check refuses serving that would route around verification, as the operator does."""
    hub.add_model("org/unsigned", FILES)
    assert main(["digest", str(write_model(tmp_path / "copy", FILES))]) == 0
    digest = capsys.readouterr().out.strip()
    spec = {"source": {"uri": "hf://org/unsigned", "endpoint": hub.url, "digest": digest}, "serving": serving}
    manifest = tmp_path / "om.yaml"
    manifest.write_text(yaml.safe_dump({"kind": "OpenModel", "metadata": {"name": "m"}, "spec": spec}))
    policy = write_policy(tmp_path / "p.yaml", {"signature": {"required": False, "allowPinnedDigest": True}})
    code, out, _ = verify(capsys, "-f", str(manifest), "--policy", str(policy))
    assert (code, "ServingNotAllowed" in out) == ((1, True) if refused else (0, False)), out
