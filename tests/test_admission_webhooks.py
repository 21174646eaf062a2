"""The operator's validating webhooks, end to end over HTTP: the emulator calls them as a v1.28 apiserver does.

The real registry (``build_registry(..., webhooks=...)``) runs against the emulator; Kopf registers the
ValidatingWebhookConfiguration itself (by URL: the emulator, like a control-plane-only cluster, reaches no
Service), with the operator's self-signed CA as its caBundle. Each refusal has an admitted control beside it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import pytest_asyncio

from kube_emulator import KubeEmulator
from kube_fixtures import operator_running, repo_crds, serve_emulator
from openmodel_operator.controller.handlers import build_registry
from openmodel_operator.controller.kube import Kube, client_for
from openmodel_operator.controller.settings import OperatorSettings
from openmodel_operator.controller.webhook_settings import WebhookSettings
from signing_fixtures import new_key

OPERATOR = "system:serviceaccount:openmodel-system:openmodel-operator"
OPERATOR_TOKEN = "operator-token"
POLICIES = "/apis/openmodel.io/v1alpha1/modeltrustpolicies"
MODELS = "/apis/openmodel.io/v1alpha1/namespaces/team-a/openmodels"
DEPLOYMENTS = "/apis/apps/v1/namespaces/team-a/deployments"
TENANT = {"Impersonate-User": "jane", "Impersonate-Group": "team-a-editors"}
MANAGED = {"app.kubernetes.io/managed-by": "openmodel-operator"}


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def policy(name: str, mode: str = "Enforce", **spec: Any) -> dict[str, Any]:
    spec.setdefault("signature", {"required": False})  # the CRD refuses a required signature nobody can give
    return {
        "apiVersion": "openmodel.io/v1alpha1",
        "kind": "ModelTrustPolicy",
        "metadata": {"name": name},
        "spec": {"mode": mode, "namespaceSelector": {"matchLabels": {"team": "a"}}, **spec},
    }


def openmodel(name: str, uri: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "openmodel.io/v1alpha1",
        "kind": "OpenModel",
        "metadata": {"name": name},
        "spec": {"source": {"uri": uri}, "serving": {"replicas": 0}, **spec},
    }


def deployment(name: str, image: str = "vllm/vllm-openai:v0.11.0") -> dict[str, Any]:
    labels = {"app": name}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "labels": {**MANAGED, "openmodel.io/name": name}},
        "spec": {
            "selector": {"matchLabels": labels},
            "template": {"metadata": {"labels": labels}, "spec": {"containers": [{"name": "vllm", "image": image}]}},
        },
    }


@pytest_asyncio.fixture()
async def cluster() -> AsyncIterator[KubeEmulator]:
    async with serve_emulator(
        crds=repo_crds(), users={OPERATOR_TOKEN: (OPERATOR, ("system:serviceaccounts",))}
    ) as kube:
        kube.create_namespace("team-a")
        kube.patch_object("v1/namespaces", None, "team-a", {"metadata": {"labels": {"team": "a"}}})
        yield kube


@contextlib.asynccontextmanager
async def operator_with_webhooks(
    cluster: KubeEmulator, namespaces: tuple[str, ...] = ()
) -> AsyncIterator[KubeEmulator]:
    """The operator with its webhooks on, registered by URL; its own requests carry the ServiceAccount's token.

    Started and stopped in the test's own task (not a fixture's): Kopf cancels every task created after it
    started when it stops, which would include a fixture's teardown task."""
    settings = OperatorSettings(resync_interval=1.0, metrics_port=0, health_port=0, namespaces=namespaces)
    hooks = WebhookSettings(port=free_port(), operator_users=(OPERATOR,))

    def kube_factory() -> Kube:
        return Kube(client_for(cluster.base_url))

    registry = build_registry(settings, kube_factory, webhooks=hooks)
    async with operator_running(cluster, registry):
        await cluster.wait_for(lambda: _registered(cluster), timeout=10)
        yield cluster


def _registered(kube: KubeEmulator) -> bool:
    configs = kube.list("admissionregistration.k8s.io/v1/validatingwebhookconfigurations", None)
    return any(len(c.get("webhooks") or []) >= 3 for c in configs)


