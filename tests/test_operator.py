"""The real operator (Kopf + reconciler) against the strict Kubernetes emulator and the Hub stand-in.

Each test drives one flow end to end and asserts on what a user sees: phase, conditions, Events, children.
The emulator has no controllers: tests play the Job and Deployment controllers with complete_job and
mark_deployment_available, as a kubelet would.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import pathlib
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import pytest

from apiserver_validation import admit
from hubstub import HubStub
from kube_emulator import KubeEmulator
from openmodel_operator.controller import handlers
from openmodel_operator.controller.handlers import build_registry
from openmodel_operator.controller.kube import Kube, client_for
from openmodel_operator.controller.settings import OperatorSettings
from openmodel_operator.crd.definitions import openmodel_crd
from openmodel_operator.planning import children
from signing_fixtures import KeyPair, flip_last_byte, new_key, sign_with_key, write_model

pytest_plugins = ["kube_fixtures"]

NS = "models"
README = b"---\nlicense: apache-2.0\ndatasets: [example/corpus]\n---\n# demo\n"
FILES = {
    "README.md": README,
    "config.json": b'{"hidden_size": 8}\n',
    "model.safetensors": os.urandom(4096),
    "tokenizer.json": b'{"version": "1.0"}\n',
}
Runner = Callable[..., AbstractAsyncContextManager[Any]]


@dataclasses.dataclass
class World:
    kube: KubeEmulator
    hub: HubStub
    key: KeyPair
    tmp: pathlib.Path

    def publish(
        self,
        repo: str = "org/model",
        files: dict[str, bytes] | None = None,
        sign: bool = True,
        key: KeyPair | None = None,
    ) -> str:
        content = dict(files or FILES)
        if sign:
            model = write_model(self.tmp / f"src-{len(list(self.tmp.iterdir()))}", content)
            content["model.sig"] = sign_with_key(model, key or self.key, self.tmp / f"sig-{os.urandom(4).hex()}")
        return self.hub.add_model(repo, content)

    def policy(self, name: str = "org", mode: str = "Enforce", key: KeyPair | None = None, **spec: Any) -> None:
        # the Hub stand-in is a mirror, not the public Hub: the policy allows its origin
        sources = spec.pop("sources", {})
        spec["sources"] = {**sources, "endpoints": sources.get("endpoints", {"allow": [self.hub.url]})}
        body = {
            "apiVersion": "openmodel.io/v1alpha1",
            "kind": "ModelTrustPolicy",
            "metadata": {"name": name},
            "spec": {
                "mode": mode,
                "signature": {
                    "required": True,
                    "keys": [{"name": "org-release", "publicKey": (key or self.key).public_pem.decode()}],
                },
                **spec,
            },
        }
        self.kube.create_object(body)

    def trust_only(self, key: KeyPair, name: str = "rotated") -> None:
        """Policy ``org`` now trusts only ``key`` (the signer's key is revoked)."""
        self.kube.patch_object(
            "modeltrustpolicies",
            None,
            "org",
            {"spec": {"signature": {"keys": [{"name": name, "publicKey": key.public_pem.decode()}]}}},
        )

    def policy_with_key_in_configmap(self, namespace: str = "default") -> None:
        """Policy ``org`` whose key lives in ConfigMap NAMESPACE/release-keys (keys rotate without a policy edit)."""
        self.kube.create_object(
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": "release-keys", "namespace": namespace},
                "data": {"release.pub": self.key.public_pem.decode()},
            }
        )
        ref = {"name": "release-keys", "namespace": namespace, "key": "release.pub"}
        self.policy(signature={"required": True, "keys": [{"name": "org-release", "configMapRef": ref}]})

    def model(self, name: str = "m", **spec: Any) -> None:
        source = {"uri": "hf://org/model", "endpoint": self.hub.url, **spec.pop("source", {})}
        body = {
            "apiVersion": "openmodel.io/v1alpha1",
            "kind": "OpenModel",
            "metadata": {"name": name, "namespace": NS},
            "spec": {"source": source, **spec},
        }
        self.kube.create_object(body)

    def get(self, name: str = "m") -> dict[str, Any]:
        obj = self.kube.get("openmodels", NS, name)
        assert obj is not None
        return obj

    def status(self, name: str = "m") -> dict[str, Any]:
        return self.get(name).get("status") or {}

    def cond(self, cond_type: str, name: str = "m") -> tuple[str, str] | None:
        for c in self.status(name).get("conditions") or []:
            if c["type"] == cond_type:
                return c["status"], c["reason"]
        return None

    def child(self, resource: str, name: str) -> dict[str, Any] | None:
        return self.kube.get(resource, NS, name)

    def jobs(self, name: str = "m") -> list[dict[str, Any]]:
        return self.kube.list("jobs", NS, labels={"openmodel.io/name": name})

    def manifests(self, name: str = "m") -> list[dict[str, Any]]:
        """The model's manifest ConfigMaps: one per revision it keeps."""
        labels = {"openmodel.io/name": name, children.COMPONENT_LABEL: "manifest"}
        return self.kube.list("configmaps", NS, labels=labels)

    def manifest_name(self, name: str = "m") -> str:
        """The manifest ConfigMap of the content status records (named by its digest)."""
        digest = (self.status(name).get("provenance") or {}).get("manifestDigest")
        assert digest, f"no decided content in status of {name}"
        return children.manifest_configmap_name(children.ModelRef(name, NS, "", 0), digest)

    async def phase(self, phase: str, name: str = "m", timeout: float = 10.0) -> dict[str, Any]:
        await self.until(lambda: self.status(name).get("phase") == phase, timeout=timeout)
        return self.status(name)

    async def until(self, predicate: Callable[[], Any], timeout: float = 5.0) -> Any:
        """Wait for ``predicate``; on a timeout the message tells the phase and conditions of every model."""

        def describe() -> str:
            names = [m["metadata"]["name"] for m in self.kube.list("openmodels", NS)]
            return "; ".join(self.summary(n) for n in names) or "no models"

        return await self.kube.wait_for(predicate, timeout=timeout, describe=describe)

    def summary(self, name: str = "m") -> str:
        """The phase and every condition in one line, for the message of a failed wait."""
        obj = self.kube.get("openmodels", NS, name)
        status = (obj or {}).get("status") or {}
        conds = ", ".join(
            f"{c['type']}={c['status']}/{c.get('reason')}: {c.get('message', '')[:160]}"
            for c in status.get("conditions") or []
        )
        verified = (status.get("provenance") or {}).get("verifiedAt")
        return f"{name}: phase {status.get('phase')!r} verifiedAt {verified} [{conds}]"

    async def serve(self, name: str = "m") -> None:
        """Play the Job controller and the Deployment controller until the model is Ready."""
        await self.until(lambda: self.jobs(name), timeout=10)
        job = self.jobs(name)[0]["metadata"]["name"]
        self.kube.complete_job(NS, job)
        await self.until(lambda: self.child("deployments", name), timeout=10)
        self.kube.mark_deployment_available(NS, name)
        await self.phase("Ready", name)


