"""``pvc://`` sources end to end (issue 9): the real operator against the emulator, its claim report listener on
127.0.0.1, and the kubelet stand-in (``kubelet_player``) running the claim examination Job's ``openmodel
report-claim`` and the serving pods' verify-on-start check on the claim's directory.

Every hostile case sits next to a legitimate control: a claim examined and served in place; the same claim
tampered after the decision (caught by re-verification and at pod start); reports a tenant forges with the nonce
it can read from the Job (another file list, another signer, an oversized or malformed body, a second report, a
nonce nobody waits for); a Job that fails or never reports.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from kube_fixtures import kube, run_operator
from kubelet_player import Kubelet
from openmodel_operator.evidence.claim_report import MAX_REPORT_BYTES, encode_report
from openmodel_operator.evidence.records import FileEntry
from openmodel_operator.planning import children
from openmodel_operator.sources.directory import resolve_directory
from signing_fixtures import KeyPair, new_key, sign_with_key, write_model
from test_operator import FILES, NS, World, operator, world

__all__ = ["kube", "operator", "run_operator", "world"]  # the fixtures this module uses

URI = "pvc://staging/models/tiny"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def stage(world: World, kubelet: Kubelet, key: KeyPair | None = None, files: dict[str, bytes] | None = None) -> Path:
    """A signed model on claim ``staging`` under ``models/tiny``, as an admin pre-stages it."""
    staged = write_model(kubelet.claim(NS, "staging") / "models" / "tiny", dict(files or FILES))
    bundle = sign_with_key(staged, key or world.key, world.tmp / f"sig-{os.urandom(4).hex()}")
    (staged / "model.sig").write_bytes(bundle)
    return staged


def pvc_model(world: World, name: str = "m", uri: str = URI, **spec: Any) -> None:
    world.kube.create_object(
        {
            "apiVersion": "openmodel.io/v1alpha1",
            "kind": "OpenModel",
            "metadata": {"name": name, "namespace": NS},
            "spec": {"source": {"uri": uri}, **spec},
        }
    )


def examine_jobs(world: World) -> list[dict[str, Any]]:
    return [j for j in world.jobs() if j["metadata"]["labels"][children.COMPONENT_LABEL] == "examine"]


def args_of(obj: dict[str, Any]) -> list[str]:
    """The command line of a Job's container, or of a container itself."""
    container = obj["spec"]["template"]["spec"]["containers"][0] if "spec" in obj else obj
    return [*container.get("command", []), *container.get("args", [])]


def flag(job: dict[str, Any], name: str) -> str:
    args = args_of(job)
    return args[args.index(name) + 1]


async def next_examine_job(world: World, seen: set[str] = frozenset(), timeout: float = 30) -> dict[str, Any]:  # type: ignore[assignment]
    """The claim examination Job the operator makes next (one not in ``seen``)."""

    def fresh() -> dict[str, Any] | None:
        return next((j for j in examine_jobs(world) if j["metadata"]["name"] not in seen), None)

    found: dict[str, Any] = await world.until(fresh, timeout=timeout)
    return found