async def post(kube: KubeEmulator, path: str, body: dict[str, Any], **kwargs: Any) -> tuple[int, Any, list[str]]:
    rsp = await kube.http.post(path, json=body, **kwargs)
    return rsp.status, await rsp.json(), rsp.headers.getall("Warning", [])


async def test_registered_by_url_with_a_ca_and_a_failure_policy_each(cluster: KubeEmulator) -> None:
    async with operator_with_webhooks(cluster) as webhooks:
        (config,) = webhooks.list("admissionregistration.k8s.io/v1/validatingwebhookconfigurations", None)
        hooks = {h["name"].split(".")[0]: h for h in config["webhooks"]}
        assert hooks["policy"]["failurePolicy"] == "Fail" and hooks["openmodel"]["failurePolicy"] == "Fail"
        guard = hooks["guard-deployments"]
        assert guard["failurePolicy"] == "Ignore"
        assert guard["objectSelector"] == {"matchLabels": MANAGED}
        assert set(guard["rules"][0]["operations"]) == {"CREATE", "UPDATE", "DELETE"}
        assert guard["rules"][0]["resources"] == ["deployments"]  # not deployments/status nor /scale
        for hook in config["webhooks"]:
            assert hook["clientConfig"]["url"].startswith("https://127.0.0.1:")
            assert hook["clientConfig"]["caBundle"]
            assert hook["sideEffects"] == "None"  # so kubectl apply --dry-run=server reaches it
        # the operator mutates nothing: no mutating configuration is made (nor may its RBAC make one)
        assert webhooks.list("admissionregistration.k8s.io/v1/mutatingwebhookconfigurations", None) == []
    # reached by URL, nobody else serves it: a clean stop takes the webhooks away (no Fail pointing at nothing)
    (config,) = cluster.list("admissionregistration.k8s.io/v1/validatingwebhookconfigurations", None)
    assert not config.get("webhooks")


async def test_a_policy_with_an_unusable_key_is_refused_and_a_good_one_admitted(cluster: KubeEmulator) -> None:
    async with operator_with_webhooks(cluster) as webhooks:
        bad = policy(
            "bad-key",
            signature={
                "required": True,
                "keys": [
                    {
                        "name": "release",
                        "publicKey": ("-----BEGIN PUBLIC KEY-----\nbm90IGEga2V5\n-----END PUBLIC KEY-----\n"),
                    }
                ],
            },
        )
        status, answer, _ = await post(webhooks, POLICIES, bad)
        assert status == 422, answer
        assert 'admission webhook "policy.openmodel.io" denied the request' in answer["message"]
        assert "spec.signature.keys['release'].publicKey" in answer["message"]
        assert webhooks.get("modeltrustpolicies", None, "bad-key") is None

        good = policy(
            "good-key",
            signature={"required": True, "keys": [{"name": "release", "publicKey": (new_key().public_pem.decode())}]},
        )
        status, answer, _ = await post(webhooks, POLICIES, good)
        assert status == 201, answer


async def test_dry_run_server_refuses_without_storing_and_admits_without_storing(cluster: KubeEmulator) -> None:
    async with operator_with_webhooks(cluster) as webhooks:
        bad = policy(
            "dry",
            sources={"allow": ["hf://x/*"]},
            signature={
                "required": True,
                "certificates": [
                    {"name": "ca", "caBundle": "-----BEGIN CERTIFICATE-----\nbm9wZQ==\n-----END CERTIFICATE-----\n"}
                ],
            },
        )
        status, answer, _ = await post(webhooks, POLICIES + "?dryRun=All", bad)
        assert status == 422 and "caBundle" in answer["message"], answer
        status, _, _ = await post(webhooks, POLICIES + "?dryRun=All", policy("dry"))
        assert status == 201
        assert webhooks.get("modeltrustpolicies", None, "dry") is None


async def test_an_openmodel_is_refused_with_the_policys_name_and_reason(cluster: KubeEmulator) -> None:
    async with operator_with_webhooks(cluster) as webhooks:
        status, _, _ = await post(
            webhooks,
            POLICIES,
            policy("granite-only", sources={"allow": ["hf://ibm-granite/*"]}, signature={"required": False}),
        )
        assert status == 201
        await asyncio.sleep(0.5)  # the policy reaches the operator's index through its watch
        status, answer, _ = await post(webhooks, MODELS, openmodel("evil", "hf://evil/model"))
        assert status == 403, answer
        assert "ModelTrustPolicy 'granite-only'" in answer["message"] and "SourceNotAllowed" in answer["message"]
        status, answer, _ = await post(webhooks, MODELS, openmodel("granite", "hf://ibm-granite/granite-3b"))
        assert status == 201, answer


