"""`openmodel report-claim`: what the claim examination Job runs for a ``pvc://`` source.

The operator cannot mount a claim; a pod can. This command hashes the directory the Job mounts read-only (the
same walk as ``openmodel digest`` and ``verify``: links and special files refused, file count and size bounded),
reads the signature bundle and the evidence files (card, openness declaration) and POSTs one bounded report
(``evidence.claim_report``) to the operator's report listener for the examination ``--nonce`` names.

It needs no API access (the pod has no token) and holds no secret: the nonce is a correlation id a tenant can
read in the Job's arguments. That is why the operator trusts nothing in the report as such (docs/threat-model.md).

Exit codes: 0 the operator took the report; 1 the operator refused it (a 4xx but 404 and 429: another attempt
would be refused too); 2 operational (the listener could not be reached, no replica waited for the nonce, a 5xx, a
timeout, each tried ``--attempts`` times), which the Job's backoff retries once more.
"""

from __future__ import annotations

import argparse
import datetime
import json
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from openmodel_operator.evidence.claim_report import MAX_BUNDLE_BYTES, NONCE, encode_report
from openmodel_operator.evidence.errors import SourceError
from openmodel_operator.evidence.records import Reason
from openmodel_operator.evidence.text import printable
from openmodel_operator.sources.directory import read_beneath, resolve_directory

POST_TIMEOUT = 60.0  # seconds for the one POST (the listener answers within its own, shorter, read deadline)


def _log(event: str, **fields: Any) -> None:
    """One JSON line: the last one is the container's termination message (``FallbackToLogsOnError``)."""
    record = {
        "time": datetime.datetime.now(datetime.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "event": event,
        **{k: printable(v, 500) if isinstance(v, str) else v for k, v in fields.items()},
    }
    print(json.dumps(record, ensure_ascii=False), flush=True)


def build_report(root: Path, uri: str, signature_path: str, nonce: str) -> bytes:
    """The report body for the claim mounted at ``root`` (an error report when it cannot be read safely)."""
    try:
        resolved = resolve_directory(root, uri=uri, kind="pvc")
        bundle = None
        if any(f.path == signature_path for f in resolved.files):
            bundle = read_beneath(root, signature_path, MAX_BUNDLE_BYTES)
    except SourceError as exc:
        return encode_report(nonce, error=(exc.reason, exc.message))
    return encode_report(
        nonce, resolved.files, signature=bundle, readme=resolved.readme, openness=resolved.openness_bytes
    )


def run(args: argparse.Namespace) -> int:
    if not NONCE.fullmatch(args.nonce):
        _log("refused", reason=Reason.INVALID_SOURCE.value, message="--nonce is not 32 lower-case hex digits")
        return 1
    if not args.url.startswith(("http://", "https://")):
        _log("refused", reason=Reason.INVALID_SOURCE.value, message="--url is not an http(s) URL")
        return 1
    body = build_report(Path(args.root), args.uri, args.signature_path, args.nonce)
    url = f"{args.url.rstrip('/')}/{args.nonce}"
    code = 2
    for attempt in range(max(1, args.attempts)):
        if attempt:
            time.sleep(min(2.0 ** (attempt - 1), 8.0))
        code = _post(url, body, args.timeout)
        if code != RETRY:
            return code
    return 2


RETRY = -1


def _post(url: str, body: bytes, timeout: float) -> int:
    """One POST: 0 taken, 1 refused for good, RETRY for what another attempt may change.

    A 404 is retried: with several operator replicas behind the Service, only the active one waits for the
    nonce, and another connection may reach it (docs/lifecycle.md, "pvc:// sources").
    """
    headers = {"Content-Type": "application/json", "Content-Length": str(len(body))}
    request = urllib.request.Request(url, data=body, method="POST", headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:  # the scheme is checked above
            _log("reported", bytes=len(body), status=answer.status)
            return 0
    except urllib.error.HTTPError as exc:
        code = int(exc.code)
        again = code == 404 or code == 429 or code >= 500
        _log("failed" if again else "refused", bytes=len(body), status=code, message=exc.reason or "")
        return RETRY if again else 1
    except (OSError, ValueError) as exc:  # URLError is an OSError; timeouts and resets too
        _log("failed", reason=Reason.ENDPOINT_UNREACHABLE.value, message=f"{type(exc).__name__}: {exc}")
        return RETRY


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "report-claim",
        help="hash a mounted pvc:// source and report it to the operator (what the claim examination Job runs)",
        description=(
            "Hash every file of the directory a claim examination Job mounts read-only, read its signature bundle, "
            "model card and openness declaration, and POST them as one report to the operator's listener for one "
            "examination (--nonce). The operator decides from the report as from a mirror's answer: nothing in it "
            "is trusted unless the signature or the pin covers it. Exit codes: 0 reported, 1 refused, 2 operational."
        ),
    )
    parser.add_argument("--root", required=True, metavar="DIR", help="where the claim's path is mounted")
    parser.add_argument("--uri", required=True, help="the pvc:// source the directory is (recorded in the report)")
    parser.add_argument("--signature-path", default="model.sig", help="the signature file (default: model.sig)")
    parser.add_argument("--nonce", required=True, help="the examination this report answers (from the operator)")
    parser.add_argument(
        "--url", required=True, help="the operator's report listener, e.g. http://svc:8082/claim-reports"
    )
    parser.add_argument(
        "--timeout", type=float, default=POST_TIMEOUT, help=f"seconds for the POST (default {POST_TIMEOUT:g})"
    )
    parser.add_argument(
        "--attempts", type=int, default=4, help="POSTs before giving up on a 404, 429, 5xx or network error (default 4)"
    )
    parser.set_defaults(func=run)
