"""resolve_directory, the shared path rule and the YAML reader."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from openmodel_operator.evidence.documents import card_metadata, load_yaml_mapping
from openmodel_operator.evidence.errors import SourceError
from openmodel_operator.evidence.paths import check_relative_path
from openmodel_operator.evidence.records import Reason
from openmodel_operator.sources.directory import hash_file, resolve_directory


def write(root: Path, files: dict[str, bytes]) -> None:
    for rel, data in files.items():
        target = root / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_every_file_hashed_with_relative_posix_paths(tmp_path: Path) -> None:
    files = {
        "config.json": b"{}",
        "weights/part-1.safetensors": os.urandom(9 * 1024 * 1024 + 7),
        "weights/part-2.safetensors": os.urandom(5 * 1024 * 1024),
        "tok/a/b/vocab.txt": b"abc",
        "empty.txt": b"",
        ".gitattributes": b"*.safetensors filter=lfs",
    }
    write(tmp_path, files)
    resolved = resolve_directory(tmp_path, workers=3)
    assert {f.path: (f.size, f.sha256) for f in resolved.files} == {
        rel: (len(data), sha(data)) for rel, data in files.items()
    }
    assert [f.path for f in resolved.files] == sorted(files)
    assert resolved.kind == "local"
    assert resolved.uri == str(tmp_path.resolve())
    assert resolved.revision is None


def test_uri_and_kind_are_kept(tmp_path: Path) -> None:
    write(tmp_path, {"a.txt": b"a"})
    resolved = resolve_directory(tmp_path, uri="pvc://models/llama", kind="pvc")
    assert (resolved.uri, resolved.kind) == ("pvc://models/llama", "pvc")


def test_hash_file_matches_hashlib(tmp_path: Path) -> None:
    data = os.urandom(3 * 1024 * 1024 + 11)
    (tmp_path / "f").write_bytes(data)
    assert hash_file(tmp_path / "f") == (len(data), sha(data))


def test_symlinked_file_is_refused(tmp_path: Path) -> None:
    outside = tmp_path / "outside.txt"
    outside.write_bytes(b"secret")
    model = tmp_path / "model"
    write(model, {"config.json": b"{}"})
    (model / "weights.safetensors").symlink_to(outside)
    with pytest.raises(SourceError) as exc:
        resolve_directory(model)
    assert exc.value.reason == Reason.SYMLINK_NOT_ALLOWED
    assert "weights.safetensors" in exc.value.message


def test_symlinked_directory_is_refused(tmp_path: Path) -> None:
    (tmp_path / "elsewhere").mkdir()
    model = tmp_path / "model"
    write(model, {"config.json": b"{}"})
    (model / "sub").symlink_to(tmp_path / "elsewhere", target_is_directory=True)
    with pytest.raises(SourceError) as exc:
        resolve_directory(model)
    assert exc.value.reason == Reason.SYMLINK_NOT_ALLOWED


def test_root_may_be_a_symlink(tmp_path: Path) -> None:
    write(tmp_path / "real", {"a.txt": b"a"})
    (tmp_path / "link").symlink_to(tmp_path / "real", target_is_directory=True)
    assert [f.path for f in resolve_directory(tmp_path / "link").files] == ["a.txt"]


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_special_files_are_refused(tmp_path: Path) -> None:
    write(tmp_path, {"a.txt": b"a"})
    os.mkfifo(tmp_path / "pipe")
    with pytest.raises(SourceError) as exc:
        resolve_directory(tmp_path)
    assert exc.value.reason == Reason.UNSAFE_PATH


def test_backslash_in_a_file_name_is_refused(tmp_path: Path) -> None:
    write(tmp_path, {"a\\b.txt": b"x"})
    with pytest.raises(SourceError) as exc:
        resolve_directory(tmp_path)
    assert exc.value.reason == Reason.UNSAFE_PATH


def test_only_the_huggingface_local_dir_cache_is_skipped(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "model.safetensors": b"w",
            ".cache/huggingface/download/model.safetensors.metadata": b"etag",
            ".cache/huggingface/.gitignore": b"*",
            ".cache/other.bin": b"kept",
            "sub/.cache/huggingface/x": b"kept too",
        },
    )
    paths = [f.path for f in resolve_directory(tmp_path).files]
    assert paths == [".cache/other.bin", "model.safetensors", "sub/.cache/huggingface/x"]


def test_too_many_files(tmp_path: Path) -> None:
    write(tmp_path, {f"f{i}.txt": b"x" for i in range(6)})
    with pytest.raises(SourceError) as exc:
        resolve_directory(tmp_path, max_files=5)
    assert exc.value.reason == Reason.TOO_MANY_FILES
    assert len(resolve_directory(tmp_path, max_files=6).files) == 6


def test_file_too_large(tmp_path: Path) -> None:
    write(tmp_path, {"w.bin": b"x" * 100})
    with pytest.raises(SourceError) as exc:
        resolve_directory(tmp_path, max_file_size=99)
    assert exc.value.reason == Reason.FILE_TOO_LARGE


def test_missing_directory(tmp_path: Path) -> None:
    with pytest.raises(SourceError) as exc:
        resolve_directory(tmp_path / "nope")
    assert exc.value.reason == Reason.INVALID_SOURCE
    (tmp_path / "file").write_bytes(b"")
    with pytest.raises(SourceError) as exc:
        resolve_directory(tmp_path / "file")
    assert exc.value.reason == Reason.INVALID_SOURCE


def test_card_and_openness_declaration(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "README.md": b"---\nlicense: mit\ndatasets: [org/data]\nbase_model: org/base\ndate: 2024-05-01\n---\n# x\n",
            "openness.yaml": b"components:\n  weights: true\n",
        },
    )
    resolved = resolve_directory(tmp_path)
    assert resolved.card == {"license": "mit", "datasets": ["org/data"], "base_model": "org/base", "date": "2024-05-01"}
    assert resolved.openness_declaration == {"components": {"weights": True}}


def test_no_card_no_declaration(tmp_path: Path) -> None:
    write(tmp_path, {"README.md": b"# just text\n"})
    resolved = resolve_directory(tmp_path)
    assert resolved.card == {}
    assert resolved.openness_declaration is None


def test_invalid_openness_declaration(tmp_path: Path) -> None:
    write(tmp_path, {"openness.yaml": b"a: [unclosed\n"})
    with pytest.raises(SourceError) as exc:
        resolve_directory(tmp_path)
    assert exc.value.reason == Reason.INVALID_SOURCE


def test_card_front_matter() -> None:
    assert card_metadata("---\nlicense: apache-2.0\n---\nbody") == {"license": "apache-2.0"}
    assert card_metadata("\n---\r\nlicense: x\r\n---\r\n") == {"license": "x"}
    assert card_metadata("no front matter\n---\nlicense: x\n---\n") == {}
    assert card_metadata("---\nlicense: [broken\n---\n") == {}


def test_yaml_aliases_are_refused() -> None:
    bomb = "a: &a [x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\nc: [*b, *b, *b]\n"
    with pytest.raises(SourceError) as exc:
        load_yaml_mapping(bomb.encode(), "openness.yaml")
    assert exc.value.reason == Reason.INVALID_SOURCE


def test_yaml_values_become_json_types() -> None:
    assert load_yaml_mapping(b"1: .nan\nwhen: 2020-01-02\ns: !!set {a: null}\n", "x") == {
        "1": "nan",
        "when": "2020-01-02",
        "s": ["a"],
    }


@pytest.mark.parametrize(
    "path", ["../x", "/etc/passwd", "a\\b", "a//b", "a/./b", "a/", "", "a\x00b", "a\nb", "..", ".", "x/../y"]
)
def test_unsafe_relative_paths(path: str) -> None:
    with pytest.raises(SourceError) as exc:
        check_relative_path(path, "hf://org/m")
    assert exc.value.reason == Reason.UNSAFE_PATH


@pytest.mark.parametrize("path", ["a", "a/b/c.safetensors", ".gitattributes", "dir.with.dots/x..y", "ü/ñ.txt"])
def test_safe_relative_paths(path: str) -> None:
    assert check_relative_path(path, "hf://org/m") == path
