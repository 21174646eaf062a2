"""Operator benchmark: N OpenModels created at once, the real operator, the tests' Kubernetes emulator.

    .venv/bin/python bench/bench_operator.py [--models 500] [--repos 5] [--concurrency 16]
                                             [--hub-latency-ms 0] [--profile] [--log-format text|json]

Two processes, so that the operator's memory and CPU are its own:

* the "cluster" process (spawned first) runs ``tests/kube_emulator/``'s ``KubeEmulator`` with the project's
  CRDs (``serve_emulator(crds=repo_crds())``) and the Hub stand-in ``tests/hubstub.HubStub`` serving
  ``--repos`` small models, each signed with model-signing (key mode). It creates the namespace and one
  Enforce ModelTrustPolicy that trusts the key, then, on the operator's signal, creates the N
  OpenModels at once through the emulator's own storage (``create_object``: the benchmark's creates are
  not HTTP requests and are never counted), and watches their status every 0.1 s;
* this process runs only the operator: ``build_registry(OperatorSettings(resync_interval=30,
  reverify_interval=3600, ...), lambda: Kube(client_for(url)))`` under ``kopf.operator(...)`` with
  Kopf's default settings (the production ones; ``configure_kopf`` runs in the startup handler),
  standalone and cluster-wide, logging as ``openmodel run`` does (to ``bench/results/operator.log``).

Measured: time from the creates until every model has ``Trusted=True`` and until every model is in
phase ``Pulling`` (ConfigMap, PVC and fetch Job applied); this process's RSS before the operator
starts, when it is ready, and its peak (``ru_maxrss``); API requests the operator made (the emulator's
counters, discovery excluded) per model, by verb and resource; Hub requests and examinations per
model (with the reconciler's reason for each); Events; requests made while idle afterwards.
``--hub-latency-ms`` delays every Hub request like a remote Hub would. ``--profile`` runs cProfile on
the event loop thread (verifications run in worker threads and are not in it) and writes
``bench/results/operator-profile.txt``; for all threads use py-spy (see docs/performance.md).

Writes ``bench/results/operator.json``.

``--scenario catchup`` measures what the burst misses, with one operator process per lifetime (a restart
starts from nothing, as a new pod does) and one cluster process per cluster:

1. the burst again, as the baseline of this run (operator up, then N models at once);
2. a fresh cluster where the N models exist before the operator starts (cold start): time from the spawn of the
   operator process until it is ready, until every model had its first reconcile pass, until all are Trusted;
3a. a restart with the N (verified) models and nothing changed: time from the spawn until every model had a
   pass (the catch-up alone: nothing to write);
3. a restart with the N (verified) models: a new model and a policy change (one more trusted key, so every
   model is decided again) made as soon as the new operator is ready; time from the spawn until every model
   had a pass, until the new model is Trusted, until every model records the new policy generation;
4. the same after ``--unrelated`` ConfigMaps and Jobs (half each, over ``--unrelated-namespaces``) were added
   to the cluster: objects the operator does not own but Kopf lists and watches.

Throughout, ``/healthz`` of the operator (a thread of its own) and Kopf's in-loop liveness endpoint (started
beside it for comparison) are polled every 0.25 s; the table gives their worst latency. Ratios: phase 2 / the
burst, phase 4 / phase 3. Writes ``bench/results/operator-catchup.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import cProfile
import gc
import io
import logging
import multiprocessing
import multiprocessing.connection
import os
import pathlib
import pstats
import resource
import sys
import tempfile
import time
import tracemalloc
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import benchlib
from benchlib import median, peak_rss_mb, print_table, rss_mb, start_operator

NS = "bench"
POLICY = "bench-key"
Conn = multiprocessing.connection.Connection


# ================================================================================ the cluster process


def cluster_main(conn: Conn, repos: int, timeout: float, settle: float, idle: float, latency: float) -> None:
    """Entry point of the spawned cluster process; a failure is sent to the operator process, not swallowed."""
    logging.basicConfig(level=logging.WARNING)
    try:
        asyncio.run(_cluster(conn, repos, timeout, settle, idle, latency))
    except BaseException:
        import traceback

        conn.send({"op": "error", "error": traceback.format_exc()})
        raise


def _model_files(index: int) -> dict[str, bytes]:
    from fasthub import README

    return {
        "README.md": README,
        "config.json": b'{"hidden_size": %d}\n' % (8 + index),
        "model.safetensors": os.urandom(4096),
        "tokenizer.json": b'{"version": "1.0"}\n',
    }


def _hub(latency: float) -> Any:
    """The tests' HubStub; with ``latency`` > 0 every request waits that long first (a remote Hub's round trip)."""
    import threading
    from http.server import ThreadingHTTPServer

    import hubstub

    stub = hubstub.HubStub()
    if latency <= 0:
        return stub.start()

    class SlowHandler(hubstub._Handler):
        def _dispatch(self) -> None:
            time.sleep(latency)
            super()._dispatch()

    handler = type("BoundHandler", (SlowHandler,), {"stub": stub})
    stub._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    stub._server.daemon_threads = True
    stub._thread = threading.Thread(target=stub._server.serve_forever, name="hubstub", daemon=True)
    stub._thread.start()
    return stub


async def _cluster(conn: Conn, repos: int, timeout: float, settle: float, idle: float, latency: float) -> None:
    from kube_fixtures import repo_crds, serve_emulator
    from signing_fixtures import new_key, sign_with_key, write_model

    key = new_key()
    hub = _hub(latency)
    work = pathlib.Path(tempfile.mkdtemp(prefix="bench-operator-"))
    for r in range(repos):
        files = _model_files(r)
        model = write_model(work / f"src-{r}", files)
        files["model.sig"] = sign_with_key(model, key, work / f"sig-{r}")
        hub.add_model(f"bench/model-{r}", files)
    loop = asyncio.get_running_loop()
    inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    loop.add_reader(conn.fileno(), lambda: inbox.put_nowait(conn.recv()))
    try:
        async with serve_emulator(crds=repo_crds(), keep_alive=True) as kube:
            kube.create_namespace(NS)
            kube.create_object(
                {
                    "apiVersion": "openmodel.io/v1alpha1",
                    "kind": "ModelTrustPolicy",
                    "metadata": {"name": POLICY},
                    "spec": {
                        "mode": "Enforce",
                        "sources": {"endpoints": {"allow": [hub.url]}},  # the Hub stand-in is a mirror
                        "signature": {
                            "required": True,
                            "keys": [{"name": "bench", "publicKey": key.public_pem.decode()}],
                        },
                        "licenses": {"allowOSIApproved": True},
                    },
                }
            )
            conn.send({"url": kube.base_url, "hub": hub.url})
            while True:
                command = await inbox.get()
                if command["op"] == "create":
                    conn.send(await _create_and_watch(kube, hub, command["models"], repos, timeout, settle, idle))
                elif command["op"] == "stop":
                    break
    finally:
        loop.remove_reader(conn.fileno())
        hub.stop()
        import shutil

        shutil.rmtree(work, ignore_errors=True)
    conn.send({"op": "stopped"})


def _summary(log: list[Any], start: int) -> dict[str, int]:
    counts: collections.Counter[str] = collections.Counter()
    for record in log[start:]:
        what = record.resource + (f"/{record.subresource}" if record.subresource else "")
        counts[f"{record.verb} {what}"] += 1
    return dict(counts.most_common())


def _distribution(values: Any) -> dict[str, float]:
    ordered = sorted(values)
    if not ordered:
        return {}
    return {"min": ordered[0], "median": ordered[len(ordered) // 2], "max": ordered[-1]}


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def _create_and_watch(
    kube: Any, hub: Any, models: int, repos: int, timeout: float, settle: float, idle: float
) -> dict[str, Any]:
    """Create every OpenModel at once, then poll their status until all are Trusted and Pulling."""
    kube.reset_counters()
    hub_before = len(hub.request_log)
    cpu_before = _cpu_seconds()
    names = [f"m-{i:04d}" for i in range(models)]
    started = time.monotonic()
    for i, name in enumerate(names):
        kube.create_object(
            {
                "apiVersion": "openmodel.io/v1alpha1",
                "kind": "OpenModel",
                "metadata": {"name": name, "namespace": NS},
                "spec": {"source": {"uri": f"hf://bench/model-{i % repos}", "endpoint": hub.url}},
            }
        )
    created = time.monotonic() - started
    trusted: dict[str, float] = {}
    pulling: dict[str, float] = {}
    resource_def = kube._def("openmodels")
    while True:
        now = time.monotonic() - started
        for name in names:
            if name in pulling and name in trusted:
                continue
            status = (kube._live(resource_def, NS, name) or {}).get("status") or {}
            if name not in trusted and any(
                c.get("type") == "Trusted" and c.get("status") == "True" for c in status.get("conditions") or []
            ):
                trusted[name] = now
            if name not in pulling and status.get("phase") == "Pulling":
                pulling[name] = now
        if (len(trusted) == models and len(pulling) == models) or now > timeout:
            break
        await asyncio.sleep(0.1)
    phases: collections.Counter[str] = collections.Counter()
    for name in names:
        status = (kube._live(resource_def, NS, name) or {}).get("status") or {}
        phases[str(status.get("phase"))] += 1

    # the operator may still be working (Events, re-applies, re-examinations that only talk to the Hub):
    # wait until neither the API nor the Hub got a request for `settle` seconds
    def activity() -> tuple[int, int]:
        return kube.requests_total, len(hub.request_log)

    quiet_since, last = time.monotonic(), activity()
    while time.monotonic() - quiet_since < settle and time.monotonic() - started < timeout + 60:
        await asyncio.sleep(0.2)
        if activity() != last:
            quiet_since, last = time.monotonic(), activity()
    quiescent = quiet_since - started
    requests = dict(kube.request_counts)
    breakdown = _summary(kube.request_log, 0)
    hub_requests = len(hub.request_log) - hub_before
    cpu = _cpu_seconds() - cpu_before
    idle_start_total, idle_log_start = kube.requests_total, len(kube.request_log)
    idle_windows: list[int] = []
    for _ in range(max(1, round(idle / 5))):
        before = kube.requests_total
        await asyncio.sleep(idle / max(1, round(idle / 5)))
        idle_windows.append(kube.requests_total - before)
    events: collections.Counter[str] = collections.Counter()
    per_model_events: collections.Counter[str] = collections.Counter()
    for event in kube.list("events", NS):
        events[str(event.get("reason"))] += 1
        per_model_events[str((event.get("involvedObject") or {}).get("name"))] += event.get("count") or 1
    status_patches = collections.Counter(
        r.name for r in kube.request_log if r.resource == "openmodels" and r.subresource == "status"
    )
    return {
        "models": models,
        "create_s": created,
        "quiescent_s": quiescent,
        "trusted_s": sorted(trusted.values()),
        "pulling_s": sorted(pulling.values()),
        "phases": dict(phases),
        "requests": requests,
        "requests_total": sum(v for k, v in requests.items() if k != "discovery"),
        "breakdown": breakdown,
        "hub_requests": hub_requests,
        "cluster_cpu_s": cpu,
        "cluster_peak_rss_mb": peak_rss_mb(),
        "idle_s": idle,
        "idle_requests": kube.requests_total - idle_start_total,
        "idle_windows_5s": idle_windows,
        "event_reasons": dict(events.most_common()),
        "events_per_model_max": max(per_model_events.values(), default=0),
        "status_patches_per_model": _distribution(status_patches.values()),
        "idle_breakdown": _summary(kube.request_log, idle_log_start),
        "objects": {kind: len(kube.list(kind, NS)) for kind in ("configmaps", "persistentvolumeclaims", "jobs")},
        "events": len(kube.list("events", NS)),
    }


# ================================================================================ the operator process


class _CountingHandler(logging.Handler):
    """Counts warnings and errors, and the reasons of the reconciler's examinations ("examining" records)."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.counts: collections.Counter[str] = collections.Counter()
        self.examinations: collections.Counter[str] = collections.Counter()

    def emit(self, record: logging.LogRecord) -> None:
        if record.levelno >= logging.WARNING:
            self.counts[f"{record.levelname} {record.name}: {record.getMessage()[:80]}"] += 1
        elif record.getMessage() == "examining":
            self.examinations[str(getattr(record, "reason", "?"))] += 1


