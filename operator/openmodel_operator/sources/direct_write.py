"""Writing a downloaded file around the page cache (``O_DIRECT``), so the pull costs the CPU of hashing only.

Measured on the development machine (docs/performance.md, "The pull without the page cache"): for every
gigabyte a buffered ``write()`` spent ~0.7 s of kernel CPU allocating, copying and dirtying page-cache pages,
as much as SHA-256 itself, and left gigabytes of dirty pages that the fsync before the rename then had to
write out (``sources.writeback`` started that early). With ``O_DIRECT`` the disk reads the download buffer
itself: the copy and the dirty pages are gone, and the pull Job's pod does not fill its memory limit with
page cache. The fsync before the rename is still made (the disk's own cache, the file's metadata).

``O_DIRECT`` wants the buffer, the file offset and the length aligned to the device's logical block. The
download buffer is an anonymous ``mmap`` (page aligned) and :func:`sources.download.stream` hands over
full buffers, so every write but the last is a whole number of pages at a page-aligned offset; the last
one (the file's tail) and anything else that is not are written after switching the descriptor back to
buffered. Where ``O_DIRECT`` does not exist or the filesystem refuses it (tmpfs, some network or FUSE
filesystems answer ``EINVAL``), the file is written buffered with early writeback, as before.
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import mmap
import os

from openmodel_operator.sources.writeback import Writeback

ALIGN = 4096  # a page: a multiple of every logical block size Linux supports for O_DIRECT (512 or 4096)
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
        """Write ``piece`` at the end of the file."""
        view = piece
        while view:
            offset = self.writeback.written
            direct = self.direct and len(view) % ALIGN == 0 and offset % ALIGN == 0 and _aligned(view)
            if not direct:
                self._buffered()
            try:
                written = _write(self.fd, view)
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
