"""The ``openmodel`` command: one entry point for the operator, its Jobs and the people who review models."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from openmodel_operator import __version__
from openmodel_operator.commands import (
    attest,
    bom,
    countersign,
    crds,
    digest,
    fetch,
    prune,
    render,
    report_claim,
    run,
    verify,
)

Command = Callable[[argparse.Namespace], int]


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

    for module in (crds, verify, bom, digest, countersign, attest, render, fetch, prune, report_claim, run):
        module.register(sub)
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
