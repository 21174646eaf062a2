"""`openmodel fetch`: what the fetch Job and the verify-on-start init container run.

Normal mode puts exactly the pinned files on the volume: each byte is checked against the signed
digest while it is written (``sources.pull``), then anything else in the directory is removed, so a
model server that globs ``*.safetensors`` can only ever find verified files.

``--verify-only`` re-hashes the volume and requires exactly the manifest's files and digests, so
bytes changed after the pull (a shared volume, a hand edit) are never served.

Output is one JSON object per line (``event``, ``path``, ``bytes``, ``reason``, ...): a Job log is
read by people and machines, not a terminal. The last line says why it failed, and with
``terminationMessagePolicy: FallbackToLogsOnError`` it becomes the pod's termination message.
The Hub token (env ``HF_TOKEN``) is never printed.

Exit codes: 0 verified, 1 verification failure (bytes or files that do not match the manifest:
retrying cannot help, the Job's pod failure policy fails at once), 2 operational error (network,
Hub, volume, usage: retried within the Job's backoff limit).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import sys
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TextIO

from openmodel_operator.evidence.errors import PullError, SourceError
from openmodel_operator.evidence.pinned import PinnedManifest, PinnedManifestError
from openmodel_operator.evidence.records import Reason, ResolvedSource
from openmodel_operator.evidence.text import clean
from openmodel_operator.sources import shared_slots
from openmodel_operator.sources.directory import hash_file
from openmodel_operator.sources.hub import check_endpoint, parse_hf_uri
from openmodel_operator.sources.pull import DEFAULT_MIN_RATE, LOST_FOUND, pull, remove_unlisted

EXIT_OK, EXIT_VERIFY_FAILED, EXIT_ERROR = 0, 1, 2
MAX_LOG_CHARS = 2000  # per string field of a log line
TOKEN_ENV = "HF_TOKEN"

# Pull failures that mean "these are not the signed bytes/files": another attempt gets the same answer.
_VERIFICATION_REASONS = frozenset(
    {
        Reason.PULLED_DIGEST_MISMATCH,
        Reason.MANIFEST_MISMATCH,
        Reason.UNSAFE_PATH,
        Reason.UNSAFE_FILE_NAME,
        Reason.SYMLINK_NOT_ALLOWED,
    }
)


class Failure(Exception):
    """Ends the command with an exit code and one last structured line."""

    def __init__(self, code: int, reason: Reason | str, message: str, path: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.reason = str(reason)
        self.message = message
        self.path = path


class JsonLog:
    """One JSON object per line, flushed at once (the Job log is read while the pull runs)."""

    def __init__(self, stream: TextIO, secrets: Iterable[str] = ()) -> None:
        self.stream = stream
        self.secrets = tuple(s for s in secrets if s)
        self._lock = threading.Lock()

    def __call__(
        self,
        event: str,
        *,
        path: str | None = None,
        bytes: int | None = None,
        reason: str | None = None,
        message: str | None = None,
        **extra: Any,
    ) -> None:
        record: dict[str, Any] = {
            "time": datetime.datetime.now(datetime.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "event": event,
            "path": path,
            "bytes": bytes,
            "reason": reason,
        }
        if message is not None:
            record["message"] = message
        record.update(extra)
        # every string may carry server text (an error message, an exception): redacted and escaped
        record = {k: clean(v, self.secrets, MAX_LOG_CHARS) if isinstance(v, str) else v for k, v in record.items()}
        line = json.dumps(record, ensure_ascii=False)
        for secret in self.secrets:  # belt and braces: no message should contain it in the first place
            line = line.replace(secret, "[redacted]")
        with self._lock:
            self.stream.write(line + "\n")
            self.stream.flush()


class ProgressLog:
    """``sources.pull`` progress callback that logs the total at most every ``interval`` seconds."""

    def __init__(self, log: JsonLog, total: int, interval: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.log = log
        self.total = total
        self.interval = interval
        self.clock = clock
        self._done: dict[str, int] = {}
        self._lock = threading.Lock()
        self._last = clock()

    def __call__(self, path: str, done: int, total: int) -> None:
        with self._lock:
            self._done[path] = done
            now = self.clock()
            if now - self._last < self.interval:
                return
            self._last = now
            done_bytes = sum(self._done.values())
        percent = round(100.0 * done_bytes / self.total, 1) if self.total else 100.0
        self.log("progress", bytes=done_bytes, total=self.total, percent=percent)


# ---------------------------------------------------------------- manifest


def load_manifest(path: str, expect_digest: str | None) -> PinnedManifest:
    """The pinned manifest, consistent with its digest and (when given) with the digest this pod expects.

    The manifest's files (path, size, sha256) must hash to its recorded name-bound digest, and that
    digest must be ``expect_digest``, the one the operator decided on and wrote into the Job or pod
    spec: a ConfigMap edited afterwards (a renamed path, another digest or size, an added file) is
    refused with ManifestMismatch, whether or not the editor also rewrote the recorded digest.
    """
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise Failure(EXIT_ERROR, Reason.INVALID_SOURCE, f"cannot read the manifest {path}: {exc}") from None
    try:
        pinned = PinnedManifest.from_json(text)
    except PinnedManifestError as exc:
        if exc.reason is Reason.INVALID_SOURCE:
            raise Failure(EXIT_ERROR, Reason.INVALID_SOURCE, f"{path}: {exc}") from None
        raise Failure(EXIT_VERIFY_FAILED, exc.reason, f"{path}: {exc}") from None
    if expect_digest and pinned.manifest_digest != expect_digest:
        raise Failure(
            EXIT_VERIFY_FAILED,
            Reason.MANIFEST_MISMATCH,
            f"the manifest in {path} is for {pinned.manifest_digest}, but this pod was made for {expect_digest}: "
            "the model's content changed; the operator rolls a new pod for it",
        )
    return pinned


def resolved_source(pinned: PinnedManifest, source_dir: str | None) -> tuple[ResolvedSource, Path | None]:
    """The ResolvedSource the manifest implies: the Hub repository at the pinned commit, or a directory."""
    uri = pinned.source
    try:
        if uri.startswith("hf://"):
            resolved = ResolvedSource(
                uri=uri,
                kind="hf",
                files=pinned.files,
                revision=pinned.revision,
                repo_id=parse_hf_uri(uri),
                endpoint=check_endpoint(pinned.endpoint),
            )
            return resolved, None
    except SourceError as exc:
        raise Failure(EXIT_ERROR, exc.reason, exc.message) from None
    if uri.startswith("pvc://"):
        if source_dir is None:
            raise Failure(
                EXIT_ERROR, Reason.INVALID_SOURCE, f"{uri} is a claim: pass --source-dir with the path it is mounted at"
            )
        return ResolvedSource(uri=uri, kind="pvc", files=pinned.files), Path(source_dir)
    return ResolvedSource(uri=uri, kind="local", files=pinned.files), Path(source_dir) if source_dir else None


# ---------------------------------------------------------------- the directory


def _entries(dest: Path) -> list[tuple[str, str, bool]]:
    """Every non-directory entry under ``dest`` as (relative path, absolute path, is regular file).

    Links are entries, never followed. Only the top-level ``lost+found`` is left out: unlike
    ``resolve_directory`` nothing else is skipped (not even ``.cache/huggingface``), so any extra
    file is reported.
    """
    found: list[tuple[str, str, bool]] = []
    stack = [("", os.fspath(dest))]
    while stack:
        rel_dir, abs_dir = stack.pop()
        with os.scandir(abs_dir) as scan:
            for entry in scan:
                rel = f"{rel_dir}/{entry.name}" if rel_dir else entry.name
                if entry.is_dir(follow_symlinks=False):
                    if rel != LOST_FOUND:
                        stack.append((rel, entry.path))
                    continue
                found.append((rel, entry.path, entry.is_file(follow_symlinks=False)))
    return sorted(found)


def prune(dest: Path, keep: Iterable[str], log: JsonLog) -> list[str]:
    """Remove every entry under ``dest`` that is not a regular file listed in ``keep`` (bar lost+found).

    Run before the pull (frees space taken by a previous version) and after it (the volume then
    holds exactly the manifest). Directories left empty are removed too.
    """

    def logged(rel: str) -> None:
        log("removed", path=rel, reason=str(Reason.MANIFEST_MISMATCH), message="not in the manifest")

    try:
        return remove_unlisted(dest, keep, logged)
    except OSError as exc:
        # a file we cannot remove stays next to the verified ones: the volume is not what was signed
        raise Failure(
            EXIT_VERIFY_FAILED,
            Reason.MANIFEST_MISMATCH,
            f"cannot remove {exc.filename} ({exc.strerror or exc}), which is not in the manifest",
            path=str(exc.filename) if exc.filename else None,
        ) from None


def verify_directory(
    dest: Path,
    pinned: PinnedManifest,
    workers: int,
    signature_file: str | None = None,
    signature_digest: str | None = None,
) -> list[tuple[str, Reason, str, int | None]]:
    """Problems that keep ``dest`` from being exactly the manifest: (path, reason, message, size).

    ``signature_file``: a claim served in place also holds its signature bundle, which no manifest lists (it
    signs the manifest); that one regular file is let through when its bytes are the bundle that was verified
    (``signature_digest``, ``sha256:<hex>``), nothing else is. Its name is the tenant's choice (a chat template,
    a generation config...): without the digest the server could read any bytes put there after the decision.
    """
    expected = pinned.expected
    sizes = {f.path: f.size for f in pinned.files}
    problems: list[tuple[str, Reason, str, int | None]] = []
    present: dict[str, str] = {}
    for rel, abs_path, regular in _entries(dest):
        if not regular:
            problems.append((rel, Reason.MANIFEST_MISMATCH, "not a regular file (a link or a device)", None))
        elif rel == signature_file and rel not in expected and signature_digest is not None:
            problem = _signature_problem(rel, abs_path, signature_digest)
            if problem is not None:
                problems.append(problem)
        elif rel not in expected:
            problems.append((rel, Reason.MANIFEST_MISMATCH, "not in the manifest", os.lstat(abs_path).st_size))
        else:
            present[rel] = abs_path
    flagged = {p[0] for p in problems}
    for rel in sorted(set(expected) - set(present) - flagged):
        problems.append((rel, Reason.MANIFEST_MISMATCH, "missing", None))

    def check(rel: str) -> tuple[str, Reason, str, int | None] | None:
        size = os.lstat(present[rel]).st_size
        if size != sizes[rel]:
            return rel, Reason.PULLED_DIGEST_MISMATCH, f"is {size} bytes, the manifest says {sizes[rel]}", size
        size, digest = hash_file(present[rel])
        if digest != expected[rel]:
            return rel, Reason.PULLED_DIGEST_MISMATCH, f"has sha256 {digest}, the manifest says {expected[rel]}", size
        return None

    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        order = sorted(present, key=lambda rel: sizes[rel], reverse=True)  # largest first balances the threads
        problems.extend(p for p in pool.map(check, order) if p is not None)
    return sorted(problems)


MAX_SIGNATURE_BYTES = 16 * 1024 * 1024  # as sources.examine reads a bundle: a larger file is no bundle


def _signature_problem(rel: str, abs_path: str, digest: str) -> tuple[str, Reason, str, int | None] | None:
    """None when the file at the signature path is the verified bundle (by sha256); else what is wrong."""
    size = os.lstat(abs_path).st_size
    if size > MAX_SIGNATURE_BYTES:
        return rel, Reason.MANIFEST_MISMATCH, f"is {size} bytes, not the verified signature bundle", size
    size, actual = hash_file(abs_path)
    if f"sha256:{actual}" != digest:
        return rel, Reason.MANIFEST_MISMATCH, "is not the verified signature bundle (nor in the manifest)", size
    return None


# ---------------------------------------------------------------- modes


def _fetch_shared(
    args: argparse.Namespace, pinned: PinnedManifest, dest: Path, token: str | None, log: JsonLog
) -> None:
    """A slot of a claim shared by models: pulled under the slot's lock (one writer; a second pull of the same
    content waits, then finds every file in place and only re-hashes), with this model's reference added."""
    try:
        with shared_slots.slot_lock(dest.parent, dest.name, args.lock_timeout) as held:
            if not held:
                raise Failure(
                    EXIT_ERROR,
                    Reason.DOWNLOAD_FAILED,
                    f"another pull held slot {dest.name} for {args.lock_timeout:.0f} s; the Job tries again",
                )
            shared_slots.add_ref(dest.parent, dest.name, args.ref)
            log("locked", path=dest.name, message=f"slot {dest.name} is this pull's alone; reference {args.ref}")
            _fetch(args, pinned, dest, token, log)
    except shared_slots.SharedSlotError as exc:
        raise Failure(EXIT_VERIFY_FAILED, Reason.UNSAFE_PATH, str(exc)) from None
    except OSError as exc:
        raise Failure(EXIT_ERROR, Reason.DOWNLOAD_FAILED, f"the shared claim failed: {exc.strerror or exc}") from None


