"""Update-downtime benchmark (issue 9): how long no ready replica serves while a model of ``--size-mb``
(default 2048 MiB) moves to a new revision with new weights, per volume and GPU budget.

    .venv/bin/python bench/bench_update_downtime.py [--size-mb 2048] [--replicas 2] [--reps 3]
                                                   [--startup-s 2] [--grace-s 1] [--scenarios rwx-spare,...]

Two processes, as in ``bench_operator.py``: this one runs the cluster (``tests/kube_emulator/`` over HTTP, the
Hub stand-in serving two signed revisions from memory, and ``tests/cluster_player.Cluster``); a spawned one runs
only the operator (``build_registry`` under ``kopf.operator``, production Kopf settings, 30 s resync), so its
event loop and GIL are its own. ``Cluster`` plays the Deployment, ReplicaSet and Job controllers, a one-node
scheduler with ``--gpus`` and a kubelet; the pull Jobs run ``openmodel fetch`` for real (every byte downloaded
and hashed into the claim's slot), each serving pod runs its verify-on-start check for real (re-hashes the slot;
with PerPod its init container pulls), then waits ``--startup-s`` (the server loading the weights; vLLM itself is
not run) before it is Ready; a deleted pod stops serving at once and holds its GPU ``--grace-s``.

One run: a fresh emulator and operator, the model pinned to revision A; once every replica serves A,
``spec.source.revision`` is set to B (a Manual update) and the Ready, non-terminating pods are read from the
emulator every ``--sample-ms``. Reported per run: seconds with zero ready replicas, the longest such window,
the fewest ready replicas, seconds from the update until B's pull Job completed, until the operator switched the
Deployment's template to B, until the first pod of B is ready, until every replica runs B, until the operator
reports B served (``phase: Ready``), and the bytes the Hub served during the update. Scenarios:

- ``rwx-spare``: ReadWriteMany claim, replicas + 1 GPUs, the default strategy (maxSurge 1, maxUnavailable 1);
- ``rwx-no-spare``: the same with exactly ``replicas`` GPUs;
- ``rwx-surge``: replicas + 1 GPUs, ``rollout: {maxSurge: 1, maxUnavailable: 0}`` (the documented zero-downtime
  setting for GPUs);
- ``rwo``: ReadWriteOnce claim, its default Recreate;
- ``perpod``: ``storage.mode: PerPod``, replicas + 1 GPUs, the default strategy (every pod pulls).

Median and range over ``--reps`` (scenarios interleaved). Writes ``bench/results/update_downtime.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import multiprocessing
import multiprocessing.connection
import os
import pathlib
import shutil
import sys
import tempfile
import time
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import benchlib
from benchlib import median, print_table, start_operator

NS = "bench"
REPO = "bench/model"
Conn = multiprocessing.connection.Connection
TIMES = ("zero_ready_s", "longest_zero_s", "pull_done_s", "switched_s", "first_new_ready_s", "all_new_s", "served_s")

SCENARIOS: dict[str, dict[str, Any]] = {
    "rwx-spare": {"storage": {"accessMode": "ReadWriteMany"}, "spare": 1},
    "rwx-no-spare": {"storage": {"accessMode": "ReadWriteMany"}, "spare": 0},
    "rwx-surge": {
        "storage": {"accessMode": "ReadWriteMany"},
        "spare": 1,
        "rollout": {"maxSurge": 1, "maxUnavailable": 0},
    },
    "rwo": {"storage": {"accessMode": "ReadWriteOnce"}, "spare": 1},
    "perpod": {"storage": {"mode": "PerPod"}, "spare": 1},
}


# ================================================================================ the operator process


def operator_main(conn: Conn, url: str, hub_url: str, log: str) -> None:
    """Entry point of the spawned operator process: runs until told to stop; a failure is sent back."""
    try:
        asyncio.run(_operate(conn, url, hub_url, log))
    except BaseException:
        import traceback

        conn.send({"op": "error", "error": traceback.format_exc()})
        raise


async def _operate(conn: Conn, url: str, hub_url: str, log: str) -> None:
    from openmodel_operator.controller.settings import OperatorSettings

    logging.basicConfig(filename=log, level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    settings = OperatorSettings(
        resync_interval=30.0,
        reverify_interval=3600.0,
        metrics_port=0,
        health_port=0,
        operator_image="openmodel-operator:bench",
        vllm_image="vllm:bench",
        default_endpoint=hub_url,
    )
    task, stop_flag, ready_flag = start_operator(url, settings)
    await asyncio.wait_for(ready_flag.wait(), timeout=60)
    conn.send({"op": "ready"})
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    loop.add_reader(conn.fileno(), stop.set)
    await stop.wait()
    stop_flag.set()
    try:
        await asyncio.wait_for(asyncio.shield(task), timeout=30)
    except TimeoutError:
        task.cancel()
    conn.send({"op": "stopped"})


# ================================================================================ the cluster (this process)


def publish(hub: Any, work: pathlib.Path, size: int, shards: int, key: Any) -> str:
    """A model of ``shards`` random weight files totalling ``size`` bytes, signed with model-signing (key
    mode) as its publisher would; returns the commit."""
    from fasthub import README, add_model_cached

    from signing_fixtures import sign_with_key, write_model

    files = {
        "README.md": README,
        "config.json": b'{"hidden_size": 8}\n',
        **{f"model-{i:05d}-of-{shards:05d}.safetensors": os.urandom(size // shards) for i in range(shards)},
    }
    label = os.urandom(4).hex()
    model = write_model(work / f"src-{label}", files)
    files["model.sig"] = sign_with_key(model, key, work / f"sig-{label}")
    shutil.rmtree(model)
    return add_model_cached(hub, REPO, files)


def _digest(pod: Any) -> str:
    from openmodel_operator.planning import children

    return str(pod["metadata"]["annotations"][children.DIGEST_ANNOTATION])


async def _milestones(kube: Any, first: str, t0: float, seen: dict[str, float]) -> None:
    """When the pull Job of the new revision completed and when the Deployment's template named it (the
    operator's switch), polled like the samples; PerPod has no pull Job."""
    from openmodel_operator.planning import children

    while True:
        now = time.monotonic() - t0
        for job in kube.list("jobs", NS):
            annotations = job["metadata"].get("annotations") or {}
            done = any(c["type"] == "Complete" for c in (job.get("status") or {}).get("conditions") or [])
            if done and annotations.get(children.DIGEST_ANNOTATION) not in (None, first):
                seen.setdefault("pull_done_s", now)
        deployment = kube.get("deployments", NS, "m") or {}
        template = ((deployment.get("spec") or {}).get("template") or {}).get("metadata") or {}
        if (template.get("annotations") or {}).get(children.DIGEST_ANNOTATION) not in (None, first):
            seen.setdefault("switched_s", now)
        await asyncio.sleep(0.05)


