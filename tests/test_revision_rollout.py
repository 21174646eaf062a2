"""Updates without downtime, end to end (issue 9): the real operator against the emulator, with a kubelet
stand-in (``kubelet_player``) that runs the pull Jobs, the serving pods' verify-on-start check and the prune
Job on directories, so the volume layout the operator plans is exercised byte for byte.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

from kube_emulator import KubeEmulator
from kube_fixtures import kube, run_operator
from kubelet_player import Kubelet, tree_digest
from openmodel_operator.planning import children
from test_operator import FILES, NS, World, operator, world

__all__ = ["kube", "operator", "run_operator", "world"]  # the fixtures this module uses


def pull_jobs(world: World) -> dict[str, dict[str, Any]]:
    """The model's pull Jobs by the digest they fill."""
    return {
        j["metadata"]["annotations"][children.DIGEST_ANNOTATION]: j
        for j in world.jobs()
        if j["metadata"]["labels"][children.COMPONENT_LABEL] == "fetch"
    }


def served_digest(world: World) -> str:
    deployment = world.child("deployments", "m")
    assert deployment is not None
    return str(deployment["spec"]["template"]["metadata"]["annotations"][children.DIGEST_ANNOTATION])


def slot(kubelet: Kubelet, digest: str) -> Path:
    return kubelet.claim(NS, "m-weights") / children.slot_dir(digest)


async def pull(world: World, kubelet: Kubelet, digest: str) -> None:
    """Play the Job's pod (a real pull from the Hub stand-in) and the Job controller."""
    job = pull_jobs(world)[digest]["metadata"]["name"]
    assert await asyncio.to_thread(kubelet.run_job, NS, job) == 0, kubelet.logs[-1]
    world.kube.complete_job(NS, job)


def roll_halfway(kube: KubeEmulator) -> None:
    """The Deployment controller mid-rollout: one new pod up, one old pod still serving."""
    deployment = kube.get("deployments", NS, "m")
    assert deployment is not None
    kube.patch_status(
        "apps/v1/deployments",
        NS,
        "m",
        {
            "observedGeneration": deployment["metadata"]["generation"],
            "replicas": 2,
            "updatedReplicas": 1,
            "readyReplicas": 1,
            "availableReplicas": 1,
            "conditions": [{"type": "Available", "status": "True", "reason": "MinimumReplicasAvailable"}],
        },
    )


def two_revisions(world: World, **spec: Any) -> tuple[str, str]:
    """Two signed commits of the model, a policy, and the model pinned to the first."""
    one = world.publish()
    two = world.publish(files={**FILES, "model.safetensors": os.urandom(4096)})
    world.policy()
    world.model(source={"revision": one}, **spec)
    return one, two


async def serve_then_move(world: World, kubelet: Kubelet, revision: str) -> tuple[str, str]:
    """Serve the first revision, move the model to ``revision``, restart a serving pod mid-pull and pull it;
    returns (first digest, second digest) once the Deployment names the second."""
    await world.until(lambda: pull_jobs(world), timeout=10)
    (first,) = pull_jobs(world)
    await pull(world, kubelet, first)
    await world.until(lambda: world.child("deployments", "m"), timeout=10)
    world.kube.mark_deployment_available(NS, "m")
    await world.phase("Ready")
    world.kube.patch_object("openmodels", NS, "m", {"spec": {"source": {"revision": revision}}})
    await world.until(lambda: len(pull_jobs(world)) == 2, timeout=10)
    (second,) = set(pull_jobs(world)) - {first}
    assert await asyncio.to_thread(kubelet.start_server_pod, NS, "m") == 0  # a restart mid-pull
    await pull(world, kubelet, second)
    await world.until(lambda: served_digest(world) == second, timeout=10)
    return first, second


