"""Shared helpers of the benchmarks: import paths, timing, memory, output.

The benchmarks reuse the test helpers (``tests/hubstub.py``, ``tests/signing_fixtures.py``,
``tests/kube_emulator/``) so that they exercise the same stand-ins the tests trust. This module
imports none of them (the operator benchmark measures the memory of a process that must not load them).
"""

from __future__ import annotations

import json
import os
import pathlib
import resource
import statistics
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any

REPO = pathlib.Path(__file__).resolve().parent.parent
RESULTS = REPO / "bench" / "results"

for _path in (REPO / "tests", REPO / "operator"):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values))


def rss_mb() -> float:
    """Current resident set size of this process, in MiB (Linux /proc)."""
    with open("/proc/self/statm") as handle:
        pages = int(handle.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far (ru_maxrss is KiB on Linux), in MiB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def print_table(title: str, rows: Sequence[tuple[str, str, str]]) -> None:
    """A three-column table: what, value, note."""
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    print(f"\n{title}")
    print("-" * (sum(widths) + 6))
    for what, value, note in rows:
        print(f"{what:<{widths[0]}}  {value:>{widths[1]}}  {note}")


def write_json(name: str, data: Mapping[str, Any]) -> pathlib.Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / name
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    return path


def machine() -> dict[str, Any]:
    """What the numbers were measured on."""
    model = "unknown"
    try:
        with open("/proc/cpuinfo") as handle:
            model = next((line.split(":", 1)[1].strip() for line in handle if line.startswith("model name")), model)
    except OSError:
        pass
    return {
        "cpus": os.cpu_count(),
        "cpu_model": model,
        "memory_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
        "python": sys.version.split()[0],
    }


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    import time

    started = time.perf_counter()
    result = fn()
    return time.perf_counter() - started, result


def start_operator(
    url: str, settings: Any, ready_flag: Any = None, liveness_endpoint: str | None = None
) -> tuple[Any, Any, Any]:
    """The real operator (the production registry) as a task of this loop, logged in to ``url`` without
    credentials: (task, stop_flag, ready_flag). Kopf and the operator are imported here, when a bench runs it.
    ``ready_flag``: an event of the caller's (e.g. the health endpoint's); ``liveness_endpoint``: Kopf's own."""
    import asyncio

    import kopf

    from openmodel_operator.controller.handlers import build_registry
    from openmodel_operator.controller.kube import Kube, client_for

    registry = build_registry(settings, lambda: Kube(client_for(url)))

    @kopf.on.login(registry=registry)
    def login(**_: Any) -> kopf.ConnectionInfo:
        return kopf.ConnectionInfo(server=url, insecure=True)

    stop_flag = asyncio.Event()
    ready_flag = ready_flag if ready_flag is not None else asyncio.Event()
    task = asyncio.create_task(
        kopf.operator(
            registry=registry,
            settings=kopf.OperatorSettings(),
            standalone=True,
            clusterwide=True,
            stop_flag=stop_flag,
            ready_flag=ready_flag,
            liveness_endpoint=liveness_endpoint,
        )
    )
    return task, stop_flag, ready_flag