@pytest.fixture
def world(kube: KubeEmulator, hub: HubStub, tmp_path: pathlib.Path) -> World:
    kube.create_namespace(NS)
    return World(kube, hub, new_key(), tmp_path)


def operator_settings_for(world: World, **overrides: Any) -> OperatorSettings:
    """The operator's settings in tests: 0.5 s resyncs, no listeners, the world's Hub as the cluster's Hub."""
    settings = OperatorSettings(
        resync_interval=0.5,
        reverify_interval=3600,
        metrics_port=0,
        health_port=0,
        claim_report_port=0,  # the pvc:// tests turn it on (on a free port)
        operator_image="op:test",
        vllm_image="vllm:test",
        default_endpoint=world.hub.url,  # the cluster's Hub, as an admin of an air-gapped cluster sets it
    )
    return dataclasses.replace(settings, **overrides)


@pytest.fixture
def operator(world: World, run_operator: Runner) -> Callable[..., AbstractAsyncContextManager[Any]]:
    @asynccontextmanager
    async def start(**overrides: Any) -> AsyncIterator[Any]:
        settings = operator_settings_for(world, **overrides)
        registry = build_registry(settings, lambda: Kube(client_for(world.kube.base_url)))
        async with run_operator(registry) as running:
            yield running

    return start


