"""The operator's flows as a user sees them: ``kubectl get openmodels``, conditions, Events and children.

Each test has its own namespace, governed only by its own ModelTrustPolicy, and (out of cluster) its own
``openmodel run --standalone --namespace <ns>``. With E2E_SIMULATE_WORKLOADS=1 the suite completes the fetch
Job and rolls the Deployment out itself; otherwise the cluster's controllers and kubelet do.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from harness import Case, KeyPair

PUBLISHED_AT = "e2e/{namespace}"
FLOWING = ("Pulling", "Deploying", "Ready")


def repo_of(case: Case) -> str:
    return PUBLISHED_AT.format(namespace=case.namespace)


def configmaps(children: dict[str, list[dict[str, Any]]], component: str) -> list[str]:
    """The names of the model's ConfigMaps of one component: ``manifest`` or ``bom`` (a revision's AI-BOMs)."""
    return sorted(
        c["metadata"]["name"]
        for c in children.get("ConfigMap", [])
        if c["metadata"].get("labels", {}).get("app.kubernetes.io/component") == component
    )


def _reasons(case: Case, name: str = "m") -> dict[str, set[str]]:
    """Event reasons by type (Normal / Warning)."""
    found: dict[str, set[str]] = {}
    for event in case.events(name):
        found.setdefault(event.get("type", ""), set()).add(event.get("reason", ""))
    return found


def _ready(case: Case, publish: Any, signing_key: KeyPair, retain: bool = False) -> dict[str, Any]:
    publish(repo_of(case))
    case.policy(public_pem=signing_key.public_pem)
    case.model(repo_of(case), retain=retain)
    return case.bring_to_ready()


def test_signed_model_is_verified_pulled_and_served(case: Case, publish: Any, signing_key: KeyPair) -> None:
    commit = publish(repo_of(case))
    case.policy(public_pem=signing_key.public_pem)
    case.model(repo_of(case))

    status = case.wait_phase(*FLOWING)
    provenance = status["provenance"]
    assert provenance["resolvedRevision"] == commit
    assert provenance["trustTier"] == "Signed"
    assert provenance["signature"]["identity"] == "e2e-release"
    assert [p["name"] for p in provenance["policies"]] == [case.namespace]
    assert case.condition("Trusted") == ("True", "PoliciesPassed")
    row = case.row()
    # what is being prepared, not what runs: nothing serves yet
    assert (row["TRUSTED"], row["TIER"], row["INCOMING"]) == ("True", "Signed", commit[:12]), row
    assert row["SERVING"] in ("", "<none>"), row  # kubectl prints <none> for an empty cell
    assert row["PHASE"] in FLOWING, row

    digest = provenance["manifestDigest"]
    job_name = f"m-pull-{digest.split(':', 1)[1][:10]}"
    children = case.children()
    assert configmaps(children, "manifest") == [f"m-manifest-{digest[7:17]}"]
    assert configmaps(children, "bom") == [f"m-bom-{digest[7:17]}"]  # the revision's AI-BOMs
    assert provenance["bom"]["configMap"] == f"m-bom-{digest[7:17]}"
    assert [c["metadata"]["name"] for c in children.get("PersistentVolumeClaim", [])] == ["m-weights"]
    assert [c["metadata"]["name"] for c in children.get("Job", [])] == [job_name]
    job = children["Job"][0]
    assert job["spec"]["template"]["spec"]["automountServiceAccountToken"] is False
    if case.config.simulate:  # nothing serves before the fetch Job verified every byte
        assert "Deployment" not in children and "Service" not in children, list(children)

    status = case.bring_to_ready()
    row = case.row()
    assert (row["PHASE"], row["READY"], row["TRUSTED"], row["TIER"]) == ("Ready", "True", "True", "Signed"), row
    assert row["SERVING"] == commit[:12] and row["INCOMING"] in ("", "<none>"), row
    wide = case.row(wide=True)
    assert (wide["SIGNER"], wide["LICENSE"], wide["PINNED"]) == ("e2e-release", "Apache-2.0", commit[:12]), wide
    serving = "Serving" if case.config.serving_replicas else "ScaledToZero"
    assert case.condition("WeightsReady") == ("True", "Verified")
    assert case.condition("Ready") == ("True", serving)
    assert status["endpoint"] == f"http://m.{case.namespace}.svc.cluster.local/v1"
    assert status["observedGeneration"] == case.get()["metadata"]["generation"]  # type: ignore[index]

    deployment = case.child("deployment", "m")
    service = case.child("service", "m")
    assert deployment is not None and service is not None
    assert deployment["metadata"]["annotations"]["openmodel.io/revision"] == commit
    assert deployment["metadata"]["annotations"]["openmodel.io/manifest-digest"] == digest
    assert deployment["spec"]["replicas"] == case.config.serving_replicas
    assert [p["port"] for p in service["spec"]["ports"]] == [80]
    owner = deployment["metadata"]["ownerReferences"][0]
    assert (owner["kind"], owner["name"], owner["controller"]) == ("OpenModel", "m", True)

    def lifecycle_events() -> dict[str, set[str]] | None:
        reasons = _reasons(case)
        return reasons if {"PoliciesPassed", "Verified", serving} <= reasons.get("Normal", set()) else None

    reasons = case.wait("the Normal Events of the lifecycle", lifecycle_events)
    assert "PoliciesPassed" not in reasons.get("Warning", set()), reasons

    metrics = case.operator.metrics()
    if metrics is not None:
        assert re.search(r'^openmodel_models\{phase="Ready"\} 1\.0$', metrics, re.MULTILINE), metrics


def test_unsigned_model_is_rejected_then_admitted_when_the_policy_turns_to_audit(
    case: Case, publish: Any, signing_key: KeyPair
) -> None:
    publish(repo_of(case), signed=False)
    policy = case.policy(mode="Enforce", public_pem=signing_key.public_pem)
    case.model(repo_of(case))

    status = case.wait_phase("Rejected")
    assert case.condition("Trusted") == ("False", "SignatureMissing")
    assert case.condition("Ready") == ("False", "SignatureMissing")
    assert status["provenance"]["policies"][0]["verdict"] == "Fail"
    row = case.row()
    assert (row["PHASE"], row["TRUSTED"], row["READY"]) == ("Rejected", "False", "False"), row
    case.wait(
        "a Warning Event SignatureMissing",
        lambda: "SignatureMissing" in _reasons(case).get("Warning", set()),
    )
    assert case.children() == {}, "an untrusted model must get no children at all"

    case.kubectl.patch("modeltrustpolicies", policy, None, {"spec": {"mode": "Audit"}})
    status = case.wait_phase(*FLOWING)
    assert case.condition("Trusted") == ("True", "AuditViolations")
    verdict = status["provenance"]["policies"][0]
    assert (verdict["mode"], verdict["verdict"]) == ("Audit", "Fail"), verdict
    row = case.row()
    assert (row["TRUSTED"], row["TIER"]) == ("True", "Unverified"), row

    def with_job() -> dict[str, list[dict[str, Any]]] | None:
        children = case.children()
        return children if children.get("Job") else None

    children = case.wait("the fetch Job of the admitted model", with_job)
    assert {"ConfigMap", "PersistentVolumeClaim", "Job"} <= set(children), list(children)
    case.wait("an Event AuditViolations", lambda: "AuditViolations" in _reasons(case).get("Normal", set()))


def test_deleted_service_is_restored(case: Case, publish: Any, signing_key: KeyPair) -> None:
    _ready(case, publish, signing_key)
    before = case.child("service", "m")
    assert before is not None
    case.kubectl.run("delete", "service", "m", "-n", case.namespace, "--wait=false")

    def recreated() -> dict[str, Any] | None:
        service = case.child("service", "m")
        return service if service and service["metadata"]["uid"] != before["metadata"]["uid"] else None

    restored = case.wait("the Service to be recreated", recreated)
    assert restored["spec"]["ports"] == before["spec"]["ports"]
    assert restored["spec"]["selector"] == before["spec"]["selector"]
    assert case.status()["phase"] == "Ready"


def test_the_singular_and_short_names_name_one_resource_in_kubectl(
    case: Case, publish: Any, signing_key: KeyPair
) -> None:
    """kubectl expands a CRD category before a resource name: a category equal to ``openmodel`` made
    ``kubectl get openmodel NAME`` act on both kinds (seen on a real apiserver). Each name names one kind."""
    publish(repo_of(case))
    case.policy(public_pem=signing_key.public_pem)
    case.model(repo_of(case))
    for name in ("openmodel", "openmodels", "om", "openmodel.openmodel.io"):
        shown = case.kubectl.run("get", name, "m", "-n", case.namespace, "-o", "name").stdout.split()
        assert shown == ["openmodel.openmodel.io/m"], (name, shown)
    described = case.kubectl.run("describe", "openmodel", "m", "-n", case.namespace).stdout
    assert "Kind:         OpenModel" in described and "ModelTrustPolicy" not in described.split("Spec:")[0]
    # the category still lists both kinds in one command
    listed = case.kubectl.run("get", "openmodel-all", "-A", "-o", "name").stdout.split()
    assert "openmodel.openmodel.io/m" in listed
    assert any(item.startswith("modeltrustpolicy.openmodel.io/") for item in listed), listed


@pytest.mark.parametrize("retain", [False, True], ids=["retain-false", "retain-true"])
def test_deleting_the_model_removes_its_children(case: Case, publish: Any, signing_key: KeyPair, retain: bool) -> None:
    _ready(case, publish, signing_key, retain=retain)
    assert {"Deployment", "Service", "Job", "ConfigMap", "PersistentVolumeClaim"} <= set(case.children())

    case.kubectl.delete("openmodels", "m", case.namespace)
    case.wait("the OpenModel to be deleted (the operator removes its finalizer)", lambda: case.get() is None)

    def only_the_claim_left() -> bool:
        kinds = set(case.children())
        return kinds <= {"PersistentVolumeClaim"}

    case.wait("every child but the claim to be deleted", only_the_claim_left)
    claim = case.child("persistentvolumeclaim", "m-weights")
    if retain:
        assert claim is not None, "storage.retain: true must keep the claim"
        assert not claim["metadata"].get("deletionTimestamp")
        assert not claim["metadata"].get("ownerReferences"), "a retained claim must not be garbage-collected"
    else:
        # gone, or held by kubernetes.io/pvc-protection (removed by kube-controller-manager, absent on envtest)
        assert claim is None or claim["metadata"].get("deletionTimestamp"), claim


def test_an_update_keeps_the_previous_revision_serving_then_rolls_back_without_a_pull(
    case: Case, publish: Any, signing_key: KeyPair
) -> None:
    """Issue 9: a new revision is pulled into its own slot while the previous one serves (SERVING / INCOMING),
    the previous one is kept, and going back to it needs no new pull Job."""
    one = publish(repo_of(case))
    two = publish(repo_of(case))
    case.policy(public_pem=signing_key.public_pem)
    case.model(repo_of(case), revision=one)
    first = case.bring_to_ready()["provenance"]["manifestDigest"]

    case.kubectl.patch("openmodels", "m", case.namespace, {"spec": {"source": {"revision": two}}})
    if case.config.simulate:  # with a kubelet the small pull may finish before the phase is seen
        updating = case.wait_phase("Updating")
        assert updating["served"]["manifestDigest"] == first and updating["incoming"]["revision"] == two
        assert case.condition("Ready") == ("True", "Serving")  # the previous revision serves meanwhile
        row = case.row()
        assert (row["SERVING"], row["INCOMING"]) == (one[:12], two[:12]), row

    done = case.bring_to_ready()
    second = done["provenance"]["manifestDigest"]
    assert done["served"]["revision"] == two and done.get("incoming") is None
    assert [k["revision"] for k in done["keptRevisions"]] == [one]
    jobs = sorted(j["metadata"]["name"] for j in case.children().get("Job", []))
    assert jobs == sorted(f"m-pull-{d[7:17]}" for d in (first, second))
    kept = case.children()
    assert configmaps(kept, "manifest") == sorted(f"m-manifest-{d[7:17]}" for d in (first, second))
    assert configmaps(kept, "bom") == sorted(f"m-bom-{d[7:17]}" for d in (first, second))

    case.kubectl.patch("openmodels", "m", case.namespace, {"spec": {"source": {"revision": one}}})
    def rolled_back() -> bool | None:
        deployment = (case.children().get("Deployment") or [{}])[0]
        template = deployment.get("spec", {}).get("template", {}).get("metadata", {})
        return True if template.get("annotations", {}).get("openmodel.io/manifest-digest") == first else None

    case.wait("the rollback to reach the Deployment", rolled_back)
    assert sorted(j["metadata"]["name"] for j in case.children().get("Job", [])) == jobs  # no new pull
    back = case.bring_to_ready()
    assert back["served"]["revision"] == one and [k["revision"] for k in back["keptRevisions"]] == [two]


def test_per_pod_volumes_and_a_shared_claim_make_the_children_they_promise(
    case: Case, publish: Any, signing_key: KeyPair
) -> None:
    """Issue 9: PerPod has no claim and no Job (an ephemeral volume and a pulling init container per pod); two
    models on a shared claim pull with their own references and never create or own that claim."""
    publish(repo_of(case))
    case.policy(public_pem=signing_key.public_pem)
    case.model(repo_of(case), name="per-pod", storage={"mode": "PerPod"})
    case.model(repo_of(case), name="a", storage={"claimName": "model-cache", "accessMode": "ReadWriteMany"})
    case.model(repo_of(case), name="b", storage={"claimName": "model-cache", "accessMode": "ReadWriteMany"})

    case.wait("the PerPod Deployment", lambda: case.children("per-pod").get("Deployment"))
    kids = case.children("per-pod")
    assert "Job" not in kids and "PersistentVolumeClaim" not in kids, list(kids)
    pod = kids["Deployment"][0]["spec"]["template"]["spec"]
    assert next(v for v in pod["volumes"] if v["name"] == "weights")["ephemeral"]["volumeClaimTemplate"]
    (pull,) = pod["initContainers"]
    assert pull["command"][:2] == ["openmodel", "fetch"] and "--verify-only" not in pull["command"]
    assert case.bring_to_ready("per-pod")["served"]["manifestDigest"]

    for name in ("a", "b"):
        case.wait(f"{name}'s pull Job", lambda name=name: case.children(name).get("Job"))
        job = case.children(name)["Job"][0]
        command = job["spec"]["template"]["spec"]["containers"][0]["command"]
        uid = case.get(name)["metadata"]["uid"]  # type: ignore[index]
        assert command[command.index("--ref") + 1] == uid
        volume = next(v for v in job["spec"]["template"]["spec"]["volumes"] if v["name"] == "weights")
        assert volume["persistentVolumeClaim"]["claimName"] == "model-cache"
        assert "PersistentVolumeClaim" not in case.children(name)
        case.bring_to_ready(name)


def test_a_signed_adapter_is_loaded_and_an_unsigned_one_is_refused_while_the_base_serves(
    case: Case, publish: Any, signing_key: KeyPair
) -> None:
    """Issue 9: each LoRA adapter is decided under the same policy as the base model; the signed one is pulled
    into its own slot and loaded, the unsigned one is never pulled nor loaded, and the base model serves."""
    publish(repo_of(case))
    publish(repo_of(case) + "-sql")
    publish(repo_of(case) + "-unsigned", signed=False)
    case.policy(public_pem=signing_key.public_pem)
    case.model(repo_of(case), adapters={"sql": repo_of(case) + "-sql", "unsigned": repo_of(case) + "-unsigned"})

    def refused() -> dict[str, Any] | None:
        adapters = {a["name"]: a for a in (case.status().get("provenance") or {}).get("adapters") or []}
        return adapters if adapters.get("unsigned", {}).get("verdict") == "Untrusted" else None

    adapters = case.wait("the unsigned adapter to be refused", refused)
    assert adapters["sql"]["verdict"] == "Trusted" and adapters["sql"]["signature"]["identity"] == "e2e-release"
    assert case.condition("AdaptersReady") == ("False", "AdapterRejected")

    def loaded() -> list[str] | None:
        case.simulate_once()
        deployment = (case.children().get("Deployment") or [{}])[0]
        containers = deployment.get("spec", {}).get("template", {}).get("spec", {}).get("containers") or [{}]
        args = list(containers[0].get("args") or [])
        return args if "--lora-modules" in args else None

    args = case.wait("the signed adapter in the serving pods", loaded)
    assert args[args.index("--lora-modules") + 1] == "sql=/adapters/sql"
    assert not any("unsigned" in arg for arg in args)
    jobs = case.children().get("Job", [])
    pulled = [j["metadata"].get("annotations", {}).get("openmodel.io/adapter") for j in jobs]
    assert [name for name in pulled if name] == ["sql"]
    warnings = _reasons(case).get("Warning", set())
    assert "AdapterRejected" in warnings, warnings


def test_a_pvc_source_is_examined_by_a_job_without_a_token_and_waits_for_its_report(
    case: Case, signing_key: KeyPair
) -> None:
    """Issue 9: a pvc:// source makes a claim examination Job (no API token, the claim read-only, bounded) and the
    model stays Verifying, saying which Job it waits for, until that Job reports; nothing is served meanwhile. On a
    cluster without a kubelet (or without the claim) the Job never reports, so this holds against any cluster."""
    case.policy(public_pem=signing_key.public_pem, allow=["pvc://staging-weights/*"])
    case.kubectl.apply(
        {
            "apiVersion": "openmodel.io/v1alpha1",
            "kind": "OpenModel",
            "metadata": {"name": "staged", "namespace": case.namespace},
            "spec": {"source": {"uri": "pvc://staging-weights/models/tiny"}, "serving": {"gpus": 0}},
        }
    )
    job = case.wait("the claim examination Job", lambda: (case.children("staged").get("Job") or [None])[0])
    assert job["metadata"]["name"].startswith("staged-examine-")
    pod = job["spec"]["template"]["spec"]
    assert pod["automountServiceAccountToken"] is False
    (container,) = pod["containers"]
    assert container["command"][:2] == ["openmodel", "report-claim"]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert all("valueFrom" not in env for env in container.get("env") or [])
    claim = next(v for v in pod["volumes"] if v["name"] == "claim")["persistentVolumeClaim"]
    assert claim == {"claimName": "staging-weights", "readOnly": True}
    mount = next(m for m in container["volumeMounts"] if m["name"] == "claim")
    assert mount["readOnly"] is True and mount["subPath"] == "models/tiny"
    assert job["spec"]["activeDeadlineSeconds"] > 0 and job["spec"]["backoffLimit"] <= 1

    status = case.wait_phase("Verifying", name="staged")
    ready = next(c for c in status["conditions"] if c["type"] == "Ready")
    assert job["metadata"]["name"] in ready["message"], ready
    assert case.condition("Trusted", name="staged") == ("Unknown", "Examining")
    kids = case.children("staged")
    assert "Deployment" not in kids and "PersistentVolumeClaim" not in kids, list(kids)


def test_a_model_that_asks_for_it_gets_a_network_policy_and_a_generated_api_key(
    case: Case, publish: Any, signing_key: KeyPair
) -> None:
    """Issue 10: every served model gets a NetworkPolicy admitting its own namespace (and the ones it names) on
    the server port; with access.apiKey a key the operator draws, referenced by the server and by status only."""
    publish(repo_of(case))
    case.policy(public_pem=signing_key.public_pem)
    case.model(repo_of(case), serving={"access": {"apiKey": True, "namespaces": ["gateway"]}})
    case.bring_to_ready()
    kids = case.children()
    (policy,) = kids["NetworkPolicy"]
    peers = policy["spec"]["ingress"][0]["from"]
    assert peers[0] == {"podSelector": {}}  # the model's own namespace
    assert peers[1]["namespaceSelector"]["matchExpressions"][0]["values"] == ["gateway"]
    assert policy["spec"]["podSelector"]["matchLabels"]["app.kubernetes.io/component"] == "server"
    (secret,) = kids["Secret"]
    assert secret["metadata"]["name"] == "m-api-key" and secret["data"]["api-key"]
    access = case.status()["access"]
    assert access["apiKeySecret"] == {"name": "m-api-key", "key": "api-key"}
    assert access["allowedNamespaces"] == [case.namespace, "gateway"]
    deployment = kids["Deployment"][0]
    env = deployment["spec"]["template"]["spec"]["containers"][0]["env"]
    key = next(e for e in env if e["name"] == "VLLM_API_KEY")
    assert key["valueFrom"]["secretKeyRef"] == {"name": "m-api-key", "key": "api-key"}
    assert secret["data"]["api-key"] not in str(case.status())
