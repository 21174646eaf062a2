"""pull(): verified downloads from the Hub stand-in and verified copies from directories."""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path

import pytest

from hubstub import HubStub, hub_stub  # noqa: F401 - hub_stub provides the `hub` fixture
from openmodel_operator.evidence.errors import PullError
from openmodel_operator.evidence.records import Reason, ResolvedSource
from openmodel_operator.sources.directory import resolve_directory
from openmodel_operator.sources.hub import resolve_hub
from openmodel_operator.sources.pull import PARTIAL_PREFIX, pull

FILES: dict[str, bytes] = {
    "config.json": b'{"layers": 2}',
    "model-00001-of-00002.safetensors": os.urandom(300_000),
    "model-00002-of-00002.safetensors": os.urandom(200_000),
    "tokenizer/tokenizer.json": b'{"vocab": {}}',
}


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def expected_of(resolved: ResolvedSource) -> dict[str, str]:
    return {f.path: f.sha256 for f in resolved.files}


def tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


@pytest.fixture
def model(hub: HubStub) -> ResolvedSource:
    hub.add_model("org/model", FILES)
    return resolve_hub("hf://org/model", endpoint=hub.url)


def test_pull_places_every_file_verified(hub: HubStub, model: ResolvedSource, tmp_path: Path) -> None:
    dest = tmp_path / "dest"
    seen: dict[str, tuple[int, int]] = {}
    result = pull(model, expected_of(model), dest, progress=lambda p, done, total: seen.__setitem__(p, (done, total)))
    assert tree(dest) == FILES
    assert set(result.downloaded) == set(FILES)
    assert result.skipped == ()
    assert result.bytes == sum(len(d) for d in FILES.values())
    assert result.seconds >= 0
    assert {f.path: f.sha256 for f in result.files} == {p: sha(d) for p, d in FILES.items()}
    assert seen == {p: (len(d), len(d)) for p, d in FILES.items()}
    for path in FILES:
        assert hub.download_count("org/model", path) == (2 if path.endswith(".json") else 1)  # json: resolve too
    mode = stat.S_IMODE((dest / "config.json").stat().st_mode)
    assert mode & 0o044 == 0o044  # readable by a model server running as another user


def test_resume_skips_files_already_in_place(hub: HubStub, model: ResolvedSource, tmp_path: Path) -> None:
    pull(model, expected_of(model), tmp_path)
    before = hub.total_downloads()
    (tmp_path / "model-00002-of-00002.safetensors").write_bytes(b"damaged on disk")
    result = pull(model, expected_of(model), tmp_path)
    assert result.downloaded == ("model-00002-of-00002.safetensors",)
    assert len(result.skipped) == 3
    assert hub.total_downloads() == before + 1
    assert tree(tmp_path) == FILES


def test_pull_uses_the_pinned_commit_after_the_branch_moved(
    hub: HubStub, model: ResolvedSource, tmp_path: Path
) -> None:
    hub.add_model("org/model", {**FILES, "config.json": b'{"layers": 99}'})
    pull(model, expected_of(model), tmp_path)
    assert (tmp_path / "config.json").read_bytes() == FILES["config.json"]


@pytest.mark.parametrize(
    ("kind", "reason"),
    [
        ("corrupt", Reason.PULLED_DIGEST_MISMATCH),
        ("truncate", Reason.PULLED_DIGEST_MISMATCH),
        ("drop", Reason.DOWNLOAD_FAILED),
    ],
)
def test_bad_download_is_retried_then_fails_and_is_not_kept(
    hub: HubStub, model: ResolvedSource, tmp_path: Path, kind: str, reason: Reason
) -> None:
    target = "model-00001-of-00002.safetensors"
    hub.inject_fault("org/model", target, kind)  # type: ignore[arg-type]
    with pytest.raises(PullError) as exc:
        pull(model, expected_of(model), tmp_path, retries=2, retry_wait=0)
    assert exc.value.reason == reason
    assert exc.value.path == target
    assert target in exc.value.message
    assert "3 attempts" in exc.value.message
    assert hub.download_count("org/model", target) == 3
    assert not (tmp_path / target).exists()
    assert not [p for p in tmp_path.rglob("*") if p.name.startswith(PARTIAL_PREFIX)]


def test_one_bad_attempt_is_healed_by_a_retry(hub: HubStub, model: ResolvedSource, tmp_path: Path) -> None:
    hub.inject_fault("org/model", "model-00002-of-00002.safetensors", "corrupt", times=1)
    result = pull(model, expected_of(model), tmp_path, retry_wait=0)
    assert tree(tmp_path) == FILES
    assert "model-00002-of-00002.safetensors" in result.downloaded


def test_expected_digest_is_what_counts(hub: HubStub, model: ResolvedSource, tmp_path: Path) -> None:
    expected = {**expected_of(model), "config.json": sha(b"what the signer signed")}
    with pytest.raises(PullError) as exc:
        pull(model, expected, tmp_path, retries=0)
    assert exc.value.reason == Reason.PULLED_DIGEST_MISMATCH
    assert exc.value.path == "config.json"
    assert not (tmp_path / "config.json").exists()


