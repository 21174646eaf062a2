"""resolve_hub and fetch_file against the offline Hub stand-in."""

from __future__ import annotations

import hashlib
import socket
import time
from pathlib import Path
from typing import Any

import pytest
from huggingface_hub import HfApi, hf_hub_download, snapshot_download
from huggingface_hub.errors import RemoteEntryNotFoundError, RepositoryNotFoundError, RevisionNotFoundError

from hubstub import HubStub, hub_stub  # noqa: F401 - hub_stub provides the `hub` fixture
from openmodel_operator.evidence.errors import SourceError
from openmodel_operator.evidence.records import Reason
from openmodel_operator.sources.directory import resolve_directory
from openmodel_operator.sources.hub import (
    MAX_SMALL_FILE,
    HubClient,
    check_endpoint,
    fetch_file,
    parse_hf_uri,
    resolve_hub,
)

README = b"""---
license: apache-2.0
datasets:
- org/corpus
base_model: org/base
tags: [text-generation, open]
---
# A model
"""

FILES: dict[str, bytes] = {
    "README.md": README,
    "config.json": b'{"hidden": 8}',
    "model.safetensors": bytes(range(256)) * 64,
    "tokenizer/vocab.txt": b"a\nb\nc\n",
    "big-git-file.bin.txt": b"z" * 5000,
    "model.sig": b'{"bundle": true}',
}


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def reason_of(exc: pytest.ExceptionInfo[SourceError]) -> Reason:
    return exc.value.reason


# ------------------------------------------------------------------ pinning and digests


def test_branch_is_pinned_to_commit_and_digests_match_bytes(hub: HubStub) -> None:
    commit = hub.add_model("org/model", FILES)
    resolved = resolve_hub("hf://org/model", endpoint=hub.url)
    assert resolved.revision == commit
    assert resolved.requested_revision == "main"
    assert resolved.repo_id == "org/model"
    assert resolved.uri == "hf://org/model"
    assert resolved.kind == "hf"
    assert resolved.endpoint == hub.url
    assert {f.path: (f.size, f.sha256) for f in resolved.files} == {
        path: (len(data), sha(data)) for path, data in FILES.items()
    }
    # weights are listed from LFS metadata, not downloaded; small git files are downloaded once to hash
    assert hub.download_count("org/model", "model.safetensors") == 0
    assert hub.download_count("org/model", "config.json") == 1


def test_repo_id_without_scheme_and_tag_and_commit(hub: HubStub) -> None:
    first = hub.add_model("org/model", {"a.txt": b"one"}, tag="v1")
    second = hub.add_model("org/model", {"a.txt": b"two"})
    assert resolve_hub("org/model", endpoint=hub.url).revision == second
    by_tag = resolve_hub("org/model", revision="v1", endpoint=hub.url)
    assert by_tag.revision == first
    assert by_tag.files[0].sha256 == sha(b"one")
    by_commit = resolve_hub("org/model", revision=first, endpoint=hub.url)
    assert by_commit.revision == first
    assert by_commit.requested_revision == first


def test_branch_moved_upstream_gives_a_new_pin(hub: HubStub) -> None:
    old = hub.add_model("org/model", {"w.safetensors": b"old"})
    assert resolve_hub("org/model", endpoint=hub.url).revision == old
    new = hub.add_model("org/model", {"w.safetensors": b"new"})
    moved = resolve_hub("org/model", endpoint=hub.url)
    assert moved.revision == new
    assert moved.files[0].sha256 == sha(b"new")
    hub.set_branch("org/model", "main", old)
    assert resolve_hub("org/model", endpoint=hub.url).revision == old


def test_lfs_file_above_threshold(hub: HubStub) -> None:
    hub.add_model("org/model", {"data.txt": b"q" * 3000}, lfs_threshold=1024)
    resolved = resolve_hub("org/model", endpoint=hub.url)
    assert resolved.files[0].sha256 == sha(b"q" * 3000)
    assert hub.download_count("org/model", "data.txt") == 0


# ------------------------------------------------------------------ card and declaration


def test_card_metadata_and_openness_declaration(hub: HubStub) -> None:
    files = {**FILES, "openness.yaml": b"components:\n  weights: open\n  data: closed\n"}
    hub.add_model("org/model", files)
    resolved = resolve_hub("org/model", endpoint=hub.url)
    assert resolved.card["license"] == "apache-2.0"
    assert resolved.card["datasets"] == ["org/corpus"]
    assert resolved.card["base_model"] == "org/base"
    assert resolved.card["tags"] == ["text-generation", "open"]
    assert resolved.openness_declaration == {"components": {"weights": "open", "data": "closed"}}


