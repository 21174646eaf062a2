"""The ``openmodel`` command: one entry point for the operator, its Jobs and the people who review models."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from openmodel_operator import __version__

Command = Callable[[argparse.Namespace], int]


def _cmd_crds(args: argparse.Namespace) -> int:
    from openmodel_operator.crd.definitions import all_crds, render_yaml, write_crds

    if args.output_dir:
        for path in write_crds(Path(args.output_dir)):
            print(f"wrote {path}", file=sys.stderr)
        return 0
    sys.stdout.write("---\n".join(render_yaml(crd) for crd in all_crds()))
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser; each subcommand module adds its own arguments."""
    parser = argparse.ArgumentParser(
        prog="openmodel",
        description=(
            "OpenModel Operator: verify open AI models (signature, license, openness) before they are pulled, "
            "and run them on Kubernetes with their provenance recorded."
        ),
    )
    parser.add_argument("--version", action="version", version=f"openmodel {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    crds = sub.add_parser(
        "crds",
        help="print the OpenModel and ModelTrustPolicy CustomResourceDefinitions",
        description=(
            "Print the CustomResourceDefinitions this operator serves, generated from its API models. "
            "Install them with: openmodel crds | kubectl apply --server-side -f -"
        ),
    )
    crds.add_argument("--output-dir", metavar="DIR", help="write one file per CRD into DIR instead of printing them")
    crds.set_defaults(func=_cmd_crds)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the process exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    func: Command | None = getattr(args, "func", None)
    if func is None:
        parser.print_help()
        return 2
    try:
        return func(args)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
