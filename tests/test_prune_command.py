"""`openmodel prune`: only the kept revision slots stay on the volume; nothing outside it is ever touched."""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

import pytest

from openmodel_operator.cli import build_parser
from openmodel_operator.commands import prune

KEEP = "sha256-" + "a" * 64
GONE = "sha256-" + "b" * 64


def run(volume: Path, *keep: str) -> tuple[int, list[dict[str, object]]]:
    out = io.StringIO()
    argv = ["prune", "--volume", str(volume)]
    for slot in keep:
        argv += ["--keep", slot]
    code = prune.run(build_parser().parse_args(argv), stream=out)
    return code, [json.loads(line) for line in out.getvalue().splitlines()]


def slot(volume: Path, name: str) -> Path:
    path = volume / name
    (path / "sub").mkdir(parents=True)
    (path / "model.safetensors").write_bytes(b"w" * 10)
    (path / "sub" / "config.json").write_text("{}")
    return path


def test_slots_not_kept_and_older_layouts_files_go_kept_slots_and_lost_found_stay(tmp_path: Path) -> None:
    volume = tmp_path / "volume"
    kept = slot(volume, KEEP)
    slot(volume, GONE)
    (volume / "model.safetensors").write_bytes(b"legacy")  # the layout before slots
    (volume / "lost+found").mkdir()
    before = sorted(p.relative_to(kept) for p in kept.rglob("*"))
    code, lines = run(volume, KEEP)
    assert code == 0
    assert sorted(os.listdir(volume)) == sorted([KEEP, "lost+found"])
    assert sorted(p.relative_to(kept) for p in kept.rglob("*")) == before  # the kept slot is untouched
    assert {line["path"] for line in lines if line["event"] == "removed"} == {GONE, "model.safetensors"}


def test_a_planted_link_is_removed_never_followed(tmp_path: Path) -> None:
    """A link on the volume to a directory elsewhere (or to a kept slot) must not make the Job delete it."""
    volume, outside = tmp_path / "volume", tmp_path / "outside"
    kept = slot(volume, KEEP)
    outside.mkdir()
    (outside / "precious").write_text("keep me")
    (volume / "link-out").symlink_to(outside, target_is_directory=True)
    (volume / GONE).symlink_to(kept, target_is_directory=True)
    inner = slot(volume, "sha256-" + "c" * 64)
    (inner / "escape").symlink_to(outside, target_is_directory=True)
    code, _ = run(volume, KEEP)
    assert code == 0
    assert (outside / "precious").read_text() == "keep me"
    assert (kept / "model.safetensors").exists()
    assert sorted(os.listdir(volume)) == [KEEP]


def test_a_kept_slot_that_is_not_a_directory_fails_the_job(tmp_path: Path) -> None:
    volume = tmp_path / "volume"
    volume.mkdir()
    (volume / KEEP).write_text("not a directory")
    code, lines = run(volume, KEEP)
    assert code == 1 and lines[-1]["event"] == "failed"


def test_only_slot_names_can_be_kept(tmp_path: Path) -> None:
    volume = tmp_path / "volume"
    slot(volume, KEEP)
    code, lines = run(volume, "..")
    assert code == 2 and "--keep" in str(lines[-1]["message"])
    assert (volume / KEEP).exists()  # nothing was removed


def run_shared(volume: Path, ref: str, *keep: str) -> tuple[int, list[dict[str, object]]]:
    out = io.StringIO()
    argv = ["prune", "--volume", str(volume), "--ref", ref]
    for kept in keep:
        argv += ["--keep", kept]
    code = prune.run(build_parser().parse_args(argv), stream=out)
    return code, [json.loads(line) for line in out.getvalue().splitlines()]


def test_on_a_shared_claim_a_model_drops_only_its_references_and_the_last_one_removes_the_slot(
    tmp_path: Path,
) -> None:
    from openmodel_operator.sources import shared_slots

    volume = tmp_path / "cache"
    slot(volume, KEEP)
    slot(volume, GONE)
    (volume / "someone-elses-file").write_text("not ours")
    for model in ("uid-a", "uid-b"):
        shared_slots.add_ref(volume, GONE, model)
    shared_slots.add_ref(volume, KEEP, "uid-a")
    code, _ = run_shared(volume, "uid-a", KEEP)
    assert code == 0
    assert (volume / GONE).is_dir()  # uid-b still references it
    assert (volume / "someone-elses-file").exists()  # a shared claim: nothing unreferenced by us is touched
    assert shared_slots.slots_of(volume, "uid-a") == [KEEP]
    code, lines = run_shared(volume, "uid-b")
    assert code == 0 and not (volume / GONE).exists()  # the last reference: the slot goes
    assert (volume / KEEP).is_dir()  # control: still uid-a's
    assert any(line["event"] == "removed" and line["path"] == GONE for line in lines)


def test_a_link_planted_for_the_shared_bookkeeping_is_refused(tmp_path: Path) -> None:
    volume, outside = tmp_path / "cache", tmp_path / "outside"
    slot(volume, GONE)
    outside.mkdir()
    (outside / "precious").write_text("keep me")
    (outside / "refs" / GONE).mkdir(parents=True)
    (outside / "refs" / GONE / "uid-a").write_text("")  # as if uid-a referenced GONE, behind the link
    (volume / ".openmodel").symlink_to(outside, target_is_directory=True)
    code, lines = run_shared(volume, "uid-a")
    assert code == 1 and lines[-1]["reason"] == "UnsafePath"  # refused, not followed
    assert (outside / "precious").read_text() == "keep me" and (volume / GONE).is_dir()
    assert (outside / "refs" / GONE / "uid-a").exists()
    from openmodel_operator.sources import shared_slots

    with pytest.raises(shared_slots.SharedSlotError):
        shared_slots.add_ref(volume, GONE, "uid-a")


def test_a_shared_claim_is_never_pruned_as_a_models_own(tmp_path: Path) -> None:
    from openmodel_operator.sources import shared_slots

    volume = tmp_path / "cache"
    slot(volume, KEEP)
    slot(volume, GONE)
    shared_slots.add_ref(volume, GONE, "uid-b")
    code, _ = run(volume, KEEP)
    assert code == 1 and (volume / GONE).is_dir()  # another model's slot survives a prune without --ref


def test_a_pull_waits_for_the_slots_lock_only_so_long(tmp_path: Path) -> None:
    from openmodel_operator.sources import shared_slots

    volume = tmp_path / "cache"
    volume.mkdir()
    with shared_slots.slot_lock(volume, KEEP) as held:
        assert held
        with shared_slots.slot_lock(volume, KEEP, timeout=0.2) as second:
            assert second is False  # taken: given up after the timeout, not held
        with shared_slots.slot_lock(volume, GONE, timeout=0.2) as other:
            assert other is True  # control: another slot's lock is free