def test_explicit_card_metadata_and_no_card(hub: HubStub) -> None:
    """The endpoint's cardData is never evidence (issue 8, property 3): only the README.md bytes count."""
    hub.add_model("org/carded", {"a.txt": b"x"}, card_metadata={"license": "mit", "extra": {"k": 1}})
    hub.add_model("org/bare", {"a.txt": b"x"})
    carded = resolve_hub("org/carded", endpoint=hub.url)
    assert carded.card == {}
    assert carded.readme is None
    bare = resolve_hub("org/bare", endpoint=hub.url)
    assert bare.card == {}
    assert bare.openness_declaration is None


def test_invalid_openness_declaration_is_reported(hub: HubStub) -> None:
    hub.add_model("org/model", {"openness.yaml": b"- a list\n- not a mapping\n"})
    with pytest.raises(SourceError) as exc:
        resolve_hub("org/model", endpoint=hub.url)
    assert reason_of(exc) == Reason.INVALID_SOURCE
    assert "openness.yaml" in exc.value.message


# ------------------------------------------------------------------ errors


def test_unknown_repository(hub: HubStub) -> None:
    with pytest.raises(SourceError) as exc:
        resolve_hub("hf://org/missing", endpoint=hub.url)
    assert reason_of(exc) == Reason.REPOSITORY_NOT_FOUND
    assert "'hf://org/missing'" in exc.value.message


def test_unknown_revision(hub: HubStub) -> None:
    hub.add_model("org/name", {"a.txt": b"x"})
    with pytest.raises(SourceError) as exc:
        resolve_hub("hf://org/name", revision="v9", endpoint=hub.url)
    assert reason_of(exc) == Reason.REVISION_NOT_FOUND
    assert exc.value.message == (
        "spec.source.revision 'v9' was not found in hf://org/name: use a branch, tag or commit that exists"
    )


def test_private_repository_needs_a_valid_token(hub: HubStub) -> None:
    hub.add_model("org/secret", FILES, private=True)
    with pytest.raises(SourceError) as exc:
        resolve_hub("org/secret", endpoint=hub.url)
    assert reason_of(exc) == Reason.ACCESS_DENIED
    assert "token" in exc.value.message

    bad = "hf_wrong_token_value_xyz"
    with pytest.raises(SourceError) as exc:
        resolve_hub("org/secret", endpoint=hub.url, token=bad)
    assert reason_of(exc) == Reason.ACCESS_DENIED
    assert bad not in str(exc.value) and bad not in repr(exc.value)

    resolved = resolve_hub("org/secret", endpoint=hub.url, token=hub.token)
    assert {f.path for f in resolved.files} == set(FILES)
    assert resolved.card["license"] == "apache-2.0"


def test_gated_repository_without_token(hub: HubStub) -> None:
    hub.add_model("org/gated", {"config.json": b"{}"}, gated=True)
    with pytest.raises(SourceError) as exc:
        resolve_hub("org/gated", endpoint=hub.url)
    assert reason_of(exc) == Reason.ACCESS_DENIED
    assert "gated" in exc.value.message
    assert resolve_hub("org/gated", endpoint=hub.url, token=hub.token).files[0].path == "config.json"


def test_unreachable_endpoint_is_reported_quickly() -> None:
    started = time.monotonic()
    with pytest.raises(SourceError) as exc:
        resolve_hub("org/model", endpoint=f"http://127.0.0.1:{closed_port()}", token="hf_secret_never_shown")
    assert reason_of(exc) == Reason.ENDPOINT_UNREACHABLE
    assert "hf_secret_never_shown" not in str(exc.value)
    assert time.monotonic() - started < 5


@pytest.mark.parametrize(
    "uri",
    ["hf://org/name/extra", "hf://org/name@main", "https://huggingface.co/org/name", "hf://../x", "hf://a--b/c", ""],
)
def test_invalid_uris(uri: str) -> None:
    with pytest.raises(SourceError) as exc:
        resolve_hub(uri, endpoint="http://127.0.0.1:1")
    assert reason_of(exc) == Reason.INVALID_SOURCE


