"""A hostile Hub endpoint (issue 8, properties 3, 4, 13, 14): slow, huge, deep, compressed, renamed.

Every hostile case sits next to a control: the same stand-in serving a legitimate model, which
must still resolve.
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import Any

import pytest
from hostile_hub import (
    drip_body,
    drip_headers,
    gzip_bomb,
    is_model_info,
    is_resolve,
    is_tree,
    model_info_of,
    send,
    send_json,
    until_hung_up,
)

from hubstub import HubStub
from openmodel_operator.evidence.errors import PullError, SourceError
from openmodel_operator.evidence.records import Reason
from openmodel_operator.sources.hub import MAX_PAGE_BYTES, Deadline, fetch_file, resolve_hub
from openmodel_operator.sources.pull import pull

README = b"---\nlicense: apache-2.0\ndatasets: [org/corpus]\n---\n# A model\n"
FILES = {
    "README.md": README,
    "config.json": b'{"hidden": 8}',
    "model.safetensors": bytes(range(256)) * 16,
    "tokenizer.json": b'{"vocab": "' + b"v" * 4000 + b'"}',
}
DEADLINE = 1.0
BOUND = DEADLINE + 5.0  # generous: the cut happens near DEADLINE


def resolve(hub: HubStub, repo: str = "org/model", **kwargs: Any) -> Any:
    return resolve_hub(f"hf://{repo}", endpoint=hub.url, **kwargs)


def control(hub: HubStub) -> None:
    """The legitimate model still resolves once the hostile behaviour is gone."""
    hub.override = None
    resolved = resolve(hub)
    assert {f.path for f in resolved.files} == set(FILES)


# ------------------------------------------------------------------ 13: wall-clock deadlines


@pytest.mark.parametrize("where", ["model info", "tree", "small file"])
def test_a_body_dripping_one_byte_at_a_time_is_cut_at_the_deadline(hub: HubStub, where: str) -> None:
    hub.add_model("org/model", FILES)
    match = {"model info": is_model_info, "tree": is_tree, "small file": lambda h: is_resolve(h, "tokenizer.json")}[
        where
    ]
    answer = drip_body(every=0.05, length=len(FILES["tokenizer.json"]))
    hub.override = lambda h: match(h) and (answer(h) or True)
    started = time.monotonic()
    with pytest.raises(SourceError) as exc:
        resolve(hub, deadline=DEADLINE)
    elapsed = time.monotonic() - started
    assert exc.value.reason is Reason.DEADLINE_EXCEEDED, exc.value.message
    assert elapsed < BOUND
    assert "deadline" in exc.value.message
    control(hub)


@pytest.mark.parametrize("where", ["model info", "tree"])
def test_headers_dripping_one_byte_at_a_time_are_cut_at_the_deadline(hub: HubStub, where: str) -> None:
    """On a new connection (model info) and on a reused keep-alive one (the listing comes second)."""
    hub.add_model("org/model", FILES)
    answer = drip_headers(every=0.05)
    match = is_model_info if where == "model info" else is_tree
    hub.override = lambda h: match(h) and (answer(h) or True)
    started = time.monotonic()
    with pytest.raises(SourceError) as exc:
        resolve(hub, deadline=DEADLINE)
    assert exc.value.reason is Reason.DEADLINE_EXCEEDED, exc.value.message
    assert time.monotonic() - started < BOUND
    control(hub)


def test_each_request_has_its_own_deadline(hub: HubStub) -> None:
    """A generous overall deadline does not let one request run on: the per-request deadline cuts it."""
    hub.add_model("org/model", FILES)
    answer = drip_body(every=0.05)
    hub.override = lambda h: is_tree(h) and (answer(h) or True)
    started = time.monotonic()
    with pytest.raises(SourceError) as exc:
        resolve(hub, deadline=60.0, request_deadline=DEADLINE)
    assert exc.value.reason is Reason.DEADLINE_EXCEEDED
    assert time.monotonic() - started < BOUND
    control(hub)


def test_one_deadline_spans_resolution_and_the_bundle_read(hub: HubStub) -> None:
    hub.add_model("org/model", {**FILES, "model.sig": b'{"bundle": 1}'})
    shared = Deadline.after(30.0)
    resolved = resolve(hub, deadline=shared)
    assert fetch_file(resolved, "model.sig", deadline=shared) == b'{"bundle": 1}'
    with pytest.raises(SourceError) as exc:
        fetch_file(resolved, "model.sig", deadline=Deadline.after(-1.0))
    assert exc.value.reason is Reason.DEADLINE_EXCEEDED


def test_a_weight_download_dripping_bytes_is_cut(hub: HubStub, tmp_path: Path) -> None:
    hub.add_model("org/model", FILES)
    resolved = resolve(hub)
    answer = drip_body(every=0.05, length=len(FILES["model.safetensors"]))
    hub.override = lambda h: h.path.startswith("/_cdn/") and (answer(h) or True)
    started = time.monotonic()
    with pytest.raises(PullError) as exc:
        pull(resolved, {"model.safetensors": resolved.files[1].sha256}, tmp_path / "d", timeout=DEADLINE / 2)
    assert exc.value.reason is Reason.DEADLINE_EXCEEDED, exc.value.message
    assert time.monotonic() - started < BOUND
    assert not (tmp_path / "d" / "model.safetensors").exists()
    hub.override = None
    result = pull(resolved, {f.path: f.sha256 for f in resolved.files}, tmp_path / "d")
    assert len(result.files) == len(FILES)


# ------------------------------------------------------------------ 14: memory bounded


def test_a_gzip_bomb_is_never_inflated(hub: HubStub) -> None:
    hub.add_model("org/model", FILES)
    bomb = gzip_bomb(200 * 1024 * 1024)  # 200 MiB of zeros in ~200 KB
    hub.override = lambda h: is_model_info(h) and (send(h, 200, bomb, {"Content-Encoding": "gzip"}) or True)
    with pytest.raises(SourceError) as exc:
        resolve(hub)
    assert exc.value.reason is Reason.INVALID_SOURCE
    assert "Content-Encoding" in exc.value.message and "identity" in exc.value.message
    control(hub)


def test_a_compressed_small_file_is_refused(hub: HubStub) -> None:
    hub.add_model("org/model", FILES)
    bomb = gzip_bomb(50 * 1024 * 1024)
    hub.override = lambda h: is_resolve(h, "config.json") and (send(h, 200, bomb, {"Content-Encoding": "gzip"}) or True)
    with pytest.raises(SourceError) as exc:
        resolve(hub)
    assert "Content-Encoding" in exc.value.message
    control(hub)


@pytest.mark.parametrize("announced", [True, False])
def test_a_100_mb_json_answer_is_refused_early(hub: HubStub, announced: bool) -> None:
    hub.add_model("org/model", FILES)
    total = 100 * 1024 * 1024
    headers = {"Content-Length": str(total)} if announced else {"Connection": "close"}
    body = until_hung_up(b"[" + b" " * 65535, total)
    hub.override = lambda h: is_tree(h) and (send(h, 200, body, headers) or True)
    with pytest.raises(SourceError) as exc:
        resolve(hub)
    assert exc.value.reason is Reason.RESPONSE_TOO_LARGE
    assert "more than the" in exc.value.message
    assert hub.bytes_served < MAX_PAGE_BYTES + 16 * 1024 * 1024  # stopped reading near the cap
    control(hub)


@pytest.mark.parametrize(
    ("where", "body"),
    [
        (is_tree, b"[" * 50_000 + b"]" * 50_000),  # few enough values to be parsed: the parser's recursion trips
        (
            is_model_info,
            json.dumps({"id": "org/model", "sha": "0" * 40, "x": json.loads("[" * 65 + "]" * 65)}).encode(),
        ),
    ],
    ids=["recursion", "depth-65"],
)
def test_deeply_nested_json_is_refused(hub: HubStub, where: Any, body: bytes) -> None:
    hub.add_model("org/model", FILES)
    hub.override = lambda h: where(h) and (send(h, 200, body) or True)
    with pytest.raises(SourceError) as exc:
        resolve(hub)
    assert exc.value.reason is Reason.INVALID_SOURCE
    assert "nested more than 64 levels" in exc.value.message
    control(hub)


def test_a_deep_answer_with_many_brackets_is_refused_before_parsing(hub: HubStub) -> None:
    hub.add_model("org/model", FILES)
    body = b"[" * 200_000 + b"]" * 200_000
    hub.override = lambda h: is_model_info(h) and (send(h, 200, body) or True)
    with pytest.raises(SourceError) as exc:
        resolve(hub)
    assert exc.value.reason is Reason.RESPONSE_TOO_LARGE
    control(hub)


def test_a_page_of_a_million_tiny_values_is_refused_before_parsing(hub: HubStub) -> None:
    hub.add_model("org/model", FILES)
    body = b"[" + b",".join([b"{}"] * 1_000_000) + b"]"  # 3 MB, a million dicts once parsed
    assert len(body) < MAX_PAGE_BYTES
    hub.override = lambda h: is_tree(h) and (send(h, 200, body) or True)
    with pytest.raises(SourceError) as exc:
        resolve(hub)
    assert exc.value.reason is Reason.RESPONSE_TOO_LARGE
    assert "JSON values" in exc.value.message
    control(hub)


def test_a_listing_of_millions_of_entries_across_pages_stops_early(hub: HubStub) -> None:
    hub.add_model("org/model", FILES)
    pages = {"n": 0}

    def endless(handler: Any) -> bool:
        if not is_tree(handler):
            return False
        pages["n"] += 1
        start = pages["n"] * 1000
        entries = [{"type": "directory", "oid": "0" * 40, "size": 0, "path": f"d{start + i}"} for i in range(1000)]
        link = f'<{hub.url}{handler.path.split("?")[0]}?cursor={start + 1000}>; rel="next"'
        send_json(handler, entries, {"Link": link})
        return True

    hub.override = endless
    started = time.monotonic()
    with pytest.raises(SourceError) as exc:
        resolve(hub)
    assert exc.value.reason is Reason.TOO_MANY_FILES
    assert pages["n"] <= 25  # a million entries were offered, about 21 pages read
    assert time.monotonic() - started < 10
    control(hub)


# ------------------------------------------------------------------ 4: canonical id, redirects, token origin


def test_the_canonical_id_is_the_one_the_hub_answers(hub: HubStub) -> None:
    hub.add_model("Org/Model", FILES)
    hub.override = lambda h: (
        is_model_info(h) and "/org/model/" in h.path and (send_json(h, model_info_of(hub, "Org/Model")) or True)
    )
    resolved = resolve(hub, "org/model")
    assert resolved.repo_id == "Org/Model"
    assert resolved.uri == "hf://Org/Model"


def test_an_answer_for_another_repository_is_refused(hub: HubStub) -> None:
    hub.add_model("org/model", FILES)
    hub.add_model("evil/model", FILES)
    hub.override = lambda h: is_model_info(h) and (send_json(h, model_info_of(hub, "evil/model")) or True)
    with pytest.raises(SourceError) as exc:
        resolve(hub)
    assert exc.value.reason is Reason.SOURCE_REDIRECTED
    assert "evil/model" in exc.value.message
    control(hub)


@pytest.mark.parametrize("status", [301, 302, 307, 308])
def test_an_api_redirect_is_refused(hub: HubStub, status: int) -> None:
    hub.add_model("org/model", FILES)
    hub.add_model("evil/model", FILES)
    target = f"{hub.url}/api/models/evil/model/revision/main"
    hub.override = lambda h: (
        is_model_info(h) and "/org/model/" in h.path and (send(h, status, b"", {"Location": target}) or True)
    )
    with pytest.raises(SourceError) as exc:
        resolve(hub)
    assert exc.value.reason is Reason.SOURCE_REDIRECTED
    assert not any("/evil/" in path for _, path in hub.request_log)
    control(hub)


def test_the_token_never_goes_to_another_origin(hub: HubStub, tmp_path: Path) -> None:
    """/resolve may redirect to a CDN; the Authorization header stays with the endpoint."""
    hub.add_model("org/model", FILES, private=True)
    with HubStub() as cdn:
        config = FILES["config.json"]
        cdn.override = lambda h: send(h, 200, config, {"Content-Type": "application/octet-stream"}) or True
        hub.override = lambda h: (
            is_resolve(h, "config.json") and (send(h, 302, b"", {"Location": f"{cdn.url}/cdn/config"}) or True)
        )
        resolved = resolve(hub, token=hub.token)
        digests = {f.path: f.sha256 for f in resolved.files}
        assert digests["config.json"] == hashlib.sha256(config).hexdigest()
        result = pull(resolved, {"config.json": digests["config.json"]}, tmp_path / "d", token=hub.token)
        assert result.files[0].path == "config.json"
        assert len(cdn.request_headers) == 2  # resolve and pull both went there
        for _, headers in cdn.request_headers:
            assert not any(k.lower() == "authorization" for k in headers)
            assert hub.token not in json.dumps(headers)
    assert all("Authorization" in headers for path, headers in hub.request_headers if "/api/" in path)


# ------------------------------------------------------------------ 3: the card comes from README.md bytes


def test_card_data_from_the_endpoint_is_never_evidence(hub: HubStub) -> None:
    hub.add_model("org/model", FILES, card_metadata={"license": "mit", "datasets": ["forged/corpus"]})
    resolved = resolve(hub)
    assert resolved.card["license"] == "apache-2.0"  # from README.md, not the endpoint's cardData
    assert resolved.readme == README
    assert not any("cardData" in path for _, path in hub.request_log)


def test_a_readme_served_with_other_bytes_is_refused(hub: HubStub) -> None:
    hub.add_model("org/model", FILES)
    hub.inject_fault("org/model", "README.md", "corrupt")
    with pytest.raises(SourceError) as exc:
        resolve(hub)
    assert "README.md" in exc.value.message
    hub.clear_faults()
    assert resolve(hub).card["license"] == "apache-2.0"


def test_a_readme_in_lfs_is_checked_against_its_sha256(hub: HubStub) -> None:
    hub.add_model("org/model", FILES, lfs_patterns=("*.safetensors", "README.md"))
    resolved = resolve(hub)
    assert resolved.readme == README and resolved.card["license"] == "apache-2.0"
    hub.inject_fault("org/model", "README.md", "corrupt")
    with pytest.raises(SourceError) as exc:
        resolve(hub)
    assert exc.value.reason is Reason.PULLED_DIGEST_MISMATCH


def test_an_answer_with_endless_headers_is_refused(hub: HubStub) -> None:
    """httpcore's parser caps the header block (100 KiB); a server sending more is cut off."""
    hub.add_model("org/model", FILES)
    headers = {f"X-Filler-{i}": "f" * 1000 for i in range(300)}
    hub.override = lambda h: is_model_info(h) and (send(h, 200, b"{}", headers) or True)
    with pytest.raises(SourceError) as exc:
        resolve(hub)
    assert exc.value.reason is Reason.ENDPOINT_UNREACHABLE
    assert hub.bytes_served < 2 * 300 * 1100
    control(hub)