async def _recv(conn: Conn) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    future: asyncio.Future[dict[str, Any]] = loop.create_future()

    def readable() -> None:
        loop.remove_reader(conn.fileno())
        if not future.done():
            future.set_result(conn.recv())

    loop.add_reader(conn.fileno(), readable)
    return _checked(await future)


def _checked(message: dict[str, Any]) -> dict[str, Any]:
    if message.get("op") == "error":
        raise RuntimeError(f"the cluster process failed:\n{message['error']}")
    return message


async def operate(
    conn: Conn, url: str, args: argparse.Namespace, rss: dict[str, float], counter: _CountingHandler
) -> dict[str, Any]:
    """Run the operator until the cluster reports that every model is Trusted and Pulling."""
    from openmodel_operator.controller.settings import OperatorSettings

    settings = OperatorSettings(
        resync_interval=30.0,
        reverify_interval=3600.0,
        max_concurrent_verifications=args.concurrency,
        metrics_port=0,
        health_port=0,
        operator_image="openmodel-operator:bench",
        vllm_image="vllm:bench",
    )
    task, stop_flag, ready_flag = start_operator(url, settings)
    started = time.monotonic()
    await asyncio.wait_for(ready_flag.wait(), timeout=30)
    await asyncio.sleep(1.0)  # initial listings and watches of every resource
    rss["ready"] = rss_mb()
    rss["ready_s"] = time.monotonic() - started
    cpu_before = _cpu_seconds()
    profiler = cProfile.Profile() if args.profile else None
    if profiler is not None:
        profiler.enable()
    if args.tracemalloc:
        tracemalloc.start(args.tracemalloc)
    conn.send({"op": "create", "models": args.models})
    result = await _recv(conn)
    gc.collect()  # what the models hold, not what the burst left for the collector
    rss["end_gc"] = rss_mb()
    if args.tracemalloc:
        result["tracemalloc"] = _write_tracemalloc(tracemalloc.take_snapshot())
        tracemalloc.stop()
    if profiler is not None:
        profiler.disable()
        _write_profile(profiler)
    result["operator_cpu_s"] = _cpu_seconds() - cpu_before
    from openmodel_operator.controller.metrics import METRICS

    for metric in ("verification_duration_seconds", "reconcile_duration_seconds"):
        total = METRICS.registry.get_sample_value(f"openmodel_{metric}_sum") or 0.0
        count = METRICS.registry.get_sample_value(f"openmodel_{metric}_count") or 0.0
        result[f"{metric}_mean"] = total / count if count else None
        result[f"{metric}_count"] = count
    rss["end"] = rss_mb()
    rss["peak"] = peak_rss_mb()
    result["warnings_before_stop"] = sum(counter.counts.values())
    stopping = time.monotonic()
    stop_flag.set()
    try:
        await asyncio.wait_for(asyncio.shield(task), timeout=60)
    except TimeoutError:
        task.cancel()
    result["stop_s"] = time.monotonic() - stopping
    return result


