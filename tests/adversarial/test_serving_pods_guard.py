"""A tenant's pod never receives a model Service's traffic (threat model, row 28).

The model's Service selects pods by ``app.kubernetes.io/name=openmodel``, the instance and
``component=server``: labels any namespace editor can put on a pod of their own, directly, through their own
Deployment or ReplicaSet, or by relabelling or re-imaging a pod. The guard admits such a pod only along the
chain the cluster's controllers keep (operator's Deployment -> Deployment controller's ReplicaSet ->
ReplicaSet controller's pod), judged from the request's authenticated user and the owner as the API server
has it. The emulator calls the operator's real webhooks as a v1.28 apiserver does; each refusal has the
legitimate request of the same shape beside it, which must pass.
"""

from __future__ import annotations

from typing import Any

from kube_emulator import KubeEmulator
from openmodel_operator.planning.admission import review_pod_change, review_replicaset_change
from test_admission_webhooks import (
    DEPLOYMENTS,
    MANAGED,
    OPERATOR_TOKEN,
    TENANT,
    cluster,
    operator_with_webhooks,
    post,
)

__all__ = ["cluster"]  # the fixture, used by name

PODS = "/api/v1/namespaces/team-a/pods"
REPLICASETS = "/apis/apps/v1/namespaces/team-a/replicasets"
AS_OPERATOR = {"Authorization": f"Bearer {OPERATOR_TOKEN}"}
DEPLOYMENT_CONTROLLER = {"Impersonate-User": "system:serviceaccount:kube-system:deployment-controller"}
REPLICASET_CONTROLLER = {"Impersonate-User": "system:serviceaccount:kube-system:replicaset-controller"}
MERGE = {"Content-Type": "application/merge-patch+json"}


def serving_labels(model: str = "m") -> dict[str, str]:
    """What the model's Service selects, and what the operator's pod template carries besides."""
    return {
        "app.kubernetes.io/name": "openmodel",
        "app.kubernetes.io/instance": model,
        "app.kubernetes.io/component": "server",
        **MANAGED,
        "openmodel.io/name": model,
    }


def pod_spec(image: str = "vllm/vllm-openai:v0.11.0") -> dict[str, Any]:
    return {"containers": [{"name": "server", "image": image}]}


def deployment(name: str, labels: dict[str, str], managed: bool) -> dict[str, Any]:
    selector = {
        k: v for k, v in labels.items() if k.startswith("app.kubernetes.io/") and k != "app.kubernetes.io/managed-by"
    }
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        # the operator's carry its owner label too (its watch files them under their model by it)
        "metadata": {"name": name, "labels": {**MANAGED, "openmodel.io/name": name} if managed else {"app": name}},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": selector},
            "template": {"metadata": {"labels": labels}, "spec": pod_spec()},
        },
    }


def replicaset(
    name: str, labels: dict[str, str], owner: dict[str, Any] | None, image: str = "vllm/vllm-openai:v0.11.0"
) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "labels": {**labels, "pod-template-hash": "abc"}}
    if owner is not None:
        meta["ownerReferences"] = [controller_of(owner)]
    selector = {
        k: v for k, v in labels.items() if k.startswith("app.kubernetes.io/") and k != "app.kubernetes.io/managed-by"
    }
    return {
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "metadata": meta,
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": selector},
            "template": {"metadata": {"labels": labels}, "spec": pod_spec(image)},
        },
    }


def pod(
    name: str, labels: dict[str, str], owner: dict[str, Any] | None, image: str = "vllm/vllm-openai:v0.11.0"
) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "labels": labels}
    if owner is not None:
        meta["ownerReferences"] = [controller_of(owner)]
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": pod_spec(image)}


