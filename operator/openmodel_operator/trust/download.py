"""Streaming one file over HTTP(S) into a reused buffer: the weight-download path of ``trust.pull``.

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
import http.client
import socket
import ssl
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urljoin, urlsplit

BUFFER = 4 * 1024 * 1024
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


def _shutdown(sock: object) -> None:
    """Shut a socket down from another thread: a blocked ``recv`` returns at once (``close`` would not wake it)."""
    if isinstance(sock, socket.socket):
        with contextlib.suppress(OSError):
            socket.socket.shutdown(sock, socket.SHUT_RDWR)  # the plain socket's, also for an SSLSocket


class Watchdog:
    """Cuts a request's connection when its wall-clock deadline passes.

    Read timeouts bound the time between two bytes, not the request: a server answering one byte
    per second (headers or body) would hold a worker for hours. httpx's ``trace`` extension hands
    over each new connection's socket (requests ask for ``Connection: close``, so every request
    opens its own); at the deadline a timer thread shuts it down, and the blocked read returns.
    """

    def __init__(self, at: float) -> None:
        self.at = at
        self.fired = False
        self._sockets: list[object] = []
        self._lock = threading.Lock()
        self._timer = threading.Timer(max(0.0, at - time.monotonic()), self._fire)
        self._timer.daemon = True
        self._timer.start()

    def watch(self, sock: object) -> None:
        with self._lock:
            self._sockets.append(sock)
            fired = self.fired
        if fired:
            _shutdown(sock)

    def trace(self, name: str, info: Mapping[str, Any]) -> None:
        """The ``trace`` request extension: remember the socket of every connection opened for the request."""
        if name.endswith((".connect_tcp.complete", ".start_tls.complete")):
            stream = info.get("return_value")
            get_extra_info = getattr(stream, "get_extra_info", None)
            if get_extra_info is not None:
                self.watch(get_extra_info("socket"))

    def _fire(self) -> None:
        with self._lock:
            self.fired = True
            sockets = list(self._sockets)
        for sock in sockets:
            _shutdown(sock)

    def cancel(self) -> None:
        self._timer.cancel()


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
) -> None:
    """GET ``url`` and hand each piece of the body to ``sink(piece, content_length)``.

    ``Authorization`` is sent only to the origin of ``url``. The piece is a view into a reused
    buffer: the sink must consume it before returning. ``deadline`` (a ``time.monotonic()`` value)
    ends the whole download, redirects included, with ``HttpFailure(deadline=True)``.
    """
    origin = _origin(url)
    buffer = bytearray(BUFFER)
    view = memoryview(buffer)
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
                received = 0
                while count := response.readinto(buffer):
                    received += count
                    sink(view[:count], length)
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
    finally:
        if watchdog is not None:
            watchdog.cancel()