async def test_signed_model_is_pulled_served_and_recorded(world: World, operator: Any) -> None:
    commit = world.publish()
    world.policy()
    world.model()
    async with operator():
        status = await world.phase("Pulling")
        assert world.cond("Trusted") == ("True", "PoliciesPassed")
        assert world.cond("WeightsReady") == ("False", "Pulling")
        provenance = status["provenance"]
        assert provenance["resolvedRevision"] == commit and status["shortRevision"] == commit[:12]
        assert provenance["trustTier"] == "Signed"
        assert provenance["signature"]["identity"] == "org-release"
        assert provenance["license"] == "Apache-2.0"
        (record,) = provenance["policies"]
        inputs = record.pop("inputsDigest")  # what the policy referenced: a change of it re-decides
        assert inputs.startswith("sha256:") and len(inputs) == 71
        assert record == {
            "name": "org",
            "generation": 1,
            "mode": "Enforce",
            "verdict": "Pass",
            "reasons": [],
            "anchor": "key:org-release",  # which of the policy's anchors verified the signature
        }
        assert provenance["endpoint"] == world.hub.url and provenance["repository"] == "org/model"
        assert world.child("configmaps", world.manifest_name()) and world.child("persistentvolumeclaims", "m-weights")
        (job,) = world.jobs()
        assert job["spec"]["template"]["spec"]["automountServiceAccountToken"] is False
        assert world.hub.download_count("org/model", "model.safetensors") == 0  # the operator never pulls weights
        assert world.child("deployments", "m") is None  # nothing serves before the weights are verified

        await world.serve()
        deployment = world.child("deployments", "m")
        assert deployment is not None
        annotations = deployment["metadata"]["annotations"]
        assert annotations["openmodel.io/revision"] == commit
        assert annotations["openmodel.io/manifest-digest"] == provenance["manifestDigest"]
        pod_annotations = deployment["spec"]["template"]["metadata"]["annotations"]
        assert pod_annotations["openmodel.io/manifest-digest"] == provenance["manifestDigest"]
        assert world.child("services", "m") is not None
        final = world.status()
        assert final["endpoint"] == "http://m.models.svc.cluster.local/v1"
        assert world.cond("Ready") == ("True", "Serving")
        assert final["observedGeneration"] == world.get()["metadata"]["generation"]

        def reasons() -> list[str]:
            return [e["reason"] for e in world.kube.events_for("m", namespace=NS)]

        await world.until(lambda: {"PoliciesPassed", "Verified", "Serving"} <= set(reasons()))
        assert reasons().count("PoliciesPassed") == 1, reasons()  # one Event per transition
        # everything the operator wrote is declared in the CRD: a real apiserver would prune nothing
        stored = world.get()
        _, errors = admit(openmodel_crd(), {k: v for k, v in stored.items() if k != "metadata"})
        assert errors == []
        # Kopf's bookkeeping stays out of the user's annotations
        assert not any(k.startswith("kopf.") for k in world.get()["metadata"].get("annotations") or {})


