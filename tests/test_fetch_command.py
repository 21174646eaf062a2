"""`openmodel fetch`: the volume ends up holding exactly the verified files, or the command fails."""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
from pathlib import Path
from typing import Any

import pytest

from hubstub import HubStub
from openmodel_operator.commands import fetch
from openmodel_operator.evidence.manifest import manifest_digest_of
from openmodel_operator.evidence.pinned import PinnedManifest
from openmodel_operator.evidence.records import FileEntry

REPO = "acme/tiny-llm"
FILES: dict[str, bytes] = {
    "config.json": b'{"architectures": ["LlamaForCausalLM"]}\n',
    "tokenizer.json": b'{"version": "1.0"}\n',
    "model-00001-of-00002.safetensors": os.urandom(300_000),
    "model-00002-of-00002.safetensors": os.urandom(200_000),
    "sub/generation_config.json": b"{}\n",
}


def pinned_for(
    files: dict[str, bytes], source: str, revision: str | None = None, endpoint: str | None = None
) -> PinnedManifest:
    entries = tuple(sorted(FileEntry(p, len(d), hashlib.sha256(d).hexdigest()) for p, d in files.items()))
    digest = manifest_digest_of(entries)
    return PinnedManifest(source=source, revision=revision, manifest_digest=digest, files=entries, endpoint=endpoint)


def write_tree(root: Path, files: dict[str, bytes]) -> None:
    for rel, data in files.items():
        target = root / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)


def tree(root: Path) -> dict[str, bytes]:
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in root.rglob("*")
        if p.is_file() and not p.is_symlink() and "lost+found" not in p.parts
    }


def run_fetch(argv: list[str]) -> tuple[int, list[dict[str, Any]], str]:
    """Parse like the CLI does, run, and return (exit code, JSON log records, raw output)."""
    parser = argparse.ArgumentParser(prog="openmodel")
    fetch.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["fetch", *argv])
    out = io.StringIO()
    code = fetch.run(args, stream=out)
    raw = out.getvalue()
    records = [json.loads(line) for line in raw.splitlines()]  # every line is one JSON object
    return code, records, raw


@pytest.fixture
def manifest_file(tmp_path: Path) -> Path:
    return tmp_path / "manifest.json"


@pytest.fixture(autouse=True)
def no_token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(fetch.TOKEN_ENV, raising=False)


# ---------------------------------------------------------------- --verify-only


@pytest.fixture
def verified_dir(tmp_path: Path, manifest_file: Path) -> Path:
    dest = tmp_path / "models"
    write_tree(dest, FILES)
    manifest_file.write_text(pinned_for(FILES, f"hf://{REPO}", "a" * 40).to_json())
    return dest


def verify(dest: Path, manifest_file: Path, *extra: str) -> tuple[int, list[dict[str, Any]], str]:
    return run_fetch(["--verify-only", "--manifest", str(manifest_file), "--dest", str(dest), *extra])


def test_verify_only_accepts_an_exact_copy(verified_dir: Path, manifest_file: Path) -> None:
    (verified_dir / "lost+found").mkdir()  # what mkfs leaves on a fresh volume
    code, records, _ = verify(verified_dir, manifest_file)
    assert code == 0
    assert records[-1]["event"] == "verified"
    assert records[-1]["files"] == len(FILES)


def test_verify_only_rejects_a_flipped_byte(verified_dir: Path, manifest_file: Path) -> None:
    shard = verified_dir / "model-00002-of-00002.safetensors"
    data = bytearray(shard.read_bytes())
    data[1234] ^= 0x01
    shard.write_bytes(bytes(data))
    code, records, _ = verify(verified_dir, manifest_file)
    assert code == 1
    mismatch = [r for r in records if r["event"] == "mismatch"]
    assert [(r["path"], r["reason"]) for r in mismatch] == [
        ("model-00002-of-00002.safetensors", "PulledDigestMismatch")
    ]
    assert records[-1]["event"] == "failed"
    assert records[-1]["reason"] == "PulledDigestMismatch"
    assert "model-00002-of-00002.safetensors" in records[-1]["message"]


def test_verify_only_rejects_an_extra_safetensors(verified_dir: Path, manifest_file: Path) -> None:
    (verified_dir / "adapter.safetensors").write_bytes(b"not signed")
    code, records, _ = verify(verified_dir, manifest_file)
    assert code == 1
    assert records[-1]["reason"] == "ManifestMismatch"
    assert records[-1]["path"] == "adapter.safetensors"


