"""Resolve an ``hf://`` source into a pinned commit and the sha256 of every file, before any pull.

The revision a user names (a branch such as ``main``) can move at any time, so the first answer
from the Hub, the 40-hex commit, is what everything after this uses: the file listing, the small
file downloads, the signature bundle and the pull all ask for that commit, never for the branch.

File digests come from the Hub's listing for LFS files (their LFS oid is the plain sha256 of the
content, the value model-signing signs). Small files kept in git have only a git blob id, so they
are downloaded (capped) and hashed here; their git blob id is checked too, which ties those bytes
to the commit's git tree.

The requests go through huggingface_hub's shared HTTP session (so proxy and certificate settings
made with ``set_client_factory`` apply) but are issued here rather than through ``HfApi`` helpers:
every call gets a bounded timeout and a cap on the response size, the listing is paginated with a
hard file limit (a hostile endpoint cannot make us read a million entries) and pagination links
may not leave the endpoint's origin (they would carry the token elsewhere). Downloads ask the
``/resolve`` endpoint for plain bytes, so hf_xet and its storage host are never involved; the
behaviour is the same as ``HF_HUB_DISABLE_XET=1``.

Hostile endpoints are bounded (issue 8): every request has a wall-clock deadline enforced by a
watchdog that shuts the connection's socket (a server dripping one byte a second is cut off, headers
included), and the whole resolution has an overall ``Deadline`` (DEADLINE_EXCEEDED). JSON answers
are capped in bytes, in tokens and in nesting depth, and never decompressed (``Accept-Encoding:
identity``; an answer that is encoded anyway is refused). API answers may not redirect
(SOURCE_REDIRECTED) and the repository id the Hub answers must be the one asked for, up to case; the
canonical id is what the result names. Before any decision at most MAX_PREDECISION_BYTES of file
content are downloaded (README.md, openness.yaml, the bundle and the small git files that must be
hashed), counted from the listed sizes before the first download. Server text reaching a message is
redacted and escaped (``evidence.text``), and ``cardData`` is never read: the card is the README.md
front matter, from bytes checked against the listing.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import io
import json
import logging
import re
import time
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import quote, urlsplit

import httpx2
import huggingface_hub
from huggingface_hub import constants as hf_constants
from huggingface_hub import get_session

from openmodel_operator import __version__
from openmodel_operator.evidence.documents import (
    MAX_DECLARATION_BYTES,
    MAX_METADATA_BYTES,
    OPENNESS_FILE,
    README_FILE,
    card_metadata,
    load_yaml_mapping,
)
from openmodel_operator.evidence.errors import SourceError
from openmodel_operator.evidence.json_depth import json_depth
from openmodel_operator.evidence.paths import (
    DEFAULT_MAX_FILE_SIZE,
    DEFAULT_MAX_FILES,
    check_no_path_conflicts,
    check_relative_path,
)
from openmodel_operator.evidence.records import FileEntry, Reason, ResolvedSource
from openmodel_operator.evidence.text import clean, install_log_redaction, printable, remember_secret
from openmodel_operator.sources.directory import local_root, read_beneath
from openmodel_operator.sources.download import Watchdog
from openmodel_operator.trust.examination import DEFAULT_DEADLINE

log = logging.getLogger(__name__)
install_log_redaction()  # httpx/httpcore log server text (reason phrases, headers): never a token

Params = tuple[tuple[str, str], ...]

HF_SCHEME = "hf://"
DEFAULT_ENDPOINT = "https://huggingface.co"
DEFAULT_TIMEOUT = 30.0  # seconds without progress on one connection (connect, one read)
DEFAULT_REQUEST_DEADLINE = 60.0  # wall-clock seconds for one metadata request, body included
MAX_SMALL_FILE = 10 * 1024 * 1024  # git (non-LFS) files we download to hash; the Hub itself caps them at 10 MB
MAX_INFO_BYTES = 1024 * 1024  # the model information answer (only sha and id are asked for)
MAX_PAGE_BYTES = 4 * 1024 * 1024  # one listing page (the Hub sends 1000 entries, ~250 KB)
MAX_JSON_BYTES = MAX_PAGE_BYTES  # the largest JSON answer read at all
MAX_INFO_TOKENS = 10_000  # ',', '{' and '[' in the model information answer
MAX_PAGE_TOKENS = 100_000  # the same in one listing page (a real page has ~10 per entry)
MAX_JSON_DEPTH = 64  # nesting of JSON arrays and objects (a listing entry has 2)
MAX_PREDECISION_BYTES = 16 * 1024 * 1024  # file content downloaded before the decision
MAX_PREDECISION_FILES = 512  # files downloaded before the decision
MAX_REDIRECTS = 5  # /resolve downloads only; API answers may not redirect at all
SMALL_FILE_WORKERS = 8
CHUNK = 1024 * 1024
# Names of files that hold weights or pickled objects. Outside LFS they would be hashed (downloaded)
# before the decision; the Hub stores them in LFS by default, so a repository that does not is refused.
WEIGHT_SUFFIXES = (
    ".safetensors",
    ".bin",
    ".pt",
    ".pth",
    ".ckpt",
    ".gguf",
    ".ggml",
    ".onnx",
    ".h5",
    ".hdf5",
    ".keras",
    ".msgpack",
    ".npz",
    ".npy",
    ".pkl",
    ".pickle",
    ".joblib",
    ".tflite",
    ".mlmodel",
    ".pb",
    ".ot",
    ".nemo",
    ".llamafile",
)

_REPO_PART = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9._-]{0,94}[A-Za-z0-9])?")
_HEX40 = re.compile(r"[0-9a-f]{40}")
_HEX64 = re.compile(r"[0-9a-fA-F]{64}")


def check_repo_id(repo_id: str, field: str = "spec.source.uri") -> str:
    """Return ``repo_id`` if it is a Hub model id (``org/name`` or a legacy ``name``), else INVALID_SOURCE."""
    parts = repo_id.split("/")
    if (
        1 <= len(parts) <= 2
        and all(_REPO_PART.fullmatch(part) for part in parts)
        and "--" not in repo_id
        and ".." not in repo_id
    ):
        return repo_id
    raise SourceError(
        Reason.INVALID_SOURCE,
        f"{field} names the repository {repo_id!r}, which is not a Hugging Face model id: "
        "use hf://<organisation>/<model> with letters, digits, '-', '_' and '.'",
    )


def parse_hf_uri(uri: str) -> str:
    """The repo id of ``hf://org/name``; anything else (a revision after ``@``, extra path) is refused."""
    if not uri.startswith(HF_SCHEME):
        raise SourceError(
            Reason.INVALID_SOURCE,
            f"spec.source.uri {uri!r} is not a Hugging Face URI: use hf://<organisation>/<model>",
        )
    repo_id = uri[len(HF_SCHEME) :]
    if "@" in repo_id:
        raise SourceError(
            Reason.INVALID_SOURCE,
            f"spec.source.uri {uri!r} carries a revision: put the model in the URI "
            "(hf://<organisation>/<model>) and the branch, tag or commit in spec.source.revision",
        )
    return check_repo_id(repo_id)


