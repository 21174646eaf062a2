"""The model manifest and its two digests.

The **manifest digest** (``manifest_digest_of``) is the operator's own name for a set of files: it
binds every file's path, size and sha256, so two files swapped by name, a renamed file or a changed
size give another digest. ``spec.source.digest``, ``status.provenance.manifestDigest``, the pinned
manifest ConfigMap, the fetch Job's ``--expect-digest`` and ``openmodel digest`` all carry it. Its
encoding is documented in docs/api.md ("Manifest digest").

The **subject digest** (``subject_digest_of``) is model-signing's in-toto subject digest: sha256
over the concatenated raw file digests in path order, without names. It only serves to check that a
signature bundle is internally consistent; it is never compared with a pin, because it does not
bind which name holds which content.
"""

from __future__ import annotations

import fnmatch
import hashlib
import re
from collections.abc import Iterable, Mapping
from pathlib import PurePosixPath

from openmodel_operator.evidence.records import FileEntry, FileMismatch, FileProblem, SignatureEvidence

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


_HEX64 = re.compile(r"[0-9a-fA-F]{64}")
_MAX_SIZE = 2**64 - 1
_MAX_PATH_BYTES = 2**32 - 1


def subject_digest_of(resources: Mapping[str, str]) -> str:
    """model-signing's in-toto subject digest of ``{path: sha256 hex}``: the digests alone, in path order.

    Used only to check a bundle's own consistency (its subject against its resources); it does not
    bind names, so it is never what a pin or the fetch Job is compared with.
    """
    hasher = hashlib.sha256()
    for path in sorted(resources, key=sort_key):
        hasher.update(bytes.fromhex(resources[path]))
    return digest_ref(hasher.hexdigest())


def _record(entry: FileEntry) -> bytes:
    """One file's bytes in the manifest digest: path length, path, size, digest (see docs/api.md)."""
    if not isinstance(entry.path, str):
        raise ValueError(f"a path is {type(entry.path).__name__}, not a string")
    path = entry.path.encode("utf-8")  # UnicodeEncodeError (a ValueError) for lone surrogates
    if len(path) > _MAX_PATH_BYTES:
        raise ValueError(f"a path of {len(path)} bytes is too long for the manifest digest")
    size: object = entry.size
    if isinstance(size, bool) or not isinstance(size, int) or not 0 <= size <= _MAX_SIZE:
        raise ValueError(f"the size of {entry.path[:200]!r} is {str(size)[:40]}, not an integer in 0..2^64-1")
    if not isinstance(entry.sha256, str) or not _HEX64.fullmatch(entry.sha256):
        raise ValueError(f"the sha256 of {entry.path[:200]!r} is {str(entry.sha256)[:80]!r}, not 64 hex digits")
    return len(path).to_bytes(4, "big") + path + size.to_bytes(8, "big") + bytes.fromhex(entry.sha256)


def manifest_digest_of(files: Iterable[FileEntry]) -> str:
    """The name-, size- and content-bound digest of exactly these files (nothing is left out here).

    sha256 over, for each file in model-signing path order (path components compared, then the
    path string, so the order is total), ``len(path_utf8)`` as 4 bytes big-endian, ``path_utf8``,
    ``size`` as 8 bytes big-endian and the 32 raw sha256 bytes. The length prefix makes the
    encoding unambiguous: two different file lists never produce the same byte stream.
    Raises ValueError for a size or digest that cannot be encoded.
    """
    keyed: list[tuple[tuple[tuple[str, ...], str], bytes]] = []
    for entry in files:
        record = _record(entry)  # checks the entry before anything else reads it
        keyed.append(((sort_key(entry.path), entry.path), record))
    hasher = hashlib.sha256()
    for _, record in sorted(keyed):
        hasher.update(record)
    return digest_ref(hasher.hexdigest())


def manifest_digest(files: Iterable[FileEntry], signature_path: str | None = DEFAULT_SIGNATURE_PATH) -> str:
    """The manifest digest of a model's files (signature file and git metadata excluded)."""
    return manifest_digest_of(manifest_files(files, signature_path))


def subject_digest(files: Iterable[FileEntry], signature_path: str | None = DEFAULT_SIGNATURE_PATH) -> str:
    """The model-signing subject digest a bundle over these files states (signature and git metadata excluded)."""
    return subject_digest_of({f.path: f.sha256 for f in manifest_files(files, signature_path)})


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


def verified_files(
    files: Iterable[FileEntry], signature_path: str | None, signature: SignatureEvidence | None
) -> list[FileEntry]:
    """The files a verdict vouches for, which are the only ones that may reach a volume.

    With a signature that covers the content (tier Signed), that is the signed resources: a file the
    signer left out through its ``ignore_paths`` (``notes.md``, ``extra/hook.py``) is not pulled,
    whatever its name, since no name list can say what a model server or its plugins will load.
    Without one (tier Pinned), the pin covers every manifest file. ``signature`` is the verdict's
    (``Verdict.signature``, set only when it covers the content).
    """
    manifest = manifest_files(files, signature_path)
    if signature is None:
        return manifest
    signed = {path: digest.lower() for path, digest in signature.resources.items()}
    return [f for f in manifest if signed.get(f.path) == f.sha256.lower()]
