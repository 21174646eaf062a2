"""The emulator's validating admission (tests/kube_emulator/webhooks.py), proven over HTTP against a stub webhook.

Each behaviour a v1.28 apiserver has and the operator relies on: what a webhook is sent (AdmissionReview v1,
userInfo), which writes reach it (rules with subresources, namespaceSelector, objectSelector on either side),
how refusals, warnings, failures (failurePolicy) and dry runs come back.
"""

from __future__ import annotations

import asyncio
import base64
import pathlib
import socket
import ssl
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp.web
import pytest_asyncio

from kube_emulator import KubeEmulator
from kube_fixtures import serve_emulator
from openmodel_operator.controller.webhook_tls import self_signed

Answer = Callable[[dict[str, Any]], dict[str, Any] | None]  # request -> response fields (None: no answer)


class Stub:
    """An HTTPS webhook that records every review and answers with ``answer`` (default: allowed)."""

    def __init__(self, tls_dir: pathlib.Path) -> None:
        self.files = self_signed(["127.0.0.1"], str(tls_dir))
        self.reviews: list[dict[str, Any]] = []
        self.answer: Answer = lambda _request: {}
        self.delay = 0.0
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = int(sock.getsockname()[1])

    async def handle(self, request: aiohttp.web.Request) -> aiohttp.web.Response:
        review = await request.json()
        self.reviews.append(review)
        await asyncio.sleep(self.delay)
        extra = self.answer(review["request"])
        body = {"uid": review["request"]["uid"], "allowed": True, **(extra or {})}
        return aiohttp.web.json_response(
            {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "response": body}
        )

    def hook(self, name: str, rule: dict[str, Any], **fields: Any) -> dict[str, Any]:
        ca = base64.b64encode(pathlib.Path(str(self.files.cafile)).read_bytes()).decode()
        return {
            "name": name,
            "sideEffects": "None",
            "admissionReviewVersions": ["v1"],
            "timeoutSeconds": 2,
            "clientConfig": {"url": f"https://127.0.0.1:{self.port}/{name}", "caBundle": ca},
            "rules": [{"apiVersions": ["v1"], "operations": ["*"], "scope": "*", **rule}],
            **fields,
        }


@pytest_asyncio.fixture()
async def stub(tmp_path: pathlib.Path) -> AsyncIterator[Stub]:
    server = Stub(tmp_path / "tls")
    app = aiohttp.web.Application()
    app.router.add_post("/{name}", server.handle)
    runner = aiohttp.web.AppRunner(app)
    await runner.setup()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(server.files.certfile, server.files.pkeyfile)
    await aiohttp.web.TCPSite(runner, "127.0.0.1", server.port, ssl_context=context).start()
    try:
        yield server
    finally:
        await runner.cleanup()


@pytest_asyncio.fixture()
async def kube() -> AsyncIterator[KubeEmulator]:
    async with serve_emulator(users={"t0ken": ("alice", ("devs",))}) as emulator:
        emulator.create_namespace("watched")
        emulator.patch_object("v1/namespaces", None, "watched", {"metadata": {"labels": {"team": "a"}}})
        emulator.create_namespace("other")
        yield emulator


def register(kube: KubeEmulator, *webhooks: dict[str, Any]) -> None:
    kube.create_object(
        {
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "ValidatingWebhookConfiguration",
            "metadata": {"name": "stub.example.com"},
            "webhooks": list(webhooks),
        }
    )


CONFIGMAPS = {"apiGroups": [""], "resources": ["configmaps"]}


def configmap(name: str, **labels: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "labels": labels}, "data": {"a": "1"}}


async def test_the_review_carries_the_object_the_operation_and_who_asked(kube: KubeEmulator, stub: Stub) -> None:
    register(kube, stub.hook("cm.stub.example.com", CONFIGMAPS))
    rsp = await kube.http.post(
        "/api/v1/namespaces/watched/configmaps", json=configmap("x"), headers={"Authorization": "Bearer t0ken"}
    )
    assert rsp.status == 201
    rsp = await kube.http.patch(
        "/api/v1/namespaces/watched/configmaps/x",
        json={"data": {"a": "2"}},
        headers={"Content-Type": "application/merge-patch+json", "Impersonate-User": "bob"},
    )
    assert rsp.status == 200
    created, updated = (r["request"] for r in stub.reviews)
    assert created["operation"] == "CREATE" and created["oldObject"] is None
    assert created["object"]["metadata"]["uid"]  # assigned before validating admission, as in the apiserver
    assert created["userInfo"] == {"username": "alice", "uid": "", "groups": ["devs"]}
    assert (created["namespace"], created["name"], created["resource"]["resource"]) == ("watched", "x", "configmaps")
    assert updated["operation"] == "UPDATE" and updated["oldObject"]["data"] == {"a": "1"}
    assert updated["object"]["data"] == {"a": "2"}
    assert updated["userInfo"]["username"] == "bob" and "system:authenticated" in updated["userInfo"]["groups"]


async def test_a_refusal_keeps_the_object_out_and_names_the_webhook(kube: KubeEmulator, stub: Stub) -> None:
    register(kube, stub.hook("cm.stub.example.com", CONFIGMAPS))
    stub.answer = lambda _r: {"allowed": False, "status": {"code": 403, "message": "not this one"}}
    rsp = await kube.http.post("/api/v1/namespaces/watched/configmaps", json=configmap("x"))
    answer = await rsp.json()
    assert rsp.status == 403
    assert answer["message"] == 'admission webhook "cm.stub.example.com" denied the request: not this one'
    assert kube.get("configmaps", "watched", "x") is None


