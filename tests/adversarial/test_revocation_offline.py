"""Threat: revocation waits for the source (issue 8, property 2).

A policy change, a rotated key or a deleted key ConfigMap must stop a model even while its source is
down, deleted or lying: the operator re-decides from the evidence it recorded, with no network. A source
outage alone (policies unchanged, still passing) keeps the verified content serving, marked Degraded.
Each hostile case runs next to its control.
"""

from __future__ import annotations

from typing import Any

import pytest
from operator_world import FILES, NS, World

from signing_fixtures import new_key

pytest_plugins = ["operator_world"]


def _replicas(world: World, name: str = "m") -> int | None:
    deployment = world.child("deployments", name)
    return None if deployment is None else deployment["spec"].get("replicas")


def _publish(world: World) -> None:
    """A signed model, the policy that trusts its key, and the OpenModel."""
    world.publish()
    world.policy()
    world.model()


def _rotate_key(world: World) -> None:
    world.trust_only(new_key())


def _take_source_away(world: World, how: str) -> None:
    """The source goes down (503 on everything), is deleted by its publisher, or answers garbage."""
    if how == "deleted":
        world.hub.repos.clear()
        return

    def hostile(handler: Any) -> bool:
        if how == "down":
            handler._send(503, b'{"error": "unavailable"}', {"Content-Type": "application/json"}, False)
        else:
            handler._send(200, b"<html>\x00 not a hub </html>", {"Content-Type": "application/json"}, False)
        return True

    world.hub.override = hostile


@pytest.mark.parametrize("how", ["down", "deleted", "garbage"])
async def test_rotated_key_rejects_and_scales_to_zero_while_the_source_is_gone(
    world: World, operator: Any, how: str
) -> None:
    _publish(world)
    async with operator():
        await world.serve()
        _take_source_away(world, how)
        _rotate_key(world)
        await world.phase("Rejected", timeout=10)
        assert world.cond("Trusted") == ("False", "UntrustedSigner")
        await world.until(lambda: _replicas(world) == 0, timeout=10)


@pytest.mark.parametrize("how", ["down", "deleted", "garbage"])
async def test_control_an_outage_alone_keeps_serving_marked_degraded(world: World, operator: Any, how: str) -> None:
    _publish(world)
    async with operator(reverify_interval=1):
        await world.serve()
        _take_source_away(world, how)
        await world.phase("Degraded", timeout=15)
        source = world.cond("SourceAvailable")
        assert source is not None and source[0] == "False"
        assert world.cond("Trusted") == ("True", "PoliciesPassed")
        assert _replicas(world) == 1


async def test_tightened_license_rule_rejects_while_the_source_is_down(world: World, operator: Any) -> None:
    _publish(world)
    async with operator():
        await world.serve()
        _take_source_away(world, "down")
        world.kube.patch_object("modeltrustpolicies", None, "org", {"spec": {"licenses": {"deny": ["Apache-2.0"]}}})
        await world.phase("Rejected", timeout=10)
        assert world.cond("Trusted") == ("False", "LicenseDenied")
        await world.until(lambda: _replicas(world) == 0, timeout=10)


async def test_deleted_key_configmap_fails_closed_while_the_source_is_down(world: World, operator: Any) -> None:
    world.publish()
    world.policy_with_key_in_configmap()
    world.model()
    async with operator():
        await world.serve()
        _take_source_away(world, "down")
        world.kube.delete_object("configmaps", "default", "release-keys")
        await world.phase("Rejected", timeout=15)
        assert world.cond("Trusted") == ("False", "PolicyInvalid")
        await world.until(lambda: _replicas(world) == 0, timeout=10)


async def test_a_second_model_is_not_hurt_by_a_broken_first(world: World, operator: Any) -> None:
    """A child name held by another OpenModel's child fails that model with a reason, and the other child is
    not taken over; the other model is served (control)."""
    labels = {"app.kubernetes.io/managed-by": "openmodel-operator", "openmodel.io/name": "intruder"}
    world.kube.create_object(
        {
            "apiVersion": "v1",
            "kind": "PersistentVolumeClaim",
            "metadata": {"name": "a-weights", "namespace": NS, "labels": labels},
            "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}},
        }
    )
    world.publish()
    world.policy()
    world.model("a")
    world.model("b")
    async with operator():
        await world.phase("Failed", "a", timeout=10)
        status = world.status("a")
        conds = {c["type"]: c for c in status["conditions"]}
        assert conds["Reconciled"]["reason"] == "ChildConflict"
        taken = world.child("persistentvolumeclaims", "a-weights")
        assert taken["metadata"]["labels"]["openmodel.io/name"] == "intruder"  # not taken over
        await world.serve("b")


