"""Stopping the operator while passes are in flight (a rolling update of the operator, a node drain).

The workers are stopped before the API client closes: a pass that was waiting for its examination when the
stop came ends there, instead of going on with a closed client and logging a crash per model (an SRE reading
the log of every ordinary restart would see dozens of tracebacks), and the next replica decides it again.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any

import pytest

from kube_fixtures import kube, run_operator
from openmodel_operator.controller.kube import Kube
from openmodel_operator.controller.reconciler import Reconciler
from test_operator import World, operator, world

__all__ = ["kube", "operator", "run_operator", "world"]  # fixtures, imported for pytest


async def test_a_stop_during_examinations_ends_their_passes_without_a_crash_and_the_next_start_decides_them(
    world: World, operator: Any, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    world.publish()
    world.policy()
    for name in ("a", "b", "c"):
        world.model(name)
    started = asyncio.Event()
    original = Reconciler._examined_in_thread

    async def slow(self: Reconciler, namespace: str, request: Any, policies: Sequence[Any], examiner: Any) -> Any:
        started.set()
        await asyncio.sleep(0.5)  # the stop comes while every examination waits here
        return await original(self, namespace, request, policies, examiner)

    monkeypatch.setattr(Reconciler, "_examined_in_thread", slow)
    running_at_close: list[list[str]] = []
    close = Kube.close

    async def recorded_close(self: Kube) -> None:
        running_at_close.append(
            sorted(t.get_name() for t in asyncio.all_tasks() if t.get_name().startswith("openmodel-") and not t.done())
        )
        await close(self)

    monkeypatch.setattr(Kube, "close", recorded_close)
    caplog.set_level(logging.INFO)
    async with operator():
        await asyncio.wait_for(started.wait(), timeout=10)
    assert running_at_close == [[]], "the API client closed while workers could still start passes with it"
    await asyncio.sleep(1.0)  # past the examinations' wait: a pass still running would go on now
    crashed = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert crashed == [], [r.getMessage() for r in crashed]
    monkeypatch.setattr(Reconciler, "_examined_in_thread", original)
    async with operator():  # control: the passes that were stopped are made by the next start
        for name in ("a", "b", "c"):
            await world.phase("Pulling", name)
