"""The pull of several commits against each other, interleaved, from one Hub stand-in: a before/after in one run.

    git worktree add --detach /tmp/before <commit>
    .venv/bin/python bench/bench_pull_versions.py before=/tmp/before after=. [--rounds 9] [--size-gb 2]

``bench_trust.py`` compares our pull with other ways to download and verify, with one pull implementation per
run; a change to the pull itself is best judged against the code before it in the same run, because this
machine's disk and CPU drift by tens of percent between runs. Each round pulls once with every commit (order
rotated), each pull in a fresh process with that commit's ``operator/`` on the path, into a fresh directory
after ``os.sync()``; the model (4 shards, signed) is served from memory by the Hub stand-in in a process of its
own. Prints the median and range of the wall time and of the pull process's CPU seconds of ``sources.pull.pull``
alone (resolution and imports excluded) and writes ``bench/results/pull_versions.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile

import benchlib
from bench_trust import GB, REPO_ID, SIGNATURE, write_model
from benchlib import median
from fasthub import hub_process

from openmodel_operator.signing.signer import sign_directory
from signing_fixtures import new_key

# Run in the child process, with the commit under test first on sys.path: the same calls in every version.
_ONE_PULL = """
import json, os, sys, time
from openmodel_operator.sources.hub import resolve_hub
from openmodel_operator.sources.pull import pull
url, commit, dest = sys.argv[1:4]
resolved = resolve_hub("hf://{repo}", revision=commit, endpoint=url)
expected = {{f.path: f.sha256 for f in resolved.files}}
os.sync()
cpu0, wall0 = os.times(), time.perf_counter()
pull(resolved, expected, dest)
wall1, cpu1 = time.perf_counter(), os.times()
print(json.dumps({{"wall": wall1 - wall0, "cpu": cpu1.user - cpu0.user + cpu1.system - cpu0.system}}))
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("versions", nargs="+", help="NAME=PATH of a checkout (a git worktree) of each commit")
    parser.add_argument("--rounds", type=int, default=9, help="pulls per commit (interleaved)")
    parser.add_argument("--size-gb", type=float, default=2.0, help="total size of the weight shards (GB, 1e9)")
    parser.add_argument("--files", type=int, default=4, help="number of weight shards")
    args = parser.parse_args(argv)
    versions: dict[str, pathlib.Path] = {}
    for item in args.versions:
        name, _, path = item.partition("=")
        root = pathlib.Path(path).resolve()
        if not name or not (root / "operator" / "openmodel_operator").is_dir():
            parser.error(f"{item!r}: expected NAME=PATH of a checkout with operator/openmodel_operator")
        versions[name] = root

    work = pathlib.Path(tempfile.mkdtemp(prefix="bench-pull-versions-"))
    try:
        model = work / "model"
        write_model(model, int(args.size_gb * GB), args.files)
        key = new_key()
        (work / "signing.key").write_bytes(key.private_pem)
        sign_directory(model, work / "signing.key", model / SIGNATURE)
        script = _ONE_PULL.format(repo=REPO_ID)
        names = list(versions)
        runs: dict[str, list[dict[str, float]]] = {name: [] for name in names}
        with hub_process(model, REPO_ID) as served:
            for round_ in range(args.rounds):
                shift = round_ % len(names)
                for name in names[shift:] + names[:shift]:
                    dest = work / "pulled"
                    env = {**os.environ, "PYTHONPATH": str(versions[name] / "operator")}
                    done = subprocess.run(
                        [sys.executable, "-c", script, served.url, served.commit, str(dest)],
                        env=env,
                        capture_output=True,
                        text=True,
                        check=True,
                    )
                    runs[name].append(json.loads(done.stdout.strip().splitlines()[-1]))
                    shutil.rmtree(dest)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    rows = []
    for name in names:
        wall = [r["wall"] for r in runs[name]]
        cpu = [r["cpu"] for r in runs[name]]
        rows.append(
            (
                f"{name} ({versions[name]})",
                f"{median(wall):.2f} s",
                f"runs {min(wall):.2f}-{max(wall):.2f} s; cpu {median(cpu):.2f} s ({min(cpu):.2f}-{max(cpu):.2f})",
            )
        )
    benchlib.print_table(f"sources.pull.pull of {args.size_gb:g} GB, {args.rounds} interleaved rounds", rows)
    path = benchlib.write_json(
        "pull_versions.json",
        {"machine": benchlib.machine(), "versions": {n: str(p) for n, p in versions.items()}, "runs": runs},
    )
    print(f"\nwritten {path.relative_to(benchlib.REPO)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
