"""The OpenModels are listed before the operator's children (issue 13: "a model created at any moment Trusted
within seconds").

A model created during a restart is seen only once the OpenModel listing ended (its watch starts there). At
10,000 models the children's listings hold five times as many objects; listed at the same time they shared
the API server and the operator with the OpenModels' and delayed it. The children wait for it, bounded: an
OpenModel listing that hangs holds them for ``FIRST_LISTING_WAIT`` only.
"""

from __future__ import annotations

import asyncio
from typing import Any

import kopf
import pytest

from kube_fixtures import kube, run_operator
from openmodel_operator.controller import kopf_watch
from openmodel_operator.controller.handlers import CHILD_KINDS
from test_operator import World, operator, world

__all__ = ["kube", "operator", "run_operator", "world"]  # fixtures, imported for pytest

CHILD_PLURALS = {plural for _, _, plural, _ in CHILD_KINDS}


def _lists(world: World) -> list[str]:
    """The resources of the list requests served, in the order their answers ended."""
    return [r.resource for r in world.kube.request_log if r.verb == "list" and r.code == 200]


async def test_the_children_are_listed_after_the_openmodels_and_a_model_is_trusted(world: World, operator: Any) -> None:
    world.publish()
    world.policy()
    world.model()

    async def slow_models() -> None:
        await asyncio.sleep(1.0)  # a long OpenModel listing: the children must not be listed beside it

    world.kube["list", world.kube.resource("openmodel.io/v1alpha1/openmodels")][:1] << slow_models
    async with operator():
        await world.phase("Pulling", timeout=15)
        lists = _lists(world)
        children = [i for i, resource in enumerate(lists) if resource in CHILD_PLURALS]
        assert children and "openmodels" in lists
        assert max(i for i, resource in enumerate(lists) if resource == "openmodels") < min(children), lists


async def test_children_are_listed_after_the_bound_when_the_openmodel_listing_hangs(
    world: World, operator: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Hostile: the OpenModel listing hangs (an overloaded or stalled API server); the children's listings are
    not held by it beyond the bound, and the model is still decided once everything is listed."""
    monkeypatch.setattr(kopf_watch, "FIRST_LISTING_WAIT", 0.5)
    world.publish()
    world.policy()
    world.model()

    async def hung() -> None:
        await asyncio.sleep(3.0)

    world.kube["list", world.kube.resource("openmodel.io/v1alpha1/openmodels")][:1] << hung
    async with operator():
        await world.until(lambda: any(resource in CHILD_PLURALS for resource in _lists(world)), timeout=10)
        assert "openmodels" not in _lists(world)  # still hanging: the children did not wait for it
        await world.phase("Pulling", timeout=15)


def test_a_new_run_with_the_same_settings_starts_with_a_new_gate() -> None:
    """(review) An event of an earlier run is never awaited in another event loop, nor taken as already set."""
    settings = kopf.OperatorSettings()
    sink = _NoSink()
    kopf_watch.route(settings, "openmodel.io", "openmodels", sink, first=True)
    kopf_watch._first_listed(settings, None).set()
    kopf_watch.route(settings, "openmodel.io", "openmodels", sink, first=True)  # the next run
    assert not kopf_watch._first_listed(settings, None).is_set()


class _NoSink:
    def event(self, namespace: str | None, event_type: str | None, body: Any) -> None:
        pass

    def listed(self, namespace: str | None, names: set[tuple[str, str]]) -> None:
        pass