async def one_run(
    args: argparse.Namespace, scenario: str, hub: Any, key: Any, commits: tuple[str, str], work: pathlib.Path
) -> dict[str, Any]:
    """A fresh cluster and operator; serve A, update to B, sample until B is served."""
    from cluster_player import Cluster, Samples, ready_pods, sample_ready
    from kube_fixtures import repo_crds, serve_emulator
    from kubelet_player import Kubelet

    case = SCENARIOS[scenario]
    gpus = args.replicas + case["spare"]
    serving: dict[str, Any] = {"replicas": args.replicas, "gpus": 1}
    if "rollout" in case:
        serving["rollout"] = case["rollout"]
    node = work / f"node-{scenario}"
    spawn = multiprocessing.get_context("spawn")
    async with serve_emulator(crds=repo_crds()) as kube:
        kube.create_namespace(NS)
        kube.create_object(
            {
                "apiVersion": "openmodel.io/v1alpha1",
                "kind": "ModelTrustPolicy",
                "metadata": {"name": "bench"},
                "spec": {
                    "mode": "Enforce",
                    "signature": {"required": True, "keys": [{"name": "bench", "publicKey": key.public_pem.decode()}]},
                    "sources": {"endpoints": {"allow": [hub.url]}},
                },
            }
        )
        ours, theirs = spawn.Pipe()
        log = str(benchlib.RESULTS / "update_downtime-operator.log")
        process = spawn.Process(target=operator_main, args=(theirs, kube.base_url, hub.url, log), daemon=True)
        process.start()
        try:
            message = await asyncio.wait_for(asyncio.to_thread(ours.recv), timeout=120)
            if message["op"] != "ready":
                raise RuntimeError(message.get("error"))
            kube.create_object(
                {
                    "apiVersion": "openmodel.io/v1alpha1",
                    "kind": "OpenModel",
                    "metadata": {"name": "m", "namespace": NS},
                    "spec": {
                        "source": {"uri": f"hf://{REPO}", "endpoint": hub.url, "revision": commits[0]},
                        "storage": {"size": f"{2 * args.size_mb + 1024}Mi", **case["storage"]},
                        "serving": serving,
                    },
                }
            )

            def status() -> dict[str, Any]:
                obj = kube.get("openmodels", NS, "m") or {}
                return dict(obj.get("status") or {})

            kubelet = Kubelet(kube, node)
            async with Cluster(
                kube, kubelet, gpus=gpus, startup_seconds=args.startup_s, grace_seconds=args.grace_s
            ) as cluster:
                await kube.wait_for(
                    lambda: status().get("phase") == "Ready" and len(ready_pods(kube, NS)) == args.replicas,
                    timeout=args.timeout,
                    describe=lambda: str({k: status().get(k) for k in ("phase", "conditions")}),
                )
                first = status()["served"]["manifestDigest"]
                samples = Samples(period=args.sample_ms / 1000)
                bytes_before = hub.bytes_served
                t0 = time.monotonic()
                seen: dict[str, float] = {}
                sampler = asyncio.gather(
                    sample_ready(kube, NS, _digest, samples, t0), _milestones(kube, first, t0, seen)
                )
                kube.patch_object("openmodels", NS, "m", {"spec": {"source": {"revision": commits[1]}}})
                try:
                    await kube.wait_for(
                        lambda: status().get("phase") == "Ready" and status()["served"]["manifestDigest"] != first,
                        timeout=args.timeout,
                        describe=lambda: str({k: status().get(k) for k in ("phase", "incoming", "conditions")}),
                    )
                    served_s = time.monotonic() - t0
                    await asyncio.sleep(0.2)
                finally:
                    sampler.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await sampler
                bytes_pulled = hub.bytes_served - bytes_before
                errors = list(cluster.errors)
            second = status()["served"]["manifestDigest"]
        finally:
            ours.send({"op": "stop"})
            await asyncio.to_thread(process.join, 60)
            if process.is_alive():
                process.kill()
            shutil.rmtree(node, ignore_errors=True)

    def new_ready(counts: dict[str, int]) -> bool:
        return counts.get(second, 0) > 0

    def all_new(counts: dict[str, int]) -> bool:
        return counts == {second: args.replicas}

    return {
        "zero_ready_s": round(samples.zero_seconds(), 3),
        "longest_zero_s": round(samples.longest_zero(), 3),
        "min_ready": samples.minimum(),
        "first_new_ready_s": samples.first(new_ready),
        "all_new_s": samples.first(all_new),
        "served_s": round(served_s, 3),
        "pull_done_s": seen.get("pull_done_s"),
        "switched_s": seen.get("switched_s"),
        "bytes_pulled": bytes_pulled,
        "samples": len(samples.points),
        "player_errors": errors,
    }