async def test_an_audit_violation_comes_back_as_a_warning(cluster: KubeEmulator) -> None:
    async with operator_with_webhooks(cluster) as webhooks:
        status, _, _ = await post(
            webhooks, POLICIES, policy("watch", mode="Audit", sources={"allow": ["hf://ibm-granite/*"]})
        )
        assert status == 201
        await asyncio.sleep(0.5)
        status, answer, warnings = await post(webhooks, MODELS, openmodel("elsewhere", "hf://other/model"))
        assert status == 201, answer
        assert any("'watch' (Audit)" in w and "SourceNotAllowed" in w for w in warnings), warnings


async def test_a_tenant_edit_of_a_managed_deployment_is_refused_the_operators_passes(cluster: KubeEmulator) -> None:
    async with operator_with_webhooks(cluster) as webhooks:
        as_operator = {"Authorization": f"Bearer {OPERATOR_TOKEN}"}
        status, answer, _ = await post(webhooks, DEPLOYMENTS, deployment("m"), headers=as_operator)
        assert status == 201, answer

        patch = {"spec": {"template": {"spec": {"containers": [{"name": "vllm", "image": "evil/vllm:1"}]}}}}
        merge = {"Content-Type": "application/strategic-merge-patch+json"}
        rsp = await webhooks.http.patch(f"{DEPLOYMENTS}/m", json=patch, headers={**TENANT, **merge})
        answer = await rsp.json()
        assert rsp.status == 403, answer
        assert "only the operator may change it, not jane" in answer["message"]
        stored = webhooks.get("deployments", "team-a", "m")
        assert stored["spec"]["template"]["spec"]["containers"][0]["image"] != "evil/vllm:1"

        # dropping the label in the same edit does not take the object out of the guard
        unlabel = {"metadata": {"labels": {"app.kubernetes.io/managed-by": None}}, **patch}
        rsp = await webhooks.http.patch(f"{DEPLOYMENTS}/m", json=unlabel, headers={**TENANT, **merge})
        assert rsp.status == 403
        rsp = await webhooks.http.delete(f"{DEPLOYMENTS}/m", headers=TENANT)
        assert rsp.status == 403
        status, _, _ = await post(webhooks, DEPLOYMENTS, deployment("planted"), headers=TENANT)
        assert status == 403

        # the operator's own change, and an unmanaged Deployment of the tenant, pass
        rsp = await webhooks.http.patch(f"{DEPLOYMENTS}/m", json=patch, headers={**as_operator, **merge})
        assert rsp.status == 200, await rsp.json()
        mine = deployment("mine")
        mine["metadata"]["labels"] = {"app": "mine"}
        status, answer, _ = await post(webhooks, DEPLOYMENTS, mine, headers=TENANT)
        assert status == 201, answer


async def test_an_operator_watching_a_pattern_guards_the_namespaces_it_matches(cluster: KubeEmulator) -> None:
    """``--namespace 'team-*'`` (chart ``watch.scope: patterns``): the guard refuses a tenant's edit in ``team-a``
    (it was registered for a namespace literally named ``team-*``, i.e. none), and leaves ``other`` alone."""
    cluster.create_namespace("other")
    async with operator_with_webhooks(cluster, namespaces=("team-*",)) as webhooks:
        as_operator = {"Authorization": f"Bearer {OPERATOR_TOKEN}"}
        for path in (DEPLOYMENTS, DEPLOYMENTS.replace("team-a", "other")):
            status, answer, _ = await post(webhooks, path, deployment("m"), headers=as_operator)
            assert status == 201, answer
        rsp = await webhooks.http.delete(f"{DEPLOYMENTS}/m", headers=TENANT)
        assert rsp.status == 403, await rsp.json()
        rsp = await webhooks.http.delete(f"{DEPLOYMENTS.replace('team-a', 'other')}/m", headers=TENANT)
        assert rsp.status == 200, await rsp.json()  # another operator's namespace: not judged here


