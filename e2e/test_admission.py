"""Validating admission (issue 10): what the operator would refuse is refused at ``kubectl apply``.

Against the emulator (``e2e/against-emulator.sh``: it calls webhooks by URL as a v1.28 apiserver) and against a
real API server: a control-plane-only cluster (E2E_SIMULATE_WORKLOADS=1) reaches the local operator at
127.0.0.1; a cluster with nodes needs E2E_WEBHOOK_HOST (or E2E_IN_CLUSTER=1, through the Service), otherwise
these tests are skipped with that reason (a webhook the API server cannot reach would fail every apply).
"""

from __future__ import annotations

import json
from typing import Any

import pytest
import yaml
from harness import GROUP_VERSION, RUN_LABEL, Case, KeyPair

NOT_A_KEY = "-----BEGIN PUBLIC KEY-----\nbm90IGEga2V5\n-----END PUBLIC KEY-----\n"
TENANT = ("--as", "e2e-tenant", "--as-group", "system:authenticated")


@pytest.fixture(autouse=True)
def _webhooks_reachable(case: Case) -> None:
    reason = case.config.webhooks_reachable()
    if reason:
        pytest.skip(reason)


def policy_doc(case: Case, name: str, mode: str = "Enforce", **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": GROUP_VERSION,
        "kind": "ModelTrustPolicy",
        "metadata": {"name": name, "labels": {RUN_LABEL: case.run_id}},
        "spec": {
            "mode": mode,
            "namespaceSelector": {"matchLabels": {"e2e.openmodel.io/case": case.namespace}},
            "signature": {"required": False},
            **spec,
        },
    }


def apply(case: Case, doc: dict[str, Any], *flags: str) -> Any:
    """``kubectl apply --server-side`` as a user types it (the CompletedProcess: returncode, stdout, stderr)."""
    text = yaml.safe_dump(doc, sort_keys=False)
    return case.kubectl.run("apply", "--server-side", *flags, "-f", "-", input=text, check=False)


def openmodel(case: Case, name: str, uri: str) -> dict[str, Any]:
    return {
        "apiVersion": GROUP_VERSION,
        "kind": "OpenModel",
        "metadata": {"name": name, "namespace": case.namespace},
        "spec": {"source": {"uri": uri, "endpoint": case.hub.url}, "serving": {"replicas": 0, "gpus": 0}},
    }


def until_governed(case: Case, name: str, doc: dict[str, Any]) -> Any:
    """Apply a probe until the operator's webhook has seen the policy (its watch index, a moment after apply)."""
    found: dict[str, Any] = {}

    def refused() -> bool:
        found["proc"] = apply(case, doc, "--dry-run=server")
        return found["proc"].returncode != 0 and name in found["proc"].stderr

    case.wait(f"the webhook to apply ModelTrustPolicy {name}", refused)
    return found["proc"]


def test_a_policy_with_an_unusable_key_is_refused_at_apply_and_by_dry_run(case: Case) -> None:
    name = f"{case.namespace}-badkey"
    bad = policy_doc(case, name, signature={"required": True, "keys": [{"name": "release", "publicKey": NOT_A_KEY}]})
    for flags in ((), ("--dry-run=server",)):
        proc = apply(case, bad, *flags)
        assert proc.returncode != 0, proc.stdout
        assert "denied the request" in proc.stderr and "spec.signature.keys['release'].publicKey" in proc.stderr
        assert "PEM" in proc.stderr, proc.stderr
    assert case.kubectl.get("modeltrustpolicies", name) is None
    # the control: a usable policy passes the same check (and a dry run stores nothing)
    good = policy_doc(case, name)
    assert apply(case, good, "--dry-run=server").returncode == 0
    assert case.kubectl.get("modeltrustpolicies", name) is None


def test_an_openmodel_is_refused_at_apply_with_the_policys_name_and_reason(case: Case) -> None:
    name = case.namespace
    assert (
        apply(
            case, policy_doc(case, name, sources={"allow": ["hf://e2e/*"], "endpoints": {"allow": [case.hub.url]}})
        ).returncode
        == 0
    )
    case.policies.append(name)
    proc = until_governed(case, name, openmodel(case, "evil", "hf://elsewhere/model"))
    assert proc.returncode != 0
    assert f"ModelTrustPolicy '{name}'" in proc.stderr and "SourceNotAllowed" in proc.stderr, proc.stderr
    proc = apply(case, openmodel(case, "evil", "hf://elsewhere/model"))
    assert proc.returncode != 0 and "SourceNotAllowed" in proc.stderr
    assert case.get("evil") is None
    # the control: a source the policy allows is admitted
    proc = apply(case, openmodel(case, "fine", "hf://e2e/fine"))
    assert proc.returncode == 0, proc.stderr