def check_revision(revision: str) -> str:
    """A branch, tag or commit name that can be put in a URL path segment."""
    if (
        not revision
        or len(revision) > 255
        or any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in revision)
        or revision.strip() != revision
    ):
        raise SourceError(
            Reason.INVALID_SOURCE,
            f"spec.source.revision {revision!r} is not a valid revision: use a branch, tag or 40-hex commit",
        )
    return revision


def check_endpoint(endpoint: str | None) -> str:
    """The Hub endpoint without trailing slash; credentials in the URL are refused (they would be logged)."""
    value = (endpoint or hf_constants.ENDPOINT or DEFAULT_ENDPOINT).rstrip("/")
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.query or parts.fragment:
        shown = value if "@" not in parts.netloc else "<an URL with credentials>"
        raise SourceError(
            Reason.INVALID_SOURCE,
            f"the Hub endpoint {shown!r} is not an http(s) URL: use e.g. {DEFAULT_ENDPOINT}",
        )
    if parts.username is not None or parts.password is not None:
        raise SourceError(
            Reason.INVALID_SOURCE,
            "the Hub endpoint URL contains credentials: pass the token separately, never in the URL",
        )
    try:
        parts.port  # noqa: B018 - urlsplit checks the port only when asked
    except ValueError as exc:
        raise SourceError(Reason.INVALID_SOURCE, f"the Hub endpoint {value!r} has an invalid port") from exc
    return value


@dataclasses.dataclass(frozen=True)
class Deadline:
    """A wall-clock limit (``time.monotonic``) shared by every request of one examination.

    Pass one Deadline to ``resolve_hub`` and ``fetch_file`` so that both count against the same
    budget; a plain number of seconds starts a new one.
    """

    at: float
    seconds: float

    @classmethod
    def after(cls, seconds: float) -> Deadline:
        return cls(time.monotonic() + seconds, seconds)

    @classmethod
    def of(cls, value: float | Deadline | None, default: float = DEFAULT_DEADLINE) -> Deadline:
        if isinstance(value, Deadline):
            return value
        return cls.after(default if value is None else value)

    def remaining(self) -> float:
        return self.at - time.monotonic()

    def expired(self) -> bool:
        return self.remaining() <= 0


def _deadline_error(seconds: float, what: str, uri: str) -> SourceError:
    return SourceError(
        Reason.DEADLINE_EXCEEDED,
        f"{what} of {uri} did not complete within its {seconds:g}-second deadline: the endpoint is too slow "
        "or stalls on purpose; it will be retried (check the endpoint, or raise the deadline setting)",
    )


def _without_query(url: str) -> str:
    """``url`` without query or fragment, for a message: a signed URL's parameters are nobody's business."""
    try:
        return urlsplit(url)._replace(query="", fragment="").geturl()
    except ValueError:
        return "an invalid URL"


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    default = {"http": 80, "https": 443}.get(parts.scheme)
    try:
        port = parts.port
    except ValueError:
        port = -1  # never equal to a valid endpoint's origin
    return parts.scheme, (parts.hostname or "").lower(), port or default


