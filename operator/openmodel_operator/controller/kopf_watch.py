"""Every watched body reaches Kopf's indexes and handlers, and the operator keeps each OpenModel's last body
(``model_cache``) and each child (``child_cache``): ``metadata.managedFields`` is dropped from each object as
it arrives from a list or a watch, and the strings of what is kept are interned.

A real API server sends managedFields with every object (about 2.5 KB of JSON per OpenModel, issue 13).
Neither Kopf nor the operator reads managedFields (the operator writes with server-side apply and merge
patches, which never send them back), so nothing changes but the memory each object costs. The API server
has no option to leave them out of a watch, so they are dropped here, before anything stores them.

Streams of OpenModels and of the operator's children are *routed*: a sink registered for the resource
(``route``) takes every listed and watched object, and Kopf gets only the end-of-listing mark. Kopf's
per-object machinery (a worker task, a memory, a body wrapper, three loggers, the handler calls) cost
~2 ms and ~1 KB for each child and ~6 ms for each OpenModel, and a restart held every body until all were
listed (issue 13: 50,000 children of 10,000 models took 114 s and 1.3 GiB before the first pass). Kopf
still lists, watches, reconnects and re-lists them, with its namespaces and the server-side label selector,
and its readiness still waits for the listing: the sink takes each listed object before the mark, so a pass
never sees a half-filled cache. Kopf keeps no memory of them, so a re-list (after 410 Gone, or after a
pause) says which objects vanished while the watch was down: the sink is told what the listing held
(``Sink.listed``).

JSON decoding makes new strings for every key and value of every object; 10,000 OpenModels and their
children repeat the same keys ("apiVersion", "lastTransitionTime", ...) and mostly the same values
(condition types and reasons, images, digests of shared content). Interned, each is held once; equal strings
stay equal, so nothing that reads them can tell. A routed object is interned by its sink, after it dropped what
it does not keep (a Job's pod template) and only when it keeps dicts, not packed bytes (``child_cache``).
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import sys
import weakref
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any, Protocol

from kopf._cogs.clients import watching
from kopf._core.engines import peering
from kopf._core.reactor import queueing

_MARK = "_openmodel_without_managed_fields"


class Sink(Protocol):
    """Takes the events of one routed resource, in the stream's order, in the event loop."""

    def event(self, namespace: str | None, event_type: str | None, body: Mapping[str, Any]) -> None:
        """A listed (``event_type`` None) or watched (ADDED, MODIFIED, DELETED) object of the stream, as decoded
        (without managedFields): a sink interns what it keeps (``interned``)."""

    def listed(self, namespace: str | None, names: set[tuple[str, str]]) -> None:
        """A listing of the stream's scope (a namespace, or None: cluster-wide) ended: ``names`` is all it held."""


STALL_WARNING_SECONDS = 60.0  # a start-up listing longer than this is logged (10,000 models list in seconds)
log = logging.getLogger(__name__)

_ROUTES: dict[int, dict[tuple[str, str], Sink]] = {}  # id(Kopf settings) -> (group, plural) -> sink
_PAUSED: dict[int, Any] = {}  # id(Kopf settings) -> Kopf's operator_paused toggle set (peering)
_INDEXED: dict[int, Any] = {}  # id(Kopf settings) -> Kopf's operator_indexed toggle set (readiness)
# Kopf's per-peering pause toggles whose observer has read its peering object once: only then does the toggle say
# whether a peer of a higher priority is alive (auto-detected peering starts them off, not paused)
_DECIDED: weakref.WeakSet[Any] = weakref.WeakSet()
_PEERING_MISSING = "peering CRD is missing"  # Kopf's own toggle of the set: not a peering observer's
# id(Kopf settings) -> (group, plural) listed before the other routed kinds, and the end of its first listing per
# scope (a namespace, or None: cluster-wide)
_FIRST: dict[int, tuple[str, str]] = {}
_FIRST_LISTED: dict[int, dict[str | None, asyncio.Event]] = {}
FIRST_LISTING_WAIT = 30.0  # seconds the other kinds wait for it at most (a stream that cannot list holds none)


def route(settings: Any, group: str, plural: str, sink: Sink, first: bool = False) -> None:
    """Send the streams of ``group/plural`` of the operator run with ``settings`` to ``sink`` (not to Kopf).

    Keyed by the settings object, so two operators in one process (tests, shards) keep their own sinks.
    ``first``: the other routed kinds start their first listing of a scope once this one has listed it (or after
    ``FIRST_LISTING_WAIT``). The OpenModels are first: a model created during a restart is seen only after their
    listing (its watch starts there), and at 10,000 models the children's listings (five times as many objects)
    made the API server and the operator share their time with it (issue 13: "a model created at any moment
    Trusted within seconds"). The children are read directly by the passes made meanwhile (``startup_reads``).
    """
    key = id(settings)
    if key not in _ROUTES:
        for table in (_ROUTES, _PAUSED, _INDEXED, _FIRST, _FIRST_LISTED):
            weakref.finalize(settings, table.pop, key, None)
    _ROUTES.setdefault(key, {})[(group, plural)] = sink
    if first:
        _FIRST[key] = (group, plural)
        _FIRST_LISTED[key] = {}  # a new run: no event of an earlier run's loop is awaited or taken as set