def _fetch(args: argparse.Namespace, pinned: PinnedManifest, dest: Path, token: str | None, log: JsonLog) -> None:
    resolved, source_dir = resolved_source(pinned, args.source_dir)
    if dest.is_symlink():
        # a slot is a directory of its own: a link could point the pull at another revision's (served) files
        raise Failure(
            EXIT_VERIFY_FAILED, Reason.SYMLINK_NOT_ALLOWED, f"{dest} is a symbolic link; the pull writes only into "
            "a directory of its own"
        )
    try:
        dest.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise Failure(EXIT_ERROR, Reason.DOWNLOAD_FAILED, f"cannot create {dest}: {exc.strerror or exc}") from None
    keep = [f.path for f in pinned.files]
    prune(dest, keep, log)
    log(
        "pull",
        bytes=pinned.total_bytes,
        message=f"{pinned.source}@{pinned.revision}" if pinned.revision else pinned.source,
        files=len(pinned.files),
        digest=pinned.manifest_digest,
    )
    progress = ProgressLog(log, pinned.total_bytes, args.progress_interval)
    try:
        result = pull(
            resolved,
            pinned.expected,
            dest,
            token=token,
            workers=args.workers,
            retries=args.retries,
            progress=progress,
            source_dir=source_dir,
            min_rate=args.min_rate,
        )
    except PullError as exc:
        code = EXIT_VERIFY_FAILED if exc.reason in _VERIFICATION_REASONS else EXIT_ERROR
        raise Failure(code, exc.reason, exc.message, path=exc.path or None) from None
    except OSError as exc:
        raise Failure(EXIT_ERROR, Reason.DOWNLOAD_FAILED, f"the volume failed: {exc.strerror or exc}") from None
    downloaded = set(result.downloaded)
    for entry in result.files:
        log("file", path=entry.path, bytes=entry.size, state="downloaded" if entry.path in downloaded else "present")
    removed = prune(dest, keep, log)
    left = {rel for rel, _, _ in _entries(dest)}
    if left != set(keep):
        wrong = sorted(left ^ set(keep))
        raise Failure(
            EXIT_VERIFY_FAILED, Reason.MANIFEST_MISMATCH, f"the volume does not hold exactly the manifest: {wrong[:5]}"
        )
    log(
        "done",
        bytes=result.bytes,
        message=f"{len(result.files)} files verified in {dest}",
        digest=pinned.manifest_digest,
        downloaded=len(result.downloaded),
        present=len(result.skipped),
        removed=len(removed),
        seconds=round(result.seconds, 3),
    )