@dataclasses.dataclass(frozen=True)
class HubClient:
    """One repository on one endpoint, with the token (never shown in repr or messages) and deadlines.

    It turns HTTP answers into ``SourceError`` with the reason the operator reports, so the
    resolver, ``fetch_file`` and the pull agree on what "not found" or "denied" means. Every
    request ends by ``min(now + request_deadline, deadline)``.
    """

    endpoint: str
    repo_id: str
    requested_revision: str | None = None
    token: str | None = dataclasses.field(default=None, repr=False)
    timeout: float = DEFAULT_TIMEOUT
    deadline: Deadline | None = None
    request_deadline: float = DEFAULT_REQUEST_DEADLINE

    @property
    def uri(self) -> str:
        return f"{HF_SCHEME}{self.repo_id}"

    def headers(self) -> dict[str, str]:
        """Request headers; only the token given is sent, never one saved on the machine."""
        headers = {
            "User-Agent": f"openmodel-operator/{__version__}; hf_hub/{huggingface_hub.__version__}",
            "Accept-Encoding": "identity",  # sizes and digests are of the stored bytes
        }
        if self.token:
            remember_secret(self.token)
            headers["Authorization"] = f"Bearer {self.token}"
        return headers

    def secrets(self) -> tuple[str, ...]:
        """What must never appear in a message: the token and the header that carries it."""
        return (self.token, f"Bearer {self.token}") if self.token else ()

    def server_text(self, text: object, limit: int = 200) -> str:
        """Text a server chose (a header, an exception string), redacted and escaped for a message."""
        return clean(str(text), self.secrets(), limit)

    def resolve_url(self, commit: str, path: str) -> str:
        """The ``/resolve`` URL of one file at one commit, quoted as huggingface_hub quotes it."""
        return f"{self.endpoint}/{self.repo_id}/resolve/{quote(commit, safe='')}/{quote(path)}"

    def http_timeout(self, until: float | None = None) -> httpx2.Timeout:
        per_read = self.timeout
        if until is not None:
            per_read = max(0.001, min(per_read, until - time.monotonic()))
        return httpx2.Timeout(per_read, connect=min(per_read, 10.0))

    def request_until(self) -> float:
        """The wall-clock end of a request starting now."""
        until = time.monotonic() + self.request_deadline
        return min(until, self.deadline.at) if self.deadline is not None else until

    def deadline_error(self, what: str, until: float) -> SourceError:
        overall = self.deadline is not None and until >= self.deadline.at
        seconds = self.deadline.seconds if overall and self.deadline is not None else self.request_deadline
        return _deadline_error(seconds, what if not overall else f"the examination ({what})", self.uri)

    def check_deadline(self, what: str) -> None:
        if self.deadline is not None and self.deadline.expired():
            raise self.deadline_error(what, self.deadline.at)

    def status_error(self, response: httpx2.Response, what: str) -> SourceError:
        """The SourceError for a non-success answer to a request about ``what``."""
        status = response.status_code
        code = response.headers.get("X-Error-Code", "")
        raw_message = response.headers.get("X-Error-Message", "")
        server_message = self.server_text(raw_message)
        revision = self.requested_revision
        if code == "RevisionNotFound" and revision is not None:
            return SourceError(
                Reason.REVISION_NOT_FOUND,
                f"spec.source.revision {printable(repr(revision))} was not found in {self.uri}: "
                "use a branch, tag or commit that exists",
            )
        if status in (401, 403) or code == "GatedRepo":
            if code == "GatedRepo":
                hint = (
                    "it is gated: accept its conditions on the Hub with the account of the token"
                    if self.token
                    else "it is gated: provide a Hub token of an account that accepted its conditions"
                )
            elif self.token:
                hint = (
                    "the token was refused or cannot read it: check that the token is valid and has read access"
                    if raw_message == "Invalid credentials in Authorization header" or status == 403
                    else "the token cannot read it: check that the repository exists and the token has read access"
                )
            else:
                hint = "it is private, gated or does not exist: provide a Hub token with read access to it"
            return SourceError(
                Reason.ACCESS_DENIED, f"spec.source.uri {self.uri!r} could not be read ({what}, HTTP {status}): {hint}"
            )
        if code == "RepoNotFound" or (status == 404 and code != "EntryNotFound" and what == "model information"):
            return SourceError(
                Reason.REPOSITORY_NOT_FOUND,
                f"spec.source.uri {self.uri!r} was not found on {self.endpoint}: check the organisation and model name",
            )
        if 300 <= status < 400:
            location = self.server_text(_without_query(response.headers.get("Location", "")), 120)
            return SourceError(
                Reason.SOURCE_REDIRECTED,
                f"the Hub endpoint {self.endpoint} redirected {what} of {self.uri} (HTTP {status} to "
                f"{location or 'nowhere'}): a renamed or moved repository is not followed; use its current "
                "name in spec.source.uri",
            )
        if status == 429 or status >= 500:
            return SourceError(
                Reason.ENDPOINT_UNREACHABLE,
                f"the Hub endpoint {self.endpoint} answered HTTP {status} for {what} of {self.uri}: "
                "the Hub is busy or down, it will be retried",
            )
        return SourceError(
            Reason.INVALID_SOURCE,
            f"the Hub endpoint {self.endpoint} answered HTTP {status} for {what} of {self.uri}"
            + (f" ({server_message})" if server_message else "")
            + ": check spec.source.uri and the endpoint",
        )

    def transport_error(self, exc: Exception, what: str) -> SourceError:
        text = str(exc)
        detail = self.server_text(text.splitlines()[0]) if text.strip() else ""
        return SourceError(
            Reason.ENDPOINT_UNREACHABLE,
            f"the Hub endpoint {self.endpoint} could not be reached for {what} of {self.uri} "
            f"({type(exc).__name__}{': ' + detail if detail else ''}): check the endpoint URL, DNS, "
            "proxy and network policy",
        )

    def _send(
        self, url: str, what: str, params: Params | None, headers: Mapping[str, str], watchdog: Watchdog, until: float
    ) -> contextlib.AbstractContextManager[httpx2.Response]:
        return get_session().stream(
            "GET",
            url,
            params=params,
            headers=headers,
            timeout=self.http_timeout(until),
            follow_redirects=False,
            extensions={"trace": watchdog.trace},
        )

    @contextlib.contextmanager
    def stream(
        self, url: str, what: str, params: Params | None = None, *, redirects: bool = False
    ) -> Iterator[httpx2.Response]:
        """GET ``url`` streaming, within the request's wall-clock deadline.

        API (JSON) requests may not redirect (SOURCE_REDIRECTED: a renamed repository is another
        source). File downloads (``redirects=True``) follow up to MAX_REDIRECTS redirects, to a CDN
        for LFS files, sending the token only to the endpoint's own origin. A request that fails
        before any answer arrived is sent once more: a server (or mirror) may drop a connection.
        An answer with a ``Content-Encoding`` is refused: identity was asked, and inflating
        whatever a server compressed would let a few KB become gigabytes.
        """
        self.check_deadline(what)
        until = self.request_until()
        watchdog = Watchdog(until)
        try:
            with contextlib.ExitStack() as stack:
                current, current_params = url, params
                hops = 0
                while True:
                    send = self.headers()
                    if _origin(current) != _origin(self.endpoint):
                        send.pop("Authorization", None)
                    response = self._open(stack, current, what, current_params, send, watchdog, until)
                    if 300 <= response.status_code < 400 and redirects:
                        target = self._redirect_target(response, current, what)
                        hops += 1
                        if hops > MAX_REDIRECTS:
                            raise self.malformed(what, f"more than {MAX_REDIRECTS} redirects")
                        response.close()
                        current, current_params = target, None
                        continue
                    break
                if response.status_code >= 300:
                    raise self.status_error(response, what)
                encoding = [e for e in response.headers.get_list("content-encoding", split_commas=True) if e.strip()]
                if any(e.strip().lower() != "identity" for e in encoding):
                    raise SourceError(
                        Reason.INVALID_SOURCE,
                        f"the Hub endpoint {self.endpoint} sent {what} of {self.uri} with Content-Encoding "
                        f"{self.server_text(', '.join(encoding), 60)!r} although identity was asked: compressed "
                        "answers are not inflated (they could expand without bound); check the endpoint or proxy",
                    )
                try:
                    yield response
                except httpx2.TransportError as exc:
                    if watchdog.fired:
                        raise self.deadline_error(what, until) from exc
                    raise self.transport_error(exc, what) from exc
                except SourceError as exc:  # e.g. a body cut short by the watchdog looks truncated
                    if watchdog.fired and exc.reason is not Reason.DEADLINE_EXCEEDED:
                        raise self.deadline_error(what, until) from exc
                    raise
                if watchdog.fired:  # the body ended because its connection was shut down
                    raise self.deadline_error(what, until)
        finally:
            watchdog.cancel()

    def _open(
        self,
        stack: contextlib.ExitStack,
        url: str,
        what: str,
        params: Params | None,
        headers: Mapping[str, str],
        watchdog: Watchdog,
        until: float,
    ) -> httpx2.Response:
        for attempt in (1, 2):
            try:
                return stack.enter_context(self._send(url, what, params, headers, watchdog, until))
            except (httpx2.ConnectError, httpx2.RemoteProtocolError, httpx2.ReadError) as exc:
                if watchdog.fired or time.monotonic() >= until:
                    raise self.deadline_error(what, until) from exc
                if attempt == 2:
                    raise self.transport_error(exc, what) from exc
            except httpx2.TimeoutException as exc:
                if watchdog.fired or time.monotonic() >= until - 0.01:
                    raise self.deadline_error(what, until) from exc
                raise self.transport_error(exc, what) from exc
            except httpx2.TransportError as exc:
                if watchdog.fired:
                    raise self.deadline_error(what, until) from exc
                raise self.transport_error(exc, what) from exc
            except httpx2.InvalidURL as exc:
                raise SourceError(
                    Reason.INVALID_SOURCE,
                    f"the URL for {what} of {self.uri} is invalid ({self.server_text(exc)}): check the endpoint",
                ) from exc
        raise AssertionError("unreachable")

    def _redirect_target(self, response: httpx2.Response, current: str, what: str) -> str:
        location = response.headers.get("Location")
        if not location:
            raise self.malformed(what, f"HTTP {response.status_code} without a Location")
        target = str(httpx2.URL(current).join(location))
        if urlsplit(target).scheme not in ("http", "https"):
            raise self.malformed(what, "a redirect to a non-HTTP URL")
        return target

    def chunks(self, response: httpx2.Response, what: str) -> Iterator[bytes]:
        """The body as it arrives, undecoded; a connection lost midway becomes ENDPOINT_UNREACHABLE.

        ``iter_raw`` without a chunk size hands over each piece as soon as it is read, so the
        deadline is checked between pieces too (the watchdog covers a piece that never comes).
        """
        deadline = self.deadline
        for piece in response.iter_raw():  # transport errors are turned into SourceError by ``stream``
            if deadline is not None and deadline.expired():
                raise self.deadline_error(what, deadline.at)
            yield piece

    def get_json(
        self,
        url: str,
        what: str,
        params: Params | None = None,
        *,
        max_bytes: int = MAX_JSON_BYTES,
        max_tokens: int = MAX_PAGE_TOKENS,
    ) -> tuple[Any, str | None]:
        """A JSON answer within byte, token and depth limits, and the ``rel="next"`` link, if any."""
        body = bytearray()
        with self.stream(url, what, params) as response:
            declared = response.headers.get("Content-Length", "")
            if declared.isdigit() and int(declared) > max_bytes:
                raise self.too_large(what, f"announces {int(declared)} bytes", max_bytes)
            for chunk in self.chunks(response, what):
                body += chunk
                if len(body) > max_bytes:
                    raise self.too_large(what, f"sent more than {max_bytes} bytes", max_bytes)
            next_url = response.links.get("next", {}).get("url")
        return parse_json(bytes(body), self, what, max_tokens), next_url

    def too_large(self, what: str, detail: str, limit: int) -> SourceError:
        return SourceError(
            Reason.RESPONSE_TOO_LARGE,
            f"the Hub endpoint {self.endpoint} {detail} for {what} of {self.uri}, more than the {limit} "
            "accepted: it does not behave like a Hub",
        )

    def malformed(self, what: str, detail: str) -> SourceError:
        return SourceError(
            Reason.INVALID_SOURCE,
            f"the Hub endpoint {self.endpoint} sent a malformed answer for {what} of {self.uri} "
            f"({printable(detail)}): check that spec.source points to a Hugging Face Hub",
        )