def controller_of(owner: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": owner["apiVersion"],
        "kind": owner["kind"],
        "name": owner["metadata"]["name"],
        "uid": owner["metadata"]["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


async def created(kube: KubeEmulator, path: str, body: dict[str, Any], headers: dict[str, str]) -> dict[str, Any]:
    status, answer, _ = await post(kube, path, body, headers=headers)
    assert status == 201, answer.get("message")
    assert isinstance(answer, dict)
    return answer


async def refused(kube: KubeEmulator, path: str, body: dict[str, Any], headers: dict[str, str]) -> str:
    status, answer, _ = await post(kube, path, body, headers=headers)
    assert status == 403, answer
    return str(answer["message"])


async def the_models_chain(kube: KubeEmulator) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """The legitimate chain: the operator's Deployment, its ReplicaSet, a serving pod of it."""
    account = {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "default"}}
    await post(kube, "/api/v1/namespaces/team-a/serviceaccounts", account)  # no controller-manager makes it
    dep = await created(kube, DEPLOYMENTS, deployment("m", serving_labels(), managed=True), AS_OPERATOR)
    rs = await created(kube, REPLICASETS, replicaset("m-abc", serving_labels(), dep), DEPLOYMENT_CONTROLLER)
    serving = await created(kube, PODS, pod("m-abc-1", serving_labels(), rs), REPLICASET_CONTROLLER)
    return dep, rs, serving


async def test_only_the_models_own_deployment_makes_pods_its_service_selects(cluster: KubeEmulator) -> None:
    async with operator_with_webhooks(cluster) as kube:
        (config,) = kube.list("admissionregistration.k8s.io/v1/validatingwebhookconfigurations", None)
        hooks = {h["name"].split(".")[0]: h for h in config["webhooks"]}
        for name in ("guard-pods", "guard-pods-ephemeralcontainers"):  # every pod a Service could select
            assert hooks[name]["objectSelector"] == {"matchLabels": {"app.kubernetes.io/name": "openmodel"}}
            assert hooks[name]["failurePolicy"] == "Ignore"
        assert hooks["guard-pods-ephemeralcontainers"]["rules"][0]["resources"] == ["pods/ephemeralcontainers"]
        assert hooks["guard-replicasets"]["objectSelector"] == {"matchLabels": MANAGED}
        dep, rs, _ = await the_models_chain(kube)  # the control: every link admitted

        # a tenant's pod with the Service's labels, bare or claiming the model's ReplicaSet
        why = await refused(kube, PODS, pod("hijack", serving_labels(), None, "evil/proxy:1"), TENANT)
        assert "only the model's own Deployment may make such pods, not jane" in why
        await refused(kube, PODS, pod("hijack", serving_labels(), rs, "evil/proxy:1"), TENANT)
        # a ReplicaSet of the tenant claiming the operator's Deployment (a forged owner reference)
        await refused(kube, REPLICASETS, replicaset("m-forged", serving_labels(), dep, "evil/proxy:1"), TENANT)

        # the tenant's own Deployment whose template copies every label: it is stored (the tenant's business),
        # but the Deployment controller gets no ReplicaSet for it, so no pod ever carries the labels
        evil = await created(kube, DEPLOYMENTS, deployment("evil", serving_labels(), managed=False), TENANT)
        why = await refused(kube, REPLICASETS, replicaset("evil-abc", serving_labels(), evil), DEPLOYMENT_CONTROLLER)
        assert "its Deployment 'evil' is not the operator's" in why

        # the same without the managed-by label: the ReplicaSet is not the operator's business, its pods are
        quiet = {k: v for k, v in serving_labels().items() if k != "app.kubernetes.io/managed-by"}
        quiet_dep = await created(kube, DEPLOYMENTS, deployment("quiet", quiet, managed=False), TENANT)
        quiet_rs = await created(kube, REPLICASETS, replicaset("quiet-abc", quiet, quiet_dep), DEPLOYMENT_CONTROLLER)
        why = await refused(kube, PODS, pod("quiet-abc-1", quiet, quiet_rs), REPLICASET_CONTROLLER)
        assert "its ReplicaSet 'quiet-abc' is not one of the operator's" in why
        # a pod of the model's ReplicaSet cannot claim another model's Service either
        await refused(kube, PODS, pod("m-abc-2", serving_labels("other"), rs), REPLICASET_CONTROLLER)

        # controls: a second pod of the model's own ReplicaSet; the tenant's pods with their own labels
        await created(kube, PODS, pod("m-abc-3", serving_labels(), rs), REPLICASET_CONTROLLER)
        await created(kube, PODS, pod("own", {"app": "own"}, None), TENANT)
        await created(kube, PODS, pod("own-rs", {"app": "own"}, quiet_rs), TENANT)
        assert kube.get("pods", "team-a", "hijack") is None


async def test_a_serving_pod_is_not_relabelled_reimaged_or_debugged_by_a_tenant(cluster: KubeEmulator) -> None:
    async with operator_with_webhooks(cluster) as kube:
        _, _, serving = await the_models_chain(kube)
        own = await created(kube, PODS, pod("own", {"app": "own"}, None), TENANT)
        path = f"{PODS}/{serving['metadata']['name']}"

        async def patched(target: str, body: dict[str, Any], headers: dict[str, str]) -> tuple[int, Any]:
            rsp = await kube.http.patch(target, json=body, headers={**headers, **MERGE})
            return rsp.status, await rsp.json()

        image = {"spec": {"containers": [{"name": "server", "image": "evil/proxy:1"}]}}
        status, answer = await patched(path, image, TENANT)
        assert status == 403 and "only the cluster's controllers may change it, not jane" in answer["message"]
        status, answer = await patched(path, {"metadata": {"labels": {"app.kubernetes.io/instance": "x"}}}, TENANT)
        assert status == 403, answer
        debug = {"spec": {"ephemeralContainers": [{"name": "sniff", "image": "evil/tcpdump:1"}]}}
        status, answer = await patched(f"{path}/ephemeralcontainers", debug, TENANT)
        assert status == 403, answer["message"]
        # the tenant's own pod, relabelled to join the Service
        status, answer = await patched(f"{PODS}/own", {"metadata": {"labels": serving_labels()}}, TENANT)
        assert status == 403, answer
        stored = kube.get("pods", "team-a", serving["metadata"]["name"])
        assert stored["spec"]["containers"][0]["image"] == "vllm/vllm-openai:v0.11.0"
        assert not stored["spec"].get("ephemeralContainers")
        assert kube.get("pods", "team-a", "own")["metadata"]["labels"] == own["metadata"]["labels"]

        # controls: an annotation on the serving pod, any edit of the tenant's own pod, and a cluster admin's
        # debug container (break-glass: admitted with a warning)
        status, answer = await patched(path, {"metadata": {"annotations": {"note": "on call"}}}, TENANT)
        assert status == 200, answer
        status, answer = await patched(f"{PODS}/own", {"metadata": {"labels": {"tier": "x"}}}, TENANT)
        assert status == 200, answer
        rsp = await kube.http.patch(f"{path}/ephemeralcontainers", json=debug, headers=MERGE)
        assert rsp.status == 200, await rsp.json()
        assert any("guarded by openmodel-operator" in w for w in rsp.headers.getall("Warning", []))


def test_an_owner_that_cannot_be_shown_refuses_the_pod_and_the_replicaset() -> None:
    """Fail closed in the pure decision: no owner read (None), another uid, an owner without the operator's
    label; and the kube-controller-manager's single identity (clusters without per-controller credentials)
    is judged the same way as the ReplicaSet controller's."""
    rs = replicaset("m-abc", serving_labels(), None)
    rs["metadata"]["uid"] = "rs-uid"
    ref = {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "m-abc", "uid": "rs-uid", "controller": True}
    new = pod("m-abc-1", serving_labels(), None)
    new["metadata"]["ownerReferences"] = [ref]
    for maker in ("system:serviceaccount:kube-system:replicaset-controller", "system:kube-controller-manager"):
        assert review_pod_change(maker, [], "CREATE", None, new, rs, ()).allowed  # the control
        assert not review_pod_change(maker, [], "CREATE", None, new, None, ()).allowed
        assert not review_pod_change(
            maker, [], "CREATE", None, new, {**rs, "metadata": {**rs["metadata"], "uid": "x"}}, ()
        ).allowed
        unlabelled = {**rs, "metadata": {**rs["metadata"], "labels": {"app": "rs"}}}
        assert not review_pod_change(maker, [], "CREATE", None, new, unlabelled, ()).allowed
    # the job controller (a tenant's Job whose template copies the labels) is not a maker of serving pods
    assert not review_pod_change(
        "system:serviceaccount:kube-system:job-controller", [], "CREATE", None, new, rs, ()
    ).allowed

    dep = deployment("m", serving_labels(), managed=True)
    dep["metadata"]["uid"] = "dep-uid"
    rs_new = replicaset("m-abc", serving_labels(), None)
    rs_new["metadata"]["ownerReferences"] = [
        {"apiVersion": "apps/v1", "kind": "Deployment", "name": "m", "uid": "dep-uid", "controller": True}
    ]
    maker = "system:serviceaccount:kube-system:deployment-controller"
    assert review_replicaset_change(maker, [], "CREATE", None, rs_new, dep, ()).allowed  # the control
    assert not review_replicaset_change(maker, [], "CREATE", None, rs_new, None, ()).allowed
    scaled = {**rs_new, "spec": {**rs_new["spec"], "replicas": 0}}
    assert review_replicaset_change(maker, [], "UPDATE", rs_new, scaled, None, ()).allowed  # scaling needs no read
    reimaged = {
        **rs_new,
        "spec": {
            **rs_new["spec"],
            "template": {"metadata": {"labels": serving_labels()}, "spec": pod_spec("evil/proxy:1")},
        },
    }
    assert not review_replicaset_change(maker, [], "UPDATE", rs_new, reimaged, None, ()).allowed


async def test_an_owner_the_operator_cannot_read_refuses_with_503_and_a_readable_one_is_returned() -> None:
    """The shell's read of an owner fails closed: starting (no API client yet), an API error, a read that hangs
    past its bound each refuse the write with 503 (the controller retries); a read that answers is returned."""
    import asyncio

    import kopf

    from openmodel_operator.controller import webhooks

    class Reads:
        def __init__(self, answer: Any) -> None:
            self.answer = answer

        async def replicaset(self, namespace: str, name: str) -> Any:
            if self.answer == "hang":
                await asyncio.sleep(60)
            if isinstance(self.answer, Exception):
                raise self.answer
            return self.answer

    rs = {"metadata": {"name": "m-abc", "uid": "u"}}
    assert await webhooks._owner({"kube": Reads(rs)}, "ReplicaSet", "team-a", "m-abc", "Pod x") == rs  # control
    original = webhooks.OWNER_READ_TIMEOUT
    webhooks.OWNER_READ_TIMEOUT = 0.05
    try:
        for state, why in (
            ({}, "the operator is starting"),
            ({"kube": Reads(RuntimeError("boom"))}, "failed (RuntimeError)"),
            ({"kube": Reads("hang")}, "timed out"),
        ):
            try:
                await webhooks._owner(state, "ReplicaSet", "team-a", "m-abc", "Pod x")
            except kopf.AdmissionError as refused:
                assert refused.code == 503 and why in str(refused) and "Pod x cannot be checked now" in str(refused)
            else:
                raise AssertionError(f"admitted although {why}")
    finally:
        webhooks.OWNER_READ_TIMEOUT = original