async def run_all(args: argparse.Namespace, scenarios: list[str]) -> dict[str, list[dict[str, Any]]]:
    from fasthub import README  # noqa: F401  (puts tests/ on sys.path)

    from hubstub import HubStub
    from signing_fixtures import new_key

    hub = HubStub().start()
    work = pathlib.Path(tempfile.mkdtemp(prefix="bench-downtime-"))
    runs: dict[str, list[dict[str, Any]]] = {s: [] for s in scenarios}
    try:
        key = new_key()
        size = args.size_mb * 1024 * 1024
        started = time.monotonic()
        commits = (publish(hub, work, size, args.shards, key), publish(hub, work, size, args.shards, key))
        print(f"published two revisions of {args.size_mb} MiB in {time.monotonic() - started:.1f} s", flush=True)
        for rep in range(args.reps):
            for scenario in scenarios:
                result = await one_run(args, scenario, hub, key, commits, work)
                runs[scenario].append(result)
                print(
                    f"rep {rep + 1} {scenario:>12}: zero {result['zero_ready_s']:.2f} s, served after "
                    f"{result['served_s']:.1f} s, {result['bytes_pulled'] / 2**20:.0f} MiB pulled",
                    flush=True,
                )
    finally:
        hub.stop()
        shutil.rmtree(work, ignore_errors=True)
    return runs