def _verify_only(args: argparse.Namespace, pinned: PinnedManifest, dest: Path, log: JsonLog) -> None:
    if not dest.is_dir():
        raise Failure(EXIT_ERROR, Reason.INVALID_SOURCE, f"{dest} is not a directory: is the volume mounted?")
    started = time.monotonic()
    try:
        problems = verify_directory(dest, pinned, args.workers, args.signature_file, args.signature_digest)
    except OSError as exc:
        raise Failure(
            EXIT_ERROR,
            Reason.ACCESS_DENIED if isinstance(exc, PermissionError) else Reason.INVALID_SOURCE,
            f"cannot read {exc.filename or dest} ({exc.strerror or exc}): every file must be readable to be verified",
        ) from None
    for rel, reason, message, size in problems:
        log("mismatch", path=rel, bytes=size, reason=str(reason), message=f"{rel}: {message}")
    if problems:
        reasons = {reason for _, reason, _, _ in problems}
        reason = Reason.PULLED_DIGEST_MISMATCH if Reason.PULLED_DIGEST_MISMATCH in reasons else Reason.MANIFEST_MISMATCH
        names = ", ".join(f"{rel} ({why})" for rel, _, why, _ in problems[:5])
        more = f" and {len(problems) - 5} more" if len(problems) > 5 else ""
        raise Failure(
            EXIT_VERIFY_FAILED,
            reason,
            f"{dest} does not match {pinned.manifest_digest}: {names}{more}; the server will not start on it",
            path=problems[0][0],
        )
    log(
        "verified",
        bytes=pinned.total_bytes,
        message=f"{len(pinned.files)} files in {dest} match {pinned.manifest_digest}",
        digest=pinned.manifest_digest,
        files=len(pinned.files),
        seconds=round(time.monotonic() - started, 3),
    )