def _ours_or_kopf(filename: str) -> bool:
    return "openmodel_operator" in filename or "/kopf/" in filename


def _write_tracemalloc(snapshot: tracemalloc.Snapshot) -> dict[str, float]:
    """The heap the models hold once all are Trusted: top 25 tracebacks and totals by package (MiB).

    Allocation made before tracing started (imports, Kopf's startup) are not in it.
    """
    snapshot = snapshot.filter_traces([tracemalloc.Filter(False, tracemalloc.__file__)])
    stats = snapshot.statistics("traceback")
    out = io.StringIO()
    total = sum(s.size for s in stats)
    print(f"traced heap held at the end: {total / 2**20:.1f} MiB in {sum(s.count for s in stats)} blocks", file=out)
    for stat in stats[:25]:
        print(f"\n{stat.size / 2**20:.2f} MiB in {stat.count} blocks", file=out)
        for line in stat.traceback.format(limit=len(stat.traceback)):
            print(f"  {line}", file=out)
    by_package: collections.Counter[str] = collections.Counter()
    by_site: collections.Counter[str] = collections.Counter()
    for stat in stats:
        files = [frame.filename for frame in stat.traceback]
        owner = next((f for f in files if "openmodel_operator" in f), None) or next(
            (f for f in files if "/kopf/" in f), None
        )
        package = "other" if owner is None else "openmodel_operator" if "openmodel_operator" in owner else "kopf"
        by_package[package] += stat.size
        site = next((fr for fr in reversed(stat.traceback) if _ours_or_kopf(fr.filename)), None)
        by_site[f"{site.filename.split('/site-packages/')[-1]}:{site.lineno}" if site else "other"] += stat.size
    print("\nheld, by the first frame in our code or Kopf's (innermost first):", file=out)
    for site_name, size in by_site.most_common(30):
        print(f"  {size / 2**20:7.2f} MiB  {site_name}", file=out)
    benchlib.RESULTS.mkdir(parents=True, exist_ok=True)
    (benchlib.RESULTS / "operator-tracemalloc.txt").write_text(out.getvalue())
    return {"total_mib": total / 2**20, **{k: v / 2**20 for k, v in by_package.items()}}


def _write_profile(profiler: cProfile.Profile, name: str = "operator-profile.txt") -> None:
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out)
    stats.sort_stats("tottime").print_stats(40)
    stats.sort_stats("cumulative").print_stats(60)
    benchlib.RESULTS.mkdir(parents=True, exist_ok=True)
    (benchlib.RESULTS / name).write_text(out.getvalue())
    stats.dump_stats(benchlib.RESULTS / name.replace(".txt", ".prof"))  # for pstats/snakeviz: callers, callees


def _setup_logging(json_logs: bool) -> _CountingHandler:
    from openmodel_operator.controller.logs import configure_logging

    configure_logging(json_logs, logging.INFO)  # as `openmodel run`
    root = logging.getLogger()
    benchlib.RESULTS.mkdir(parents=True, exist_ok=True)
    root.handlers[0].setStream(open(benchlib.RESULTS / "operator.log", "w"))  # type: ignore[attr-defined]  # noqa: SIM115
    counter = _CountingHandler()
    root.addHandler(counter)
    return counter


# ================================================================================ the catch-up scenarios
#
# `--scenario catchup`: what the burst misses. Three kinds of processes: this one coordinates, a cluster
# process per cluster (emulator + Hub), and one operator process per operator lifetime (so that RSS and CPU
# are those of one lifetime, and a restart starts from nothing, as a new pod does).


def catchup_cluster_main(conn: Conn, repos: int, latency: float) -> None:
    """A cluster process driven by commands: seed models, add unrelated objects, change the policy, wait for
    goals, wait for quiet."""
    logging.basicConfig(level=logging.WARNING)
    try:
        asyncio.run(_catchup_cluster(conn, repos, latency))
    except BaseException:
        import traceback

        conn.send({"op": "error", "error": traceback.format_exc()})
        raise


async def _catchup_cluster(conn: Conn, repos: int, latency: float) -> None:
    from kube_fixtures import repo_crds, serve_emulator
    from signing_fixtures import new_key, sign_with_key, write_model

    key = new_key()
    hub = _hub(latency)
    work = pathlib.Path(tempfile.mkdtemp(prefix="bench-catchup-"))
    for r in range(repos):
        files = _model_files(r)
        files["model.sig"] = sign_with_key(write_model(work / f"src-{r}", files), key, work / f"sig-{r}")
        hub.add_model(f"bench/model-{r}", files)
    loop = asyncio.get_running_loop()
    inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    loop.add_reader(conn.fileno(), lambda: inbox.put_nowait(conn.recv()))
    policy_keys = [{"name": "bench", "publicKey": key.public_pem.decode()}]
    controllers: asyncio.Task[None] | None = None
    try:
        async with serve_emulator(crds=repo_crds(), keep_alive=True) as kube:
            kube.create_namespace(NS)
            known_namespaces = {NS}
            kube.create_object(
                {
                    "apiVersion": "openmodel.io/v1alpha1",
                    "kind": "ModelTrustPolicy",
                    "metadata": {"name": POLICY},
                    "spec": {
                        "mode": "Enforce",
                        "sources": {"endpoints": {"allow": [hub.url]}},
                        "signature": {"required": True, "keys": policy_keys},
                        "licenses": {"allowOSIApproved": True},
                    },
                }
            )
            conn.send({"url": kube.base_url, "hub": hub.url})
            while True:
                command = await inbox.get()
                op = command["op"]
                if op == "stop":
                    break
                if op == "seed":
                    spread = command.get("namespaces", 1)
                    names = [
                        f"{_model_namespace(i, spread)}/{command['prefix']}{i:05d}" for i in range(command["count"])
                    ]
                    for namespace in sorted({name.split("/")[0] for name in names} - known_namespaces):
                        kube.create_namespace(namespace)
                        known_namespaces.add(namespace)
                    for i, name in enumerate(names):
                        kube.create_object(_openmodel(name, i % repos, hub.url))
                    conn.send({"names": names})
                elif op == "unrelated":
                    conn.send(_create_unrelated(kube, command["count"], command["namespaces"]))
                elif op == "policy":  # a benign change: one more trusted key; every model is decided again
                    extra = {"name": f"extra-{len(policy_keys)}", "publicKey": new_key().public_pem.decode()}
                    policy_keys.append(extra)
                    patch = {"spec": {"signature": {"keys": policy_keys}}}
                    kube.patch_object("modeltrustpolicies", None, POLICY, patch)
                    policy = kube.get("modeltrustpolicies", None, POLICY) or {}
                    conn.send({"generation": policy["metadata"]["generation"]})
                elif op == "await":
                    conn.send(await _await_goals(kube, command["goals"], command["t0"], command["timeout"]))
                elif op == "settle":
                    conn.send(await _settle(kube, hub, command["t0"], command["quiet"], command["timeout"]))
                elif op == "reset":
                    kube.reset_counters()
                    conn.send({"ok": True})
                elif op == "requests":
                    conn.send({"total": kube.requests_total})
                elif op == "controllers":  # play the Job and Deployment controllers from now on (--serve)
                    controllers = asyncio.create_task(_play_controllers(kube))
                    conn.send({"ok": True})
    finally:
        if controllers is not None:
            controllers.cancel()
        loop.remove_reader(conn.fileno())
        hub.stop()
        import shutil

        shutil.rmtree(work, ignore_errors=True)
    conn.send({"op": "stopped"})