def test_only_expected_files_are_pulled(hub: HubStub, model: ResolvedSource, tmp_path: Path) -> None:
    pull(model, {"config.json": sha(FILES["config.json"])}, tmp_path)
    assert tree(tmp_path) == {"config.json": FILES["config.json"]}


@pytest.mark.parametrize("path", ["../escape.txt", "/tmp/abs.txt", "a/../../escape.txt", "a\\b"])
def test_unsafe_paths_write_nothing(model: ResolvedSource, tmp_path: Path, path: str) -> None:
    dest = tmp_path / "dest"
    with pytest.raises(PullError) as exc:
        pull(model, {path: sha(b"x")}, dest)
    assert exc.value.reason == Reason.UNSAFE_PATH
    assert sorted(p.name for p in tmp_path.iterdir()) == ([] if not dest.exists() else ["dest"])


def test_symlinked_directory_in_dest_is_not_followed(model: ResolvedSource, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    dest = tmp_path / "dest"
    dest.mkdir()
    (dest / "tokenizer").symlink_to(outside, target_is_directory=True)
    with pytest.raises(PullError) as exc:
        pull(model, expected_of(model), dest)
    assert exc.value.reason == Reason.UNSAFE_PATH
    assert list(outside.iterdir()) == []


def test_symlink_at_a_target_name_is_replaced_not_followed(model: ResolvedSource, tmp_path: Path) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_bytes(b"keep me")
    dest = tmp_path / "dest"
    dest.mkdir()
    (dest / "config.json").symlink_to(victim)
    pull(model, expected_of(model), dest)
    assert victim.read_bytes() == b"keep me"
    assert not (dest / "config.json").is_symlink()
    assert (dest / "config.json").read_bytes() == FILES["config.json"]


def test_dest_itself_may_be_a_symlink(model: ResolvedSource, tmp_path: Path) -> None:
    (tmp_path / "real").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "real", target_is_directory=True)
    pull(model, expected_of(model), tmp_path / "link")
    assert tree(tmp_path / "real") == FILES


def test_stale_partial_files_are_removed(model: ResolvedSource, tmp_path: Path) -> None:
    (tmp_path / f"{PARTIAL_PREFIX}left-by-a-crash").write_bytes(b"junk")
    pull(model, expected_of(model), tmp_path)
    assert tree(tmp_path) == FILES


def test_private_model_pull_needs_the_token(hub: HubStub, tmp_path: Path) -> None:
    hub.add_model("org/private", FILES, private=True)
    resolved = resolve_hub("org/private", endpoint=hub.url, token=hub.token)
    with pytest.raises(PullError) as exc:
        pull(resolved, expected_of(resolved), tmp_path / "a", retry_wait=0)
    assert exc.value.reason == Reason.ACCESS_DENIED
    pull(resolved, expected_of(resolved), tmp_path / "b", token=hub.token)
    assert tree(tmp_path / "b") == FILES


def test_unpinned_source_is_refused(model: ResolvedSource, tmp_path: Path) -> None:
    unpinned = ResolvedSource(
        uri=model.uri, kind="hf", files=model.files, revision="main", repo_id=model.repo_id, endpoint=model.endpoint
    )
    with pytest.raises(PullError) as exc:
        pull(unpinned, expected_of(model), tmp_path)
    assert exc.value.reason == Reason.INVALID_SOURCE
    assert list(tmp_path.iterdir()) == []


def test_local_source_is_copied_with_verification(tmp_path: Path) -> None:
    source = tmp_path / "src"
    for rel, data in FILES.items():
        (source / rel).parent.mkdir(parents=True, exist_ok=True)
        (source / rel).write_bytes(data)
    resolved = resolve_directory(source)
    result = pull(resolved, expected_of(resolved), tmp_path / "dst")
    assert tree(tmp_path / "dst") == FILES
    assert set(result.downloaded) == set(FILES)
    again = pull(resolved, expected_of(resolved), source)  # pulling onto itself only verifies
    assert set(again.skipped) == set(FILES)

    (source / "config.json").write_bytes(b'{"layers": 3}')  # changed after resolution
    with pytest.raises(PullError) as exc:
        pull(resolved, expected_of(resolved), tmp_path / "dst2")
    assert exc.value.reason == Reason.PULLED_DIGEST_MISMATCH
    assert exc.value.path == "config.json"
    assert not (tmp_path / "dst2" / "config.json").exists()


def test_pvc_source_needs_its_mount_path(tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "a.txt").write_bytes(b"a")
    resolved = resolve_directory(tmp_path / "src", uri="pvc://claim/a", kind="pvc")
    with pytest.raises(PullError) as exc:
        pull(resolved, expected_of(resolved), tmp_path / "dst")
    assert exc.value.reason == Reason.INVALID_SOURCE
    pull(resolved, expected_of(resolved), tmp_path / "dst", source_dir=tmp_path / "src")
    assert (tmp_path / "dst" / "a.txt").read_bytes() == b"a"
