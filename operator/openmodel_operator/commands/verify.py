"""`openmodel verify`: the verify-before-pull pipeline from a laptop or a GitOps pre-merge check.

Exit codes: 0 trusted (Audit violations are reported but admit), 1 rejected (also when pulled bytes do
not match the signed digests), 2 usage or operational error (unknown repo or revision, unreachable endpoint).
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import os
import sys
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from openmodel_operator.api.time import utcnow
from openmodel_operator.controller.settings import DEFAULT_VLLM_IMAGE

EXIT_TRUSTED, EXIT_REJECTED, EXIT_ERROR = 0, 1, 2
TOKEN_ENV = "HF_TOKEN"


class UsageError(Exception):
    """Bad command-line input; the message says what to change."""


def _now() -> datetime.datetime:
    return utcnow()


def _request_from_manifest(path: Path, args: argparse.Namespace) -> Any:
    """A ModelRequest from an OpenModel manifest, honouring its source.digest and trust.signature."""
    from openmodel_operator.api.openmodel import OpenModelSpec
    from openmodel_operator.trust.examination import ModelRequest

    try:
        docs = [d for d in yaml.safe_load_all(path.read_text()) if d]
    except (OSError, yaml.YAMLError) as exc:
        raise UsageError(f"cannot read {path}: {exc}") from None
    models = [d for d in docs if d.get("kind") == "OpenModel"]
    if len(models) != 1:
        raise UsageError(f"{path} must hold exactly one OpenModel document (found {len(models)})")
    try:
        spec = OpenModelSpec.model_validate(models[0].get("spec") or {})
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"])
        raise UsageError(f"{path}: spec.{where}: {err['msg']}") from None
    sig = spec.trust.signature
    bundle = _read_signature(args.signature) if args.signature else None
    if sig.config_map_ref is not None and bundle is None:
        raise UsageError(
            f"{path} takes its signature from ConfigMap {sig.config_map_ref.name!r} (key {sig.config_map_ref.key!r}); "
            "pass that bundle with --signature FILE"
        )
    uri = spec.source.uri
    local: Path | None = None
    if uri.startswith("pvc://"):
        if not args.pvc_root:
            raise UsageError(f"{path} uses {uri}; pass --pvc-root DIR with a copy of the claim's content")
        local = Path(args.pvc_root)
    return ModelRequest(
        uri=uri,
        revision=args.revision or spec.source.revision,
        endpoint=args.endpoint or spec.source.endpoint,
        token=os.environ.get(TOKEN_ENV) or None,
        signature_path=sig.path or "model.sig",
        external_bundle=bundle,
        pinned_digest=spec.source.digest,
        local_path=local,
        serving=spec.serving,  # the serving fields are checked too (a pre-merge check sees ServingNotAllowed)
        runtime_image=args.runtime_image,
    )


def _read_signature(path: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise UsageError(f"--signature {path}: {exc.strerror}") from None


def _request_from_args(args: argparse.Namespace) -> Any:
    from openmodel_operator.trust.examination import ModelRequest

    if not args.source:
        raise UsageError("give a SOURCE (hf://org/name or a directory) or -f openmodel.yaml")
    return ModelRequest(
        uri=args.source,
        revision=args.revision or "main",
        endpoint=args.endpoint,
        token=os.environ.get(TOKEN_ENV) or None,
        signature_path=args.signature_path,
        external_bundle=_read_signature(args.signature) if args.signature else None,
        pinned_digest=args.digest,
    )


def load_policies(paths: list[str]) -> list[Any]:
    from openmodel_operator.trust.policies import BUILTIN_DEFAULT, load_policy_file

    if not paths:
        return [BUILTIN_DEFAULT]
    policies = []
    for path in paths:
        try:
            text = Path(path).read_text()
        except OSError as exc:
            raise UsageError(f"--policy {path}: {exc.strerror}") from None
        policies.extend(load_policy_file(text, path))
    return policies


def _progress_bar(total: int) -> Any:
    from tqdm import tqdm

    bar = tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024, desc="pull", file=sys.stderr)
    seen: dict[str, int] = {}

    def update(path: str, done: int, _size: int) -> None:
        bar.update(done - seen.get(path, 0))
        seen[path] = done

    return bar, update


def _pull(exam: Any, dest: Path) -> tuple[int, str]:
    """Pull the verified set into ``dest`` and make ``dest`` hold exactly it.

    The verified set is what the verdict vouches for (``evidence.manifest.verified_files``): the signed
    resources for the Signed tier, every manifest file for the Pinned tier. A file the signer chose
    not to sign is never pulled, and anything else already in ``dest`` is removed, so a model server
    pointed at ``dest`` can only load verified bytes.
    """
    from openmodel_operator.evidence.errors import PullError
    from openmodel_operator.evidence.manifest import verified_files
    from openmodel_operator.sources.directory import local_root
    from openmodel_operator.sources.pull import pull, remove_unlisted

    target = dest.resolve()
    if target == Path(target.anchor) or target == Path.home().resolve():
        return EXIT_ERROR, f"PULL REFUSED: {dest} is the root or home directory; everything else in it would be removed"
    source = exam.request.local_path or local_root(exam.resolved)
    if source is not None:
        source = Path(source).resolve()
        if target == source or target.is_relative_to(source) or source.is_relative_to(target):
            return EXIT_ERROR, (
                f"PULL REFUSED: {dest} overlaps the model directory {source}; pull into a separate directory "
                "(files outside the verified set would be removed from it)"
            )
    files = verified_files(exam.resolved.files, exam.evidence.signature_path, exam.verdict.signature)
    expected = {f.path: f.sha256 for f in files}
    total = sum(f.size for f in files)
    bar, update = _progress_bar(total)
    try:
        if dest.is_dir():
            remove_unlisted(dest, expected)  # frees the space of a previous version first
        result = pull(exam.resolved, expected, dest, token=exam.request.token, progress=update)
        removed = remove_unlisted(dest, expected)
    except PullError as exc:
        bar.close()
        return EXIT_REJECTED, f"PULL REJECTED: {exc.reason.value}: {exc.path}: {exc.message} (file not kept)"
    except OSError as exc:
        bar.close()
        return EXIT_REJECTED, f"PULL REJECTED: cannot remove {exc.filename} ({exc.strerror or exc}) from {dest}"
    bar.close()
    note = f", {len(removed)} other files removed" if removed else ""
    return (
        EXIT_TRUSTED,
        f"Pulled     {len(result.files)} files into {dest}, every byte matches the verified digests{note}",
    )


def examine_args(args: argparse.Namespace) -> Any:
    """The examination the arguments ask for (an ``Examination``), or the exit code after printing why not.

    Shared by ``verify`` and ``bom``: both decide from the same request, policies and pipeline.
    """
    from openmodel_operator.evidence.errors import TrustError
    from openmodel_operator.sources.examine import examine
    from openmodel_operator.trust.policies import PolicyError

    try:
        request = _request_from_manifest(Path(args.file), args) if args.file else _request_from_args(args)
        policies = load_policies(args.policy)
        if args.trusted_root:  # the root of every loaded policy: a policy file cannot read its ConfigMap here
            root = Path(args.trusted_root).read_bytes()
            policies = [dataclasses.replace(p, trusted_root_json=root) for p in policies]
        return examine(request, policies)
    except (UsageError, PolicyError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except TrustError as exc:
        print(f"error: {exc.reason.value}: {exc.message}", file=sys.stderr)
        return EXIT_ERROR


def run(args: argparse.Namespace) -> int:
    from openmodel_operator.commands.report import render_report
    from openmodel_operator.trust.provenance import provenance_statement

    exam = examine_args(args)
    if isinstance(exam, int):
        return exam
    code = EXIT_TRUSTED if exam.verdict.trusted else EXIT_REJECTED
    pull_line = None
    if args.pull and exam.verdict.trusted:
        code, pull_line = _pull(exam, Path(args.pull))
    if args.json:
        statement = provenance_statement(exam, _now())
        if pull_line is not None:
            statement["predicate"]["pull"] = {"ok": code == EXIT_TRUSTED, "message": pull_line}
        print(json.dumps(statement, indent=2))
    else:
        sys.stdout.write(render_report(exam))
        if pull_line:
            print(pull_line)
        elif args.pull:
            print("Not pulled: the model is not trusted.")
    return code


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "verify",
        help="verify a model's signature, license and openness before pulling it",
        description=(
            "Resolve a model, verify its signature over the file manifest, its license and openness against "
            "ModelTrustPolicies, and print a report (or the provenance JSON). No weights are downloaded unless "
            "--pull is given, and then only after the model is trusted; every byte is checked. "
            f"A Hub token is read from ${TOKEN_ENV}. Exit codes: 0 trusted, 1 rejected, 2 usage or operational error."
        ),
    )
    add_source_arguments(parser)
    parser.add_argument(
        "--pull",
        metavar="DIR",
        help="after a trusted verdict, download the verified files into DIR; anything else in DIR is removed",
    )
    parser.add_argument("--json", action="store_true", help="print the provenance record (in-toto JSON)")
    parser.set_defaults(func=run)


def add_source_arguments(parser: argparse.ArgumentParser) -> None:
    """What to examine and under which policies: the arguments ``verify`` and ``bom`` share."""
    parser.add_argument("source", nargs="?", help="hf://org/name or a model directory")
    parser.add_argument("-f", "--file", help="an OpenModel manifest to check (a GitOps pre-merge check)")
    parser.add_argument("--revision", help="branch, tag or commit (default: main, or the manifest's)")
    parser.add_argument(
        "--policy",
        action="append",
        default=[],
        metavar="FILE",
        help="a ModelTrustPolicy manifest (repeatable; default: the built-in policy)",
    )
    parser.add_argument("--endpoint", help="a Hugging Face Hub mirror URL")
    parser.add_argument(
        "--signature", metavar="FILE", help="a signature bundle kept outside the model (countersignature)"
    )
    parser.add_argument(
        "--signature-path", default="model.sig", help="the bundle's path inside the model (default: model.sig)"
    )
    parser.add_argument("--digest", help="the expected manifest digest (sha256:...), the Pinned tier")
    parser.add_argument(
        "--trusted-root", metavar="FILE", help="a Sigstore trusted_root.json for offline keyless checks"
    )
    parser.add_argument("--pvc-root", metavar="DIR", help="for pvc:// manifests: a directory holding the claim's files")
    parser.add_argument(
        "--runtime-image",
        default=DEFAULT_VLLM_IMAGE,
        help="with -f: the inference image the operator is configured with (what policies allow by default)",
    )