def _span(values: list[float]) -> str:
    return f"{median(values):.2f} s [{min(values):.2f}-{max(values):.2f}]"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--size-mb", type=int, default=2048, help="size of each revision's weights (MiB)")
    parser.add_argument("--shards", type=int, default=4, help="weight files per revision")
    parser.add_argument("--replicas", type=int, default=2)
    parser.add_argument("--reps", type=int, default=3, help="runs of each scenario (interleaved)")
    parser.add_argument("--startup-s", type=float, default=2.0, help="server start-up after the check (played)")
    parser.add_argument("--grace-s", type=float, default=1.0, help="a deleted pod holds its GPU this long")
    parser.add_argument("--sample-ms", type=float, default=50.0, help="period of the ready-pod sampler")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds a run may wait for a phase")
    parser.add_argument("--out", default="update_downtime.json", help="file name under bench/results/")
    parser.add_argument("--scenarios", default=",".join(SCENARIOS), help=f"comma-separated, of {list(SCENARIOS)}")
    args = parser.parse_args(argv)
    scenarios = [s for s in args.scenarios.split(",") if s]
    unknown = set(scenarios) - set(SCENARIOS)
    if unknown:
        parser.error(f"unknown scenarios {sorted(unknown)}")
    logging.basicConfig(level=logging.WARNING)
    benchlib.RESULTS.mkdir(parents=True, exist_ok=True)
    load = os.getloadavg()
    runs = asyncio.run(run_all(args, scenarios))
    rows = []
    for scenario in scenarios:
        results = runs[scenario]
        zero = [r["zero_ready_s"] for r in results]
        served = [r["served_s"] for r in results]
        mib = median([r["bytes_pulled"] for r in results]) / 2**20
        rows.append((f"{scenario}: no ready replica", _span(zero), f"min ready {min(r['min_ready'] for r in results)}"))
        switched = [r["switched_s"] for r in results if r["switched_s"] is not None]
        note = f"{mib:.0f} MiB pulled (median)" + (f"; Deployment on B after {_span(switched)}" if switched else "")
        rows.append((f"{scenario}: update -> B served", _span(served), note))
    title = (
        f"bench_update_downtime: {args.size_mb} MiB, {args.replicas} replicas, start-up {args.startup_s} s, "
        f"grace {args.grace_s} s, {args.reps} reps, {os.cpu_count()} CPUs, load {load[0]:.1f}"
    )
    print_table(title, rows)
    path = benchlib.write_json(
        args.out,
        {
            "args": vars(args),
            "runs": runs,
            "summary": {
                s: {
                    key: {"median": median(v), "min": min(v), "max": max(v)}
                    for key in TIMES
                    if (v := [r[key] for r in runs[s] if r[key] is not None])
                }
                | {"bytes_pulled_median": median([r["bytes_pulled"] for r in runs[s]])}
                for s in scenarios
            },
            "load_before": load,
            "machine": benchlib.machine(),
        },
    )
    print(f"\nwrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
