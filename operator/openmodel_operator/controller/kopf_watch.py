"""Kopf keeps the last body of every object it runs a daemon for, and hands every watched body to the
indexes: ``metadata.managedFields`` is dropped from each object as it arrives from a list or a watch, and
its strings are interned.

A real API server sends managedFields with every object (about 2.5 KB of JSON per OpenModel, issue 13),
and Kopf 1.45 holds each OpenModel's last raw body for its daemon for as long as the object exists. Neither
Kopf nor the operator reads managedFields (the operator writes with server-side apply and merge patches,
which never send them back), so nothing changes but the memory each object costs. The API server has no
option to leave them out of a watch, so they are dropped here, before Kopf stores anything.

JSON decoding makes new strings for every key and value of every object; 10,000 OpenModels and their
children repeat the same keys ("apiVersion", "lastTransitionTime", ...) and mostly the same values
(condition types and reasons, images, digests of shared content). Interned, each is held once; equal strings
stay equal, so nothing that reads them can tell.
"""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from typing import Any

from kopf._cogs.clients import watching

_MARK = "_openmodel_without_managed_fields"


def interned(value: Any) -> Any:
    """A JSON value with every string (keys and values) interned; lists and dicts rebuilt, nothing else changed."""
    if type(value) is str:
        return sys.intern(value)
    if type(value) is dict:
        return {sys.intern(k) if type(k) is str else k: interned(v) for k, v in value.items()}
    if type(value) is list:
        return [interned(v) for v in value]
    return value


def without_managed_fields(raw_event: Any) -> Any:
    """The event with its object's ``metadata.managedFields`` removed and its strings interned."""
    if isinstance(raw_event, dict):
        obj = raw_event.get("object")
        meta = obj.get("metadata") if isinstance(obj, dict) else None
        if isinstance(meta, dict):
            meta.pop("managedFields", None)
        if isinstance(obj, dict):
            raw_event["object"] = interned(obj)
    return raw_event


def install() -> None:
    """Wrap Kopf's watch stream (list and watch) so managedFields never reach Kopf's memory (idempotent)."""
    if getattr(watching.infinite_watch, _MARK, False):
        return
    original = watching.infinite_watch

    async def infinite_watch(**kwargs: Any) -> AsyncIterator[Any]:
        async for raw_event in original(**kwargs):
            yield without_managed_fields(raw_event)

    setattr(infinite_watch, _MARK, True)
    watching.infinite_watch = infinite_watch  # type: ignore[assignment]