async def test_unsigned_model_is_rejected_by_the_builtin_default(world: World, operator: Any) -> None:
    world.publish(sign=False)
    world.model()
    async with operator():
        await world.phase("Rejected")
        assert world.cond("Trusted") == ("False", "SignatureMissing")
        await world.until(
            lambda: any(
                e["type"] == "Warning" and e["reason"] == "SignatureMissing"
                for e in world.kube.events_for("m", namespace=NS)
            )
        )
        assert "builtin-default" in world.status()["provenance"]["policies"][0]["name"]
        assert world.jobs() == [] and world.child("persistentvolumeclaims", "m-weights") is None


async def test_policy_flip_from_enforce_to_audit_admits_the_model(world: World, operator: Any) -> None:
    world.publish(sign=False)
    world.policy()
    world.model()
    async with operator():
        await world.phase("Rejected")
        world.kube.patch_object("modeltrustpolicies", None, "org", {"spec": {"mode": "Audit"}})
        await world.phase("Pulling")
        assert world.cond("Trusted") == ("True", "AuditViolations")
        assert world.status()["provenance"]["policies"][0]["verdict"] == "Fail"
        world.kube.patch_object("modeltrustpolicies", None, "org", {"spec": {"mode": "Enforce"}})
        await world.phase("Rejected")


async def test_deleted_child_is_restored(world: World, operator: Any) -> None:
    world.publish()
    world.policy()
    world.model()
    async with operator():
        await world.serve()
        world.kube.delete_object("services", NS, "m")
        await world.until(lambda: world.child("services", "m"), timeout=10)
        # a hand edit of a field the operator owns is taken back (server-side apply, forced)
        world.kube.patch_object("deployments", NS, "m", {"spec": {"replicas": 5}})
        await world.until(lambda: world.child("deployments", "m")["spec"]["replicas"] == 1, timeout=10)


async def test_revoked_key_scales_the_model_to_zero_and_keeps_the_deployment(world: World, operator: Any) -> None:
    world.publish()
    world.policy()
    world.model()
    async with operator():
        await world.serve()
        world.trust_only(new_key())
        await world.phase("Rejected")
        assert world.cond("Trusted") == ("False", "UntrustedSigner")
        deployment = world.child("deployments", "m")
        assert deployment is not None and deployment["spec"]["replicas"] == 0
        world.kube.patch_object(
            "modeltrustpolicies",
            None,
            "org",
            {"spec": {"signature": {"keys": [{"name": "org-release", "publicKey": world.key.public_pem.decode()}]}}},
        )
        await world.until(lambda: world.child("deployments", "m")["spec"]["replicas"] == 1, timeout=10)


async def test_tamper_is_discovered_on_reverification(world: World, operator: Any) -> None:
    commit = world.publish()
    world.policy()
    world.model()
    async with operator(reverify_interval=1):
        await world.serve()
        # a compromised mirror now serves other bytes for the same commit
        world.hub.rewrite_file("org/model", commit, "model.safetensors", flip_last_byte(FILES["model.safetensors"]))
        await world.phase("Rejected", timeout=15)
        assert world.cond("Trusted") == ("False", "ManifestMismatch")
        assert world.child("deployments", "m")["spec"]["replicas"] == 0


async def test_upstream_branch_move_manual_then_auto(world: World, operator: Any) -> None:
    first = world.publish()
    world.policy()
    world.model()
    async with operator(reverify_interval=1):
        await world.serve()
        second = world.publish(files={**FILES, "model.safetensors": os.urandom(4096)})
        await world.until(lambda: world.cond("UpdateAvailable") == ("True", "NewRevision"), timeout=15)
        assert world.status()["updateAvailable"] == second
        assert world.status()["provenance"]["resolvedRevision"] == first  # Manual: nothing rolls

        # an unverifiable upstream commit never replaces the running one
        world.publish(files={**FILES, "model.safetensors": os.urandom(4096)}, key=new_key())
        world.kube.patch_object("openmodels", NS, "m", {"spec": {"updatePolicy": "Auto"}})
        await world.until(lambda: world.cond("UpdateAvailable") == ("True", "UpdateRejected"), timeout=15)
        assert world.status()["provenance"]["resolvedRevision"] == first

        third = world.publish(files={**FILES, "model.safetensors": os.urandom(4096)})
        await world.until(lambda: world.status()["provenance"]["resolvedRevision"] == third, timeout=15)
        await world.until(lambda: len(world.jobs()) == 2, timeout=10)
        deployment = world.child("deployments", "m")
        assert deployment["metadata"]["annotations"]["openmodel.io/revision"] == first  # old content until verified


