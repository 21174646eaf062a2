"""Issue 8, property 5: a pin binds names, and the fetch Job is bound to the content the operator decided on.

Threats: content that keeps every file digest but moves them to other names (a config read as a
tokenizer, weights under another shard name) passing a digest-only pin; a tenant editing the pinned
manifest ConfigMap (a renamed path, another sha256 or size, an extra file) so the fetch Job or the
verify-on-start check accepts content the operator never decided on. Each hostile case sits next to a
control that must still pass.
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import io
import json
import pathlib
from collections.abc import Callable
from typing import Any

import pytest

from hubstub import HubStub
from openmodel_operator.cli import main
from openmodel_operator.commands import fetch
from openmodel_operator.evidence.manifest import manifest_digest, manifest_digest_of, subject_digest_of
from openmodel_operator.evidence.pinned import PinnedManifest
from openmodel_operator.evidence.records import FileEntry
from openmodel_operator.planning.trust_result import from_examination
from openmodel_operator.sources.examine import examine
from openmodel_operator.trust.examination import ModelRequest
from openmodel_operator.trust.policies import policy_from_manifest

REPO = "acme/pinned"
FILES: dict[str, bytes] = {
    "README.md": b"---\nlicense: apache-2.0\n---\n# pinned\n",
    "config.json": b'{"architectures": ["LlamaForCausalLM"]}\n',
    "model.safetensors": bytes(range(256)) * 64,
    "tokenizer.json": b'{"version": "1.0"}\n',
}


def entries(files: dict[str, bytes]) -> tuple[FileEntry, ...]:
    return tuple(sorted(FileEntry(p, len(d), hashlib.sha256(d).hexdigest()) for p, d in files.items()))


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# ------------------------------------------------------------------------------- the digest


def test_documented_encoding() -> None:
    """docs/api.md: per file in path order, len(path) u32 BE + path + size u64 BE + 32 digest bytes."""
    files = [FileEntry("b/x.json", 3, sha(b"abc")), FileEntry("a.bin", 0, sha(b""))]
    stream = b""
    for path, size, digest in (("a.bin", 0, sha(b"")), ("b/x.json", 3, sha(b"abc"))):
        stream += (
            len(path.encode()).to_bytes(4, "big") + path.encode() + size.to_bytes(8, "big") + bytes.fromhex(digest)
        )
    assert manifest_digest_of(files) == "sha256:" + hashlib.sha256(stream).hexdigest()


def test_swapped_names_give_another_digest() -> None:
    """Same digests in the same order under other names: model-signing's subject digest cannot tell, ours can."""
    config, weights = b'{"a": 1}\n', b"\x00" * 32
    original = [FileEntry("a.json", len(config), sha(config)), FileEntry("b.safetensors", len(weights), sha(weights))]
    swapped = [FileEntry("a.safetensors", len(config), sha(config)), FileEntry("b.json", len(weights), sha(weights))]
    assert subject_digest_of({f.path: f.sha256 for f in original}) == subject_digest_of(
        {f.path: f.sha256 for f in swapped}
    )
    assert manifest_digest_of(original) != manifest_digest_of(swapped)


def test_names_and_sizes_are_bound_unambiguously() -> None:
    one = FileEntry("ab", 1, sha(b"x"))
    assert manifest_digest_of([one]) != manifest_digest_of([FileEntry("ab", 2, sha(b"x"))])  # size bound
    # the length prefix keeps path bytes from sliding into the next field
    assert manifest_digest_of([FileEntry("ab", 1, "0" * 64), FileEntry("c", 1, "0" * 64)]) != manifest_digest_of(
        [FileEntry("a", 1, "0" * 64), FileEntry("bc", 1, "0" * 64)]
    )
    # order of the input does not matter, only the set of (path, size, sha256)
    files = entries(FILES)
    assert manifest_digest_of(files) == manifest_digest_of(reversed(files))


def test_digest_refuses_what_it_cannot_encode() -> None:
    for bad in (FileEntry("a", -1, "0" * 64), FileEntry("a", 2**64, "0" * 64), FileEntry("a", 1, "xyz")):
        with pytest.raises(ValueError):
            manifest_digest_of([bad])


def test_openmodel_digest_equals_the_status_digest(
    hub: HubStub, tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """What a reviewer pins (`openmodel digest DIR`) is what status.provenance.manifestDigest shows for the Hub copy."""
    local = tmp_path / "model"
    for rel, data in FILES.items():
        (local / rel).parent.mkdir(parents=True, exist_ok=True)
        (local / rel).write_bytes(data)
    assert main(["digest", str(local)]) == 0
    printed = capsys.readouterr().out.strip()
    assert printed == manifest_digest(entries(FILES))

    hub.add_model(REPO, FILES, lfs_patterns=("*.safetensors",))
    nothing_required = policy_from_manifest(
        {
            "kind": "ModelTrustPolicy",
            "metadata": {"name": "p"},
            "spec": {"mode": "Audit", "signature": {"required": False}},
        }
    )
    exam = examine(ModelRequest(f"hf://{REPO}", endpoint=hub.url, pinned_digest=printed), [nothing_required])
    status = from_examination(exam, datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC))
    assert status.provenance is not None and status.provenance.manifest_digest == printed
    assert status.pinned is not None and status.pinned.manifest_digest == printed
    assert exam.verdict.tier.value == "Pinned"


