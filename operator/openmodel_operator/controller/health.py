"""The liveness endpoint ``/healthz``, served from a thread of its own.

Kopf's own liveness endpoint is an HTTP server in the operator's event loop, and each probe runs Kopf's
probe activity there too. While the operator catches up (thousands of watch events after a start or a
restart) that loop is busy for seconds at a time, and a probe waited its turn: 7.5 s was measured, more than
the kubelet's timeout, so a working operator could be restarted in the middle of its catch-up.

Here a small HTTP server in a daemon thread answers at once (it needs the GIL for a few microseconds, not
the event loop), and still reports whether the loop turns: a heartbeat task in the loop stamps the time
every second, and ``/healthz`` fails when the last stamp is older than ``stall_limit`` (a loop that is
stuck, not merely busy). It answers 503 ``starting`` until Kopf has run the startup handlers, as Kopf's
endpoint (which did not listen before then) did.
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

log = logging.getLogger(__name__)

STALL_LIMIT = 60.0  # seconds without a heartbeat: the loop is stuck (a busy loop still beats every few seconds)
BEAT_INTERVAL = 1.0


class Health:
    """Whether the operator started and its event loop turns; thread-safe reads."""

    def __init__(self, stall_limit: float = STALL_LIMIT) -> None:
        self.stall_limit = stall_limit
        self.ready = threading.Event()  # pass as kopf.operator(ready_flag=...): set after the startup handlers
        self._last_beat = time.monotonic()

    def beat(self) -> None:
        self._last_beat = time.monotonic()

    async def heartbeat(self, interval: float = BEAT_INTERVAL) -> None:
        """Run in the operator's event loop: stamps the time while the loop turns."""
        while True:
            self.beat()
            await asyncio.sleep(interval)

    def report(self) -> tuple[int, dict[str, Any]]:
        """(HTTP status, body) of ``/healthz``."""
        lag = round(time.monotonic() - self._last_beat, 3)
        if not self.ready.is_set():
            return 503, {"status": "starting"}
        if lag > self.stall_limit:
            return 503, {"status": "stalled", "loopLagSeconds": lag}
        return 200, {"status": "ok", "loopLagSeconds": lag}

    def serve(self, address: str, port: int) -> HealthServer:
        return HealthServer(self, address, port)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


class HealthServer:
    """``GET /healthz`` on ``address:port`` from a daemon thread; ``close()`` stops it."""

    def __init__(self, health: Health, address: str, port: int) -> None:
        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path.split("?", 1)[0] != "/healthz":
                    status, body = 404, {"status": "not found"}
                else:
                    status, body = health.report()
                payload = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, format: str, *args: Any) -> None:
                pass  # probes every few seconds are not news

        server_class = type("Server", (_Server,), {"address_family": _family(address)})
        self._server = server_class((address, port), Handler)
        self.port = int(self._server.server_address[1])
        self._thread = threading.Thread(target=self._server.serve_forever, name="healthz", daemon=True)
        self._thread.start()
        log.info("serving /healthz", extra={"address": address, "port": self.port})

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def _family(address: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in address else socket.AF_INET
