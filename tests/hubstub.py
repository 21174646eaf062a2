"""An offline stand-in for the Hugging Face Hub, for tests.

It speaks the part of the Hub HTTP API that huggingface_hub 2.x and our adapters use, read from
huggingface_hub's own client code:

- ``GET /api/models/{repo}[/revision/{rev}]`` (``model_info``; ``?blobs=true`` adds sizes and LFS
  data to ``siblings``; ``?expand=...`` returns only the listed properties),
- ``GET /api/models/{repo}/tree/{rev}[/{path}]?recursive=...`` (``list_repo_tree``; paginated with a
  ``Link: <...>; rel="next"`` header, 1000 entries a page as on the Hub),
- ``POST /api/models/{repo}/paths-info/{rev}`` (``get_paths_info``),
- ``GET /api/models/{repo}/refs`` (``list_repo_refs``),
- ``GET|HEAD /{repo}/resolve/{rev}/{path}`` (``hf_hub_download``): small files are served directly
  with ``ETag`` = git blob id; LFS files answer 302 to a "CDN" on another origin (``localhost``
  instead of ``127.0.0.1``, so clients drop the Authorization header as they do on the Hub) with
  ``X-Linked-Etag`` = sha256 and ``X-Linked-Size``. ``X-Repo-Commit`` is always sent,
  ``X-Xet-Hash`` never (so huggingface_hub stays on plain HTTP).

Errors carry the headers huggingface_hub maps to its exceptions: ``X-Error-Code: RepoNotFound``,
``RevisionNotFound``, ``EntryNotFound`` or ``GatedRepo``. Private repositories answer 401 without a
valid ``Authorization: Bearer`` token (like the Hub, without revealing whether they exist); an
invalid token answers 401 "Invalid credentials in Authorization header" everywhere.

Tests inject faults per file (corrupt, truncate, drop the connection), rewrite listings to play a
hostile server, and count downloads per file.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import hashlib
import itertools
import json
import re
import sys
import threading
import traceback
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal
from urllib.parse import parse_qs, unquote, urlencode, urlsplit

import pytest
import yaml

FaultKind = Literal["corrupt", "truncate", "drop"]
ListingHook = Callable[[str, list[dict[str, Any]]], list[dict[str, Any]]]
# Plays a hostile server: called first for every request with the handler; True = it answered.
Override = Callable[["_Handler"], bool]

DEFAULT_TOKEN = "hf_stub_token_0123456789"
DEFAULT_LFS_PATTERNS = ("*.safetensors", "*.bin", "*.gguf", "*.pt", "*.pth", "*.onnx", "*.h5", "*.msgpack")
PAGE_SIZE = 1000
_FRONT_MATTER = re.compile(r"^(\s*---[\r\n]+)([\S\s]*?)([\r\n]+---(\r\n|\n|$))")


def git_blob_oid(data: bytes) -> str:
    """The git object id of a blob, which the Hub reports as ``oid``/``blobId`` and ETag of small files."""
    return hashlib.sha1(b"blob %d\x00" % len(data) + data).hexdigest()  # git's own id


@dataclasses.dataclass(frozen=True)
class Blob:
    """One file's content and the identifiers the Hub derives from it."""

    data: bytes
    lfs: bool

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()

    @property
    def pointer(self) -> bytes:
        return f"version https://git-lfs.github.com/spec/v1\noid sha256:{self.sha256}\nsize {len(self.data)}\n".encode()

    @property
    def oid(self) -> str:
        return git_blob_oid(self.pointer if self.lfs else self.data)


@dataclasses.dataclass
class Commit:
    """A full snapshot of a repository: every file, and the card metadata the Hub parsed from it."""

    sha: str
    files: dict[str, Blob]
    card: dict[str, Any] | None
    tree_cache: list[dict[str, Any]] | None = None


@dataclasses.dataclass
class Repo:
    """A repository with its commits, branches and tags."""

    repo_id: str
    private: bool
    gated: bool
    commits: dict[str, Commit] = dataclasses.field(default_factory=dict)
    branches: dict[str, str] = dataclasses.field(default_factory=dict)
    tags: dict[str, str] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class Fault:
    """A fault applied to the next ``times`` downloads of a file (every download when None)."""

    kind: FaultKind
    times: int | None