async def wait_until_indexed(settings: Any) -> None:
    """Return once Kopf has listed every watched kind of the operator run with ``settings`` (its readiness).

    Kopf holds its handlers back until then; routed objects reach their sinks during the listing, so the
    work they start waits here: a model decided before the policy listing ended would be judged by some
    of the policies only (fail open).
    """
    polls = 0
    while (toggle := _INDEXED.get(id(settings))) is None:
        await asyncio.sleep(0.05)  # Kopf starts its watchers right after the startup handlers
        polls += 1
        if polls == int(STALL_WARNING_SECONDS / 0.05):  # once
            log.error("Kopf started no watcher: no model is reconciled (is the Kopf version the supported one?)")
    try:
        await asyncio.wait_for(toggle.wait_for(True), STALL_WARNING_SECONDS)
    except TimeoutError:
        log.warning("still waiting for Kopf to list every watched kind: no model is reconciled until then")
        await toggle.wait_for(True)


def peering_known(settings: Any) -> bool:
    """Whether Kopf has started a watch stream of the operator run with ``settings`` and every peering observer
    of it has read its peers once, so that ``wait_while_paused`` tells a standby from the active replica.

    With peering auto-detected (the HA overlay: no --standalone) Kopf makes each observer's pause toggle *off*
    and turns it on only once the peers are read: before that a standby replica looks active (review of the
    start-up passes). Standalone, or without the peering CRD, there is no observer: known once streaming."""
    paused = _PAUSED.get(id(settings))
    if paused is None:
        return False
    return all(toggle.is_on() or toggle in _DECIDED or toggle.name == _PEERING_MISSING for toggle in paused)


async def wait_until_streaming(settings: Any, listed: Callable[[], bool]) -> bool:
    """Wait until ``peering_known`` (True), or until ``listed()`` says the start-up listing ended first (False:
    the caller waits for the complete caches as any pass does). Kopf starts its peering before its streams."""
    while not peering_known(settings):
        if listed():
            return False
        await asyncio.sleep(0.05)
    return True


async def wait_while_paused(settings: Any) -> None:
    """Return once the operator run with ``settings`` is not paused by Kopf peering (at once without peering).

    Kopf stops its own handlers and daemons while a peer with a higher priority is alive, and stops the
    watch streams; work the operator runs itself (the workers, the key watch, the policy-status writer) waits
    here, so a paused replica makes no API calls at all (two replicas would both write every model).
    """
    toggle = _PAUSED.get(id(settings))
    if toggle is not None and toggle.is_on():
        await toggle.wait_for(False)


def interned(value: Any) -> Any:
    """A JSON value with every string (keys and values) interned; lists and dicts rebuilt, nothing else changed."""
    if type(value) is str:
        return sys.intern(value)
    if type(value) is dict:
        return {sys.intern(k) if type(k) is str else k: interned(v) for k, v in value.items()}
    if type(value) is list:
        return [interned(v) for v in value]
    return value


def without_managed_fields(raw_event: Any, intern: bool = True) -> Any:
    """The event with its object's ``metadata.managedFields`` removed and (``intern``) its strings interned.

    A routed object is not interned here: its sink keeps only part of it (a Job without its pod template) or
    packs it into bytes (``child_cache``), and interning what is dropped cost a fifth of a restart's stream CPU.
    """
    if isinstance(raw_event, dict):
        obj = raw_event.get("object")
        meta = obj.get("metadata") if isinstance(obj, dict) else None
        if isinstance(meta, dict):
            meta.pop("managedFields", None)
        if intern and isinstance(obj, dict):
            raw_event["object"] = interned(obj)
    return raw_event


def _route_of(kwargs: Mapping[str, Any]) -> tuple[str, str]:
    resource = kwargs.get("resource")
    return str(getattr(resource, "group", "")), str(getattr(resource, "plural", ""))


def _sink_for(kwargs: Mapping[str, Any]) -> Sink | None:
    return _ROUTES.get(id(kwargs.get("settings")), {}).get(_route_of(kwargs))


def _first_listed(settings: Any, namespace: str | None) -> asyncio.Event:
    return _FIRST_LISTED.setdefault(id(settings), {}).setdefault(namespace, asyncio.Event())


async def _after_first_listing(listed: asyncio.Event) -> None:
    """Hold a routed kind's listing until the first kind has listed the same scope once (see ``route``)."""
    if listed.is_set():
        return
    try:
        await asyncio.wait_for(listed.wait(), FIRST_LISTING_WAIT)
    except TimeoutError:
        log.warning("the OpenModels of a scope were not listed in time: its other kinds are listed now")
        listed.set()  # once: later listings (a reconnect, a re-list) do not wait again