def post(url: str, body: bytes, content_type: str = "application/json") -> int:
    """POST as a tenant's pod would: the HTTP status the listener answers."""
    request = urllib.request.Request(url, data=body, method="POST", headers={"Content-Type": content_type})
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return int(answer.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


def announce(url: str, length: int) -> int:
    """Only the head of a POST announcing ``length`` bytes: the status the listener answers before any body."""
    host_port, path = url.removeprefix("http://").split("/", 1)
    host, port = host_port.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        head = f"POST /{path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {length}\r\n\r\n"
        sock.sendall(head.encode())
        return int(sock.recv(1024).split(b" ", 2)[1])


def report_url(job: dict[str, Any]) -> str:
    return f"{flag(job, '--url')}/{flag(job, '--nonce')}"


def condition(world: World, cond_type: str) -> dict[str, Any]:
    return next(c for c in world.status().get("conditions") or [] if c["type"] == cond_type)


async def run_examination(world: World, kubelet: Kubelet, job: dict[str, Any]) -> None:
    """Play the Job's pod (its POST reaches the operator's listener) and the Job controller."""
    name = job["metadata"]["name"]
    assert await asyncio.to_thread(kubelet.run_job, NS, name) == 0, kubelet.logs[-1]
    if world.kube.get("jobs", NS, name) is not None:  # the operator may have deleted it already
        world.kube.complete_job(NS, name)


async def test_a_signed_claim_is_examined_by_a_job_without_a_token_and_served_in_place_with_verify_on_start(
    world: World, operator: Any, tmp_path: Path
) -> None:
    kubelet = Kubelet(world.kube, tmp_path / "node")
    staged = stage(world, kubelet)
    world.policy()
    pvc_model(world)
    async with operator(claim_report_port=free_port()):
        job = await next_examine_job(world)
        name = job["metadata"]["name"]
        verifying = await world.phase("Verifying")
        ready = next(c for c in verifying["conditions"] if c["type"] == "Ready")
        assert f"claim examination Job {NS}/{name}" in ready["message"]
        assert world.cond("Trusted") == ("Unknown", "Examining")
        assert world.child("deployments", "m") is None  # nothing undecided is served

        # the Job's shape: least privilege
        pod = job["spec"]["template"]["spec"]
        assert pod["automountServiceAccountToken"] is False and pod["restartPolicy"] == "Never"
        assert pod["securityContext"]["runAsNonRoot"] is True
        (container,) = pod["containers"]
        assert container["securityContext"]["readOnlyRootFilesystem"] is True
        assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}
        assert "limits" in container["resources"]
        assert all("valueFrom" not in env for env in container["env"]) and "envFrom" not in container
        claim = next(v for v in pod["volumes"] if v["name"] == "claim")
        assert claim["persistentVolumeClaim"] == {"claimName": "staging", "readOnly": True}
        mount = next(m for m in container["volumeMounts"] if m["name"] == "claim")
        assert mount["readOnly"] is True and mount["subPath"] == "models/tiny"
        assert job["spec"]["backoffLimit"] <= 1 and job["spec"]["activeDeadlineSeconds"] > 0
        assert job["spec"]["ttlSecondsAfterFinished"] > 0
        assert flag(job, "--url").startswith("http://127.0.0.1:")

        await run_examination(world, kubelet, job)
        await world.until(lambda: world.cond("Trusted") == ("True", "PoliciesPassed"), timeout=10)
        await world.until(lambda: world.child("deployments", "m"), timeout=10)
        provenance = world.status()["provenance"]
        assert provenance["source"] == URI and provenance["trustTier"] == "Signed"
        assert provenance["manifestDigest"] == resolve_directory_digest(staged)
        assert provenance["license"] == "Apache-2.0"  # read from the card the signature covers
        assert world.cond("WeightsReady") == ("True", "Verified")
        # no pull Job, no claim of the model's own, no copy: the examination Job is gone once it reported
        assert world.jobs() == [] and world.child("persistentvolumeclaims", "m-weights") is None

        deployment = world.child("deployments", "m")
        assert deployment is not None
        spec = deployment["spec"]["template"]["spec"]
        weights = next(v for v in spec["volumes"] if v["name"] == "weights")
        assert weights["persistentVolumeClaim"] == {"claimName": "staging", "readOnly": True}
        server = next(c for c in spec["containers"] if c["name"] == "server")
        served_mount = next(m for m in server["volumeMounts"] if m["name"] == "weights")
        assert served_mount == {"name": "weights", "mountPath": "/models", "readOnly": True, "subPath": "models/tiny"}
        (verify,) = spec["initContainers"]  # verify-on-start, although the spec did not ask for it
        assert "--verify-only" in args_of(verify) and flag(verify, "--signature-file") == "model.sig"
        assert await asyncio.to_thread(kubelet.start_server_pod, NS, "m") == 0
        assert kubelet.server_sees(NS, "m") == staged
        world.kube.mark_deployment_available(NS, "m")
        await world.phase("Ready")


def resolve_directory_digest(path: Path) -> str:
    from openmodel_operator.evidence.manifest import manifest_digest

    return manifest_digest(resolve_directory(path).files, "model.sig")