async def test_break_glass_admin_and_namespace_controller_pass(cluster: KubeEmulator) -> None:
    async with operator_with_webhooks(cluster) as webhooks:
        as_operator = {"Authorization": f"Bearer {OPERATOR_TOKEN}"}
        await post(webhooks, DEPLOYMENTS, deployment("m"), headers=as_operator)
        patch = {"metadata": {"annotations": {"x": "y"}}}
        merge = {"Content-Type": "application/merge-patch+json"}
        rsp = await webhooks.http.patch(f"{DEPLOYMENTS}/m", json=patch, headers=merge)  # the admin (system:masters)
        assert rsp.status == 200
        assert any("managed by openmodel-operator" in w for w in rsp.headers.getall("Warning", []))
        controller = {"Impersonate-User": "system:serviceaccount:kube-system:namespace-controller"}
        rsp = await webhooks.http.delete(f"{DEPLOYMENTS}/m", headers=controller)
        assert rsp.status == 200


async def test_with_the_operator_gone_the_guard_fails_open_and_the_others_closed(cluster: KubeEmulator) -> None:
    """A configuration left behind by a crashed operator: Ignore lets children be deleted, Fail refuses policies."""
    url = f"https://127.0.0.1:{free_port()}"
    rules = [{"apiGroups": ["*"], "apiVersions": ["*"], "operations": ["*"], "resources": ["*"], "scope": "*"}]

    def hook(name: str, failure: str, resources: list[str], group: str) -> dict[str, Any]:
        return {
            "name": name,
            "failurePolicy": failure,
            "sideEffects": "None",
            "admissionReviewVersions": ["v1"],
            "clientConfig": {"url": f"{url}/{name}"},
            "timeoutSeconds": 2,
            "rules": [{**rules[0], "resources": resources, "apiGroups": [group]}],
        }

    cluster.create_object(
        {
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "ValidatingWebhookConfiguration",
            "metadata": {"name": "openmodel.io"},
            "webhooks": [
                hook("policy.openmodel.io", "Fail", ["modeltrustpolicies"], "openmodel.io"),
                hook("guard.openmodel.io", "Ignore", ["deployments"], "apps"),
            ],
        }
    )
    status, answer, _ = await post(cluster, POLICIES, policy("p"))
    assert status == 500 and 'failed calling webhook "policy.openmodel.io"' in answer["message"], answer
    status, answer, _ = await post(cluster, DEPLOYMENTS, deployment("m"))
    assert status == 201, answer
    rsp = await cluster.http.delete(f"{DEPLOYMENTS}/m")
    assert rsp.status == 200


async def test_a_referenced_configmap_missing_warns_and_unusable_content_is_refused(cluster: KubeEmulator) -> None:
    """ConfigMap references are read as the reconciler reads them (its cache): absent (GitOps may apply it
    later) is a warning; present with a PEM that is no key is refused, like an inline one."""
    ref = {"name": "release-key", "namespace": "team-a", "key": "key.pem"}
    doc = policy("by-ref", signature={"required": True, "keys": [{"name": "release", "configMapRef": ref}]})
    async with operator_with_webhooks(cluster) as webhooks:
        status, answer, warnings = await post(webhooks, POLICIES + "?dryRun=All", doc)
        assert status == 201, answer
        assert any("release-key" in w and "PolicyInvalid" in w for w in warnings), warnings
        cm = {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "bad-key", "namespace": "team-a"},
            "data": {"key.pem": "-----BEGIN PUBLIC KEY-----\nbm90IGEga2V5\n-----END PUBLIC KEY-----\n"},
        }
        webhooks.create_object(cm)
        bad = policy(
            "by-ref",
            signature={"required": True, "keys": [{"name": "release", "configMapRef": {**ref, "name": "bad-key"}}]},
        )
        status, answer, _ = await post(webhooks, POLICIES, bad)
        assert status == 422 and "(or its ConfigMap) is unusable" in answer["message"], answer
        good = {
            **cm,
            "metadata": {"name": "good-key", "namespace": "team-a"},
            "data": {"key.pem": new_key().public_pem.decode()},
        }
        webhooks.create_object(good)
        ok = policy(
            "by-ref",
            signature={"required": True, "keys": [{"name": "release", "configMapRef": {**ref, "name": "good-key"}}]},
        )
        status, answer, warnings = await post(webhooks, POLICIES, ok)
        assert status == 201 and not warnings, (answer, warnings)
