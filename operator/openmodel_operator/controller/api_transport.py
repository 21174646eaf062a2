"""The operator's connection to the Kubernetes API: lightkube's requests carried by aiohttp.

httpx's own connection pool costs about 0.6 ms of CPU per API call, aiohttp's about 0.1 ms (measured with a
fixed-answer server; docs/performance.md, issue 13). A restart with a policy change makes two writes per model,
so at 10,000 models the pool alone was ~12 s of the operator's CPU. lightkube keeps everything else it does:
the kubeconfig or service-account credentials (its auth flow re-reads a rotated token on 401), request
building, and the errors the adapter maps. Every request keeps lightkube's timeouts (connect and read) and
has a deadline for its whole answer, so no answer can hold a pass forever.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator

import aiohttp
import httpx2

# hop-by-hop and framing headers aiohttp writes itself from the body it sends
_OWN_HEADERS = frozenset({"host", "content-length", "transfer-encoding", "connection"})
_CHUNK = 64 * 1024
READS_PER_ANSWER = 6  # a whole answer (headers and body) takes at most this many read timeouts (60 s by default)


def _timeout(request: httpx2.Request) -> aiohttp.ClientTimeout:
    """httpx's per-request timeouts (lightkube's 10 s by default; a watch reads without one), and a deadline for
    the whole answer: a read timeout bounds each read only, so a body trickled a byte at a time, or one that
    never ends, would hold the call (and its pass) for ever."""
    given: dict[str, float | None] = request.extensions.get("timeout") or {}
    connect = given.get("connect")
    read = given.get("read")
    return aiohttp.ClientTimeout(
        total=None if read is None else (connect or 0.0) + READS_PER_ANSWER * read,
        connect=given.get("pool") if given.get("pool") is not None else connect,
        sock_connect=connect,
        sock_read=read,
    )


def _transport_error(exc: BaseException, request: httpx2.Request) -> httpx2.TransportError:
    """aiohttp's failures as the httpx errors the adapter and lightkube already handle."""
    if isinstance(exc, (aiohttp.ServerTimeoutError, asyncio.TimeoutError)):
        return httpx2.ReadTimeout(f"the API server did not answer in time: {exc}", request=request)
    if isinstance(exc, (aiohttp.ClientConnectorError, aiohttp.ClientConnectionResetError)):
        return httpx2.ConnectError(f"cannot reach the API server: {exc}", request=request)
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return httpx2.RemoteProtocolError(f"the API server closed the connection: {exc}", request=request)
    return httpx2.ReadError(f"reading from the API server failed: {exc}", request=request)


class _Body(httpx2.AsyncByteStream):
    """A response body read as httpx reads it (whole or streamed), released to the pool when done."""

    def __init__(self, response: aiohttp.ClientResponse, request: httpx2.Request) -> None:
        self._response = response
        self._request = request

    async def __aiter__(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self._response.content.iter_chunked(_CHUNK):
                yield chunk
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise _transport_error(exc, self._request) from exc

    async def aclose(self) -> None:
        self._response.release()


class AiohttpTransport(httpx2.AsyncBaseTransport):
    """An httpx transport over one aiohttp session, made on first use in the loop that uses it."""

    def __init__(self, ssl_context: ssl.SSLContext | None, max_connections: int = 100) -> None:
        self._ssl = ssl_context
        self._limit = max_connections
        self._session: aiohttp.ClientSession | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def _current(self) -> aiohttp.ClientSession:
        loop = asyncio.get_running_loop()
        if self._session is None or self._loop is not loop or self._session.closed:
            connector = aiohttp.TCPConnector(limit=self._limit, ssl=self._ssl if self._ssl is not None else True)
            # the body is decoded by httpx from the headers it sees, as with its own transport; no proxies from
            # the environment (the API server is reached directly, as the service account's CA expects)
            self._session = aiohttp.ClientSession(connector=connector, auto_decompress=False, trust_env=False)
            self._loop = loop
        return self._session

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        session = self._current()
        body = await request.aread()
        headers = [(k, v) for k, v in request.headers.multi_items() if k.lower() not in _OWN_HEADERS]
        try:
            response = await session.request(
                request.method,
                str(request.url),
                data=body or None,
                headers=headers,
                timeout=_timeout(request),
                allow_redirects=False,
                skip_auto_headers=("Accept", "Accept-Encoding", "User-Agent", "Content-Type"),
            )
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise _transport_error(exc, request) from exc
        return httpx2.Response(
            response.status,
            headers=[(bytes(k), bytes(v)) for k, v in response.raw_headers],
            stream=_Body(response, request),
            request=request,
        )

    async def aclose(self) -> None:
        session, self._session = self._session, None
        if session is not None and not session.closed:
            await session.close()

