"""The pre-decision byte budget (issue 8, property 15, contract decision 7).

Before the decision only the files needed to decide are downloaded (README.md, openness.yaml, the
bundle and the small git files that must be hashed), at most MAX_PREDECISION_BYTES and
MAX_PREDECISION_FILES of them, computed from the listed sizes before the first download. Weights
stored outside LFS are refused by name.
"""

from __future__ import annotations

import pytest

from hubstub import HubStub
from openmodel_operator.evidence.errors import SourceError
from openmodel_operator.evidence.records import Reason
from openmodel_operator.sources.hub import MAX_PREDECISION_BYTES, MAX_PREDECISION_FILES, resolve_hub

README = b"---\nlicense: apache-2.0\n---\n# A model\n"
MODEL = {
    "README.md": README,
    "config.json": b'{"hidden": 8}',
    "tokenizer.json": b'{"vocab": {}}',
    "model.safetensors": b"w" * 50_000,
    "model.sig": b'{"bundle": 1}',
    "openness.yaml": b"components:\n  weights: open\n",
}
MB = 1024 * 1024


def api_requests(hub: HubStub) -> int:
    return sum(1 for _, path in hub.request_log if path.startswith("/api/"))


def test_a_normal_repository_stays_within_the_budget(hub: HubStub) -> None:
    hub.add_model("org/model", MODEL)
    resolved = resolve_hub("hf://org/model", endpoint=hub.url)
    assert {f.path for f in resolved.files} == set(MODEL)
    assert hub.download_count("org/model", "model.safetensors") == 0
    assert hub.bytes_served < MAX_PREDECISION_BYTES
    assert resolved.readme == README
    assert resolved.openness_declaration == {"components": {"weights": "open"}}
    assert resolved.signature_bundle == MODEL["model.sig"]


def test_two_hundred_small_git_files_of_1_mb_are_refused_before_download(hub: HubStub) -> None:
    blob = b"x" * MB  # the same bytes object for every file: cheap for the stand-in
    hub.add_model("org/bulky", {**MODEL, **{f"data/part-{i:03d}.txt": blob for i in range(200)}})
    with pytest.raises(SourceError) as exc:
        resolve_hub("hf://org/bulky", endpoint=hub.url)
    assert exc.value.reason is Reason.RESPONSE_TOO_LARGE
    message = exc.value.message
    assert "before the decision" in message and str(MAX_PREDECISION_BYTES) in message
    assert "LFS" in message and "(1048576 bytes)" in message  # names the sizes and the fix
    assert hub.total_downloads() == 0  # nothing fetched: refused from the listing alone
    assert hub.bytes_served < 200_000  # model info and listing pages only
    assert api_requests(hub) <= 2


def test_too_many_small_files_are_refused_before_download(hub: HubStub) -> None:
    hub.add_model("org/many", {f"snippets/s{i:04d}.txt": b"tiny" for i in range(MAX_PREDECISION_FILES + 1)})
    with pytest.raises(SourceError) as exc:
        resolve_hub("hf://org/many", endpoint=hub.url)
    assert exc.value.reason is Reason.RESPONSE_TOO_LARGE
    assert hub.total_downloads() == 0


def test_the_budget_is_a_setting(hub: HubStub) -> None:
    hub.add_model("org/model", MODEL)
    with pytest.raises(SourceError) as exc:
        resolve_hub("hf://org/model", endpoint=hub.url, max_predecision_bytes=64)
    assert exc.value.reason is Reason.RESPONSE_TOO_LARGE
    assert hub.total_downloads() == 0
    resolve_hub("hf://org/model", endpoint=hub.url, max_predecision_bytes=1024)


@pytest.mark.parametrize("name", ["model.safetensors", "weights/pytorch_model.BIN", "model.gguf", "model.pkl"])
def test_weights_outside_lfs_are_refused(hub: HubStub, name: str) -> None:
    hub.add_model("org/sneaky", {**MODEL, name: b"weights kept in git"}, lfs_patterns=())
    with pytest.raises(SourceError) as exc:
        resolve_hub("hf://org/sneaky", endpoint=hub.url)
    assert exc.value.reason is Reason.WEIGHTS_OUTSIDE_LFS
    assert name in exc.value.message and "LFS" in exc.value.message
    assert hub.total_downloads() == 0


def test_weights_in_lfs_are_never_downloaded(hub: HubStub) -> None:
    """Control: the same names in LFS are listed with their sha256 and not fetched."""
    lfs = ("*.safetensors", "*.gguf", "*.pkl")
    hub.add_model("org/fine", {**MODEL, "model.gguf": b"g" * 1000, "model.pkl": b"p" * 10}, lfs_patterns=lfs)
    resolved = resolve_hub("hf://org/fine", endpoint=hub.url)
    assert {"model.gguf", "model.pkl"} <= {f.path for f in resolved.files}
    assert hub.download_count("org/fine", "model.gguf") == 0


def test_a_large_lfs_readme_is_not_downloaded_before_the_decision(hub: HubStub) -> None:
    """A card over 1 MiB in LFS is never read before the decision (its license then counts as unknown)."""
    big = README + b"x" * (2 * MB)
    hub.add_model("org/card", {**MODEL, "README.md": big}, lfs_patterns=("*.safetensors", "README.md"))
    resolved = resolve_hub("hf://org/card", endpoint=hub.url, max_predecision_bytes=MB)
    assert resolved.readme is None and resolved.card == {}
    assert hub.download_count("org/card", "README.md") == 0


def test_a_large_git_readme_counts_against_the_budget(hub: HubStub) -> None:
    """In git (no sha256 listed) a card must be hashed, so it counts against the budget like any small file."""
    big = README + b"x" * (2 * MB)
    hub.add_model("org/card", {**MODEL, "README.md": big})
    with pytest.raises(SourceError) as exc:
        resolve_hub("hf://org/card", endpoint=hub.url, max_predecision_bytes=MB)
    assert exc.value.reason is Reason.RESPONSE_TOO_LARGE
    assert "README.md" in exc.value.message
    assert hub.total_downloads() == 0