async def test_a_restarted_operator_rejects_from_the_recorded_evidence_while_the_source_is_down(
    world: World, operator: Any
) -> None:
    """No memory of the decision survives a restart: the evidence kept beside the manifest decides."""
    _publish(world)
    async with operator():
        await world.serve()
    _take_source_away(world, "down")
    _rotate_key(world)
    async with operator():
        await world.phase("Rejected", timeout=10)
        assert world.cond("Trusted") == ("False", "UntrustedSigner")
        await world.until(lambda: _replicas(world) == 0, timeout=10)


async def test_control_a_restarted_operator_keeps_serving_through_an_outage(world: World, operator: Any) -> None:
    _publish(world)
    async with operator():
        await world.serve()
    _take_source_away(world, "down")
    async with operator(reverify_interval=1):
        await world.phase("Degraded", timeout=15)
        assert world.cond("Trusted") == ("True", "PoliciesPassed")
        assert _replicas(world) == 1


async def test_a_tenant_cannot_swap_the_recorded_bundle_for_one_the_new_policy_trusts(
    world: World, operator: Any, tmp_path: Any
) -> None:
    """The recorded bundle is believed only if it hashes to the bundle digest on status (operator-written)."""
    import base64

    from signing_fixtures import sign_with_key, write_model
    from test_operator import FILES

    _publish(world)
    async with operator():
        await world.serve()
    # the tenant signs the same content with a key of their own and asks for it to be trusted
    rogue = new_key()
    forged = sign_with_key(write_model(tmp_path / "forged", FILES), rogue, tmp_path / "forged-sig")
    world.kube.patch_object(
        "configmaps",
        NS,
        world.manifest_name(),
        {"binaryData": {"signature-bundle": base64.b64encode(forged).decode()}},
    )
    _take_source_away(world, "down")
    world.trust_only(rogue, "rogue")
    async with operator():
        await world.until(lambda: world.status().get("phase") in ("Rejected", "Failed"), timeout=10)
        assert world.cond("Trusted") != ("True", "PoliciesPassed")
        await world.until(lambda: _replicas(world) == 0, timeout=10)


async def test_a_policy_with_an_unusable_key_says_so_and_fails_its_models(world: World, operator: Any) -> None:
    """`kubectl get mtp` shows why a policy is unusable; the models it governs fail, not pass on another policy."""
    world.publish()
    world.policy()  # a valid policy that would admit the model on its own
    broken = "-----BEGIN PUBLIC KEY-----\nbm90IGEga2V5\n-----END PUBLIC KEY-----\n"
    world.policy("broken", signature={"required": True, "keys": [{"name": "bad", "publicKey": broken}]})
    world.model()
    async with operator():
        await world.phase("Rejected", timeout=10)
        assert world.cond("Trusted") == ("False", "PolicyInvalid")

        def broken_status() -> dict[str, Any]:
            return (world.kube.get("modeltrustpolicies", None, "broken") or {}).get("status") or {}

        await world.until(lambda: broken_status().get("governedModels") == 1, timeout=10)
        (accepted,) = broken_status()["conditions"]
        assert (accepted["type"], accepted["status"], accepted["reason"]) == ("Accepted", "False", "InvalidAnchors")
        assert "spec.signature.keys" in accepted["message"]
        await world.until(
            lambda: ((world.kube.get("modeltrustpolicies", None, "org") or {}).get("status") or {}).get("conditions"),
            timeout=10,
        )
        good = world.kube.get("modeltrustpolicies", None, "org")["status"]
        assert [(c["type"], c["status"]) for c in good["conditions"]] == [("Accepted", "True")]


