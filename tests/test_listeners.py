"""The metrics and health listeners: loopback unless told otherwise, and /healthz answers while the event
loop is busy (Kopf's in-loop endpoint took 7.5 s during a catch-up) yet fails when the loop is stuck."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
import urllib.error
import urllib.request
from typing import Any

import pytest

from openmodel_operator.cli import build_parser, main
from openmodel_operator.commands.run import settings_from
from openmodel_operator.controller.health import Health, HealthServer
from openmodel_operator.controller.settings import OperatorSettings


def _get(port: int, path: str = "/healthz", host: str = "127.0.0.1") -> tuple[int, dict[str, Any]]:
    try:
        with urllib.request.urlopen(f"http://{host}:{port}{path}", timeout=10) as rsp:
            return rsp.status, json.loads(rsp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_listeners_default_to_loopback_and_follow_env_then_flags(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("OPENMODEL_METRICS_ADDRESS", "OPENMODEL_HEALTH_ADDRESS"):
        monkeypatch.delenv(name, raising=False)
    defaults = settings_from(build_parser().parse_args(["run"]))
    assert (defaults.metrics_address, defaults.health_address) == ("127.0.0.1", "127.0.0.1")
    monkeypatch.setenv("OPENMODEL_HEALTH_ADDRESS", "0.0.0.0")
    monkeypatch.setenv("OPENMODEL_METRICS_ADDRESS", "::")
    from_env = settings_from(build_parser().parse_args(["run"]))
    assert (from_env.metrics_address, from_env.health_address) == ("::", "0.0.0.0")
    flags = build_parser().parse_args(["run", "--health-address", "127.0.0.1", "--metrics-address", "10.1.2.3"])
    assert (settings_from(flags).metrics_address, settings_from(flags).health_address) == ("10.1.2.3", "127.0.0.1")


@pytest.mark.parametrize("address", ["localhost", "0.0.0.0:8081", "example.com", "127.0.0.1 ; true", ""])
def test_an_address_that_is_not_an_ip_is_refused(address: str, capsys: pytest.CaptureFixture[str]) -> None:
    if address:
        with pytest.raises(ValueError, match="not an IP address"):
            OperatorSettings(health_address=address)
    code = main(["run", "--metrics-port", "0", "--health-address", address or "-", "--standalone"])
    assert code == 2 and "not an IP address" in capsys.readouterr().err
    assert OperatorSettings(health_address="::1").health_address == "::1"  # control: IPv6 is an IP


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_openmodel_run_listens_on_loopback_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    import kopf
    import prometheus_client

    for name in ("OPENMODEL_METRICS_ADDRESS", "OPENMODEL_HEALTH_ADDRESS", "OPENMODEL_HEALTH_PORT"):
        monkeypatch.delenv(name, raising=False)
    metrics: list[tuple[Any, ...]] = []
    monkeypatch.setattr(
        prometheus_client, "start_http_server", lambda port, addr, registry: metrics.append((port, addr))
    )
    monkeypatch.setattr("openmodel_operator.controller.logs.configure_logging", lambda *_a, **_k: None)
    seen: dict[str, Any] = {}
    health_port, metrics_port = _free_port(), _free_port()
    bound: list[str] = []
    listen = HealthServer.__init__

    def spy(self: HealthServer, health: Health, address: str, port: int) -> None:
        bound.append(address)
        listen(self, health, address, port)

    monkeypatch.setattr(HealthServer, "__init__", spy)

    async def fake_operator(ready_flag: threading.Event, **kwargs: Any) -> None:
        # what the kubelet would see while the operator runs: starting, then ok once Kopf is ready
        seen["before"] = await asyncio.to_thread(_get, health_port)
        ready_flag.set()
        await asyncio.sleep(0.05)
        seen["after"] = await asyncio.to_thread(_get, health_port)
        seen["kwargs"] = kwargs

    monkeypatch.setattr(kopf, "operator", fake_operator)

    monkeypatch.setattr("openmodel_operator.commands.run.reach_cluster", lambda *_a: None)  # no cluster here
    assert main(["run", "--standalone", "--health-port", str(health_port), "--metrics-port", str(metrics_port)]) == 0
    assert metrics == [(metrics_port, "127.0.0.1")] and bound == ["127.0.0.1"]
    assert seen["before"] == (503, {"status": "starting"})
    assert seen["after"][0] == 200 and seen["after"][1]["status"] == "ok"
    assert "liveness_endpoint" not in seen["kwargs"], "Kopf's in-loop endpoint is not started"
    with pytest.raises(OSError):  # stopped with the operator
        _get(health_port)


def test_healthz_answers_while_the_event_loop_is_busy_and_fails_when_it_is_stuck() -> None:
    health = Health(stall_limit=0.5)
    server = health.serve("127.0.0.1", 0)
    try:
        health.ready.set()

        async def busy_then_stuck() -> tuple[tuple[int, Any], tuple[int, Any], tuple[int, Any]]:
            beat = asyncio.create_task(health.heartbeat(interval=0.05))
            await asyncio.sleep(0.1)
            answers: list[tuple[int, Any]] = []
            asked = threading.Thread(target=lambda: answers.append(_get(server.port)))
            asked.start()
            asked.join(timeout=10)  # the loop is blocked right here: only a server outside it can answer
            busy = answers[0]
            time.sleep(1.0)  # the loop stays blocked past the stall limit: stuck
            stuck = _get(server.port)
            await asyncio.sleep(0.2)  # the loop turns again
            recovered = _get(server.port)
            beat.cancel()
            return busy, stuck, recovered

        busy, stuck, recovered = asyncio.run(busy_then_stuck())
        assert busy[0] == 200 and busy[1]["status"] == "ok"
        assert stuck[0] == 503 and stuck[1]["status"] == "stalled" and stuck[1]["loopLagSeconds"] >= 0.5
        assert recovered[0] == 200
        assert _get(server.port, "/metrics")[0] == 404  # nothing else is served
    finally:
        server.close()
