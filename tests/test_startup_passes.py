"""Passes before the start-up listing ended (issue 13: "a model created at any moment Trusted within seconds").

On a slow API server an operator's start-up listing of 10,000 models and their children takes a minute; a new,
edited or deleted model is passed at once from direct reads (``controller/startup_reads.py``), and the
catch-up of settled models waits for the complete caches. The listing is held open here until the test lets
it end (a monkeypatched readiness), so "before the listing ended" is exact, not a race.

Hostile cases: a pass made before the policy index is filled must still be judged by every policy (the namespace
labels that select one included), and must find the children a model already has (never a second pull Job, never
"name taken by somebody else").
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any

import kopf
import pytest

from kube_fixtures import _add_login, kube, run_operator, tuned_settings
from openmodel_operator.controller import kopf_watch
from openmodel_operator.controller.handlers import CHILD_KINDS, build_registry
from openmodel_operator.controller.kube import Kube, client_for
from openmodel_operator.controller.startup_reads import EARLY_PASSES, StartupReads
from signing_fixtures import new_key
from test_operator import NS, World, operator, operator_settings_for, world

__all__ = ["kube", "operator", "run_operator", "world"]  # fixtures, imported for pytest


@pytest.fixture
def listing(monkeypatch: pytest.MonkeyPatch) -> asyncio.Event:
    """Set it to let Kopf's start-up listing end (until then the operator is not 'indexed')."""
    done = asyncio.Event()
    original: Callable[[Any], Coroutine[Any, Any, None]] = kopf_watch.wait_until_indexed

    async def held_open(settings: Any) -> None:
        await done.wait()
        await original(settings)

    monkeypatch.setattr(kopf_watch, "wait_until_indexed", held_open)
    return done


async def test_a_model_created_during_the_start_up_listing_is_trusted_before_it_ends_and_settled_ones_wait(
    world: World, operator: Any, listing: asyncio.Event
) -> None:
    world.publish()
    world.policy()
    world.model("settled")
    listing.set()
    async with operator():
        await world.phase("Pulling", "settled")
    listing.clear()
    for record in world.manifests("settled"):  # drift while the operator was down
        assert world.kube.delete_object("configmaps", NS, record["metadata"]["name"]) is None
    async with operator():
        world.model("new")
        await world.until(lambda: world.cond("Trusted", "new") == ("True", "PoliciesPassed"), timeout=10)
        await world.until(lambda: world.jobs("new"), timeout=10)  # its pull starts too
        assert world.manifests("settled") == [], "a settled model had its catch-up pass before the listing ended"
        listing.set()
        await world.until(lambda: world.manifests("settled"), timeout=10)  # then its pass repairs the drift


async def test_a_pass_before_the_listing_ends_is_judged_by_every_policy_selected_by_namespace_labels(
    world: World, operator: Any, listing: asyncio.Event
) -> None:
    """A second policy, selecting the namespace by a label, trusts another key only: the model must be refused
    although the policy index is still empty when its pass runs (fail closed, not decided by 'org' alone)."""
    world.publish()
    world.policy()
    world.policy(name="prod-only", key=new_key(), namespaceSelector={"matchLabels": {"tier": "prod"}})
    world.kube.patch_object("namespaces", None, NS, {"metadata": {"labels": {"tier": "prod"}}})
    async with operator():
        world.model("m")
        await world.until(lambda: (world.cond("Trusted", "m") or ("",))[0] == "False", timeout=10)
        assert not listing.is_set()
        assert world.jobs("m") == []
        records = {p["name"]: p["verdict"] for p in world.status("m")["provenance"]["policies"]}
        assert records == {"org": "Pass", "prod-only": "Fail"}


async def test_an_edited_model_finds_its_own_children_before_the_listing_ends(
    world: World, operator: Any, listing: asyncio.Event
) -> None:
    """Edited while the operator was down (an urgent pass at start): its pull Job exists from before; the pass
    before the listing ended must find it, not create a second one or take it for somebody else's."""
    world.publish()
    world.policy()
    world.model("m")
    listing.set()
    async with operator():
        await world.phase("Pulling")
    listing.clear()
    before = world.jobs("m")
    world.kube.patch_object("openmodels", NS, "m", {"spec": {"serving": {"replicas": 2}}})
    generation = world.get("m")["metadata"]["generation"]
    async with operator():
        await world.until(lambda: world.status("m").get("observedGeneration") == generation, timeout=10)
        assert not listing.is_set()
        assert [j["metadata"]["uid"] for j in world.jobs("m")] == [j["metadata"]["uid"] for j in before]
        assert world.status("m")["phase"] == "Pulling"
        assert world.cond("Trusted", "m") == ("True", "PoliciesPassed")


@contextlib.asynccontextmanager
async def _replica_with_peering(world: World, priority: int) -> AsyncIterator[Any]:
    """The operator as the HA overlay runs it: peering auto-detected (no --standalone), a random priority."""
    settings = tuned_settings()
    registry = build_registry(operator_settings_for(world), lambda: Kube(client_for(world.kube.base_url)))
    _add_login(registry, world.kube)
    stop, ready = asyncio.Event(), asyncio.Event()
    task = asyncio.create_task(
        kopf.operator(
            registry=registry, settings=settings, priority=priority, clusterwide=True, stop_flag=stop, ready_flag=ready
        )
    )
    try:
        await asyncio.wait_for(ready.wait(), 10)
        yield settings
    finally:
        stop.set()
        try:
            await asyncio.wait_for(asyncio.shield(task), 10)
        except TimeoutError:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