async def test_a_file_changed_on_the_claim_after_the_decision_is_caught_at_pod_start_and_by_re_verification(
    world: World, operator: Any, tmp_path: Path
) -> None:
    kubelet = Kubelet(world.kube, tmp_path / "node")
    staged = stage(world, kubelet)
    world.policy()
    pvc_model(world)
    async with operator(claim_report_port=free_port(), reverify_interval=2):
        first = await next_examine_job(world)
        await run_examination(world, kubelet, first)
        await world.until(lambda: world.child("deployments", "m"), timeout=10)
        assert await asyncio.to_thread(kubelet.start_server_pod, NS, "m") == 0  # control: the untouched claim
        world.kube.mark_deployment_available(NS, "m")
        await world.phase("Ready")

        # a re-verification of the untouched claim keeps it serving (control)
        second = await next_examine_job(world, {first["metadata"]["name"]})
        await run_examination(world, kubelet, second)
        await world.until(lambda: world.status()["provenance"]["verifiedAt"] != "", timeout=5)
        assert world.status()["phase"] == "Ready"

        (staged / "model.safetensors").write_bytes(os.urandom(4096))  # someone with write access to the claim
        assert await asyncio.to_thread(kubelet.start_server_pod, NS, "m") == 1  # a restarting pod refuses it
        assert "model.safetensors" in kubelet.logs[-1]

        third = await next_examine_job(world, {first["metadata"]["name"], second["metadata"]["name"]})
        await run_examination(world, kubelet, third)
        await world.phase("Rejected", timeout=30)
        assert world.cond("Trusted") == ("False", "ManifestMismatch")
        signature = condition(world, "SignatureVerified")
        assert signature["reason"] == "ManifestMismatch" and "model.safetensors" in signature["message"]
        await world.until(lambda: (world.child("deployments", "m") or {}).get("spec", {}).get("replicas") == 0)
        assert condition(world, "Available")["reason"] == "ScaledToZero"


async def test_a_forged_report_of_the_signed_files_cannot_serve_tampered_bytes(
    world: World, operator: Any, tmp_path: Path
) -> None:
    """The tenant reads the nonce from the Job and reports the signed file list while the claim holds other bytes:
    the decision admits what the signature covers, and verify-on-start is what refuses the bytes."""
    kubelet = Kubelet(world.kube, tmp_path / "node")
    staged = stage(world, kubelet)
    signed = resolve_directory(staged)
    bundle = (staged / "model.sig").read_bytes()
    (staged / "model.safetensors").write_bytes(os.urandom(4096))  # tampered before the examination
    world.policy()
    pvc_model(world, serving={"verifyOnStart": False})  # the tenant turns the check off: a claim is checked anyway
    async with operator(claim_report_port=free_port()):
        job = await next_examine_job(world)
        nonce = flag(job, "--nonce")
        forged = encode_report(nonce, signed.files, signature=bundle, readme=FILES["README.md"])
        assert await asyncio.to_thread(post, report_url(job), forged) == 202
        # the report says what the signature covers: admitted
        await world.until(lambda: world.cond("Trusted") == ("True", "PoliciesPassed"), timeout=10)
        await world.until(lambda: world.child("deployments", "m"), timeout=10)
        assert await asyncio.to_thread(kubelet.start_server_pod, NS, "m") == 1  # the claim does not hold it
        assert "model.safetensors" in kubelet.logs[-1]
        # the real Job's report comes second: refused, one report per examination (409 while the forged one waits,
        # 404 once it was decided: the pod gives up after its attempts)
        assert await asyncio.to_thread(kubelet.run_pod, NS, job["spec"]["template"]["spec"]) in (1, 2)


async def test_forged_reports_are_refused_or_decided_untrusted_with_a_reason(
    world: World, operator: Any, tmp_path: Path
) -> None:
    kubelet = Kubelet(world.kube, tmp_path / "node")
    staged = stage(world, kubelet)
    signed = resolve_directory(staged)
    bundle = (staged / "model.sig").read_bytes()
    world.policy()
    pvc_model(world)
    async with operator(claim_report_port=free_port()):
        job = await next_examine_job(world)
        url, nonce = report_url(job), flag(job, "--nonce")
        base = url.rsplit("/", 1)[0]

        # refused at the door, the model untouched: no such examination, wrong method or type, too large
        assert await asyncio.to_thread(post, f"{base}/{'0' * 32}", encode_report("0" * 32, signed.files)) == 404
        assert await asyncio.to_thread(post, f"{base}/not-a-nonce", b"{}") == 404
        assert await asyncio.to_thread(post, url, b"{}", "text/plain") == 415
        assert await asyncio.to_thread(announce, url, MAX_REPORT_BYTES + 1) == 413  # refused before it is sent
        assert world.status()["phase"] == "Verifying"

        # a file list that does not match the signed manifest: decided Untrusted, the file named
        tampered = [FileEntry(f.path, f.size, "0" * 64) if f.path == "model.safetensors" else f for f in signed.files]
        assert await asyncio.to_thread(post, url, encode_report(nonce, tampered, signature=bundle)) == 202
        # a second report for the examination: 409 while it waits, 404 once it was decided; never read
        assert await asyncio.to_thread(post, url, encode_report(nonce, signed.files, signature=bundle)) in (404, 409)
        await world.phase("Rejected", timeout=30)
        signature = condition(world, "SignatureVerified")
        assert signature["reason"] == "ManifestMismatch" and "model.safetensors" in signature["message"]
        assert world.child("deployments", "m") is None