def test_verify_only_rejects_extra_files_anywhere(verified_dir: Path, manifest_file: Path) -> None:
    # huggingface_hub bookkeeping is skipped by a plain directory resolve; on a served volume it is just extra
    write_tree(verified_dir, {".cache/huggingface/download/x.safetensors": b"junk"})
    code, records, _ = verify(verified_dir, manifest_file)
    assert code == 1
    assert ".cache/huggingface/download/x.safetensors" in records[-1]["message"]


def test_verify_only_rejects_a_symlink_named_like_a_model_file(verified_dir: Path, manifest_file: Path) -> None:
    target = verified_dir / "config.json"
    target.unlink()
    target.symlink_to("/etc/hostname")
    code, records, _ = verify(verified_dir, manifest_file)
    assert code == 1
    assert records[-1]["path"] == "config.json"


def test_verify_only_rejects_a_missing_file(verified_dir: Path, manifest_file: Path) -> None:
    (verified_dir / "sub" / "generation_config.json").unlink()
    code, records, _ = verify(verified_dir, manifest_file)
    assert code == 1
    assert records[-1]["reason"] == "ManifestMismatch"
    assert "sub/generation_config.json (missing)" in records[-1]["message"]


def test_verify_only_rejects_a_manifest_for_other_content(verified_dir: Path, manifest_file: Path) -> None:
    other = "sha256:" + "0" * 64
    code, records, _ = verify(verified_dir, manifest_file, "--expect-digest", other)
    assert code == 1
    assert records[-1]["reason"] == "ManifestMismatch"
    assert other in records[-1]["message"]


def test_verify_only_rejects_an_edited_manifest(verified_dir: Path, manifest_file: Path) -> None:
    doc = json.loads(manifest_file.read_text())
    doc["files"][0]["sha256"] = "f" * 64  # digest of one file changed, manifest digest left alone
    manifest_file.write_text(json.dumps(doc))
    code, records, _ = verify(verified_dir, manifest_file)
    assert code == 1
    assert records[-1]["reason"] == "ManifestMismatch"


def test_verify_only_on_a_missing_volume_is_an_operational_error(tmp_path: Path, manifest_file: Path) -> None:
    manifest_file.write_text(pinned_for(FILES, f"hf://{REPO}", "a" * 40).to_json())
    code, records, _ = verify(tmp_path / "not-mounted", manifest_file)
    assert code == 2
    assert records[-1]["event"] == "failed"


def test_unreadable_manifest_is_an_operational_error(tmp_path: Path) -> None:
    code, records, _ = verify(tmp_path, tmp_path / "nope.json")
    assert code == 2
    assert records[-1]["reason"] == "InvalidSource"


# ---------------------------------------------------------------- normal mode against the Hub stand-in


def hub_manifest(hub: HubStub, manifest_file: Path, private: bool = False) -> PinnedManifest:
    sha = hub.add_model(REPO, FILES, private=private)
    pinned = pinned_for(FILES, f"hf://{REPO}", sha, endpoint=hub.url)
    manifest_file.write_text(pinned.to_json())
    return pinned


def test_fetch_pulls_exactly_the_manifest_files(hub: HubStub, tmp_path: Path, manifest_file: Path) -> None:
    pinned = hub_manifest(hub, manifest_file)
    dest = tmp_path / "models"
    code, records, _ = run_fetch(
        ["--manifest", str(manifest_file), "--dest", str(dest), "--expect-digest", pinned.manifest_digest]
    )
    assert code == 0, records[-1]
    assert tree(dest) == FILES
    assert records[-1]["event"] == "done"
    assert {r["path"] for r in records if r["event"] == "file"} == set(FILES)
    # nothing written next to the volume (the Job's root filesystem is read-only)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["manifest.json", "models"]
    # and the init container accepts what the Job left
    assert verify(dest, manifest_file)[0] == 0


def test_fetch_leaves_only_verified_files_on_a_used_volume(hub: HubStub, tmp_path: Path, manifest_file: Path) -> None:
    hub_manifest(hub, manifest_file)
    dest = tmp_path / "models"
    write_tree(
        dest,
        {
            "old-model.safetensors": b"previous version",
            "nested/dir/stale.bin": b"x",
            ".openmodel-partial-abc": b"killed pull",
            "config.json": b"stale content, same name",
        },
    )
    (dest / "lost+found").mkdir()
    (dest / "evil.safetensors").symlink_to("/etc/passwd")
    code, records, _ = run_fetch(["--manifest", str(manifest_file), "--dest", str(dest)])
    assert code == 0, records[-1]
    assert tree(dest) == FILES
    assert not (dest / "evil.safetensors").is_symlink()
    assert not (dest / "nested").exists()
    assert (dest / "lost+found").is_dir()
    removed = {r["path"] for r in records if r["event"] == "removed"}
    assert {"old-model.safetensors", "nested/dir/stale.bin", "evil.safetensors"} <= removed


