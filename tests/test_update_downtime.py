"""The downtime of an update as a user sees it (issue 9): the real operator, the emulator, and
``cluster_player`` playing the Deployment and Job controllers, a GPU budget and a kubelet that runs the pull
and the verify-on-start check for real. Ready pods are sampled from the API every 20 ms while the model moves
to a new revision; ``bench/bench_update_downtime.py`` measures the same with a 2 GB model.

Each case that must show a window of no ready replica (Recreate, one replica with the default
``maxUnavailable: 1``) stands beside the configuration that must not (RWX with or without a spare GPU, PerPod,
``maxUnavailable: 0`` with a spare GPU): the sampler sees downtime when there is some.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from cluster_player import Cluster, Samples, ready_pods, sample_ready
from kube_fixtures import kube, run_operator
from kubelet_player import Kubelet
from openmodel_operator.planning import children
from test_operator import FILES, NS, World, operator, world

__all__ = ["kube", "operator", "run_operator", "world"]  # the fixtures this module uses

SIZE = 4 * 1024 * 1024
STARTUP = 0.3  # the server's load time after its check: makes a Recreate window visible at 20 ms sampling


def revision_of(pod: Mapping[str, Any]) -> str:
    return str(pod["metadata"]["annotations"][children.DIGEST_ANNOTATION])


async def update(world: World, cluster: Cluster, replicas: int, timeout: float = 30) -> tuple[Samples, str, str]:
    """Serve revision one on every replica, move the model to revision two, wait until the operator reports it
    served; returns the samples from the update on and the two digests."""
    one = world.get()["spec"]["source"]["revision"]
    await world.until(
        lambda: len(ready_pods(world.kube, NS)) == replicas and world.status().get("phase") == "Ready", timeout=timeout
    )
    first = world.status()["served"]["manifestDigest"]
    two = world.publish(files={**FILES, "model.safetensors": os.urandom(SIZE)})
    assert two != one
    samples = Samples(period=0.02)
    t0 = time.monotonic()
    sampler = asyncio.create_task(sample_ready(world.kube, NS, revision_of, samples, t0))
    try:
        world.kube.patch_object("openmodels", NS, "m", {"spec": {"source": {"revision": two}}})
        await world.until(
            lambda: world.status().get("phase") == "Ready" and world.status()["served"]["manifestDigest"] != first,
            timeout=timeout,
        )
        await asyncio.sleep(0.1)
    finally:
        sampler.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await sampler
    second = world.status()["served"]["manifestDigest"]
    assert not cluster.errors, cluster.errors
    return samples, first, second


CASES: dict[str, tuple[dict[str, Any], dict[str, Any], int, bool]] = {
    # name: (storage, serving, GPUs on the node, a window of no ready replica expected)
    "rwx-spare-gpu": ({"accessMode": "ReadWriteMany"}, {"replicas": 2}, 3, False),
    "rwx-no-spare-gpu": ({"accessMode": "ReadWriteMany"}, {"replicas": 2}, 2, False),
    "rwo-recreate": ({"accessMode": "ReadWriteOnce"}, {"replicas": 2}, 3, True),
    "per-pod": ({"mode": "PerPod"}, {"replicas": 2}, 3, False),
    "one-replica-default": ({"accessMode": "ReadWriteMany"}, {"replicas": 1}, 2, True),
    "one-replica-surge-only": (
        {"accessMode": "ReadWriteMany"},
        {"replicas": 1, "rollout": {"maxSurge": 1, "maxUnavailable": 0}},
        2,
        False,
    ),
}


@pytest.mark.parametrize("case", list(CASES))
async def test_an_update_keeps_a_replica_ready_unless_the_strategy_stops_the_old_ones_first(
    world: World, operator: Any, tmp_path: Path, case: str
) -> None:
    storage, serving, gpus, window = CASES[case]
    one = world.publish(files={**FILES, "model.safetensors": os.urandom(SIZE)})
    world.policy()
    world.model(source={"revision": one}, storage=storage, serving={"gpus": 1, **serving})
    kubelet = Kubelet(world.kube, tmp_path / "node")
    async with operator(), Cluster(world.kube, kubelet, gpus=gpus, startup_seconds=STARTUP) as cluster:
        samples, first, second = await update(world, cluster, serving["replicas"])
    assert second != first
    final = samples.points[-1][1]
    assert final == {second: serving["replicas"]}, final  # the new revision serves on every replica
    assert samples.first(lambda counts: counts.get(second, 0) > 0) is not None
    if window:
        # the old pods stop before a new one is ready: the window is at least the server's start-up
        assert samples.longest_zero() >= STARTUP * 0.8, samples.points
    else:
        assert samples.minimum() >= 1 and samples.zero_seconds() == 0.0, samples.points


async def test_a_surge_without_a_spare_gpu_waits_and_the_old_revision_keeps_serving(
    world: World, operator: Any, tmp_path: Path
) -> None:
    """maxUnavailable 0 on a node with no free GPU: the new pod stays Pending, the old one serves, the model
    says Updating (the documented stall; the progress deadline is not played). Its control: one more GPU."""
    one = world.publish(files={**FILES, "model.safetensors": os.urandom(SIZE)})
    world.policy()
    rollout = {"maxSurge": 1, "maxUnavailable": 0}
    world.model(
        source={"revision": one},
        storage={"accessMode": "ReadWriteMany"},
        serving={"gpus": 1, "replicas": 1, "rollout": rollout},
    )
    kubelet = Kubelet(world.kube, tmp_path / "node")
    async with operator(), Cluster(world.kube, kubelet, gpus=1, startup_seconds=STARTUP) as cluster:
        await world.until(lambda: world.status().get("phase") == "Ready" and ready_pods(world.kube, NS), timeout=30)
        with pytest.raises(TimeoutError):  # the update itself never completes
            await update(world, cluster, 1, timeout=4)
        served = world.status()["served"]["manifestDigest"]
        assert world.status()["phase"] == "Updating"
        assert [revision_of(p) for p in ready_pods(world.kube, NS)] == [served]  # the old one still serves
        pending = [p for p in world.kube.list("pods", NS) if p["status"].get("phase") == "Pending"]
        assert len(pending) == 1 and revision_of(pending[0]) != served
        cluster.gpus = 2  # the control: a GPU frees up, the surge proceeds with no window
        await world.until(
            lambda: world.status()["served"]["manifestDigest"] != served and world.status().get("phase") == "Ready",
            timeout=15,
        )
        assert [revision_of(p) for p in ready_pods(world.kube, NS)] == [world.status()["served"]["manifestDigest"]]