async def test_warnings_come_back_as_warning_headers(kube: KubeEmulator, stub: Stub) -> None:
    register(kube, stub.hook("cm.stub.example.com", CONFIGMAPS))
    stub.answer = lambda _r: {"warnings": ["mind the gap"]}
    rsp = await kube.http.post("/api/v1/namespaces/watched/configmaps", json=configmap("x"))
    assert rsp.status == 201 and rsp.headers.getall("Warning") == ['299 - "mind the gap"']


async def test_selectors_and_subresources_decide_which_writes_are_sent(kube: KubeEmulator, stub: Stub) -> None:
    register(
        kube,
        stub.hook(
            "cm.stub.example.com",
            CONFIGMAPS,
            namespaceSelector={"matchLabels": {"team": "a"}},
            objectSelector={"matchLabels": {"guarded": "yes"}},
        ),
    )
    await kube.http.post("/api/v1/namespaces/other/configmaps", json=configmap("elsewhere", guarded="yes"))
    await kube.http.post("/api/v1/namespaces/watched/configmaps", json=configmap("plain"))
    assert stub.reviews == []  # the namespace, then the object, did not match
    await kube.http.post("/api/v1/namespaces/watched/configmaps", json=configmap("g", guarded="yes"))
    # dropping the label is still sent (the old object matches)
    await kube.http.patch(
        "/api/v1/namespaces/watched/configmaps/g",
        json={"metadata": {"labels": {"guarded": None}}},
        headers={"Content-Type": "application/merge-patch+json"},
    )
    await kube.http.delete("/api/v1/namespaces/watched/configmaps/g")
    # unlabelled now: its DELETE is not sent; a labelled object's is
    await kube.http.post("/api/v1/namespaces/watched/configmaps", json=configmap("h", guarded="yes"))
    await kube.http.delete("/api/v1/namespaces/watched/configmaps/h")
    assert [r["request"]["operation"] for r in stub.reviews] == ["CREATE", "UPDATE", "CREATE", "DELETE"]
    assert stub.reviews[-1]["request"]["object"] is None and stub.reviews[-1]["request"]["oldObject"]


async def test_a_rule_on_the_object_does_not_cover_its_status(kube: KubeEmulator, stub: Stub) -> None:
    register(kube, stub.hook("ns.stub.example.com", {"apiGroups": [""], "resources": ["namespaces"]}))
    stub.answer = lambda _r: {"allowed": False}
    rsp = await kube.http.patch(
        "/api/v1/namespaces/other/status",
        json={"status": {"phase": "Active"}},
        headers={"Content-Type": "application/merge-patch+json"},
    )
    assert rsp.status == 200  # namespaces/status is another resource path
    rsp = await kube.http.patch(
        "/api/v1/namespaces/other",
        json={"metadata": {"labels": {"x": "y"}}},
        headers={"Content-Type": "application/merge-patch+json"},
    )
    assert rsp.status == 400 and "without explanation" in (await rsp.json())["message"]


async def test_failure_policy_decides_when_the_webhook_cannot_answer(kube: KubeEmulator, stub: Stub) -> None:
    stub.delay = 3.0  # beyond timeoutSeconds
    register(
        kube,
        stub.hook("cm.stub.example.com", CONFIGMAPS, failurePolicy="Fail"),
        stub.hook("ns.stub.example.com", {"apiGroups": [""], "resources": ["namespaces"]}, failurePolicy="Ignore"),
    )
    rsp = await kube.http.post("/api/v1/namespaces/watched/configmaps", json=configmap("x"))
    answer = await rsp.json()
    assert rsp.status == 500 and 'failed calling webhook "cm.stub.example.com"' in answer["message"]
    assert "?timeout=2s" in answer["message"]
    rsp = await kube.http.post("/api/v1/namespaces", json={"metadata": {"name": "third"}})
    assert rsp.status == 201  # Ignore: admitted without the webhook


async def test_a_dry_run_reaches_only_webhooks_without_side_effects(kube: KubeEmulator, stub: Stub) -> None:
    register(kube, stub.hook("cm.stub.example.com", CONFIGMAPS, sideEffects="Some"))
    rsp = await kube.http.post("/api/v1/namespaces/watched/configmaps?dryRun=All", json=configmap("x"))
    assert rsp.status == 400 and "does not support dry run" in (await rsp.json())["message"]
    rsp = await kube.http.post("/api/v1/namespaces/watched/configmaps", json=configmap("x"))
    assert rsp.status == 201 and stub.reviews[-1]["request"]["dryRun"] is False


async def test_a_service_reference_cannot_be_reached_on_a_control_plane_only_cluster(kube: KubeEmulator) -> None:
    register(
        kube,
        {
            "name": "svc.stub.example.com",
            "sideEffects": "None",
            "admissionReviewVersions": ["v1"],
            "failurePolicy": "Fail",
            "clientConfig": {"service": {"namespace": "x", "name": "hook"}},
            "rules": [{"apiGroups": [""], "apiVersions": ["v1"], "operations": ["*"], "resources": ["configmaps"]}],
        },
    )
    rsp = await kube.http.post("/api/v1/namespaces/watched/configmaps", json=configmap("x"))
    assert rsp.status == 500 and "no endpoints available for service" in (await rsp.json())["message"]
