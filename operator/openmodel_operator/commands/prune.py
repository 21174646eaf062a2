"""`openmodel prune`: what the prune Job runs: remove the revision slots nobody keeps from a model's volume.

A volume holds one directory per verified revision (``sha256-<manifest digest>``). Once a new revision
serves, the operator keeps it, the previous ones ``storage.keepRevisions`` asks for, and removes the rest
with this command. Everything at the top of the volume that is not a kept slot goes (older layouts' files,
half-written slots), except ``lost+found``. Links are removed, never followed, so a link planted on the
volume cannot make the Job delete anything outside it. On a claim shared by models (``--ref``) it only
drops this model's references, and removes a slot no model references (``sources.shared_slots``).

Output is one JSON object per line, like ``openmodel fetch``. Exit codes: 0 done, 1 a kept slot is not a
directory (the server would not find its files: someone else writes to this volume), 2 an operational error.
"""

from __future__ import annotations

import argparse
import os
import shutil
import stat
import sys
from pathlib import Path
from typing import TextIO

from openmodel_operator.commands.fetch import EXIT_ERROR, EXIT_OK, EXIT_VERIFY_FAILED, JsonLog
from openmodel_operator.sources import shared_slots
from openmodel_operator.sources.pull import LOST_FOUND

PRUNE_LOCK_TIMEOUT = 600.0  # seconds a prune waits for a pull of a slot it would release


def _remove(path: Path) -> None:
    """A directory tree without following links in it, or a single entry (a link is unlinked, not followed)."""
    mode = os.lstat(path).st_mode
    if stat.S_ISDIR(mode):
        shutil.rmtree(path)  # rmtree never follows symlinks inside the tree (it unlinks them)
    else:
        path.unlink()


def prune_volume(volume: Path, keep: set[str], log: JsonLog) -> tuple[list[str], list[str]]:
    """(removed, kept but not a directory): every top-level entry of ``volume`` but the kept slots goes."""
    removed, broken = [], []
    for entry in sorted(os.listdir(volume)):
        if entry == LOST_FOUND:
            continue
        path = volume / entry
        if entry in keep:
            if not stat.S_ISDIR(os.lstat(path).st_mode):
                broken.append(entry)
            continue
        _remove(path)
        removed.append(entry)
        log("removed", path=entry)
    return removed, broken


def release_shared(volume: Path, keep: set[str], ref: str, log: JsonLog) -> list[str]:
    """On a shared claim: drop model ``ref``'s references on the slots it does not keep, and remove a slot
    that no model references any more (under its lock: never while a pull writes it)."""
    removed = []
    for slot in shared_slots.slots_of(volume, ref):
        if slot in keep:
            continue
        with shared_slots.slot_lock(volume, slot, PRUNE_LOCK_TIMEOUT) as held:
            if not held:
                log("busy", path=slot, message="another pull holds it: left for the next prune")
                continue
            if shared_slots.drop_ref(volume, slot, ref):
                log("released", path=slot, message="still referenced by another model: kept")
                continue
            if os.path.lexists(volume / slot):
                _remove(volume / slot)
            removed.append(slot)
            log("removed", path=slot)
    return removed


def run(args: argparse.Namespace, stream: TextIO | None = None) -> int:
    """Run ``openmodel prune``; returns the exit code."""
    log = JsonLog(stream or sys.stdout)
    volume = Path(args.volume)
    keep = set(args.keep or [])
    bad = sorted(slot for slot in keep if not shared_slots.SLOT.fullmatch(slot))
    if bad:
        log("failed", reason="InvalidArgument", message=f"--keep takes slot names (sha256-<64 hex>), not {bad[:3]}")
        return EXIT_ERROR
    try:
        if not volume.is_dir() or volume.is_symlink():
            log("failed", reason="InvalidSource", message=f"{volume} is not a directory: is the volume mounted?")
            return EXIT_ERROR
        broken: list[str] = []
        if args.ref:
            removed = release_shared(volume, keep, args.ref, log)
        elif os.path.lexists(volume / shared_slots.META):
            log(
                "failed",
                reason="SharedClaim",
                message=f"{volume} holds other models' slots ({shared_slots.META}): only --ref prunes a shared claim",
                exit=EXIT_VERIFY_FAILED,
            )
            return EXIT_VERIFY_FAILED
        else:
            removed, broken = prune_volume(volume, keep, log)
    except shared_slots.SharedSlotError as exc:
        log("failed", reason="UnsafePath", message=str(exc), exit=EXIT_VERIFY_FAILED)
        return EXIT_VERIFY_FAILED
    except OSError as exc:
        log("failed", reason="VolumeError", message=f"the volume failed: {exc.strerror or exc}", exit=EXIT_ERROR)
        return EXIT_ERROR
    if broken:
        log(
            "failed",
            reason="ManifestMismatch",
            message=f"kept slots that are not directories: {broken}; something else writes to this volume",
            exit=EXIT_VERIFY_FAILED,
        )
        return EXIT_VERIFY_FAILED
    log("done", message=f"{len(removed)} entries removed, {len(keep)} slots kept", removed=len(removed))
    return EXIT_OK


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "prune",
        help="remove the revision slots nobody keeps from a model's volume (what the prune Job runs)",
        description=(
            "Remove every top-level entry of the volume except the kept revision slots (sha256-<manifest digest>) "
            "and lost+found. Links are removed, never followed. Logs are JSON lines. Exit codes: 0 done, 1 a kept "
            "slot is not a directory, 2 operational error."
        ),
    )
    parser.add_argument("--volume", required=True, metavar="DIR", help="where the model's claim is mounted")
    parser.add_argument("--keep", action="append", metavar="SLOT", help="a slot to keep (repeatable)")
    parser.add_argument(
        "--ref",
        metavar="MODEL_UID",
        help="the volume is a claim shared by models: drop this model's references only, and remove a slot "
        "no model references",
    )
    parser.set_defaults(func=run)
