"""The API connection over aiohttp (issue 13: httpx's pool cost ~0.6 ms of CPU per call): it must still send
lightkube's credentials to the configured server only, answer within lightkube's timeouts, report failures as
the errors the adapter handles, and decode what the server compresses exactly once."""

from __future__ import annotations

import asyncio
import gzip
import json
import pathlib
import socket
import ssl
from collections.abc import AsyncIterator
from typing import Any

import httpx2
import pytest
from aiohttp import web
from lightkube import AsyncClient, KubeConfig
from lightkube.config.models import Cluster, User

from openmodel_operator.controller.api_transport import AiohttpTransport
from openmodel_operator.controller.kube import FIELD_MANAGER, Kube, KubeError, client_for
from openmodel_operator.controller.webhook_tls import self_signed

STATUS_PATH = "/apis/openmodel.io/v1alpha1/namespaces/team/openmodels/m/status"


def _model(status: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "openmodel.io/v1alpha1",
        "kind": "OpenModel",
        "metadata": {"name": "m", "namespace": "team", "resourceVersion": "7"},
        "status": status,
    }


class Server:
    """A stand-in API server that records what reached it and answers as each test sets."""

    def __init__(self) -> None:
        self.seen: list[dict[str, Any]] = []
        self.answer: Any = None

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.seen.append(
            {
                "method": request.method,
                "path": request.path,
                "query": dict(request.query),
                "headers": dict(request.headers),
                "body": await request.read(),
            }
        )
        return await self.answer(request)


@pytest.fixture
async def server() -> AsyncIterator[tuple[Server, str]]:
    stand_in = Server()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", stand_in.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield stand_in, f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


def _client(url: str, *, token: str | None = None, timeout: float = 10.0) -> AsyncClient:
    config = KubeConfig.from_one(cluster=Cluster(server=url), user=User(token=token))
    return AsyncClient(
        config=config, field_manager=FIELD_MANAGER, timeout=httpx2.Timeout(timeout), transport=AiohttpTransport(None)
    )


async def _refused(kube: Kube) -> KubeError:
    """The KubeError a status patch ends with (the client is closed after)."""
    try:
        with pytest.raises(KubeError) as caught:
            await kube.patch_status("team", "m", {"phase": "Ready"})
    finally:
        await kube.close()
    return caught.value


async def test_a_status_patch_reaches_the_server_as_lightkube_builds_it_and_its_answer_is_read(
    server: tuple[Server, str],
) -> None:
    stand_in, url = server

    async def answer(request: web.Request) -> web.Response:
        return web.json_response(_model({"phase": "Ready"}))

    stand_in.answer = answer
    kube = Kube(_client(url, token="s3cr3t-token"))
    try:
        version = await kube.patch_status("team", "m", {"phase": "Ready", "error": None})
    finally:
        await kube.close()
    assert version == "7"
    (sent,) = stand_in.seen
    assert (sent["method"], sent["path"]) == ("PATCH", STATUS_PATH)
    assert sent["headers"]["Content-Type"] == "application/merge-patch+json"
    assert sent["headers"]["Authorization"] == "Bearer s3cr3t-token"
    assert json.loads(sent["body"]) == {"status": {"phase": "Ready", "error": None}}
    # one framing of the body: aiohttp's, never a second Content-Length copied from httpx
    assert sent["headers"]["Content-Length"] == str(len(sent["body"]))


async def test_a_compressed_answer_is_decoded_once(server: tuple[Server, str]) -> None:
    stand_in, url = server
    body = json.dumps(_model({"phase": "Pulling"})).encode()

    async def answer(request: web.Request) -> web.Response:
        return web.Response(
            body=gzip.compress(body), headers={"Content-Encoding": "gzip", "Content-Type": "application/json"}
        )

    stand_in.answer = answer
    kube = Kube(_client(url))
    try:
        assert await kube.patch_status("team", "m", {"phase": "Pulling"}) == "7"
    finally:
        await kube.close()


async def test_an_api_error_is_the_kube_error_it_always_was(server: tuple[Server, str]) -> None:
    stand_in, url = server

    async def answer(request: web.Request) -> web.Response:
        status = {"kind": "Status", "apiVersion": "v1", "code": 409, "reason": "Conflict", "message": "changed"}
        return web.json_response(status, status=409)

    stand_in.answer = answer
    assert (await _refused(Kube(_client(url)))).status == 409


async def test_a_redirect_is_not_followed_so_the_token_never_leaves_for_another_host(
    server: tuple[Server, str],
) -> None:
    """A hostile or misconfigured API endpoint redirecting elsewhere gets no second request (and no token)."""
    stand_in, url = server
    elsewhere: list[str] = []

    async def answer(request: web.Request) -> web.Response:
        if request.path.startswith("/elsewhere"):
            elsewhere.append(request.headers.get("Authorization", ""))
            return web.json_response(_model({}))
        raise web.HTTPTemporaryRedirect(f"{url}/elsewhere{request.path}")

    stand_in.answer = answer
    assert (await _refused(Kube(_client(url, token="s3cr3t-token")))).status == 307
    assert elsewhere == []


async def test_a_server_that_never_answers_fails_the_call_within_the_read_timeout(
    server: tuple[Server, str],
) -> None:
    stand_in, url = server
    release = asyncio.Event()

    async def answer(request: web.Request) -> web.Response:
        await release.wait()  # a hung API server
        return web.json_response(_model({}))

    stand_in.answer = answer
    kube = Kube(_client(url, timeout=0.5))
    try:
        with pytest.raises(httpx2.TimeoutException):
            await asyncio.wait_for(kube.patch_status("team", "m", {"phase": "Ready"}), 5)
        # the adapter's health read says the server did not answer, instead of hanging
        assert await asyncio.wait_for(kube.reachable(), 5) is not None
    finally:
        release.set()
        await kube.close()