def parse_json(body: bytes, client: HubClient, what: str, max_tokens: int = MAX_PAGE_TOKENS) -> Any:
    """``json.loads`` with the count of values and the nesting bounded, and no exception but SourceError.

    The byte cap alone does not bound memory: 4 MB of ``{},`` are a million dicts. Every value
    but the last in a container is followed by ``,`` and every container starts with ``{`` or
    ``[``, so counting those bytes (C speed) bounds the number of objects before parsing. Deep
    nesting makes the parser recurse: it raises RecursionError well before the C stack is at
    risk, and anything deeper than MAX_JSON_DEPTH is refused after parsing.
    """
    tokens = body.count(b",") + body.count(b"{") + body.count(b"[")
    if tokens > max_tokens:
        raise client.too_large(what, f"sent about {tokens} JSON values", max_tokens)
    try:
        value = json.loads(body)
    except RecursionError as exc:
        raise client.malformed(what, f"JSON nested more than {MAX_JSON_DEPTH} levels deep") from exc
    except ValueError as exc:  # also UnicodeDecodeError and integers beyond Python's digit limit
        raise client.malformed(what, "not JSON") from exc
    if json_depth(value) > MAX_JSON_DEPTH:
        raise client.malformed(what, f"JSON nested more than {MAX_JSON_DEPTH} levels deep")
    return value


