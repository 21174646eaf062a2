"""LoRA adapters end to end (issue 9): the real operator against the emulator and the Hub stand-in, with the
kubelet stand-in running the adapters' pull Jobs and the serving pods' verify-on-start checks on directories.

An adapter is verified under the same policies as its base model, pulled into its own slot and loaded with
vLLM's LoRA flags; a refused adapter is never loaded and does not take the base model down; tampering with
an adapter's slot is caught when a pod starts; revoking a loaded adapter needs no source.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from kube_fixtures import kube, run_operator
from kubelet_player import Kubelet
from openmodel_operator.planning import children
from signing_fixtures import new_key
from test_operator import NS, World, operator, world

__all__ = ["kube", "operator", "run_operator", "world"]  # the fixtures this module uses

LORA_FILES = {
    "README.md": b"---\nlicense: apache-2.0\nbase_model: org/model\n---\n# sql adapter\n",
    "adapter_config.json": b'{"r": 8, "base_model_name_or_path": "org/model"}\n',
    "adapter_model.safetensors": b"\x01" * 2048,
}


def adapter_jobs(world: World) -> dict[str, dict[str, Any]]:
    """The adapters' pull Jobs by adapter name."""
    return {
        j["metadata"]["annotations"][children.ADAPTER_ANNOTATION]: j
        for j in world.jobs()
        if children.ADAPTER_ANNOTATION in (j["metadata"].get("annotations") or {})
    }


def server_args(world: World) -> list[str]:
    deployment = world.child("deployments", "m")
    assert deployment is not None
    return list(deployment["spec"]["template"]["spec"]["containers"][0]["args"])


def adapters_of(world: World) -> dict[str, dict[str, Any]]:
    return {a["name"]: a for a in (world.status().get("provenance") or {}).get("adapters") or []}


async def run(world: World, kubelet: Kubelet, job: dict[str, Any]) -> None:
    """Play the Job's pod (a real pull from the Hub stand-in) and the Job controller."""
    name = job["metadata"]["name"]
    assert await asyncio.to_thread(kubelet.run_job, NS, name) == 0, kubelet.logs[-1]
    world.kube.complete_job(NS, name)


async def serve_base(world: World, kubelet: Kubelet) -> None:
    """The base model pulled and its Deployment available."""
    await world.until(
        lambda: [
            j
            for j in world.jobs()
            if children.ADAPTER_ANNOTATION not in j["metadata"].get("annotations", {})
            and j["metadata"]["labels"][children.COMPONENT_LABEL] == "fetch"
        ],
        timeout=10,
    )
    base = next(j for j in world.jobs() if children.ADAPTER_ANNOTATION not in j["metadata"].get("annotations", {}))
    await run(world, kubelet, base)
    await world.until(lambda: world.child("deployments", "m"), timeout=10)


def partner_signed_adapter(world: World) -> list[dict[str, str]]:
    """The model signed by the org, adapter org/sql-lora by a partner; a policy trusting both keys (returned)."""
    partner = new_key()
    world.publish()
    world.publish("org/sql-lora", LORA_FILES, key=partner)
    keys = [
        {"name": "org-release", "publicKey": world.key.public_pem.decode()},
        {"name": "partner", "publicKey": partner.public_pem.decode()},
    ]
    world.policy(signature={"required": True, "keys": keys})
    return keys


async def load_sql(world: World, kubelet: Kubelet) -> None:
    """Serve the base model, pull adapter sql, and roll the pods out with it."""
    await serve_base(world, kubelet)
    await world.until(lambda: "sql" in adapter_jobs(world), timeout=10)
    await run(world, kubelet, adapter_jobs(world)["sql"])
    await world.until(lambda: "--lora-modules" in server_args(world), timeout=10)
    world.kube.mark_deployment_available(NS, "m")
    await world.until(lambda: world.cond("AdaptersReady") == ("True", "AdaptersLoaded"), timeout=10)