async def test_restart_mid_pull_creates_no_duplicate_job_and_no_flapping(world: World, operator: Any) -> None:
    world.publish()
    world.policy()
    world.model()
    async with operator():
        await world.phase("Pulling")
        await world.until(lambda: world.kube.events_for("m", namespace=NS))
    before = world.status()
    events_before = len(world.kube.events_for("m", namespace=NS))
    async with operator():
        await asyncio.sleep(1.5)  # several resync periods
        assert len(world.jobs()) == 1
        assert world.status()["conditions"] == before["conditions"]  # same transition times: nothing flapped
        assert world.status()["provenance"] == before["provenance"]  # the decision was reused, not redone
        assert len(world.kube.events_for("m", namespace=NS)) == events_before
        job = world.jobs()[0]["metadata"]["name"]
        world.kube.complete_job(NS, job)
        await world.until(lambda: world.child("deployments", "m"), timeout=10)


async def test_policy_status_counts_governed_models(world: World, operator: Any) -> None:
    world.publish()
    world.policy()
    world.model()
    world.model("second")
    async with operator():
        await world.until(
            lambda: (
                (world.kube.get("modeltrustpolicies", None, "org") or {}).get("status", {}).get("governedModels") == 2
            ),
            timeout=10,
        )
        status = world.kube.get("modeltrustpolicies", None, "org")["status"]
        assert [(c["type"], c["status"]) for c in status["conditions"]] == [("Accepted", "True")]


async def test_conflicts_are_retried(world: World, operator: Any) -> None:
    world.publish()
    world.policy()
    world.model()
    world.kube.inject_conflict("openmodels", NS, "m", times=2)
    async with operator():
        await world.phase("Pulling")
        assert world.cond("Trusted") == ("True", "PoliciesPassed")


async def test_metrics_count_models_by_phase(world: World, operator: Any) -> None:
    from openmodel_operator.controller.metrics import METRICS

    world.publish()
    world.policy()
    world.model()
    async with operator():
        await world.serve()
        for _ in range(50):  # the gauge is set right after the pass that wrote the status
            if (METRICS.registry.get_sample_value("openmodel_models", {"phase": "Ready"}) or 0) >= 1:
                break
            await asyncio.sleep(0.1)
        assert (METRICS.registry.get_sample_value("openmodel_models", {"phase": "Ready"}) or 0) >= 1
        verified = METRICS.registry.get_sample_value("openmodel_weights_verified_bytes_total")
        assert verified is not None and verified >= sum(len(v) for v in FILES.values())
        passes = METRICS.registry.get_sample_value("openmodel_reconcile_duration_seconds_count")
        assert passes is not None and passes > 0


@pytest.mark.parametrize("workers", [2, 8])
async def test_reconcile_passes_in_flight_are_bounded_by_the_workers(
    world: World, operator: Any, monkeypatch: pytest.MonkeyPatch, workers: int
) -> None:
    """No task per model: 8 models with 2 workers never have more than 2 passes at once (8 workers: control)."""
    from openmodel_operator.controller.reconciler import Reconciler

    original = Reconciler.reconcile
    in_flight: list[int] = [0, 0]  # now, most

    async def counted(self: Reconciler, *args: Any, **kwargs: Any) -> Any:
        in_flight[0] += 1
        in_flight[1] = max(in_flight)
        try:
            await asyncio.sleep(0.05)  # passes overlap when nothing bounds them
            return await original(self, *args, **kwargs)
        finally:
            in_flight[0] -= 1

    monkeypatch.setattr(Reconciler, "reconcile", counted)
    world.publish()
    world.policy()
    names = [f"m{i}" for i in range(8)]
    for name in names:
        world.model(name)
    async with operator(reconcile_workers=workers):
        for name in names:
            await world.phase("Pulling", name, timeout=20)
    if workers == 2:
        assert in_flight[1] <= 2
    else:
        assert in_flight[1] > 2  # control: the count sees overlapping passes


