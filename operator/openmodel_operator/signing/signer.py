"""Sign a model directory with model-signing (key or certificate mode).

Used by the example model builder and the countersign workflow: the bundles written here are the
ones ``signing.signature.verify_bundle`` checks, and model-signing's own verifier accepts them too.
"""

from __future__ import annotations

import contextlib
import os
import pathlib
import tempfile
from collections.abc import Iterable, Sequence
from typing import Any

import model_signing

from openmodel_operator.evidence.records import FileEntry

StrPath = str | os.PathLike[str]


def _ignored(model_dir: pathlib.Path, output_path: pathlib.Path, ignore_paths: Iterable[str]) -> list[str]:
    """The signer's exclusions: the caller's, the signature file itself and all git metadata.

    model-signing only skips ``.git/``, ``.gitattributes``, ``.github/`` and ``.gitignore``; the
    manifest comparison skips every ``.git*`` path (``evidence.manifest.is_git_metadata``), so any other
    ``.git*`` path (``.gitmodules``...) is excluded here as well, keeping both sides equal.
    """
    ignored = {p.strip("/") for p in ignore_paths if p.strip("/")}
    with contextlib.suppress(ValueError):  # ValueError: the signature is written outside the model
        ignored.add(output_path.resolve().relative_to(model_dir.resolve()).as_posix())
    for path in model_dir.rglob(".git*"):
        ignored.add(path.relative_to(model_dir).as_posix())
    return sorted(ignored)


def _hashing_config(model_dir: pathlib.Path, output_path: pathlib.Path, ignore_paths: Iterable[str]) -> Any:
    config: Any = model_signing.hashing.Config()  # type: ignore[no-untyped-call]
    return config.set_ignored_paths(paths=_ignored(model_dir, output_path, ignore_paths), ignore_git_paths=True)


def sign_directory(
    model_dir: StrPath,
    private_key_pem_path: StrPath,
    output_path: StrPath,
    ignore_paths: Sequence[str] = (),
    *,
    password: str | None = None,
) -> bytes:
    """Sign every file of ``model_dir`` with an elliptic-curve private key; return the bundle bytes.

    ``ignore_paths`` (relative to ``model_dir``) are recorded in the bundle's
    ``predicate.serialization.ignore_paths``; loadable files are never excusable by them at
    verification time, so only ignore files a loader cannot read.
    """
    model = pathlib.Path(model_dir)
    output = pathlib.Path(output_path)
    config: Any = model_signing.signing.Config()  # type: ignore[no-untyped-call]
    config = config.use_elliptic_key_signer(private_key=pathlib.Path(private_key_pem_path), password=password)
    config.set_hashing_config(_hashing_config(model, output, ignore_paths)).sign(model, output)
    return output.read_bytes()


def sign_directory_with_certificate(
    model_dir: StrPath,
    private_key_pem_path: StrPath,
    cert_chain_paths: Sequence[StrPath],
    output_path: StrPath,
    ignore_paths: Sequence[str] = (),
) -> bytes:
    """Sign ``model_dir`` with a key and its certificate chain; return the bundle bytes.

    ``cert_chain_paths[0]`` is the signing (leaf) certificate, the rest are intermediates to embed
    in the bundle (the root belongs in the verifier's trusted CA bundle, not here).
    """
    if not cert_chain_paths:
        raise ValueError("cert_chain_paths needs at least the signing certificate")
    model = pathlib.Path(model_dir)
    output = pathlib.Path(output_path)
    config: Any = model_signing.signing.Config()  # type: ignore[no-untyped-call]
    config = config.use_certificate_signer(
        private_key=pathlib.Path(private_key_pem_path),
        signing_certificate=pathlib.Path(cert_chain_paths[0]),
        certificate_chain=[pathlib.Path(p) for p in cert_chain_paths[1:]],
    )
    config.set_hashing_config(_hashing_config(model, output, ignore_paths)).sign(model, output)
    return output.read_bytes()


def sign_listing(
    files: Sequence[FileEntry],
    private_key_pem_path: StrPath,
    model_name: str,
    *,
    password: str | None = None,
) -> bytes:
    """Sign a model from its file digests alone (no bytes downloaded); return the bundle bytes.

    Used to countersign a third-party revision: the Hub lists each file's sha256 at a pinned commit, the
    reviewer signs exactly that list, and the bundle is what model-signing itself would have written for
    a directory holding those files (same manifest, same subject digest, same format).
    """
    from model_signing import manifest as ms_manifest
    from model_signing._hashing import hashing as ms_hashing
    from model_signing._signing import signing as ms_signing

    items = [
        ms_manifest.FileManifestItem(
            path=pathlib.PurePosixPath(f.path), digest=ms_hashing.Digest("sha256", bytes.fromhex(f.sha256))
        )
        for f in files
    ]
    serialization = ms_manifest._FileSerialization("sha256", False, frozenset())
    model = ms_manifest.Manifest(model_name, items, serialization)
    config: Any = model_signing.signing.Config()  # type: ignore[no-untyped-call]
    config = config.use_elliptic_key_signer(private_key=pathlib.Path(private_key_pem_path), password=password)
    signature = config._signer.sign(ms_signing.Payload(model))
    with tempfile.TemporaryDirectory() as work:
        out = pathlib.Path(work) / "model.sig"
        signature.write(out)
        return out.read_bytes()
