"""`openmodel countersign`: an organisation signs a third-party revision it reviewed, without downloading it.

Most public models are unsigned. After a review, this pins the revision to its commit, signs the Hub's
file digests with the organisation's key (a standard model-signing bundle) and prints the ConfigMap that
`spec.trust.signature.configMapRef` points at — the same Signed tier as a publisher's own signature.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from pathlib import Path

import yaml

EXIT_OK, EXIT_ERROR = 0, 2
COMMIT = re.compile(r"^[0-9a-f]{40}$")


def run(args: argparse.Namespace) -> int:
    from openmodel_operator.evidence.errors import TrustError
    from openmodel_operator.evidence.manifest import manifest_digest, manifest_files
    from openmodel_operator.signing.signer import sign_listing
    from openmodel_operator.sources.examine import resolve
    from openmodel_operator.trust.examination import ModelRequest

    is_hub = args.source.startswith("hf://")
    if is_hub and (args.revision is None or not COMMIT.match(args.revision)):
        # a branch or tag moves: signing "main" would vouch for whatever is pushed to it next
        given = "no --revision" if args.revision is None else f"--revision {args.revision[:80]!r}"
        print(
            f"error: {given}: countersign signs the commit you reviewed, so --revision must be its full 40-character "
            "lowercase hex id, not a branch or tag name; find it with `openmodel verify SOURCE --revision BRANCH` "
            "(Revision line) or on the Hub's commit history",
            file=sys.stderr,
        )
        return EXIT_ERROR
    key = Path(args.key)
    if not key.is_file():
        print(f"error: --key {key}: no such file; give the organisation's EC private key (PEM)", file=sys.stderr)
        return EXIT_ERROR
    request = ModelRequest(
        uri=args.source,
        revision=args.revision or "main",
        endpoint=args.endpoint,
        token=os.environ.get("HF_TOKEN") or None,
        signature_path=args.signature_path,
    )
    try:
        resolved = resolve(request)
    except TrustError as exc:
        print(f"error: {exc.reason.value}: {exc.message}", file=sys.stderr)
        return EXIT_ERROR
    if is_hub and resolved.revision != args.revision:
        print(
            f"error: the endpoint resolved --revision {args.revision} to {str(resolved.revision)[:80]!r}, another "
            "commit; nothing was signed. Check --endpoint",
            file=sys.stderr,
        )
        return EXIT_ERROR
    files = manifest_files(resolved.files, args.signature_path)
    name = args.source.rstrip("/").rsplit("/", 1)[-1]
    try:
        bundle = sign_listing(files, key, name, password=os.environ.get("OPENMODEL_KEY_PASSWORD") or None)
    except (ValueError, TypeError, OSError) as exc:
        print(f"error: --key {key}: cannot sign with it ({exc}); it must be an EC private key in PEM", file=sys.stderr)
        return EXIT_ERROR
    if args.bundle_out:
        Path(args.bundle_out).write_bytes(bundle)
    digest = manifest_digest(resolved.files, args.signature_path)
    configmap = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": args.name,
            **({"namespace": args.namespace} if args.namespace else {}),
            "labels": {"app.kubernetes.io/part-of": "openmodel", "openmodel.io/countersignature": "true"},
            "annotations": {
                "openmodel.io/source": resolved.uri,
                "openmodel.io/revision": resolved.revision or "",
                "openmodel.io/manifest-digest": digest,
            },
        },
        "data": {"model.sig": bundle.decode()},
    }
    pin = f"revision: {resolved.revision}" if resolved.revision else "the reviewed content"
    sys.stdout.write(
        f"# countersignature over {len(files)} files of {resolved.uri} ({pin}), manifest {digest}\n"
        f"# reference it from the OpenModel: spec.trust.signature.configMapRef: {{name: {args.name}, "
        "key: model.sig}\n"
        "# and pin spec.source.revision to that commit: the signature covers it and nothing else\n"
    )
    sys.stdout.write(yaml.safe_dump(configmap, sort_keys=False))
    print(f"signed {resolved.uri} at {resolved.revision or 'local'}: {digest}", file=sys.stderr)
    return EXIT_OK


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "countersign",
        help="sign a reviewed third-party revision with your organisation's key (no weights downloaded)",
        description=(
            "Pin SOURCE to a commit, sign its file digests (as listed by the Hub, or hashed for a directory) with an "
            "EC private key, and print a ConfigMap holding the model-signing bundle, for spec.trust.signature."
            "configMapRef. A policy that trusts the matching public key then admits the model as Signed. The key's "
            "password, if any, is read from $OPENMODEL_KEY_PASSWORD; a Hub token from $HF_TOKEN."
        ),
    )
    parser.add_argument("source", help="hf://org/name or a model directory")
    parser.add_argument("--key", required=True, help="the organisation's EC private key (PEM)")
    parser.add_argument(
        "--revision",
        help="the 40-hex commit that was reviewed (required for hf:// sources: a branch or tag name is refused)",
    )
    parser.add_argument("--endpoint", help="a Hugging Face Hub mirror URL")
    parser.add_argument("--name", default="countersignature", help="name of the ConfigMap (default: countersignature)")
    parser.add_argument("--namespace", "-n", help="namespace of the ConfigMap (the OpenModel's)")
    parser.add_argument(
        "--signature-path", default="model.sig", help="a publisher's bundle to leave out of the manifest"
    )
    parser.add_argument("--bundle-out", metavar="FILE", help="also write the raw bundle to FILE")
    parser.set_defaults(func=run)
