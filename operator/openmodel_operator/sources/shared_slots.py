"""Slots on a claim shared by several OpenModels (``storage.claimName``): one writer per slot, and a
reference per model, kept on the volume itself next to the data.

A slot (``sha256-<manifest digest>``) is content-addressed, so models of the same content use the same
directory and the bytes are downloaded once: the second pull finds every file in place with its digest
and only re-hashes. Two rules keep that safe:

- **one writer**: a pull holds the slot's lock (``.openmodel/locks/<slot>``, an exclusive ``flock``) while
  it writes and adds its model's reference; another pull of the same slot waits for it;
- **reference counting**: each model that pulled a slot has a file ``.openmodel/refs/<slot>/<model uid>``;
  a prune drops only its own model's references (under the same lock) and removes a slot only when no
  reference is left, so a model never deletes what another one serves.

The volume is written by these Jobs only, but anything else that mounts the claim could plant links: no
path here is followed through a link.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import re
import stat
import time
from collections.abc import Iterator
from pathlib import Path

META = ".openmodel"
SLOT = re.compile(r"sha256-[0-9a-f]{64}")
REF = re.compile(r"[A-Za-z0-9][-A-Za-z0-9]{0,63}")
LOCK_POLL = 0.5  # seconds between tries of a taken lock


class SharedSlotError(Exception):
    """The shared claim's bookkeeping cannot be used safely (a link where a directory should be, a bad name)."""


def _directory(path: Path) -> Path:
    """``path`` as a real directory (created if missing), never a link."""
    with contextlib.suppress(FileExistsError):
        os.mkdir(path, 0o755)
    if not stat.S_ISDIR(os.lstat(path).st_mode):
        raise SharedSlotError(f"{path} is not a directory (a link or a file): refusing to use it")
    return path


def _check(slot: str | None, ref: str | None = None) -> None:
    if slot is not None and not SLOT.fullmatch(slot):
        raise SharedSlotError(f"{slot!r} is not a slot name (sha256-<64 hex>)")
    if ref is not None and not REF.fullmatch(ref):
        raise SharedSlotError(f"{ref!r} is not a model uid")


@contextlib.contextmanager
def slot_lock(root: Path, slot: str, timeout: float | None = None) -> Iterator[bool]:
    """Hold the slot's exclusive lock; yields False (without holding it) when it stayed taken ``timeout``
    seconds (None: wait as long as it takes)."""
    _check(slot)
    locks = _directory(_directory(root / META) / "locks")
    fd = os.open(locks / slot, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o644)
    try:
        if timeout is None:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield True
            return
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as exc:
                if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN):
                    raise
                if time.monotonic() >= deadline:
                    yield False
                    return
                time.sleep(min(LOCK_POLL, max(0.0, deadline - time.monotonic())))
        yield True
    finally:
        os.close(fd)  # closing releases the lock


def add_ref(root: Path, slot: str, ref: str) -> None:
    """Record that model ``ref`` uses ``slot`` (call with the slot's lock held)."""
    _check(slot, ref)
    refs = _directory(_directory(_directory(root / META) / "refs") / slot)
    os.close(os.open(refs / ref, os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW, 0o644))


def _existing(root: Path, *parts: str) -> Path | None:
    """``root/parts...`` when every step is a real directory, None when a step is missing; a link or a file
    on the way is refused (a planted ``.openmodel`` link must not point a prune at another directory)."""
    path = root
    for part in parts:
        path = path / part
        if not os.path.lexists(path):
            return None
        if not stat.S_ISDIR(os.lstat(path).st_mode):
            raise SharedSlotError(f"{path} is not a directory (a link or a file): refusing to use it")
    return path


def slots_of(root: Path, ref: str) -> list[str]:
    """The slots model ``ref`` holds a reference on."""
    _check(None, ref)
    refs = _existing(root, META, "refs")
    if refs is None:
        return []
    return sorted(slot for slot in os.listdir(refs) if SLOT.fullmatch(slot) and os.path.lexists(refs / slot / ref))


def drop_ref(root: Path, slot: str, ref: str) -> bool:
    """Drop model ``ref``'s reference on ``slot`` (lock held); whether any other model still references it."""
    _check(slot, ref)
    refs = _existing(root, META, "refs", slot)
    if refs is None:
        return False
    with contextlib.suppress(FileNotFoundError):
        os.unlink(refs / ref)
    left = os.listdir(refs)
    if not left:
        with contextlib.suppress(OSError):
            os.rmdir(refs)
    return bool(left)
