"""Streaming one file over HTTP(S) into a reused buffer: the weight-download path of ``sources.pull``.

Why not httpx: it hands the body over in small ``bytes`` pieces created and joined in Python, which
held one stream to ~0.4 GB/s on two cores (bench/bench_trust.py). ``http.client`` reads straight into
a preallocated buffer (``readinto``), so the single pass — read, hash, write — runs at disk and SHA-256
speed. Redirects are followed by hand so the token never leaves the endpoint's origin (the Hub
redirects LFS files to a CDN with a signed URL).

A socket timeout bounds the wait for each read, not the download: a server sending one byte a
second never trips it. Each download therefore also has a wall-clock deadline, enforced by a
``Watchdog`` that shuts the socket down when it passes (the same one guards the Hub API requests).
"""

from __future__ import annotations

import contextlib
import functools
import heapq
import http.client
import itertools
import socket
import ssl
import sys
import threading
import time
import types
from collections.abc import Callable, Mapping
from typing import Any, TypeVar
from urllib.parse import urljoin, urlsplit

# One buffer per download written through the page cache. 1 MiB fits a core's L2 cache here (1 MiB per
# core), so the bytes recv() puts there are still in cache when sha256 and write() read them: against 4 MiB
# it cost about a third less CPU for the same 1-2 GB pull (docs/performance.md), and a quarter of the
# memory. A file written around the page cache uses direct_write.DIRECT_BUFFER (the device reads it).
BUFFER = 1024 * 1024
_R = TypeVar("_R")
MAX_REDIRECTS = 5
_REDIRECTS = {301, 302, 303, 307, 308}


class HttpFailure(Exception):
    """A download attempt failed; ``status`` is the HTTP code, or None for a transport error.

    ``deadline`` is True when the wall-clock deadline cut the download off.
    """

    def __init__(self, message: str, status: int | None = None, deadline: bool = False) -> None:
        super().__init__(message)
        self.status = status
        self.deadline = deadline


def _calling_connection_stream(depth: int = 8) -> object:
    """The ``_network_stream`` of the httpcore connection object found in the first frames up the stack."""
    frame: types.FrameType | None = sys._getframe(1)
    for _ in range(depth):
        if frame is None:
            return None
        stream = getattr(frame.f_locals.get("self"), "_network_stream", None)
        if stream is not None:
            return stream
        frame = frame.f_back
    return None


def _shutdown(sock: object) -> None:
    """Shut a socket down from another thread: a blocked ``recv`` returns at once (``close`` would not wake it)."""
    if isinstance(sock, socket.socket):
        with contextlib.suppress(OSError):
            socket.socket.shutdown(sock, socket.SHUT_RDWR)  # the plain socket's, also for an SSLSocket


class Watchdog:
    """Cuts a request's connection when its wall-clock deadline passes.

    Read timeouts bound the time between two bytes, not the request: a server answering one byte
    per second (headers or body) would hold a worker for hours. httpx's ``trace`` extension hands
    over the socket each request is sent on; at the deadline a timer thread shuts it down, and the
    blocked read returns.
    """

    def __init__(self, at: float) -> None:
        self.at = at
        self.fired = False
        self.cancelled = False
        self._sockets: list[object] = []
        self._lock = threading.Lock()
        _SCHEDULER.add(self)

    def watch(self, sock: object) -> None:
        with self._lock:
            self._sockets.append(sock)
            fired = self.fired
        if fired:
            _shutdown(sock)

    def trace(self, name: str, info: Mapping[str, Any]) -> None:
        """The ``trace`` request extension: remember the socket a request is sent on.

        A new connection's socket comes with its ``connect_tcp``/``start_tls`` event. A reused
        keep-alive connection has no such event, so when the request headers are sent the
        connection object is looked up on the call stack (httpcore calls the trace from inside the
        connection's ``handle_request``) and its stream's socket taken from there. When neither is
        found, reads stay bounded by the read timeout and the deadline checks between body pieces.
        """
        stream: object = None
        if name.endswith((".connect_tcp.complete", ".start_tls.complete")):
            stream = info.get("return_value")
        elif name.endswith(".send_request_headers.started"):
            stream = _calling_connection_stream()
        get_extra_info = getattr(stream, "get_extra_info", None)
        if get_extra_info is not None:
            self.watch(get_extra_info("socket"))

    def _fire(self) -> None:
        with self._lock:
            if self.cancelled:
                return
            self.fired = True
            sockets = list(self._sockets)
        for sock in sockets:
            _shutdown(sock)

    def cancel(self) -> None:
        """The request is over: forget its sockets (the scheduler drops the entry when it comes due)."""
        with self._lock:
            self.cancelled = True
            self._sockets.clear()


class _Scheduler:
    """One daemon thread that fires every Watchdog at its time (a thread per request would cost more)."""

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, Watchdog]] = []
        self._counter = itertools.count()
        self._condition = threading.Condition()
        self._thread: threading.Thread | None = None

    def add(self, watchdog: Watchdog) -> None:
        with self._condition:
            heapq.heappush(self._heap, (watchdog.at, next(self._counter), watchdog))
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="openmodel-deadlines", daemon=True)
                self._thread.start()
            self._condition.notify()

    def _run(self) -> None:
        while True:
            with self._condition:
                while not self._heap or self._heap[0][0] > time.monotonic():
                    wait = None if not self._heap else self._heap[0][0] - time.monotonic()
                    self._condition.wait(wait)
                _, _, watchdog = heapq.heappop(self._heap)
            if not watchdog.cancelled:
                watchdog._fire()


_SCHEDULER = _Scheduler()


class _FlushFailed(Exception):
    """``flush`` failed (the caller's disk: full, failing): raised as it is, never taken for the server's failure."""

    def __init__(self, error: OSError) -> None:
        super().__init__(str(error))
        self.error = error