def run(args: argparse.Namespace, stream: TextIO | None = None) -> int:
    """Run ``openmodel fetch``; returns the exit code (the Job reads it, the log says why)."""
    token = (os.environ.get(TOKEN_ENV) or "").strip() or None
    log = JsonLog(stream or sys.stdout, secrets=[token] if token else [])
    dest = Path(args.dest)
    try:
        if args.workers < 1:
            raise Failure(EXIT_ERROR, Reason.INVALID_SOURCE, "--workers must be at least 1")
        if not args.min_rate > 0:
            raise Failure(EXIT_ERROR, Reason.INVALID_SOURCE, "--min-rate must be a positive number of bytes per second")
        pinned = load_manifest(args.manifest, args.expect_digest)
        if args.verify_only:
            _verify_only(args, pinned, dest, log)
        elif args.ref:
            _fetch_shared(args, pinned, dest, token, log)
        else:
            _fetch(args, pinned, dest, token, log)
    except Failure as exc:
        log("failed", path=exc.path, reason=exc.reason, message=exc.message, exit=exc.code)
        return exc.code
    except Exception as exc:  # the Job must end with a line that says why, whatever went wrong
        log("failed", reason="InternalError", message=f"{type(exc).__name__}: {exc}", exit=EXIT_ERROR)
        return EXIT_ERROR
    return EXIT_OK


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "fetch",
        help="place the pinned model files in a directory, checking every byte (what the fetch Job runs)",
        description=(
            "Download exactly the files of a pinned manifest (the JSON the operator puts in the model's ConfigMap), "
            "check each against its signed sha256 while it is written, and remove anything else from the directory. "
            "With --verify-only, only re-hash the directory and require exactly the manifest. Logs are JSON lines. "
            "Exit codes: 0 verified, 1 verification failure, 2 operational error. The Hub token is read from "
            f"${TOKEN_ENV} and never printed."
        ),
    )
    parser.add_argument("--manifest", required=True, metavar="FILE", help="the pinned manifest (manifest.json)")
    parser.add_argument("--dest", required=True, metavar="DIR", help="the directory that holds the model")
    parser.add_argument(
        "--verify-only",
        action="store_true",
        help="download nothing: fail unless DIR holds exactly the manifest's files with its digests",
    )
    parser.add_argument("--workers", type=int, default=4, metavar="N", help="parallel downloads and hashes")
    parser.add_argument(
        "--expect-digest",
        metavar="sha256:HEX",
        help="fail unless the manifest has this digest (the one the Job or pod was made for)",
    )
    parser.add_argument(
        "--signature-file",
        metavar="PATH",
        help="with --verify-only: DIR is a claim served in place, which also holds this signature file (not listed); "
        "it is let through only with --signature-digest",
    )
    parser.add_argument(
        "--signature-digest",
        metavar="sha256:HEX",
        help="with --signature-file: the sha256 of the bundle that was verified; the file must hold exactly it",
    )
    parser.add_argument("--source-dir", metavar="DIR", help="where a pvc:// source is mounted (directory sources only)")
    parser.add_argument(
        "--ref",
        metavar="MODEL_UID",
        help="DIR is a slot of a claim shared by models: pull under the slot's lock and record this model's reference",
    )
    parser.add_argument(
        "--lock-timeout",
        type=float,
        default=3600.0,
        metavar="SECONDS",
        help="with --ref: how long to wait for another pull of the same slot (default 3600; exit 2 after)",
    )
    parser.add_argument("--retries", type=int, default=2, metavar="N", help="extra attempts per file (default 2)")
    parser.add_argument(
        "--min-rate",
        type=float,
        default=DEFAULT_MIN_RATE,
        metavar="BYTES_PER_SECOND",
        help="slowest average download rate accepted: each file must arrive within twice the timeout plus its "
        f"size at this rate, or the download is cut off (default {DEFAULT_MIN_RATE})",
    )
    parser.add_argument(
        "--progress-interval", type=float, default=5.0, metavar="SECONDS", help="seconds between progress lines"
    )
    parser.set_defaults(func=run)
