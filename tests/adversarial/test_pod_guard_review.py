"""An attacker's review of the serving pods' guard (threat model, row 28): what still put pods of a model's
Deployment where the operator did not want them, each hostile request beside the legitimate one of the same
shape, which must pass.

The guard trusts the chain operator -> Deployment -> ReplicaSet -> pod; ``kubectl scale`` writes the
``/scale`` subresource of a Deployment or ReplicaSet, which the children guard did not intercept (its
``objectSelector`` cannot match: a Scale carries no labels). A namespace editor (ClusterRole ``edit`` grants
``deployments/scale`` and ``replicasets/scale``) could so bring back the pods of a model the operator scaled to
zero because it is no longer trusted (revoked, rejected: the Deployment is kept for forensics), or of an old
ReplicaSet (a previous revision): every link of the chain is then legitimate, and the pods were admitted.
"""

from __future__ import annotations

from typing import Any

from test_serving_pods_guard import (
    AS_OPERATOR,
    DEPLOYMENT_CONTROLLER,
    MERGE,
    REPLICASET_CONTROLLER,
    REPLICASETS,
    controller_of,
    created,
    deployment,
    pod,
    replicaset,
    serving_labels,
    the_models_chain,
)

from kube_emulator import KubeEmulator
from openmodel_operator.planning.admission import review_scale_change
from test_admission_webhooks import DEPLOYMENTS, MANAGED, TENANT, cluster, operator_with_webhooks

__all__ = ["cluster"]  # the fixture, used by name

PODS = "/api/v1/namespaces/team-a/pods"
OWN = {"app.kubernetes.io/name": "own"}  # a tenant's own workload


async def scaled(kube: KubeEmulator, path: str, replicas: int, headers: dict[str, str]) -> tuple[int, Any, list[str]]:
    """``kubectl scale``: a merge patch of the ``/scale`` subresource."""
    rsp = await kube.http.patch(f"{path}/scale", json={"spec": {"replicas": replicas}}, headers={**headers, **MERGE})
    return rsp.status, await rsp.json(), rsp.headers.getall("Warning", [])


async def test_a_tenant_cannot_scale_a_stopped_model_back_up(cluster: KubeEmulator) -> None:
    async with operator_with_webhooks(cluster) as kube:
        (config,) = kube.list("admissionregistration.k8s.io/v1/validatingwebhookconfigurations", None)
        hooks = {h["name"].split(".")[0]: h for h in config["webhooks"]}
        scales = (("guard-deployments-scale", "deployments/scale"), ("guard-replicasets-scale", "replicasets/scale"))
        for name, resource in scales:
            assert hooks[name]["rules"][0]["resources"] == [resource]
            assert not hooks[name].get("objectSelector")  # a Scale has no labels: a selector would never match
            assert hooks[name]["failurePolicy"] == "Ignore"
        dep, rs, _ = await the_models_chain(kube)
        # the operator stops serving an untrusted model: a replicas-only patch, the Deployment kept for forensics
        rsp = await kube.http.patch(
            f"{DEPLOYMENTS}/m", json={"spec": {"replicas": 0}}, headers={**MERGE, **AS_OPERATOR}
        )
        assert rsp.status == 200, await rsp.json()

        # hostile: kubectl scale deployment m --replicas=1 (the Deployment controller would make a ReplicaSet
        # the guard admits, whose pods the guard admits: the revoked model serves again)
        status, answer, _ = await scaled(kube, f"{DEPLOYMENTS}/m", 1, TENANT)
        assert status == 403, answer
        assert "only the operator may scale it, not jane" in answer["message"]
        assert "spec.serving.replicas" in answer["message"]
        assert kube.get("deployments", "team-a", "m")["spec"]["replicas"] == 0
        # hostile: kubectl scale replicaset m-abc --replicas=2 (an old ReplicaSet: a previous revision)
        status, answer, _ = await scaled(kube, f"{REPLICASETS}/{rs['metadata']['name']}", 2, TENANT)
        assert status == 403, answer
        assert kube.get("replicasets", "team-a", rs["metadata"]["name"])["spec"]["replicas"] == 1

        # controls: the tenant scales a Deployment and a ReplicaSet of their own; a cluster admin scales the
        # model's (break-glass, with a warning)
        own = await created(kube, DEPLOYMENTS, deployment("own", OWN, managed=False), TENANT)
        status, answer, _ = await scaled(kube, f"{DEPLOYMENTS}/own", 3, TENANT)
        assert status == 200, answer
        own_rs = await created(kube, REPLICASETS, replicaset("own-abc", OWN, own), TENANT)
        status, answer, _ = await scaled(kube, f"{REPLICASETS}/own-abc", 0, TENANT)
        assert status == 200, answer
        assert kube.get("replicasets", "team-a", own_rs["metadata"]["name"])["spec"]["replicas"] == 0
        status, answer, warnings = await scaled(kube, f"{DEPLOYMENTS}/m", 1, {})
        assert status == 200, answer
        assert any("guarded by openmodel-operator" in w for w in warnings)
        # the chain itself still works: a pod of the model's ReplicaSet
        await created(kube, PODS, pod("m-abc-9", serving_labels(), rs), REPLICASET_CONTROLLER)
        assert dep["metadata"]["uid"]