@dataclasses.dataclass(frozen=True)
class _Listed:
    """One file as the listing describes it, before small files are hashed."""

    path: str
    size: int
    sha256: str | None  # from LFS, None for git files
    git_oid: str | None


def _check_size(client: HubClient, path: str, size: object, max_file_size: int) -> int:
    if not isinstance(size, int) or isinstance(size, bool):
        raise client.malformed("the file listing", f"size of {path!r} is not an integer")
    if size < 0 or size > max_file_size:
        raise SourceError(
            Reason.FILE_TOO_LARGE,
            f"{path!r} in {client.uri} is listed with {size} bytes, outside 0..{max_file_size}: "
            "such a file cannot be pulled",
        )
    return size


def _listed_file(client: HubClient, item: Mapping[str, Any], max_file_size: int) -> _Listed:
    path = check_relative_path(item.get("path"), client.uri)
    size = _check_size(client, path, item.get("size"), max_file_size)
    lfs = item.get("lfs")
    oid = item.get("oid")
    git_oid = oid.lower() if isinstance(oid, str) and _HEX40.fullmatch(oid.lower()) else None
    if lfs is None:
        if git_oid is None:
            raise client.malformed("the file listing", f"{path!r} has no git object id")
        if size > MAX_SMALL_FILE:
            raise SourceError(
                Reason.FILE_TOO_LARGE,
                f"{path!r} in {client.uri} is a {size}-byte file outside LFS, more than the {MAX_SMALL_FILE} "
                "bytes it may have: store large files in LFS",
            )
        return _Listed(path, size, None, git_oid)
    if not isinstance(lfs, Mapping):
        raise client.malformed("the file listing", f"the LFS data of {path!r} is not an object")
    sha = lfs.get("oid")
    if not isinstance(sha, str) or not _HEX64.fullmatch(sha):
        raise client.malformed("the file listing", f"the LFS sha256 of {path!r} is not 64 hex digits")
    if lfs.get("size", size) != size:
        raise client.malformed("the file listing", f"the LFS size of {path!r} differs from its size")
    return _Listed(path, size, sha.lower(), git_oid)