def _writes(world: World) -> list[str]:
    """Every write a replica sent to the models and their children (Kopf's keep-alives and Events excluded)."""
    return [
        f"{r.method} {r.resource.plural if r.resource is not None else '?'}/{r.name}"
        for r in world.kube._requests
        if str(r.method).upper().rsplit(".", 1)[-1] not in ("GET", "HEAD")
        and (r.resource is None or r.resource.plural not in ("clusterkopfpeerings", "kopfpeerings", "events"))
    ]


@pytest.mark.parametrize("leader", [True, False], ids=["standby-beside-a-live-leader", "alone"])
async def test_a_standby_replica_makes_no_early_pass_before_its_peering_is_known(
    world: World, listing: asyncio.Event, leader: bool
) -> None:
    """Attack (HA rollout): a tenant edits a model while a new replica starts beside the active one. Kopf turns
    the pause on only once its peering observer has read the peers; an early pass must wait for that, or a
    standby writes status, finalizers and children beside the leader (two replicas deciding one model)."""
    world.publish()
    world.policy()
    now = datetime.datetime.now(datetime.UTC).isoformat()
    peers = {"the-leader": {"priority": 30000, "lifetime": 60, "lastseen": now}} if leader else {}
    world.kube.create_object(
        {"apiVersion": "kopf.dev/v1", "kind": "ClusterKopfPeering", "metadata": {"name": "default"}}
    )
    world.kube.patch_status("clusterkopfpeerings", None, "default", peers)  # the leader's keep-alive

    async def slow_peers() -> None:
        await asyncio.sleep(1.5)  # the peers' listing answers a moment after the models' (a busy API server)

    world.kube["list", world.kube.resource("kopf.dev/v1/clusterkopfpeerings")] << slow_peers
    world.model("m")
    async with _replica_with_peering(world, priority=1):
        if leader:
            await asyncio.sleep(3.0)
            assert not listing.is_set()
            assert _writes(world) == [], "a standby replica wrote before it knew of the live leader"
            assert "status" not in world.get("m") or not world.status("m").get("phase")
        else:  # control: without a live peer the early pass runs at once
            await world.until(lambda: world.cond("Trusted", "m") == ("True", "PoliciesPassed"), timeout=10)
            assert not listing.is_set()


async def test_a_model_deleted_without_our_finalizer_during_the_listing_loses_its_children(
    world: World, operator: Any, listing: asyncio.Event
) -> None:
    """Attack: after a restart, while Kopf still lists the Deployments, a tenant takes our finalizer off a served
    model and deletes it. Its DELETED event comes before the child cache holds the Deployment: the model must not
    be forgotten as childless, or the Deployment serves on where no revocation reaches it. Control: the
    namespace's other served model keeps its Deployment."""
    world.publish()
    world.policy()
    world.model("m")
    world.model("keep")
    listing.set()
    async with operator():
        await world.serve("m")
        await world.serve("keep")
    listing.clear()

    async def slow_children() -> None:
        await asyncio.sleep(3.0)  # a slow API server lists the children of 10,000 models

    for group, version, plural, _ in CHILD_KINDS:
        world.kube["list", world.kube.resource(f"{group}/{version}/{plural}".lstrip("/"))] << slow_children
    async with operator():
        await asyncio.sleep(1.0)  # the models are listed, their children not yet
        assert not listing.is_set()
        world.kube.patch_object("openmodels", NS, "m", {"metadata": {"finalizers": []}})
        world.kube.delete_object("openmodels", NS, "m")
        await asyncio.sleep(3.0)  # the children's listings end
        listing.set()
        await world.until(lambda: world.child("deployments", "m") is None, timeout=10)
        assert world.child("deployments", "keep") is not None


async def test_a_pass_waiting_for_an_early_slot_stops_waiting_when_the_listing_ends() -> None:
    """Four early passes at once; a fifth waits, and once the listing ended it runs from the caches at once
    (False) instead of queueing behind them. A slot freed before that is taken (True)."""
    reads = StartupReads(lambda: None, ())  # type: ignore[arg-type,return-value]  # no reads in this test
    held = [reads.slot() for _ in range(EARLY_PASSES)]
    assert [await slot.__aenter__() for slot in held] == [True] * EARLY_PASSES
    waiting = reads.slot()
    entered = asyncio.ensure_future(waiting.__aenter__())
    await asyncio.sleep(0.05)
    assert not entered.done()
    await held[0].__aexit__(None, None, None)  # control: a freed slot goes to the waiting pass
    assert await asyncio.wait_for(entered, 1) is True
    late = reads.slot()
    entered = asyncio.ensure_future(late.__aenter__())
    await asyncio.sleep(0.05)
    assert not entered.done()
    reads.listing_ended()
    assert await asyncio.wait_for(entered, 1) is False
    await late.__aexit__(None, None, None)
    for slot in [*held[1:], waiting]:
        await slot.__aexit__(None, None, None)
    again = reads.slot()
    assert await again.__aenter__() is True  # no slot leaked: all four are free again
    await again.__aexit__(None, None, None)
    assert reads._slots._value == EARLY_PASSES