def test_an_audit_violation_is_admitted_with_a_warning(case: Case) -> None:
    name = case.namespace
    audit = policy_doc(
        case, name, mode="Audit", sources={"allow": ["hf://e2e/*"], "endpoints": {"allow": [case.hub.url]}}
    )
    assert apply(case, audit).returncode == 0
    case.policies.append(name)

    def warned() -> Any:
        proc = apply(case, openmodel(case, "audited", "hf://elsewhere/model"), "--dry-run=server")
        return proc if "Warning:" in proc.stderr else None

    proc = case.wait("an admission warning", warned)
    assert proc.returncode == 0, proc.stderr
    assert f"'{name}' (Audit)" in proc.stderr and "SourceNotAllowed" in proc.stderr, proc.stderr


def tenant_may_edit(case: Case) -> None:
    """The tenant may edit Deployments, pods and the rest of the namespace (ClusterRole ``edit``)."""
    case.kubectl.apply(
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": {"name": "e2e-tenant-edit", "namespace": case.namespace},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "edit"},
            "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "e2e-tenant"}],
        }
    )


def test_a_tenant_pod_with_the_model_services_labels_is_refused(case: Case, publish: Any, signing_key: KeyPair) -> None:
    """Threat model row 28: the Service selects by labels, so a pod of the tenant's carrying them would get the
    Trusted endpoint's traffic (and callers' API keys); only the model's own Deployment makes such pods."""
    from test_lifecycle import repo_of

    publish(repo_of(case))
    case.policy(public_pem=signing_key.public_pem)
    case.model(repo_of(case))
    case.bring_to_ready()
    tenant_may_edit(case)
    # the ServiceAccount admission plugin needs the namespace's default account (a control-plane-only cluster
    # has no controller that makes it); it runs before the webhooks
    account = {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": {"name": "default", "namespace": case.namespace},
    }
    case.kubectl.apply(account)
    service = case.child("service", "m")
    assert service is not None
    selector = dict(service["spec"]["selector"])

    def tenant_pod(name: str, labels: dict[str, str]) -> dict[str, Any]:
        return {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": name, "namespace": case.namespace, "labels": {**labels, RUN_LABEL: case.run_id}},
            "spec": {"containers": [{"name": "proxy", "image": "evil/proxy:1"}]},
        }

    proc = case.kubectl.run(
        "create", "-f", "-", *TENANT, input=yaml.safe_dump(tenant_pod("hijack", selector)), check=False
    )
    assert proc.returncode != 0, proc.stdout
    assert "only the model's own Deployment may make such pods, not e2e-tenant" in proc.stderr, proc.stderr
    assert case.child("pod", "hijack") is None
    # the control: the tenant's pod with labels of its own is the tenant's business
    proc = case.kubectl.run(
        "create", "-f", "-", *TENANT, input=yaml.safe_dump(tenant_pod("own", {"app": "own"})), check=False
    )
    assert proc.returncode == 0, proc.stderr
    assert case.status()["phase"] == "Ready"


def test_a_tenant_edit_of_the_serving_deployment_is_refused(case: Case, publish: Any, signing_key: KeyPair) -> None:
    from test_lifecycle import repo_of

    publish(repo_of(case))
    case.policy(public_pem=signing_key.public_pem)
    case.model(repo_of(case))
    case.bring_to_ready()
    tenant_may_edit(case)  # the guard, not RBAC, is what refuses
    before = case.child("deployment", "m")
    assert before is not None
    image = [{"op": "replace", "path": "/spec/template/spec/containers/0/image", "value": "evil/vllm:latest"}]
    proc = case.kubectl.run(
        "patch", "deployment", "m", "-n", case.namespace, "--type=json", "-p", json.dumps(image), *TENANT, check=False
    )
    assert proc.returncode != 0, proc.stdout
    assert "only the operator may change it, not e2e-tenant" in proc.stderr, proc.stderr
    proc = case.kubectl.run("delete", "deployment", "m", "-n", case.namespace, "--wait=false", *TENANT, check=False)
    assert proc.returncode != 0 and "only the operator may delete it" in proc.stderr, proc.stderr
    after = case.child("deployment", "m")
    assert after is not None and after["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]
    # the control: the tenant's own, unmanaged Deployment is the tenant's business
    own = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "tenant-own", "namespace": case.namespace},
        "spec": {
            "replicas": 0,
            "selector": {"matchLabels": {"app": "own"}},
            "template": {
                "metadata": {"labels": {"app": "own"}},
                "spec": {"containers": [{"name": "c", "image": "busybox"}]},
            },
        },
    }
    proc = case.kubectl.run("apply", "--server-side", "-f", "-", *TENANT, input=yaml.safe_dump(own), check=False)
    assert proc.returncode == 0, proc.stderr
    assert case.status()["phase"] == "Ready"