def test_a_redirect_loop_on_a_download_is_refused(hub: HubStub) -> None:
    hub.add_model("org/model", FILES)
    hub.override = lambda h: is_resolve(h, "config.json") and (send(h, 302, b"", {"Location": h.path}) or True)
    with pytest.raises(SourceError) as exc:
        resolve(hub)
    assert exc.value.reason is Reason.INVALID_SOURCE
    assert "redirects" in exc.value.message
    control(hub)


def test_a_pull_into_a_name_that_displays_deceptively_is_refused(hub: HubStub, tmp_path: Path) -> None:
    hub.add_model("org/model", FILES)
    resolved = resolve(hub)
    with pytest.raises(PullError) as exc:
        pull(resolved, {"evil\u202egnp.safetensors": "0" * 64}, tmp_path / "d")
    assert exc.value.reason is Reason.UNSAFE_FILE_NAME
    assert "\u202e" not in exc.value.path + exc.value.message


def test_a_directory_keeps_the_readme_bytes_it_hashed(tmp_path: Path) -> None:
    from openmodel_operator.sources.directory import resolve_directory

    for name, data in FILES.items():
        (tmp_path / name).write_bytes(data)
    resolved = resolve_directory(tmp_path)
    assert resolved.readme == README
    assert resolved.card["license"] == "apache-2.0"
    listed = {f.path: f.sha256 for f in resolved.files}
    assert hashlib.sha256(resolved.readme).hexdigest() == listed["README.md"]