async def test_content_still_served_during_a_switch_is_revoked_too(world: World, operator: Any) -> None:
    """The tenant moves the source to a model that passes and whose pull never completes: the old content
    keeps serving meanwhile, but only while it still passes. Revoking its signer stops it; the new content,
    once verified, is served (control)."""
    import os

    newer = new_key()
    world.publish("org/model")  # served first, signed by world.key
    world.publish("org/other", files={**FILES, "model.safetensors": os.urandom(4096)}, key=newer)
    both = [
        {"name": "old", "publicKey": world.key.public_pem.decode()},
        {"name": "new", "publicKey": newer.public_pem.decode()},
    ]
    world.policy(signature={"required": True, "keys": both})
    world.model()
    async with operator():
        await world.serve()
        world.kube.patch_object("openmodels", NS, "m", {"spec": {"source": {"uri": "hf://org/other"}}})
        await world.until(lambda: len(world.jobs()) == 2, timeout=10)
        status = await world.phase("Updating", timeout=10)
        assert _replicas(world) == 1  # zero downtime: the old content serves while the new one is pulled
        assert status["served"]["manifestDigest"] != status["incoming"]["manifestDigest"]
        assert status["incoming"]["stage"] == "Pulling"
        world.trust_only(newer, "new")
        await world.until(lambda: _replicas(world) == 0, timeout=10)
        await world.until(lambda: world.cond("Available") == ("False", "ServedContentRevoked"), timeout=10)
        available = next(c for c in world.status()["conditions"] if c["type"] == "Available")
        assert "UntrustedSigner" in available["message"]
        new_job = next(j for j in world.jobs() if not (j.get("status") or {}).get("succeeded"))
        world.kube.complete_job(NS, new_job["metadata"]["name"])
        await world.until(lambda: _replicas(world) == 1, timeout=10)  # control: the new content rolls out
        world.kube.mark_deployment_available(NS, "m")
        await world.phase("Ready", timeout=10)


async def test_a_model_with_a_long_name_is_served_and_revoked(world: World, operator: Any) -> None:
    """Names over 63 characters are shortened in labels; the operator still finds, serves and stops them."""
    long = "granite-3-1-8b-instruct-quantized-w4a16-for-the-customer-support-team-production"
    world.publish()
    world.policy()
    world.model(long)
    async with operator():
        await world.until(lambda: world.kube.list("jobs", NS), timeout=10)
        world.kube.complete_job(NS, world.kube.list("jobs", NS)[0]["metadata"]["name"])
        await world.until(lambda: world.kube.list("deployments", NS), timeout=10)
        deployment = world.kube.list("deployments", NS)[0]["metadata"]["name"]
        world.kube.mark_deployment_available(NS, deployment)
        await world.phase("Ready", long, timeout=10)
        _rotate_key(world)
        await world.phase("Rejected", long, timeout=10)
        await world.until(lambda: world.kube.list("deployments", NS)[0]["spec"]["replicas"] == 0, timeout=10)


def _switching(world: World, **policy: Any) -> Any:
    """A model serving content signed by world.key, another repository signed by a second key, a policy
    trusting both; returns the second key."""
    import os

    newer = new_key()
    world.publish("org/model")
    world.publish("org/other", files={**FILES, "model.safetensors": os.urandom(4096)}, key=newer)
    both = [
        {"name": "old", "publicKey": world.key.public_pem.decode()},
        {"name": "new", "publicKey": newer.public_pem.decode()},
    ]
    world.policy(signature={"required": True, "keys": both}, **policy)
    return newer


async def _switch_and_wait(world: World, **spec: Any) -> None:
    """Serve, then move the source to the other repository; its pull never completes."""
    await world.serve()
    world.kube.patch_object("openmodels", NS, "m", {"spec": {"source": {"uri": "hf://org/other"}, **spec}})
    await world.until(lambda: len(world.jobs()) == 2, timeout=10)
    await world.phase("Updating", timeout=10)  # the old content serves while the new one is pulled


async def test_content_still_running_during_a_rollout_is_revoked_too(world: World, operator: Any) -> None:
    """The new content is verified and rolling out while the old pods still run beside the new ones (no spare
    GPU: the rollout stalls). Revoking the old signer forces the old pods down (Recreate) at once, and status
    no longer claims they serve; an untouched rollout keeps its own strategy (control, before the revocation)."""
    newer = _switching(world)
    world.model(storage={"accessMode": "ReadWriteMany"}, serving={"rollout": {"maxSurge": 1, "maxUnavailable": 0}})
    async with operator():
        await world.serve()
        old = world.status()["served"]["manifestDigest"]
        world.kube.patch_object("openmodels", NS, "m", {"spec": {"source": {"uri": "hf://org/other"}}})
        await world.until(lambda: len(world.jobs()) == 2, timeout=10)
        new_job = next(j for j in world.jobs() if not (j.get("status") or {}).get("succeeded"))
        world.kube.complete_job(NS, new_job["metadata"]["name"])
        await world.until(lambda: (world.status().get("incoming") or {}).get("stage") == "RollingOut", timeout=10)
        deployment = world.child("deployments", "m")
        assert deployment["spec"]["strategy"]["type"] == "RollingUpdate"
        assert world.status()["served"]["manifestDigest"] == old
        world.trust_only(newer, "new")
        await world.until(lambda: world.cond("Available") == ("False", "ServedContentRevoked"), timeout=10)
        await world.until(lambda: world.child("deployments", "m")["spec"]["strategy"]["type"] == "Recreate")
        assert world.cond("Ready") == ("False", "ServedContentRevoked")  # never Ready while revoked pods may run
        world.kube.mark_deployment_available(NS, "m")  # the old pods are gone, the new ones serve (control)
        await world.until(lambda: (world.status().get("served") or {}).get("manifestDigest") not in (None, old))
        await world.until(lambda: world.child("deployments", "m")["spec"]["strategy"]["type"] == "RollingUpdate")