# ------------------------------------------------------------------------------- the pinned manifest ConfigMap


def run_fetch(*argv: str) -> tuple[int, list[dict[str, Any]]]:
    parser = argparse.ArgumentParser(prog="openmodel")
    fetch.register(parser.add_subparsers(dest="command"))
    out = io.StringIO()
    code = fetch.run(parser.parse_args(["fetch", *argv]), stream=out)
    return code, [json.loads(line) for line in out.getvalue().splitlines()]


def write_tree(root: pathlib.Path, files: dict[str, bytes]) -> None:
    for rel, data in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)


def _rename(doc: dict[str, Any]) -> None:
    doc["files"][1]["path"] = "tokenizer_config.json"


def _resha(doc: dict[str, Any]) -> None:
    doc["files"][2]["sha256"] = sha(b"other weights")


def _resize(doc: dict[str, Any]) -> None:
    doc["files"][2]["size"] += 1


def _add(doc: dict[str, Any]) -> None:
    doc["files"].append({"path": "extra.safetensors", "size": 5, "sha256": sha(b"extra")})


def _traverse(doc: dict[str, Any]) -> None:
    doc["files"][0]["path"] = "../README.md"


EDITS: dict[str, Callable[[dict[str, Any]], None]] = {
    "renamed path": _rename,
    "changed sha256": _resha,
    "changed size": _resize,
    "added file": _add,
    "path outside the volume": _traverse,
}


def edited(pinned: PinnedManifest, edit: Callable[[dict[str, Any]], None], recompute: bool) -> str:
    """The ConfigMap's manifest.json after a tenant's edit, with or without a matching new manifestDigest."""
    doc = json.loads(pinned.to_json())
    edit(doc)
    if recompute:
        doc["manifestDigest"] = manifest_digest_of(FileEntry(f["path"], f["size"], f["sha256"]) for f in doc["files"])
    return json.dumps(doc)


@pytest.fixture
def pinned() -> PinnedManifest:
    files = entries(FILES)
    return PinnedManifest(f"hf://{REPO}", "c" * 40, manifest_digest_of(files), files)


@pytest.mark.parametrize("recompute", [False, True], ids=["digest-left", "digest-recomputed"])
@pytest.mark.parametrize("edit", list(EDITS), ids=list(EDITS))
def test_verify_only_refuses_an_edited_manifest(
    tmp_path: pathlib.Path, pinned: PinnedManifest, edit: str, recompute: bool
) -> None:
    volume = tmp_path / "models"
    write_tree(volume, FILES)
    manifest = tmp_path / "manifest.json"
    manifest.write_text(edited(pinned, EDITS[edit], recompute))
    code, records = run_fetch(
        "--verify-only", "--manifest", str(manifest), "--dest", str(volume), "--expect-digest", pinned.manifest_digest
    )
    assert code == 1, records[-1]
    assert records[-1]["reason"] in {"ManifestMismatch", "UnsafePath"}


def test_control_verify_only_accepts_the_untouched_manifest(tmp_path: pathlib.Path, pinned: PinnedManifest) -> None:
    volume = tmp_path / "models"
    write_tree(volume, FILES)
    manifest = tmp_path / "manifest.json"
    manifest.write_text(pinned.to_json())
    code, records = run_fetch(
        "--verify-only", "--manifest", str(manifest), "--dest", str(volume), "--expect-digest", pinned.manifest_digest
    )
    assert code == 0 and records[-1]["event"] == "verified"


@pytest.mark.parametrize("recompute", [False, True], ids=["digest-left", "digest-recomputed"])
@pytest.mark.parametrize("edit", ["renamed path", "changed sha256", "added file"])
def test_fetch_refuses_an_edited_manifest_before_downloading(
    hub: HubStub, tmp_path: pathlib.Path, edit: str, recompute: bool
) -> None:
    commit = hub.add_model(REPO, FILES)
    files = entries(FILES)
    pinned = PinnedManifest(f"hf://{REPO}", commit, manifest_digest_of(files), files, endpoint=hub.url)
    manifest = tmp_path / "manifest.json"
    manifest.write_text(edited(pinned, EDITS[edit], recompute))
    dest = tmp_path / "models"
    code, records = run_fetch(
        "--manifest", str(manifest), "--dest", str(dest), "--expect-digest", pinned.manifest_digest
    )
    assert code == 1 and records[-1]["reason"] == "ManifestMismatch"
    assert hub.total_downloads() == 0
    # control: the operator's manifest is fetched
    manifest.write_text(pinned.to_json())
    code, records = run_fetch(
        "--manifest", str(manifest), "--dest", str(dest), "--expect-digest", pinned.manifest_digest
    )
    assert code == 0, records[-1]
    assert {p.relative_to(dest).as_posix() for p in dest.rglob("*") if p.is_file()} == set(FILES)