async def test_with_one_examination_slot_every_model_is_examined_in_turn(world: World, operator: Any) -> None:
    """Passes that find the slot taken end and wait to be woken when it frees: none is lost (the resync is 30 s
    here, so only the wake-up can bring them back in time)."""
    world.publish()
    world.policy()
    names = [f"m{i}" for i in range(6)]
    for name in names:
        world.model(name)
    async with operator(max_concurrent_verifications=1, reconcile_workers=2, resync_interval=30):
        for name in names:
            await world.phase("Pulling", name, timeout=20)


def test_the_phase_gauge_follows_models_that_change_phase_and_go_away() -> None:
    from openmodel_operator.controller.handlers import PhaseTracker
    from openmodel_operator.controller.metrics import METRICS

    def gauge(phase: str) -> float | None:
        return METRICS.registry.get_sample_value("openmodel_models", {"phase": phase})

    tracker = PhaseTracker()
    tracker.set(("a", "m"), "Ready")
    tracker.set(("b", "m"), "Ready")
    tracker.set(("b", "m"), "Ready")  # a pass that changed nothing counts once
    assert gauge("Ready") == 2
    tracker.set(("a", "m"), "Failed")
    assert (gauge("Ready"), gauge("Failed")) == (1, 1)
    tracker.set(("b", "m"), None)  # deleted
    tracker.set(("c", "m"), None)  # never seen: nothing to take away
    assert (gauge("Ready"), gauge("Failed")) == (0, 1)


@pytest.mark.parametrize("retain", [False, True])
async def test_deletion_removes_children_explicitly(world: World, operator: Any, retain: bool) -> None:
    world.publish()
    world.policy()
    world.model(storage={"retain": retain})
    async with operator():
        await world.serve()
        world.kube.delete_object("openmodels", NS, "m")
        await world.until(lambda: world.kube.get("openmodels", NS, "m") is None, timeout=10)
        assert world.child("deployments", "m") is None
        assert world.child("services", "m") is None
        assert world.manifests() == []
        assert world.jobs() == []
        assert (world.child("persistentvolumeclaims", "m-weights") is not None) is retain


async def test_runtime_none_stops_after_weights_ready(world: World, operator: Any) -> None:
    world.publish()
    world.policy()
    world.model(serving={"runtime": "none"})
    async with operator():
        await world.until(lambda: world.jobs(), timeout=10)
        world.kube.complete_job(NS, world.jobs()[0]["metadata"]["name"])
        await world.phase("Ready")
        assert world.child("deployments", "m") is None
        assert world.cond("WeightsReady") == ("True", "Verified")


async def test_failed_fetch_job_fails_the_model(world: World, operator: Any) -> None:
    world.publish()
    world.policy()
    world.model()
    async with operator():
        await world.until(lambda: world.jobs(), timeout=10)
        world.kube.complete_job(NS, world.jobs()[0]["metadata"]["name"], succeeded=False)
        await world.phase("Failed")
        assert world.cond("WeightsReady") == ("False", "BackoffLimitExceeded")


async def test_unknown_repository_fails_with_a_clear_reason(world: World, operator: Any) -> None:
    world.model(source={"uri": "hf://org/missing"})
    async with operator():
        await world.phase("Failed")
        status, reason = world.cond("Resolved") or ("", "")
        assert (status, reason) == ("False", "RepositoryNotFound")


