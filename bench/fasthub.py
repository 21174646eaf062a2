"""The tests' Hub stand-in, with file digests computed once (fit for gigabyte files)."""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib
import json
import pathlib
import subprocess
import sys
from collections.abc import Iterator, Mapping

import benchlib  # noqa: F401  (puts tests/ and operator/ on sys.path)

from hubstub import Blob, HubStub

README = b"---\nlicense: apache-2.0\ndatasets: [example/corpus]\n---\n# bench model\n"


@dataclasses.dataclass(frozen=True)
class CachedBlob(Blob):
    """A Blob whose sha256 is computed once.

    ``tests/hubstub.py`` recomputes ``Blob.sha256`` on every access (the redirect URL, the ETags, the
    CDN answer): harmless for test files of a few KB, but four full hashes of a 500 MB shard per
    download on a two-core machine would steal a core from the client under measurement.
    """

    @functools.cached_property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()


def add_model_cached(hub: HubStub, repo_id: str, files: Mapping[str, bytes]) -> str:
    """``hub.add_model`` with digests cached per blob (see CachedBlob); returns the commit."""
    sha = hub.add_model(repo_id, files)
    commit = hub.repos[repo_id].commits[sha]
    commit.files = {path: CachedBlob(data=blob.data, lfs=blob.lfs) for path, blob in commit.files.items()}
    commit.tree_cache = None
    return sha


def read_tree(directory: pathlib.Path) -> dict[str, bytes]:
    """Every file below ``directory`` by its relative path: a model as the stand-in serves it."""
    return {p.relative_to(directory).as_posix(): p.read_bytes() for p in sorted(directory.rglob("*")) if p.is_file()}


@dataclasses.dataclass(frozen=True)
class Served:
    """Where a model is served: what the pull variants need of a Hub (its URL and the commit)."""

    url: str
    commit: str


@contextlib.contextmanager
def hub_process(model_dir: pathlib.Path, repo_id: str) -> Iterator[Served]:
    """The Hub stand-in serving ``model_dir`` from a process of its own, as a real Hub is: the client under
    measurement then shares no interpreter lock with the server (in one process, every chunk the server
    sends and every chunk the client hashes take turns on the same lock). The two still share the cores."""
    proc = subprocess.Popen(
        [sys.executable, __file__, str(model_dir), repo_id],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if not line:
            raise RuntimeError(f"the Hub process exited ({proc.wait()}) before serving")
        where = json.loads(line)
        yield Served(url=str(where["url"]), commit=str(where["commit"]))
    finally:
        if proc.stdin is not None:
            proc.stdin.close()  # the server's signal to stop
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _serve(model_dir: pathlib.Path, repo_id: str) -> None:
    files = read_tree(model_dir)
    hub = HubStub().start()
    try:
        commit = add_model_cached(hub, repo_id, files)
        del files
        for blob in hub.repos[repo_id].commits[commit].files.values():
            _ = blob.sha256  # computed once here, not during the first measured request
        print(json.dumps({"url": hub.url, "commit": commit}), flush=True)
        sys.stdin.read()  # until the benchmark closes our stdin (or exits)
    finally:
        hub.stop()


if __name__ == "__main__":
    _serve(pathlib.Path(sys.argv[1]), sys.argv[2])
