"""Writing a downloaded file around the page cache (``O_DIRECT``), so the pull costs the CPU of hashing only.

Measured on the development machine (docs/performance.md, "The pull without the page cache"): for every
gigabyte a buffered ``write()`` spent ~0.7 s of kernel CPU allocating, copying and dirtying page-cache pages,
as much as SHA-256 itself, and left gigabytes of dirty pages that the fsync before the rename then had to
write out (``sources.writeback`` started that early). With ``O_DIRECT`` the disk reads the download buffer
itself: the copy and the dirty pages are gone, and the pull Job's pod does not fill its memory limit with
page cache. The fsync before the rename is still made (the disk's own cache, the file's metadata).

``O_DIRECT`` wants the buffer, the file offset and the length aligned to the device's logical block. The
download buffer is an anonymous ``mmap`` (page aligned) and :func:`sources.download.stream` hands over
full buffers, so every write but the last is a whole number of pages at a page-aligned offset; of the last
one the whole pages are written so too, and the file's tail (under a page) and anything else that is not
aligned are written after switching the descriptor back to buffered. Where ``O_DIRECT`` does not exist or
the filesystem refuses it (tmpfs, some network or FUSE filesystems answer ``EINVAL``), the file is written
buffered with early writeback, as before.
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import mmap
import os

from openmodel_operator.sources.writeback import Writeback

ALIGN = 4096  # a page: a multiple of every logical block size Linux supports for O_DIRECT (512 or 4096)
# The download buffer when the file takes O_DIRECT: each flush is one write the device serves from this
# memory, so fewer, larger writes cost less CPU (pins, requests, wake-ups). Measured on 2 GB pulls, 6
# interleaved rounds (docs/performance.md): client CPU 1 MiB 2.03 s, 4 MiB 1.70-1.75 s, 8 MiB 1.57-1.61 s,
# 16 MiB 1.60 s, 32 MiB 1.83 s. Buffered writes keep download.BUFFER (1 MiB: the copy into the page cache
# reads what recv just put in the core's cache); files under 128 MiB get less (sources.pull.buffer_size).
DIRECT_BUFFER = 8 * 1024 * 1024
_O_DIRECT = getattr(os, "O_DIRECT", 0)
_write = os.write  # the one write call (tests watch it)


def aligned_buffer(size: int) -> mmap.mmap:
    """A page-aligned buffer of ``size`` bytes (anonymous memory: ``mmap`` always starts on a page)."""
    return mmap.mmap(-1, size)


class FileWriter:
    """Writes one file sequentially from offset 0: ``O_DIRECT`` for page-aligned whole pages, buffered
    (with early writeback) for everything else, and for good once the filesystem refuses ``O_DIRECT``."""

    def __init__(self, fd: int, direct: bool = True) -> None:
        self.fd = fd
        self.writeback = Writeback(fd)  # also counts what was written: the file's end, where the next write goes
        self.direct = direct and _O_DIRECT != 0 and self._set_direct(True)

    def _set_direct(self, on: bool) -> bool:
        try:
            flags = fcntl.fcntl(self.fd, fcntl.F_GETFL)
            fcntl.fcntl(self.fd, fcntl.F_SETFL, (flags | _O_DIRECT) if on else (flags & ~_O_DIRECT))
        except OSError:
            return False
        return True

    def _buffered(self) -> None:
        """From here on, write through the page cache (a tail, a foreign piece, a refusing filesystem)."""
        if self.direct:
            self.direct = False
            if not self._set_direct(False):
                raise OSError(errno.EIO, "cannot switch the file back from O_DIRECT")

    def write(self, piece: memoryview) -> None:
        """Write ``piece`` at the end of the file: its whole pages around the page cache when it starts on one
        at a page-aligned offset, the rest (a file's tail) buffered."""
        view = piece
        while view:
            offset = self.writeback.written
            pages = len(view) - len(view) % ALIGN
            direct = self.direct and pages > 0 and offset % ALIGN == 0 and _aligned(view)
            if not direct:
                self._buffered()
            try:
                written = _write(self.fd, view[:pages] if direct else view)
            except OSError as exc:
                if not direct or exc.errno != errno.EINVAL:
                    raise
                self._buffered()  # the filesystem takes no O_DIRECT after all: nothing was written
                continue
            self.writeback.wrote(written)
            view = view[written:]


def _aligned(view: memoryview) -> bool:
    """Whether ``view`` starts on a page (a read-only piece, e.g. ``bytes`` read from a local copy, is not
    looked at: it is written buffered)."""
    if view.readonly or not view.c_contiguous:
        return False
    try:
        address = ctypes.addressof(ctypes.c_char.from_buffer(view))
    except (TypeError, ValueError):
        return False
    return address % ALIGN == 0
