"""Admission decides what the reconciler decides before the network, no more and no less (issue 10).

Each hostile case has a legitimate control next to it: the webhook must refuse the one and admit the other,
and a refusal must name the policy, the field and the fix. The same inputs given to the reconciler's
``pre_network_violations`` refuse the same objects (``test_admission_agrees_with_the_reconciler``).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from policy_fixtures import manifest, open_policy

from openmodel_operator.api.openmodel import OpenModelSpec
from openmodel_operator.controller.settings import DEFAULT_VLLM_IMAGE
from openmodel_operator.planning.admission import (
    BREAK_GLASS_GROUP,
    review_child_change,
    review_openmodel,
    review_policy,
)
from openmodel_operator.trust.policies import governing_policies, usable_policy
from openmodel_operator.trust.precheck import pre_network_violations
from signing_fixtures import new_key

RUNTIME = DEFAULT_VLLM_IMAGE
TEAM = {"team": "a"}
OPERATOR = "system:serviceaccount:openmodel-system:openmodel-operator"


def model(uri: str = "hf://example/tiny", **spec: Any) -> dict[str, Any]:
    return {"source": {"uri": uri, **spec.pop("source", {})}, **spec}


def scoped(name: str = "p", mode: str = "Enforce", **spec: Any) -> Any:
    return open_policy(name, mode, namespaceSelector={"matchLabels": TEAM}, **spec)


# ------------------------------------------------------------------ ModelTrustPolicy


def test_a_policy_with_a_usable_key_is_admitted() -> None:
    pem = new_key().public_pem.decode()
    review = review_policy(manifest(signature={"required": True, "keys": [{"name": "release", "publicKey": pem}]}))
    assert review.allowed, review.message


@pytest.mark.parametrize(
    "key",
    [
        pytest.param("-----BEGIN PUBLIC KEY-----\nbm90IGEga2V5\n-----END PUBLIC KEY-----\n", id="pem-not-a-key"),
        pytest.param("-----BEGIN PUBLIC KEY-----\n!!!!\n-----END PUBLIC KEY-----\n", id="pem-not-base64"),
    ],
)
def test_a_policy_whose_key_does_not_load_is_refused_naming_the_field_and_the_fix(key: str) -> None:
    doc = manifest(name="release", signature={"required": True, "keys": [{"name": "release", "publicKey": key}]})
    review = review_policy(doc)
    assert not review.allowed
    assert review.code == 422
    assert "spec.signature.keys['release'].publicKey" in review.message
    assert "PEM" in review.message and "'release'" in review.message


def test_a_policy_the_operator_reads_differently_than_the_schema_is_refused() -> None:
    """The pydantic model is the operator's reading: a value it refuses is refused here, whatever the CRD let by."""
    doc = manifest(sources={"allow": ["not a uri pattern"]})
    review = review_policy(doc)
    assert not review.allowed and "spec.sources.allow" in review.message
    control = manifest(sources={"allow": ["hf://example/*"]})
    assert review_policy(control).allowed


def test_a_missing_referenced_configmap_warns_but_bad_content_in_it_is_refused() -> None:
    """GitOps may apply the policy before its ConfigMap: a warning. Content that is there and unusable: refused."""
    ref = {"name": "keys", "namespace": "openmodel-system", "key": "release.pub"}
    doc = manifest(signature={"required": True, "keys": [{"name": "release", "configMapRef": ref}]})
    policy = usable_policy(doc)
    unreadable = dataclasses.replace(policy, problem="spec.signature.keys['release'].configMapRef: cannot be read")
    missing = review_policy(doc, unreadable)
    assert missing.allowed and missing.warnings and "cannot be read" in missing.warnings[0]

    spec = policy.spec.model_copy(deep=True)
    spec.signature.keys[0].public_key, spec.signature.keys[0].config_map_ref = "not a pem", None  # type: ignore[index]
    bad = review_policy(doc, dataclasses.replace(policy, spec=spec))
    assert not bad.allowed and "publicKey (or its ConfigMap)" in bad.message

    spec.signature.keys[0].public_key = new_key().public_pem.decode()  # type: ignore[index]
    assert review_policy(doc, dataclasses.replace(policy, spec=spec)) == review_policy(doc, None)


# ------------------------------------------------------------------ OpenModel


