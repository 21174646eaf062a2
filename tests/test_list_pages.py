"""Kopf lists in pages (issue 13): a restart's listings are decoded a page at a time, not as one answer of
every OpenModel, and every model of every page gets its pass."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from kube_fixtures import kube, run_operator
from openmodel_operator.controller import handlers, kopf_watch
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


# ---------------------------------------------------------------- the next page asked while one is taken in


async def _pages(log: list[str], count: int, fail_at: int | None = None) -> AsyncIterator[list[int]]:
    """A listing's pages as Kopf's fetch yields them; ``log`` records each request and its page's intake."""
    for page in range(count):
        log.append(f"request {page}")
        await asyncio.sleep(0.01)  # the API server's answer
        if page == fail_at:
            raise ConnectionResetError("the connection dropped")
        yield [page]


async def test_the_next_page_is_requested_before_the_page_before_it_is_taken_in() -> None:
    log: list[str] = []
    seen = []
    async for chunk in kopf_watch.prefetched(_pages(log, 3)):
        await asyncio.sleep(0.02)  # the operator takes the page in
        log.append(f"took {chunk[0]}")
        seen.extend(chunk)
    assert seen == [0, 1, 2]  # every page, in order, once
    assert log.index("request 1") < log.index("took 0") and log.index("request 2") < log.index("took 1"), log


async def test_a_failed_page_fails_the_listing_where_it_comes_and_a_consumer_that_leaves_stops_the_fetch() -> None:
    log: list[str] = []
    seen = []
    with pytest.raises(ConnectionResetError):
        async for chunk in kopf_watch.prefetched(_pages(log, 5, fail_at=2)):
            seen.extend(chunk)
    assert seen == [0, 1]  # the pages before the failure were all taken in
    log.clear()
    listing = kopf_watch.prefetched(_pages(log, 100))
    async for chunk in listing:
        if chunk == [1]:
            break
    await listing.aclose()  # what Kopf's stream does when the watcher stops
    await asyncio.sleep(0.05)
    # no page asked after the consumer left (the one asked ahead may have been cancelled before it started)
    assert log in (["request 0", "request 1"], ["request 0", "request 1", "request 2"]), log
