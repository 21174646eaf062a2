"""Kubernetes Events about OpenModels, under names that never clash.

Kopf's ``kopf.event()`` creates every Event with ``generateName: kopf-event-``: the apiserver appends five
random characters (27^5, about 14 million names) and, before Kubernetes 1.30, does not retry a name that is
taken. With thousands of Events in a namespace two draws meet (the birthday bound: 10,000 Events give about
three clashes), and each later Event is refused with 409 AlreadyExists and lost.

Events here are named as client-go names them, ``<object>.<nanoseconds since the epoch in hex>``, with 16
random bits after it, so that two Events of one object in the same nanosecond, or from two replicas, differ
too; a name that is nevertheless taken is retried under a new one. Posting never blocks a reconcile pass and
never fails it: an Event that cannot be created is logged.
"""

from __future__ import annotations

import asyncio
import datetime
import logging
import os
import secrets
import socket
import threading
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

log = logging.getLogger(__name__)

COMPONENT = "openmodel-operator"
MAX_MESSAGE = 1024  # the apiserver refuses longer Event messages
MAX_NAME = 253  # a DNS subdomain
_SUFFIX = 16 + 4  # nanoseconds in hex (16 digits until the year 2262) and 16 random bits

CreateEvent = Callable[[Mapping[str, Any]], Awaitable[bool]]  # False: the name is taken (409)


_last_stamp = 0
_stamp_lock = threading.Lock()


def _stamp() -> int:
    """Nanoseconds since the epoch, strictly increasing in this process (a coarse clock repeats readings)."""
    global _last_stamp
    with _stamp_lock:
        _last_stamp = max(time.time_ns(), _last_stamp + 1)
        return _last_stamp


def event_name(object_name: str, now_ns: int | None = None, salt: int | None = None) -> str:
    """``<object>.<ns in hex><4 random hex digits>``, clipped to a valid DNS subdomain.

    Without arguments the stamp never repeats in this process, so names of this process never clash; the
    random digits keep another process (a second replica, a restart within the same clock tick) apart.
    """
    now_ns = _stamp() if now_ns is None else now_ns
    salt = secrets.randbits(16) if salt is None else salt
    base = object_name[: MAX_NAME - _SUFFIX - 1].rstrip(".-") or "object"
    return f"{base}.{now_ns:016x}{salt:04x}"


def clip_message(message: str) -> str:
    """At most MAX_MESSAGE characters, keeping both ends (the end often names the fix)."""
    if len(message) <= MAX_MESSAGE:
        return message
    half = (MAX_MESSAGE - 3) // 2
    return f"{message[:half]}...{message[-(MAX_MESSAGE - 3 - half) :]}"


def reporting_instance() -> str:
    """The pod's name in a pod (its hostname), the host's elsewhere."""
    return (os.environ.get("POD_ID") or socket.gethostname())[:128]


def event_body(
    involved: Mapping[str, Any], type_: str, reason: str, message: str, now: datetime.datetime, instance: str
) -> dict[str, Any]:
    """A core/v1 Event about ``involved`` (an object's manifest), in its namespace."""
    meta = involved.get("metadata") or {}
    namespace = meta.get("namespace") or "default"
    stamp = now.strftime("%Y-%m-%dT%H:%M:%SZ")
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": event_name(str(meta.get("name") or "object")), "namespace": namespace},
        "involvedObject": {
            key: value
            for key, value in {
                "apiVersion": involved.get("apiVersion"),
                "kind": involved.get("kind"),
                "name": meta.get("name"),
                "namespace": meta.get("namespace"),
                "uid": meta.get("uid"),
                "resourceVersion": meta.get("resourceVersion"),
            }.items()
            if value
        },
        "type": type_,
        "reason": reason[:128],
        "message": clip_message(message),
        "source": {"component": COMPONENT},
        "reportingComponent": COMPONENT,
        "reportingInstance": instance,
        "action": "Reconcile",
        "firstTimestamp": stamp,
        "lastTimestamp": stamp,
        "eventTime": now.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        "count": 1,
    }


class EventPoster:
    """Posts Events in the background of the event loop; :meth:`flush` waits for the ones in flight."""

    def __init__(self, create: Callable[[], CreateEvent | None], attempts: int = 3) -> None:
        self._create = create  # None until the operator's API client exists
        self._attempts = attempts
        self._instance = reporting_instance()
        self._pending: set[asyncio.Task[None]] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closed = False  # the operator is stopping: its API client is about to close

    def post(self, involved: Mapping[str, Any], type_: str, reason: str, message: str) -> None:
        """Schedule one Event; from the event loop or, once it posted there, from any thread."""
        snapshot = {"apiVersion": involved.get("apiVersion"), "kind": involved.get("kind")}
        snapshot["metadata"] = dict(involved.get("metadata") or {})
        try:
            self._loop = asyncio.get_running_loop()
        except RuntimeError:  # a worker thread: hand it to the loop
            if self._loop is None:
                log.warning("no event loop yet: Event not posted", extra={"reason": reason})
                return
            self._loop.call_soon_threadsafe(self._schedule, snapshot, type_, reason, message)
            return
        self._schedule(snapshot, type_, reason, message)

    def _schedule(self, involved: Mapping[str, Any], type_: str, reason: str, message: str) -> None:
        if self._closed:  # on the loop for every post, also one a thread handed over before the stop began
            log.info("operator stopping: Event not posted", extra={"reason": reason})
            return
        task = asyncio.get_running_loop().create_task(self._post(involved, type_, reason, message))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _post(self, involved: Mapping[str, Any], type_: str, reason: str, message: str) -> None:
        create = self._create()
        if create is None:
            log.warning("no API client: Event not posted", extra={"reason": reason})
            return
        now = datetime.datetime.now(datetime.UTC)
        for _ in range(self._attempts):
            body = event_body(involved, type_, reason, message, now, self._instance)
            try:
                if await create(body):
                    return
            except Exception as exc:  # Events are auxiliary: never fail the pass that posted one
                log.warning("cannot post an Event", extra={"reason": reason, "error": str(exc)})
                return
        log.warning("cannot post an Event: every name was taken", extra={"reason": reason})

    async def flush(self, timeout: float = 5.0) -> None:
        """Wait (at most ``timeout`` seconds) for the Events in flight, so that stopping loses none."""
        if self._pending:
            await asyncio.wait(set(self._pending), timeout=timeout)

    async def close(self, timeout: float = 5.0) -> None:
        """Post what is in flight, then nothing more: the API client closes next, and a post made with it
        then would only fail and log a warning on every ordinary stop."""
        await self.flush(timeout)
        self._closed = True