async def test_an_auto_update_never_touches_the_served_revision_and_a_restarted_pod_still_verifies(
    world: World, operator: Any, tmp_path: Path
) -> None:
    kubelet = Kubelet(world.kube, tmp_path / "node")
    world.publish()
    world.policy()
    world.model(updatePolicy="Auto", storage={"accessMode": "ReadWriteMany"})
    async with operator(reverify_interval=1):
        await world.until(lambda: pull_jobs(world), timeout=10)
        (first,) = pull_jobs(world)
        await pull(world, kubelet, first)
        await world.until(lambda: world.child("deployments", "m"), timeout=10)
        assert await asyncio.to_thread(kubelet.start_server_pod, NS, "m") == 0
        world.kube.mark_deployment_available(NS, "m")
        ready = await world.phase("Ready")
        assert ready["served"]["manifestDigest"] == first and ready.get("incoming") is None
        served_bytes = tree_digest(slot(kubelet, first))
        assert kubelet.server_sees(NS, "m") == slot(kubelet, first)

        world.publish(files={**FILES, "model.safetensors": os.urandom(4096)})
        await world.until(lambda: len(pull_jobs(world)) == 2, timeout=15)
        (second,) = set(pull_jobs(world)) - {first}
        updating = await world.phase("Updating", timeout=10)
        assert updating["served"]["manifestDigest"] == first
        assert updating["incoming"]["manifestDigest"] == second and updating["incoming"]["stage"] == "Pulling"
        assert next(c for c in updating["conditions"] if c["type"] == "Ready")["status"] == "True"

        # the pull's first attempt dies midway (the mirror hangs up on the weights): the new slot is half
        # written; a serving pod restarting now checks and mounts exactly the revision it served
        world.hub.inject_fault("org/model", "model.safetensors", "hangup")
        job = pull_jobs(world)[second]["metadata"]["name"]
        assert await asyncio.to_thread(kubelet.run_job, NS, job) == 2
        assert slot(kubelet, second).is_dir()
        assert await asyncio.to_thread(kubelet.start_server_pod, NS, "m") == 0
        assert tree_digest(slot(kubelet, first)) == served_bytes
        world.hub.clear_faults()
        await pull(world, kubelet, second)  # the Job's next attempt
        assert tree_digest(slot(kubelet, first)) == served_bytes  # the pull wrote only into its own slot
        await world.until(lambda: served_digest(world) == second, timeout=10)
        assert await asyncio.to_thread(kubelet.start_server_pod, NS, "m") == 0
        assert kubelet.server_sees(NS, "m") == slot(kubelet, second)

        roll_halfway(world.kube)
        await world.until(lambda: (world.status().get("incoming") or {}).get("stage") == "RollingOut", timeout=10)
        assert world.status()["phase"] == "Updating" and world.status()["served"]["manifestDigest"] == first
        world.kube.mark_deployment_available(NS, "m")
        await world.until(lambda: world.status()["served"]["manifestDigest"] == second, timeout=10)
        done = await world.phase("Ready")
        assert done.get("incoming") is None
        assert [k["manifestDigest"] for k in done["keptRevisions"]] == [first]  # kept for a rollback
        assert {m["metadata"]["name"] for m in world.manifests()} == {
            children.manifest_configmap_name(children.ModelRef("m", NS, "", 0), d) for d in (first, second)
        }


