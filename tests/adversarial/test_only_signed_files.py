"""Only signed files reach the volume (issue 8, property 9).

A signer may leave files out of its signature (``ignore_paths``): a README, notes, a docs folder.
Those files are in the repository but no one vouches for them, so neither ``verify --pull`` nor the
fetch Job puts them next to the model, whatever their name (no list of "loadable" suffixes decides
what a model server, a tokenizer plugin or a chat template may read). A pull into a directory also
removes whatever was there and is not in the verified set.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import pathlib
from typing import Any

import pytest
import yaml

from hubstub import HubStub
from openmodel_operator.cli import main
from openmodel_operator.commands import fetch
from openmodel_operator.evidence.manifest import manifest_digest_of, verified_files
from openmodel_operator.evidence.pinned import PinnedManifest
from openmodel_operator.sources.examine import examine
from openmodel_operator.trust.examination import ModelRequest
from openmodel_operator.trust.policies import load_policy_file
from signing_fixtures import KeyPair, new_key, sign_with_key, write_model

WEIGHTS = os.urandom(32 * 1024)
SIGNED = {
    "README.md": b"---\nlicense: apache-2.0\n---\n# signed card\n",
    "config.json": b'{"hidden_size": 8}\n',
    "model.safetensors": WEIGHTS,
    "tokenizer.json": b'{"version": "1.0"}\n',
}
UNSIGNED = {
    "notes.md": b"# notes the signer did not sign\n",
    "docs/extra/hook.html": b"<script>anything</script>\n",
}
IGNORED = ["notes.md", "docs"]


@pytest.fixture
def key() -> KeyPair:
    return new_key()


def publish(hub: HubStub, tmp_path: pathlib.Path, key: KeyPair) -> str:
    """A repository whose signature covers SIGNED; UNSIGNED is in it too, left out by the signer."""
    model = write_model(tmp_path / "src", {**SIGNED, **UNSIGNED})
    bundle = sign_with_key(model, key, tmp_path / "sig", ignore=IGNORED)
    return hub.add_model("org/model", {**SIGNED, **UNSIGNED, "model.sig": bundle})


def policy_file(tmp_path: pathlib.Path, key: KeyPair, endpoint: str) -> pathlib.Path:
    """The signer's key, and the Hub stand-in allowed as a mirror (it is not the public Hub)."""
    spec = {
        "signature": {"required": True, "keys": [{"name": "org-release", "publicKey": key.public_pem.decode()}]},
        "sources": {"endpoints": {"allow": [endpoint]}},
    }
    doc = {"apiVersion": "openmodel.io/v1alpha1", "kind": "ModelTrustPolicy", "metadata": {"name": "org"}, "spec": spec}
    path = tmp_path / "policy.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def files_in(root: pathlib.Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def test_verify_pull_places_only_the_signed_files(
    hub: HubStub, tmp_path: pathlib.Path, key: KeyPair, capsys: pytest.CaptureFixture[str]
) -> None:
    publish(hub, tmp_path, key)
    dest = tmp_path / "pulled"
    (dest / "stale").mkdir(parents=True)
    (dest / "stray.py").write_bytes(b"import os\n")  # left by someone else: not in the verified set
    (dest / "stale" / "old.safetensors").write_bytes(b"old weights")
    policy = str(policy_file(tmp_path, key, hub.url))
    code = main(["verify", "hf://org/model", "--endpoint", hub.url, "--policy", policy, "--pull", str(dest)])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "TRUSTED, tier Signed" in out
    assert files_in(dest) == SIGNED  # the signed files, verified; nothing else
    assert not (dest / "stale").exists()
    assert hub.download_count("org/model", "model.safetensors") == 1


def test_fetch_of_the_verified_set_leaves_out_unsigned_files(
    hub: HubStub, tmp_path: pathlib.Path, key: KeyPair, monkeypatch: pytest.MonkeyPatch
) -> None:
    publish(hub, tmp_path, key)
    policies = load_policy_file(policy_file(tmp_path, key, hub.url).read_text(), "policy.yaml")
    exam = examine(ModelRequest(uri="hf://org/model", endpoint=hub.url), policies)
    assert exam.verdict.trusted, exam.verdict.violations
    files = tuple(verified_files(exam.resolved.files, exam.evidence.signature_path, exam.verdict.signature))
    assert {f.path for f in files} == set(SIGNED)
    pinned = PinnedManifest(
        source=exam.resolved.uri,
        revision=exam.resolved.revision,
        manifest_digest=manifest_digest_of(files),
        files=files,
        endpoint=exam.resolved.endpoint,
    )
    manifest = tmp_path / "manifest.json"
    manifest.write_text(pinned.to_json())
    dest = tmp_path / "volume"
    dest.mkdir()
    (dest / "notes.md").write_bytes(b"planted")  # a stray file: removed
    monkeypatch.delenv(fetch.TOKEN_ENV, raising=False)
    code, records = run_fetch(["--manifest", str(manifest), "--dest", str(dest)])
    assert code == 0, records
    assert files_in(dest) == SIGNED
    assert any(r["event"] == "removed" and r["path"] == "notes.md" for r in records)
    assert all(hub.download_count("org/model", p) <= 1 for p in UNSIGNED)  # hashed at resolution at most


def test_the_verified_set_of_an_unsigned_pinned_model_is_every_file(hub: HubStub, tmp_path: pathlib.Path) -> None:
    """Control for the Pinned tier: the pin covers every file of the manifest, so all are pulled."""
    hub.add_model("org/pinned", {**SIGNED, **UNSIGNED})
    exam = examine(ModelRequest(uri="hf://org/pinned", endpoint=hub.url), [])
    files = verified_files(exam.resolved.files, exam.evidence.signature_path, exam.verdict.signature)
    assert {f.path for f in files} == set(SIGNED) | set(UNSIGNED)


def run_fetch(argv: list[str]) -> tuple[int, list[dict[str, Any]]]:
    parser = argparse.ArgumentParser(prog="openmodel")
    fetch.register(parser.add_subparsers(dest="command"))
    out = io.StringIO()
    code = fetch.run(parser.parse_args(["fetch", *argv]), stream=out)
    return code, [json.loads(line) for line in out.getvalue().splitlines()]


def test_a_local_model_is_pulled_without_its_unsigned_files_and_never_into_itself(
    tmp_path: pathlib.Path, key: KeyPair, capsys: pytest.CaptureFixture[str]
) -> None:
    model = write_model(tmp_path / "model", {**SIGNED, **UNSIGNED})
    (model / "model.sig").write_bytes(sign_with_key(model, key, tmp_path / "sig", ignore=IGNORED))
    policy = str(policy_file(tmp_path, key, "https://huggingface.co"))
    before = files_in(model)
    code = main(["verify", str(model), "--policy", policy, "--pull", str(model / "sub")])
    assert code == 2 and "overlaps the model directory" in capsys.readouterr().out
    assert files_in(model) == before  # nothing removed from the source
    dest = tmp_path / "copy"
    code = main(["verify", str(model), "--policy", policy, "--pull", str(dest)])
    assert code == 0, capsys.readouterr().out
    assert files_in(dest) == SIGNED
