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
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import io
import json
import logging
import re
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import quote, urlsplit

import httpx2
import huggingface_hub
from huggingface_hub import constants as hf_constants
from huggingface_hub import get_session

from openmodel_operator import __version__
from openmodel_operator.trust.directory import (
    DEFAULT_MAX_FILE_SIZE,
    DEFAULT_MAX_FILES,
    MAX_METADATA_BYTES,
    OPENNESS_FILE,
    README_FILE,
    check_no_path_conflicts,
    check_relative_path,
    load_yaml_mapping,
    local_root,
    read_beneath,
)
from openmodel_operator.trust.errors import SourceError
from openmodel_operator.trust.evidence import FileEntry, Reason, ResolvedSource

log = logging.getLogger(__name__)

Params = tuple[tuple[str, str], ...]

HF_SCHEME = "hf://"
DEFAULT_ENDPOINT = "https://huggingface.co"
DEFAULT_TIMEOUT = 30.0
MAX_SMALL_FILE = 10 * 1024 * 1024  # git (non-LFS) files we download to hash; the Hub itself caps them at 10 MB
MAX_JSON_BYTES = 64 * 1024 * 1024  # one model_info answer or one listing page
SMALL_FILE_WORKERS = 8
CHUNK = 1024 * 1024

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
    """One repository on one endpoint, with the token (never shown in repr or messages) and timeouts.

    It turns HTTP answers into ``SourceError`` with the reason the operator reports, so the
    resolver, ``fetch_file`` and the pull agree on what "not found" or "denied" means.
    """

    endpoint: str
    repo_id: str
    requested_revision: str | None = None
    token: str | None = dataclasses.field(default=None, repr=False)
    timeout: float = DEFAULT_TIMEOUT

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
            headers["Authorization"] = f"Bearer {self.token}"
        return headers

    def resolve_url(self, commit: str, path: str) -> str:
        """The ``/resolve`` URL of one file at one commit, quoted as huggingface_hub quotes it."""
        return f"{self.endpoint}/{self.repo_id}/resolve/{quote(commit, safe='')}/{quote(path)}"

    def http_timeout(self) -> httpx2.Timeout:
        return httpx2.Timeout(self.timeout, connect=min(self.timeout, 10.0))

    def status_error(self, response: httpx2.Response, what: str) -> SourceError:
        """The SourceError for a non-success answer to a request about ``what``."""
        status = response.status_code
        code = response.headers.get("X-Error-Code", "")
        server_message = response.headers.get("X-Error-Message", "")
        revision = self.requested_revision
        if code == "RevisionNotFound" and revision is not None:
            return SourceError(
                Reason.REVISION_NOT_FOUND,
                f"spec.source.revision {revision!r} was not found in {self.uri}: "
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
                    if server_message == "Invalid credentials in Authorization header" or status == 403
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
        if status == 429 or status >= 500:
            return SourceError(
                Reason.ENDPOINT_UNREACHABLE,
                f"the Hub endpoint {self.endpoint} answered HTTP {status} for {what} of {self.uri}: "
                "the Hub is busy or down, it will be retried",
            )
        return SourceError(
            Reason.INVALID_SOURCE,
            f"the Hub endpoint {self.endpoint} answered HTTP {status} for {what} of {self.uri}"
            + (f" ({server_message[:200]})" if server_message else "")
            + ": check spec.source.uri and the endpoint",
        )

    def transport_error(self, exc: Exception, what: str) -> SourceError:
        detail = str(exc).splitlines()[0][:200] if str(exc) else ""
        return SourceError(
            Reason.ENDPOINT_UNREACHABLE,
            f"the Hub endpoint {self.endpoint} could not be reached for {what} of {self.uri} "
            f"({type(exc).__name__}{': ' + detail if detail else ''}): check the endpoint URL, DNS, "
            "proxy and network policy",
        )

    @contextlib.contextmanager
    def stream(self, url: str, what: str, params: Params | None = None) -> Iterator[httpx2.Response]:
        """GET ``url`` streaming; redirects followed (the client drops the token when the origin changes).

        A request that fails before any answer arrived is sent once more: the shared client keeps idle
        connections, and a server (or mirror) may have closed one in the meantime.
        """
        with contextlib.ExitStack() as stack:
            for attempt in (1, 2):
                try:
                    response = stack.enter_context(
                        get_session().stream(
                            "GET",
                            url,
                            params=params,
                            headers=self.headers(),
                            timeout=self.http_timeout(),
                            follow_redirects=True,
                        )
                    )
                    break
                except (httpx2.ConnectError, httpx2.RemoteProtocolError, httpx2.ReadError) as exc:
                    if attempt == 2:
                        raise self.transport_error(exc, what) from exc
                except httpx2.TransportError as exc:
                    raise self.transport_error(exc, what) from exc
                except httpx2.InvalidURL as exc:
                    raise SourceError(
                        Reason.INVALID_SOURCE,
                        f"the URL for {what} of {self.uri} is invalid ({exc}): check the endpoint",
                    ) from exc
            if response.status_code >= 300:
                raise self.status_error(response, what)
            try:
                yield response
            except httpx2.TransportError as exc:
                raise self.transport_error(exc, what) from exc

    def chunks(self, response: httpx2.Response, what: str) -> Iterator[bytes]:
        """The body in chunks; a connection lost midway becomes ENDPOINT_UNREACHABLE."""
        try:
            yield from response.iter_bytes(chunk_size=CHUNK)
        except httpx2.TransportError as exc:
            raise self.transport_error(exc, what) from exc
        except httpx2.DecodingError as exc:
            raise SourceError(
                Reason.INVALID_SOURCE, f"the answer for {what} of {self.uri} could not be decoded ({exc})"
            ) from exc

    def get_json(self, url: str, what: str, params: Params | None = None) -> tuple[Any, str | None]:
        """A JSON answer (at most MAX_JSON_BYTES) and the ``rel="next"`` link, if any."""
        body = bytearray()
        with self.stream(url, what, params) as response:
            for chunk in self.chunks(response, what):
                body += chunk
                if len(body) > MAX_JSON_BYTES:
                    raise SourceError(
                        Reason.INVALID_SOURCE,
                        f"the Hub endpoint {self.endpoint} sent more than {MAX_JSON_BYTES} bytes for {what} "
                        f"of {self.uri}: it does not behave like a Hub",
                    )
            next_url = response.links.get("next", {}).get("url")
        try:
            return json.loads(body), next_url
        except ValueError as exc:
            raise self.malformed(what, "not JSON") from exc

    def malformed(self, what: str, detail: str) -> SourceError:
        return SourceError(
            Reason.INVALID_SOURCE,
            f"the Hub endpoint {self.endpoint} sent a malformed answer for {what} of {self.uri} ({detail}): "
            "check that spec.source points to a Hugging Face Hub",
        )


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
        page, next_url = client.get_json(url, what, params)
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
                raise client.malformed(what, f"an entry has type {str(kind)[:40]!r}")
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
    with client.stream(client.resolve_url(commit, path), what) as response:
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
) -> ResolvedSource:
    """Pin ``revision`` of a Hub model to its commit and list every file with size and sha256.

    Only the token passed in is used (a token saved on the machine is ignored), so what the
    operator can read never depends on where it runs. Small git files are downloaded to be
    hashed; LFS files (the weights) are not downloaded at all. The signature bundle is limited
    to MAX_METADATA_BYTES even though it is listed like any other file.
    """
    repo_id = parse_hf_uri(uri_or_repo_id) if "://" in uri_or_repo_id else check_repo_id(uri_or_repo_id)
    check_revision(revision)
    check_relative_path(signature_path, "the signature path setting")
    client = HubClient(check_endpoint(endpoint), repo_id, revision, token, timeout)

    info = _model_info(client, revision)
    commit = info.get("sha")
    if not isinstance(commit, str) or not _HEX40.fullmatch(commit):
        raise client.malformed("model information", "no 40-hex commit sha")
    if _HEX40.fullmatch(revision.lower()) and revision.lower() != commit:
        raise client.malformed("model information", f"commit {revision} was answered with commit {commit}")
    card_data = info.get("cardData")
    card: dict[str, Any] = dict(card_data) if isinstance(card_data, Mapping) else {}
    log.debug("resolved %s@%s to %s on %s", client.uri, revision, commit, client.endpoint)

    listed = _list_files(client, commit, max_files, max_file_size)
    by_path = {f.path: f for f in listed}
    signature = by_path.get(signature_path)
    if signature is not None and signature.size > MAX_METADATA_BYTES:
        raise SourceError(
            Reason.FILE_TOO_LARGE,
            f"the signature bundle {signature_path!r} in {client.uri} is {signature.size} bytes, more than "
            f"{MAX_METADATA_BYTES}: it is not a model-signing bundle",
        )
    declaration_file = by_path.get(OPENNESS_FILE)
    if declaration_file is not None and declaration_file.size > MAX_METADATA_BYTES:
        raise SourceError(
            Reason.FILE_TOO_LARGE,
            f"{OPENNESS_FILE} in {client.uri} is {declaration_file.size} bytes, more than {MAX_METADATA_BYTES}",
        )

    to_fetch = [f for f in listed if f.sha256 is None or f.path == OPENNESS_FILE]
    keep = {OPENNESS_FILE, README_FILE, signature_path}  # read anyway to hash: keep the bytes, not fetch twice
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
        if data is not None and f.path == README_FILE:
            readme = data
        if data is not None and f.path == OPENNESS_FILE:
            openness_bytes = data
            declaration = load_yaml_mapping(data, f"{OPENNESS_FILE} in {client.uri}")
        elif data is not None and f.path == signature_path:
            bundle = data

    files = tuple(sorted(FileEntry(path=f.path, size=f.size, sha256=digests[f.path]) for f in listed))
    return ResolvedSource(
        uri=client.uri,
        kind="hf",
        files=files,
        revision=commit,
        requested_revision=revision,
        repo_id=repo_id,
        endpoint=client.endpoint,
        card=card,
        openness_declaration=declaration,
        signature_bundle=bundle,
        openness_bytes=openness_bytes,
        readme=readme,
    )