def test_parse_hf_uri() -> None:
    assert parse_hf_uri("hf://org/name") == "org/name"
    assert parse_hf_uri("hf://gpt2") == "gpt2"
    assert parse_hf_uri("hf://Org-1/name_v1.5") == "Org-1/name_v1.5"
    with pytest.raises(SourceError):
        parse_hf_uri("org/name")


@pytest.mark.parametrize(
    "endpoint", ["ftp://host", "http://user:pw@host", "not a url", "http://host/?q=1", "http://host:99999"]
)
def test_invalid_endpoints(endpoint: str) -> None:
    with pytest.raises(SourceError) as exc:
        check_endpoint(endpoint)
    assert reason_of(exc) == Reason.INVALID_SOURCE
    assert "pw" not in exc.value.message


def test_token_not_in_client_repr() -> None:
    client = HubClient("https://hub.example", "org/m", "main", token="hf_topsecret")
    assert "hf_topsecret" not in repr(client)


# ------------------------------------------------------------------ hostile listings


def _rewrite(hub: HubStub, change: Any) -> None:
    def hook(repo_id: str, entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [change(dict(entry)) for entry in entries]

    hub.listing_hook = hook


@pytest.mark.parametrize(
    "name", ["../x", "/etc/passwd", "a\\b", "a//b", "a/./b", "dir/", "a\x00b", "line\nbreak", "", "a/../../b"]
)
def test_hostile_file_names_are_refused(hub: HubStub, name: str) -> None:
    hub.add_model("org/evil", {"weights.safetensors": b"w", "config.json": b"{}"})
    _rewrite(hub, lambda e: {**e, "path": name} if e["path"] == "weights.safetensors" else e)
    with pytest.raises(SourceError) as exc:
        resolve_hub("org/evil", endpoint=hub.url)
    assert reason_of(exc) == Reason.UNSAFE_PATH
    assert hub.total_downloads() == 0


def test_hostile_names_served_by_the_stub_itself(hub: HubStub) -> None:
    hub.add_model("org/evil", {"../outside.txt": b"x"})
    with pytest.raises(SourceError) as exc:
        resolve_hub("org/evil", endpoint=hub.url)
    assert reason_of(exc) == Reason.UNSAFE_PATH


def test_duplicate_and_file_directory_clash(hub: HubStub) -> None:
    hub.add_model("org/dup", {"a.safetensors": b"1", "b.safetensors": b"2"})
    _rewrite(hub, lambda e: {**e, "path": "a.safetensors"} if e["path"] == "b.safetensors" else e)
    with pytest.raises(SourceError) as exc:
        resolve_hub("org/dup", endpoint=hub.url)
    assert reason_of(exc) == Reason.UNSAFE_PATH
    hub.add_model("org/clash", {"a": b"1", "a/b.safetensors": b"2"})
    hub.listing_hook = None
    with pytest.raises(SourceError) as exc:
        resolve_hub("org/clash", endpoint=hub.url)
    assert reason_of(exc) == Reason.UNSAFE_PATH


def test_hundred_thousand_files_are_refused_quickly(hub: HubStub) -> None:
    hub.add_model("org/huge", {"a.safetensors": b"1"})
    many = [
        {
            "type": "file",
            "oid": "0" * 40,
            "size": 1,
            "path": f"shard-{i:06d}.safetensors",
            "lfs": {"oid": "a" * 64, "size": 1, "pointerSize": 100},
        }
        for i in range(100_000)
    ]
    hub.listing_hook = lambda repo_id, entries: entries + many
    started = time.monotonic()
    with pytest.raises(SourceError) as exc:
        resolve_hub("org/huge", endpoint=hub.url)
    assert reason_of(exc) == Reason.TOO_MANY_FILES
    assert time.monotonic() - started < 10
    tree_pages = sum(n for path, n in hub.requests.items() if "/tree/" in path)
    assert tree_pages <= 11  # stopped after the limit, never read the whole listing


def test_max_files_is_configurable(hub: HubStub) -> None:
    hub.add_model("org/m", {f"f{i}.safetensors": b"x" for i in range(5)})
    with pytest.raises(SourceError) as exc:
        resolve_hub("org/m", endpoint=hub.url, max_files=4)
    assert reason_of(exc) == Reason.TOO_MANY_FILES
    assert len(resolve_hub("org/m", endpoint=hub.url, max_files=5).files) == 5


@pytest.mark.parametrize("size", [3 * 1024**4, -1])
def test_declared_size_out_of_range(hub: HubStub, size: int) -> None:
    hub.add_model("org/m", {"w.safetensors": b"w"})

    def change(entry: dict[str, Any]) -> dict[str, Any]:
        if entry["path"] == "w.safetensors":
            entry["size"] = size
            entry["lfs"] = {**entry["lfs"], "size": size}
        return entry

    _rewrite(hub, change)
    with pytest.raises(SourceError) as exc:
        resolve_hub("org/m", endpoint=hub.url)
    assert reason_of(exc) == Reason.FILE_TOO_LARGE


def test_large_git_file_is_refused_before_download(hub: HubStub) -> None:
    hub.add_model("org/m", {"notes.txt": b"x"})
    _rewrite(hub, lambda e: {**e, "size": MAX_SMALL_FILE + 1} if e["path"] == "notes.txt" else e)
    with pytest.raises(SourceError) as exc:
        resolve_hub("org/m", endpoint=hub.url)
    assert reason_of(exc) == Reason.FILE_TOO_LARGE
    assert hub.total_downloads() == 0


@pytest.mark.parametrize(
    "change",
    [
        lambda e: {**e, "lfs": {"oid": "not-a-sha", "size": e["size"], "pointerSize": 1}},
        lambda e: {**e, "size": "12"},
        lambda e: {**e, "type": "symlink"},
    ],
)
def test_malformed_listing_entries(hub: HubStub, change: Any) -> None:
    hub.add_model("org/m", {"w.safetensors": b"w"})
    _rewrite(hub, change)
    with pytest.raises(SourceError) as exc:
        resolve_hub("org/m", endpoint=hub.url)
    assert reason_of(exc) == Reason.INVALID_SOURCE


def test_pagination_may_not_leave_the_endpoint(hub: HubStub) -> None:
    hub.add_model("org/m", {f"f{i}.safetensors": b"x" for i in range(5)})
    hub.page_size = 2
    assert len(resolve_hub("org/m", endpoint=hub.url).files) == 5
    hub.next_link_base = "http://attacker.invalid"
    with pytest.raises(SourceError) as exc:
        resolve_hub("org/m", endpoint=hub.url, token=hub.token)
    assert reason_of(exc) == Reason.INVALID_SOURCE


def test_git_file_content_must_match_listing(hub: HubStub) -> None:
    hub.add_model("org/m", {"config.json": b'{"a": 1}'})
    hub.inject_fault("org/m", "config.json", "corrupt")
    with pytest.raises(SourceError) as exc:
        resolve_hub("org/m", endpoint=hub.url)
    assert reason_of(exc) == Reason.INVALID_SOURCE
    assert "config.json" in exc.value.message


# ------------------------------------------------------------------ fetch_file


def test_fetch_file_returns_listed_bytes(hub: HubStub) -> None:
    hub.add_model("org/m", FILES)
    resolved = resolve_hub("org/m", endpoint=hub.url)
    hub.add_model("org/m", {**FILES, "model.sig": b"moved on"})  # upstream moves: the pin still holds
    assert fetch_file(resolved, "model.sig") == FILES["model.sig"]


def test_fetch_file_checks_digest_size_and_listing(hub: HubStub) -> None:
    hub.add_model("org/m", FILES)
    resolved = resolve_hub("org/m", endpoint=hub.url)
    with pytest.raises(SourceError) as exc:
        fetch_file(resolved, "missing.sig")
    assert reason_of(exc) == Reason.INVALID_SOURCE
    with pytest.raises(SourceError) as exc:
        fetch_file(resolved, "model.safetensors", max_bytes=100)
    assert reason_of(exc) == Reason.FILE_TOO_LARGE
    hub.inject_fault("org/m", "model.sig", "corrupt")
    with pytest.raises(SourceError) as exc:
        fetch_file(resolved, "model.sig")
    assert reason_of(exc) == Reason.PULLED_DIGEST_MISMATCH


def test_fetch_file_private_needs_token(hub: HubStub) -> None:
    hub.add_model("org/p", FILES, private=True)
    resolved = resolve_hub("org/p", endpoint=hub.url, token=hub.token)
    with pytest.raises(SourceError) as exc:
        fetch_file(resolved, "model.sig")
    assert reason_of(exc) == Reason.ACCESS_DENIED
    assert fetch_file(resolved, "model.sig", token=hub.token) == FILES["model.sig"]


def test_oversized_signature_is_refused_at_resolution(hub: HubStub) -> None:
    hub.add_model("org/m", {"model.sig": b"{}"})
    _rewrite(hub, lambda e: {**e, "size": 2 * 1024 * 1024})
    with pytest.raises(SourceError) as exc:
        resolve_hub("org/m", endpoint=hub.url)
    assert reason_of(exc) == Reason.FILE_TOO_LARGE


# ------------------------------------------------------------------ the stub speaks huggingface_hub


def test_stub_serves_huggingface_hub_client(hub: HubStub, tmp_path: Path) -> None:
    commit = hub.add_model("org/p", FILES, private=True, tag="v1")
    api = HfApi(endpoint=hub.url, token=hub.token)
    info = api.model_info("org/p", revision="v1", files_metadata=True)
    assert info.sha == commit
    siblings = {s.rfilename: s for s in info.siblings or []}
    lfs = siblings["model.safetensors"].lfs
    assert lfs is not None and lfs.sha256 == sha(FILES["model.safetensors"])
    assert info.card_data is not None and info.card_data.license == "apache-2.0"
    tree = {entry.path for entry in api.list_repo_tree("org/p", recursive=True)}
    assert set(FILES) <= tree
    assert [p.path for p in api.get_paths_info("org/p", ["config.json"])] == ["config.json"]
    path = hf_hub_download(
        "org/p", "model.safetensors", revision=commit, endpoint=hub.url, token=hub.token, cache_dir=tmp_path
    )
    assert Path(path).read_bytes() == FILES["model.safetensors"]
    assert hub.download_count("org/p", "model.safetensors") == 1
    anonymous = HfApi(endpoint=hub.url, token=False)
    with pytest.raises(RepositoryNotFoundError):
        anonymous.model_info("org/p")
    with pytest.raises(RepositoryNotFoundError):
        anonymous.model_info("org/unknown")
    with pytest.raises(RevisionNotFoundError):
        api.model_info("org/p", revision="v9")
    with pytest.raises(RemoteEntryNotFoundError):
        hf_hub_download("org/p", "nope.txt", endpoint=hub.url, token=hub.token, cache_dir=tmp_path)


def test_snapshot_download_local_dir_resolves_to_the_same_files(hub: HubStub, tmp_path: Path) -> None:
    """A directory filled by huggingface_hub's local_dir mode names the same files as the Hub listing."""
    commit = hub.add_model("org/m", FILES)
    snapshot_download("org/m", revision=commit, endpoint=hub.url, local_dir=tmp_path / "m")
    assert (tmp_path / "m" / ".cache" / "huggingface").is_dir()
    local = resolve_directory(tmp_path / "m")
    assert local.files == resolve_hub("org/m", endpoint=hub.url).files
    assert local.card == resolve_hub("org/m", endpoint=hub.url).card


def test_a_connection_closed_while_idle_is_retried_once(hub: HubStub, monkeypatch: pytest.MonkeyPatch) -> None:
    """The shared client reuses idle connections; a mirror that closed one must not fail the resolve."""
    import httpx2
    from huggingface_hub import get_session

    sha = hub.add_model("org/flaky", {"config.json": b"{}"})
    session = get_session()
    real = session.stream
    failures = iter([httpx2.RemoteProtocolError("Server disconnected without sending a response.")])

    def flaky(*args: Any, **kwargs: Any) -> Any:
        failure = next(failures, None)
        if failure is not None:
            raise failure
        return real(*args, **kwargs)

    monkeypatch.setattr(session, "stream", flaky)
    assert resolve_hub("hf://org/flaky", endpoint=hub.url).revision == sha


def test_a_server_that_keeps_dropping_is_unreachable(hub: HubStub, monkeypatch: pytest.MonkeyPatch) -> None:
    import httpx2
    from huggingface_hub import get_session

    hub.add_model("org/down", {"config.json": b"{}"})

    def always(*args: Any, **kwargs: Any) -> Any:
        raise httpx2.RemoteProtocolError("Server disconnected without sending a response.")

    monkeypatch.setattr(get_session(), "stream", always)
    with pytest.raises(SourceError) as info:
        resolve_hub("hf://org/down", endpoint=hub.url)
    assert info.value.reason is Reason.ENDPOINT_UNREACHABLE