def test_fetch_rejects_a_corrupted_download(hub: HubStub, tmp_path: Path, manifest_file: Path) -> None:
    hub_manifest(hub, manifest_file)
    hub.inject_fault(REPO, "model-00001-of-00002.safetensors", "corrupt")  # every attempt
    dest = tmp_path / "models"
    code, records, _ = run_fetch(["--manifest", str(manifest_file), "--dest", str(dest), "--retries", "0"])
    assert code == 1
    assert records[-1]["event"] == "failed"
    assert records[-1]["reason"] == "PulledDigestMismatch"
    assert records[-1]["path"] == "model-00001-of-00002.safetensors"
    assert not (dest / "model-00001-of-00002.safetensors").exists()  # never left where a server could load it
    assert verify(dest, manifest_file)[0] == 1


def test_fetch_retries_a_transient_corruption(hub: HubStub, tmp_path: Path, manifest_file: Path) -> None:
    hub_manifest(hub, manifest_file)
    hub.inject_fault(REPO, "model-00002-of-00002.safetensors", "corrupt", times=1)
    dest = tmp_path / "models"
    code, records, _ = run_fetch(["--manifest", str(manifest_file), "--dest", str(dest), "--retries", "1"])
    assert code == 0, records[-1]
    assert tree(dest) == FILES
    assert hub.download_count(REPO, "model-00002-of-00002.safetensors") == 2


def test_fetch_resumes_without_downloading_verified_files_again(
    hub: HubStub, tmp_path: Path, manifest_file: Path
) -> None:
    hub_manifest(hub, manifest_file)
    dest = tmp_path / "models"
    assert run_fetch(["--manifest", str(manifest_file), "--dest", str(dest)])[0] == 0
    before = hub.total_downloads()
    code, records, _ = run_fetch(["--manifest", str(manifest_file), "--dest", str(dest)])
    assert code == 0
    assert hub.total_downloads() == before
    assert records[-1]["present"] == len(FILES)


def test_fetch_uses_the_token_and_never_prints_it(
    hub: HubStub, tmp_path: Path, manifest_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    hub_manifest(hub, manifest_file, private=True)
    dest = tmp_path / "models"
    code, records, _ = run_fetch(["--manifest", str(manifest_file), "--dest", str(dest)])
    assert code == 2  # private without a token: access denied, worth a retry once the Secret is fixed
    assert records[-1]["reason"] == "AccessDenied"

    monkeypatch.setenv(fetch.TOKEN_ENV, hub.token + "\n")  # Secrets made from files end in a newline
    code, records, raw = run_fetch(["--manifest", str(manifest_file), "--dest", str(dest), "--progress-interval", "0"])
    assert code == 0, records[-1]
    assert any(r["event"] == "progress" for r in records)
    assert hub.token not in raw


def test_fetch_rejects_a_manifest_for_other_content(hub: HubStub, tmp_path: Path, manifest_file: Path) -> None:
    hub_manifest(hub, manifest_file)
    code, records, _ = run_fetch(
        ["--manifest", str(manifest_file), "--dest", str(tmp_path / "m"), "--expect-digest", "sha256:" + "1" * 64]
    )
    assert code == 1
    assert records[-1]["reason"] == "ManifestMismatch"
    assert hub.total_downloads() == 0


def test_fetch_copies_a_pvc_source(tmp_path: Path, manifest_file: Path) -> None:
    source = tmp_path / "claim" / "models" / "tiny"
    write_tree(source, FILES)
    write_tree(source, {"notes.txt": b"not part of the pinned manifest"})
    manifest_file.write_text(pinned_for(FILES, "pvc://claim/models/tiny").to_json())
    dest = tmp_path / "models"
    code, records, _ = run_fetch(["--manifest", str(manifest_file), "--dest", str(dest), "--source-dir", str(source)])
    assert code == 0, records[-1]
    assert tree(dest) == FILES


def test_fetch_of_a_pvc_source_needs_its_mount(tmp_path: Path, manifest_file: Path) -> None:
    manifest_file.write_text(pinned_for(FILES, "pvc://claim/models").to_json())
    code, records, _ = run_fetch(["--manifest", str(manifest_file), "--dest", str(tmp_path / "m")])
    assert code == 2
    assert "--source-dir" in records[-1]["message"]


def test_progress_is_throttled() -> None:
    out = io.StringIO()
    now = [0.0]
    progress = fetch.ProgressLog(fetch.JsonLog(out), total=100, interval=5.0, clock=lambda: now[0])
    for step in range(10):
        now[0] = step  # one call a second
        progress("a", step * 10, 100)
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [line["bytes"] for line in lines] == [50]  # at t=5 only