async def test_a_tenant_deployment_does_not_adopt_an_orphaned_replicaset_of_the_model(cluster: KubeEmulator) -> None:
    """A ReplicaSet of the operator's without an owner (its Deployment deleted with ``--cascade=orphan``, the
    garbage collector dropped the reference): the Deployment controller adopts orphans its selector matches,
    with a patch of ``ownerReferences`` only, which the guard let through as "adoption, the pods stay the same".
    A tenant's Deployment with the same selector and template then owned and scaled the model's old pods."""
    async with operator_with_webhooks(cluster) as kube:
        dep, rs, _ = await the_models_chain(kube)
        path = f"{REPLICASETS}/{rs['metadata']['name']}"

        async def owned_by(owner: dict[str, Any] | None, headers: dict[str, str]) -> tuple[int, Any]:
            refs = [controller_of(owner)] if owner is not None else None
            rsp = await kube.http.patch(
                path, json={"metadata": {"ownerReferences": refs}}, headers={**headers, **MERGE}
            )
            return rsp.status, await rsp.json()

        garbage_collector = {"Impersonate-User": "system:serviceaccount:kube-system:generic-garbage-collector"}
        status, answer = await owned_by(None, garbage_collector)  # control: orphaning stays free
        assert status == 200, answer
        thief = await created(kube, DEPLOYMENTS, deployment("thief", serving_labels(), managed=False), TENANT)
        status, answer = await owned_by(thief, DEPLOYMENT_CONTROLLER)  # hostile: the tenant's Deployment adopts
        assert status == 403, answer
        assert "its Deployment 'thief' is not the operator's" in answer["message"]
        assert not kube.get("replicasets", "team-a", rs["metadata"]["name"])["metadata"].get("ownerReferences")
        # control: the model's own Deployment adopts it back (with the kube-controller-manager's single identity)
        status, answer = await owned_by(dep, {"Impersonate-User": "system:kube-controller-manager"})
        assert status == 200, answer


def test_scaling_is_the_operators_for_its_own_objects_only() -> None:
    """The pure decision: who may scale what (the target as read from the API server; None: not there)."""
    ours = deployment("m", serving_labels(), managed=True)
    theirs = deployment("own", {"app": "own"}, managed=False)
    operator = "system:serviceaccount:openmodel-system:openmodel-operator"
    jane = "jane"
    assert review_scale_change(jane, [], "Deployment", "own", theirs, (operator,)).allowed
    assert review_scale_change(jane, [], "Deployment", "gone", None, (operator,)).allowed
    assert review_scale_change(operator, [], "Deployment", "m", ours, (operator,)).allowed
    refused = review_scale_change(jane, [], "Deployment", "m", ours, (operator,))
    assert not refused.allowed and refused.code == 403
    # an HPA of the tenant's, aimed at the model's Deployment, acts as the HPA controller: refused too
    hpa = "system:serviceaccount:kube-system:horizontal-pod-autoscaler"
    assert not review_scale_change(hpa, [], "Deployment", "m", ours, (operator,)).allowed
    admin = review_scale_change("root", ["system:masters"], "Deployment", "m", ours, (operator,))
    assert admin.allowed and admin.warnings
    assert MANAGED.items() <= ours["metadata"]["labels"].items()


async def test_a_tenants_own_scale_needs_no_read_once_the_operator_has_listed(cluster: KubeEmulator) -> None:
    """Every scale in the cluster reaches the scale guard (a Scale has no labels to select on). Once the operator
    has listed its own Deployments, a scale of any other Deployment is admitted from that view: no API read, so a
    slow or starting operator never refuses an unrelated workload's HPA. The model's own is still read."""
    from test_admission_webhooks import MODELS, openmodel, post

    async with operator_with_webhooks(cluster) as kube:
        await the_models_chain(kube)
        status, answer, _ = await post(kube, MODELS, openmodel("x", "hf://org/x"))  # a pass: the operator listed
        assert status == 201, answer
        await kube.wait_for(lambda: (kube.get("openmodels", "team-a", "x") or {}).get("status"), timeout=15)
        await created(kube, DEPLOYMENTS, deployment("own", OWN, managed=False), TENANT)

        def reads(name: str) -> int:
            return sum(
                1 for r in kube._requests if r.method == "GET" and r.name == name and "deployments" in str(r.url)
            )

        status, answer, _ = await scaled(kube, f"{DEPLOYMENTS}/own", 2, TENANT)
        assert status == 200, answer
        assert reads("own") == 0
        # the control: the model's Deployment is read from the API server and its scale refused
        status, answer, _ = await scaled(kube, f"{DEPLOYMENTS}/m", 3, TENANT)
        assert status == 403, answer
        assert reads("m") >= 1