async def _play_controllers(kube: Any) -> None:
    """The Job controller completes every operator-made Job and the Deployment controller makes every
    operator-made Deployment available (what a kubelet would do), so that models reach Ready and the operator
    holds what a serving model costs: its Deployment and Service too. Scans the emulator's storage every 2 s."""
    jobs, deployments = kube._def("jobs").key, kube._def("deployments").key
    while True:
        for (kind_key, namespace, name), obj in list(kube._objects.items()):
            if obj.deleted or kind_key not in (jobs, deployments):
                continue
            meta, status = obj.raw.get("metadata") or {}, obj.raw.get("status") or {}
            if (meta.get("labels") or {}).get("app.kubernetes.io/managed-by") != "openmodel-operator":
                continue
            if kind_key == jobs and not status.get("conditions"):
                kube.complete_job(namespace, name)
            elif kind_key == deployments and (
                status.get("observedGeneration") != meta.get("generation")
                or status.get("availableReplicas") != (obj.raw.get("spec") or {}).get("replicas", 1)
            ):
                kube.mark_deployment_available(namespace, name)
        await asyncio.sleep(2.0)


def _model_namespace(i: int, spread: int) -> str:
    """The namespace of the i-th seeded model: ``bench``, or one of ``bench-0000`` ... over ``spread``."""
    return NS if spread <= 1 else f"{NS}-{i % spread:04d}"


def _split(name: str) -> tuple[str, str]:
    """``namespace/name`` (a seeded model) or a bare name in ``bench``."""
    namespace, _, bare = name.rpartition("/")
    return namespace or NS, bare


def _openmodel(name: str, repo: int, hub_url: str) -> dict[str, Any]:
    namespace, name = _split(name)
    return {
        "apiVersion": "openmodel.io/v1alpha1",
        "kind": "OpenModel",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"source": {"uri": f"hf://bench/model-{repo}", "endpoint": hub_url}},
    }


def _create_unrelated(kube: Any, count: int, namespaces: int) -> dict[str, Any]:
    """``count`` objects nobody asked the operator about: half ConfigMaps, half Jobs, over ``namespaces``."""
    started = time.monotonic()
    for n in range(namespaces):
        kube.create_namespace(f"other-{n:03d}")
    for i in range(count):
        namespace = f"other-{i % namespaces:03d}"
        if i % 2:
            kube.create_object(
                {
                    "apiVersion": "batch/v1",
                    "kind": "Job",
                    "metadata": {"name": f"job-{i:06d}", "namespace": namespace, "labels": {"app": "batch"}},
                    "spec": {
                        "template": {
                            "spec": {
                                "restartPolicy": "Never",
                                "containers": [{"name": "c", "image": "busybox:1.36", "command": ["true"]}],
                            }
                        }
                    },
                }
            )
        else:
            kube.create_object(
                {
                    "apiVersion": "v1",
                    "kind": "ConfigMap",
                    "metadata": {"name": f"cm-{i:06d}", "namespace": namespace, "labels": {"app": "settings"}},
                    "data": {"settings.yaml": "key: " + "v" * 400},
                }
            )
    return {"created": count, "seconds": time.monotonic() - started}


def _model_state(kube: Any, name: str, rd: Any = None) -> dict[str, Any]:
    namespace, name = _split(name)
    return (kube._live(rd or kube._def("openmodels"), namespace, name) or {}).get("status") or {}


def _reached(status: dict[str, Any], goal: dict[str, Any]) -> bool:
    if goal["until"] == "ready":
        return bool(status.get("phase") == "Ready")
    if goal["until"] == "trusted":
        return any(c.get("type") == "Trusted" and c.get("status") == "True" for c in status.get("conditions") or [])
    # every policy record of the model names the policy at this generation (or later): it was decided again
    records = (status.get("provenance") or {}).get("policies") or []
    return any(r.get("name") == POLICY and (r.get("generation") or 0) >= goal["generation"] for r in records)


async def _await_goals(kube: Any, goals: dict[str, dict[str, Any]], t0: float, timeout: float) -> dict[str, Any]:
    """For each goal ({names, until, generation?}): when each model reached it, in seconds since ``t0``."""
    times: dict[str, dict[str, float]] = {goal: {} for goal in goals}
    rd = kube._def("openmodels")  # resolved once: the emulator's name lookup scans every kind
    while True:
        now = time.monotonic() - t0
        for goal, spec in goals.items():
            done = times[goal]
            for name in spec["names"]:
                if name not in done and _reached(_model_state(kube, name, rd), spec):
                    done[name] = now
        if all(len(times[g]) == len(goals[g]["names"]) for g in goals) or now > timeout:
            break
        # every 0.1 s, or less often for many models: the polling must not take the operator's CPU
        await asyncio.sleep(max(0.1, sum(len(g["names"]) for g in goals.values()) / 20_000))
    return {goal: sorted(done.values()) for goal, done in times.items()}


async def _settle(kube: Any, hub: Any, t0: float, quiet: float, timeout: float) -> dict[str, Any]:
    """Wait until neither the API nor the Hub got a request for ``quiet`` seconds; the requests since reset."""

    def activity() -> tuple[int, int]:
        return kube.requests_total, len(hub.request_log)

    quiet_since, last = time.monotonic(), activity()
    while time.monotonic() - quiet_since < quiet and time.monotonic() - t0 < timeout:
        await asyncio.sleep(0.2)
        if activity() != last:
            quiet_since, last = time.monotonic(), activity()
    requests = dict(kube.request_counts)
    return {
        "quiescent_s": quiet_since - t0,
        "requests_total": sum(v for k, v in requests.items() if k != "discovery"),
        "breakdown": _summary(kube.request_log, 0),
    }


