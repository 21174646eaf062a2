"""The claim examinations in flight, and the listener their Jobs report to (``pvc://`` sources).

How a report travels: the reconciler makes a random nonce per examination and creates Job
``<name>-examine-<hash>`` with it in its arguments (``planning.claim_examination``); the Job's
``openmodel report-claim`` POSTs ``/claim-reports/<nonce>`` on this listener; the listener keeps the body in
memory under that nonce and wakes the model; the model's next pass parses and decides it
(``evidence.claim_report``, ``sources.examine.examine_report``) like any other source.

Why that is safe although anyone in the namespace can read the nonce and reach the port: the nonce is a
correlation id, not a secret, and a report is never trusted as such. A forged report can at most say what the
claim's own bytes could say: its file list must be exactly what a trusted signature covers (or the pin), the
card and the declaration count only where they hash to that signed digest, and the serving pods re-hash the claim
before the server starts. What the listener must prevent is cost: so it reads only ``POST
/claim-reports/<32 hex>`` for a nonce it is waiting for, one report per nonce, a bounded body
(``MAX_REPORT_BYTES``, Content-Length required) within a deadline, a bounded number of connections at once,
and a bounded rate, both also per client address (one pod cannot starve the other tenants' Jobs);
everything else is answered with a status code and counted, never with an exception.

The server is a few lines of asyncio rather than ``http.server`` threads (a thread per slow client is
unbounded) or aiohttp (no deadline on the request head): every byte it reads is under a limit and a timer.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import re
import secrets
import time
from collections.abc import Callable

from openmodel_operator.controller.metrics import METRICS
from openmodel_operator.evidence.claim_report import MAX_REPORT_BYTES

log = logging.getLogger(__name__)

Key = tuple[str, str]  # (namespace, name) of the model

PATH = "/claim-reports/"
MAX_HEAD_BYTES = 8 * 1024  # request line and headers
READ_DEADLINE = 30.0  # seconds for one whole request (head and body): a slow client is cut off
MAX_CONNECTIONS = 32  # at once; more are closed at once
RATE_PER_SECOND = 20.0  # reports (and refusals) answered per second, with a burst of RATE_BURST
RATE_BURST = 40
# per client address (a pod, or a node when the network masquerades): one pod cannot hold every connection nor
# spend the whole rate, so other tenants' Jobs still get through (a Job makes at most a few attempts)
MAX_PER_PEER = 4
PEER_RATE_PER_SECOND = 2.0
PEER_BURST = 8
MAX_PEERS = 4096  # addresses with a bucket; beyond, the buckets start again (the global ones still apply)
MAX_WAITING = 10_000  # examinations in flight at once (one per model at most)
# reports received and not yet decided: each waits for its model's next pass, so few are held at once; beyond
# these the listener answers 503 and the Job tries again (a tenant cannot make the operator hold 6 MiB per model)
MAX_PENDING_REPORTS = 64
MAX_PENDING_BYTES = 128 * 1024 * 1024
_REQUEST_LINE = re.compile(rb"POST (/[!-~]{0,200}) HTTP/1\.[01]")
_NONCE_PATH = re.compile(r"/claim-reports/([0-9a-f]{32})")


@dataclasses.dataclass
class Waiting:
    """One examination in flight: the model (and its incarnation) it is for, its Job, and what it examines."""

    key: Key
    uid: str
    nonce: str
    request: tuple[str, ...]  # what was asked (uri, signature path...): a changed spec starts a new examination
    job: str = ""
    started: float = 0.0  # monotonic
    report: bytes | None = dataclasses.field(default=None, repr=False)


class ClaimExaminations:
    """The examinations waiting for a report, by model and by nonce; lives in the operator's event loop."""

    def __init__(
        self,
        clock: Callable[[], float] = time.monotonic,
        max_waiting: int = MAX_WAITING,
        max_pending: int = MAX_PENDING_REPORTS,
        max_pending_bytes: int = MAX_PENDING_BYTES,
        max_age: float | None = None,
    ) -> None:
        self._clock = clock
        # an examination no pass looks for any more (its model deleted, its source no longer a claim) is
        # forgotten after this long, with the report it held: a tenant cannot keep nonces and reports waiting
        self._max_age = max_age
        self._max_waiting = max_waiting
        self._max_pending = max_pending
        self._max_pending_bytes = max_pending_bytes
        self._pending: dict[str, int] = {}  # nonce -> bytes of a report received and not yet taken
        self._by_key: dict[Key, Waiting] = {}
        self._by_nonce: dict[str, Waiting] = {}
        # called with the model's key when its report arrived (set by the operator: wakes the model's pass)
        self.on_report: Callable[[Key], None] | None = None

    def __len__(self) -> int:
        return len(self._by_key)

    def waiting(self, key: Key) -> Waiting | None:
        return self._by_key.get(key)

    def begin(self, key: Key, uid: str, request: tuple[str, ...]) -> Waiting:
        """A new examination of the model with a fresh nonce (one in flight per model: an older one is dropped)."""
        self.drop(key)
        self.expire()
        if len(self._by_key) >= self._max_waiting:
            raise RuntimeError(f"{self._max_waiting} claim examinations are in flight already")
        entry = Waiting(key, uid, secrets.token_hex(16), request, started=self._clock())
        self._by_key[key] = entry
        self._by_nonce[entry.nonce] = entry
        return entry

    def drop(self, key: Key) -> Waiting | None:
        """Forget the model's examination (decided, failed, or superseded), and the report it held."""
        entry = self._by_key.pop(key, None)
        if entry is not None:
            self._by_nonce.pop(entry.nonce, None)
            self._pending.pop(entry.nonce, None)
        return entry

    def elapsed(self, entry: Waiting) -> float:
        return self._clock() - entry.started

    def expire(self) -> None:
        """Forget the examinations older than ``max_age`` (a pass that still wants one begins another)."""
        if self._max_age is None:
            return
        stale = []
        for entry in self._by_key.values():  # in the order begun: the oldest first
            if self.elapsed(entry) <= self._max_age:
                break
            stale.append(entry.key)
        for key in stale:
            self.drop(key)

    def refusal(self, nonce: str, length: int = 0) -> int | None:
        """None when a report of ``length`` bytes for ``nonce`` would be kept; else the status it is refused with."""
        self.expire()
        entry = self._by_nonce.get(nonce)
        if entry is None:
            return 404
        if entry.report is not None:
            return 409
        if len(self._pending) >= self._max_pending or sum(self._pending.values()) + length > self._max_pending_bytes:
            return 503  # the passes have not caught up: the Job tries again
        return None

    def deliver(self, nonce: str, body: bytes) -> int:
        """Keep a report for the examination ``nonce``: 202, or 404 (no such examination) / 409 (reported)."""
        refused = self.refusal(nonce, len(body))
        if refused is not None:
            return refused  # 409: one report per examination, a second one (forged or repeated) changes nothing
        entry = self._by_nonce[nonce]
        entry.report = body
        self._pending[nonce] = len(body)
        if self.on_report is not None:
            self.on_report(entry.key)
        return 202


