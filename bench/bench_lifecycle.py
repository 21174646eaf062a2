"""Lifecycle benchmark (issue 9): what N OpenModels of the same content cost to pull, with a claim each
against one claim shared by them (``storage.claimName``).

    .venv/bin/python bench/bench_lifecycle.py [--models 10] [--size-mb 256] [--reps 3]

Each "model" runs what its pull Job runs (``openmodel fetch`` of the same pinned manifest, in a thread of this
process) against the Hub stand-in of the tests (in this process, from memory):

- **own claims**: N pulls into N directories, as N models with their own claims do (all at once);
- **shared claim**: N pulls of the same slot of one directory with ``--ref`` (all at once): one writes under
  the slot's lock, the others wait, find every file in place and re-hash it.

Reported: bytes the Hub served (the goal of issue 9 is 1x the model for the shared claim), wall time, and
that every pull exited 0 with the slot complete. Variants alternate, median of ``--reps``. Writes
``bench/results/lifecycle.json``. The downtime of an update is measured by ``bench/bench_update_downtime.py``,
with the Deployment controller and a kubelet played by ``tests/cluster_player.py``.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import io
import os
import pathlib
import shutil
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import benchlib
from benchlib import median, print_table

from hubstub import HubStub
from openmodel_operator.cli import build_parser
from openmodel_operator.commands import fetch
from openmodel_operator.evidence.manifest import manifest_digest
from openmodel_operator.evidence.pinned import PinnedManifest
from openmodel_operator.evidence.records import FileEntry
from openmodel_operator.planning.children import slot_dir

REPO = "bench/model"
WEIGHTS = "model.safetensors"


def publish(hub: HubStub, size: int) -> PinnedManifest:
    """One weight file and a config on the stand-in; the pinned manifest the operator would write for it."""
    files = {WEIGHTS: os.urandom(size), "config.json": b'{"hidden_size": 8}\n'}
    commit = hub.add_model(REPO, files)
    entries = tuple(FileEntry(path, len(data), hashlib.sha256(data).hexdigest()) for path, data in files.items())
    return PinnedManifest(f"hf://{REPO}", commit, manifest_digest(entries, None), entries, hub.url)


def run_fetch(manifest: pathlib.Path, dest: pathlib.Path, ref: str | None) -> int:
    argv = ["fetch", "--manifest", str(manifest), "--dest", str(dest)] + (["--ref", ref] if ref else [])
    return fetch.run(build_parser().parse_args(argv), stream=io.StringIO())


def pulls(
    hub: HubStub, manifest: pathlib.Path, root: pathlib.Path, models: int, shared: bool, slot: str
) -> dict[str, float]:
    """N pulls at once; bytes the Hub served and the wall time."""
    if root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True)
    before = hub.download_count(REPO, WEIGHTS)
    started = time.perf_counter()
    dests = [root / slot if shared else root / f"claim-{i}" / slot for i in range(models)]
    refs = [f"uid-{i}" if shared else None for i in range(models)]
    with ThreadPoolExecutor(models) as pool:
        codes = list(pool.map(lambda i: run_fetch(manifest, dests[i], refs[i]), range(models)))
    seconds = time.perf_counter() - started
    assert codes == [0] * models, codes
    assert all(d.exists() for d in dests)
    return {"downloads": hub.download_count(REPO, WEIGHTS) - before, "seconds": seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", type=int, default=10, help="OpenModels of the same content")
    parser.add_argument("--size-mb", type=int, default=256, help="size of the weight file (MiB)")
    parser.add_argument("--reps", type=int, default=3, help="repetitions of each variant (interleaved)")
    args = parser.parse_args()
    size = args.size_mb * 1024 * 1024
    hub = HubStub().start()
    work = pathlib.Path(tempfile.mkdtemp(prefix="bench-lifecycle-"))
    try:
        pinned = publish(hub, size)
        manifest = work / "manifest.json"
        manifest.write_text(pinned.to_json())
        slot = slot_dir(pinned.manifest_digest)
        runs: dict[str, list[dict[str, float]]] = {"own": [], "shared": []}
        for _ in range(args.reps):
            for variant in ("own", "shared"):
                with contextlib.suppress(FileNotFoundError):
                    shutil.rmtree(work / variant)
                runs[variant].append(pulls(hub, manifest, work / variant, args.models, variant == "shared", slot))
    finally:
        hub.stop()
        shutil.rmtree(work, ignore_errors=True)
    own_bytes = median([r["downloads"] for r in runs["own"]]) * size
    shared_bytes = median([r["downloads"] for r in runs["shared"]]) * size
    own_s, shared_s = median([r["seconds"] for r in runs["own"]]), median([r["seconds"] for r in runs["shared"]])
    mb = 1024 * 1024
    rows = [
        ("models of one content", str(args.models), f"{args.size_mb} MiB each; {args.reps} reps, interleaved"),
        ("own claims: bytes from the Hub", f"{own_bytes / mb:.0f} MiB", f"{own_bytes / size:.1f}x the model"),
        ("shared claim: bytes from the Hub", f"{shared_bytes / mb:.0f} MiB", f"{shared_bytes / size:.1f}x (goal 1x)"),
        ("own claims: wall time", f"{own_s:.2f} s", "all pulls at once"),
        ("shared claim: wall time", f"{shared_s:.2f} s", f"{own_s / shared_s:.2f}x faster: 1 download, N-1 re-hashes"),
    ]
    print_table(f"bench_lifecycle on {os.cpu_count()} CPUs", rows)
    benchlib.write_json("lifecycle", {"runs": runs, "size": size, "models": args.models, "machine": benchlib.machine()})


if __name__ == "__main__":
    main()
