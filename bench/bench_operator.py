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
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import cProfile
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
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import benchlib
from benchlib import median, peak_rss_mb, print_table, rss_mb

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
    import kopf

    from openmodel_operator.controller.handlers import build_registry
    from openmodel_operator.controller.kube import Kube, client_for
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
    registry = build_registry(settings, lambda: Kube(client_for(url)))

    @kopf.on.login(registry=registry)
    def login(**_: Any) -> kopf.ConnectionInfo:
        return kopf.ConnectionInfo(server=url, insecure=True)

    stop_flag, ready_flag = asyncio.Event(), asyncio.Event()
    task = asyncio.create_task(
        kopf.operator(
            registry=registry,
            settings=kopf.OperatorSettings(),
            standalone=True,
            clusterwide=True,
            stop_flag=stop_flag,
            ready_flag=ready_flag,
        )
    )
    started = time.monotonic()
    await asyncio.wait_for(ready_flag.wait(), timeout=30)
    await asyncio.sleep(1.0)  # initial listings and watches of every resource
    rss["ready"] = rss_mb()
    rss["ready_s"] = time.monotonic() - started
    cpu_before = _cpu_seconds()
    profiler = cProfile.Profile() if args.profile else None
    if profiler is not None:
        profiler.enable()
    conn.send({"op": "create", "models": args.models})
    result = await _recv(conn)
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


def _write_profile(profiler: cProfile.Profile) -> None:
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out)
    stats.sort_stats("tottime").print_stats(40)
    stats.sort_stats("cumulative").print_stats(40)
    benchlib.RESULTS.mkdir(parents=True, exist_ok=True)
    (benchlib.RESULTS / "operator-profile.txt").write_text(out.getvalue())


def _setup_logging(json_logs: bool) -> _CountingHandler:
    from openmodel_operator.controller.logs import configure_logging

    configure_logging(json_logs, logging.INFO)  # as `openmodel run`
    root = logging.getLogger()
    benchlib.RESULTS.mkdir(parents=True, exist_ok=True)
    root.handlers[0].setStream(open(benchlib.RESULTS / "operator.log", "w"))  # type: ignore[attr-defined]  # noqa: SIM115
    counter = _CountingHandler()
    root.addHandler(counter)
    return counter


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
    parser.add_argument("--log-format", choices=["text", "json"], default="text", help="operator log format")
    args = parser.parse_args(argv)

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
        ("operator RSS at end", f"{rss['end']:.0f} MiB", ""),
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