async def _routed(
    sink: Sink, namespace: str | None, stream: AsyncIterator[Any], listed: asyncio.Event | None = None
) -> AsyncIterator[Any]:
    """One listing and the watch after it (Kopf's ``continuous_watch``): the objects go to ``sink``, the
    end-of-listing mark to Kopf (and to ``listed``: the first kind's). A listing cut short (a connection reset)
    ends the call without the mark and Kopf starts a new one, so what a listing held is counted per call, never
    across two."""
    listing: set[tuple[str, str]] = set()
    async for raw_event in stream:
        if raw_event is watching.Bookmark.LISTED:
            sink.listed(namespace, listing)
            listing = set()
            if listed is not None:
                listed.set()
            yield raw_event  # Kopf's readiness: this resource is listed
            continue
        if not isinstance(raw_event, dict) or raw_event.get("type") == "BOOKMARK":
            continue
        raw_event = without_managed_fields(raw_event, intern=False)  # the sink interns what it keeps
        body = raw_event.get("object")
        if not isinstance(body, dict):
            continue
        if raw_event.get("type") is None:
            meta = body.get("metadata") or {}
            listing.add((str(meta.get("namespace") or ""), str(meta.get("name") or "")))
        sink.event(namespace, raw_event.get("type"), body)


def install() -> None:
    """Wrap Kopf's watch streams: no managedFields reach Kopf, and each listing-and-watch of a routed resource
    (``continuous_watch``, called by ``infinite_watch`` once per listing) goes to its sink; Kopf's readiness
    and pause toggles of an operator with routes are kept for its own work (idempotent)."""
    original_infinite = watching.infinite_watch
    original_continuous = watching.continuous_watch
    original_watcher = queueing.watcher
    original_peering = peering.process_peering_event
    # the hooks read Kopf's private keyword arguments: a Kopf that renamed them must fail here, loudly, not
    # run a replica that never pauses or a pool of workers that waits for a readiness nobody announces
    for function, needed in (
        (original_watcher, ("settings", "operator_indexed")),
        (original_infinite, ("settings", "resource", "operator_paused")),
        (original_continuous, ("settings", "resource", "namespace")),
        (original_peering, ("raw_event", "settings", "conflicts_found")),
    ):
        if getattr(function, _MARK, False):
            continue  # ours, installed before
        missing = [name for name in needed if name not in inspect.signature(function).parameters]
        if missing:
            raise RuntimeError(f"unsupported Kopf version: {function.__qualname__} takes no {missing}")

    async def watcher(**kwargs: Any) -> None:
        settings, indexed = kwargs.get("settings"), kwargs.get("operator_indexed")
        if settings is not None and indexed is not None and id(settings) in _ROUTES:
            _INDEXED[id(settings)] = indexed  # one toggle set per operator (see wait_until_indexed)
        await original_watcher(**kwargs)

    async def infinite_watch(**kwargs: Any) -> AsyncIterator[Any]:
        settings, paused = kwargs.get("settings"), kwargs.get("operator_paused")
        if settings is not None and paused is not None and id(settings) in _ROUTES:
            _PAUSED[id(settings)] = paused  # the same toggle set for every stream of one operator
        async for raw_event in original_infinite(**kwargs):
            yield without_managed_fields(raw_event)  # routed objects never get here: only Kopf's marks

    async def continuous_watch(**kwargs: Any) -> AsyncIterator[Any]:
        sink = _sink_for(kwargs)
        if sink is None:
            async for raw_event in original_continuous(**kwargs):
                yield raw_event
            return
        settings, namespace = kwargs.get("settings"), kwargs.get("namespace")
        first = _FIRST.get(id(settings))
        listed = _first_listed(settings, namespace) if first is not None else None
        if listed is not None and first != _route_of(kwargs):
            await _after_first_listing(listed)
            listed = None  # set by the first kind's stream only
        async for raw_event in _routed(sink, namespace, original_continuous(**kwargs), listed):
            yield raw_event

    async def process_peering_event(**kwargs: Any) -> None:
        await original_peering(**kwargs)
        # returned: the toggle was turned for what the peers say (a standby returns late, paused meanwhile)
        settings, toggle = kwargs.get("settings"), kwargs.get("conflicts_found")
        body = (kwargs.get("raw_event") or {}).get("object") or {}
        name = (body.get("metadata") or {}).get("name")
        if toggle is not None and settings is not None and name == settings.peering.name:
            _DECIDED.add(toggle)

    if not getattr(original_peering, _MARK, False):
        setattr(process_peering_event, _MARK, True)
        peering.process_peering_event = process_peering_event  # type: ignore[assignment]
    if not getattr(original_infinite, _MARK, False):
        setattr(infinite_watch, _MARK, True)
        watching.infinite_watch = infinite_watch  # type: ignore[assignment]
    if not getattr(original_watcher, _MARK, False):
        setattr(watcher, _MARK, True)
        queueing.watcher = watcher  # type: ignore[assignment]
    if not getattr(original_continuous, _MARK, False):
        setattr(continuous_watch, _MARK, True)
        watching.continuous_watch = continuous_watch  # type: ignore[assignment]
