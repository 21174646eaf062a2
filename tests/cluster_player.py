"""The controllers and the node that a bare apiserver lacks, played against the emulator while the operator
runs, so that the downtime of an update can be measured (issue 9) instead of argued.

``Cluster`` runs as a task beside the operator and, every tick, plays:

- the **Job controller**: each Job's pod runs its ``openmodel`` containers for real through
  ``kubelet_player.Kubelet`` (``openmodel fetch`` downloads and hashes every byte); a failed pod is retried
  up to ``backoffLimit``, then the Job is marked Failed;
- the **Deployment controller**: one in-memory ReplicaSet per pod template (keyed by a hash of it, so a
  rollback reuses the old one), scaled as kube-controller-manager v1.28 does (``pkg/controller/deployment``):
  ``RollingUpdate`` surges the new ReplicaSet up to ``replicas + maxSurge`` pods, then scales the old ones
  down while ``available >= replicas - maxUnavailable`` (percentages: surge rounded up, unavailable down,
  both 0 means unavailable 1); ``Recreate`` scales every old ReplicaSet to 0, waits until none of their pods
  exists any more (terminating included), then scales the new one up; the status (``replicas``,
  ``updatedReplicas``, ``readyReplicas``, ``availableReplicas``, ``Available``, ``Progressing``) is written
  as the controller writes it;
- the **ReplicaSet controller**: creates Pod objects in the emulator up to the count (and, as the
  serviceaccount controller does, the namespace's `default` ServiceAccount they need), deletes surplus pods
  (unscheduled first, then not ready, then the newest);
- a **scheduler with a GPU budget**: one node with ``gpus`` ``nvidia.com/gpu``; a pod is bound only when its
  limit fits beside every pod still on the node (a terminating pod holds its GPU until it is gone),
  otherwise it stays Pending with ``PodScheduled=False Unschedulable``;
- the **kubelet**: a bound pod runs its init containers for real (the verify-on-start check re-hashes the
  slot; with ``PerPod`` the init container pulls), then waits ``startup_seconds`` (the server loading the
  weights until its readiness probe passes: not run, a documented delay), then turns Ready. A deleted pod is
  not Ready at once (the endpoints drop a terminating pod), holds its GPU for ``grace_seconds``, then is
  removed.

Simplifications, on purpose: one node (so ReadWriteOnce claims attach everywhere); binding is the
``PodScheduled`` condition (the emulator has no ``pods/binding``, and a pod's ``nodeName`` cannot change,
so pods are created on the node and wait there); ReplicaSets are not API objects; ``minReadySeconds``,
proportional scaling of a resized Deployment mid-rollout, the progress deadline, probes after Ready,
container restarts and Job pods as Pod objects are not played; a check killed with its pod keeps hashing in
its thread until it ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import itertools
import json
import math
import time
from collections.abc import Callable, Mapping
from typing import Any

from kube_emulator import ApiError, KubeEmulator
from kube_emulator.json_values import timestamp
from kubelet_player import Kubelet

GPU = "nvidia.com/gpu"
HASH_LABEL = "pod-template-hash"
NODE = "node-0"


@dataclasses.dataclass
class ReplicaSet:
    namespace: str
    deployment: str
    hash: str
    template: dict[str, Any]
    order: int
    replicas: int = 0


@dataclasses.dataclass
class Pod:
    namespace: str
    name: str
    deployment: str
    rs_hash: str
    spec: dict[str, Any]
    gpus: int
    order: int
    bound: bool = False
    ready: bool = False
    terminating: bool = False
    task: asyncio.Task[None] | None = None


def template_hash(template: Mapping[str, Any]) -> str:
    """What ``pod-template-hash`` stands for: equal templates, one ReplicaSet."""
    return hashlib.sha256(json.dumps(template, sort_keys=True).encode()).hexdigest()[:10]


def _count(value: int | str | None, total: int, round_up: bool) -> int:
    """A rolling-update count or percentage of ``total`` (intstr.GetScaledValueFromIntOrPercent)."""
    if value is None:
        value = "25%"
    if isinstance(value, int):
        return value
    if value.endswith("%"):
        scaled = int(value[:-1]) * total / 100
        return math.ceil(scaled) if round_up else math.floor(scaled)
    return int(value)


def surge_and_unavailable(deployment: Mapping[str, Any]) -> tuple[int, int]:
    """(maxSurge, maxUnavailable) as the controller resolves them; Recreate is (0, 0) (all must be available)."""
    spec = deployment["spec"]
    strategy = spec.get("strategy") or {}
    if strategy.get("type") == "Recreate":
        return 0, 0
    replicas = int(spec.get("replicas", 1))
    rolling = strategy.get("rollingUpdate") or {}
    surge = _count(rolling.get("maxSurge"), replicas, round_up=True)
    unavailable = _count(rolling.get("maxUnavailable"), replicas, round_up=False)
    if surge == 0 and unavailable == 0:
        unavailable = 1
    return surge, min(unavailable, replicas)


class Cluster:
    """The played controllers and node; ``async with Cluster(...)`` runs them until the block ends."""

    def __init__(
        self,
        kube: KubeEmulator,
        kubelet: Kubelet,
        *,
        gpus: int,
        startup_seconds: float = 0.0,
        grace_seconds: float = 0.0,
        tick: float = 0.02,
    ) -> None:
        self.kube = kube
        self.kubelet = kubelet
        self.gpus = gpus
        self.startup_seconds = startup_seconds
        self.grace_seconds = grace_seconds
        self.tick = tick
        self.replicasets: dict[tuple[str, str], dict[str, ReplicaSet]] = {}
        self.pods: dict[tuple[str, str], Pod] = {}
        self.jobs: dict[str, asyncio.Task[None]] = {}  # by Job uid
        self.errors: list[str] = []
        self._order = itertools.count()
        self._loop: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Cluster:
        self._loop = asyncio.create_task(self._run(), name="cluster-player")
        return self

    async def __aexit__(self, *exc: object) -> None:
        tasks = [t for t in [self._loop, *self.jobs.values(), *(p.task for p in self.pods.values())] if t]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _run(self) -> None:
        while True:
            try:
                self.step()
            except ApiError as error:  # a conflict with the operator's own writes: the next tick retries
                self.errors.append(str(error))
            await asyncio.sleep(self.tick)

    def step(self) -> None:
        """One pass of every played controller."""
        for job in self.kube.list("jobs"):
            self._job(job)
        for deployment in self.kube.list("deployments"):
            self._deployment(deployment)
        for sets in self.replicasets.values():
            for rs in sets.values():
                self._replicaset(rs)
        self._schedule()

    # ------------------------------------------------------------------ Job controller

    def _job(self, job: Mapping[str, Any]) -> None:
        uid = job["metadata"]["uid"]
        if uid in self.jobs or (job.get("status") or {}).get("conditions") or job["spec"].get("suspend"):
            return
        self.jobs[uid] = asyncio.create_task(self._run_job(job["metadata"]["namespace"], job["metadata"]["name"], job))

    async def _run_job(self, namespace: str, name: str, job: Mapping[str, Any]) -> None:
        limit = int(job["spec"].get("backoffLimit", 6))
        for attempt in itertools.count():
            try:
                code = await asyncio.to_thread(self.kubelet.run_job, namespace, name)
            except AssertionError:  # the Job was deleted before its pod started
                return
            if code == 0 or attempt >= limit:
                with contextlib.suppress(ApiError):
                    self.kube.complete_job(namespace, name, succeeded=code == 0)
                return
            await asyncio.sleep(min(0.1 * 2**attempt, 2.0))  # the Job's back-off, shortened

    # ------------------------------------------------------------------ Deployment controller

    def _deployment(self, deployment: Mapping[str, Any]) -> None:
        meta, spec = deployment["metadata"], deployment["spec"]
        key = (meta["namespace"], meta["name"])
        sets = self.replicasets.setdefault(key, {})
        replicas = int(spec.get("replicas", 1))
        current = template_hash(spec["template"])
        new = sets.get(current)
        old = sorted((rs for h, rs in sets.items() if h != current), key=lambda rs: rs.order)
        if new is None:
            new = sets[current] = ReplicaSet(*key, current, spec["template"], next(self._order))
        if (spec.get("strategy") or {}).get("type") == "Recreate":
            self._recreate(new, old, replicas)
        else:
            self._rolling(deployment, new, old, replicas)
        self._deployment_status(deployment, new, [new, *old])

    def _recreate(self, new: ReplicaSet, old: list[ReplicaSet], replicas: int) -> None:
        if any(rs.replicas for rs in old):
            for rs in old:
                rs.replicas = 0
            return
        if any(p.rs_hash != new.hash for p in self._pods_of(new.namespace, new.deployment)):
            return  # an old pod still exists (terminating included): Recreate waits for it
        new.replicas = replicas

    def _rolling(self, deployment: Mapping[str, Any], new: ReplicaSet, old: list[ReplicaSet], replicas: int) -> None:
        surge, unavailable = surge_and_unavailable(deployment)
        every = [new, *old]
        # reconcileNewReplicaSet
        if new.replicas > replicas:
            new.replicas = replicas
            return
        if new.replicas < replicas:
            room = replicas + surge - sum(rs.replicas for rs in every)
            if room > 0:
                new.replicas += min(room, replicas - new.replicas)
                return
        # reconcileOldReplicaSets
        if not sum(rs.replicas for rs in old):
            return
        min_available = replicas - unavailable
        new_unavailable = new.replicas - self._available(new)
        max_scaled_down = sum(rs.replicas for rs in every) - min_available - new_unavailable
        if max_scaled_down <= 0:
            return
        cleaned = 0
        for rs in old:  # cleanupUnhealthyReplicas: old pods that are not available go first
            unhealthy = rs.replicas - self._available(rs)
            if cleaned >= max_scaled_down or unhealthy <= 0:
                continue
            down = min(max_scaled_down - cleaned, unhealthy)
            rs.replicas, cleaned = rs.replicas - down, cleaned + down
        # scaleDownOldReplicaSetsForRollingUpdate: only while enough pods stay available
        excess = sum(self._available(rs) for rs in every) - min_available
        for rs in old:
            if excess <= 0:
                break
            down = min(rs.replicas, excess)
            rs.replicas, excess = rs.replicas - down, excess - down

    def _deployment_status(self, deployment: Mapping[str, Any], new: ReplicaSet, every: list[ReplicaSet]) -> None:
        meta, spec = deployment["metadata"], deployment["spec"]
        replicas = int(spec.get("replicas", 1))
        active = [p for p in self._pods_of(meta["namespace"], meta["name"]) if not p.terminating]
        available = sum(p.ready for p in active)
        updated = sum(p.rs_hash == new.hash for p in active)
        _, unavailable = surge_and_unavailable(deployment)
        ok = available >= replicas - unavailable
        complete = updated == replicas and len(active) == replicas and available == replicas
        previous = deployment.get("status") or {}
        conditions = {c["type"]: c for c in previous.get("conditions") or []}

        def condition(kind: str, status: bool, reason: str, message: str) -> dict[str, Any]:
            now = timestamp()
            before = conditions.get(kind) or {}
            changed = before.get("status") != ("True" if status else "False")
            return {
                "type": kind,
                "status": "True" if status else "False",
                "reason": reason,
                "message": message,
                "lastUpdateTime": now if changed or before.get("reason") != reason else before["lastUpdateTime"],
                "lastTransitionTime": now if changed else before["lastTransitionTime"],
            }

        status = {
            "observedGeneration": meta.get("generation", 1),
            "replicas": len(active),
            "updatedReplicas": updated,
            "readyReplicas": available,
            "availableReplicas": available,
            "unavailableReplicas": max(0, replicas - available) or None,
            "conditions": [
                condition(
                    "Available",
                    ok,
                    "MinimumReplicasAvailable" if ok else "MinimumReplicasUnavailable",
                    "Deployment has minimum availability." if ok else "Deployment does not have minimum availability.",
                ),
                condition(
                    "Progressing",
                    True,
                    "NewReplicaSetAvailable" if complete else "ReplicaSetUpdated",
                    f'ReplicaSet "{meta["name"]}-{new.hash}" '
                    + ("has successfully progressed." if complete else "is progressing."),
                ),
            ],
        }
        same = all(previous.get(k) == v for k, v in status.items() if k != "conditions") and [
            (c["type"], c["status"], c["reason"]) for c in status["conditions"]
        ] == [(c.get("type"), c.get("status"), c.get("reason")) for c in previous.get("conditions") or []]
        if not same:
            self.kube.patch_status("apps/v1/deployments", meta["namespace"], meta["name"], status)

    # ------------------------------------------------------------------ ReplicaSet controller

    def _replicaset(self, rs: ReplicaSet) -> None:
        active = [p for p in self._pods_of(rs.namespace, rs.deployment) if p.rs_hash == rs.hash and not p.terminating]
        for _ in range(rs.replicas - len(active)):
            self._create_pod(rs)
        surplus = len(active) - rs.replicas
        if surplus > 0:
            ranked = sorted(active, key=lambda p: (p.bound, p.ready, -p.order))  # controller.ActivePodsWithRanks
            for pod in ranked[:surplus]:
                self._delete_pod(pod)

    def _create_pod(self, rs: ReplicaSet) -> None:
        template = rs.template
        meta = template.get("metadata") or {}
        name = f"{rs.deployment}-{rs.hash}-{hashlib.sha256(str(next(self._order)).encode()).hexdigest()[:5]}"
        spec = {**template["spec"], "nodeName": NODE}
        gpus = sum(int((c.get("resources") or {}).get("limits", {}).get(GPU, 0)) for c in spec["containers"])
        body = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": name,
                "namespace": rs.namespace,
                "labels": {**(meta.get("labels") or {}), HASH_LABEL: rs.hash},
                "annotations": dict(meta.get("annotations") or {}),
            },
            "spec": spec,
        }
        if self.kube.get("serviceaccounts", rs.namespace, "default") is None:  # the serviceaccount controller
            self.kube.create_object(
                {
                    "apiVersion": "v1",
                    "kind": "ServiceAccount",
                    "metadata": {"name": "default", "namespace": rs.namespace},
                },
                manager="kube-controller-manager",
            )
        self.kube.create_object(body, manager="replicaset-controller")
        self.pods[(rs.namespace, name)] = Pod(rs.namespace, name, rs.deployment, rs.hash, spec, gpus, next(self._order))

    def _delete_pod(self, pod: Pod) -> None:
        """Graceful deletion: not Ready from now on (endpoints drop it), its GPU held until it is gone."""
        pod.terminating, pod.ready = True, False
        if pod.task is not None:
            pod.task.cancel()
        self.kube.delete_object("pods", pod.namespace, pod.name)
        pod.task = asyncio.create_task(self._terminate(pod))

    async def _terminate(self, pod: Pod) -> None:
        await asyncio.sleep(self.grace_seconds)
        with contextlib.suppress(ApiError):
            self.kube._delete(self.kube._def("v1/pods"), pod.namespace, pod.name, {"gracePeriodSeconds": 0})
        self.pods.pop((pod.namespace, pod.name), None)

    # ------------------------------------------------------------------ scheduler and kubelet

    def free_gpus(self) -> int:
        return self.gpus - sum(p.gpus for p in self.pods.values() if p.bound)

    def _schedule(self) -> None:
        for pod in sorted(self.pods.values(), key=lambda p: p.order):
            if pod.bound or pod.terminating:
                continue
            if pod.gpus > self.free_gpus():
                self._status(pod, "Pending", {"PodScheduled": (False, "Unschedulable")})
                continue
            pod.bound = True
            self._status(
                pod, "Pending", {"PodScheduled": (True, ""), "Initialized": (False, "ContainersNotInitialized")}
            )
            pod.task = asyncio.create_task(self._start(pod))

    async def _start(self, pod: Pod) -> None:
        """Init containers (the verify-on-start check, or PerPod's pull), then the server's start-up, then Ready."""
        for attempt in itertools.count():
            code = await asyncio.to_thread(self.kubelet.run_pod, pod.namespace, pod.spec, False)
            if code == 0:
                break
            self.errors.append(f"pod {pod.name}: init container exited {code}")
            await asyncio.sleep(min(0.1 * 2**attempt, 2.0))  # CrashLoopBackOff, shortened
        self._status(pod, "Running", {"Initialized": (True, ""), "Ready": (False, "ContainersNotReady")})
        await asyncio.sleep(self.startup_seconds)
        pod.ready = True
        self._status(pod, "Running", {"Ready": (True, ""), "ContainersReady": (True, "")})

    def _status(self, pod: Pod, phase: str, changes: Mapping[str, tuple[bool, str]]) -> None:
        current = self.kube.get("pods", pod.namespace, pod.name)
        if current is None or pod.terminating:
            return
        conditions = {c["type"]: c for c in (current.get("status") or {}).get("conditions") or []}
        for kind, (ok, reason) in changes.items():
            if (conditions.get(kind) or {}).get("status") == ("True" if ok else "False"):
                continue
            conditions[kind] = {"type": kind, "status": "True" if ok else "False", "lastTransitionTime": timestamp()}
            if reason:
                conditions[kind]["reason"] = reason
        status = {"phase": phase, "conditions": list(conditions.values())}
        if status != {k: (current.get("status") or {}).get(k) for k in status}:
            self.kube.patch_status("v1/pods", pod.namespace, pod.name, status, manager="kubelet")

    def _pods_of(self, namespace: str, deployment: str) -> list[Pod]:
        return [p for p in self.pods.values() if p.namespace == namespace and p.deployment == deployment]

    def _available(self, rs: ReplicaSet) -> int:
        return sum(
            p.ready and not p.terminating and p.rs_hash == rs.hash for p in self._pods_of(rs.namespace, rs.deployment)
        )


def ready_pods(kube: KubeEmulator, namespace: str) -> list[dict[str, Any]]:
    """Pods a Service routes to: Ready and not terminating, read from the API (what a client could see)."""
    return [
        pod
        for pod in kube.list("pods", namespace)
        if not pod["metadata"].get("deletionTimestamp")
        and any(
            c["type"] == "Ready" and c["status"] == "True" for c in (pod.get("status") or {}).get("conditions") or []
        )
    ]


@dataclasses.dataclass
class Samples:
    """Ready pods over time, by a key of each pod (e.g. the revision it serves). A sample's state is taken to
    last until the next sample (the sampler's period bounds the error of every duration)."""

    period: float
    points: list[tuple[float, dict[str, int]]] = dataclasses.field(default_factory=list)

    def _spans(self, since: float) -> list[tuple[float, float, dict[str, int]]]:
        points = [p for p in self.points if p[0] >= since]
        return [(t, later[0] - t, counts) for (t, counts), later in itertools.pairwise(points)]

    def zero_seconds(self, since: float = 0.0) -> float:
        """Total time with no ready pod at all."""
        return sum(span for _, span, counts in self._spans(since) if not sum(counts.values()))

    def longest_zero(self, since: float = 0.0) -> float:
        longest = run = 0.0
        for _, span, counts in self._spans(since):
            run = run + span if not sum(counts.values()) else 0.0
            longest = max(longest, run)
        return longest

    def first(self, predicate: Callable[[dict[str, int]], bool], since: float = 0.0) -> float | None:
        return next((t for t, counts in self.points if t >= since and predicate(counts)), None)

    def minimum(self, since: float = 0.0) -> int:
        return min((sum(c.values()) for t, c in self.points if t >= since), default=0)


async def sample_ready(
    kube: KubeEmulator, namespace: str, key: Callable[[Mapping[str, Any]], str], samples: Samples, t0: float
) -> None:
    """Append (seconds since ``t0``, ready pods by ``key``) every ``samples.period`` until cancelled."""
    while True:
        counts: dict[str, int] = {}
        for pod in ready_pods(kube, namespace):
            counts[key(pod)] = counts.get(key(pod), 0) + 1
        samples.points.append((time.monotonic() - t0, counts))
        await asyncio.sleep(samples.period)
