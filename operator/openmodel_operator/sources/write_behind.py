"""Writing a download's full buffers in a thread of their own, so the next buffer arrives while one is written.

A pull's file is written around the page cache (``sources.direct_write``): each write waits for the device.
Done in line, the download and the hash stop for every write, and the file takes the sum of the two; here
the worker fills one buffer (receiving and hashing each piece as it arrives) while a writer thread writes
the other, and the file takes about the longer of the two (docs/performance.md, "The pull written behind").

What must not change, and how it is kept:

- The bytes written are the bytes hashed: a buffer is never handed out to be filled again before its write
  returned (two buffers, passed back and forth through queues), and the writes happen in order, one thread.
- The file is complete and every write succeeded before the caller fsyncs and compares: :meth:`drain` waits
  for the last write, and raises the first write error.
- A failing disk is reported as the disk, never as the server: a write error is raised at the next hand-over
  or at :meth:`drain`; and when the download fails while a write had already failed, :meth:`__exit__` raises
  the write's error instead (a full disk is not fixed by downloading the file again). Whatever ends a write,
  even an exception that is not an ``Exception``, is recorded and raised: the buffer is always handed back,
  so the worker never waits for a writer that is gone. An interrupt of the worker itself passes through.
- Behind all of that, the pull compares the file's size with the bytes hashed before it fsyncs and renames.
- No write touches the descriptor after the caller closes it: leaving the ``with`` block always waits for
  the writer thread; after a failure, queued writes are dropped, not made.
"""

from __future__ import annotations

import queue
import threading
import types
from collections.abc import Callable

from openmodel_operator.sources.direct_write import aligned_buffer

_STOP = None


class WriteBehind:
    """Two aligned buffers of ``size`` bytes: :attr:`first` to fill, :meth:`flush` to write one and get the other.

    For ``download.stream(buffer=wb.first, flush=wb.flush, drain=wb.drain)`` inside ``with wb:``.
    """

    def __init__(
        self, write: Callable[[memoryview], None], size: int, buffers: tuple[memoryview, memoryview] | None = None
    ) -> None:
        """``buffers``: two of ``size`` bytes to use (a pull reuses them from file to file: touching 16 fresh MiB
        costs ~7 ms here, as much as writing them); new ones when None. Free to reuse once the block is left."""
        self._write = write
        first, second = buffers or (memoryview(aligned_buffer(size)), memoryview(aligned_buffer(size)))
        if len(first) != size or len(second) != size:
            raise ValueError(f"write-behind buffers must be {size} bytes each")
        self.first = first
        self._filling = self.first  # the buffer the caller fills now
        self._free: queue.SimpleQueue[memoryview] = queue.SimpleQueue()
        self._free.put(second)
        self._pending: queue.SimpleQueue[tuple[memoryview, memoryview] | None] = queue.SimpleQueue()
        self._error: BaseException | None = None
        self._abort = False
        self._thread = threading.Thread(target=self._run, name="openmodel-write-behind", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            while (item := self._pending.get()) is not _STOP:
                buffer, piece = item
                try:
                    if self._error is None and not self._abort:
                        self._write(piece)
                except BaseException as exc:  # kept and raised in the worker: whatever ends a write ends the file
                    self._error = exc
                finally:
                    self._free.put(buffer)  # always handed back: the worker waits for it
        except BaseException as exc:  # the thread itself is ending early: the worker must not wait for it
            if self._error is None:
                self._error = exc
            self._free.put(self.first)  # flush raises the error once it has a buffer back

    def _raise(self) -> None:
        if self._error is not None:
            raise self._error

    def flush(self, piece: memoryview) -> memoryview:
        """Queue ``piece`` (the buffer being filled, or its first bytes) for writing; return the buffer to fill
        next, once its own write returned. Raises the error of an earlier write."""
        self._raise()
        self._pending.put((self._filling, piece))
        self._filling = self._free.get()
        self._raise()
        return self._filling

    def drain(self) -> None:
        """Wait for every queued write; raise the first write error. Nothing may be flushed afterwards."""
        self._pending.put(_STOP)
        self._thread.join()
        self._raise()

    @property
    def finished(self) -> bool:
        """Whether the writer thread has ended: its buffers are then free to reuse."""
        return not self._thread.is_alive()

    def __enter__(self) -> WriteBehind:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: types.TracebackType | None,
    ) -> None:
        if self._thread.is_alive():  # drain() was not reached: the download failed (or the caller never drained)
            self._abort = error is not None
            self._pending.put(_STOP)
            self._thread.join()
        if isinstance(error, Exception) and self._error is not None and self._error is not error:
            raise self._error from error  # the write failed first: report it, not the download's failure that followed
        if error is None:
            self._raise()
