"""`openmodel attest verify`: check the operator's signed decisions offline, and show them to a person.

An auditor holds the operator's public key (exported once by the admin, docs/provenance.md) and the history
ConfigMaps (``kubectl get configmap -l app.kubernetes.io/component=attestations -o yaml``); nothing else is
needed: no cluster access at verification time, no network, no trust in whoever stored the files.
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

EXIT_OK, EXIT_INVALID, EXIT_USAGE = 0, 1, 2


Where = tuple[str | None, str | None, str]  # a history entry's ConfigMap namespace, ConfigMap name and key


def _documents(raw: bytes, origin: str) -> Iterator[tuple[str, bytes, Where | None]]:
    """(name, bundle bytes, where in a history) of every attestation in a file: one bundle, a ConfigMap, or a
    kubectl List of them."""
    try:
        single = json.loads(raw)
    except (UnicodeDecodeError, ValueError, RecursionError):
        single = None
    if isinstance(single, dict) and "dsseEnvelope" in single:
        yield origin, raw, None  # one bundle: verified as stored
        return
    try:
        docs = [d for d in yaml.safe_load_all(raw) if d is not None]
    except (yaml.YAMLError, RecursionError):
        raise ValueError(f"{origin}: neither a bundle nor ConfigMap YAML/JSON") from None
    items: list[Any] = []
    for doc in docs:
        items.extend(doc.get("items") or [] if isinstance(doc, dict) and doc.get("kind") == "List" else [doc])
    for item in items:
        if isinstance(item, dict) and "dsseEnvelope" in item:
            yield origin, json.dumps(item).encode(), None
            continue
        if not isinstance(item, dict) or item.get("kind") != "ConfigMap":
            kind = item.get("kind") if isinstance(item, dict) else type(item).__name__
            raise ValueError(f"{origin}: holds a {str(kind)[:40]}, not an attestation bundle or a history ConfigMap")
        meta = item.get("metadata") or {}
        where = f"{meta.get('namespace') or '-'}/{meta.get('name') or '-'}"
        namespace, name = (str(meta[k]) if meta.get(k) else None for k in ("namespace", "name"))
        for key, value in sorted((item.get("data") or {}).items()):
            if key.endswith(".json") and isinstance(value, str):
                yield f"{where}:{key}", value.encode(), (namespace, name, key)


def _misplaced(where: Where, statement: dict[str, Any]) -> str | None:
    """Why a verified entry of a history ConfigMap is not where the operator put it, else None.

    The signature covers the Statement, not the ConfigMap key it is stored under, and the ConfigMap is in the
    tenant's namespace: an auditor reads the keys in decision order ("a later line stops it"), so a genuine
    admit moved under a later key, or copied from another model's history, must not read as a new decision.
    """
    from openmodel_operator.evidence.attestation import EXTENSION
    from openmodel_operator.planning import attestation_history as history
    from openmodel_operator.planning.children import ModelRef

    namespace, name, key = where
    model = (statement["predicate"].get(EXTENSION) or {}).get("model")
    if (
        not isinstance(model, dict)
        or not isinstance(model.get("namespace"), str)
        or not isinstance(model.get("name"), str)
    ):
        return "it names no model: not an entry of an operator's history"
    own = history.configmap_name(ModelRef(name=model["name"], namespace=model["namespace"], uid="", generation=0))
    if (name is not None and name != own) or (namespace is not None and namespace != model["namespace"]):
        return f"it is a decision about another model (its history is {model['namespace']}/{own}): copied here"
    if not history.names_statement(key, statement, model["namespace"], model["name"]):
        return "its key does not name the signed decision (time, verdict, digest): moved or copied within the history"
    return None


def _since(value: str | None) -> datetime.datetime | None:
    if value is None:
        return None
    try:
        moment = datetime.datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(
            f"--since {value[:40]!r} is not a date or time (e.g. 2026-11-01 or 2026-11-01T00:00:00Z)"
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=datetime.UTC)


def _brief(statement: dict[str, Any]) -> str:
    from openmodel_operator.evidence.attestation import EXTENSION, describe, failed_reasons

    predicate = statement["predicate"]
    ext = predicate.get(EXTENSION) or {}
    model = ext.get("model") or {}
    policies = (predicate.get("policy") or {}).get("annotations", {}).get("policies") or []
    names = ",".join(f"{p.get('name')}@{p.get('generation')}" for p in policies if isinstance(p, dict))
    lines = describe(statement)  # the same escaping as the full view
    subject = lines[0].removeprefix("Subject:").strip()
    failed = failed_reasons(statement)
    return (
        f"{predicate.get('timeVerified')} {predicate.get('verificationResult')} "
        f"{model.get('namespace')}/{model.get('name')} {subject} tier={ext.get('trustTier') or '-'} policies={names}"
        + (f" reasons={','.join(failed)}" if failed else "")
    )


def verify(args: argparse.Namespace) -> int:
    from openmodel_operator.evidence.attestation import EXTENSION, AttestationError, describe
    from openmodel_operator.signing.attestation import load_public_key, verify_attestation

    key_path = Path(args.public_key)
    try:
        public_key = load_public_key(key_path.read_bytes())
        since = _since(args.since)
    except OSError as exc:
        print(
            f"error: --public-key {key_path}: cannot read it ({exc.strerror}); give the operator's PEM public key",
            file=sys.stderr,
        )
        return EXIT_USAGE
    except (AttestationError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    found = invalid = shown = 0
    for path in args.files:
        try:
            raw = sys.stdin.buffer.read() if path == "-" else Path(path).read_bytes()
            documents = list(_documents(raw, "stdin" if path == "-" else path))
        except OSError as exc:
            print(f"error: {path}: cannot read it ({exc.strerror})", file=sys.stderr)
            return EXIT_USAGE
        except ValueError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return EXIT_USAGE
        for name, bundle, where in documents:
            found += 1
            try:
                verified = verify_attestation(bundle, public_key)
            except AttestationError as exc:
                invalid += 1
                print(f"INVALID {name}: {exc}")
                continue
            statement = verified.statement
            misplaced = _misplaced(where, statement) if where is not None else None
            if misplaced is not None:
                invalid += 1
                print(f"INVALID {name}: signed by the operator key, but {misplaced}")
                continue
            moment = str(statement["predicate"].get("timeVerified") or "")
            if since is not None:
                try:
                    if datetime.datetime.fromisoformat(moment) < since:
                        continue
                except ValueError:
                    pass  # shown: an unreadable time is for the human to judge
            shown += 1
            if args.brief:
                print(f"OK {_brief(statement)}")
                continue
            print(f"OK {name}: signed by the operator key {verified.key_fingerprint}")
            for line in describe(statement):
                print(f"  {line}")
            model = (statement["predicate"].get(EXTENSION) or {}).get("model") or {}
            if not model:
                print("  (no openmodel.io extension: not written by this operator)")
            print()
    if found == 0:
        print("error: no attestation found in the given files", file=sys.stderr)
        return EXIT_USAGE
    print(f"{found - invalid} of {found} attestation(s) verified, {shown} shown", file=sys.stderr)
    return EXIT_INVALID if invalid else EXIT_OK


def policy_digest(args: argparse.Namespace) -> int:
    from openmodel_operator.trust.policies import PolicyError, load_policy_file

    try:
        text = sys.stdin.read() if args.file == "-" else Path(args.file).read_text()
        policies = load_policy_file(text, args.file)
    except OSError as exc:
        print(f"error: {args.file}: cannot read it ({exc.strerror})", file=sys.stderr)
        return EXIT_USAGE
    except (PolicyError, UnicodeDecodeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    for policy in policies:
        print(
            f"{policy.name} generation {policy.generation if policy.generation is not None else '-'} "
            f"{policy.spec_digest}"
        )
    return EXIT_OK


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "attest",
        help="check the operator's signed trust decisions (SLSA verification summaries) offline",
        description="The operator signs each trust decision (admit or reject, per revision) and keeps the last ones "
        "per model in a ConfigMap <model>-attestations. These commands check them without a cluster.",
    )
    actions = parser.add_subparsers(dest="action", metavar="ACTION")
    check = actions.add_parser(
        "verify",
        help="verify attestations against the operator's public key and print them",
        description="Verify every attestation in FILE (a bundle .json, a history ConfigMap, or a kubectl List of "
        "them, as YAML or JSON; - reads stdin) with the operator's public key, and print each decision. Exit 0: "
        "all verified; 1: one or more did not verify (altered, or signed by another key); 2: usage error.",
    )
    check.add_argument("files", nargs="+", metavar="FILE")
    check.add_argument("--public-key", required=True, metavar="PEM", help="the operator's public key (PEM)")
    check.add_argument("--since", help="only show decisions made at or after this date/time (ISO 8601, UTC default)")
    check.add_argument("--brief", action="store_true", help="one line per decision")
    check.set_defaults(func=verify)

    digest = actions.add_parser(
        "policy-digest",
        help="the spec digest an attestation records for each ModelTrustPolicy in a file",
        description="Print name, generation and specDigest of every ModelTrustPolicy in FILE (as kept in Git or "
        "read with `kubectl get mtp NAME -o yaml`): the sha256 of the spec's canonical JSON, defaults included, "
        "as the operator evaluated it. Compare it with policy.annotations.policies[].specDigest.",
    )
    digest.add_argument("file", metavar="FILE")
    digest.set_defaults(func=policy_digest)

    def usage(_: argparse.Namespace) -> int:
        parser.print_help(sys.stderr)
        return EXIT_USAGE

    parser.set_defaults(func=usage)