def catchup_operator_main(conn: Conn, url: str, concurrency: int, label: str, profile: bool = False) -> None:
    """One operator lifetime: production settings, our /healthz and Kopf's in-loop one (the baseline).

    ``profile``: cProfile the whole lifetime (the event loop; not the examination threads) and write
    ``bench/results/operator-<label>-profile.txt``."""
    profiler = cProfile.Profile() if profile else None
    try:
        if profiler is not None:
            profiler.enable()
        asyncio.run(_catchup_operator(conn, url, concurrency, label))
        if profiler is not None:
            profiler.disable()
            _write_profile(profiler, f"operator-{label}-profile.txt")
    except BaseException:
        import traceback

        conn.send({"op": "error", "error": traceback.format_exc()})
        raise


async def _catchup_operator(conn: Conn, url: str, concurrency: int, label: str) -> None:
    import socket

    from openmodel_operator.controller import reconciler as reconciler_module
    from openmodel_operator.controller.health import Health
    from openmodel_operator.controller.logs import configure_logging
    from openmodel_operator.controller.settings import OperatorSettings

    configure_logging(False, logging.INFO)
    benchlib.RESULTS.mkdir(parents=True, exist_ok=True)
    root = logging.getLogger()
    root.handlers[0].setStream(open(benchlib.RESULTS / f"operator-{label}.log", "w"))  # type: ignore[attr-defined]  # noqa: SIM115
    counter = _CountingHandler()
    root.addHandler(counter)
    imported = rss_mb()
    gc_timer = _GcTimer()

    # the end of each model's first reconcile pass in this lifetime: "caught up" is every model having had one
    first_pass: dict[tuple[str | None, str | None], float] = {}
    original = getattr(reconciler_module.Reconciler, "reconcile", None)
    if original is not None:

        async def reconcile(self: Any, body: Any, *args: Any, **kwargs: Any) -> Any:
            try:
                return await original(self, body, *args, **kwargs)
            finally:
                meta = body.get("metadata") or {}
                first_pass.setdefault((meta.get("namespace"), meta.get("name")), time.monotonic())

        reconciler_module.Reconciler.reconcile = reconcile  # type: ignore[method-assign]

    def free_port() -> int:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            return int(sock.getsockname()[1])

    settings = OperatorSettings(
        resync_interval=30.0,
        reverify_interval=3600.0,
        max_concurrent_verifications=concurrency,
        metrics_port=0,
        health_port=0,
        operator_image="openmodel-operator:bench",
        vllm_image="vllm:bench",
    )
    health = Health()
    ours, theirs = free_port(), free_port()
    server = health.serve("127.0.0.1", ours)
    heartbeat = asyncio.create_task(health.heartbeat())
    # Kopf's own liveness endpoint, in the event loop: the baseline /healthz is compared with
    task, stop_flag, _ = start_operator(url, settings, health.ready, f"http://127.0.0.1:{theirs}/healthz")
    while not health.ready.is_set():
        await asyncio.sleep(0.01)
    conn.send({"op": "ready", "at": time.monotonic(), "health_port": ours, "kopf_health_port": theirs})
    cpu_start = _cpu_seconds()
    gc_timer.reset()
    loop = asyncio.get_running_loop()
    inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    loop.add_reader(conn.fileno(), lambda: inbox.put_nowait(conn.recv()))
    while True:
        command = await inbox.get()
        if command["op"] == "passes":
            conn.send({"count": len(first_pass), "last": max(first_pass.values(), default=None)})
        elif command["op"] == "usage":
            gc.collect()
            conn.send({"cpu_s": _cpu_seconds(), "rss_mib": rss_mb()})
        elif command["op"] == "stop":
            break
    loop.remove_reader(conn.fileno())
    result = {
        "imported_mib": imported,
        "peak_rss_mib": peak_rss_mb(),
        "cpu_s": _cpu_seconds() - cpu_start,
        "gc_s": gc_timer.seconds,
        "gc_full": gc_timer.full,
        "first_passes": len(first_pass),
        "first_pass_last": max(first_pass.values(), default=None),
        "warnings": dict(counter.counts.most_common(10)),
        "examinations": dict(counter.examinations.most_common()),
    }
    stop_flag.set()
    try:
        await asyncio.wait_for(asyncio.shield(task), timeout=60)
    except TimeoutError:
        task.cancel()
    heartbeat.cancel()
    server.close()
    conn.send({"op": "stopped", **result})


