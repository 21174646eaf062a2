"""`openmodel render`: the objects the operator would create for a manifest, before they exist.

It runs the same trust pipeline and the same pure planner as the operator, so a GitOps reviewer sees
the exact Deployment (image, GPU limits, pinned revision annotations) in a pull request.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path
from typing import Any

import yaml


def run(args: argparse.Namespace) -> int:
    from openmodel_operator.api.openmodel import OpenModelSpec, OpenModelStatus
    from openmodel_operator.api.time import utcnow
    from openmodel_operator.commands.verify import EXIT_ERROR, EXIT_REJECTED, UsageError, load_policies
    from openmodel_operator.controller.settings import OperatorSettings
    from openmodel_operator.evidence.errors import TrustError
    from openmodel_operator.planning import children
    from openmodel_operator.planning.planner import Observed, plan
    from openmodel_operator.planning.trust_result import from_examination
    from openmodel_operator.sources.examine import examine
    from openmodel_operator.trust.examination import ModelRequest
    from openmodel_operator.trust.policies import PolicyError

    try:
        docs = [d for d in yaml.safe_load_all(Path(args.file).read_text()) if d]
        (model,) = [d for d in docs if d.get("kind") == "OpenModel"]
        spec = OpenModelSpec.model_validate(model.get("spec") or {})
        policies = load_policies(args.policy)
    except (OSError, ValueError, yaml.YAMLError, UsageError, PolicyError) as exc:
        print(f"error: {args.file}: {exc}", file=sys.stderr)
        return EXIT_ERROR
    meta = model.get("metadata") or {}
    ref = children.ModelRef(
        name=meta.get("name", "model"), namespace=meta.get("namespace", "default"), uid="<uid>", generation=1
    )
    sig = spec.trust.signature
    request = ModelRequest(
        uri=args.source_dir or spec.source.uri,
        revision=spec.source.revision,
        endpoint=spec.source.endpoint,
        signature_path=sig.path or "model.sig",
        external_bundle=Path(args.signature).read_bytes() if args.signature else None,
        pinned_digest=spec.source.digest,
    )
    try:
        exam = examine(request, policies)
    except TrustError as exc:
        print(f"error: {exc.reason.value}: {exc.message}", file=sys.stderr)
        return EXIT_ERROR
    trust = from_examination(exam, utcnow())
    if args.source_dir and trust.pinned is not None:
        # the local copy stood in for the source: the Job still pulls from the spec's source
        pinned = dataclasses.replace(trust.pinned, source=spec.source.uri, endpoint=spec.source.endpoint)
        trust = dataclasses.replace(trust, pinned=pinned)
    if not trust.trusted or trust.pinned is None:
        reasons = ", ".join(r.value for r in exam.verdict.reasons)
        print(f"# the operator would create nothing: the model is rejected ({reasons})", file=sys.stderr)
        for violation in exam.verdict.enforced_violations:
            print(f"#  - {violation.reason.value}: {violation.message}", file=sys.stderr)
        return EXIT_REJECTED
    op = OperatorSettings.from_env()
    settings = children.ChildSettings(
        operator_image=args.operator_image or op.operator_image, vllm_image=args.vllm_image or op.vllm_image
    )
    pulling = plan(ref, spec, OpenModelStatus(), trust, Observed(), settings, utcnow())
    # the plan once its pull Job (the operator's own: its uid known) has completed
    pull = next((o for o in pulling.apply if o["kind"] == "Job"), None)
    jobs: dict[str, Any] = {}
    if pull is not None:
        done = {"type": "Complete", "status": "True"}
        jobs[pull["metadata"]["name"]] = {
            "metadata": {**pull["metadata"], "uid": RENDERED_UID},
            "status": {"conditions": [done]},
        }
    pulled = Observed(jobs=jobs, made_jobs=frozenset({RENDERED_UID}))
    serving = plan(ref, spec, OpenModelStatus(), trust, pulled, settings, utcnow())
    objects: dict[tuple[str, str], dict[str, Any]] = {}
    for obj in [*pulling.apply, *serving.apply]:
        objects.setdefault((obj["kind"], obj["metadata"]["name"]), obj)
    sys.stdout.write(yaml.safe_dump_all(list(objects.values()), sort_keys=False))
    return 0


RENDERED_UID = "rendered"  # the uid of the pull Job in the rendered plan: none exists


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "render",
        help="print the objects the operator would create for an OpenModel manifest",
        description=(
            "Verify an OpenModel manifest like the operator does and print, as YAML, the ConfigMaps (manifest, "
            "AI-BOMs), PVC, fetch Job, Deployment and Service it would create. Nothing is applied. Exit 1 (and "
            "nothing printed) when the model would be rejected."
        ),
    )
    parser.add_argument("-f", "--file", required=True, help="the OpenModel manifest")
    parser.add_argument("--policy", action="append", default=[], metavar="FILE", help="ModelTrustPolicy manifest(s)")
    parser.add_argument("--signature", metavar="FILE", help="the countersignature bundle a configMapRef points at")
    parser.add_argument("--source-dir", metavar="DIR", help="examine this local copy instead of resolving the source")
    parser.add_argument("--operator-image", help="image of the fetch Job")
    parser.add_argument("--vllm-image", help="default vLLM image")
    parser.set_defaults(func=run)
