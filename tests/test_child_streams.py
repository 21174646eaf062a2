"""Children reach the child cache straight from Kopf's watch stream (controller/kopf_watch.py ``route``),
never Kopf's per-object machinery; Kopf still gets the end-of-listing mark for its readiness.

What an attacker or an outage could exploit if this broke: a child deleted while the watch was down (Kopf
re-lists after 410 Gone and reports no deletion) staying in the cache, so its model never restores it; a
child moved to another owner label staying trusted by the model it left; another operator's streams (a
second shard in the same process) landing in this one's cache.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import kopf
import pytest
from kopf._cogs.clients import watching

from openmodel_operator.controller import kopf_watch
from openmodel_operator.controller.child_cache import ChildCache, ChildStream

LISTED = watching.Bookmark.LISTED


class Resource:
    def __init__(self, group: str, plural: str) -> None:
        self.group, self.plural = group, plural


def deployment(name: str, owner: str, image: str = "vllm:1") -> dict[str, Any]:
    labels = {"app.kubernetes.io/managed-by": "openmodel-operator", "openmodel.io/name": owner}
    meta = {"name": name, "namespace": "ns", "labels": labels, "managedFields": [{"manager": "kubectl"}]}
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": meta, "spec": {"image": image}}


@pytest.fixture
def kopf_stream(monkeypatch: pytest.MonkeyPatch) -> Any:
    """Kopf's listing-and-watch calls replaced by scripts of raw events, one script per call (a call ends
    when its connection does; Kopf's real ``infinite_watch`` then starts the next), then wrapped as installed."""
    scripts: list[list[Any]] = []

    async def scripted(*, settings: Any, resource: Any, namespace: Any, **_: Any) -> AsyncIterator[Any]:  # Kopf's
        for item in scripts.pop(0) if scripts else []:
            yield item

    monkeypatch.setattr(watching, "continuous_watch", scripted)
    kopf_watch.install()
    return scripts


async def drain(settings: Any, group: str, plural: str, calls: int, namespace: str | None = None) -> list[Any]:
    stream = watching.infinite_watch(
        settings=settings, resource=Resource(group, plural), namespace=namespace, _iterations=calls
    )
    return [e async for e in stream]


def operator_settings() -> Any:
    settings = kopf.OperatorSettings()
    settings.watching.reconnect_backoff = 0
    return settings


async def test_a_child_deleted_while_the_watch_was_down_is_dropped_and_its_model_woken(kopf_stream: Any) -> None:
    cache, woken = ChildCache(), []
    settings = operator_settings()
    kopf_watch.route(settings, "apps", "deployments", ChildStream("Deployment", cache, lambda *w: woken.append(w)))
    kopf_stream += [
        [
            {"type": None, "object": deployment("a", "a")},
            {"type": None, "object": deployment("b", "b")},
            {"type": None, "object": deployment("c", "c")},
            LISTED,
            {"type": "MODIFIED", "object": deployment("a", "a", image="evil:1")},  # a tenant's edit
            {"type": "BOOKMARK", "object": {"metadata": {"resourceVersion": "9"}}},
        ],  # 410 Gone: Kopf lists again ...
        [{"type": None, "object": deployment("b", "b")}],  # ... a listing cut short (connection reset) ...
        # ... and one more; "b" and "c" were deleted meanwhile and no DELETED event ever comes
        [{"type": None, "object": deployment("a", "a", image="evil:1")}, LISTED],
    ]
    to_kopf = await drain(settings, "apps", "deployments", calls=3)
    assert to_kopf == [LISTED, LISTED], "Kopf got children (its per-object machinery would hold them)"
    assert cache.of("ns", "b") == [], "a child seen only by a listing cut short is still believed to exist"
    assert cache.of("ns", "c") == [], "a child deleted during the outage is still believed to exist"
    assert [c["spec"]["image"] for c in cache.of("ns", "a")] == ["evil:1"]  # control: the live one, as it is now
    assert ("ns", "a", "Deployment", "a") in woken and ("ns", "c", "Deployment", "c") in woken
    assert all("managedFields" not in c["metadata"] for c in cache.of("ns", "a"))


async def test_a_namespaced_listing_drops_only_its_own_namespace(kopf_stream: Any) -> None:
    cache = ChildCache()
    other = deployment("x", "x")
    other["metadata"]["namespace"] = "other"
    cache.put("Deployment", other)  # listed by the stream of namespace "other"
    settings = operator_settings()
    kopf_watch.route(settings, "apps", "deployments", ChildStream("Deployment", cache, lambda *_: None))
    kopf_stream.append([{"type": None, "object": deployment("a", "a")}, LISTED])
    await drain(settings, "apps", "deployments", calls=1, namespace="ns")
    assert [c["metadata"]["name"] for c in cache.of("other", "x")] == ["x"]
    assert [c["metadata"]["name"] for c in cache.of("ns", "a")] == ["a"]


async def test_streams_of_another_operator_or_kind_still_reach_kopf(kopf_stream: Any) -> None:
    cache = ChildCache()
    ours, theirs = operator_settings(), operator_settings()
    kopf_watch.route(ours, "apps", "deployments", ChildStream("Deployment", cache, lambda *_: None))
    event = {"type": "ADDED", "object": deployment("a", "a")}
    kopf_stream += [[event, LISTED], [dict(event, object=deployment("a", "a")), LISTED]]
    passed = await drain(theirs, "apps", "deployments", calls=1)  # another operator in this process: not routed
    assert [e if e is LISTED else e["type"] for e in passed] == ["ADDED", LISTED]
    assert "managedFields" not in passed[0]["object"]["metadata"]  # still trimmed for Kopf
    assert cache.of("ns", "a") == []
    passed = await drain(ours, "", "configmaps", calls=1)  # another kind of ours: not routed either
    assert len(passed) == 2


async def test_a_relisting_wakes_the_owners_of_children_changed_or_created_while_the_watch_was_down(
    kopf_stream: Any,
) -> None:
    """A settled model has no resync: a child edited during an outage is seen only by the re-listing, so the
    re-listing must wake its owner; the first listing at start wakes nobody (every model gets a pass)."""
    cache, woken = ChildCache(), []
    settings = operator_settings()
    kopf_watch.route(settings, "apps", "deployments", ChildStream("Deployment", cache, lambda *w: woken.append(w)))

    def at(version: str, name: str, image: str = "vllm:1") -> dict[str, Any]:
        body = deployment(name, name, image)
        body["metadata"]["resourceVersion"] = version
        return {"type": None, "object": body}

    kopf_stream += [
        [at("1", "same"), at("2", "edited"), LISTED],  # the start
        [at("1", "same"), at("7", "edited", image="evil:1"), at("8", "new"), LISTED],  # after 410 Gone
    ]
    await drain(settings, "apps", "deployments", calls=1)
    assert woken == []
    await drain(settings, "apps", "deployments", calls=1)
    assert sorted(w[1] for w in woken) == ["edited", "new"]  # "same" (control) is listed as it was held
