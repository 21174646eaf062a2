"""Streaming one file over HTTP(S) into a reused buffer: the weight-download path of ``trust.pull``.

Why not httpx: it hands the body over in small ``bytes`` pieces created and joined in Python, which
held one stream to ~0.4 GB/s on two cores (bench/bench_trust.py). ``http.client`` reads straight into
a preallocated buffer (``readinto``), so the single pass — read, hash, write — runs at disk and SHA-256
speed. Redirects are followed by hand so the token never leaves the endpoint's origin (the Hub
redirects LFS files to a CDN with a signed URL).
"""

from __future__ import annotations

import http.client
import ssl
from collections.abc import Callable, Mapping
from urllib.parse import urljoin, urlsplit

BUFFER = 4 * 1024 * 1024
MAX_REDIRECTS = 5
_REDIRECTS = {301, 302, 303, 307, 308}


class HttpFailure(Exception):
    """A download attempt failed; ``status`` is the HTTP code, or None for a transport error."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


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
) -> None:
    """GET ``url`` and hand each piece of the body to ``sink(piece, content_length)``.

    ``Authorization`` is sent only to the origin of ``url``. The piece is a view into a reused
    buffer: the sink must consume it before returning.
    """
    origin = _origin(url)
    buffer = bytearray(BUFFER)
    view = memoryview(buffer)
    for _ in range(MAX_REDIRECTS + 1):
        send = dict(headers) if _origin(url) == origin else {k: v for k, v in headers.items() if k != "Authorization"}
        connection, target = _connect(url, timeout, context)
        try:
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
            if length and received < length:  # http.client reports an early close as a plain end of body
                raise HttpFailure(f"the connection closed after {received} of {length} bytes")
            return
        except (OSError, http.client.HTTPException) as exc:
            raise HttpFailure(f"{type(exc).__name__}: {exc}") from exc
        finally:
            connection.close()
    raise HttpFailure(f"more than {MAX_REDIRECTS} redirects")
