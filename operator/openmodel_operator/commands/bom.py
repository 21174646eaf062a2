"""`openmodel bom`: the AI-BOM of a model (SPDX 3.0.1 or CycloneDX 1.6), for auditors and legal review.

The model is examined and decided exactly as `openmodel verify` does (same arguments, same policies, same
offline and online paths); the BOM is then built from that decision (``planning.trust_result.from_examination``:
the provenance record and the pinned manifest the operator would write, and the card the decision read), so it
equals the document the operator keeps for the same content and states nothing that was not verified.

Only an admitted model has a BOM: a rejected one exits 1 and prints the verdict on stderr, no document (a BOM
lists what is trusted to run; `openmodel verify --json` records why something is not). Exit codes as verify's:
0 written, 1 rejected, 2 usage or operational error.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from openmodel_operator.commands.verify import EXIT_ERROR, EXIT_REJECTED, EXIT_TRUSTED, add_source_arguments

FORMATS = ("spdx3", "cyclonedx")


def run(args: argparse.Namespace) -> int:
    from openmodel_operator.api.time import utcnow
    from openmodel_operator.commands.report import render_report
    from openmodel_operator.commands.verify import examine_args
    from openmodel_operator.evidence.bom import BomInput, cyclonedx_document, render, spdx3_document
    from openmodel_operator.planning.trust_result import from_examination

    exam = examine_args(args)
    if isinstance(exam, int):
        return exam
    if not exam.verdict.trusted:
        sys.stderr.write(render_report(exam))
        print("No BOM: the model is not trusted (a BOM lists what is admitted to run).", file=sys.stderr)
        return EXIT_REJECTED
    result = from_examination(exam, utcnow())
    assert result.provenance is not None and result.pinned is not None and result.card is not None
    bom = BomInput(result.provenance, result.pinned, result.card)
    document = spdx3_document(bom) if args.format == "spdx3" else cyclonedx_document(bom)
    text = render(document)
    if args.output:
        try:
            Path(args.output).write_text(text)
        except OSError as exc:
            print(f"error: --output {args.output}: {exc.strerror or exc}", file=sys.stderr)
            return EXIT_ERROR
        print(f"Wrote the {args.format} BOM of {exam.resolved.uri} ({exam.verdict.manifest_digest}) to {args.output}")
    else:
        sys.stdout.write(text)
    return EXIT_TRUSTED


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "bom",
        help="print the AI-BOM (SPDX 3 or CycloneDX) of a verified model",
        description=(
            "Verify a model as `openmodel verify` does, then print its AI-BOM built from that decision: identity "
            "(source, repository, endpoint, commit, manifest digest), every verified file with its sha256, the "
            "license, signer and trust tier, openness (MOF class, OSAID, what is missing), the datasets, base model, "
            "intended use, limitations and evaluation results of the verified model card, and every policy with "
            "its verdict. No weights are downloaded. Exit codes: 0 written, 1 rejected (no BOM), 2 usage or "
            "operational error."
        ),
    )
    add_source_arguments(parser)
    parser.add_argument("--format", choices=FORMATS, default="spdx3", help="spdx3 (default) or cyclonedx")
    parser.add_argument("-o", "--output", metavar="FILE", help="write the BOM to FILE instead of stdout")
    parser.set_defaults(func=run)
