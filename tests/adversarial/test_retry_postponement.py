"""Threat: the retry backoff of a failed examination changes what a pass decides (review of issue 12).

The backoff may only change *when* the source is asked again: while it runs, a pass must repeat the
decision the failed examination led to (a served model stays Degraded, a revocation is still decided
offline), never treat the model as one that was never examined. Each case runs next to its control.
"""

from __future__ import annotations

import asyncio
from typing import Any

from operator_world import World

from signing_fixtures import new_key

pytest_plugins = ["operator_world"]


def _replicas(world: World, name: str = "m") -> int | None:
    deployment = world.child("deployments", name)
    return None if deployment is None else deployment["spec"].get("replicas")


def _down(world: World) -> None:
    def hostile(handler: Any) -> bool:
        handler._send(503, b'{"error": "unavailable"}', {"Content-Type": "application/json"}, False)
        return True

    world.hub.override = hostile


def _hub_requests(world: World) -> int:
    return sum(world.hub.requests.values())


async def _served_then_restarted_without_recorded_evidence(world: World, operator: Any, keep_evidence: bool) -> None:
    """Served by one operator process; the next process finds the source down at its periodic check and,
    unless ``keep_evidence``, a manifest ConfigMap without recorded evidence (as an older version wrote it)."""
    world.publish()
    world.policy()
    world.model()
    async with operator():
        await world.serve()
    if not keep_evidence:
        world.kube.patch_object("configmaps", "models", world.manifest_name(), {"binaryData": None})
    _down(world)


async def test_a_served_model_stays_degraded_through_the_backoff_after_a_restart(world: World, operator: Any) -> None:
    """No recorded evidence after a restart: the periodic check keeps the content serving, Degraded, and the
    passes during the backoff must say the same (they used to re-run it as 'NotExamined' and scale to zero)."""
    await _served_then_restarted_without_recorded_evidence(world, operator, keep_evidence=False)
    async with operator(reverify_interval=4):
        await world.phase("Degraded", timeout=15)
        for _ in range(12):  # several resync periods, all inside the backoff
            await asyncio.sleep(0.25)
            assert world.status()["phase"] == "Degraded", world.summary()
            assert _replicas(world) == 1


async def test_control_with_recorded_evidence_a_restarted_operator_keeps_serving(world: World, operator: Any) -> None:
    await _served_then_restarted_without_recorded_evidence(world, operator, keep_evidence=True)
    async with operator(reverify_interval=4):
        await world.phase("Degraded", timeout=15)
        for _ in range(12):
            await asyncio.sleep(0.25)
            assert world.status()["phase"] == "Degraded", world.summary()
            assert _replicas(world) == 1


async def test_a_degraded_model_backs_off_its_source(world: World, operator: Any) -> None:
    """SourceAvailable=False: the source is asked again after the backoff, not on every 0.5 s resync."""
    world.publish()
    world.policy()
    world.model()
    async with operator(reverify_interval=4):
        await world.serve()
        _down(world)
        await world.phase("Degraded", timeout=15)
        assert (world.cond("SourceAvailable") or ("", ""))[0] == "False"
        before = _hub_requests(world)
        await asyncio.sleep(2.5)  # five resync periods, inside a backoff of min(30 s, reverify_interval)
        assert _hub_requests(world) == before, "the source was asked again before the backoff ran out"


async def test_a_degraded_model_in_its_backoff_is_still_revoked_offline(world: World, operator: Any) -> None:
    """Control for the backoff: a rotated key rejects at once, from the recorded evidence, with no network."""
    world.publish()
    world.policy()
    world.model()
    async with operator(reverify_interval=2):
        await world.serve()
        _down(world)
        await world.phase("Degraded", timeout=15)
        world.trust_only(new_key())
        await world.phase("Rejected", timeout=3)
        assert world.cond("Trusted") == ("False", "UntrustedSigner")
        await world.until(lambda: _replicas(world) == 0, timeout=3)