async def test_a_manual_update_rolls_back_without_a_download_and_prunes_what_is_not_kept(
    world: World, operator: Any, tmp_path: Path
) -> None:
    kubelet = Kubelet(world.kube, tmp_path / "node")
    one, two = two_revisions(world, storage={"keepRevisions": 0})
    async with operator():
        first, second = await serve_then_move(world, kubelet, two)
        # Recreate (ReadWriteOnce): the old pod is gone before the new one starts; nothing claims to serve it
        world.kube.mark_deployment_available(NS, "m")
        await world.until(lambda: world.status()["served"]["manifestDigest"] == second, timeout=10)

        # keepRevisions 0: the first revision's records go, then a prune Job removes its directory
        await world.until(lambda: first not in pull_jobs(world), timeout=10)
        prunes = [j for j in world.jobs() if j["metadata"]["labels"][children.COMPONENT_LABEL] == "prune"]
        assert len(prunes) == 1
        assert await asyncio.to_thread(kubelet.run_job, NS, prunes[0]["metadata"]["name"]) == 0
        assert sorted(os.listdir(kubelet.claim(NS, "m-weights"))) == [children.slot_dir(second)]
        world.kube.complete_job(NS, prunes[0]["metadata"]["name"])
        await world.until(lambda: not [j for j in world.jobs() if j["metadata"]["name"].startswith("m-prune-")])

        # back to the first revision: it was not kept, so it is downloaded again (control for the next test)
        downloads = world.hub.download_count("org/model", "model.safetensors")
        world.kube.patch_object("openmodels", NS, "m", {"spec": {"source": {"revision": one}}})
        await world.until(lambda: first in pull_jobs(world), timeout=10)
        await pull(world, kubelet, first)
        assert world.hub.download_count("org/model", "model.safetensors") > downloads


async def test_a_rollback_to_a_kept_revision_downloads_nothing(world: World, operator: Any, tmp_path: Path) -> None:
    kubelet = Kubelet(world.kube, tmp_path / "node")
    one, two = two_revisions(world)
    async with operator():
        first, _ = await serve_then_move(world, kubelet, two)
        world.kube.mark_deployment_available(NS, "m")
        await world.until(lambda: (world.status().get("keptRevisions") or [{}])[0].get("manifestDigest") == first)

        downloads = world.hub.download_count("org/model", "model.safetensors")
        jobs = {j["metadata"]["name"] for j in world.jobs()}
        world.kube.patch_object("openmodels", NS, "m", {"spec": {"source": {"revision": one}}})
        await world.until(lambda: served_digest(world) == first, timeout=10)  # rolled at once: its slot is verified
        assert {j["metadata"]["name"] for j in world.jobs()} == jobs  # no new pull Job
        assert world.hub.download_count("org/model", "model.safetensors") == downloads
        assert await asyncio.to_thread(kubelet.start_server_pod, NS, "m") == 0  # and its bytes still verify
        # decided again, not assumed (status is written just after the Deployment: wait for it)
        await world.until(lambda: world.status()["provenance"]["resolvedRevision"] == one, timeout=10)


async def test_per_pod_volumes_are_pulled_and_checked_by_every_pod_a_mirror_that_lies_stops_the_pod(
    world: World, operator: Any, tmp_path: Path
) -> None:
    kubelet = Kubelet(world.kube, tmp_path / "node")
    commit = world.publish()
    world.policy()
    world.model(storage={"mode": "PerPod"})
    async with operator():
        await world.until(lambda: world.child("deployments", "m"), timeout=10)
        await world.phase("Deploying")
        assert world.jobs() == [] and world.child("persistentvolumeclaims", "m-weights") is None
        assert world.cond("WeightsReady") == ("False", "Pulling")
        # every pod start pulls into its own fresh volume and checks every byte against the signed digests
        assert await asyncio.to_thread(kubelet.start_server_pod, NS, "m") == 0, kubelet.logs[-1]
        assert await asyncio.to_thread(kubelet.start_server_pod, NS, "m") == 0
        world.kube.mark_deployment_available(NS, "m")
        ready = await world.phase("Ready")
        assert ready["served"]["revision"] == commit and world.cond("WeightsReady") == ("True", "Verified")
        # the mirror now serves other bytes: a new pod never gets past its init container
        world.hub.rewrite_file("org/model", commit, "model.safetensors", os.urandom(4096))
        assert await asyncio.to_thread(kubelet.start_server_pod, NS, "m") == 1
        assert '"PulledDigestMismatch"' in kubelet.logs[-1]