def _list_files(client: HubClient, commit: str, max_files: int, max_file_size: int) -> list[_Listed]:
    """Every file at ``commit``, following pagination, stopping as soon as a limit is passed."""
    what = "the file listing"
    url: str | None = f"{client.endpoint}/api/models/{client.repo_id}/tree/{quote(commit, safe='')}"
    params: Params | None = (("recursive", "true"), ("expand", "false"))
    files: list[_Listed] = []
    entries = 0
    max_entries = 2 * max_files + 1000  # files plus the directories that hold them
    while url is not None:
        page, next_url = client.get_json(url, what, params, max_bytes=MAX_PAGE_BYTES, max_tokens=MAX_PAGE_TOKENS)
        if not isinstance(page, list):
            raise client.malformed(what, "a page is not a list")
        if not page and next_url:
            raise client.malformed(what, "an empty page links to another")
        for item in page:
            entries += 1
            if not isinstance(item, Mapping):
                raise client.malformed(what, "an entry is not an object")
            kind = item.get("type")
            if kind == "file":
                files.append(_listed_file(client, item, max_file_size))
            elif kind != "directory":
                raise client.malformed(what, f"an entry has type {client.server_text(kind, 40)!r}")
            if len(files) > max_files or entries > max_entries:
                raise SourceError(
                    Reason.TOO_MANY_FILES,
                    f"{client.uri} at {commit} holds more than {max_files} files: a model repository this "
                    "large is refused (the limit protects the operator from hostile listings)",
                )
        if next_url is not None and _origin(next_url) != _origin(client.endpoint):
            raise client.malformed(what, "a pagination link leaves the endpoint")
        url, params = next_url, None
    check_no_path_conflicts((f.path for f in files), client.uri)
    return files


def _download_checked(
    client: HubClient, commit: str, path: str, size: int, git_oid: str | None, sha256: str | None, keep: bool
) -> tuple[str, bytes | None]:
    """Download a small file at ``commit``; check its size and git/sha256 ids; return sha256 and maybe bytes."""
    what = f"the file {path!r}"
    hasher = hashlib.sha256()
    git = hashlib.sha1(b"blob %d\x00" % size, usedforsecurity=False)  # git's id, compared with the listing
    kept = io.BytesIO() if keep else None
    done = 0
    with client.stream(client.resolve_url(commit, path), what, redirects=True) as response:
        for chunk in client.chunks(response, what):
            done += len(chunk)
            if done > size:
                break
            hasher.update(chunk)
            git.update(chunk)
            if kept is not None:
                kept.write(chunk)
    digest = hasher.hexdigest()
    if done != size or (git_oid is not None and sha256 is None and git.hexdigest() != git_oid):
        raise client.malformed(what, f"the bytes served ({done}{'+' if done > size else ''}) do not match the listing")
    if sha256 is not None and digest != sha256:
        raise SourceError(
            Reason.PULLED_DIGEST_MISMATCH,
            f"{path!r} downloaded from {client.uri} at {commit} has sha256 {digest}, not {sha256} as listed",
        )
    return digest, kept.getvalue() if kept is not None else None


def is_weight_name(path: str) -> bool:
    """True for a file name that holds weights or pickled objects (by suffix, case-insensitive)."""
    return path.rsplit("/", 1)[-1].lower().endswith(WEIGHT_SUFFIXES)


def _predecision_files(
    client: HubClient,
    listed: list[_Listed],
    wanted: set[str],
    max_bytes: int,
    max_count: int,
) -> list[_Listed]:
    """The files to download before the decision, refused as a whole when over the budget.

    Small git files must be downloaded to learn their sha256 (the listing gives only a git id); the
    card, the declaration and the bundle are read whatever their storage. Weights outside LFS are
    refused by name: they would be downloaded, and loaded, like any small file. The budget is
    computed from the listed sizes, before the first byte is fetched.
    """
    outside = sorted(f.path for f in listed if f.sha256 is None and is_weight_name(f.path))
    if outside:
        more = f" and {len(outside) - 3} more" if len(outside) > 3 else ""
        raise SourceError(
            Reason.WEIGHTS_OUTSIDE_LFS,
            f"{client.uri} stores {', '.join(repr(printable(p, 100)) for p in outside[:3])}{more} in git, not "
            "LFS, under names of weights or pickled objects: such files would be downloaded before any "
            "decision; store them in LFS (git lfs track) and push again",
        )
    chosen = [f for f in listed if f.sha256 is None or f.path in wanted]
    total = sum(f.size for f in chosen)
    if total > max_bytes or len(chosen) > max_count:
        largest = sorted(chosen, key=lambda f: f.size, reverse=True)[:3]
        named = ", ".join(f"{printable(f.path, 80)!r} ({f.size} bytes)" for f in largest)
        raise SourceError(
            Reason.RESPONSE_TOO_LARGE,
            f"{client.uri} needs {len(chosen)} files with {total} bytes downloaded before the decision "
            f"(the small git files, README.md, {OPENNESS_FILE} and the bundle), more than the budget of "
            f"{max_count} files and {max_bytes} bytes; the largest: {named}. Store large files in LFS",
        )
    return chosen


