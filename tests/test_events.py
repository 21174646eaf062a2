"""Events are named so that they never clash: a refused Event is an Event nobody sees.

Kopf's generateName draws 5 random characters per Event and a v1.28 apiserver refuses a drawn name that is
taken (409): at thousands of Events per namespace some are lost. The operator names its Events itself.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from typing import Any

import pytest

from kube_emulator import KubeEmulator
from openmodel_operator.controller import events
from openmodel_operator.controller.events import MAX_MESSAGE, EventPoster, event_name
from openmodel_operator.controller.kube import Kube, client_for

pytest_plugins = ["kube_fixtures"]

SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
MODEL = {
    "apiVersion": "openmodel.io/v1alpha1",
    "kind": "OpenModel",
    "metadata": {"name": "granite", "namespace": "models", "uid": "uid-1", "resourceVersion": "7"},
}


def test_names_never_repeat_even_when_the_clock_does(monkeypatch: pytest.MonkeyPatch) -> None:
    # a coarse or frozen clock: every Event of a burst is stamped in the same nanosecond
    monkeypatch.setattr(time, "time_ns", lambda: 1_800_000_000_000_000_000)
    names = [event_name("granite") for _ in range(20_000)]
    assert len(set(names)) == len(names)
    # control: the names are the object's, as client-go names Events, and valid
    assert all(name.startswith("granite.") and SUBDOMAIN.match(name) for name in names)


def test_two_processes_in_the_same_nanosecond_differ_by_their_random_digits() -> None:
    same = {event_name("granite", now_ns=42, salt=salt) for salt in range(1000)}
    assert len(same) == 1000
    assert event_name("granite", now_ns=42, salt=7) == event_name("granite", now_ns=42, salt=7)  # control


@pytest.mark.parametrize("name", ["m" * 253, "a" * 232 + "-" + "b" * 20, "a" * 231 + ".-" + "c" * 20, "x"])
def test_long_object_names_give_valid_event_names(name: str) -> None:
    event = event_name(name)
    assert len(event) <= 253 and SUBDOMAIN.match(event), event


def test_messages_keep_both_ends_within_the_limit() -> None:
    long = "start " + "x" * 5000 + " fix: create the Secret"
    body = events.event_body(
        MODEL, "Warning", "AccessDenied", long, events.datetime.datetime.now(events.datetime.UTC), "p"
    )
    assert len(body["message"]) == MAX_MESSAGE
    assert body["message"].startswith("start ") and body["message"].endswith("create the Secret")
    short = events.event_body(MODEL, "Normal", "Verified", "ok", events.datetime.datetime.now(events.datetime.UTC), "p")
    assert short["message"] == "ok" and short["involvedObject"]["uid"] == "uid-1"


def _posted(kube: KubeEmulator) -> list[tuple[int, str]]:
    return [(r.code, r.name or "") for r in kube.request_log if r.resource == "events" and r.verb == "create"]


async def test_a_taken_name_is_retried_and_the_event_lands(kube: KubeEmulator) -> None:
    kube.create_namespace("models")
    client = Kube(client_for(kube.base_url))
    poster = EventPoster(lambda: client.create_event)
    # the apiserver answers the second create with 409 AlreadyExists, as for a name that is taken
    already_exists = {"kind": "Status", "apiVersion": "v1", "code": 409, "reason": "AlreadyExists"}
    kube["post /api/v1/namespaces/models/events"][1:2] << 409 << already_exists
    try:
        # control: an Event lands at the first try
        poster.post(MODEL, "Normal", "Verified", "every byte verified")
        await poster.flush()
        assert [code for code, _ in _posted(kube)] == [201]

        poster.post(MODEL, "Warning", "UntrustedSigner", "the signer's key is not trusted")
        await poster.flush()
        reasons = [e["reason"] for e in kube.events_for("granite", namespace="models")]
        assert reasons == ["Verified", "UntrustedSigner"]
        assert [code for code, _ in _posted(kube)] == [201, 409, 201]
        names = [e["metadata"]["name"] for e in kube.events_for("granite", namespace="models")]
        assert len(set(names)) == 2 and all(n.startswith("granite.") for n in names)
        stored: dict[str, Any] = kube.events_for("granite", namespace="models")[-1]
        assert stored["type"] == "Warning" and stored["involvedObject"]["kind"] == "OpenModel"
        assert stored["source"]["component"] == "openmodel-operator"
    finally:
        await client.close()


async def test_an_event_that_cannot_be_posted_never_fails_the_caller(kube: KubeEmulator) -> None:
    client = Kube(client_for(kube.base_url))
    poster = EventPoster(lambda: client.create_event)
    try:
        missing = {**MODEL, "metadata": {**MODEL["metadata"], "namespace": "absent"}}  # 404: no such namespace
        poster.post(missing, "Normal", "Verified", "ok")
        await poster.flush()
        assert kube.list("events", "absent") == []
        poster.post({**MODEL}, "Normal", "Verified", "ok")  # control: the poster still works
        kube.create_namespace("models")
        await poster.flush()
        assert [e["reason"] for e in kube.events_for("granite", namespace="models")] == ["Verified"]
    finally:
        await client.close()


async def test_an_event_posted_from_a_worker_thread_lands(kube: KubeEmulator) -> None:
    """Examinations run in worker threads: an Event from one is handed to the loop, not dropped or raised."""
    kube.create_namespace("models")
    client = Kube(client_for(kube.base_url))
    poster = EventPoster(lambda: client.create_event)
    try:
        poster.post(MODEL, "Normal", "Resolved", "from the loop")  # control
        await asyncio.to_thread(poster.post, MODEL, "Warning", "SignatureInvalid", "from a worker thread")
        await asyncio.sleep(0)  # the handed-over call runs on the loop
        await poster.flush()
        assert [e["reason"] for e in kube.events_for("granite", namespace="models")] == ["Resolved", "SignatureInvalid"]
    finally:
        await client.close()


async def test_after_close_nothing_is_posted_and_nothing_is_logged_as_a_failure(
    kube: KubeEmulator, caplog: pytest.LogCaptureFixture
) -> None:
    """The operator closes the poster, then its API client: a pass or thread posting after that would make a
    request on a closed client and log a warning on every ordinary stop."""
    kube.create_namespace("models")
    client = Kube(client_for(kube.base_url))
    poster = EventPoster(lambda: client.create_event)
    try:
        poster.post(MODEL, "Normal", "Resolved", "before the stop")  # control: in flight at the stop, and posted
        await poster.close()
        assert [e["reason"] for e in kube.events_for("granite", namespace="models")] == ["Resolved"]
        caplog.set_level(logging.INFO)
        poster.post(MODEL, "Warning", "Revoked", "from the loop, after the stop")
        await asyncio.to_thread(poster.post, MODEL, "Warning", "Revoked", "from a thread, after the stop")
        await asyncio.sleep(0.05)
        await poster.flush()
    finally:
        await client.close()
    assert [code for code, _ in _posted(kube)] == [201]
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []
    assert [r.getMessage() for r in caplog.records].count("operator stopping: Event not posted") == 2