async def test_an_unreachable_server_is_a_transport_error_the_handlers_catch() -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    kube = Kube(_client(f"http://127.0.0.1:{port}", timeout=2))
    try:
        with pytest.raises(httpx2.ConnectError):
            await kube.patch_status("team", "m", {"phase": "Ready"})
        assert await kube.reachable() is not None
    finally:
        await kube.close()


async def test_a_rotated_service_account_token_is_read_again_after_a_401(
    server: tuple[Server, str], tmp_path: pathlib.Path
) -> None:
    """lightkube's token-file auth still runs over this transport: the kubelet rotates the projected token."""
    stand_in, url = server
    token_file = tmp_path / "token"
    token_file.write_text("old-token")

    async def answer(request: web.Request) -> web.Response:
        if request.headers.get("Authorization") != "Bearer new-token":
            token_file.write_text("new-token")  # rotated while the old one was in use
            return web.json_response({"kind": "Status", "code": 401, "message": "Unauthorized"}, status=401)
        return web.json_response(_model({}))

    stand_in.answer = answer
    config = KubeConfig.from_one(cluster=Cluster(server=url), user=User(token_file=str(token_file)))
    client = AsyncClient(config=config, transport=AiohttpTransport(None))
    kube = Kube(client)
    try:
        assert await kube.patch_status("team", "m", {"phase": "Ready"}) == "7"
    finally:
        await kube.close()
    assert [s["headers"]["Authorization"] for s in stand_in.seen] == ["Bearer old-token", "Bearer new-token"]


def test_the_operator_client_carries_its_requests_over_aiohttp() -> None:
    client = client_for("http://127.0.0.1:1")
    transport = client._client._client._transport  # lightkube -> its generic client -> httpx
    assert isinstance(transport, AiohttpTransport)


@pytest.fixture
async def tls_server(tmp_path: pathlib.Path) -> AsyncIterator[tuple[Server, int, str]]:
    """The stand-in over TLS with a certificate of its own CA; yields it, its port and that CA's file."""
    files = self_signed(["127.0.0.1"], str(tmp_path / "server-tls"))
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(files.certfile, files.pkeyfile)
    stand_in = Server()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", stand_in.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=context)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        assert files.cafile is not None
        yield stand_in, port, files.cafile
    finally:
        await runner.cleanup()


def _kubeconfig(path: pathlib.Path, port: int, cafile: str) -> pathlib.Path:
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {"name": "c", "cluster": {"server": f"https://127.0.0.1:{port}", "certificate-authority": cafile}}
        ],
        "users": [{"name": "u", "user": {"token": "s3cr3t-token"}}],
        "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
        "current-context": "x",
    }
    path.write_text(json.dumps(config))
    return path


async def test_the_cluster_ca_from_the_kubeconfig_verifies_the_api_server(
    tls_server: tuple[Server, int, str], tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The production path: TLS with the cluster's CA (a kubeconfig here, the service account's ca.crt in a pod)."""
    stand_in, port, cafile = tls_server

    async def answer(request: web.Request) -> web.Response:
        return web.json_response(_model({"phase": "Ready"}))

    stand_in.answer = answer
    monkeypatch.setenv("KUBECONFIG", str(_kubeconfig(tmp_path / "config", port, cafile)))
    kube = Kube(client_for())
    try:
        assert await kube.patch_status("team", "m", {"phase": "Ready"}) == "7"
    finally:
        await kube.close()
    assert [s["headers"]["Authorization"] for s in stand_in.seen] == ["Bearer s3cr3t-token"]


async def test_a_server_the_cluster_ca_did_not_sign_gets_no_request_and_no_token(
    tls_server: tuple[Server, int, str], tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An impostor on the API server's address (its own CA): the TLS handshake fails before anything is sent."""
    stand_in, port, _ = tls_server
    other_ca = self_signed(["127.0.0.1"], str(tmp_path / "other-tls")).cafile
    assert other_ca is not None
    monkeypatch.setenv("KUBECONFIG", str(_kubeconfig(tmp_path / "config", port, other_ca)))
    kube = Kube(client_for())
    try:
        with pytest.raises(httpx2.TransportError):
            await kube.patch_status("team", "m", {"phase": "Ready"})
    finally:
        await kube.close()
    assert stand_in.seen == []


@pytest.mark.parametrize("trickle", [True, False], ids=["slowloris", "answered"])
async def test_a_body_trickled_forever_fails_the_call_within_a_bounded_time(
    server: tuple[Server, str], trickle: bool
) -> None:
    """A hostile or broken API endpoint that sends its headers, then a byte of body a little faster than the read
    timeout, for ever: each read is on time, so only a deadline for the whole answer ends the call (the pass
    would hang, its worker with it). Control: the same answer sent at once is read."""
    stand_in, url = server
    body = json.dumps(_model({"phase": "Ready"})).encode()

    async def answer(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        await response.prepare(request)
        if not trickle:
            await response.write(body)
            return response
        while True:  # a never-ending body: a space (valid JSON whitespace) every 0.2 s
            await response.write(b" ")
            await asyncio.sleep(0.2)

    stand_in.answer = answer
    kube = Kube(_client(url, timeout=0.5))
    try:
        if trickle:
            with pytest.raises(httpx2.TimeoutException):
                await asyncio.wait_for(kube.patch_status("team", "m", {"phase": "Ready"}), 20)
        else:
            assert await asyncio.wait_for(kube.patch_status("team", "m", {"phase": "Ready"}), 20) == "7"
    finally:
        await kube.close()
