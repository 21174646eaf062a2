"""Trust core benchmark: decision time, pull+verify against download-then-verify, local verify throughput.

    .venv/bin/python bench/bench_trust.py [--size-gb 2] [--files 4] [--reps 5] [--local-reps 7]

One run builds a model of ``--files`` weight shards (random bytes, ``--size-gb`` in all) plus the
small files a Hub model has, signs it with model-signing (elliptic key, signature inside the model as
``model.sig``), serves it from the Hub stand-in of the tests (from memory; for the pulls in a process of its
own, as a real Hub is, unless ``--hub-in-process``) and
measures, each a few times (median and range; variants interleaved, the order rotated each round, so
that drift and the other work on a shared machine hit all alike; every pull writes into a new directory
after ``os.sync()``, so no run inherits another's dirty pages or finds its files in the page cache):

a. verify-before-pull: ``sources.examine.examine`` on ``hf://`` with a key policy; asserts that no
   weight file was downloaded (``HubStub.download_count``);
b. pull + verify: ``examine`` then ``sources.pull.pull`` (hash while writing, files in parallel, written
   around the page cache, fsync, rename) against two-pass baselines that download first and verify afterwards with
   model-signing: ``huggingface_hub.snapshot_download``; plain parallel HTTP GETs (urllib ``readinto``,
   4 threads, no hashing, no fsync); the same GETs with an fsync per file (our durability); and the
   single-pass prototype below (bench code), with and without fsync; and a floor that is not a pull at
   all: the same GETs hashing every piece as it arrives and writing nothing, the least a pull that checks
   every byte can cost here (best two-pass baseline / floor bounds what any single pass can reach); and a
   disk floor that writes the same bytes durably and receives nothing (what keeping them costs here);
c. local verification of the model directory (page cache warm): ``examine`` on the directory and
   ``resolve_directory`` + ``compare_manifest``, against ``model_signing.verifying.Config()
   .use_elliptic_key_verifier(...).verify(...)``; plus the in-memory SHA-256 ceiling of this machine.

Prints a table and writes ``bench/results/trust.json``.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import pathlib
import shutil
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

# huggingface_hub reads its settings at import time: keep the baseline quiet and off ~/.cache.
_HF_HOME = tempfile.mkdtemp(prefix="bench-hf-home-")
os.environ["HF_HOME"] = _HF_HOME
os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] = "1"
os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"
os.environ["HF_HUB_DISABLE_XET"] = "1"

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import hashlib  # noqa: E402

import benchlib  # noqa: E402
import huggingface_hub  # noqa: E402
import model_signing  # noqa: E402
from benchlib import median, print_table  # noqa: E402
from fasthub import README, Served, add_model_cached, hub_process, read_tree  # noqa: E402

from hubstub import HubStub  # noqa: E402
from openmodel_operator.evidence.manifest import compare_manifest, manifest_files  # noqa: E402
from openmodel_operator.signing.signer import sign_directory  # noqa: E402
from openmodel_operator.sources.direct_write import DIRECT_BUFFER, FileWriter, aligned_buffer  # noqa: E402
from openmodel_operator.sources.directory import resolve_directory  # noqa: E402
from openmodel_operator.sources.examine import examine  # noqa: E402
from openmodel_operator.sources.pull import pull  # noqa: E402
from openmodel_operator.trust.examination import Examination, ModelRequest  # noqa: E402
from openmodel_operator.trust.policies import Policy, policy_from_manifest  # noqa: E402
from signing_fixtures import new_key  # noqa: E402

REPO_ID = "bench/model"
SIGNATURE = "model.sig"
BLOCK = 16 * 1024 * 1024
GB = 1e9


# ---------------------------------------------------------------------------------------------- setup


def write_model(directory: pathlib.Path, size: int, shards: int) -> dict[str, int]:
    """Weight shards of random bytes (a random 16 MiB block per shard, repeated) and a Hub model's small files."""
    directory.mkdir(parents=True)
    sizes: dict[str, int] = {}
    per_shard = size // shards
    for i in range(shards):
        name = f"model-{i + 1:05d}-of-{shards:05d}.safetensors"
        block = os.urandom(BLOCK)
        fd = os.open(directory / name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            left = per_shard
            while left:
                left -= os.write(fd, memoryview(block)[: min(left, BLOCK)])
        finally:
            os.close(fd)
        sizes[name] = per_shard
    small = {
        "README.md": README,
        "config.json": b'{"architectures": ["BenchForCausalLM"], "hidden_size": 4096}\n',
        "generation_config.json": b'{"do_sample": true}\n',
        # a real tokenizer.json is a few MB and lives in git, not LFS: it is hashed at resolution
        "tokenizer.json": b'{"model": {"vocab": {' + os.urandom(512 * 1024).hex().encode() + b'": 0}}}\n',
        "tokenizer_config.json": b'{"model_max_length": 4096}\n',
    }
    for name, data in small.items():
        (directory / name).write_bytes(data)
        sizes[name] = len(data)
    return sizes


def warm(directory: pathlib.Path) -> None:
    """Read every file once so that the page cache holds it."""
    for path in directory.rglob("*"):
        if path.is_file():
            with open(path, "rb") as handle:
                while handle.read(BLOCK):
                    pass


def key_policy(public_pem: bytes, endpoint: str) -> Policy:
    """The bench policy: trusts the bench key and allows the Hub stand-in's origin (a mirror, not the public Hub)."""
    return policy_from_manifest(
        {
            "apiVersion": "openmodel.io/v1alpha1",
            "kind": "ModelTrustPolicy",
            "metadata": {"name": "bench", "generation": 1},
            "spec": {
                "mode": "Enforce",
                "sources": {"endpoints": {"allow": [endpoint]}},
                "signature": {"required": True, "keys": [{"name": "bench-key", "publicKey": public_pem.decode()}]},
                "licenses": {"allowOSIApproved": True},
            },
        }
    )


@contextmanager
def fresh_dir(parent: pathlib.Path, name: str) -> Iterator[pathlib.Path]:
    """A new empty directory, removed afterwards; dirty pages are flushed first so runs do not inherit I/O."""
    path = parent / name
    if path.exists():
        shutil.rmtree(path)
    os.sync()
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


# ---------------------------------------------------------------------------------------------- variants


def model_signing_verify(model_dir: pathlib.Path, public_key: pathlib.Path) -> None:
    """model-signing's own verification of a directory (raises on any mismatch)."""
    config: Any = model_signing.verifying.Config()  # type: ignore[no-untyped-call]
    config.use_elliptic_key_verifier(public_key=public_key).verify(model_dir, model_dir / SIGNATURE)


def expected_digests(exam: Examination) -> dict[str, str]:
    """What ``openmodel verify --pull`` pulls: the manifest files with their signed digests."""
    expected = {f.path: f.sha256 for f in manifest_files(exam.resolved.files, exam.evidence.signature_path)}
    if exam.verdict.signature is not None:
        signed = exam.verdict.signature.resources
        expected = {path: signed.get(path, digest) for path, digest in expected.items()}
    return expected


def ours_pull(request: ModelRequest, policies: list[Policy], dest: pathlib.Path) -> dict[str, float]:
    """Verify before pulling, then pull with one-pass hashing (the ``openmodel verify --pull`` path)."""
    started = time.perf_counter()
    exam = examine(request, policies)
    assert exam.verdict.trusted, exam.verdict.reasons
    decided = time.perf_counter()
    result = pull(exam.resolved, expected_digests(exam), dest)
    done = time.perf_counter()
    assert len(result.downloaded) == len(expected_digests(exam))
    return {"total": done - started, "examine": decided - started, "pull": done - decided}


def baseline_snapshot(hub: Served, dest: pathlib.Path, public_key: pathlib.Path) -> dict[str, float]:
    """huggingface_hub.snapshot_download into a directory, then model-signing verify."""
    started = time.perf_counter()
    huggingface_hub.snapshot_download(REPO_ID, revision=hub.commit, endpoint=hub.url, local_dir=dest)
    shutil.rmtree(dest / ".cache", ignore_errors=True)  # local_dir bookkeeping, not part of the model
    downloaded = time.perf_counter()
    model_signing_verify(dest, public_key)
    done = time.perf_counter()
    return {"total": done - started, "download": downloaded - started, "verify": done - downloaded}


def _fetch_plain(url: str, target: pathlib.Path, buffer: memoryview) -> int:
    """GET ``url`` (redirects followed) into ``target`` with readinto: no per-chunk Python parsing."""
    done = 0
    with urllib.request.urlopen(url, timeout=60) as response, open(target, "wb", buffering=0) as out:
        while count := response.readinto(buffer):
            out.write(buffer[:count])
            done += count
    return done


def baseline_get(
    hub: Served, paths: list[str], dest: pathlib.Path, public_key: pathlib.Path, fsync: bool = False
) -> dict[str, float]:
    """Plain parallel HTTP GETs (urllib, 4 threads, readinto 1 MiB, no hashing), then model-signing verify.

    With ``fsync`` each file is fsynced after its download: the durability ``sources.pull`` promises
    (the plain baseline has none; its bytes may still be in memory when it reports success).
    """
    started = time.perf_counter()

    def get(path: str) -> int:
        target = dest / path
        target.parent.mkdir(parents=True, exist_ok=True)
        url = f"{hub.url}/{REPO_ID}/resolve/{hub.commit}/{path}"
        count = _fetch_plain(url, target, memoryview(bytearray(2**20)))
        if fsync:
            fd = os.open(target, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        return count

    dest.mkdir(parents=True)
    with ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(get, paths))
    downloaded = time.perf_counter()
    model_signing_verify(dest, public_key)
    done = time.perf_counter()
    return {"total": done - started, "download": downloaded - started, "verify": done - downloaded}


def prototype_single_pass(
    hub: Served, expected: Mapping[str, str], dest: pathlib.Path, fsync: bool = True
) -> dict[str, float]:
    """NOT operator code: the single-pass design written inline, as a yardstick for ``sources.pull``.

    Same steps as ``sources.pull``: a temporary name, sha256 while writing, fsync, compare, rename; 4
    threads; urllib ``readinto`` into a 1 MiB buffer. Not in it: the pull's checks (sizes, deadlines,
    redirect origins, retries) and its early writeback. With ``fsync=False`` it makes the same
    durability promise as the plain baselines (none): the floor of a single pass on this machine.
    """
    started = time.perf_counter()

    def one(path: str) -> None:
        target = dest / path
        target.parent.mkdir(parents=True, exist_ok=True)
        hasher = hashlib.sha256()
        buffer = memoryview(bytearray(2**20))
        fd, temp = tempfile.mkstemp(prefix=".partial-", dir=target.parent)
        try:
            url = f"{hub.url}/{REPO_ID}/resolve/{hub.commit}/{path}"
            with urllib.request.urlopen(url, timeout=60) as response:
                while count := response.readinto(buffer):
                    hasher.update(buffer[:count])
                    view = buffer[:count]
                    while view:
                        view = view[os.write(fd, view) :]
            if fsync:
                os.fsync(fd)
        finally:
            os.close(fd)
        if hasher.hexdigest() != expected[path]:
            os.unlink(temp)
            raise AssertionError(f"{path}: digest mismatch")
        os.replace(temp, target)

    dest.mkdir(parents=True)
    with ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(one, sorted(expected)))
    return {"total": time.perf_counter() - started}