async def test_a_rollout_value_the_deployment_api_refuses_fails_the_pass_and_what_serves_keeps_serving(
    world: World, operator: Any
) -> None:
    world.publish()
    world.policy()
    world.model()
    async with operator():
        await world.serve()
        world.kube.patch_object("openmodels", NS, "m", {"spec": {"serving": {"rollout": {"maxSurge": "lots"}}}})
        await world.until(lambda: world.cond("Reconciled") == ("False", "ChildRejected"), timeout=10)
        reconciled = next(c for c in world.status()["conditions"] if c["type"] == "Reconciled")
        assert "spec.serving.rollout.maxSurge" in reconciled["message"]
        assert world.child("deployments", "m")["spec"]["replicas"] == 1  # not scaled to zero
        assert world.status()["phase"] == "Degraded"
        world.kube.patch_object("openmodels", NS, "m", {"spec": {"serving": {"rollout": {"maxSurge": 1}}}})
        await world.until(lambda: world.cond("Reconciled") != ("False", "ChildRejected"), timeout=10)  # control


async def test_models_of_one_content_on_a_shared_claim_download_it_once_and_free_it_with_the_last(
    world: World, operator: Any, tmp_path: Path
) -> None:
    """Ten OpenModels of the same content on the namespace's claim: their pull Jobs run at once, one writes,
    the others wait and only re-hash; the bytes come from the Hub once. A deleted model drops its reference;
    the slot goes with the last one."""
    kubelet = Kubelet(world.kube, tmp_path / "node")
    world.kube.create_object(  # the namespace's cache, made by its admin
        {
            "apiVersion": "v1",
            "kind": "PersistentVolumeClaim",
            "metadata": {"name": "model-cache", "namespace": NS},
            "spec": {"accessModes": ["ReadWriteMany"], "resources": {"requests": {"storage": "1Ti"}}},
        }
    )
    world.publish()
    world.policy()
    names = [f"m{i}" for i in range(10)]
    for name in names:
        world.model(name, storage={"claimName": "model-cache"})
    async with operator():
        await world.until(lambda: all(world.jobs(n) for n in names), timeout=20)
        assert all(world.child("persistentvolumeclaims", f"{n}-weights") is None for n in names)  # never made
        jobs = [world.jobs(n)[0]["metadata"]["name"] for n in names]
        codes = await asyncio.gather(*(asyncio.to_thread(kubelet.run_job, NS, job) for job in jobs))
        assert codes == [0] * 10, kubelet.logs
        assert world.hub.download_count("org/model", "model.safetensors") == 1  # 1x, not 10x
        cache = kubelet.claim(NS, "model-cache")
        (slot_name,) = [e for e in os.listdir(cache) if e.startswith("sha256-")]
        assert len(os.listdir(cache / ".openmodel" / "refs" / slot_name)) == 10
        for job in jobs:
            world.kube.complete_job(NS, job)
        await world.until(lambda: all(world.child("deployments", n) for n in names), timeout=20)
        deployment = world.child("deployments", "m0")
        volume = next(v for v in deployment["spec"]["template"]["spec"]["volumes"] if v["name"] == "weights")
        assert volume["persistentVolumeClaim"] == {"claimName": "model-cache", "readOnly": True}
        assert await asyncio.to_thread(kubelet.start_server_pod, NS, "m0") == 0

        for name in names:
            world.kube.delete_object("openmodels", NS, name)
        await world.until(lambda: all(world.kube.get("openmodels", NS, n) is None for n in names), timeout=20)
        releases = world.kube.list("jobs", NS, labels={children.COMPONENT_LABEL: "release"})
        assert len(releases) == 10
        for release in releases[:-1]:
            assert await asyncio.to_thread(kubelet.run_job, NS, release["metadata"]["name"]) == 0
            assert (cache / slot_name / "model.safetensors").exists()  # still referenced by another model
        assert await asyncio.to_thread(kubelet.run_job, NS, releases[-1]["metadata"]["name"]) == 0
        assert not (cache / slot_name).exists()  # the last reference gone: the slot goes
        cache_claim = world.kube.get("persistentvolumeclaims", NS, "model-cache")
        assert cache_claim is not None and "openmodel.io/name" not in (cache_claim["metadata"].get("labels") or {})