async def test_a_verified_adapter_is_loaded_and_a_refused_one_never_is_while_the_base_serves(
    world: World, operator: Any, tmp_path: Path
) -> None:
    kubelet = Kubelet(world.kube, tmp_path / "node")
    stranger = new_key()
    world.publish()
    world.publish("org/sql-lora", LORA_FILES)
    world.publish("org/evil-lora", {**LORA_FILES, "adapter_model.safetensors": b"\x02" * 2048}, key=stranger)
    world.policy()
    lora = {"uri": "hf://org/sql-lora", "endpoint": world.hub.url}
    evil = {"uri": "hf://org/evil-lora", "endpoint": world.hub.url}
    world.model(adapters=[{"name": "sql", "source": lora}, {"name": "evil", "source": evil}])
    async with operator():
        await serve_base(world, kubelet)
        await world.until(lambda: "sql" in adapter_jobs(world), timeout=10)
        assert "evil" not in adapter_jobs(world)  # refused before anything is pulled
        await run(world, kubelet, adapter_jobs(world)["sql"])
        await world.until(lambda: "--lora-modules" in server_args(world), timeout=10)
        args = server_args(world)
        assert args[args.index("--lora-modules") + 1] == "sql=/adapters/sql"
        assert not any("evil" in a for a in args)
        world.kube.mark_deployment_available(NS, "m")
        status = await world.phase("Degraded")
        assert world.cond("AdaptersReady") == ("False", "AdapterRejected")
        assert next(c for c in status["conditions"] if c["type"] == "Ready")["status"] == "True"
        records = adapters_of(world)
        assert records["sql"]["verdict"] == "Trusted" and records["sql"]["signature"]["identity"] == "org-release"
        assert records["sql"]["license"] == "Apache-2.0" and records["sql"]["resolvedRevision"]
        assert records["evil"]["verdict"] == "Untrusted" and not records["evil"].get("loaded")
        assert records["evil"]["reason"] == "UntrustedSigner"
        events = [e for e in world.kube.list("events", NS) if e.get("reason") == "AdapterRejected"]
        assert events and events[0]["type"] == "Warning" and "evil" in events[0]["message"]

        # a serving pod checks the adapter's slot like the model's, and mounts exactly it
        assert await asyncio.to_thread(kubelet.start_server_pod, NS, "m") == 0
        digest = records["sql"]["manifestDigest"]
        slot = kubelet.claim(NS, "m-weights") / children.slot_dir(digest)
        assert kubelet.server_sees(NS, "m", "/adapters/sql") == slot
        (slot / "adapter_model.safetensors").write_bytes(b"\x03" * 2048)  # tampered on the volume
        assert await asyncio.to_thread(kubelet.start_server_pod, NS, "m") != 0
        assert "adapter_model.safetensors" in kubelet.logs[-1]

        # control: the refused adapter removed from the spec, the model is whole again
        world.kube.patch_object("openmodels", NS, "m", {"spec": {"adapters": [{"name": "sql", "source": lora}]}})
        world.kube.mark_deployment_available(NS, "m")
        await world.until(lambda: world.cond("AdaptersReady") == ("True", "AdaptersLoaded"), timeout=10)
        assert world.status()["phase"] == "Ready" and set(adapters_of(world)) == {"sql"}


async def test_revoking_a_loaded_adapter_needs_no_source_and_restarts_the_pods_without_it(
    world: World, operator: Any, tmp_path: Path
) -> None:
    kubelet = Kubelet(world.kube, tmp_path / "node")
    keys = partner_signed_adapter(world)
    lora = {"uri": "hf://org/sql-lora", "endpoint": world.hub.url}
    world.model(adapters=[{"name": "sql", "source": lora}], storage={"accessMode": "ReadWriteMany"})
    async with operator():
        await load_sql(world, kubelet)
        deployment = world.child("deployments", "m")
        assert deployment is not None and deployment["spec"]["strategy"]["type"] == "RollingUpdate"

        # the partner's key is revoked while the Hub is down: decided from the kept evidence
        world.hub.stop()
        world.kube.patch_object("modeltrustpolicies", None, "org", {"spec": {"signature": {"keys": keys[:1]}}})
        await world.until(lambda: "--lora-modules" not in server_args(world), timeout=10)
        deployment = world.child("deployments", "m")
        assert deployment is not None
        assert deployment["spec"]["strategy"] == {"type": "Recreate"}  # no old pod keeps the revoked adapter
        await world.until(lambda: world.cond("AdaptersReady") == ("False", "AdapterRejected"), timeout=10)
        assert adapters_of(world)["sql"]["verdict"] == "Untrusted"
        assert adapters_of(world)["sql"]["reason"] == "UntrustedSigner"  # decided, not "source unreachable"
        world.kube.mark_deployment_available(NS, "m")
        await world.until(lambda: world.status()["phase"] == "Degraded", timeout=10)
        assert world.cond("Trusted") == ("True", "PoliciesPassed")  # the base model is untouched


async def test_after_a_restart_adapters_are_decided_from_what_was_recorded_without_the_source(
    world: World, operator: Any, tmp_path: Path
) -> None:
    kubelet = Kubelet(world.kube, tmp_path / "node")
    keys = partner_signed_adapter(world)
    lora = {"uri": "hf://org/sql-lora", "endpoint": world.hub.url}
    world.model(adapters=[{"name": "sql", "source": lora}])
    async with operator():
        await load_sql(world, kubelet)
    generation = (world.child("deployments", "m") or {})["metadata"]["generation"]

    audit = {
        "apiVersion": "openmodel.io/v1alpha1",
        "kind": "ModelTrustPolicy",
        "metadata": {"name": "audit-everything"},
        "spec": {
            "mode": "Audit",
            "sources": {"endpoints": {"allow": [world.hub.url]}},
            "signature": {"required": True, "keys": keys[1:]},
        },
    }
    async with operator():
        world.hub.stop()  # nothing below may need the source (the settings of the restart still name it)
        world.kube.create_object(audit)
        await world.until(
            lambda: (
                {p["name"] for p in (world.status().get("provenance") or {}).get("policies") or []}
                == {"org", "audit-everything"}
            ),
            timeout=10,
        )
        # a policy change after the restart: decided from the adapter's recorded evidence, still loaded
        assert world.cond("AdaptersReady") == ("True", "AdaptersLoaded")
        assert {p["name"] for p in adapters_of(world)["sql"]["policies"]} == {"org", "audit-everything"}
        assert (world.child("deployments", "m") or {})["metadata"]["generation"] == generation

        # revoking the adapter's signer: decided the same way, and the pods restart without it
        world.kube.patch_object("modeltrustpolicies", None, "org", {"spec": {"signature": {"keys": keys[:1]}}})
        await world.until(lambda: "--lora-modules" not in server_args(world), timeout=10)
        await world.until(lambda: adapters_of(world)["sql"]["verdict"] == "Untrusted", timeout=10)
        assert adapters_of(world)["sql"]["reason"] == "UntrustedSigner"