def test_an_openmodel_an_enforce_policy_refuses_is_refused_with_the_policy_and_reason() -> None:
    policies = [scoped("only-granite", sources={"allow": ["hf://ibm-granite/*"]})]
    review = review_openmodel(model("hf://evil/model"), policies, TEAM, RUNTIME)
    assert not review.allowed and review.code == 403
    assert "ModelTrustPolicy 'only-granite'" in review.message and "SourceNotAllowed" in review.message
    control = review_openmodel(model("hf://ibm-granite/granite-3b"), policies, TEAM, RUNTIME)
    assert control.allowed and not control.warnings


def test_an_audit_violation_is_a_warning_not_a_refusal() -> None:
    policies = [scoped("watch", mode="Audit", sources={"allow": ["hf://ibm-granite/*"]})]
    review = review_openmodel(model("hf://evil/model"), policies, TEAM, RUNTIME)
    assert review.allowed
    assert len(review.warnings) == 1 and "'watch' (Audit)" in review.warnings[0]
    assert "SourceNotAllowed" in review.warnings[0]


def test_only_the_policies_of_the_namespace_decide() -> None:
    policies = [scoped("only-granite", sources={"allow": ["hf://ibm-granite/*"]})]
    elsewhere = review_openmodel(model("hf://example/tiny"), policies, {"team": "b"}, RUNTIME)
    assert elsewhere.allowed  # the built-in default governs team b: nothing it decides before the network refuses
    here = review_openmodel(model("hf://example/tiny"), policies, TEAM, RUNTIME)
    assert not here.allowed


@pytest.mark.parametrize(
    ("serving", "refused"),
    [
        ({"args": ["--trust-remote-code"]}, True),
        ({"env": [{"name": "HF_ENDPOINT", "value": "http://evil"}]}, True),
        ({"image": "evil/vllm:latest"}, True),
        ({"args": ["--max-model-len", "4096"]}, False),
    ],
)
def test_serving_rules_are_decided_at_admission(serving: dict[str, Any], refused: bool) -> None:
    review = review_openmodel(model(serving=serving), [scoped()], TEAM, RUNTIME)
    assert review.allowed is not refused, review.message
    if refused:
        assert "ServingNotAllowed" in review.message


def test_an_endpoint_no_policy_allows_is_refused_and_an_allowed_mirror_is_not() -> None:
    policies = [scoped(sources={"endpoints": {"allow": ["https://mirror.example"]}})]
    refused = review_openmodel(model(source={"endpoint": "https://evil.example"}), policies, TEAM, RUNTIME)
    assert not refused.allowed and "EndpointNotAllowed" in refused.message
    allowed = review_openmodel(model(source={"endpoint": "https://mirror.example"}), policies, TEAM, RUNTIME)
    assert allowed.allowed, allowed.message


def test_an_adapter_is_decided_like_a_model_and_named_in_the_refusal() -> None:
    policies = [scoped("only-granite", sources={"allow": ["hf://ibm-granite/*"]})]
    spec = model(
        "hf://ibm-granite/granite-3b",
        storage={"size": "10Gi"},
        adapters=[{"name": "sql", "source": {"uri": "hf://evil/lora"}}],
    )
    review = review_openmodel(spec, policies, TEAM, RUNTIME)
    assert not review.allowed
    assert "spec.adapters['sql']" in review.message and "only-granite" in review.message
    spec["adapters"] = [{"name": "sql", "source": {"uri": "hf://ibm-granite/sql-lora"}}]
    assert review_openmodel(spec, policies, TEAM, RUNTIME).allowed


def test_an_unusable_policy_refuses_its_models_as_the_reconciler_does() -> None:
    bad = usable_policy(manifest("broken", namespaceSelector={"matchLabels": TEAM}, sources={"allow": ["nope"]}))
    review = review_openmodel(model(), [bad], TEAM, RUNTIME)
    assert not review.allowed and "PolicyInvalid" in review.message and "'broken'" in review.message


def test_a_spec_the_operator_cannot_read_is_refused_with_the_field() -> None:
    review = review_openmodel({"source": {"uri": "hf://a/b"}, "serving": {"replicas": "many"}}, [], TEAM, RUNTIME)
    assert not review.allowed and "spec.serving.replicas" in review.message