class _Bucket:
    """A token bucket: ``rate`` requests per second, ``burst`` at once."""

    def __init__(self, rate: float, burst: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate, self.burst, self._clock = rate, float(burst), clock
        self._tokens, self._last = float(burst), clock()

    def take(self) -> bool:
        now = self._clock()
        self._tokens = min(self.burst, self._tokens + (now - self._last) * self.rate)
        self._last = now
        if self._tokens < 1.0:
            return False
        self._tokens -= 1.0
        return True


_REASONS = {
    202: "Accepted",
    400: "Bad Request",
    404: "Not Found",
    405: "Method Not Allowed",
    408: "Request Timeout",
    409: "Conflict",
    411: "Length Required",
    413: "Content Too Large",
    415: "Unsupported Media Type",
    429: "Too Many Requests",
    431: "Request Header Fields Too Large",
    503: "Service Unavailable",
}


class ClaimReportListener:
    """``POST /claim-reports/<nonce>`` on ``address:port``; ``close()`` stops it."""

    def __init__(
        self,
        examinations: ClaimExaminations,
        *,
        max_body: int = MAX_REPORT_BYTES,
        deadline: float = READ_DEADLINE,
        max_connections: int = MAX_CONNECTIONS,
        rate: float = RATE_PER_SECOND,
        burst: int = RATE_BURST,
        max_per_peer: int = MAX_PER_PEER,
        peer_rate: float = PEER_RATE_PER_SECOND,
        peer_burst: int = PEER_BURST,
    ) -> None:
        self.examinations = examinations
        self.max_body = max_body
        self.deadline = deadline
        self.max_connections = max_connections
        self.max_per_peer = max_per_peer
        self._bucket = _Bucket(rate, burst)
        self._peer_rate, self._peer_burst = peer_rate, peer_burst
        self._peer_buckets: dict[str, _Bucket] = {}
        self._peer_open: dict[str, int] = {}
        self._open = 0
        self._server: asyncio.AbstractServer | None = None
        self.port = 0

    async def start(self, address: str, port: int) -> ClaimReportListener:
        self._server = await asyncio.start_server(self._serve, address, port, limit=MAX_HEAD_BYTES)
        self.port = int(self._server.sockets[0].getsockname()[1])
        log.info("serving claim reports", extra={"address": address, "port": self.port})
        return self

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 5)
            self._server = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peername = writer.get_extra_info("peername")
        peer = str(peername[0]) if isinstance(peername, tuple) and peername else ""
        if self._open >= self.max_connections or self._peer_open.get(peer, 0) >= self.max_per_peer:
            self._count("busy")
            await self._answer(writer, 503)
            return
        self._open += 1
        self._peer_open[peer] = self._peer_open.get(peer, 0) + 1
        try:
            try:
                status = await asyncio.wait_for(self._read(reader, peer), self.deadline)
            except TimeoutError:
                status = self._refused("slow", 408)
            except (asyncio.LimitOverrunError, asyncio.IncompleteReadError, ValueError):
                status = self._refused("malformed", 400)
            except ConnectionError:
                return
            await self._answer(writer, status)
        except Exception:  # one client never takes the listener down
            log.exception("claim report listener: a request failed")
        finally:
            self._open -= 1
            left = self._peer_open.pop(peer, 1) - 1
            if left > 0:
                self._peer_open[peer] = left

    def _peer_bucket(self, peer: str) -> _Bucket:
        bucket = self._peer_buckets.get(peer)
        if bucket is None:
            if len(self._peer_buckets) >= MAX_PEERS:
                self._peer_buckets.clear()
            bucket = self._peer_buckets[peer] = _Bucket(self._peer_rate, self._peer_burst)
        return bucket

    async def _read(self, reader: asyncio.StreamReader, peer: str = "") -> int:
        head = await reader.readuntil(b"\r\n\r\n")  # at most MAX_HEAD_BYTES (the stream's limit)
        lines = head.split(b"\r\n")
        # the client's own share first: a client past it spends none of the listener's
        if not self._peer_bucket(peer).take() or not self._bucket.take():
            return self._refused("rate", 429)
        match = _REQUEST_LINE.fullmatch(lines[0])
        if match is None:
            return self._refused("method", 405)
        path = _NONCE_PATH.fullmatch(match.group(1).decode("ascii"))
        if path is None:
            return self._refused("path", 404)
        headers: dict[str, str] = {}
        for line in lines[1:]:
            if line:
                name, sep, value = line.partition(b":")
                if not sep:
                    return self._refused("malformed", 400)
                headers[name.strip().lower().decode("latin-1")] = value.strip().decode("latin-1")
        if "transfer-encoding" in headers:
            return self._refused("length", 411)  # chunked bodies are not read: the length is known up front
        if headers.get("content-type", "").split(";")[0].strip().lower() != "application/json":
            return self._refused("type", 415)
        length_text = headers.get("content-length", "")
        if not length_text.isdigit() or len(length_text) > 12:
            return self._refused("length", 411)
        length = int(length_text)
        if length > self.max_body:
            return self._refused("size", 413)
        nonce = path.group(1)
        refused = self.examinations.refusal(nonce, length)
        if refused is not None:  # the body of a report nobody waits for (or that cannot be held now) is not read
            return self._refused("nonce", refused)
        body = await reader.readexactly(length)
        status = self.examinations.deliver(nonce, body)
        if status == 202:
            self._count("accepted")
        else:
            self._refused("nonce", status)
        return status

    def _refused(self, why: str, status: int) -> int:
        self._count(why)
        return status

    @staticmethod
    def _count(outcome: str) -> None:
        METRICS.claim_reports.labels(outcome=outcome).inc()

    @staticmethod
    async def _answer(writer: asyncio.StreamWriter, status: int) -> None:
        text = _REASONS.get(status, "Error")
        body = f'{{"status":{status},"reason":"{text}"}}'.encode()
        with contextlib.suppress(Exception):
            writer.write(
                f"HTTP/1.1 {status} {text}\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n"
                "Connection: close\r\n\r\n".encode()
                + body
            )
            await asyncio.wait_for(writer.drain(), 5)
        with contextlib.suppress(Exception):
            writer.close()
            await asyncio.wait_for(writer.wait_closed(), 5)