async def test_a_restart_and_a_spec_edit_do_not_hide_the_revocation_of_served_content(
    world: World, operator: Any
) -> None:
    newer = _switching(world)
    world.model()
    async with operator():
        await _switch_and_wait(world)
    world.trust_only(newer, "new")  # while the operator is down: the old signer is revoked
    world.kube.patch_object("openmodels", NS, "m", {"spec": {"serving": {"args": ["--max-model-len", "4096"]}}})
    async with operator():
        await world.until(lambda: _replicas(world) == 0, timeout=10)


async def test_served_content_is_judged_with_the_serving_fields_it_runs_with(world: World, operator: Any) -> None:
    _switching(world, serving={"allowTrustRemoteCode": True})
    world.model(serving={"args": ["--trust-remote-code"]})
    async with operator():
        await _switch_and_wait(world, serving={"args": []})  # the flag leaves the spec, not the running pods
        world.kube.patch_object(
            "modeltrustpolicies", None, "org", {"spec": {"serving": {"allowTrustRemoteCode": False}}}
        )
        await world.until(lambda: _replicas(world) == 0, timeout=10)


async def test_an_edited_deployment_annotation_does_not_hide_what_is_served(world: World, operator: Any) -> None:
    newer = _switching(world)
    world.model()
    async with operator():
        await _switch_and_wait(world)
        new_digest = world.status()["provenance"]["manifestDigest"]
        world.kube.patch_object(
            "deployments", NS, "m", {"metadata": {"annotations": {"openmodel.io/manifest-digest": new_digest}}}
        )
        world.trust_only(newer, "new")
        await world.until(lambda: _replicas(world) == 0, timeout=10)


async def test_a_policy_deleted_and_created_again_is_a_new_policy(world: World, operator: Any) -> None:
    """kubectl replace --force, delete + apply, Argo CD Replace=true: same name, generation 1 again."""
    world.publish()
    world.policy()
    world.model()
    async with operator():
        await world.serve()
        world.kube.delete_object("modeltrustpolicies", None, "org")
        await world.until(lambda: world.kube.get("modeltrustpolicies", None, "org") is None, timeout=5)
        world.policy(key=new_key())  # only another key is trusted now
        await world.phase("Rejected", timeout=10)
        await world.until(lambda: _replicas(world) == 0, timeout=10)


@pytest.mark.parametrize("kind", ["ConfigMap", "Deployment"])
async def test_an_object_the_operator_did_not_make_is_never_taken_over(
    world: World, operator: Any, kind: str
) -> None:
    """A same-named object without the operator's labels (a stranger's, with a sidecar or data of its own)."""
    selector = {"app.kubernetes.io/name": "openmodel", "app.kubernetes.io/instance": "m"}
    stranger: dict[str, Any] = (
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "m-manifest"}, "data": {"theirs": "x"}}
        if kind == "ConfigMap"
        else {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "m"},
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": selector},
                "template": {
                    "metadata": {"labels": selector},
                    "spec": {"containers": [{"name": "sidecar", "image": "evil/sidecar:1"}]},
                },
            },
        }
    )
    stranger["metadata"]["namespace"] = NS
    world.publish()
    world.policy()
    if kind == "ConfigMap":
        # its name follows the content (the manifest digest): learn it from a first model of that content
        world.model()
        async with operator():
            await world.until(lambda: world.manifests(), timeout=10)
            stranger["metadata"]["name"] = world.manifests()[0]["metadata"]["name"]
            world.kube.delete_object("openmodels", NS, "m")
            await world.until(lambda: world.kube.get("openmodels", NS, "m") is None and not world.manifests())
    world.kube.create_object(stranger)
    world.model()
    async with operator():
        if kind == "Deployment":
            await world.until(lambda: world.jobs(), timeout=10)
            world.kube.complete_job(NS, world.jobs()[0]["metadata"]["name"])
        await world.until(lambda: world.cond("Reconciled") == ("False", "ChildConflict"), timeout=10)
        live = world.child("configmaps" if kind == "ConfigMap" else "deployments", stranger["metadata"]["name"])
        assert "openmodel.io/name" not in (live["metadata"].get("labels") or {})  # untouched
