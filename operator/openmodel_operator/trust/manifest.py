"""The model manifest and its one digest.

The manifest digest is computed exactly as model-signing computes the in-toto subject digest for
its file serialization: sha256 over the concatenated raw file digests, in the order of the files'
POSIX paths compared component by component. A signed bundle, a pinned ``source.digest``,
``status.provenance.manifestDigest`` and ``openmodel digest`` therefore all name the same value.
"""

from __future__ import annotations

import fnmatch
import hashlib
from collections.abc import Iterable, Mapping
from pathlib import PurePosixPath

from openmodel_operator.trust.evidence import FileEntry, FileMismatch, FileProblem

DEFAULT_SIGNATURE_PATH = "model.sig"

# Files a model loader may read: never excludable by a signer's ignore_paths.
LOADABLE_PATTERNS: tuple[str, ...] = (
    "*.safetensors",
    "*.bin",
    "*.gguf",
    "*.ggml",
    "*.pt",
    "*.pth",
    "*.ckpt",
    "*.h5",
    "*.keras",
    "*.onnx",
    "*.msgpack",
    "*.npz",
    "*.npy",
    "*.pkl",
    "*.pickle",
    "*.joblib",
    "*.tflite",
    "*.mlmodel",
    "*.model",
    "*.tiktoken",
    "*.py",
    "*.json",
    "*.jinja",
    "*.txt",
    "*.yaml",
    "*.yml",
)


def digest_ref(hex_digest: str) -> str:
    """Format a sha256 hex digest the way specs and status show it."""
    return f"sha256:{hex_digest}"


def sort_key(path: str) -> tuple[str, ...]:
    """Order paths as model-signing does (PurePosixPath ordering, i.e. by path components)."""
    return PurePosixPath(path).parts


def is_git_metadata(path: str) -> bool:
    """True for ``.git*`` files and anything under a ``.git*`` directory at any depth."""
    return any(part.startswith(".git") for part in PurePosixPath(path).parts)


def is_loadable(path: str) -> bool:
    """True when a model loader could pick this file up, so no signer may leave it unsigned."""
    name = PurePosixPath(path).name.lower()
    return any(fnmatch.fnmatchcase(name, pattern) for pattern in LOADABLE_PATTERNS)


def manifest_files(files: Iterable[FileEntry], signature_path: str | None) -> list[FileEntry]:
    """The files a manifest covers: everything except the signature file itself and git metadata."""
    selected = [f for f in files if f.path != signature_path and not is_git_metadata(f.path)]
    return sorted(selected, key=lambda f: sort_key(f.path))


def manifest_digest_of(resources: Mapping[str, str]) -> str:
    """Digest of ``{path: sha256 hex}`` pairs, as model-signing's in-toto subject digest."""
    hasher = hashlib.sha256()
    for path in sorted(resources, key=sort_key):
        hasher.update(bytes.fromhex(resources[path]))
    return digest_ref(hasher.hexdigest())


def manifest_digest(files: Iterable[FileEntry], signature_path: str | None = DEFAULT_SIGNATURE_PATH) -> str:
    """The manifest digest of a model's files (signature file and git metadata excluded)."""
    return manifest_digest_of({f.path: f.sha256 for f in manifest_files(files, signature_path)})


def _ignored_by_signer(path: str, ignore_paths: Iterable[str]) -> bool:
    for ignored in ignore_paths:
        ignored = ignored.strip("/")
        if ignored and (path == ignored or path.startswith(ignored + "/") or fnmatch.fnmatchcase(path, ignored)):
            return True
    return False


def compare_manifest(
    signed: Mapping[str, str],
    files: Iterable[FileEntry],
    signature_path: str | None,
    signer_ignore_paths: Iterable[str] = (),
) -> list[FileMismatch]:
    """Every difference between what was signed and what the pinned revision holds.

    A signer's ignore paths are honoured only for files no loader reads: an unsigned
    ``*.safetensors`` is reported whatever the signer chose to ignore.
    """
    ignore = tuple(signer_ignore_paths)
    # the signature file never covers itself, whichever side lists it
    signed = {path: digest for path, digest in signed.items() if path != signature_path}
    actual = {f.path: f.sha256 for f in manifest_files(files, signature_path)}
    problems: list[FileMismatch] = []
    for path in sorted(set(signed) | set(actual), key=sort_key):
        want, have = signed.get(path), actual.get(path)
        if want is not None and have is None:
            problems.append(FileMismatch(path, FileProblem.MISSING, expected=want))
        elif want is None and have is not None:
            if _ignored_by_signer(path, ignore) and not is_loadable(path):
                continue
            problems.append(FileMismatch(path, FileProblem.UNSIGNED, actual=have))
        elif want is not None and have is not None and want.lower() != have.lower():
            problems.append(FileMismatch(path, FileProblem.DIGEST_MISMATCH, expected=want, actual=have))
    return problems