def _model_info(client: HubClient, revision: str) -> dict[str, Any]:
    """The commit and card of ``revision``; ``expand`` keeps the file list (possibly huge) out of it."""
    what = "model information"
    info, _ = client.get_json(
        f"{client.endpoint}/api/models/{client.repo_id}/revision/{quote(revision, safe='')}",
        what,
        params=(("expand", "sha"), ("expand", "cardData")),
    )
    if not isinstance(info, dict):
        raise client.malformed(what, "not an object")
    return info


def client_for(resolved: ResolvedSource, token: str | None, timeout: float = DEFAULT_TIMEOUT) -> tuple[HubClient, str]:
    """A client for a resolved ``hf`` source and its pinned commit (refusing anything not pinned)."""
    if resolved.kind != "hf" or not resolved.repo_id or not resolved.endpoint:
        raise SourceError(Reason.INVALID_SOURCE, f"{resolved.uri} is not a resolved Hugging Face source")
    commit = resolved.revision or ""
    if not _HEX40.fullmatch(commit):
        raise SourceError(
            Reason.INVALID_SOURCE,
            f"{resolved.uri} is not pinned to a 40-hex commit ({commit!r}): resolve it before fetching files",
        )
    return HubClient(resolved.endpoint, resolved.repo_id, commit, token, timeout), commit


def fetch_file(
    resolved: ResolvedSource,
    path: str,
    token: str | None = None,
    max_bytes: int = MAX_METADATA_BYTES,
    timeout: float = DEFAULT_TIMEOUT,
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
        client, commit = client_for(resolved, token, timeout)
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
    "HubClient",
    "check_endpoint",
    "check_repo_id",
    "check_revision",
    "client_for",
    "fetch_file",
    "parse_hf_uri",
    "resolve_hub",
]