async def test_a_missing_repository_is_not_asked_again_every_pass(world: World, operator: Any) -> None:
    """A terminal failure (the repository does not exist) waits for a change: resyncs every 0.5 s do not
    re-ask the Hub. Editing the spec retries at once (control: the backoff is not a dead end)."""
    world.model(source={"uri": "hf://org/missing"})
    async with operator():
        await world.phase("Failed")
        asked = sum(n for path, n in world.hub.requests.items() if "org/missing" in path)
        assert asked >= 1
        await asyncio.sleep(3)  # six resync periods
        again = sum(n for path, n in world.hub.requests.items() if "org/missing" in path)
        assert again == asked
        world.kube.patch_object("openmodels", NS, "m", {"spec": {"source": {"revision": "v2"}}})
        await world.until(lambda: sum(n for p, n in world.hub.requests.items() if "org/missing" in p) > asked)
        assert world.cond("Resolved") == ("False", "RepositoryNotFound")


async def test_countersignature_from_a_configmap(world: World, operator: Any) -> None:
    """An enterprise adopts an unsigned third-party model by countersigning the revision it reviewed."""
    world.publish(sign=False)
    world.policy()
    bundle = sign_with_key(write_model(world.tmp / "review", FILES), world.key, world.tmp / "cs")
    world.kube.create_object(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "countersig", "namespace": NS},
            "data": {"model.sig": bundle.decode()},
        }
    )
    world.model(trust={"signature": {"configMapRef": {"name": "countersig", "key": "model.sig"}}})
    async with operator():
        await world.phase("Pulling")
        assert world.status()["provenance"]["trustTier"] == "Signed"


async def test_policy_key_kept_in_a_configmap(world: World, operator: Any) -> None:
    """Keys rotate without editing the policy: the operator reads them from the referenced ConfigMap."""
    world.publish()
    world.policy_with_key_in_configmap()
    world.model()
    async with operator():
        await world.phase("Pulling")
        assert world.status()["provenance"]["signature"]["identity"] == "org-release"


