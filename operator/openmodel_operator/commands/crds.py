"""`openmodel crds`: print or write the CRDs generated from the API models."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from openmodel_operator.crd.definitions import all_crds, render_yaml, write_crds


def run(args: argparse.Namespace) -> int:
    if args.output_dir:
        for path in write_crds(Path(args.output_dir)):
            print(f"wrote {path}", file=sys.stderr)
        return 0
    sys.stdout.write("---\n".join(render_yaml(crd) for crd in all_crds()))
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "crds",
        help="print the OpenModel and ModelTrustPolicy CustomResourceDefinitions",
        description=(
            "Print the CustomResourceDefinitions this operator serves, generated from its API models. "
            "Install them with: openmodel crds | kubectl apply --server-side -f -"
        ),
    )
    parser.add_argument("--output-dir", metavar="DIR", help="write one file per CRD into DIR instead of printing them")
    parser.set_defaults(func=run)
