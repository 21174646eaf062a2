"""`openmodel digest`: the manifest digest a reviewer pins in spec.source.digest."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from openmodel_operator.evidence.errors import TrustError
from openmodel_operator.evidence.manifest import manifest_digest
from openmodel_operator.sources.directory import resolve_directory


def run(args: argparse.Namespace) -> int:
    directory = Path(args.directory)
    if not directory.is_dir():
        print(f"error: {directory} is not a directory; give the model's directory", file=sys.stderr)
        return 2
    try:
        resolved = resolve_directory(directory)
    except TrustError as exc:
        print(f"error: {exc.reason.value}: {exc.message}", file=sys.stderr)
        return 2
    print(manifest_digest(resolved.files, args.signature_path))
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "digest",
        help="print the manifest digest of a model directory (what spec.source.digest pins)",
        description=(
            "Hash every file of a model directory and print its manifest digest: the value model-signing signs, "
            "status.provenance.manifestDigest shows, and spec.source.digest pins after a review. The signature file "
            "and git metadata are not part of the manifest."
        ),
    )
    parser.add_argument("directory", help="the model directory")
    parser.add_argument(
        "--signature-path", default="model.sig", help="the signature file to leave out (default: model.sig)"
    )
    parser.set_defaults(func=run)