def _check_canonical_id(client: HubClient, info: Mapping[str, Any]) -> str:
    """The repository id the Hub answered; one that is not the requested id up to case is refused.

    The Hub answers a renamed repository under its new name: following it silently would examine
    (and later pull) a source no one named.
    """
    answered = info.get("id")
    if not isinstance(answered, str):
        raise client.malformed("model information", "no repository id")
    if answered.casefold() != client.repo_id.casefold():
        raise SourceError(
            Reason.SOURCE_REDIRECTED,
            f"spec.source.uri names {client.uri!r} but {client.endpoint} answered for "
            f"{printable(repr(answered), 120)}: the repository was renamed or moved; put the current name in "
            "spec.source.uri after reviewing it",
        )
    try:
        return check_repo_id(answered, "the repository id the Hub answered")
    except SourceError as exc:
        raise client.malformed("model information", "the repository id it answered is not valid") from exc


def resolve_hub(
    uri_or_repo_id: str,
    revision: str = "main",
    endpoint: str | None = None,
    token: str | None = None,
    signature_path: str = "model.sig",
    *,
    max_files: int = DEFAULT_MAX_FILES,
    max_file_size: int = DEFAULT_MAX_FILE_SIZE,
    timeout: float = DEFAULT_TIMEOUT,
    deadline: float | Deadline | None = None,
    request_deadline: float = DEFAULT_REQUEST_DEADLINE,
    max_predecision_bytes: int = MAX_PREDECISION_BYTES,
    max_predecision_files: int = MAX_PREDECISION_FILES,
) -> ResolvedSource:
    """Pin ``revision`` of a Hub model to its commit and list every file with size and sha256.

    Only the token passed in is used (a token saved on the machine is ignored), so what the
    operator can read never depends on where it runs. Small git files, README.md, openness.yaml
    and the bundle are downloaded (within ``max_predecision_bytes``) and checked against the
    listing; LFS files (the weights) are not downloaded at all. ``deadline`` bounds the whole
    resolution (seconds, or a Deadline shared with ``fetch_file``; default DEFAULT_DEADLINE),
    ``request_deadline`` each request, ``timeout`` each connect and read.
    """
    repo_id = parse_hf_uri(uri_or_repo_id) if "://" in uri_or_repo_id else check_repo_id(uri_or_repo_id)
    check_revision(revision)
    check_relative_path(signature_path, "the signature path setting")
    limit = Deadline.of(deadline)
    client = HubClient(check_endpoint(endpoint), repo_id, revision, token, timeout, limit, request_deadline)

    info = _model_info(client, revision)
    commit = info.get("sha")
    if not isinstance(commit, str) or not _HEX40.fullmatch(commit):
        raise client.malformed("model information", "no 40-hex commit sha")
    if _HEX40.fullmatch(revision.lower()) and revision.lower() != commit:
        raise client.malformed("model information", f"commit {revision} was answered with commit {commit}")
    client = dataclasses.replace(client, repo_id=_check_canonical_id(client, info))
    log.debug("resolved %s@%s to %s on %s", client.uri, revision, commit, client.endpoint)

    listed = _list_files(client, commit, max_files, max_file_size)
    by_path = {f.path: f for f in listed}
    for name, what, cap in (
        (signature_path, "the signature bundle", MAX_METADATA_BYTES),
        (OPENNESS_FILE, OPENNESS_FILE, MAX_DECLARATION_BYTES),
    ):
        entry = by_path.get(name)
        if entry is not None and entry.size > cap:
            raise SourceError(
                Reason.FILE_TOO_LARGE,
                f"{what} {name!r} in {client.uri} is {entry.size} bytes, more than {cap}: "
                "keep metadata files small",
            )

    keep = {OPENNESS_FILE, signature_path}  # read anyway to hash them: keep the bytes
    readme_entry = by_path.get(README_FILE)
    if readme_entry is not None and readme_entry.size <= MAX_METADATA_BYTES:
        keep.add(README_FILE)  # a larger card is hashed but not kept (its license then counts as unknown)
    to_fetch = _predecision_files(client, listed, keep, max_predecision_bytes, max_predecision_files)
    with ThreadPoolExecutor(max_workers=SMALL_FILE_WORKERS) as pool:
        futures = [
            pool.submit(_download_checked, client, commit, f.path, f.size, f.git_oid, f.sha256, f.path in keep)
            for f in to_fetch
        ]
        try:
            fetched = [future.result() for future in futures]
        except BaseException:
            pool.shutdown(cancel_futures=True)  # one failure decides: do not fetch thousands more
            raise
    digests = {f.path: f.sha256 for f in listed if f.sha256 is not None}
    declaration: dict[str, Any] | None = None
    bundle: bytes | None = None
    openness_bytes: bytes | None = None
    readme: bytes | None = None
    for f, (digest, data) in zip(to_fetch, fetched, strict=True):
        digests[f.path] = digest
        if data is not None and f.path == OPENNESS_FILE:
            openness_bytes = data
            declaration = load_yaml_mapping(data, f"{OPENNESS_FILE} in {client.uri}")
        elif data is not None and f.path == signature_path:
            bundle = data
        elif data is not None and f.path == README_FILE:
            readme = data

    files = tuple(sorted(FileEntry(path=f.path, size=f.size, sha256=digests[f.path]) for f in listed))
    return ResolvedSource(
        uri=client.uri,
        kind="hf",
        files=files,
        revision=commit,
        requested_revision=revision,
        repo_id=client.repo_id,
        endpoint=client.endpoint,
        card=card_metadata(readme) if readme is not None else {},  # never the endpoint's cardData
        openness_declaration=declaration,
        signature_bundle=bundle,
        openness_bytes=openness_bytes,
        readme=readme,
    )