class HubError(Exception):
    """An error answer with the Hub's error headers."""

    def __init__(self, status: int, code: str | None, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def _card_from_readme(files: Mapping[str, bytes]) -> dict[str, Any] | None:
    readme = files.get("README.md")
    if readme is None:
        return None
    match = _FRONT_MATTER.search(readme.decode("utf-8", "replace"))
    if match is None:
        return None
    loaded = yaml.safe_load(match.group(2))
    return loaded if isinstance(loaded, dict) else None


class HubStub:
    """In-memory Hub on ``127.0.0.1`` with a random port; use as a context manager or the ``hub`` fixture."""

    def __init__(self, tokens: tuple[str, ...] = (DEFAULT_TOKEN,), lfs_redirect: bool = True) -> None:
        self.tokens = set(tokens)
        self.lfs_redirect = lfs_redirect
        self.repos: dict[str, Repo] = {}
        self.faults: dict[tuple[str, str], Fault] = {}
        self.listing_hook: ListingHook | None = None
        self.page_size = PAGE_SIZE
        self.next_link_base: str | None = None  # set to another origin to play a hostile paginator
        self.override: Override | None = None  # answer some requests as a hostile server would
        self.bytes_served = 0  # body bytes sent, all requests together
        self.request_headers: list[tuple[str, dict[str, str]]] = []  # (path, headers) of every request
        self.downloads: Counter[tuple[str, str]] = Counter()
        self.requests: Counter[str] = Counter()
        self.request_log: list[tuple[str, str]] = []
        self.server_errors: list[str] = []  # tracebacks of requests the stub itself failed on
        self._lock = threading.Lock()
        self._counter = itertools.count(1)
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ----------------------------------------------------------------- lifecycle

    @property
    def token(self) -> str:
        """A token the stub accepts for private and gated repositories."""
        return sorted(self.tokens)[0]

    @property
    def port(self) -> int:
        assert self._server is not None, "the stub is not started"
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        """The endpoint to give to HfApi(endpoint=...) or resolve_hub(endpoint=...)."""
        return f"http://127.0.0.1:{self.port}"

    endpoint = url

    @property
    def cdn_url(self) -> str:
        """Same server under another origin, so clients treat LFS redirects as off-Hub."""
        return f"http://localhost:{self.port}"

    def start(self) -> HubStub:
        handler = type("BoundHandler", (_Handler,), {"stub": self})
        self._server = _QuietServer(("127.0.0.1", 0), handler)
        self._server.errors = self.server_errors
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, name="hubstub", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> HubStub:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ----------------------------------------------------------------- content

    def add_model(
        self,
        repo_id: str,
        files: Mapping[str, bytes],
        branch: str = "main",
        private: bool = False,
        card_metadata: Mapping[str, Any] | None = None,
        lfs_threshold: int = 10 * 1024 * 1024,
        lfs_patterns: tuple[str, ...] = DEFAULT_LFS_PATTERNS,
        gated: bool = False,
        tag: str | None = None,
    ) -> str:
        """Create the repository, or add a commit to it, and point ``branch`` (and ``tag``) at it.

        Each call is a full snapshot: the new commit holds exactly ``files``. A file is stored in
        LFS when it is at least ``lfs_threshold`` bytes or matches ``lfs_patterns``. The card
        metadata defaults to the YAML front matter of ``README.md``, as on the Hub.
        Returns the new commit's 40-hex sha.
        """
        with self._lock:
            repo = self.repos.get(repo_id)
            if repo is None:
                repo = self.repos[repo_id] = Repo(repo_id=repo_id, private=private, gated=gated)
            blobs = {
                path: Blob(
                    data=bytes(data),
                    lfs=len(data) >= lfs_threshold
                    or any(fnmatch.fnmatchcase(path.rsplit("/", 1)[-1], p) for p in lfs_patterns),
                )
                for path, data in files.items()
            }
            seed = f"{repo_id}\n{next(self._counter)}\n" + "\n".join(
                f"{path} {blob.oid}" for path, blob in sorted(blobs.items())
            )
            sha = hashlib.sha1(seed.encode()).hexdigest()  # a commit id, like git's
            card = dict(card_metadata) if card_metadata is not None else _card_from_readme(files)
            repo.commits[sha] = Commit(sha=sha, files=blobs, card=card)
            repo.branches[branch] = sha
            if tag is not None:
                repo.tags[tag] = sha
            return sha

    commit = add_model

    def set_branch(self, repo_id: str, branch: str, sha: str) -> None:
        """Move (or create) a branch to an existing commit, as a force-push upstream would."""
        with self._lock:
            repo = self.repos[repo_id]
            assert sha in repo.commits, f"unknown commit {sha}"
            repo.branches[branch] = sha

    def set_tag(self, repo_id: str, tag: str, sha: str) -> None:
        """Create or move a tag."""
        with self._lock:
            repo = self.repos[repo_id]
            assert sha in repo.commits, f"unknown commit {sha}"
            repo.tags[tag] = sha

    def rewrite_file(self, repo_id: str, sha: str, path: str, data: bytes) -> None:
        """Serve other bytes for a file of an existing commit: a compromised mirror, for tamper tests."""
        with self._lock:
            commit = self.repos[repo_id].commits[sha]
            commit.files[path] = dataclasses.replace(commit.files[path], data=bytes(data))
            commit.tree_cache = None

    def inject_fault(self, repo_id: str, path: str, kind: FaultKind = "corrupt", times: int | None = None) -> None:
        """Damage downloads of one file: flip a byte, send half with a matching length, or hang up midway."""
        with self._lock:
            self.faults[(repo_id, path)] = Fault(kind=kind, times=times)

    def clear_faults(self) -> None:
        with self._lock:
            self.faults.clear()

    def download_count(self, repo_id: str, path: str) -> int:
        """How many times the content of ``path`` was requested (GET, either from /resolve or the CDN)."""
        with self._lock:
            return self.downloads[(repo_id, path)]

    def total_downloads(self) -> int:
        with self._lock:
            return sum(self.downloads.values())

    # ----------------------------------------------------------------- lookups used by the handler

    def _authorize(self, repo: Repo | None, auth: str | None, for_download: bool) -> None:
        token = auth[len("Bearer ") :] if auth and auth.startswith("Bearer ") else None
        if auth is not None and token not in self.tokens:
            raise HubError(401, None, "Invalid credentials in Authorization header")
        if repo is None:
            return
        if repo.private and token is None:
            raise HubError(401, "RepoNotFound", "Repository not found")
        if repo.gated and for_download and token is None:
            raise HubError(401, "GatedRepo", f"Access to model {repo.repo_id} is restricted.")

    def _repo(self, repo_id: str) -> Repo:
        repo = self.repos.get(repo_id)
        if repo is None:
            raise HubError(404, "RepoNotFound", "Repository not found")
        return repo

    def _commit(self, repo: Repo, revision: str) -> Commit:
        sha = repo.branches.get(revision) or repo.tags.get(revision)
        if sha is None and revision in repo.commits:
            sha = revision
        if sha is None:
            raise HubError(404, "RevisionNotFound", f"Invalid rev id: {revision}")
        return repo.commits[sha]

    def _tree(self, repo: Repo, commit: Commit, hooked: bool = True) -> list[dict[str, Any]]:
        if commit.tree_cache is None:
            entries: list[dict[str, Any]] = []
            folders: set[str] = set()
            for path, blob in sorted(commit.files.items()):
                parts = path.split("/")
                for i in range(1, len(parts)):
                    folder = "/".join(parts[:i])
                    if folder and folder not in folders:
                        folders.add(folder)
                        entries.append(
                            {"type": "directory", "oid": git_blob_oid(folder.encode()), "size": 0, "path": folder}
                        )
                entry: dict[str, Any] = {"type": "file", "oid": blob.oid, "size": len(blob.data), "path": path}
                if blob.lfs:
                    entry["lfs"] = {"oid": blob.sha256, "size": len(blob.data), "pointerSize": len(blob.pointer)}
                entries.append(entry)
            commit.tree_cache = entries
        entries = [dict(entry) for entry in commit.tree_cache]
        return self.listing_hook(repo.repo_id, entries) if self.listing_hook and hooked else entries

    def _take_fault(self, repo_id: str, path: str) -> Fault | None:
        with self._lock:
            self.downloads[(repo_id, path)] += 1
            fault = self.faults.get((repo_id, path))
            if fault is None:
                return None
            if fault.times is not None:
                fault.times -= 1
                if fault.times <= 0:
                    del self.faults[(repo_id, path)]
            return fault


def _split_repo(stub: HubStub, segments: list[str]) -> tuple[str, list[str]]:
    """Split ``org/name/rest...`` or ``name/rest...`` into the repo id and the rest."""
    if len(segments) >= 2 and f"{segments[0]}/{segments[1]}" in stub.repos:
        return f"{segments[0]}/{segments[1]}", segments[2:]
    if segments and segments[0] in stub.repos:
        return segments[0], segments[1:]
    raise HubError(404, "RepoNotFound", "Repository not found")


class _QuietServer(ThreadingHTTPServer):
    """Keeps a failed request's traceback in ``errors`` instead of printing it.

    socketserver prints to the process's stderr, which is where the CLI tests read what a user
    sees; a client that hangs up mid-answer (a test's client gives up, a pool closes) is no
    error of the code under test.
    """

    errors: list[str]

    def handle_error(self, request: Any, client_address: Any) -> None:
        error = sys.exc_info()[1]
        if isinstance(error, ConnectionError):
            return  # the client hung up: no answer is owed
        self.errors.append(traceback.format_exc())


class _Handler(BaseHTTPRequestHandler):
    stub: HubStub
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out as separate writes

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: tests read the counters instead."""

    # ----------------------------------------------------------------- plumbing

    def _send(self, status: int, body: bytes, headers: Mapping[str, str], head: bool = False) -> None:
        self.send_response(status)
        for key, value in headers.items():
            self.send_header(key, value)
        if "Content-Length" not in headers:
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if not head:
            self.wfile.write(body)
            with self.stub._lock:
                self.stub.bytes_served += len(body)

    def _json(self, payload: Any, extra: Mapping[str, str] | None = None) -> None:
        body = json.dumps(payload).encode()
        self._send(200, body, {"Content-Type": "application/json", **(extra or {})}, self.command == "HEAD")

    def _error(self, error: HubError, commit: str | None = None) -> None:
        headers = {"Content-Type": "application/json", "X-Error-Message": error.message}
        if error.code:
            headers["X-Error-Code"] = error.code
        if commit:
            headers["X-Repo-Commit"] = commit
        self._send(error.status, json.dumps({"error": error.message}).encode(), headers, self.command == "HEAD")

    def _dispatch(self) -> None:
        stub = self.stub
        split = urlsplit(self.path)
        with stub._lock:
            stub.requests[split.path] += 1
            stub.request_log.append((self.command, self.path))
            stub.request_headers.append((self.path, dict(self.headers.items())))
        segments = [unquote(s) for s in split.path.split("/")[1:]]
        query = parse_qs(split.query)
        try:
            if stub.override is not None and stub.override(self):
                return
            if segments[:2] == ["api", "models"]:
                self._api(segments[2:], query)
            elif segments and segments[0] == "_cdn":
                self._cdn(segments[1] if len(segments) > 1 else "", query)
            elif "resolve" in segments:
                self._resolve(split.path)
            else:
                raise HubError(404, None, "Not found")
        except HubError as error:
            self._error(error)
        except (BrokenPipeError, ConnectionResetError):
            pass
        except Exception as exc:  # a stub bug or a hook's odd data: answer like a failing server
            self._error(HubError(500, None, f"stub error: {type(exc).__name__}"))

    def do_GET(self) -> None:
        self._dispatch()

    def do_HEAD(self) -> None:
        self._dispatch()

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self._body = self.rfile.read(length) if length else b""
        self._dispatch()

    # ----------------------------------------------------------------- API routes

    def _api(self, segments: list[str], query: dict[str, list[str]]) -> None:
        stub = self.stub
        auth = self.headers.get("Authorization")
        stub._authorize(None, auth, for_download=False)
        repo_id, rest = _split_repo(stub, segments)
        repo = stub._repo(repo_id)
        stub._authorize(repo, auth, for_download=False)
        if not rest or rest[0] == "revision":
            commit = stub._commit(repo, rest[1] if len(rest) > 1 else "main")
            self._json(self._model_info(repo, commit, query))
        elif rest[0] == "tree" and len(rest) >= 2:
            commit = stub._commit(repo, rest[1])
            self._tree_page(repo, commit, "/".join(rest[2:]), query)
        elif rest[0] == "paths-info" and len(rest) == 2 and self.command == "POST":
            commit = stub._commit(repo, rest[1])
            form = parse_qs(getattr(self, "_body", b"").decode())
            wanted = set(form.get("paths", []))
            self._json([e for e in stub._tree(repo, commit) if e["path"] in wanted])
        elif rest == ["refs"]:
            self._json(
                {
                    "branches": [
                        {"name": n, "ref": f"refs/heads/{n}", "targetCommit": s} for n, s in repo.branches.items()
                    ],
                    "tags": [{"name": n, "ref": f"refs/tags/{n}", "targetCommit": s} for n, s in repo.tags.items()],
                    "converts": [],
                }
            )
        else:
            raise HubError(404, None, "Not found")

    def _model_info(self, repo: Repo, commit: Commit, query: dict[str, list[str]]) -> dict[str, Any]:
        stub = self.stub
        blobs = query.get("blobs", ["false"])[0].lower() == "true"
        entries = [e for e in stub._tree(repo, commit, hooked=False) if e.get("type") == "file"]
        siblings: list[dict[str, Any]] = []
        for entry in entries:
            sibling: dict[str, Any] = {"rfilename": entry["path"]}
            if blobs:
                sibling["size"] = entry["size"]
                sibling["blobId"] = entry["oid"]
                if entry.get("lfs"):
                    lfs = entry["lfs"]
                    sibling["lfs"] = {"sha256": lfs["oid"], "size": lfs["size"], "pointerSize": lfs["pointerSize"]}
            siblings.append(sibling)
        card = commit.card or {}
        tags = [str(t) for t in card.get("tags", []) or []] if isinstance(card.get("tags"), list) else []
        if isinstance(card.get("license"), str):
            tags.append(f"license:{card['license']}")
        info: dict[str, Any] = {
            "_id": hashlib.md5(repo.repo_id.encode()).hexdigest()[:24],  # an opaque id
            "id": repo.repo_id,
            "modelId": repo.repo_id,
            "author": repo.repo_id.split("/")[0] if "/" in repo.repo_id else None,
            "sha": commit.sha,
            "lastModified": "2025-01-01T00:00:00.000Z",
            "createdAt": "2025-01-01T00:00:00.000Z",
            "private": repo.private,
            "gated": "auto" if repo.gated else False,
            "disabled": False,
            "downloads": 0,
            "likes": 0,
            "tags": tags,
            "siblings": siblings,
            "usedStorage": sum(e["size"] for e in entries),
        }
        if commit.card is not None:
            info["cardData"] = commit.card
        expand = query.get("expand") or query.get("expand[]")
        if expand:
            info = {k: v for k, v in info.items() if k in ("_id", "id") or k in expand}
        return info

    def _tree_page(self, repo: Repo, commit: Commit, prefix: str, query: dict[str, list[str]]) -> None:
        recursive = query.get("recursive", ["false"])[0].lower() == "true"
        entries = self.stub._tree(repo, commit)
        if prefix:
            entries = [e for e in entries if str(e.get("path", "")).startswith(prefix + "/")]
        base_depth = prefix.count("/") + 1 if prefix else 0
        if not recursive:
            entries = [e for e in entries if str(e.get("path", "")).count("/") == base_depth]
        cursor = int(query.get("cursor", ["0"])[0])
        page = entries[cursor : cursor + self.stub.page_size]
        headers: dict[str, str] = {}
        if cursor + self.stub.page_size < len(entries):
            params = {k: v[0] for k, v in query.items() if k != "cursor"}
            params["cursor"] = str(cursor + self.stub.page_size)
            base = self.stub.next_link_base or f"http://{self.headers.get('Host') or f'127.0.0.1:{self.stub.port}'}"
            next_url = f"{base}{urlsplit(self.path).path}?{urlencode(params)}"
            headers["Link"] = f'<{next_url}>; rel="next"'
        self._json(page, headers)

    # ----------------------------------------------------------------- file routes

    def _resolve(self, raw_path: str) -> None:
        stub = self.stub
        raw = raw_path.split("/")[1:]
        index = raw.index("resolve")
        repo_id = "/".join(unquote(s) for s in raw[:index])
        if index + 1 >= len(raw):
            raise HubError(404, None, "Not found")
        revision = unquote(raw[index + 1])
        path = unquote("/".join(raw[index + 2 :]))
        auth = self.headers.get("Authorization")
        stub._authorize(None, auth, for_download=True)
        repo = stub._repo(repo_id)
        stub._authorize(repo, auth, for_download=True)
        commit = stub._commit(repo, revision)
        blob = commit.files.get(path)
        if blob is None:
            self._error(HubError(404, "EntryNotFound", f"{path} does not exist on {revision}"), commit.sha)
            return
        common = {"X-Repo-Commit": commit.sha, "Accept-Ranges": "bytes", "Access-Control-Expose-Headers": "*"}
        if blob.lfs and stub.lfs_redirect:
            location = f"{stub.cdn_url}/_cdn/{blob.sha256}?" + urlencode(
                {"repo": repo_id, "path": path, "sig": hashlib.sha256(f"{repo_id}{path}".encode()).hexdigest()[:16]}
            )
            headers = {
                **common,
                "Location": location,
                "ETag": f'"{blob.oid}"',
                "X-Linked-Etag": f'"{blob.sha256}"',
                "X-Linked-Size": str(len(blob.data)),
                "Content-Type": "text/plain; charset=utf-8",
            }
            self._send(302, b"Found. Redirecting", headers, self.command == "HEAD")
            return
        etag = blob.sha256 if blob.lfs else blob.oid
        headers = {**common, "ETag": f'"{etag}"'}
        if blob.lfs:
            headers["X-Linked-Etag"] = f'"{blob.sha256}"'
            headers["X-Linked-Size"] = str(len(blob.data))
        self._content(repo_id, path, blob, headers)

    def _cdn(self, sha256: str, query: dict[str, list[str]]) -> None:
        """The object named by its sha256 (as the Hub's CDN), not whatever a path held in some commit."""
        repo_id = query.get("repo", [""])[0]
        path = query.get("path", [""])[0]
        repo = self.stub.repos.get(repo_id)
        blob = None
        if repo is not None:
            blob = next(
                (
                    c.files[path]
                    for c in repo.commits.values()
                    if path in c.files and c.files[path].lfs and c.files[path].sha256 == sha256
                ),
                None,
            )
        if blob is None:
            raise HubError(404, None, "NoSuchKey")
        self._content(repo_id, path, blob, {"ETag": f'"{blob.sha256}"'})

    def _content(self, repo_id: str, path: str, blob: Blob, headers: dict[str, str]) -> None:
        """Serve bytes (with Range support), after applying any injected fault."""
        data = blob.data
        head = self.command == "HEAD"
        if head:
            self._send(200, b"", {**headers, "Content-Length": str(len(data))}, head=True)
            return
        fault = self.stub._take_fault(repo_id, path)
        status = 200
        range_header = self.headers.get("Range")
        match = re.fullmatch(r"bytes=(\d+)-(\d*)", range_header or "")
        if match:
            start = int(match.group(1))
            end = int(match.group(2)) if match.group(2) else len(data) - 1
            headers["Content-Range"] = f"bytes {start}-{end}/{len(data)}"
            data = data[start : end + 1]
            status = 206
        headers.setdefault("Content-Type", "application/octet-stream")
        if fault is None:
            self._send(status, data, headers)
        elif fault.kind == "corrupt":
            damaged = bytearray(data) or bytearray(b"\x00")
            damaged[len(damaged) // 2] ^= 0xFF
            self._send(status, bytes(damaged), headers)
        elif fault.kind == "truncate":
            self._send(status, data[: len(data) // 2], headers)
        else:  # drop: promise everything, send half, hang up
            self._send(status, data[: len(data) // 2], {**headers, "Content-Length": str(len(data))})
            self.close_connection = True


@pytest.fixture(name="hub")
def hub_stub() -> Iterator[HubStub]:
    """The ``hub`` fixture: a started HubStub, stopped after the test.

    The function is named ``hub_stub`` so that importing it (``from hubstub import hub_stub``) does
    not shadow test parameters called ``hub``.
    """
    with HubStub() as stub:
        yield stub
    # a request the stub could not answer is a defect of the stand-in, not a result of the test
    assert not stub.server_errors, "the Hub stand-in failed on a request:\n" + "\n".join(stub.server_errors)


# Origins of the Hub stand-ins of the running test. They are mirrors, not the public Hub, so test policies
# allow them (spec.sources.endpoints.allow); a module opts in with
# ``pytestmark = pytest.mark.usefixtures("stub_origins_allowed")`` and reads ``STUB_ORIGINS``.
STUB_ORIGINS: list[str] = []


@pytest.fixture
def stub_origins_allowed(hub: HubStub) -> Iterator[list[str]]:
    """Fill ``STUB_ORIGINS`` with the ``hub`` stand-in's origin for the duration of a test."""
    STUB_ORIGINS[:] = [hub.url]
    yield STUB_ORIGINS
    STUB_ORIGINS.clear()
