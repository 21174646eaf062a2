"""Hostile answers for the Hub stand-in (``HubStub.override``): slow drips, bombs, echoes, redirects.

Each helper writes a raw HTTP answer on the handler's socket, as a lying or compromised endpoint
would, so the tests exercise the client's own limits rather than the stub's good manners.
"""

from __future__ import annotations

import gzip
import json
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from hubstub import HubStub

Handler = Any  # hubstub._Handler (a BaseHTTPRequestHandler bound to a stub)


def is_model_info(handler: Handler) -> bool:
    path = handler.path.split("?")[0]
    return path.startswith("/api/models/") and "/revision/" in path


def is_tree(handler: Handler) -> bool:
    return handler.path.startswith("/api/models/") and "/tree/" in handler.path


def is_resolve(handler: Handler, name: str | None = None) -> bool:
    path = handler.path.split("?")[0]
    return "/resolve/" in path and (name is None or path.endswith("/" + name))


def write_raw(handler: Handler, data: bytes) -> bool:
    """Write bytes as they are; False when the client hung up."""
    try:
        handler.wfile.write(data)
        handler.wfile.flush()
    except OSError:
        return False
    with handler.stub._lock:
        handler.stub.bytes_served += len(data)
    return True


def head(status: int, headers: Mapping[str, str]) -> bytes:
    lines = [f"HTTP/1.1 {status} X"] + [f"{k}: {v}" for k, v in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8")  # a hostile server need not stick to latin-1


def drip(handler: Handler, data: bytes, every: float, limit: float = 30.0) -> None:
    """Send ``data`` one byte at a time, ``every`` seconds apart, until done, hung up or ``limit``."""
    handler.close_connection = True
    started = time.monotonic()
    for i in range(len(data)):
        if time.monotonic() - started > limit or not write_raw(handler, data[i : i + 1]):
            return
        time.sleep(every)


def drip_body(status: int = 200, length: int = 100_000, every: float = 0.1) -> Callable[[Handler], None]:
    """Headers at once (a Content-Length promising ``length`` bytes), then the body one byte at a time."""

    def answer(handler: Handler) -> None:
        handler.close_connection = True
        if write_raw(handler, head(status, {"Content-Type": "application/json", "Content-Length": str(length)})):
            drip(handler, b"[" + b" " * (length - 1), every)

    return answer


def drip_headers(every: float = 0.1) -> Callable[[Handler], None]:
    """The status line and an endless header, one byte at a time: the answer never starts."""

    def answer(handler: Handler) -> None:
        drip(handler, b"HTTP/1.1 200 OK\r\nX-Slow: " + b"a" * 50_000, every)

    return answer


def send(
    handler: Handler, status: int, body: bytes | Iterable[bytes], headers: Mapping[str, str] | None = None
) -> None:
    """A complete answer; ``body`` may be an iterable of pieces (sent until the client hangs up)."""
    handler.close_connection = True
    all_headers = dict(headers or {})
    if isinstance(body, bytes):
        all_headers.setdefault("Content-Length", str(len(body)))
        pieces: Iterable[bytes] = [body]
    else:
        pieces = body
    all_headers.setdefault("Content-Type", "application/json")
    if not write_raw(handler, head(status, all_headers)):
        return
    for piece in pieces:
        if not write_raw(handler, piece):
            return


def send_json(handler: Handler, payload: Any, headers: Mapping[str, str] | None = None) -> None:
    send(handler, 200, json.dumps(payload).encode(), headers)


def gzip_bomb(size: int) -> bytes:
    """``size`` zero bytes, gzipped (about 1000 times smaller)."""
    return gzip.compress(b"\x00" * size, compresslevel=9)


def model_info_of(hub: HubStub, repo_id: str, answered_id: str | None = None) -> dict[str, Any]:
    """What the Hub answers for model information with ``expand=sha``, optionally under another id."""
    repo = hub.repos[repo_id]
    sha = repo.branches["main"]
    return {"_id": "0" * 24, "id": answered_id or repo_id, "sha": sha}


def until_hung_up(piece: bytes, total: int) -> Iterable[bytes]:
    """``piece`` repeated up to ``total`` bytes (a huge body produced lazily)."""
    sent = 0
    while sent < total:
        yield piece
        sent += len(piece)
