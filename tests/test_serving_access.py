"""Who may call a served model (issue 10): a NetworkPolicy per model (the own namespace by default) and an
optional generated API key, required by a policy when the cluster admin says so. Each hostile case sits
next to the legitimate one."""

from __future__ import annotations

import base64
from typing import Any

import pytest
from pydantic import ValidationError

from kube_fixtures import kube, run_operator
from openmodel_operator.api.openmodel import OpenModelSpec
from openmodel_operator.api.trustpolicy import ModelTrustPolicySpec
from openmodel_operator.planning import children
from openmodel_operator.trust.decision import serving_violations
from openmodel_operator.trust.policies import Policy
from test_operator import NS, World, operator, world
from test_planner import PINNED, REF, SETTINGS

__all__ = ["kube", "operator", "run_operator", "world"]  # the fixtures this module uses


def spec(**access: Any) -> OpenModelSpec:
    return OpenModelSpec.model_validate({"source": {"uri": "hf://org/granite"}, "serving": {"access": access}})


def test_by_default_only_the_models_own_namespace_reaches_the_server_port() -> None:
    policy = children.network_policy(REF, spec())
    assert policy is not None
    assert policy["spec"]["podSelector"] == {"matchLabels": children.selector_labels(REF, "server")}
    assert policy["spec"]["policyTypes"] == ["Ingress"]
    (rule,) = policy["spec"]["ingress"]
    assert rule["from"] == [{"podSelector": {}}]  # any pod of the policy's (the model's) namespace, nothing else
    assert rule["ports"] == [{"protocol": "TCP", "port": 8000}]


def test_other_namespaces_and_pods_are_admitted_only_when_named() -> None:
    policy = children.network_policy(
        REF,
        spec(
            namespaces=["gateway", "apps"],
            namespaceSelector={"matchLabels": {"team": "ml"}},
            podSelector={"matchLabels": {"role": "client"}},
        ),
    )
    assert policy is not None
    peers = policy["spec"]["ingress"][0]["from"]
    pods = {"matchLabels": {"role": "client"}}
    assert peers[0] == {"podSelector": pods}
    names = {"key": "kubernetes.io/metadata.name", "operator": "In", "values": ["apps", "gateway"]}
    assert peers[1] == {"namespaceSelector": {"matchExpressions": [names]}, "podSelector": pods}
    assert peers[2] == {"namespaceSelector": {"matchLabels": {"team": "ml"}}, "podSelector": pods}


