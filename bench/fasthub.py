"""The tests' Hub stand-in, with file digests computed once (fit for gigabyte files)."""

from __future__ import annotations

import dataclasses
import functools
import hashlib
from collections.abc import Mapping

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