async def test_a_quiet_model_is_not_even_checked_and_a_key_removed_from_its_configmap_still_revokes(
    world: World, operator: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 13 (idle CPU): a settled model has no resync at all (every input wakes it when it changes); the
    key ConfigMaps of policies are read once for all models, so a revocation there still reaches it."""
    from openmodel_operator.controller.metrics import METRICS
    from openmodel_operator.controller.reconciler import Reconciler

    original = Reconciler.reconcile
    passes: list[float] = []

    async def counted(self: Reconciler, *args: Any, **kwargs: Any) -> Any:
        passes.append(asyncio.get_running_loop().time())
        return await original(self, *args, **kwargs)

    monkeypatch.setattr(Reconciler, "reconcile", counted)
    monkeypatch.setattr(handlers, "FULL_PASS_EVERY", 10_000)  # no safety-net pass: only the key watch can tell
    world.publish()
    world.policy_with_key_in_configmap()
    world.model()
    skipped = lambda: METRICS.registry.get_sample_value("openmodel_reconcile_skipped_total") or 0.0  # noqa: E731
    async with operator():  # resync every 0.5 s
        await world.serve()
        await asyncio.sleep(1.5)  # the passes that follow its own writes settle
        before, skipped_before = len(passes), skipped()
        await asyncio.sleep(3.0)  # six resync intervals
        assert len(passes) == before, "a quiet model ran passes"
        assert skipped() == skipped_before, "a quiet model was woken"
        world.kube.patch_object(  # the publisher's key is removed: what it signed is no longer trusted
            "configmaps", "default", "release-keys", {"data": {"release.pub": new_key().public_pem.decode()}}
        )
        await world.until(lambda: world.cond("Trusted") == ("False", "UntrustedSigner"), timeout=30)
        await world.until(lambda: world.child("deployments", "m")["spec"]["replicas"] == 0, timeout=10)


async def test_spec_change_reverifies_before_rolling(world: World, operator: Any) -> None:
    world.publish()
    world.policy()
    world.model()
    async with operator():
        await world.serve()
        world.kube.patch_object("openmodels", NS, "m", {"spec": {"source": {"uri": "hf://org/missing"}}})
        await world.phase("Failed")
        assert world.status()["observedGeneration"] == 2
        assert world.cond("Resolved") == ("False", "RepositoryNotFound")
        # the content of the old source is no longer what the spec asks for: kept for forensics, not served
        await world.until(lambda: world.child("deployments", "m")["spec"]["replicas"] == 0)


def test_child_names_are_stable() -> None:
    ref = children.ModelRef(name="m", namespace=NS, uid="u", generation=1)
    assert children.child_names(ref, None)["Deployment"] == "m"


async def test_each_decision_is_signed_and_kept_and_a_reverification_adds_none(world: World, operator: Any) -> None:
    """Issue 11: the admit and, after a policy edit, the reject are two signed verification summaries in the
    model's history ConfigMap (PASSED then FAILED), both verifying with the operator's public key; the key is
    made once in its Secret; passes that decide the same add nothing; the history outlives the model."""
    import base64

    from openmodel_operator.signing.attestation import load_public_key, verify_attestation
    from openmodel_operator.trust.policies import policy_from_manifest

    world.kube.create_namespace("openmodel-system")
    world.publish()
    world.policy()
    world.model()
    history = "m-attestations"
    async with operator(attestation_key_secret="openmodel-system/attest-key", attestation_history=5):
        await world.serve()
        await world.until(lambda: world.child("configmaps", history), timeout=10)
        secret = world.kube.get("secrets", "openmodel-system", "attest-key")
        assert secret is not None and set(secret["data"]) == {"private.pem", "public.pem"}
        public = load_public_key(base64.b64decode(secret["data"]["public.pem"]))
        recorded = world.status().get("attestations") or {}
        assert recorded.get("configMap") == history and recorded.get("count") == 1
        await asyncio.sleep(2)  # a few resyncs deciding the same: still one entry
        assert len([k for k in world.child("configmaps", history)["data"] if k.endswith(".json")]) == 1

        world.trust_only(new_key())
        await world.phase("Rejected")

        def entries() -> dict[str, str]:
            data = (world.child("configmaps", history) or {}).get("data") or {}
            return {k: v for k, v in data.items() if k.endswith(".json")}

        await world.until(lambda: len(entries()) == 2, timeout=10)
        results, generations = [], []
        for key in sorted(entries()):
            statement = verify_attestation(entries()[key].encode(), public).statement
            predicate = statement["predicate"]
            results.append(predicate["verificationResult"])
            policies = predicate["policy"]["annotations"]["policies"]
            assert [p["name"] for p in policies] == ["org"] and policies[0]["specDigest"].startswith("sha256:")
            generations.append(policies[0]["generation"])
            assert statement["subject"][0]["digest"]["sha256"] in world.status()["provenance"]["manifestDigest"]
        # the recorded spec digest is the policy as stored now (the reject was made under it)
        stored = policy_from_manifest(world.kube.get("modeltrustpolicies", None, "org"))
        assert policies[0]["specDigest"] == stored.spec_digest and policies[0]["generation"] == stored.generation
        assert results == ["PASSED", "FAILED"]
        assert generations[0] < generations[1]  # the edit is named by the policy's generation
        await world.until(lambda: (world.status().get("attestations") or {}).get("count") == 2, timeout=5)
        configmap = world.child("configmaps", history)
        assert not configmap["metadata"].get("ownerReferences")
        world.kube.delete_object("openmodels", NS, "m")
        await world.until(lambda: world.kube.get("openmodels", NS, "m") is None, timeout=10)
        assert world.child("configmaps", history) is not None  # the auditor's record outlives the model
