"""Kopf lists in pages (issue 13): a restart's listings are decoded a page at a time, not as one answer of
every OpenModel, and every model of every page gets its pass."""

from __future__ import annotations

from typing import Any

import pytest

from kube_fixtures import kube, run_operator
from openmodel_operator.controller import handlers
from test_operator import World, operator, world

__all__ = ["kube", "operator", "run_operator", "world"]


def lists_of(world: World, resource: str) -> int:
    return sum(1 for r in world.kube.request_log if r.verb == "list" and r.resource == resource)


@pytest.mark.parametrize(("page", "lists"), [(2, 3), (500, 1)])
async def test_models_listed_in_pages_all_get_their_pass(
    world: World, operator: Any, monkeypatch: pytest.MonkeyPatch, page: int, lists: int
) -> None:
    monkeypatch.setattr(handlers, "LIST_PAGE", page)
    world.publish()
    world.policy()
    names = [f"m{i}" for i in range(5)]
    for name in names:
        world.model(name)
    async with operator():
        for name in names:
            await world.phase("Pulling", name, timeout=15)
    assert lists_of(world, "openmodels") >= lists  # 5 models: 3 pages of 2, or one answer (control)
    if page == 500:
        assert lists_of(world, "openmodels") == 1