async def test_a_report_signed_by_a_key_no_policy_trusts_is_untrusted(
    world: World, operator: Any, tmp_path: Path
) -> None:
    kubelet = Kubelet(world.kube, tmp_path / "node")
    stranger = new_key()
    staged = stage(world, kubelet, key=stranger)  # the files are fine; the signer is not trusted
    world.policy()
    pvc_model(world)
    async with operator(claim_report_port=free_port()):
        job = await next_examine_job(world)
        await run_examination(world, kubelet, job)
        await world.phase("Rejected", timeout=30)
        trusted = condition(world, "Trusted")
        assert trusted["status"] == "False" and trusted["reason"] in ("UntrustedSigner", "SignatureInvalid")
        assert world.child("deployments", "m") is None
        assert staged.is_dir()


async def test_a_malformed_report_fails_the_examination_with_a_reason(
    world: World, operator: Any, tmp_path: Path
) -> None:
    kubelet = Kubelet(world.kube, tmp_path / "node")
    stage(world, kubelet)
    world.policy()
    pvc_model(world)
    async with operator(claim_report_port=free_port()):
        job = await next_examine_job(world)
        deep = b"[" * 100_000 + b"]" * 100_000
        assert await asyncio.to_thread(post, report_url(job), deep) == 202  # bounded in size: parsed in the pass
        await world.phase("Failed", timeout=30)
        resolved = condition(world, "Resolved")
        assert resolved["reason"] == "ClaimReportInvalid" and job["metadata"]["name"] in resolved["message"]
        assert world.child("deployments", "m") is None
        await world.until(
            lambda: "ClaimReportInvalid" in [e["reason"] for e in world.kube.events_for("m", namespace=NS)]
        )


async def test_a_job_that_never_reports_or_fails_leaves_a_clear_status_and_nothing_served(
    world: World, operator: Any, tmp_path: Path
) -> None:
    kubelet = Kubelet(world.kube, tmp_path / "node")
    stage(world, kubelet)
    world.policy()
    pvc_model(world)
    async with operator(claim_report_port=free_port(), claim_examination_deadline=1):
        await next_examine_job(world)  # never run: no node picks it up
        await world.phase("Failed", timeout=30)
        resolved = condition(world, "Resolved")
        assert resolved["reason"] == "ClaimNotReported" and "did not report" in resolved["message"]
        assert world.child("deployments", "m") is None
    pvc_model(world, name="n")
    async with operator(claim_report_port=free_port()):
        job = await world.until(lambda: next((j for j in world.jobs("n")), None), timeout=10)
        world.kube.complete_job(NS, job["metadata"]["name"], succeeded=False)
        await world.phase("Failed", name="n", timeout=10)
        status = world.status("n")
        resolved = next(c for c in status["conditions"] if c["type"] == "Resolved")
        assert resolved["reason"] == "ClaimExaminationFailed" and "kubectl logs job/" in resolved["message"]


async def test_without_the_listener_a_pvc_source_fails_with_a_clear_message(world: World, operator: Any) -> None:
    world.policy()
    pvc_model(world)
    async with operator():  # claim_report_port=0
        await world.phase("Failed", timeout=30)
        resolved = condition(world, "Resolved")
        assert resolved["reason"] == "InvalidSource" and "claim report listener" in resolved["message"]
        assert world.jobs() == []


def test_report_claim_reports_a_link_as_an_error_not_as_files(tmp_path: Path) -> None:
    """The command itself: a link on the claim is reported as the refusal it is (control: a plain directory)."""
    from openmodel_operator.commands.report_claim import build_report

    model = write_model(tmp_path / "m", {"a.bin": b"x"})
    plain = json.loads(build_report(model, URI, "model.sig", "a" * 32))
    assert [f["path"] for f in plain["files"]] == ["a.bin"]
    (model / "link").symlink_to("/etc/passwd")
    linked = json.loads(build_report(model, URI, "model.sig", "a" * 32))
    assert linked["error"]["reason"] == "SymlinkNotAllowed" and "files" not in linked