def floor_single_pass(hub: Served, expected: Mapping[str, str]) -> dict[str, float]:
    """NOT a pull: the least work any pull that checks every byte has to do, receive it and hash it.

    4 threads, urllib ``readinto`` into a reused 1 MiB buffer, each piece hashed as it arrives, nothing
    written anywhere. No pull on this machine can be faster, so ``best two-pass baseline / floor`` is the
    most any single pass could reach against that baseline here (the goal's ceiling in this set-up).
    """
    started = time.perf_counter()

    def one(path: str) -> None:
        hasher = hashlib.sha256()
        buffer = memoryview(bytearray(2**20))
        url = f"{hub.url}/{REPO_ID}/resolve/{hub.commit}/{path}"
        with urllib.request.urlopen(url, timeout=60) as response:
            while count := response.readinto(buffer):
                hasher.update(buffer[:count])
        if hasher.hexdigest() != expected[path]:
            raise AssertionError(f"{path}: digest mismatch")

    with ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(one, sorted(expected)))
    return {"total": time.perf_counter() - started}


def disk_floor(sizes: Mapping[str, int], dest: pathlib.Path) -> dict[str, float]:
    """NOT a pull: the least any pull that keeps the bytes durably has to do, write them and fsync (nothing
    received, nothing hashed; 4 threads, 8 MiB ``O_DIRECT`` writes where the filesystem takes them, a buffered
    write where not). A pull that writes what it checked is bound by the larger of this and the floor above."""
    started = time.perf_counter()
    block = DIRECT_BUFFER

    def one(path: str) -> None:
        buffer = memoryview(aligned_buffer(block))
        fd = os.open(dest / path.replace("/", "_"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            writer = FileWriter(fd)
            left = sizes[path]
            while left:
                piece = buffer[: min(block, left)]
                writer.write(piece)
                left -= len(piece)
            os.fsync(fd)
        finally:
            os.close(fd)

    dest.mkdir(parents=True)
    with ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(one, sorted(sizes)))
    return {"total": time.perf_counter() - started}


def ours_local_examine(model_dir: pathlib.Path, policies: list[Policy]) -> None:
    exam = examine(ModelRequest(uri=str(model_dir)), policies)
    assert exam.verdict.trusted, exam.verdict.reasons


def ours_local_compare(model_dir: pathlib.Path, signed: Mapping[str, str], ignore: tuple[str, ...]) -> None:
    resolved = resolve_directory(model_dir)
    mismatches = compare_manifest(signed, resolved.files, SIGNATURE, ignore)
    assert not mismatches, mismatches


def sha256_ceiling(threads: int, size: int = 512 * 1024 * 1024) -> float:
    """In-memory SHA-256 throughput (GB/s) with ``threads`` threads: what two cores can hash at best."""
    data = os.urandom(size // threads)

    def one(_: int) -> None:
        hashlib.sha256(data).hexdigest()

    one(0)
    with ThreadPoolExecutor(max_workers=threads) as pool:
        started = time.perf_counter()
        list(pool.map(one, range(threads)))
        return (len(data) * threads) / (time.perf_counter() - started) / GB


def repeat(reps: int, variants: Mapping[str, Callable[[], Any]]) -> dict[str, list[Any]]:
    """Run every variant ``reps`` times, rotating the order each round."""
    names = list(variants)
    out: dict[str, list[Any]] = {name: [] for name in names}
    for rep in range(reps):
        shift = rep % len(names)
        for name in names[shift:] + names[:shift]:
            out[name].append(variants[name]())
    return out


# ---------------------------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--size-gb", type=float, default=2.0, help="total size of the weight shards (GB, 1e9)")
    parser.add_argument("--files", type=int, default=4, help="number of weight shards")
    parser.add_argument("--reps", type=int, default=5, help="repetitions of the pull measurements (interleaved)")
    parser.add_argument("--local-reps", type=int, default=7, help="repetitions of the decision and local measurements")
    parser.add_argument(
        "--hub-in-process",
        action="store_true",
        help="serve the pulls from this process (the old set-up: client and server share one interpreter lock)",
    )
    parser.add_argument("--workdir", type=pathlib.Path, default=None, help="where to write the model (default: TMPDIR)")
    args = parser.parse_args(argv)

    work = pathlib.Path(tempfile.mkdtemp(prefix="bench-trust-", dir=args.workdir))
    hub = HubStub().start()
    try:
        return run(args, work, hub)
    finally:
        hub.stop()
        shutil.rmtree(work, ignore_errors=True)
        shutil.rmtree(_HF_HOME, ignore_errors=True)


def run(args: argparse.Namespace, work: pathlib.Path, hub: HubStub) -> int:
    load: dict[str, tuple[float, float, float]] = {"start": os.getloadavg()}
    size = int(args.size_gb * GB)
    model_dir = work / "model"
    t_gen, sizes = benchlib.timed(lambda: write_model(model_dir, size, args.files))
    key = new_key()
    (work / "signing.key").write_bytes(key.private_pem)
    public_key = work / "signing.pub"
    public_key.write_bytes(key.public_pem)
    t_sign, _ = benchlib.timed(lambda: sign_directory(model_dir, work / "signing.key", model_dir / SIGNATURE))
    files = read_tree(model_dir)
    total_bytes = sum(len(data) for data in files.values())
    weight_bytes = sum(len(data) for name, data in files.items() if name.endswith(".safetensors"))
    commit = add_model_cached(hub, REPO_ID, files)
    del files
    weights = sorted(name for name in sizes if name.endswith(".safetensors"))
    print(
        f"model: {len(sizes) + 1} files, {total_bytes / GB:.2f} GB ({len(weights)} shards of "
        f"{weight_bytes / len(weights) / 1e6:.0f} MB); generated in {t_gen:.1f} s, signed in {t_sign:.1f} s; "
        f"served from memory by the Hub stand-in at {hub.url}",
        flush=True,
    )
    policies = [key_policy(key.public_pem, hub.url)]
    request = ModelRequest(uri=f"hf://{REPO_ID}", endpoint=hub.url)

    # (a) verify-before-pull decision: metadata, small files and the bundle only
    examine(request, policies)  # warm-up: imports, connections
    before = len(hub.request_log)
    exam = examine(request, policies)
    hub_requests = len(hub.request_log) - before
    assert exam.verdict.trusted and exam.verdict.tier.value == "Signed", exam.verdict.reasons
    decision = [benchlib.timed(lambda: examine(request, policies))[0] for _ in range(args.local_reps)]
    weight_downloads = sum(hub.download_count(REPO_ID, name) for name in weights)
    assert weight_downloads == 0, f"examine downloaded weights {weight_downloads} times"
    print(f"(a) decision: median {median(decision) * 1000:.1f} ms, {hub_requests} Hub requests, 0 weight downloads")
    load["after_decision"] = os.getloadavg()

    # (b) pull + verify, from the Hub stand-in in a process of its own (default) or in this one
    paths = sorted(f.path for f in exam.resolved.files)
    expected = expected_digests(exam)
    file_sizes = {f.path: f.size for f in exam.resolved.files if f.path in expected}
    with contextlib.ExitStack() as stack:
        served = (
            Served(url=hub.url, commit=commit)
            if args.hub_in_process
            else stack.enter_context(hub_process(model_dir, REPO_ID))
        )
        pull_policies = [key_policy(key.public_pem, served.url)]
        pull_request = ModelRequest(uri=f"hf://{REPO_ID}", endpoint=served.url)
        print(
            f"(b) served by the Hub stand-in at {served.url} ({'this' if args.hub_in_process else 'its own'} process)"
        )
        pulls = repeat(
            args.reps,
            {
                "ours": lambda: _in(work, "pull-ours", lambda d: ours_pull(pull_request, pull_policies, d)),
                "snapshot_download": lambda: _in(work, "pull-hf", lambda d: baseline_snapshot(served, d, public_key)),
                "plain_get": lambda: _in(work, "pull-get", lambda d: baseline_get(served, paths, d, public_key)),
                "plain_get_fsync": lambda: _in(
                    work, "pull-get-fsync", lambda d: baseline_get(served, paths, d, public_key, fsync=True)
                ),
                "prototype": lambda: _in(work, "pull-proto", lambda d: prototype_single_pass(served, expected, d)),
                "prototype_nofsync": lambda: _in(
                    work, "pull-proto-nofsync", lambda d: prototype_single_pass(served, expected, d, fsync=False)
                ),
                "floor": lambda: _in(work, "pull-floor", lambda d: floor_single_pass(served, expected)),
                "disk_floor": lambda: _in(work, "pull-disk", lambda d: disk_floor(file_sizes, d)),
            },
        )
    for name, runs in pulls.items():
        print(f"(b) {name}: " + ", ".join(f"{r['total']:.2f}" for r in runs) + " s", flush=True)
    load["after_pull"] = os.getloadavg()

    # (c) local verification on a warm page cache
    warm(model_dir)
    signed = dict(exam.verdict.signature.resources) if exam.verdict.signature else {}
    ignore = tuple(exam.verdict.signature.ignore_paths) if exam.verdict.signature else ()
    local = repeat(
        args.local_reps,
        {
            "ours_examine": lambda: benchlib.timed(lambda: ours_local_examine(model_dir, policies))[0],
            "ours_resolve_compare": lambda: benchlib.timed(lambda: ours_local_compare(model_dir, signed, ignore))[0],
            "model_signing": lambda: benchlib.timed(lambda: model_signing_verify(model_dir, public_key))[0],
        },
    )
    ceiling = {"1_thread": sha256_ceiling(1), "2_threads": sha256_ceiling(2)}
    load["end"] = os.getloadavg()

    report(args, total_bytes, weight_bytes, len(sizes) + 1, hub_requests, decision, pulls, local, ceiling, load)
    return 0


def _in(work: pathlib.Path, name: str, fn: Callable[[pathlib.Path], dict[str, float]]) -> dict[str, float]:
    """Run one variant in a fresh directory; add the load average and the process's CPU seconds.

    CPU seconds (user + system, this process: the client under test and the in-process Hub stand-in)
    measure the work a variant costs, which other work on a shared machine changes far less than
    the wall time.
    """
    with fresh_dir(work, name) as dest:
        load1 = os.getloadavg()[0]
        before = os.times()
        result = fn(dest)
        after = os.times()
        cpu = (after.user - before.user) + (after.system - before.system)
        return {**result, "load1": load1, "cpu": cpu}


def report(
    args: argparse.Namespace,
    total_bytes: int,
    weight_bytes: int,
    file_count: int,
    hub_requests: int,
    decision: list[float],
    pulls: Mapping[str, list[dict[str, float]]],
    local: Mapping[str, list[float]],
    ceiling: Mapping[str, float],
    load: Mapping[str, tuple[float, float, float]],
) -> None:
    def med(name: str, part: str = "total") -> float:
        return median([r[part] for r in pulls[name]])

    def span(name: str) -> str:
        totals = [r["total"] for r in pulls[name]]
        return f"{min(totals):.2f}-{max(totals):.2f}, cpu {med(name, 'cpu'):.2f} s"

    def paired(base: str) -> tuple[float, float]:
        """Range of base/ours over the rounds: each round ran every variant once, back to back."""
        ratios = [b["total"] / o["total"] for b, o in zip(pulls[base], pulls["ours"], strict=True)]
        return min(ratios), max(ratios)

    ours, snap, get, proto = med("ours"), med("snapshot_download"), med("plain_get"), med("prototype")
    proto_nofsync, get_fsync, floor = med("prototype_nofsync"), med("plain_get_fsync"), med("floor")
    disk = med("disk_floor")
    # the goal: against the fastest two-pass baseline of the same run, whatever its durability (the GETs
    # with an fsync per file can beat those without: dirty pages of the latter compete with their own verify)
    best_name, best = min(
        (("plain_get", get), ("plain_get_fsync", get_fsync), ("snapshot_download", snap)), key=lambda p: p[1]
    )
    gbps = {name: total_bytes / median(times) / GB for name, times in local.items()}
    local_ratio = median(local["model_signing"]) / median(local["ours_examine"])
    compare_ratio = median(local["model_signing"]) / median(local["ours_resolve_compare"])
    ok = {True: "MET", False: "NOT MET"}

    def versus(base: str, value: float, note: str) -> tuple[str, str, str]:
        low, high = paired(base)
        return (f"(b) ours vs {base}", f"{value / ours:.2f}x", f"per round {low:.2f}-{high:.2f}x; {note}")

    rows = [
        ("model", f"{total_bytes / GB:.2f} GB", f"{file_count} files, {args.files} weight shards"),
        (
            "(a) decision: examine hf://, key policy",
            f"{median(decision) * 1000:.1f} ms",
            f"{hub_requests} Hub requests, 0 weight downloads",
        ),
        (
            "(b) ours: examine + sources.pull.pull",
            f"{ours:.2f} s",
            f"runs {span('ours')}; pull alone {med('ours', 'pull'):.2f} s = "
            f"{total_bytes / med('ours', 'pull') / 1e6:.0f} MB/s",
        ),
        (
            "(b) base: snapshot_download + ms verify",
            f"{snap:.2f} s",
            f"runs {span('snapshot_download')}; download {med('snapshot_download', 'download'):.2f} s"
            f" + verify {med('snapshot_download', 'verify'):.2f} s",
        ),
        (
            "(b) base: urllib GET x4 + ms verify",
            f"{get:.2f} s",
            f"runs {span('plain_get')}; download {med('plain_get', 'download'):.2f} s"
            f" + verify {med('plain_get', 'verify'):.2f} s",
        ),
        (
            "(b) base: urllib GET x4 + fsync + ms verify",
            f"{get_fsync:.2f} s",
            f"runs {span('plain_get_fsync')}; download+fsync {med('plain_get_fsync', 'download'):.2f} s"
            f" + verify {med('plain_get_fsync', 'verify'):.2f} s; our durability",
        ),
        (
            "(b) prototype single pass (urllib)",
            f"{proto:.2f} s",
            f"runs {span('prototype')}; bench code, fsync",
        ),
        (
            "(b) prototype single pass, no fsync",
            f"{proto_nofsync:.2f} s",
            f"runs {span('prototype_nofsync')}; the baselines' durability (none)",
        ),
        versus("snapshot_download", snap, f"target >= 1.5x: {ok[snap / ours >= 1.5]}"),
        versus("plain_get", get, f"target >= 1.5x: {ok[get / ours >= 1.5]}"),
        (
            "(b) floor: receive + sha256, nothing written",
            f"{floor:.2f} s",
            f"runs {span('floor')}; not a pull: the least any pull that checks every byte does",
        ),
        (
            "(b) ours vs best two-pass baseline",
            f"{best / ours:.2f}x",
            f"{best_name}; target >= 1.5x: {ok[best / ours >= 1.5]}",
        ),
        (
            "(b) floor vs best two-pass baseline",
            f"{best / floor:.2f}x",
            f"the most any single pass could reach here; 1.5x {'reachable' if best / floor >= 1.5 else 'UNREACHABLE'}",
        ),
        versus("floor", floor, "how close ours is to the least a checked pull costs (1.00x: as cheap)"),
        (
            "(b) disk floor: write the bytes + fsync, nothing received",
            f"{disk:.2f} s",
            f"runs {span('disk_floor')}; not a pull: the least keeping the bytes durably costs",
        ),
        versus("disk_floor", disk, "ours against the disk alone (1.00x: as fast as the disk writes)"),
        (
            "(b) ours vs the larger floor",
            f"{max(floor, disk) / ours:.2f}x",
            f"{'receive + hash' if floor >= disk else 'disk'}; 1.00x: a pull as fast as this machine allows",
        ),
        versus("plain_get_fsync", get_fsync, "same durability as ours"),
        versus("prototype", proto, "the yardstick of the issue"),
        versus("prototype_nofsync", proto_nofsync, "a single pass without durability"),
        ("(c) ours: examine directory", f"{gbps['ours_examine']:.2f} GB/s", f"{median(local['ours_examine']):.3f} s"),
        (
            "(c) ours: resolve_directory + compare",
            f"{gbps['ours_resolve_compare']:.2f} GB/s",
            f"{median(local['ours_resolve_compare']):.3f} s",
        ),
        ("(c) model_signing verify", f"{gbps['model_signing']:.2f} GB/s", f"{median(local['model_signing']):.3f} s"),
        ("(c) examine / model_signing", f"{local_ratio:.2f}x", f"target >= 0.95x: {ok[local_ratio >= 0.95]}"),
        (
            "(c) resolve+compare / model_signing",
            f"{compare_ratio:.2f}x",
            f"target >= 0.95x: {ok[compare_ratio >= 0.95]}",
        ),
        (
            "SHA-256 in memory, 1 / 2 threads",
            f"{ceiling['1_thread']:.2f} / {ceiling['2_threads']:.2f} GB/s",
            "ceiling of this machine",
        ),
        ("load average start / end", f"{load['start'][0]:.1f} / {load['end'][0]:.1f}", "other work on the machine"),
    ]
    print_table(f"bench_trust on {os.cpu_count()} CPUs (medians)", rows)
    path = benchlib.write_json(
        "trust.json",
        {
            "command": "bench/bench_trust.py " + " ".join(sys.argv[1:]),
            "machine": benchlib.machine(),
            "loadavg": load,
            "model": {"bytes": total_bytes, "weight_bytes": weight_bytes, "files": file_count, "shards": args.files},
            "decision": {
                "seconds": decision,
                "median_s": median(decision),
                "hub_requests": hub_requests,
                "weight_downloads": 0,
            },
            "pull": {
                "runs": pulls,
                "order": "interleaved, rotated each round",
                "hub": "this process" if args.hub_in_process else "its own process",
                "median_s": {name: med(name) for name in pulls},
                "median_cpu_s": {name: med(name, "cpu") for name in pulls},
                "range_s": {
                    name: [min(r["total"] for r in runs), max(r["total"] for r in runs)] for name, runs in pulls.items()
                },
                "speedup_vs": {name: med(name) / ours for name in pulls if name != "ours"},
                "paired_speedup_range_vs": {name: list(paired(name)) for name in pulls if name != "ours"},
                "best_two_pass_baseline": best_name,
                "speedup_vs_best_two_pass": best / ours,
                "floor_speedup_vs_best_two_pass": best / floor,
                "ours_vs_disk_floor": disk / ours,
                "prototype_speedup_vs_plain_get": get / proto,
                "prototype_nofsync_speedup_vs_plain_get": get / proto_nofsync,
                "target": 1.5,
            },
            "local": {
                "seconds": local,
                "gb_per_s": gbps,
                "ratio_examine_vs_model_signing": local_ratio,
                "ratio_resolve_compare_vs_model_signing": compare_ratio,
                "target": 0.95,
            },
            "sha256_ceiling_gb_per_s": ceiling,
        },
    )
    print(f"\nwritten {path.relative_to(benchlib.REPO)}")


if __name__ == "__main__":
    raise SystemExit(main())
