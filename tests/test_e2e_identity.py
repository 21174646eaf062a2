"""The e2e suite's operator identity (e2e/harness.py ``operator_identity``), checked without a real cluster.

Where the API server authorizes requests, the e2e suite runs the local operator with a kubeconfig of its own
that holds a TokenRequest token of the shipped ServiceAccount. Here: that kubeconfig is written right from
``kubectl`` answers (scripted), the real ``openmodel run`` process sends that token on every request (Kopf's
and lightkube's) to the emulator, and neither client would have honoured impersonation instead. Against a
server without an authorizer (the emulator) the suite keeps E2E_KUBECONFIG and says why.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import pathlib
import signal
import socket
import stat
import subprocess
import sys
from typing import Any

import aiohttp
import pytest
import yaml

from kube_emulator import KubeEmulator

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "e2e"))
import harness  # noqa: E402  (e2e/harness.py)

pytest_plugins = ["kube_fixtures"]

TOKEN = "e2e-operator-token"  # a stand-in, sent to the emulator only


class ScriptedKubectl(harness.Kubectl):
    """kubectl's answers from a script: {(first args...): (returncode, stdout, stderr)}."""

    def __init__(self, config: harness.E2EConfig, answers: dict[tuple[str, ...], tuple[int, str, str]]) -> None:
        super().__init__(config, pathlib.Path("/nonexistent-cache"))
        self.answers = answers
        self.calls: list[tuple[str, ...]] = []

    def run(
        self, *args: str, input: str | None = None, check: bool = True, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        self.calls.append(args)
        for prefix, (code, out, err) in self.answers.items():
            if args[: len(prefix)] == prefix:
                proc = subprocess.CompletedProcess(list(args), code, out, err)
                if check and code != 0:
                    raise harness.KubectlError(args, proc)
                return proc
        raise AssertionError(f"unscripted kubectl {args}")


def config(tmp_path: pathlib.Path, **overrides: Any) -> harness.E2EConfig:
    kubeconfig = tmp_path / "admin.kubeconfig"
    kubeconfig.write_text("{}")
    base = harness.E2EConfig.from_env({"E2E_KUBECONFIG": str(kubeconfig), "E2E_SIMULATE_WORKLOADS": "1"})
    return dataclasses.replace(base, **overrides)


def admin_view(server: str) -> str:
    """``kubectl config view --raw --minify --flatten -o json`` of an admin kubeconfig."""
    return json.dumps(
        {
            "kind": "Config",
            "apiVersion": "v1",
            "clusters": [{"name": "c", "cluster": {"server": server, "certificate-authority-data": "Q0E="}}],
            "users": [{"name": "admin", "user": {"client-certificate-data": "Y2VydA==", "client-key-data": "a2V5"}}],
            "contexts": [{"name": "admin@c", "context": {"cluster": "c", "user": "admin"}}],
            "current-context": "admin@c",
        }
    )


def authorizing_cluster(server: str, token_code: int = 0) -> dict[tuple[str, ...], tuple[int, str, str]]:
    return {
        ("auth", "can-i"): (0, "yes\n", ""),
        ("create", "token"): (token_code, f"{TOKEN}\n" if token_code == 0 else "", "" if token_code == 0 else "denied"),
        ("config", "view"): (0, admin_view(server), ""),
    }


def test_where_the_server_authorizes_the_operator_gets_a_token_kubeconfig_of_the_service_account(
    tmp_path: pathlib.Path,
) -> None:
    kubectl = ScriptedKubectl(config(tmp_path), authorizing_cluster("https://10.0.0.1:6443"))
    identity = harness.operator_identity(kubectl, kubectl.config, rbac_installed=True, directory=tmp_path)
    assert identity.user == harness.OPERATOR_USER == "system:serviceaccount:openmodel-system:openmodel-operator"
    assert "authorized against the shipped RBAC" in identity.description
    token_call = next(c for c in kubectl.calls if c[:2] == ("create", "token"))
    assert token_call[2:5] == ("openmodel-operator", "-n", "openmodel-system")
    assert identity.kubeconfig is not None
    assert stat.S_IMODE(identity.kubeconfig.stat().st_mode) == 0o600, "a token is a credential"
    written = yaml.safe_load(identity.kubeconfig.read_text())
    # the admin's cluster entry (server, CA) kept; the admin's user gone; the token the only credential
    assert written["clusters"] == json.loads(admin_view("https://10.0.0.1:6443"))["clusters"]
    assert written["users"] == [{"name": "openmodel-operator", "user": {"token": TOKEN}}]
    (context,) = written["contexts"]
    assert written["current-context"] == context["name"] and context["context"]["user"] == "openmodel-operator"


def test_without_an_authorizer_the_operator_keeps_e2e_kubeconfig_and_the_summary_says_why(
    tmp_path: pathlib.Path,
) -> None:
    refused = "The SelfSubjectAccessReview is invalid: metadata.name: Required value"  # the emulator's answer
    kubectl = ScriptedKubectl(config(tmp_path), {("auth", "can-i"): (1, "", refused)})
    identity = harness.operator_identity(kubectl, kubectl.config, rbac_installed=True, directory=tmp_path)
    assert identity.kubeconfig is None and identity.user is None
    assert "evaluates no access reviews" in identity.description
    assert not [c for c in kubectl.calls if c[:2] == ("create", "token")]


def test_a_token_that_cannot_be_had_fails_loudly_unless_e2e_kubeconfig_is_asked_for(tmp_path: pathlib.Path) -> None:
    kubectl = ScriptedKubectl(config(tmp_path), authorizing_cluster("https://10.0.0.1:6443", token_code=1))
    with pytest.raises(AssertionError, match="E2E_OPERATOR_IDENTITY=kubeconfig"):
        harness.operator_identity(kubectl, kubectl.config, rbac_installed=True, directory=tmp_path)
    opted_out = config(tmp_path, operator_identity="kubeconfig")
    identity = harness.operator_identity(kubectl, opted_out, rbac_installed=True, directory=tmp_path)
    assert identity.kubeconfig is None and "E2E_OPERATOR_IDENTITY=kubeconfig" in identity.description
    assert config(tmp_path, operator_identity="admin").skip_reason() is not None


def test_neither_client_reads_impersonation_from_a_kubeconfig() -> None:
    """Why a token and not ``users[].user.as``: both clients would drop it and stay the admin, silently."""
    import kopf
    from lightkube.config.models import User

    assert not {"as_", "as", "impersonate", "as_user"} & set(User.__struct_fields__)
    fields = {f.name for f in dataclasses.fields(kopf.ConnectionInfo)}
    assert not [f for f in fields if "imperson" in f or f in ("as_user", "as_groups")], fields


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_the_operator_process_sends_the_token_on_every_request(
    kube: KubeEmulator, tmp_path: pathlib.Path
) -> None:
    """``openmodel run`` with KUBECONFIG=the operator's kubeconfig: Kopf's requests and the reconciler's carry
    ``Authorization: Bearer <token>``, so a real server authorizes each of them as the ServiceAccount."""
    kubectl = ScriptedKubectl(config(tmp_path), authorizing_cluster(kube.base_url))
    identity = harness.operator_identity(kubectl, kubectl.config, rbac_installed=True, directory=tmp_path)
    assert identity.kubeconfig is not None
    # the emulator speaks plain HTTP: no CA to check (the written file keeps the admin's CA otherwise)
    written = yaml.safe_load(identity.kubeconfig.read_text())
    written["clusters"][0]["cluster"] = {"server": kube.base_url}
    identity.kubeconfig.write_text(yaml.safe_dump(written))

    kube.create_namespace("models")
    kube.create_object(
        {
            "apiVersion": "openmodel.io/v1alpha1",
            "kind": "OpenModel",
            "metadata": {"name": "m", "namespace": "models"},
            "spec": {"source": {"uri": "hf://org/model", "endpoint": "http://127.0.0.1:1"}},  # nothing listens
        }
    )
    health = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENMODEL_", "KUBECONFIG"))}
    env.update(KUBECONFIG=str(identity.kubeconfig), PYTHONPATH=os.pathsep.join(sys.path), PYTHONUNBUFFERED="1")
    log = (tmp_path / "operator.log").open("w")
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        "import sys; from openmodel_operator.cli import main; sys.exit(main())",
        "run",
        "--standalone",
        "--namespace",
        "models",
        "--metrics-port",
        "0",
        "--health-port",
        str(health),
        "--resync-interval",
        "0.5",
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:

        def status_written() -> bool:
            return bool((kube.get("openmodels", "models", "m") or {}).get("status", {}).get("conditions"))

        await kube.wait_for(status_written, timeout=30)
        async with aiohttp.ClientSession() as http, http.get(f"http://127.0.0.1:{health}/healthz") as rsp:
            assert rsp.status == 200
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(process.wait(), timeout=20)
            except TimeoutError:
                process.kill()
                await process.wait()
        log.close()

    requests = [r for r in list(kube._requests) if r.resource is not None and r.resource.plural]
    agents = {(r.headers.get("User-Agent") or "").split("/")[0] for r in requests}
    assert "kopf" in agents and agents - {"kopf"}, f"both Kopf and the reconciler's client made requests: {agents}"
    unauthenticated = {
        (r.method, str(r.url.path)) for r in requests if r.headers.get("Authorization") != f"Bearer {TOKEN}"
    }
    assert unauthenticated == set(), (tmp_path / "operator.log").read_text()[-3000:]