class _GcTimer:
    """Time the cyclic garbage collector spends, so a profile's missing seconds can be told apart from ours."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self.full = 0
        self._started = 0.0
        gc.callbacks.append(self._callback)

    def reset(self) -> None:
        self.seconds, self.full = 0.0, 0

    def _callback(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        else:
            self.seconds += time.perf_counter() - self._started
            self.full += info["generation"] == 2


class _Prober:
    """Polls both /healthz endpoints every 0.25 s from threads of this process: latency per answer."""

    def __init__(self, ports: dict[str, int]) -> None:
        import threading

        self.samples: dict[str, list[tuple[float, float, int]]] = {name: [] for name in ports}
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._poll, args=(name, port), daemon=True) for name, port in ports.items()
        ]
        for thread in self._threads:
            thread.start()

    def _poll(self, name: str, port: int) -> None:
        import urllib.error
        import urllib.request

        while not self._stop.is_set():
            started = time.monotonic()
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=30) as rsp:
                    code = rsp.status
            except urllib.error.HTTPError as exc:
                code = exc.code
            except OSError:
                code = 0
            self.samples[name].append((started, time.monotonic() - started, code))
            self._stop.wait(0.25)

    def stop(self) -> dict[str, dict[str, float]]:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=35)
        out = {}
        for name, samples in self.samples.items():
            latencies = sorted(latency for _, latency, _ in samples)
            out[name] = {
                "probes": len(samples),
                "median_s": median(latencies) if latencies else float("nan"),
                "p99_s": _quantile(latencies, 0.99),
                "max_s": latencies[-1] if latencies else float("nan"),
                "failed": sum(1 for _, latency, code in samples if code != 200 or latency > 5.0),
            }
        return out


class _Lifetime:
    """One operator process: spawned, ready, asked, stopped."""

    def __init__(self, context: Any, url: str, concurrency: int, label: str, profile: bool = False) -> None:
        self.conn, theirs = context.Pipe()
        self.spawned = time.monotonic()
        self.process = context.Process(target=catchup_operator_main, args=(theirs, url, concurrency, label, profile))
        self.process.start()
        hello = _checked(self.conn.recv())
        self.ready_s = hello["at"] - self.spawned
        self.prober = _Prober({"ours": hello["health_port"], "kopf": hello["kopf_health_port"]})

    def passes(self) -> dict[str, Any]:
        self.conn.send({"op": "passes"})
        return _checked(self.conn.recv())

    def wait_for_passes(self, count: int, timeout: float) -> float | None:
        """Seconds from spawn until ``count`` models had their first pass (None: not within ``timeout``)."""
        while time.monotonic() - self.spawned < timeout:
            answer = self.passes()
            if answer["count"] >= count:
                return float(answer["last"] - self.spawned)
            time.sleep(0.2)
        return None

    def usage(self) -> dict[str, float]:
        """CPU seconds used so far and RSS now (after a collection)."""
        self.conn.send({"op": "usage"})
        return _checked(self.conn.recv())

    def stop(self) -> dict[str, Any]:
        health = self.prober.stop()
        self.conn.send({"op": "stop"})
        result = _checked(self.conn.recv())
        self.process.join(timeout=60)
        return {**result, "ready_s": self.ready_s, "healthz": health}


def _ask(conn: Conn, command: dict[str, Any]) -> dict[str, Any]:
    conn.send(command)
    return _checked(conn.recv())


def _all_at(times: list[float], count: int) -> float | None:
    return times[-1] if len(times) == count else None


class _Skipped(Exception):
    """--skip-burst: the baseline phase is not run."""


def run_catchup(args: argparse.Namespace) -> dict[str, Any]:
    """Burst baseline (cluster 1), then cold start, restart, restart with unrelated objects (cluster 2)."""
    context = multiprocessing.get_context("spawn")
    n, timeout = args.models, args.timeout
    phases: dict[str, Any] = {}

    def cluster() -> tuple[Any, Conn, str]:
        ours, theirs = context.Pipe()
        process = context.Process(target=catchup_cluster_main, args=(theirs, args.repos, args.hub_latency_ms / 1000))
        process.start()
        return process, ours, _checked(ours.recv())["url"]

    def close(process: Any, conn: Conn) -> None:
        conn.send({"op": "stop"})
        conn.recv()
        process.join(timeout=30)

    # 1. baseline: the burst (the operator is up, then N models are created at once)
    process, conn, url = cluster() if not args.skip_burst else (None, None, "")
    try:
        if process is None or conn is None:
            raise _Skipped
        life = _Lifetime(context, url, args.concurrency, "burst")
        _ask(conn, {"op": "reset"})
        t0 = time.monotonic()
        names = _ask(conn, {"op": "seed", "prefix": "m-", "count": n, "namespaces": args.model_namespaces})["names"]
        goals = {"trusted": {"names": names, "until": "trusted"}}
        trusted = _ask(conn, {"op": "await", "goals": goals, "t0": t0, "timeout": timeout})["trusted"]
        settled = _ask(conn, {"op": "settle", "t0": t0, "quiet": 3.0, "timeout": timeout})
        phases["burst"] = {"all_trusted_s": _all_at(trusted, n), **settled, "operator": life.stop()}
        _progress("burst", phases["burst"])
    except _Skipped:
        pass
    finally:
        if process is not None and conn is not None:
            close(process, conn)

    # 2. a fresh cluster: N models exist before the operator ever starts (cold start)
    process, conn, url = cluster()
    try:
        names = _ask(conn, {"op": "seed", "prefix": "m-", "count": n, "namespaces": args.model_namespaces})["names"]
        if args.serve:
            _ask(conn, {"op": "controllers"})
        _ask(conn, {"op": "reset"})
        life = _Lifetime(context, url, args.concurrency, "cold")
        t0 = life.spawned
        goals = {"trusted": {"names": names, "until": "ready" if args.serve else "trusted"}}
        trusted = _ask(conn, {"op": "await", "goals": goals, "t0": t0, "timeout": timeout})["trusted"]
        passes = life.wait_for_passes(n, timeout)
        settled = _ask(conn, {"op": "settle", "t0": t0, "quiet": 3.0, "timeout": timeout})
        phases["cold"] = {
            "all_trusted_s": _all_at(trusted, n),
            "all_first_pass_s": passes,
            **settled,
            "operator": life.stop(),
        }
        _progress("cold", phases["cold"])

        # 3a. a restart with nothing changed: the catch-up alone (every model checked, nothing to write)
        _ask(conn, {"op": "reset"})
        life = _Lifetime(context, url, args.concurrency, "restart-quiet", profile=args.profile)
        passes = life.wait_for_passes(n, timeout)
        settled = _ask(conn, {"op": "settle", "t0": life.spawned, "quiet": 3.0, "timeout": timeout})
        phases["restart_quiet"] = {"all_first_pass_s": passes, **settled, "operator": life.stop()}
        _progress("restart-quiet", phases["restart_quiet"])

        # 3./4. restarts with N models: without unrelated objects, then with them; a model created and a policy
        # change made just after each restart
        for label, unrelated in (("restart", 0), ("restart-unrelated", args.unrelated)):
            if unrelated:
                phases["unrelated_objects"] = _ask(
                    conn, {"op": "unrelated", "count": unrelated, "namespaces": args.unrelated_namespaces}
                )
            _ask(conn, {"op": "reset"})
            life = _Lifetime(context, url, args.concurrency, label, profile=args.profile)
            t0 = life.spawned
            probe = _ask(conn, {"op": "seed", "prefix": f"late-{label}-", "count": 1})["names"]
            generation = _ask(conn, {"op": "policy"})["generation"]
            goals = {
                "new_model": {"names": probe, "until": "trusted"},
                "policy": {"names": names, "until": "generation", "generation": generation},
            }
            reached = _ask(conn, {"op": "await", "goals": goals, "t0": t0, "timeout": timeout})
            passes = life.wait_for_passes(n + 1, timeout)
            settled = _ask(conn, {"op": "settle", "t0": t0, "quiet": 3.0, "timeout": timeout})
            # idle: one resync interval (and a little) with nothing changing; CPU, requests and memory
            before, requests_before = life.usage(), _ask(conn, {"op": "requests"})["total"]
            time.sleep(args.idle_window)
            after, requests_after = life.usage(), _ask(conn, {"op": "requests"})["total"]
            idle = {
                "window_s": args.idle_window,
                "cpu_fraction": (after["cpu_s"] - before["cpu_s"]) / args.idle_window,
                "requests": requests_after - requests_before,
                "rss_mib": after["rss_mib"],
            }
            phases[label] = {
                "idle": idle,
                "unrelated": unrelated,
                "new_model_trusted_s": _all_at(reached["new_model"], 1),
                "policy_all_s": _all_at(reached["policy"], n),
                "policy_p50_s": _quantile(reached["policy"], 0.5),
                "all_first_pass_s": passes,
                **settled,
                "operator": life.stop(),
            }
            _progress(label, phases[label])
    finally:
        close(process, conn)
    phases["restart_unrelated"] = phases.pop("restart-unrelated")
    return phases


def _progress(label: str, phase: dict[str, Any]) -> None:
    """One line per phase on stderr, so that a long run shows where it is."""
    shown = {k: round(v, 1) if isinstance(v, float) else v for k, v in phase.items() if k.endswith("_s")}
    print(f"[catchup] {label}: {shown}", file=sys.stderr, flush=True)


def _ratio(a: float | None, b: float | None) -> str:
    return f"{a / b:.2f}x" if a and b else "-"


def report_catchup(args: argparse.Namespace, phases: dict[str, Any], load: tuple[float, float]) -> None:
    def s(value: float | None) -> str:
        return f"{value:.1f} s" if value is not None else "not reached"

    burst, cold, restart, crowded = phases.get("burst"), phases["cold"], phases["restart"], phases["restart_unrelated"]
    n = args.models
    spread = f" over {args.model_namespaces} namespaces" if args.model_namespaces > 1 else ""
    rows = [
        (
            "models",
            f"{n}",
            f"{args.repos} signed repos{spread}; {args.unrelated} unrelated ConfigMaps+Jobs "
            f"over {args.unrelated_namespaces} namespaces in phase 4",
        ),
        (
            "1 burst: all Trusted (baseline)",
            s(burst["all_trusted_s"]) if burst else "skipped",
            "N models created at once, operator up",
        ),
        ("2 cold start: operator ready", s(cold["operator"]["ready_s"]), "from the spawn of a new process"),
        (
            "2 cold start: every model had a pass",
            s(cold["all_first_pass_s"]),
            "N models existed before the operator started",
        ),
        (
            "2 cold start: all Ready" if args.serve else "2 cold start: all Trusted",
            s(cold["all_trusted_s"]),
            f"{_ratio(cold['all_trusted_s'], burst['all_trusted_s'])} the burst" if burst else "",
        ),
        (
            "2 cold start: operator CPU / peak RSS",
            f"{cold['operator']['cpu_s']:.1f} s",
            f"{cold['operator']['peak_rss_mib']:.0f} MiB; {cold['requests_total']} API requests; "
            f"GC {cold['operator']['gc_s']:.1f} s ({cold['operator']['gc_full']} full)",
        ),
    ]
    quiet = phases.get("restart_quiet")
    if quiet is not None:
        rows += [
            ("3a restart, nothing changed: every model had a pass", s(quiet["all_first_pass_s"]), "from the spawn"),
            (
                "3a restart, nothing changed: operator CPU / peak RSS",
                f"{quiet['operator']['cpu_s']:.1f} s",
                f"{quiet['operator']['peak_rss_mib']:.0f} MiB; {quiet['requests_total']} API requests",
            ),
        ]
    for label, phase in (("3 restart", restart), ("4 restart + unrelated", crowded)):
        rows += [
            (f"{label}: operator ready", s(phase["operator"]["ready_s"]), ""),
            (f"{label}: every model had a pass", s(phase["all_first_pass_s"]), "catch-up (from spawn)"),
            (f"{label}: new model Trusted", s(phase["new_model_trusted_s"]), "created once ready; from the spawn"),
            (
                f"{label}: policy change on every model",
                s(phase["policy_all_s"]),
                f"p50 {phase['policy_p50_s']:.1f} s; changed once ready; from the spawn",
            ),
            (
                f"{label}: operator CPU / peak RSS",
                f"{phase['operator']['cpu_s']:.1f} s",
                f"{phase['operator']['peak_rss_mib']:.0f} MiB; {phase['requests_total']} API requests; "
                f"GC {phase['operator']['gc_s']:.1f} s ({phase['operator']['gc_full']} full)",
            ),
            (
                f"{label}: idle CPU / RSS",
                f"{phase['idle']['cpu_fraction'] * 100:.1f} %",
                f"of one core over {phase['idle']['window_s']:.0f} s after settling (a resync included); "
                f"{phase['idle']['requests']} API requests; RSS {phase['idle']['rss_mib']:.0f} MiB",
            ),
        ]
    rows += [
        (
            "unrelated objects: restart catch-up",
            _ratio(crowded["all_first_pass_s"], restart["all_first_pass_s"]),
            "phase 4 / phase 3",
        ),
        (
            "unrelated objects: policy change",
            _ratio(crowded["policy_all_s"], restart["policy_all_s"]),
            "phase 4 / phase 3",
        ),
    ]
    for label, phase in (("burst", burst), ("cold", cold), ("restart", restart), ("restart+unrelated", crowded)):
        if phase is None:
            continue
        ours, kopf = phase["operator"]["healthz"]["ours"], phase["operator"]["healthz"]["kopf"]
        rows.append(
            (
                f"/healthz max latency, {label}",
                f"{ours['max_s'] * 1000:.0f} ms",
                f"Kopf's in-loop endpoint {kopf['max_s'] * 1000:.0f} ms (p99 {kopf['p99_s'] * 1000:.0f} ms, "
                f"{kopf['failed']} of {kopf['probes']} over 5 s or failed; ours {ours['failed']} of {ours['probes']})",
            )
        )
    for label, phase in (("cold", cold), ("restart", restart), ("restart+unrelated", crowded)):
        warnings = phase["operator"]["warnings"]
        if warnings:
            rows.append((f"warnings, {label}", f"{sum(warnings.values())}", next(iter(warnings))))
    rows.append(("load average start / end", f"{load[0]:.1f} / {load[1]:.1f}", "other work on the machine"))
    print_table(f"bench_operator --scenario catchup on {os.cpu_count()} CPUs", rows)
    path = benchlib.write_json(
        "operator-catchup.json",
        {
            "command": "bench/bench_operator.py " + " ".join(sys.argv[1:]),
            "machine": benchlib.machine(),
            "loadavg": {"start": load[0], "end": load[1]},
            "settings": {
                "models": n,
                "repos": args.repos,
                "unrelated": args.unrelated,
                "unrelated_namespaces": args.unrelated_namespaces,
                "concurrency": args.concurrency,
                "hub_latency_ms": args.hub_latency_ms,
                "model_namespaces": args.model_namespaces,
                "serve": args.serve,
                "resync_interval": 30.0,
            },
            **phases,
        },
    )
    print(f"\nwritten {path.relative_to(benchlib.REPO)}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--models", type=int, default=500, help="OpenModels created at once")
    parser.add_argument("--repos", type=int, default=5, help="distinct signed models on the Hub stand-in")
    parser.add_argument("--concurrency", type=int, default=16, help="OperatorSettings.max_concurrent_verifications")
    parser.add_argument("--timeout", type=float, default=180.0, help="give up waiting after this many seconds")
    parser.add_argument("--idle", type=float, default=5.0, help="seconds of idle request counting afterwards")
    parser.add_argument(
        "--hub-latency-ms", type=float, default=0.0, help="delay every Hub request (a remote Hub's round trip)"
    )
    parser.add_argument("--profile", action="store_true", help="cProfile the event loop thread")
    parser.add_argument(
        "--tracemalloc",
        type=int,
        default=0,
        metavar="FRAMES",
        help="trace allocations from the creates on (FRAMES deep, slow) and write the top 25 tracebacks held at "
        "the end to bench/results/operator-tracemalloc.txt",
    )
    parser.add_argument("--log-format", choices=["text", "json"], default="text", help="operator log format")
    parser.add_argument(
        "--scenario",
        choices=["burst", "catchup"],
        default="burst",
        help="burst: N models created at once (default); catchup: the burst as baseline, then a cold start with "
        "N existing models, a restart, and a restart with --unrelated objects in the cluster",
    )
    parser.add_argument("--unrelated", type=int, default=2000, help="catchup: unrelated ConfigMaps + Jobs")
    parser.add_argument("--unrelated-namespaces", type=int, default=20, help="catchup: namespaces they are in")
    parser.add_argument(
        "--model-namespaces", type=int, default=1, help="catchup: namespaces the models are spread over (bench-NNNN)"
    )
    parser.add_argument(
        "--idle-window", type=float, default=35.0, help="catchup: seconds of idle measurement after each restart"
    )
    parser.add_argument(
        "--serve",
        action="store_true",
        help="catchup: play the Job and Deployment controllers, so models reach Ready (cold start waits for Ready)",
    )
    parser.add_argument(
        "--skip-burst", action="store_true", help="catchup: no burst baseline (a large run: cold start and restarts)"
    )
    args = parser.parse_args(argv)
    if args.scenario == "catchup":
        load_before = os.getloadavg()[0]
        phases = run_catchup(args)
        report_catchup(args, phases, (load_before, os.getloadavg()[0]))
        return 0

    rss: dict[str, float] = {"start": rss_mb()}
    context = multiprocessing.get_context("spawn")
    ours, theirs = context.Pipe()
    cluster = context.Process(
        target=cluster_main, args=(theirs, args.repos, args.timeout, 5.0, args.idle, args.hub_latency_ms / 1000)
    )
    cluster.start()
    load_start = os.getloadavg()
    try:
        hello = _checked(ours.recv())
        # The operator's own imports, measured: everything before this line is the harness.
        import kopf  # noqa: F401

        import openmodel_operator.controller.handlers  # noqa: F401

        counter = _setup_logging(args.log_format == "json")
        rss["imported"] = rss_mb()
        result = asyncio.run(operate(ours, hello["url"], args, rss, counter))
        ours.send({"op": "stop"})
        ours.recv()
    finally:
        cluster.join(timeout=30)
        if cluster.is_alive():
            cluster.terminate()
    report(args, result, rss, counter, load_start, os.getloadavg())
    return 0


def _quantile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    return values[min(len(values) - 1, int(q * len(values)))]


def report(
    args: argparse.Namespace,
    result: dict[str, Any],
    rss: dict[str, float],
    counter: _CountingHandler,
    load_start: tuple[float, float, float],
    load_end: tuple[float, float, float],
) -> None:
    n = args.models
    trusted, pulling = result["trusted_s"], result["pulling_s"]
    all_trusted = trusted[-1] if len(trusted) == n else None
    all_pulling = pulling[-1] if len(pulling) == n else None
    per_model = result["requests_total"] / n
    ok = {True: "MET", False: "NOT MET"}
    top = list(result["breakdown"].items())[:8]
    rows = [
        (
            "models created at once",
            f"{n}",
            f"{args.repos} signed repos, Hub latency {args.hub_latency_ms:.0f} ms, "
            f"creates took {result['create_s']:.2f} s",
        ),
        (
            "all Trusted=True",
            f"{all_trusted:.1f} s" if all_trusted is not None else f"{len(trusted)}/{n}",
            f"p50 {_quantile(trusted, 0.5):.1f} s, p90 {_quantile(trusted, 0.9):.1f} s; target < 60 s: "
            + ok[all_trusted is not None and all_trusted < 60],
        ),
        (
            "all phase Pulling",
            f"{all_pulling:.1f} s" if all_pulling is not None else f"{len(pulling)}/{n}",
            f"p50 {_quantile(pulling, 0.5):.1f} s (ConfigMap+PVC+Job applied)",
        ),
        ("last request of the burst", f"{result['quiescent_s']:.1f} s", "then no API or Hub request for 5 s"),
        ("final phases", "", ", ".join(f"{k}={v}" for k, v in result["phases"].items())),
        ("throughput", f"{n / all_trusted:.1f} /s" if all_trusted else "-", "models verified per second"),
        (
            "operator RSS before start",
            f"{rss['imported']:.0f} MiB",
            f"after imports; bare interpreter {rss['start']:.0f}",
        ),
        ("operator RSS ready (0 models)", f"{rss['ready']:.0f} MiB", f"ready after {rss['ready_s']:.1f} s"),
        ("operator RSS at end", f"{rss['end']:.0f} MiB", f"{rss['end_gc']:.0f} MiB after gc.collect()"),
        (
            "operator peak RSS",
            f"{rss['peak']:.0f} MiB",
            f"delta vs before start {rss['peak'] - rss['imported']:.0f} MiB; target < 300 MB: "
            + ok[rss["peak"] * 2**20 / 1e6 < 300],
        ),
        ("operator CPU", f"{result['operator_cpu_s']:.1f} s", "user+sys of this process during the run"),
        ("cluster (emulator+hub) CPU", f"{result['cluster_cpu_s']:.1f} s", "same 2 cores"),
        ("API requests", f"{result['requests_total']}", f"{per_model:.1f} per model (discovery excluded)"),
        *[(f"  {what}", f"{count}", f"{count / n:.2f} per model") for what, count in top],
        ("Hub requests", f"{result['hub_requests']}", f"{result['hub_requests'] / n:.1f} per model"),
        (
            "trust stage runs",
            f"{sum(counter.examinations.values())}",
            f"{sum(counter.examinations.values()) / n:.2f} per model; due: "
            + ", ".join(f"{k} {v}" for k, v in counter.examinations.most_common()),
        ),
        (
            "verifications (examine calls)",
            f"{result['verification_duration_seconds_count']:.0f}",
            f"{result['verification_duration_seconds_count'] / n:.2f} per model (operator metric; "
            "a re-check of a pinned commit also examines the branch head)",
        ),
        (
            "mean examination time",
            f"{(result['verification_duration_seconds_mean'] or 0) * 1000:.0f} ms",
            f"inside the semaphore of {args.concurrency} (operator metric); "
            f"mean reconcile pass {(result['reconcile_duration_seconds_mean'] or 0) * 1000:.0f} ms",
        ),
        (
            "status patches per model",
            "{min}/{median}/{max}".format(**result["status_patches_per_model"]),
            "min/median/max",
        ),
        (
            "API requests while idle",
            f"{result['idle_requests']}",
            f"in {result['idle_s']:.0f} s after settling; per 5 s: {result['idle_windows_5s']}",
        ),
        ("Events posted", f"{result['events']}", f"{result['events'] / n:.1f} per model"),
        ("  Events by reason", "", ", ".join(f"{k} {v}" for k, v in result["event_reasons"].items())),
        (
            "operator warnings/errors logged",
            f"{result['warnings_before_stop']}",
            f"before stop; {sum(counter.counts.values()) - result['warnings_before_stop']} more while stopping",
        ),
        ("operator stop", f"{result['stop_s']:.1f} s", "from the stop flag until kopf.operator returned"),
        ("load average start / end", f"{load_start[0]:.1f} / {load_end[0]:.1f}", "other work on the machine"),
    ]
    print_table(f"bench_operator on {os.cpu_count()} CPUs", rows)
    for line, count in counter.counts.most_common(5):
        print(f"  {count} x {line}")
    path = benchlib.write_json(
        "operator.json",
        {
            "command": "bench/bench_operator.py " + " ".join(sys.argv[1:]),
            "machine": benchlib.machine(),
            "loadavg": {"start": load_start, "end": load_end},
            "settings": {
                "models": n,
                "repos": args.repos,
                "resync_interval": 30.0,
                "reverify_interval": 3600.0,
                "max_concurrent_verifications": args.concurrency,
                "hub_latency_ms": args.hub_latency_ms,
            },
            "all_trusted_s": all_trusted,
            "all_pulling_s": all_pulling,
            "trusted_p50_s": median(trusted) if trusted else None,
            "rss_mib": rss,
            "requests_per_model": per_model,
            "warnings": dict(counter.counts.most_common(20)),
            "examinations": dict(counter.examinations.most_common()),
            "targets": {"all_trusted_s": 60, "peak_rss_mb": 300},
            **{k: v for k, v in result.items() if k not in ("trusted_s", "pulling_s")},
        },
    )
    print(f"\nwritten {path.relative_to(benchlib.REPO)}")


if __name__ == "__main__":
    raise SystemExit(main())
