"""The children of an OpenModel: what a user finds in the cluster, and that the apiserver would accept it."""

from __future__ import annotations

import hashlib
import re
from typing import Any

import kubernetes_validate
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from openmodel_operator.api.openmodel import OpenModelSpec
from openmodel_operator.evidence.manifest import manifest_digest_of
from openmodel_operator.evidence.pinned import PinnedManifest
from openmodel_operator.evidence.records import FileEntry
from openmodel_operator.planning import children
from openmodel_operator.planning.children import ChildSettings, ModelRef

K8S_VERSION = "1.28"
DNS1035 = re.compile(r"[a-z]([-a-z0-9]*[a-z0-9])?")
DNS1123_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
LABEL_VALUE = re.compile(r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?")
QUALIFIED_NAME = re.compile(
    r"([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?"
)
COMMON_LABELS = {
    "app.kubernetes.io/name": "openmodel",
    "app.kubernetes.io/managed-by": "openmodel-operator",
    "app.kubernetes.io/part-of": "openmodel",
}

SETTINGS = ChildSettings(operator_image="ghcr.io/openmodel/operator:0.1.0", vllm_image="vllm/vllm-openai:v0.10.1")
REF = ModelRef(name="granite-3b", namespace="models", uid="0b8f6a4e-6c1d-4d3e-9f1a-2b3c4d5e6f70", generation=2)


def make_pinned(
    seed: str = "v1", source: str = "hf://ibm-granite/granite-3b", revision: str | None = "c" * 40
) -> PinnedManifest:
    files = tuple(
        FileEntry(path, size, hashlib.sha256(f"{seed}/{path}".encode()).hexdigest())
        for path, size in (("config.json", 700), ("model.safetensors", 6_000_000_000), ("tokenizer.json", 2_000_000))
    )
    digest = manifest_digest_of(files)
    return PinnedManifest(source=source, revision=revision, manifest_digest=digest, files=files)


PINNED = make_pinned()


def make_spec(**sections: dict[str, Any]) -> OpenModelSpec:
    doc: dict[str, Any] = {"source": {"uri": "hf://ibm-granite/granite-3b"}}
    for key, value in sections.items():
        doc[key] = {**doc.get(key, {}), **value}
    return OpenModelSpec.model_validate(doc)


def by_kind(objects: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {obj["kind"]: obj for obj in objects}


def containers(pod_spec: dict[str, Any]) -> list[dict[str, Any]]:
    return [*pod_spec.get("initContainers", []), *pod_spec["containers"]]


def env_of(container: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container.get("env", [])}


def pod_spec_of(obj: dict[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = obj["spec"]["template"]["spec"]
    return spec


# ---------------------------------------------------------------- what the apiserver checks


def check_valid(obj: dict[str, Any]) -> None:
    """The object's schema (Kubernetes 1.28 OpenAPI, unknown fields refused) plus the apiserver's name rules."""
    kubernetes_validate.validate(obj, K8S_VERSION, strict=True)
    meta = obj["metadata"]
    name = meta["name"]
    # Service names are DNS-1035 labels; Job names become a label value; all our children use the stricter form
    assert len(name) <= 63 and DNS1035.fullmatch(name), name
    assert DNS1123_LABEL.fullmatch(meta["namespace"])
    templates = [obj["spec"]["template"]] if obj["kind"] in ("Job", "Deployment") else []
    for holder in [meta, *(t["metadata"] for t in templates)]:
        for key, value in holder.get("labels", {}).items():
            assert QUALIFIED_NAME.fullmatch(key) and len(key.split("/")[-1]) <= 63, key
            assert isinstance(value, str) and len(value) <= 63 and LABEL_VALUE.fullmatch(value), value
        for key, value in holder.get("annotations", {}).items():
            assert QUALIFIED_NAME.fullmatch(key) and isinstance(value, str)
    for template in templates:
        pod = template["spec"]
        volumes = [v["name"] for v in pod["volumes"]]
        assert len(volumes) == len(set(volumes))
        names = [c["name"] for c in containers(pod)]
        assert len(names) == len(set(names))
        for container in containers(pod):
            env = [e["name"] for e in container.get("env", [])]
            assert len(env) == len(set(env)), f"duplicate env in {container['name']}: {env}"  # SSA refuses duplicates
            mounts = container.get("volumeMounts", [])
            assert {m["name"] for m in mounts} <= set(volumes)
            assert len({m["mountPath"] for m in mounts}) == len(mounts)
            for port in container.get("ports", []):
                assert len(port["name"]) <= 15
            for kind in ("limits", "requests"):
                for value in container.get("resources", {}).get(kind, {}).values():
                    assert isinstance(value, str)  # quantities as strings: strict clients refuse numbers
    if obj["kind"] == "Deployment":
        selector = obj["spec"]["selector"]["matchLabels"]
        assert selector.items() <= obj["spec"]["template"]["metadata"]["labels"].items()


def test_every_child_is_valid_for_kubernetes_1_28() -> None:
    spec = make_spec(
        source={"tokenSecretRef": {"name": "hf-token"}, "endpoint": "https://hf-mirror.internal"},
        serving={
            "gpus": 2,
            "args": ["--max-model-len", "8192"],
            "env": [{"name": "VLLM_LOGGING_LEVEL", "value": "DEBUG"}],
            "resources": {"limits": {"memory": "64Gi", "cpu": 8}, "requests": {"cpu": "4"}},
            "nodeSelector": {"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3"},
            "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
            "runtimeClassName": "nvidia",
        },
        storage={"storageClassName": "fast", "size": "40Gi"},
    )
    objects = children.all_children(REF, spec, PINNED, SETTINGS)
    assert [o["kind"] for o in objects] == ["ConfigMap", "PersistentVolumeClaim", "Job", "Deployment", "Service"]
    for obj in objects:
        check_valid(obj)


def test_an_invalid_object_is_caught() -> None:
    """The validator is not vacuous: a misspelt field fails."""
    deployment = children.deployment(REF, make_spec(), PINNED, SETTINGS)
    assert deployment is not None
    pod_spec_of(deployment)["automountServiceAcountToken"] = False
    with pytest.raises(kubernetes_validate.ValidationError):
        check_valid(deployment)


# ---------------------------------------------------------------- common metadata


def test_every_child_carries_the_common_labels_and_an_owner_reference() -> None:
    for obj in children.all_children(REF, make_spec(), PINNED, SETTINGS):
        labels = obj["metadata"]["labels"]
        assert COMMON_LABELS.items() <= labels.items()
        assert labels["app.kubernetes.io/instance"] == REF.name
        assert labels["openmodel.io/name"] == REF.name
        assert obj["metadata"]["namespace"] == REF.namespace
        assert obj["metadata"]["ownerReferences"] == [
            {
                "apiVersion": "openmodel.io/v1alpha1",
                "kind": "OpenModel",
                "name": REF.name,
                "uid": REF.uid,
                "controller": True,
                "blockOwnerDeletion": False,
            }
        ]
        if obj["kind"] in ("Job", "Deployment"):
            assert COMMON_LABELS.items() <= obj["spec"]["template"]["metadata"]["labels"].items()
    components = {
        o["kind"]: o["metadata"]["labels"]["app.kubernetes.io/component"]
        for o in children.all_children(REF, make_spec(), PINNED, SETTINGS)
    }
    assert components == {
        "ConfigMap": "manifest",
        "PersistentVolumeClaim": "weights",
        "Job": "fetch",
        "Deployment": "server",
        "Service": "server",
    }


def test_child_names_match_the_objects() -> None:
    objects = by_kind(children.all_children(REF, make_spec(), PINNED, SETTINGS))
    assert children.child_names(REF, PINNED) == {kind: obj["metadata"]["name"] for kind, obj in objects.items()}
    assert "Job" not in children.child_names(REF, None)


# ---------------------------------------------------------------- manifest ConfigMap and volume


def test_configmap_holds_the_pinned_manifest() -> None:
    cm = children.pinned_manifest_configmap(REF, make_spec(), PINNED, SETTINGS)
    # one ConfigMap per revision: the pods of the revision served keep reading their own while another is pulled
    assert cm["metadata"]["name"] == f"granite-3b-manifest-{PINNED.manifest_digest[7:17]}"
    assert PinnedManifest.from_json(cm["data"]["manifest.json"]) == PINNED


def test_a_manifest_too_large_for_a_configmap_is_refused() -> None:
    files = tuple(FileEntry(f"shard-{i:05d}-with-a-long-descriptive-name.bin", 1, "a" * 64) for i in range(9000))
    pinned = PinnedManifest("hf://o/m", "c" * 40, manifest_digest_of(files), files)
    with pytest.raises(children.ChildrenError, match="ConfigMap"):
        children.pinned_manifest_configmap(REF, make_spec(), pinned, SETTINGS)


def test_pvc_follows_spec_storage() -> None:
    pvc = children.weights_pvc(
        REF, make_spec(storage={"size": "120Gi", "accessMode": "ReadWriteMany"}), PINNED, SETTINGS
    )
    assert pvc["metadata"]["name"] == "granite-3b-weights"
    assert pvc["spec"]["accessModes"] == ["ReadWriteMany"]
    assert pvc["spec"]["resources"]["requests"]["storage"] == "120Gi"
    assert "storageClassName" not in pvc["spec"]  # the cluster default applies
    with_class = children.weights_pvc(REF, make_spec(storage={"storageClassName": "ssd"}), PINNED, SETTINGS)
    assert with_class["spec"]["storageClassName"] == "ssd"


def test_a_retained_pvc_has_no_owner_so_garbage_collection_cannot_delete_it() -> None:
    retained = children.weights_pvc(REF, make_spec(storage={"retain": True}), PINNED, SETTINGS)
    assert "ownerReferences" not in retained["metadata"]
    owned = children.weights_pvc(REF, make_spec(storage={"retain": False}), PINNED, SETTINGS)
    assert owned["metadata"]["ownerReferences"][0]["uid"] == REF.uid


# ---------------------------------------------------------------- fetch Job


def test_fetch_job_is_locked_down() -> None:
    job = children.fetch_job(REF, make_spec(), PINNED, SETTINGS)
    pod = pod_spec_of(job)
    assert pod["automountServiceAccountToken"] is False
    assert pod["restartPolicy"] == "Never"
    assert pod["securityContext"] == {
        "runAsNonRoot": True,
        "runAsUser": 65532,
        "runAsGroup": 65532,
        "fsGroup": 65532,
        "fsGroupChangePolicy": "OnRootMismatch",
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    (container,) = pod["containers"]
    assert container["image"] == SETTINGS.operator_image
    assert container["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
    }
    env = env_of(container)
    assert env["HOME"] == "/tmp" and env["HF_HOME"] == "/tmp/hf" and env["HF_HUB_DISABLE_XET"] == "1"
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    assert mounts["/tmp"]["name"] == "tmp"
    assert {"name": "tmp", "emptyDir": {"sizeLimit": "1Gi"}} in pod["volumes"]
    assert mounts["/etc/openmodel"]["readOnly"] is True
    assert not mounts["/volume"].get("readOnly") and "subPath" not in mounts["/volume"]


def test_fetch_job_runs_openmodel_fetch_on_the_pinned_manifest() -> None:
    job = children.fetch_job(REF, make_spec(), PINNED, SETTINGS)
    (container,) = pod_spec_of(job)["containers"]
    command = container["command"]
    assert command[:2] == ["openmodel", "fetch"]
    assert command[command.index("--manifest") + 1] == "/etc/openmodel/manifest.json"
    # into the revision's own directory, named by its content: never the directory being served
    assert command[command.index("--dest") + 1] == f"/volume/sha256-{PINNED.manifest_digest[7:]}"
    assert command[command.index("--expect-digest") + 1] == PINNED.manifest_digest
    assert "--verify-only" not in command
    volumes = {v["name"]: v for v in pod_spec_of(job)["volumes"]}
    assert volumes["manifest"]["configMap"]["name"] == f"granite-3b-manifest-{PINNED.manifest_digest[7:17]}"
    assert volumes["weights"]["persistentVolumeClaim"]["claimName"] == "granite-3b-weights"


def test_fetch_job_retries_are_bounded_and_its_status_is_kept() -> None:
    custom = ChildSettings("op", "vllm", fetch_backoff_limit=1, fetch_active_deadline_seconds=600)
    job = children.fetch_job(REF, make_spec(), PINNED, custom)
    assert job["spec"]["backoffLimit"] == 1
    assert job["spec"]["activeDeadlineSeconds"] == 600
    assert "ttlSecondsAfterFinished" not in job["spec"]
    rules = job["spec"]["podFailurePolicy"]["rules"]
    assert rules[0]["action"] == "FailJob" and rules[0]["onExitCodes"]["values"] == [1]  # bad bytes: no retry


def test_fetch_job_name_is_deterministic_per_digest() -> None:
    first = children.fetch_job(REF, make_spec(), PINNED, SETTINGS)["metadata"]["name"]
    again = children.fetch_job(REF, make_spec(), make_pinned(), SETTINGS)["metadata"]["name"]
    other = children.fetch_job(REF, make_spec(), make_pinned("v2"), SETTINGS)["metadata"]["name"]
    hex10 = PINNED.manifest_digest.removeprefix("sha256:")[:10]
    assert first == again == f"granite-3b-pull-{hex10}"
    assert other != first


def test_hub_token_is_mounted_only_when_a_secret_is_named() -> None:
    without = pod_spec_of(children.fetch_job(REF, make_spec(), PINNED, SETTINGS))["containers"][0]
    assert "HF_TOKEN" not in env_of(without)
    spec = make_spec(source={"tokenSecretRef": {"name": "hf-token", "key": "read"}})
    with_token = pod_spec_of(children.fetch_job(REF, spec, PINNED, SETTINGS))["containers"][0]
    assert env_of(with_token)["HF_TOKEN"] == {"secretKeyRef": {"name": "hf-token", "key": "read"}}
    for obj in children.all_children(REF, spec, PINNED, SETTINGS):
        if obj["kind"] == "Deployment":
            for container in containers(pod_spec_of(obj)):
                assert "HF_TOKEN" not in env_of(container)  # the server never sees the token


def test_fetch_job_uses_the_mirror_endpoint() -> None:
    spec = make_spec(source={"endpoint": "https://hf-mirror.internal"})
    container = pod_spec_of(children.fetch_job(REF, spec, PINNED, SETTINGS))["containers"][0]
    assert env_of(container)["HF_ENDPOINT"] == "https://hf-mirror.internal"
    plain = pod_spec_of(children.fetch_job(REF, make_spec(), PINNED, SETTINGS))["containers"][0]
    assert "HF_ENDPOINT" not in env_of(plain)


def test_fetch_job_for_a_pvc_source_mounts_the_source_read_only() -> None:
    pinned = make_pinned(source="pvc://staging/models/granite", revision=None)
    spec = make_spec(source={"uri": "pvc://staging/models/granite"})
    job = children.fetch_job(REF, spec, pinned, SETTINGS)
    check_valid(job)
    pod = pod_spec_of(job)
    source = next(v for v in pod["volumes"] if v["name"] == "source")
    assert source["persistentVolumeClaim"] == {"claimName": "staging", "readOnly": True}
    mount = next(m for m in pod["containers"][0]["volumeMounts"] if m["name"] == "source")
    assert mount == {"name": "source", "mountPath": "/source", "readOnly": True, "subPath": "models/granite"}
    assert "--source-dir" in pod["containers"][0]["command"]
    assert children.REVISION_ANNOTATION not in job["metadata"]["annotations"]  # a directory has no commit


# ---------------------------------------------------------------- Deployment and Service


def server_of(deployment: dict[str, Any]) -> dict[str, Any]:
    container: dict[str, Any] = pod_spec_of(deployment)["containers"][0]
    return container


def make_deployment(spec: OpenModelSpec | None = None, **kwargs: Any) -> dict[str, Any]:
    obj = children.deployment(
        REF, spec or make_spec(), kwargs.pop("pinned", PINNED), kwargs.pop("settings", SETTINGS), **kwargs
    )
    assert obj is not None
    return obj


def test_server_runs_vllm_on_the_volume_under_the_model_name() -> None:
    server = server_of(make_deployment(make_spec(serving={"port": 9000, "args": ["--max-model-len", "4096"]})))
    assert server["image"] == SETTINGS.vllm_image
    assert server["command"] == ["vllm", "serve"]
    args = server["args"]
    assert args[0] == "/models"
    assert args[args.index("--served-model-name") + 1] == "granite-3b"
    assert args[args.index("--port") + 1] == "9000"
    assert args[args.index("--host") + 1] == "0.0.0.0"
    assert args[-2:] == ["--max-model-len", "4096"]  # user args last
    assert server["ports"] == [{"name": "http", "containerPort": 9000, "protocol": "TCP"}]


def test_custom_server_image_wins() -> None:
    assert server_of(make_deployment(make_spec(serving={"image": "registry.local/vllm:pinned"})))["image"] == (
        "registry.local/vllm:pinned"
    )


def test_several_gpus_default_to_tensor_parallelism_unless_set() -> None:
    args = server_of(make_deployment(make_spec(serving={"gpus": 4})))["args"]
    assert args[args.index("--tensor-parallel-size") + 1] == "4"
    user = server_of(make_deployment(make_spec(serving={"gpus": 4, "args": ["--tensor-parallel-size=2"]})))["args"]
    assert "--tensor-parallel-size" not in user and "--tensor-parallel-size=2" in user
    assert "--tensor-parallel-size" not in server_of(make_deployment(make_spec(serving={"gpus": 1})))["args"]


def test_gpu_limits_are_strings_and_serving_gpus_wins() -> None:
    spec = make_spec(
        serving={"gpus": 2, "resources": {"limits": {"nvidia.com/gpu": 8, "memory": "48Gi"}, "requests": {"cpu": 4}}}
    )
    resources = server_of(make_deployment(spec))["resources"]
    assert resources == {"limits": {"nvidia.com/gpu": "2", "memory": "48Gi"}, "requests": {"cpu": "4"}}
    cpu_only = make_spec(serving={"gpus": 0, "resources": {"limits": {"nvidia.com/gpu": 1}}})
    assert "nvidia.com/gpu" not in server_of(make_deployment(cpu_only)).get("resources", {}).get("limits", {})


def test_server_env_is_offline_and_the_user_cannot_turn_that_off() -> None:
    spec = make_spec(
        serving={
            "env": [
                {"name": "HF_HUB_OFFLINE", "value": "0"},
                {"name": "VLLM_ATTENTION_BACKEND", "value": "FLASHINFER"},
                {"name": "HOME", "value": "/scratch"},
                {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
            ]
        }
    )
    server = server_of(make_deployment(spec))
    env = env_of(server)
    assert env["HF_HUB_OFFLINE"] == "1" and env["TRANSFORMERS_OFFLINE"] == "1"
    assert env["VLLM_ATTENTION_BACKEND"] == "FLASHINFER"
    assert env["HOME"] == "/scratch"  # a default, so the user's value wins
    assert env["POD_IP"] == {"fieldRef": {"fieldPath": "status.podIP"}}
    names = [e["name"] for e in server["env"]]
    assert len(names) == len(set(names))


def test_server_reads_the_weights_read_only() -> None:
    deployment = make_deployment()
    pod = pod_spec_of(deployment)
    weights = next(v for v in pod["volumes"] if v["name"] == "weights")
    assert weights["persistentVolumeClaim"] == {"claimName": "granite-3b-weights", "readOnly": True}
    for container in containers(pod):
        mount = next(m for m in container["volumeMounts"] if m["name"] == "weights")
        assert mount["mountPath"] == "/models" and mount["readOnly"] is True


def test_server_pod_is_non_root_without_an_api_token() -> None:
    pod = pod_spec_of(make_deployment())
    assert pod["automountServiceAccountToken"] is False
    assert pod["enableServiceLinks"] is False  # a Service named vllm would inject VLLM_PORT and break vLLM
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    server = pod["containers"][0]
    assert server["securityContext"]["allowPrivilegeEscalation"] is False
    assert server["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    as_image_user = pod_spec_of(make_deployment(settings=ChildSettings("op", "vllm", server_run_as_user=None)))
    assert "runAsUser" not in as_image_user["securityContext"]
    verify = as_image_user["initContainers"][0]
    assert verify["securityContext"]["runAsNonRoot"] is True  # the check itself never runs as root


def test_shared_memory_and_health_probes() -> None:
    pod = pod_spec_of(make_deployment())
    dshm = next(v for v in pod["volumes"] if v["name"] == "dshm")
    assert dshm["emptyDir"] == {"medium": "Memory", "sizeLimit": "8Gi"}
    server = pod["containers"][0]
    assert any(m["mountPath"] == "/dev/shm" for m in server["volumeMounts"])
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert server[probe]["httpGet"] == {"path": "/health", "port": "http"}
    startup = server["startupProbe"]
    assert startup["periodSeconds"] * startup["failureThreshold"] >= SETTINGS.server_startup_seconds


def test_revision_and_digest_annotations_on_the_deployment_and_its_pods() -> None:
    deployment = make_deployment()
    for holder in (deployment["metadata"], deployment["spec"]["template"]["metadata"]):
        assert holder["annotations"]["openmodel.io/revision"] == "c" * 40
        assert holder["annotations"]["openmodel.io/manifest-digest"] == PINNED.manifest_digest
    newer = make_deployment(pinned=make_pinned("v2", revision="d" * 40))
    # a new verified content changes the pod template: that is the rollout
    assert newer["spec"]["template"] != deployment["spec"]["template"]
    assert newer["spec"]["selector"] == deployment["spec"]["selector"]  # immutable, so never content-dependent


def test_verify_on_start_adds_the_init_container_only_when_asked() -> None:
    pod = pod_spec_of(make_deployment(make_spec(serving={"verifyOnStart": True})))
    (verify,) = pod["initContainers"]
    assert verify["image"] == SETTINGS.operator_image
    assert verify["command"][:3] == ["openmodel", "fetch", "--verify-only"]
    assert verify["command"][verify["command"].index("--expect-digest") + 1] == PINNED.manifest_digest
    assert verify["securityContext"]["readOnlyRootFilesystem"] is True
    assert "initContainers" not in pod_spec_of(make_deployment(make_spec(serving={"verifyOnStart": False})))
    assert "manifest" not in {
        v["name"] for v in pod_spec_of(make_deployment(make_spec(serving={"verifyOnStart": False})))["volumes"]
    }


def test_scale_to_zero_keeps_the_deployment_without_pods() -> None:
    spec = make_spec(serving={"replicas": 3})
    assert make_deployment(spec)["spec"]["replicas"] == 3
    scaled = make_deployment(spec, scale_to_zero=True)
    assert scaled["spec"]["replicas"] == 0
    assert scaled["spec"]["template"] == make_deployment(spec)["spec"]["template"]
    objects = by_kind(children.all_children(REF, spec, PINNED, SETTINGS, scale_to_zero=True))
    assert objects["Deployment"]["spec"]["replicas"] == 0


def test_runtime_none_serves_nothing() -> None:
    spec = make_spec(serving={"runtime": "none"})
    assert children.deployment(REF, spec, PINNED, SETTINGS) is None
    assert children.service(REF, spec, PINNED, SETTINGS) is None
    assert children.endpoint_url(REF, spec) is None
    kinds = [o["kind"] for o in children.all_children(REF, spec, PINNED, SETTINGS)]
    assert kinds == ["ConfigMap", "PersistentVolumeClaim", "Job"]


@pytest.mark.parametrize(
    ("access_mode", "strategy"),
    [("ReadWriteOnce", "Recreate"), ("ReadWriteOncePod", "Recreate"), ("ReadWriteMany", "RollingUpdate")],
)
def test_rollout_strategy_follows_the_volume_access_mode(access_mode: str, strategy: str) -> None:
    deployment = make_deployment(make_spec(storage={"accessMode": access_mode}))
    assert deployment["spec"]["strategy"]["type"] == strategy


def test_scheduling_fields_pass_through() -> None:
    spec = make_spec(
        serving={
            "nodeSelector": {"gpu": "h100"},
            "tolerations": [
                {"key": "gpu", "operator": "Equal", "value": "yes", "effect": "NoExecute", "tolerationSeconds": 30}
            ],
            "runtimeClassName": "nvidia",
        }
    )
    pod = pod_spec_of(make_deployment(spec))
    assert pod["nodeSelector"] == {"gpu": "h100"}
    assert pod["tolerations"] == [
        {"key": "gpu", "operator": "Equal", "value": "yes", "effect": "NoExecute", "tolerationSeconds": 30}
    ]
    assert pod["runtimeClassName"] == "nvidia"


def test_service_exposes_port_80_to_the_server_pods() -> None:
    spec = make_spec(serving={"port": 8080})
    svc = children.service(REF, spec, PINNED, SETTINGS)
    assert svc is not None
    assert svc["metadata"]["name"] == "granite-3b"
    assert svc["spec"]["type"] == "ClusterIP"
    assert svc["spec"]["ports"] == [{"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}]
    deployment = make_deployment(spec)
    assert svc["spec"]["selector"] == deployment["spec"]["selector"]["matchLabels"]
    assert children.endpoint_url(REF, spec) == "http://granite-3b.models.svc.cluster.local/v1"


# ---------------------------------------------------------------- names


def test_long_names_are_shortened_deterministically() -> None:
    long_a = "a" * 60 + "." + "b" * 60 + ".model-one"
    long_b = "a" * 60 + "." + "b" * 60 + ".model-two"
    ref_a = ModelRef(long_a, "ns", "uid-a", 1)
    ref_b = ModelRef(long_b, "ns", "uid-b", 1)
    names_a = children.child_names(ref_a, PINNED)
    names_b = children.child_names(ref_b, PINNED)
    assert names_a == children.child_names(ref_a, PINNED)
    for kind, name in names_a.items():
        assert len(name) <= 63 and DNS1035.fullmatch(name), name
        assert name != names_b[kind]  # a shared prefix does not make two models share children
    assert names_a["Job"].endswith(f"-pull-{PINNED.manifest_digest[7:17]}")
    assert names_a["ConfigMap"].endswith(f"-manifest-{PINNED.manifest_digest[7:17]}")
    for obj in children.all_children(ref_a, make_spec(), PINNED, SETTINGS):
        check_valid(obj)
    server = server_of(make_deployment_for(ref_a))
    assert server["args"][server["args"].index("--served-model-name") + 1] == long_a  # clients use the real name
    assert children.endpoint_url(ref_a, make_spec()) == f"http://{names_a['Service']}.ns.svc.cluster.local/v1"


def make_deployment_for(ref: ModelRef) -> dict[str, Any]:
    obj = children.deployment(ref, make_spec(), PINNED, SETTINGS)
    assert obj is not None
    return obj


@pytest.mark.parametrize("name", ["llama.3-8b", "7b-instruct", "a" * 63])
def test_names_that_are_not_service_names_are_made_valid(name: str) -> None:
    for obj in children.all_children(ModelRef(name, "ns", "uid", 1), make_spec(), PINNED, SETTINGS):
        check_valid(obj)


def test_short_valid_names_are_kept_as_they_are() -> None:
    assert children.child_names(REF, None) == {
        "PersistentVolumeClaim": "granite-3b-weights",
        "Deployment": "granite-3b",
        "Service": "granite-3b",
    }


# ---------------------------------------------------------------- generated specs stay valid


DNS_SUBDOMAIN = st.from_regex(
    r"[a-z0-9]([-a-z0-9]{0,40}[a-z0-9])?(\.[a-z0-9]([-a-z0-9]{0,40}[a-z0-9])?){0,5}", fullmatch=True
).filter(lambda s: len(s) <= 253)
DNS_LABEL = st.from_regex(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?", fullmatch=True)
QUANTITY = st.one_of(st.integers(1, 512), st.sampled_from(["500m", "4", "16Gi", "1.5", "200M"]))


@st.composite
def openmodel_specs(draw: st.DrawFn) -> dict[str, Any]:
    runtime = draw(st.sampled_from(["vllm", "none"]))
    hf = draw(st.booleans())
    source: dict[str, Any] = {"uri": "hf://org/model" if hf else "pvc://staging/models/x"}
    if hf and draw(st.booleans()):
        source["tokenSecretRef"] = {"name": draw(DNS_SUBDOMAIN), "key": "token"}
    if hf and draw(st.booleans()):
        source["endpoint"] = "https://mirror.example"
    env_names = draw(st.lists(st.from_regex(r"[A-Z_][A-Z0-9_]{0,15}", fullmatch=True), max_size=4, unique=True))
    serving: dict[str, Any] = {
        "runtime": runtime,
        "replicas": draw(st.integers(0, 1000)),
        "gpus": draw(st.integers(0, 64)),
        "port": draw(st.integers(1, 65535)),
        "verifyOnStart": draw(st.booleans()),
        "args": draw(st.lists(st.text(max_size=30), max_size=5)),
        "env": [{"name": n, "value": draw(st.text(max_size=20))} for n in env_names],
    }
    if draw(st.booleans()):
        serving["resources"] = {
            "limits": draw(st.dictionaries(st.sampled_from(["cpu", "memory", "nvidia.com/gpu"]), QUANTITY, max_size=3)),
            "requests": draw(st.dictionaries(st.sampled_from(["cpu", "memory"]), QUANTITY, max_size=2)),
        }
    if draw(st.booleans()):
        serving["tolerations"] = [{"operator": "Exists"}]
        serving["nodeSelector"] = {"kubernetes.io/arch": "amd64"}
    storage = {
        "accessMode": draw(st.sampled_from(["ReadWriteOnce", "ReadWriteMany", "ReadWriteOncePod"])),
        "retain": draw(st.booleans()),
        "size": draw(st.sampled_from(["1Gi", "500G", "2Ti"])),
    }
    if draw(st.booleans()):
        storage["storageClassName"] = draw(DNS_SUBDOMAIN)
    return {"source": source, "serving": serving, "storage": storage}


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    name=DNS_SUBDOMAIN,
    namespace=DNS_LABEL,
    doc=openmodel_specs(),
    scale_to_zero=st.booleans(),
    seed=st.text(max_size=5),
)
def test_generated_specs_give_valid_children(
    name: str, namespace: str, doc: dict[str, Any], scale_to_zero: bool, seed: str
) -> None:
    spec = OpenModelSpec.model_validate(doc)
    ref = ModelRef(name, namespace, "uid", 1)
    hf = doc["source"]["uri"].startswith("hf://")
    pinned = make_pinned(seed, source=doc["source"]["uri"], revision="e" * 40 if hf else None)
    objects = by_kind(children.all_children(ref, spec, pinned, SETTINGS, scale_to_zero=scale_to_zero))
    for obj in objects.values():
        check_valid(obj)
    assert {k: o["metadata"]["name"] for k, o in objects.items()}.items() <= children.child_names(ref, pinned).items()
    serving = spec.serving
    if serving.runtime == "none":
        assert set(objects) == ({"ConfigMap", "PersistentVolumeClaim", "Job"} if hf else {"ConfigMap"})
        return
    deployment = objects["Deployment"]
    assert deployment["spec"]["replicas"] == (0 if scale_to_zero else serving.replicas)
    server = server_of(deployment)
    assert server["resources"].get("limits", {}).get("nvidia.com/gpu") == (str(serving.gpus) if serving.gpus else None)
    extra = serving.args or []
    assert server["args"][len(server["args"]) - len(extra) :] == extra  # user args last, untouched
    # a pvc:// source is served in place: its claim is re-hashed at every start, whatever verifyOnStart says
    assert ("initContainers" in pod_spec_of(deployment)) == (serving.verify_on_start or not hf)
    assert env_of(server)["HF_HUB_OFFLINE"] == "1"
    url = children.endpoint_url(ref, spec)
    assert url == f"http://{objects['Service']['metadata']['name']}.{namespace}.svc.cluster.local/v1"
