"""Start writing a file's pages to disk while the file is still arriving, so its fsync waits only for the tail.

``sources.pull`` fsyncs every file before renaming it into place (a completion marker must never
point at bytes still in memory). Without help the kernel starts writing a fresh file only when
the fsync asks (or after ``dirty_expire_centisecs``, 30 s), so download and disk run one after
the other: on the development machine the fsync of 2 GB took as long as its download
(docs/performance.md). Linux ``sync_file_range(SYNC_FILE_RANGE_WRITE)`` starts the writeback of
a range without waiting for it; called every ``STEP`` bytes, the disk works while the network
does, and the final fsync (still made, still checked) finds little left to write.

The call before it also waits for the range written one step earlier, which bounds the dirty
pages of a file to about two steps: the page cache of a pull Job's pod is charged to its
memory limit, and an unbounded pile of dirty pages is what gets a pod throttled or killed.

``sync_file_range`` is no durability promise (it skips metadata and the disk's cache): only
the fsync is. Where the call is missing (not Linux) or fails (a filesystem that does not
support it), this does nothing and the fsync does all the work as before.
"""

from __future__ import annotations

import ctypes
import ctypes.util
from collections.abc import Callable

STEP = 8 * 1024 * 1024  # bytes between two writeback requests (two steps per file may be dirty at once)

_WAIT_BEFORE, _WRITE = 1, 2


def _load() -> Callable[[int, int, int, int], int] | None:
    """libc's ``sync_file_range``, or None where there is none. ctypes releases the GIL during the call."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
        function = libc.sync_file_range
    except (OSError, AttributeError):
        return None
    function.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint]
    function.restype = ctypes.c_int
    result: Callable[[int, int, int, int], int] = function
    return result


_SYNC_FILE_RANGE = _load()


class Writeback:
    """Tracks how much of one file was written and asks the kernel to write it out, a step at a time.

    Call ``wrote(count)`` after each write at the end of the file (the file is written
    sequentially from offset 0). Errors are ignored here on purpose: a failing disk makes the
    fsync that follows fail, and that one is reported.
    """

    def __init__(self, fd: int, step: int | None = None) -> None:
        self.fd = fd
        self.step = STEP if step is None else step
        self.written = 0
        self._started = 0  # everything before this offset has had its writeback started
        self._previous = 0  # start of the range whose writeback was started last
        self._enabled = _SYNC_FILE_RANGE is not None

    def wrote(self, count: int) -> None:
        self.written += count
        if not self._enabled or self.written - self._started < self.step:
            return
        assert _SYNC_FILE_RANGE is not None
        start, end = self._started, self.written
        if _SYNC_FILE_RANGE(self.fd, start, end - start, _WRITE) != 0:
            self._enabled = False
            return
        if start > self._previous:  # wait for the range before this one: at most ~2 steps stay dirty
            _SYNC_FILE_RANGE(self.fd, self._previous, start - self._previous, _WAIT_BEFORE | _WRITE)
        self._previous, self._started = start, end