@pytest.mark.parametrize(
    "spec",
    [
        model("hf://evil/model"),
        model(serving={"args": ["--trust-remote-code"]}),
        model(source={"endpoint": "https://evil.example"}),
        model("hf://ibm-granite/x"),
        model("hf://ibm-granite/x", serving={"args": ["--max-model-len", "4096"]}),
    ],
)
def test_admission_agrees_with_the_reconciler(spec: dict[str, Any]) -> None:
    """One decision: admission refuses exactly when the reconciler's pre-network step has an enforced violation."""
    policies = [
        scoped("a", sources={"allow": ["hf://ibm-granite/*", "hf://example/*"]}),
        scoped("b", mode="Audit", serving={"deniedArgs": ["--max-model-len"]}),
    ]
    reconciler = pre_network_violations(
        governing_policies(policies, TEAM), OpenModelSpec.model_validate(spec), RUNTIME, None
    )
    review = review_openmodel(spec, policies, TEAM, RUNTIME)
    assert review.allowed is not any(v.enforced for v in reconciler)
    assert len(review.warnings) == len([v for v in reconciler if not v.enforced])


# ------------------------------------------------------------------ the children guard


def test_a_tenant_cannot_change_a_managed_child_but_the_operator_can() -> None:
    tenant = review_child_change("jane", ["system:authenticated"], "UPDATE", "Deployment", "m", [OPERATOR])
    assert not tenant.allowed and tenant.code == 403
    assert "only the operator may change it, not jane" in tenant.message
    assert review_child_change(OPERATOR, ["system:serviceaccounts"], "UPDATE", "Deployment", "m", [OPERATOR]).allowed


@pytest.mark.parametrize("operation", ["CREATE", "DELETE"])
def test_a_tenant_can_neither_plant_nor_delete_a_managed_child(operation: str) -> None:
    assert not review_child_change("jane", [], operation, "ConfigMap", "m-manifest", [OPERATOR]).allowed


def test_another_service_account_named_like_the_operator_is_still_a_tenant() -> None:
    impostor = "system:serviceaccount:tenant-a:openmodel-operator"
    assert not review_child_change(impostor, ["system:serviceaccounts"], "UPDATE", "Job", "j", [OPERATOR]).allowed


@pytest.mark.parametrize(
    "user",
    [
        "system:serviceaccount:kube-system:namespace-controller",
        "system:serviceaccount:kube-system:generic-garbage-collector",
        "system:serviceaccount:kube-system:deployment-controller",
        "system:serviceaccount:kube-system:ephemeral-volume-controller",  # PerPod: the pod's PVC, labelled
        "system:serviceaccount:kube-system:ttl-after-finished-controller",  # the release Job's TTL
    ],
)
def test_the_clusters_own_controllers_pass(user: str) -> None:
    assert review_child_change(user, [], "DELETE", "Deployment", "m", [OPERATOR]).allowed


def test_break_glass_admins_pass_with_a_warning() -> None:
    review = review_child_change("admin", [BREAK_GLASS_GROUP], "UPDATE", "Deployment", "m", [OPERATOR])
    assert review.allowed and review.warnings


# ------------------------------------------------------------------ which namespaces the webhooks judge


def _fires(patterns: list[str], namespace: str) -> bool:
    """The API server sends the request (namespaceSelector on the namespace's name label) and the handler judges it."""
    from kube_emulator.selectors import label_selector_matches
    from openmodel_operator.controller.webhook_registration import judged, shape

    (hook,) = shape([{"name": "guard-deployments.openmodel.io"}], {"app.kubernetes.io/managed-by": "x"}, patterns)
    selector = hook.get("namespaceSelector")
    sent = selector is None or label_selector_matches(selector, {"kubernetes.io/metadata.name": namespace})
    return sent and judged(namespace, patterns)


def test_the_webhooks_judge_every_namespace_a_pattern_matches() -> None:
    """An operator watching ``team-a-*`` (chart ``watch.scope: patterns``) registered ``In ["team-a-*"]``: no
    namespace has that name, so the children guard (and the OpenModel webhook) never saw a request while the
    operator logged the guard on. Named namespaces (the control) keep their selector."""
    assert _fires(["models"], "models") and not _fires(["models"], "other")
    assert _fires([], "anything")
    assert _fires(["team-a-*"], "team-a-1") and not _fires(["team-a-*"], "team-b")
    assert _fires(["!team-a-*,!team-b"], "team-c") and not _fires(["!team-a-*,!team-b"], "team-a-1")
    assert _fires(["models", "team-*"], "team-x") and _fires(["models", "team-*"], "models")