@pytest.mark.parametrize(
    "access",
    [
        {"namespaces": ["Not_A_Namespace"]},
        {"podSelector": {"matchLabels": {"bad key!": "x"}}},
        {"podSelector": {"matchLabels": {"ok": "v" * 64}}},
        {"namespaceSelector": {"matchLabels": {}}},
    ],
)
def test_selectors_a_networkpolicy_would_refuse_are_refused_with_the_spec(access: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        spec(**access)
    spec(namespaces=["gateway"], podSelector={"matchLabels": {"example.com/role": "client"}})  # control


def test_an_api_key_is_a_secret_reference_in_the_server_env_never_a_value() -> None:
    deployment = children.deployment(REF, spec(apiKey=True), PINNED, SETTINGS)
    assert deployment is not None
    env = deployment["spec"]["template"]["spec"]["containers"][0]["env"]
    key = [e for e in env if e["name"] == "VLLM_API_KEY"]
    assert key == [
        {"name": "VLLM_API_KEY", "valueFrom": {"secretKeyRef": {"name": "granite-api-key", "key": "api-key"}}}
    ]
    secret = children.api_key_secret(REF)
    assert "data" not in secret and "stringData" not in secret  # the shell draws the key, once
    # a tenant's own VLLM_API_KEY cannot replace the generated one (and must not duplicate the name)
    own = OpenModelSpec.model_validate(
        {
            "source": {"uri": "hf://org/granite"},
            "serving": {"access": {"apiKey": True}, "env": [{"name": "VLLM_API_KEY", "value": "guessable"}]},
        }
    )
    deployment = children.deployment(REF, own, PINNED, SETTINGS)
    assert deployment is not None
    env = deployment["spec"]["template"]["spec"]["containers"][0]["env"]
    assert [e for e in env if e["name"] == "VLLM_API_KEY"] == key
    # control: without apiKey the server has none
    deployment = children.deployment(REF, spec(), PINNED, SETTINGS)
    assert deployment is not None
    assert not any(e["name"] == "VLLM_API_KEY" for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"])


def test_a_policy_can_require_an_api_key() -> None:
    body = {"mode": "Enforce", "serving": {"requireAPIKey": True}}
    policy = Policy(name="keys", generation=1, spec=ModelTrustPolicySpec.model_validate(body))
    (violation,) = serving_violations(policy, spec().serving, "vllm:1")
    assert "spec.serving.access.apiKey" in violation.message and violation.enforced
    assert serving_violations(policy, spec(apiKey=True).serving, "vllm:1") == []  # control


async def test_the_operator_generates_the_key_once_and_names_it_in_status(world: World, operator: Any) -> None:
    world.publish()
    world.policy(serving={"requireAPIKey": True})
    world.model(serving={"access": {"apiKey": True, "namespaces": ["gateway"]}})
    async with operator():
        await world.until(lambda: (world.status().get("access") or {}).get("apiKeySecret"), timeout=10)
        secret = world.child("secrets", "m-api-key")
        assert secret is not None and secret["metadata"]["labels"][children.NAME_LABEL] == "m"
        key = base64.b64decode(secret["data"]["api-key"])
        assert len(key) >= 32
        access = world.status()["access"]
        assert access == {
            "networkPolicy": "m",
            "allowedNamespaces": [NS, "gateway"],
            "apiKeySecret": {"name": "m-api-key", "key": "api-key"},
        }
        assert key.decode() not in str(world.status())  # by reference only
        assert not any(key.decode() in e.get("message", "") for e in world.kube.list("events", NS))
        policy = world.child("networkpolicies", "m")
        assert policy is not None and policy["metadata"]["labels"][children.NAME_LABEL] == "m"

        # the key is never rewritten by later passes
        world.kube.patch_object("openmodels", NS, "m", {"spec": {"serving": {"replicas": 2}}})
        await world.until(lambda: world.status().get("observedGeneration") == world.get()["metadata"]["generation"])
        again = world.child("secrets", "m-api-key")
        assert again is not None and again["data"] == secret["data"]

        # no key asked for any more: it goes (the policy is relaxed first)
        world.kube.patch_object("modeltrustpolicies", None, "org", {"spec": {"serving": {"requireAPIKey": False}}})
        world.kube.patch_object("openmodels", NS, "m", {"spec": {"serving": {"access": {"apiKey": False}}}})
        await world.until(
            lambda: world.child("secrets", "m-api-key") is None
            and "apiKeySecret" not in (world.status().get("access") or {})
            and world.cond("Trusted") == ("True", "PoliciesPassed"),
            timeout=10,
        )


async def test_a_policy_that_requires_a_key_rejects_a_model_without_one(world: World, operator: Any) -> None:
    world.publish()
    world.policy(serving={"requireAPIKey": True})
    world.model()
    async with operator():
        await world.phase("Rejected")
        assert world.cond("Trusted") == ("False", "ServingNotAllowed")
        assert world.child("secrets", "m-api-key") is None


async def test_a_stranger_secret_of_the_key_name_is_never_taken_over(world: World, operator: Any) -> None:
    world.publish()
    world.policy()
    stranger = {"name": "m-api-key", "namespace": NS}
    world.kube.create_object({"apiVersion": "v1", "kind": "Secret", "metadata": stranger, "data": {"x": "eA=="}})
    world.model(serving={"access": {"apiKey": True}})
    async with operator():
        await world.until(lambda: world.cond("Reconciled") == ("False", "ChildConflict"), timeout=10)
        secret = world.child("secrets", "m-api-key")
        assert secret is not None and secret["data"] == {"x": "eA=="}