Flush = Callable[[memoryview], "memoryview | None"]
"""Takes a full buffer (or the body's rest) to write; may return another buffer of the same size to fill next."""


def _on_disk(call: Callable[..., _R], *args: memoryview) -> _R:
    """Run ``flush`` or ``drain``: their ``OSError`` is the disk's, kept apart from the socket's."""
    try:
        return call(*args)
    except OSError as exc:
        raise _FlushFailed(exc) from exc


def _sized(sink: Callable[[memoryview, int], None], length: int, piece: memoryview) -> None:
    sink(piece, length)


def pump(
    readinto: Callable[[memoryview], int],
    view: memoryview,
    sink: Callable[[memoryview], None],
    flush: Flush,
    drain: Callable[[], None] | None = None,
) -> int:
    """Read a body into ``view`` piece after piece until ``readinto`` answers 0: each piece to ``sink`` as it
    arrives (hashed while in the cache, bounded, cancelled), the buffer to ``flush`` whenever it is full and the
    rest at the end, so every flush but the last is the whole buffer. ``flush`` may answer the buffer to fill
    next (``sources.write_behind``: one is written while the other fills); ``drain`` is called at the end, to
    wait for writes still in flight. Returns the bytes read."""
    received = filled = 0
    while count := readinto(view[filled:]):
        received += count
        sink(view[filled : filled + count])
        filled += count
        if filled == len(view):
            following = _on_disk(flush, view)
            if isinstance(following, memoryview):
                view = following
            filled = 0
    if filled:
        _on_disk(flush, view[:filled])
    if drain is not None:
        _on_disk(drain)
    return received


def _origin(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    return parts.scheme, parts.netloc


def _connect(url: str, timeout: float, context: ssl.SSLContext | None) -> tuple[http.client.HTTPConnection, str]:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise HttpFailure(f"cannot download from {parts.scheme}://{parts.netloc}: not an http(s) URL")
    target = parts.path or "/"
    if parts.query:
        target += "?" + parts.query
    if parts.scheme == "https":
        return http.client.HTTPSConnection(parts.netloc, timeout=timeout, context=context), target
    return http.client.HTTPConnection(parts.netloc, timeout=timeout), target


def stream(
    url: str,
    headers: Mapping[str, str],
    sink: Callable[[memoryview, int], None],
    timeout: float,
    context: ssl.SSLContext | None = None,
    deadline: float | None = None,
    *,
    buffer: memoryview,
    flush: Flush,
    drain: Callable[[], None] | None = None,
) -> None:
    """GET ``url`` and hand each piece of the body to ``sink(piece, content_length)`` as it arrives.

    ``Authorization`` is sent only to the origin of ``url``. The piece is a view into ``buffer`` (e.g. a
    page-aligned one for ``O_DIRECT``): the sink must consume it before returning. The pieces fill the buffer
    one after the other and ``flush(full)`` gets it whenever it is full, and the rest at the end (``pump``):
    whole buffers to write, while the sink still sees every piece at once (to hash it while it is in the
    cache, to stop early). ``flush`` may answer another buffer to fill next, and ``drain`` waits, at the end
    of the body, for writes still in flight (``sources.write_behind``); their ``OSError`` is raised as it is.
    ``deadline`` (a ``time.monotonic()`` value) ends the whole download, redirects included, with
    ``HttpFailure(deadline=True)``. An ``OSError`` of ``flush`` (a full or failing disk) is raised as it is: not
    an ``HttpFailure``, so a caller does not download the file again onto the same disk, nor blame the server.
    """
    origin = _origin(url)
    watchdog = Watchdog(deadline) if deadline is not None else None
    try:
        for _ in range(MAX_REDIRECTS + 1):
            if deadline is not None and time.monotonic() >= deadline:
                raise HttpFailure("the download did not complete within its deadline", deadline=True)
            send = (
                dict(headers) if _origin(url) == origin else {k: v for k, v in headers.items() if k != "Authorization"}
            )
            per_read = timeout if deadline is None else max(0.001, min(timeout, deadline - time.monotonic()))
            connection, target = _connect(url, per_read, context)
            try:
                connection.connect()
                if watchdog is not None:
                    watchdog.watch(connection.sock)
                connection.request("GET", target, headers=send)
                response = connection.getresponse()
                if response.status in _REDIRECTS:
                    location = response.getheader("Location")
                    if not location:
                        raise HttpFailure(f"HTTP {response.status} without a Location", response.status)
                    url = urljoin(url, location)
                    continue
                if response.status != 200:
                    raise HttpFailure(f"HTTP {response.status}", response.status)
                length_header = response.getheader("Content-Length") or ""
                length = int(length_header) if length_header.isdigit() else 0
                received = pump(response.readinto, buffer, functools.partial(_sized, sink, length), flush, drain)
                if watchdog is not None and watchdog.fired:
                    raise HttpFailure("the download did not complete within its deadline", deadline=True)
                if length and received < length:  # http.client reports an early close as a plain end of body
                    raise HttpFailure(f"the connection closed after {received} of {length} bytes")
                return
            except (OSError, http.client.HTTPException) as exc:
                if (watchdog is not None and watchdog.fired) or (
                    isinstance(exc, TimeoutError) and (deadline is not None and time.monotonic() >= deadline - 0.01)
                ):
                    raise HttpFailure("the download did not complete within its deadline", deadline=True) from exc
                raise HttpFailure(f"{type(exc).__name__}: {exc}") from exc
            finally:
                connection.close()
        raise HttpFailure(f"more than {MAX_REDIRECTS} redirects")
    except _FlushFailed as failed:
        raise failed.error from None
    finally:
        if watchdog is not None:
            watchdog.cancel()