def _model_info(client: HubClient, revision: str) -> dict[str, Any]:
    """The commit and canonical id of ``revision``; ``expand`` keeps the file list and card data out of it.

    ``cardData`` is not asked for: it is the endpoint's parse of the card, not bytes the signature
    or the pin covers, so it is never evidence.
    """
    what = "model information"
    info, _ = client.get_json(
        f"{client.endpoint}/api/models/{client.repo_id}/revision/{quote(revision, safe='')}",
        what,
        params=(("expand", "sha"),),
        max_bytes=MAX_INFO_BYTES,
        max_tokens=MAX_INFO_TOKENS,
    )
    if not isinstance(info, dict):
        raise client.malformed(what, "not an object")
    return info


def client_for(
    resolved: ResolvedSource,
    token: str | None,
    timeout: float = DEFAULT_TIMEOUT,
    deadline: float | Deadline | None = None,
) -> tuple[HubClient, str]:
    """A client for a resolved ``hf`` source and its pinned commit (refusing anything not pinned)."""
    if resolved.kind != "hf" or not resolved.repo_id or not resolved.endpoint:
        raise SourceError(Reason.INVALID_SOURCE, f"{resolved.uri} is not a resolved Hugging Face source")
    commit = resolved.revision or ""
    if not _HEX40.fullmatch(commit):
        raise SourceError(
            Reason.INVALID_SOURCE,
            f"{resolved.uri} is not pinned to a 40-hex commit ({commit!r}): resolve it before fetching files",
        )
    limit = None if deadline is None else Deadline.of(deadline)
    return HubClient(resolved.endpoint, resolved.repo_id, commit, token, timeout, limit), commit


def fetch_file(
    resolved: ResolvedSource,
    path: str,
    token: str | None = None,
    max_bytes: int = MAX_METADATA_BYTES,
    timeout: float = DEFAULT_TIMEOUT,
    deadline: float | Deadline | None = None,
) -> bytes:
    """The bytes of one small file (the signature bundle) at the pinned commit, at most ``max_bytes``.

    The file must be one of ``resolved.files`` (check that first to report a missing signature):
    its bytes are checked against the listed size and sha256, so what is verified is exactly what
    the manifest names. Local and PVC sources are read from their directory.
    """
    check_relative_path(path, resolved.uri)
    listed = next((f for f in resolved.files if f.path == path), None)
    if listed is None:
        raise SourceError(Reason.INVALID_SOURCE, f"{path!r} is not a file of {resolved.uri}")
    if listed.size > max_bytes:
        raise SourceError(
            Reason.FILE_TOO_LARGE, f"{path!r} in {resolved.uri} is {listed.size} bytes, more than {max_bytes}"
        )
    if resolved.kind == "hf":
        client, commit = client_for(resolved, token, timeout, Deadline.of(deadline))
        _, data = _download_checked(client, commit, path, listed.size, None, listed.sha256, keep=True)
        assert data is not None
        return data
    root = local_root(resolved)
    if root is None:
        raise SourceError(Reason.INVALID_SOURCE, f"{resolved.uri} has no local directory to read {path!r} from")
    data = read_beneath(root, path, max_bytes)
    if hashlib.sha256(data).hexdigest() != listed.sha256:
        raise SourceError(
            Reason.PULLED_DIGEST_MISMATCH, f"{path!r} in {resolved.uri} changed since the directory was resolved"
        )
    return data


__all__ = [
    "DEFAULT_ENDPOINT",
    "Deadline",
    "HubClient",
    "Watchdog",
    "check_endpoint",
    "check_repo_id",
    "check_revision",
    "client_for",
    "fetch_file",
    "is_weight_name",
    "parse_hf_uri",
    "resolve_hub",
]
