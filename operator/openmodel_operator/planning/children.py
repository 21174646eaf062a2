"""The Kubernetes objects one OpenModel owns, built as plain dicts ready for server-side apply.

Pure functions (no I/O, no clock): the reconciler applies what they return, ``openmodel render``
prints it, and tests validate it against the Kubernetes OpenAPI schemas. Every builder takes the
same ``(ref, spec, pinned, settings)`` so the planner can call them alike.

Children, in apply order:

- ConfigMap ``<name>-manifest-<digest[:10]>``: one revision's pinned manifest, the only input of its
  pull Job and of the verify-on-start check (so neither needs API access), and the evidence recorded for it.
- PersistentVolumeClaim ``<name>-weights``: one content-addressed directory (a *slot*) per verified
  revision, ``sha256-<manifest digest>``, holding exactly that revision's files.
- Job ``<name>-pull-<digest[:10]>``: downloads and checks every byte into its own slot, never into the one
  being served. The name is derived from the manifest digest, so a new digest is a new Job and an operator
  restart finds the same one instead of starting a duplicate; a Job that succeeded is the record that its
  slot holds verified content. Job templates are immutable: create it when absent, never re-apply a
  changed template under the same name.
- Deployment and Service ``<name>`` (runtime ``vllm`` only): the vLLM OpenAI-compatible server on one
  slot, mounted read-only; it moves to a new slot only once that slot's Job succeeded.
- Job ``<name>-prune-<hash>``: removes the slots no revision keeps any more (``openmodel prune``), once the
  new revision serves.

Names are DNS-1035 labels of at most 63 characters (Service names and the ``job-name`` label
require it); a name that does not fit is shortened deterministically with a hash of the full name.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import re
from collections.abc import Mapping, Sequence
from typing import Any, Literal

from openmodel_operator.api.common import API_VERSION
from openmodel_operator.api.openmodel import OpenModelSpec
from openmodel_operator.evidence.pinned import CONFIGMAP_KEY, PinnedManifest
from openmodel_operator.evidence.text import printable
from openmodel_operator.planning.recorded import as_binary_data, recorded_digest

KIND = "OpenModel"
FIELD_MANAGER = "openmodel-operator"
MANAGED_BY = {"app.kubernetes.io/managed-by": FIELD_MANAGER}  # on every child and pod template
APP_LABELS = {"app.kubernetes.io/name": "openmodel"}  # on every child and pod: what the guards select pods by

# labels and annotations
NAME_LABEL = "openmodel.io/name"
COMPONENT_LABEL = "app.kubernetes.io/component"
INSTANCE_LABEL = "app.kubernetes.io/instance"
REVISION_ANNOTATION = "openmodel.io/revision"
DIGEST_ANNOTATION = "openmodel.io/manifest-digest"
SOURCE_ANNOTATION = "openmodel.io/source"
LAYOUT_ANNOTATION = "openmodel.io/weights"  # on the pod template: which claim and slot (or "per-pod") pods read
VOLUME_ANNOTATION = "openmodel.io/weights-volume"  # on a pull Job: the claim it wrote its slot into
RECORDED_ANNOTATION = "openmodel.io/recorded-evidence"  # digest of binaryData (not kept in the watch index)
BOM_ANNOTATION = "openmodel.io/bom-digest"  # digest of the AI-BOMs in binaryData
DEFAULT_CONTAINER_ANNOTATION = "kubectl.kubernetes.io/default-container"
ADAPTER_ANNOTATION = "openmodel.io/adapter"  # on an adapter's pull Job and manifest ConfigMap: the adapter's name
ADAPTERS_ANNOTATION = "openmodel.io/adapters"  # on the pod template: the adapters its pods load (name=digest ...)
Component = Literal[
    "manifest", "bom", "weights", "fetch", "prune", "release", "server", "access", "examine", "attestations"
]

# paths inside the pods
MANIFEST_DIR = "/etc/openmodel"
MANIFEST_PATH = f"{MANIFEST_DIR}/{CONFIGMAP_KEY}"
MODELS_DIR = "/models"
ADAPTERS_DIR = "/adapters"  # each verified adapter's slot, read-only, at /adapters/<name>
VOLUME_DIR = "/volume"  # the whole claim, in the pull and prune Jobs only
SOURCE_DIR = "/source"
SLOT_PREFIX = "sha256-"
TMP_DIR = "/tmp"

SERVICE_PORT = 80
GPU_RESOURCE = "nvidia.com/gpu"
NONROOT_ID = 65532  # the "nonroot" user of distroless images
MAX_NAME = 63
# A ConfigMap holds at most 1 MiB of data; leave room for the keys and metadata.
MAX_MANIFEST_BYTES = 1_000_000

_DNS1035 = re.compile(r"[a-z]([-a-z0-9]*[a-z0-9])?")
_LABEL_VALUE = re.compile(r"([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]")
_HEX = re.compile(r"[0-9a-f]+")
_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")
_ADAPTER_ITEM_NAME = re.compile(r"[a-z0-9]([-a-z0-9]{0,38}[a-z0-9])?")  # spec.adapters[].name
_HASHED_TAIL = re.compile(r"-[0-9a-f]{8}$")
_COUNT_OR_PERCENT = re.compile(r"[0-9]{1,5}%?")
# Server environment the user may not override: the server must never fetch weights or code
# other than the verified files on the volume.
_FORCED_SERVER_ENV = (("HF_HUB_OFFLINE", "1"), ("TRANSFORMERS_OFFLINE", "1"))
_TP_FLAGS = ("--tensor-parallel-size", "-tp")


class ChildrenError(ValueError):
    """The OpenModel cannot be turned into valid children (the message says which field to change)."""


@dataclasses.dataclass(frozen=True)
class ModelRef:
    """The owning OpenModel: enough to name children and point their ownerReferences at it."""

    name: str
    namespace: str
    uid: str
    generation: int

    @classmethod
    def from_meta(cls, meta: Mapping[str, Any]) -> ModelRef:
        """From an object's ``metadata`` (as Kopf passes it)."""
        return cls(
            name=str(meta["name"]),
            namespace=str(meta["namespace"]),
            uid=str(meta["uid"]),
            generation=int(meta.get("generation") or 0),
        )


@dataclasses.dataclass(frozen=True)
class ChildSettings:
    """Operator-wide settings that shape the children (from flags or env of ``openmodel run``)."""

    operator_image: str
    vllm_image: str
    fetch_backoff_limit: int = 3
    fetch_active_deadline_seconds: int = 6 * 3600
    fetch_workers: int = 4
    # vLLM loads the weights before /health answers: the startup probe allows this long.
    server_startup_seconds: int = 1800
    shm_size: str = "8Gi"
    # None runs the inference server as the image's own user (vLLM images default to root).
    server_run_as_user: int | None = NONROOT_ID
    server_read_only_root: bool = True
    image_pull_policy: Literal["Always", "IfNotPresent", "Never"] | None = None
    image_pull_secrets: tuple[str, ...] = ()
    cluster_domain: str = "cluster.local"


@dataclasses.dataclass(frozen=True)
class ServedAdapter:
    """A LoRA adapter the serving pods load: its name and the verified content of its slot."""

    name: str
    digest: str


def adapters_annotation(adapters: Sequence[ServedAdapter]) -> str:
    """``name=digest`` of each loaded adapter, sorted: on the pod template, so a change of them rolls the pods
    and what the pods load is read from the template, not from anything a tenant can edit beside it."""
    return " ".join(f"{a.name}={a.digest}" for a in sorted(adapters, key=lambda a: a.name))


def loaded_adapters(deployment: Mapping[str, Any] | None) -> dict[str, str]:
    """name -> digest of the adapters a Deployment's pod template loads (its annotation)."""
    template = (((deployment or {}).get("spec") or {}).get("template") or {}).get("metadata") or {}
    value = (template.get("annotations") or {}).get(ADAPTERS_ANNOTATION) or ""
    out: dict[str, str] = {}
    for item in str(value).split():
        name, _, digest = item.partition("=")
        # a tenant can edit the template: only what the operator writes counts (anything else names no slot, and
        # would fail every pass that keeps slots by it)
        if _ADAPTER_ITEM_NAME.fullmatch(name) and _DIGEST.fullmatch(digest):
            out[name] = digest
    return out


# ---------------------------------------------------------------- names and metadata


def _short_hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:8]


def child_name(owner: str, suffix: str = "") -> str:
    """``owner + suffix`` as a DNS-1035 label of at most 63 characters.

    Names that already fit are kept verbatim (what users expect to ``kubectl get``). Others (too
    long, with dots, starting with a digit) are sanitised and cut, then a hash of the full owner name
    is appended so two OpenModels never share children after shortening.
    """
    candidate = owner + suffix
    # an owner that already ends like a shortened name ("-" + 8 hex) is hashed too: a verbatim name could
    # otherwise equal another OpenModel's shortened one (``a.b`` -> ``a-b-<hash>``), and both would own it
    if len(candidate) <= MAX_NAME and _DNS1035.fullmatch(candidate) and not _HASHED_TAIL.search(owner):
        return candidate
    base = re.sub(r"-+", "-", re.sub(r"[^a-z0-9-]", "-", owner.lower())).strip("-")
    if not base or not base[0].isalpha():
        base = f"m-{base}"
    room = MAX_NAME - len(suffix) - 9  # "-" + 8 hex
    if room < 1:
        raise ChildrenError(f"the child name suffix {suffix!r} leaves no room for the OpenModel name")
    base = base[:room].rstrip("-")
    return f"{base}-{_short_hash(owner)}{suffix}"


def label_value(value: str) -> str:
    """``value`` as a valid label value (at most 63 characters), shortened with a hash when needed.

    Injective like ``child_name``: a value that already ends like a shortened one is hashed too, so two
    OpenModels never share the labels that select their children and pods.
    """
    if len(value) <= MAX_NAME and (not value or _LABEL_VALUE.fullmatch(value)) and not _HASHED_TAIL.search(value):
        return value
    cleaned = re.sub(r"[^-A-Za-z0-9_.]", "-", value)[: MAX_NAME - 9].rstrip("-_.")
    return f"{cleaned}-{_short_hash(value)}" if cleaned else _short_hash(value)


def selector_labels(ref: ModelRef, component: Component) -> dict[str, str]:
    """The stable labels that select one component's pods (a Deployment selector is immutable)."""
    return {
        **APP_LABELS,
        INSTANCE_LABEL: label_value(ref.name),
        COMPONENT_LABEL: component,
    }


def labels(ref: ModelRef, component: Component) -> dict[str, str]:
    """Common labels on every child and pod template; select all of a model's children by ``NAME_LABEL``."""
    return {
        **selector_labels(ref, component),
        **MANAGED_BY,
        "app.kubernetes.io/part-of": "openmodel",
        NAME_LABEL: label_value(ref.name),
    }


def owner_reference(ref: ModelRef) -> dict[str, Any]:
    """The controller ownerReference to the OpenModel.

    ``blockOwnerDeletion`` is false: the operator deletes children itself (with a finalizer) and
    must not depend on the garbage collector, which may be absent (test emulators) or slow.
    """
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "name": ref.name,
        "uid": ref.uid,
        "controller": True,
        "blockOwnerDeletion": False,
    }


def _metadata(
    ref: ModelRef,
    name: str,
    component: Component,
    annotations: Mapping[str, str] | None = None,
    owned: bool = True,
) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "namespace": ref.namespace, "labels": labels(ref, component)}
    if annotations:
        meta["annotations"] = dict(annotations)
    if owned:
        meta["ownerReferences"] = [owner_reference(ref)]
    return meta


def _content_annotations(pinned: PinnedManifest) -> dict[str, str]:
    """What content an object is about; on a pod template a change of these rolls the pods."""
    annotations = {DIGEST_ANNOTATION: pinned.manifest_digest}
    if pinned.revision:
        annotations[REVISION_ANNOTATION] = pinned.revision
    return annotations


def hex_of(digest: str) -> str:
    """The hex part of ``sha256:<hex>``; anything else is refused (it names directories and objects)."""
    hex_part = digest.split(":", 1)[-1]
    if not digest.startswith("sha256:") or len(hex_part) != 64 or not _HEX.fullmatch(hex_part):
        raise ChildrenError(f"the manifest digest {digest!r} is not sha256:<64 hex>")
    return hex_part


def slot_dir(digest: str) -> str:
    """The directory of one revision on the volume: named by its content, so two revisions never share one."""
    return SLOT_PREFIX + hex_of(digest)


def job_name(ref: ModelRef, pinned: PinnedManifest) -> str:
    """``<name>-pull-<first 10 hex of the digest>``: one Job per content, stable across restarts."""
    return pull_job_name(ref, pinned.manifest_digest)


def pull_job_name(ref: ModelRef, digest: str) -> str:
    """The pull Job of one content (by its manifest digest)."""
    return child_name(ref.name, f"-pull-{hex_of(digest)[:10]}")


def manifest_configmap_name(ref: ModelRef, digest: str) -> str:
    """The manifest ConfigMap of one content (by its manifest digest)."""
    return child_name(ref.name, f"-manifest-{hex_of(digest)[:10]}")


def bom_configmap_name(ref: ModelRef, digest: str) -> str:
    """The AI-BOM ConfigMap of one content (by its manifest digest): removed with the revision's records."""
    return child_name(ref.name, f"-bom-{hex_of(digest)[:10]}")


def own_claim_name(ref: ModelRef) -> str:
    """``<name>-weights``: the claim the operator makes for a model (and deletes with it)."""
    return child_name(ref.name, "-weights")


def legacy_manifest_name(ref: ModelRef) -> str:
    """The single manifest ConfigMap of operators before revision slots: read back once after an upgrade (its
    recorded evidence keeps a served model deciding offline), then removed like any record not kept."""
    return child_name(ref.name, "-manifest")


def prune_job_name(ref: ModelRef, keep: Sequence[str], removed: Sequence[str] = ()) -> str:
    """``<name>-prune-<hash>`` of the kept slots and the records removed with it: a prune made for other
    records is another Job (a finished one may still be there, its name taken)."""
    key = " ".join(sorted(keep)) + "|" + " ".join(sorted(removed))
    return child_name(ref.name, f"-prune-{hashlib.sha256(key.encode()).hexdigest()[:10]}")


def child_names(ref: ModelRef, pinned: PinnedManifest | None) -> dict[str, str]:
    """Kind -> name of every child the model can have (ConfigMap and Job only when a manifest is pinned).

    Deployment and Service are listed even for ``runtime: none`` so the reconciler can delete them
    after a runtime change.
    """
    names = {
        "PersistentVolumeClaim": own_claim_name(ref),
        "Deployment": child_name(ref.name),
        "Service": child_name(ref.name),
    }
    if pinned is not None:
        names["ConfigMap"] = manifest_configmap_name(ref, pinned.manifest_digest)
        names["Job"] = job_name(ref, pinned)
    return names


# ---------------------------------------------------------------- shared pod parts


def _pod_security_context(run_as: int | None) -> dict[str, Any]:
    """Non-root pods; ``OnRootMismatch`` avoids a recursive chown of a large volume at every start."""
    context: dict[str, Any] = {"seccompProfile": {"type": "RuntimeDefault"}}
    if run_as is not None:
        context.update(
            runAsNonRoot=True,
            runAsUser=run_as,
            runAsGroup=run_as,
            fsGroup=run_as,
            fsGroupChangePolicy="OnRootMismatch",
        )
    return context


def _container_security_context(read_only_root: bool = True) -> dict[str, Any]:
    return {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": read_only_root,
        "capabilities": {"drop": ["ALL"]},
    }


def _env(pairs: Sequence[tuple[str, str]]) -> list[dict[str, Any]]:
    return [{"name": name, "value": value} for name, value in pairs]


def _pod_common(settings: ChildSettings) -> dict[str, Any]:
    """No API token in the pods (they need no API access) and no Service links.

    Service links would inject ``<SERVICE>_PORT`` variables; a Service named ``vllm`` in the
    namespace sets ``VLLM_PORT``, which vLLM reads as its own setting and fails on.
    """
    spec: dict[str, Any] = {"automountServiceAccountToken": False, "enableServiceLinks": False}
    if settings.image_pull_secrets:
        spec["imagePullSecrets"] = [{"name": name} for name in settings.image_pull_secrets]
    return spec


def _image(container: dict[str, Any], image: str, settings: ChildSettings) -> dict[str, Any]:
    container["image"] = image
    if settings.image_pull_policy:
        container["imagePullPolicy"] = settings.image_pull_policy
    return container


def _operator_container(
    name: str, command: list[str], env: list[dict[str, Any]], mounts: list[dict[str, Any]], settings: ChildSettings
) -> dict[str, Any]:
    """A container running ``openmodel`` from the operator image, locked down.

    ``FallbackToLogsOnError`` makes the last JSON log line (the failure reason) the container's
    termination message, so the reconciler can report it without reading logs.
    """
    container: dict[str, Any] = {"name": name, "command": command}
    _image(container, settings.operator_image, settings)
    container.update(
        env=env,
        volumeMounts=mounts,
        resources={"requests": {"cpu": "500m", "memory": "256Mi"}, "limits": {"memory": "1Gi"}},
        securityContext=_container_security_context(),
        terminationMessagePolicy="FallbackToLogsOnError",
    )
    return container


def _manifest_volume(ref: ModelRef, digest: str) -> dict[str, Any]:
    return {"name": "manifest", "configMap": {"name": manifest_configmap_name(ref, digest)}}


def _weights_volume(ref: ModelRef, read_only: bool, shared: str | None = None) -> dict[str, Any]:
    """The model's own claim, or the namespace's shared one (``storage.claimName``)."""
    claim: dict[str, Any] = {"claimName": shared or own_claim_name(ref)}
    if read_only:
        claim["readOnly"] = True
    return {"name": "weights", "persistentVolumeClaim": claim}


_NONROOT_CONTAINER = {"runAsNonRoot": True, "runAsUser": NONROOT_ID, "runAsGroup": NONROOT_ID}


def _pod_volume(ref: ModelRef, spec: OpenModelSpec) -> dict[str, Any]:
    """``storage.mode: PerPod``: a generic ephemeral volume per serving pod (created and deleted with the pod),
    sized and classed like the model's claim would be."""
    storage = spec.storage
    claim: dict[str, Any] = {
        "accessModes": ["ReadWriteOncePod" if storage.access_mode == "ReadWriteOncePod" else "ReadWriteOnce"],
        "volumeMode": "Filesystem",
        "resources": {"requests": {"storage": storage.size}},
    }
    if storage.storage_class_name:
        claim["storageClassName"] = storage.storage_class_name
    template = {"metadata": {"labels": labels(ref, "weights")}, "spec": claim}
    return {"name": "weights", "ephemeral": {"volumeClaimTemplate": template}}


def pvc_source(uri: str) -> tuple[str, str]:
    """(claim, sub-path) of a ``pvc://claim/path`` source."""
    rest = uri.removeprefix("pvc://")
    claim, _, path = rest.partition("/")
    path = path.strip("/")
    if ".." in path.split("/"):
        raise ChildrenError(f"spec.source.uri {uri!r}: the path inside the claim must not contain '..'")
    return claim, path


# ---------------------------------------------------------------- children


def pinned_manifest_configmap(
    ref: ModelRef,
    spec: OpenModelSpec,
    pinned: PinnedManifest,
    settings: ChildSettings,
    recorded: Mapping[str, bytes] | None = None,
) -> dict[str, Any]:
    """ConfigMap ``<name>-manifest-<digest[:10]>`` with ``manifest.json``: exactly the files and digests to accept.

    ``recorded`` (bundle, card, declaration) goes to ``binaryData`` so a restarted operator can re-decide
    without the source (``planning.recorded`` checks it against status before believing it).
    """
    data = pinned.to_json()
    if len(data.encode()) > MAX_MANIFEST_BYTES:
        raise ChildrenError(
            f"the pinned manifest of {len(pinned.files)} files is {len(data.encode())} bytes, more than a "
            f"ConfigMap holds ({MAX_MANIFEST_BYTES}): a model repository must hold only the model"
        )
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": _metadata(
            ref,
            manifest_configmap_name(ref, pinned.manifest_digest),
            "manifest",
            {
                **_content_annotations(pinned),
                SOURCE_ANNOTATION: pinned.source,
                **({RECORDED_ANNOTATION: recorded_digest(recorded)} if recorded else {}),
            },
        ),
        "data": {CONFIGMAP_KEY: data},
        **({"binaryData": as_binary_data(recorded)} if recorded else {}),
    }


def bom_configmap(
    ref: ModelRef, pinned: PinnedManifest, documents: Mapping[str, bytes], digest_annotation: str
) -> dict[str, Any]:
    """ConfigMap ``<name>-bom-<digest[:10]>``: the revision's AI-BOMs, gzip-compressed in ``binaryData``.

    ``binaryData`` is not kept in the operator's watch index (the documents cost no memory per model);
    ``digest_annotation`` (a digest of the documents) lets a changed or edited BOM be seen and re-applied.
    """
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": _metadata(
            ref,
            bom_configmap_name(ref, pinned.manifest_digest),
            "bom",
            {**_content_annotations(pinned), SOURCE_ANNOTATION: pinned.source, BOM_ANNOTATION: digest_annotation},
        ),
        "binaryData": as_binary_data(documents),
    }


def weights_pvc(ref: ModelRef, spec: OpenModelSpec, pinned: PinnedManifest, settings: ChildSettings) -> dict[str, Any]:
    """PersistentVolumeClaim ``<name>-weights`` from ``spec.storage``.

    With ``storage.retain`` it carries no ownerReference: the garbage collector deletes owned objects
    when the owner goes, whatever the operator decides, so an owned claim could never be retained.
    Without ``retain`` the reference is still set (deletion is done explicitly by the operator; the
    reference only helps tools such as ``kubectl tree``). The spec of a bound claim is immutable
    except for growing ``resources.requests.storage``.
    """
    storage = spec.storage
    claim: dict[str, Any] = {
        "accessModes": [storage.access_mode],
        "volumeMode": "Filesystem",
        "resources": {"requests": {"storage": storage.size}},
    }
    if storage.storage_class_name:
        claim["storageClassName"] = storage.storage_class_name
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": _metadata(ref, own_claim_name(ref), "weights", owned=not storage.retain),
        "spec": claim,
    }


def _fetch_command(pinned: PinnedManifest, settings: ChildSettings, *, verify_only: bool) -> list[str]:
    """`openmodel fetch` for the Job (pull into its slot) and the init container (re-check of the slot the pod
    mounts at /models), pinned to one digest."""
    mode = ["--verify-only"] if verify_only else []
    dest = MODELS_DIR if verify_only else f"{VOLUME_DIR}/{slot_dir(pinned.manifest_digest)}"
    return [
        "openmodel", "fetch", *mode,
        "--manifest", MANIFEST_PATH,
        "--dest", dest,
        "--expect-digest", pinned.manifest_digest,
        "--workers", str(settings.fetch_workers),
    ]  # fmt: skip


def _near_the_server(ref: ModelRef) -> dict[str, Any]:
    """Prefer the node of the serving pods: a ReadWriteOnce claim attaches to one node at a time."""
    return {
        "podAffinity": {
            "preferredDuringSchedulingIgnoredDuringExecution": [
                {
                    "weight": 100,
                    "podAffinityTerm": {
                        "labelSelector": {"matchLabels": selector_labels(ref, "server")},
                        "topologyKey": "kubernetes.io/hostname",
                    },
                }
            ]
        }
    }


def _pull_container(
    ref: ModelRef, spec: OpenModelSpec, pinned: PinnedManifest, settings: ChildSettings, *, per_pod: bool
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The ``openmodel fetch`` container that pulls a revision (and the volumes it needs besides ``weights``):
    into its slot of the model's claim (the pull Job), or into a serving pod's own volume (``storage.mode:
    PerPod``, an init container). Only this container sees the Hub token."""
    command = _fetch_command(pinned, settings, verify_only=False)
    if per_pod:
        command[command.index("--dest") + 1] = MODELS_DIR
    elif spec.storage.claim_name:
        command += ["--ref", ref.uid]  # a shared claim: one writer per slot, and this model's reference on it
    env: list[dict[str, Any]] = _env(
        [
            ("HOME", TMP_DIR),
            ("HF_HOME", f"{TMP_DIR}/hf"),
            ("HF_HUB_DISABLE_XET", "1"),
            ("HF_HUB_DISABLE_TELEMETRY", "1"),
            ("PYTHONUNBUFFERED", "1"),
        ]
    )
    endpoint = spec.source.endpoint or pinned.endpoint
    if endpoint:
        env.append({"name": "HF_ENDPOINT", "value": endpoint})
    token = spec.source.token_secret_ref
    if token is not None:
        env.append({"name": "HF_TOKEN", "valueFrom": {"secretKeyRef": {"name": token.name, "key": token.key}}})
    mounts: list[dict[str, Any]] = [
        {"name": "manifest", "mountPath": MANIFEST_DIR, "readOnly": True},
        {"name": "weights", "mountPath": MODELS_DIR if per_pod else VOLUME_DIR},
        {"name": "tmp", "mountPath": TMP_DIR},
    ]
    volumes: list[dict[str, Any]] = [
        _manifest_volume(ref, pinned.manifest_digest),
        {"name": "tmp", "emptyDir": {"sizeLimit": "1Gi"}},
    ]
    if pinned.source.startswith("pvc://"):
        claim, path = pvc_source(pinned.source)
        command += ["--source-dir", SOURCE_DIR]
        mount: dict[str, Any] = {"name": "source", "mountPath": SOURCE_DIR, "readOnly": True}
        if path:
            mount["subPath"] = path
        mounts.append(mount)
        volumes.append({"name": "source", "persistentVolumeClaim": {"claimName": claim, "readOnly": True}})
    return _operator_container("fetch", command, env, mounts, settings), volumes


def fetch_job(ref: ModelRef, spec: OpenModelSpec, pinned: PinnedManifest, settings: ChildSettings) -> dict[str, Any]:
    """Job that puts exactly the pinned files in their own slot on the volume, checking every byte (``openmodel
    fetch``); the slot the server reads is another directory, never written here.

    Retries are bounded twice: ``backoffLimit`` for operational failures (exit 2: network, Hub
    down) and a pod failure policy that fails the Job at once on exit 1 (bytes that do not match
    the signed digests: another attempt would fetch the same bytes). Pods evicted by a node drain do
    not count. ``ttlSecondsAfterFinished`` is not set: the reconciler reads the finished Job's status.
    """
    container, volumes = _pull_container(ref, spec, pinned, settings, per_pod=False)
    volumes = [_weights_volume(ref, read_only=False, shared=spec.storage.claim_name), *volumes]
    pod_spec: dict[str, Any] = {
        **_pod_common(settings),
        "restartPolicy": "Never",
        "securityContext": _pod_security_context(NONROOT_ID),
        "affinity": _near_the_server(ref),
        "containers": [container],
        "volumes": volumes,
    }
    annotations = _content_annotations(pinned)
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": _metadata(
            ref,
            job_name(ref, pinned),
            "fetch",
            {**annotations, SOURCE_ANNOTATION: pinned.source, VOLUME_ANNOTATION: weights_volume(ref, spec)},
        ),
        "spec": {
            "backoffLimit": settings.fetch_backoff_limit,
            "activeDeadlineSeconds": settings.fetch_active_deadline_seconds,
            "podFailurePolicy": {
                "rules": [
                    {
                        "action": "FailJob",
                        "onExitCodes": {"containerName": "fetch", "operator": "In", "values": [1]},
                        # required (non-omitempty) in the 1.28 API types; empty means "no condition"
                        "onPodConditions": [],
                    },
                    {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}]},
                ]
            },
            "template": {
                "metadata": {"labels": labels(ref, "fetch"), "annotations": annotations},
                "spec": pod_spec,
            },
        },
    }


def prune_job(
    ref: ModelRef,
    keep_digests: Sequence[str],
    settings: ChildSettings,
    removed: Sequence[str] = (),
    shared: str | None = None,
) -> dict[str, Any]:
    """Job that removes from the volume every slot (and any other entry) but those of ``keep_digests``.

    Created only once the current revision serves; it never touches a kept slot, so it can run beside the
    server. Exit 1 is not retried (a kept slot that is not a directory: someone else writes to the volume).
    On a ``shared`` claim it only drops this model's references, and removes a slot nobody references.
    """
    keep = sorted(slot_dir(digest) for digest in keep_digests)
    command = ["openmodel", "prune", "--volume", VOLUME_DIR]
    for slot in keep:
        command += ["--keep", slot]
    if shared:
        command += ["--ref", ref.uid]
    container = _operator_container(
        "prune",
        command,
        _env([("HOME", TMP_DIR), ("PYTHONUNBUFFERED", "1")]),
        [{"name": "weights", "mountPath": VOLUME_DIR}],
        settings,
    )
    container["resources"] = {"requests": {"cpu": "100m", "memory": "64Mi"}, "limits": {"memory": "256Mi"}}
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": _metadata(ref, prune_job_name(ref, keep, removed), "prune"),
        "spec": {
            "backoffLimit": settings.fetch_backoff_limit,
            "activeDeadlineSeconds": 3600,
            "podFailurePolicy": {
                "rules": [
                    {
                        "action": "FailJob",
                        "onExitCodes": {"containerName": "prune", "operator": "In", "values": [1]},
                        "onPodConditions": [],
                    }
                ]
            },
            "template": {
                "metadata": {"labels": labels(ref, "prune")},
                "spec": {
                    **_pod_common(settings),
                    "restartPolicy": "Never",
                    "securityContext": _pod_security_context(NONROOT_ID),
                    "affinity": _near_the_server(ref),
                    "containers": [container],
                    "volumes": [_weights_volume(ref, read_only=False, shared=shared)],
                },
            },
        },
    }


def release_job(ref: ModelRef, shared: str, settings: ChildSettings) -> dict[str, Any]:
    """A deleted model's references on a shared claim, dropped (and the slots nobody else references
    removed): a prune that keeps nothing of this model's. It outlives the model (no ownerReference, no owner
    label: nothing deletes it with the model's children) and goes on its own after it finished."""
    job = prune_job(ref, [], settings, shared=shared)
    meta = job["metadata"]
    meta["name"] = child_name(ref.name, f"-release-{hashlib.sha256(ref.uid.encode()).hexdigest()[:10]}")
    meta.pop("ownerReferences", None)
    meta["labels"] = {k: v for k, v in meta["labels"].items() if k != NAME_LABEL}
    meta["labels"][COMPONENT_LABEL] = "release"
    template = job["spec"]["template"]
    template["metadata"]["labels"] = {k: v for k, v in template["metadata"]["labels"].items() if k != NAME_LABEL}
    template["spec"].pop("affinity", None)
    job["spec"]["ttlSecondsAfterFinished"] = 600
    return job


def _has_flag(args: Sequence[str], flags: Sequence[str]) -> bool:
    return any(arg == flag or arg.startswith(f"{flag}=") for arg in args for flag in flags)


def server_args(ref: ModelRef, spec: OpenModelSpec, adapters: Sequence[ServedAdapter] = ()) -> list[str]:
    """Arguments of ``vllm serve``: the volume as the model, served under the OpenModel's name.

    The container command is ``vllm serve`` (the CLI vLLM documents and the ``vllm/vllm-openai``
    image's own ENTRYPOINT), set explicitly so images with another entrypoint behave the same; the
    legacy ``python -m vllm.entrypoints.openai.api_server --model`` form is not used.
    With more than one GPU the tensor-parallel size defaults to the GPU count (otherwise vLLM would
    use one GPU and leave the rest idle) unless the user's args set it. User args come after the operator's,
    except the LoRA modules, which end the list.
    """
    serving = spec.serving
    extra = list(serving.args or [])
    args = [MODELS_DIR, "--served-model-name", ref.name, "--host", "0.0.0.0", "--port", str(serving.port)]
    if serving.gpus > 1 and not _has_flag(extra, _TP_FLAGS):
        args += ["--tensor-parallel-size", str(serving.gpus)]
    lora: list[str] = []
    if adapters:
        # only the verified slots: a policy refuses --lora-modules in serving.args, and the runtime loading API
        # stays off (VLLM_ALLOW_RUNTIME_LORA_UPDATING is refused too). Last, after the user's args: the flag takes
        # every value up to the next flag (argparse nargs='+'), so a value the user's args begin with would
        # otherwise join the list as another module
        if not _has_flag(extra, ("--max-loras",)):
            lora += ["--max-loras", str(len(adapters))]
        lora += ["--enable-lora", "--lora-modules", *(f"{a.name}={ADAPTERS_DIR}/{a.name}" for a in adapters)]
    return args + extra + lora


def _server_env(ref: ModelRef, spec: OpenModelSpec, settings: ChildSettings) -> list[dict[str, Any]]:
    """Defaults the user may override, the user's variables, then the offline switches and (with
    ``access.apiKey``) the generated key, which nobody overrides."""
    defaults = [
        ("HOME", TMP_DIR),  # the root filesystem is read-only: caches (torch, triton, vLLM) go to /tmp
        ("HF_HOME", f"{TMP_DIR}/hf"),
        ("XDG_CACHE_HOME", f"{TMP_DIR}/.cache"),
        ("VLLM_NO_USAGE_STATS", "1"),
        ("DO_NOT_TRACK", "1"),
    ]
    if settings.server_run_as_user is not None:
        defaults.append(("USER", "openmodel"))  # getpass.getuser() fails for a uid without a passwd entry
    forced = {name for name, _ in _FORCED_SERVER_ENV}
    key: list[dict[str, Any]] = []
    if spec.serving.access.api_key:
        forced.add(API_KEY_ENV)
        key = [{"name": API_KEY_ENV, "valueFrom": {"secretKeyRef": {"name": api_key_secret_name(ref), "key": API_KEY}}}]
    user = [env.to_wire() for env in spec.serving.env or [] if env.name not in forced]
    user_names = {env["name"] for env in user}
    return (
        _env([(name, value) for name, value in defaults if name not in user_names])
        + user
        + _env(list(_FORCED_SERVER_ENV))
        + key
    )


def _quantities(values: Mapping[str, int | str] | None) -> dict[str, str]:
    return {key: str(value) for key, value in (values or {}).items() if key != GPU_RESOURCE}


def _server_resources(spec: OpenModelSpec) -> dict[str, Any]:
    """User resources with ``nvidia.com/gpu`` from ``serving.gpus`` only, as strings (quantities).

    An extended resource is set as a limit only; Kubernetes sets the request equal to it.
    """
    extra = spec.serving.resources
    limits = _quantities(extra.limits if extra else None)
    requests = _quantities(extra.requests if extra else None)
    if spec.serving.gpus > 0:
        limits[GPU_RESOURCE] = str(spec.serving.gpus)
    resources: dict[str, Any] = {}
    if limits:
        resources["limits"] = limits
    if requests:
        resources["requests"] = requests
    return resources


def _probes(settings: ChildSettings) -> dict[str, Any]:
    """Startup probe with a long budget (loading weights takes minutes), then tight readiness and liveness."""
    health = {"httpGet": {"path": "/health", "port": "http"}, "timeoutSeconds": 5}
    period = 10
    return {
        "startupProbe": {
            **health,
            "periodSeconds": period,
            "failureThreshold": max(1, math.ceil(settings.server_startup_seconds / period)),
        },
        "readinessProbe": {**health, "periodSeconds": period, "failureThreshold": 3},
        "livenessProbe": {**health, "timeoutSeconds": 10, "periodSeconds": 20, "failureThreshold": 6},
    }


def _strategy(spec: OpenModelSpec) -> dict[str, Any]:
    """``serving.rollout``, or a default that cannot deadlock (the documented trade-offs, docs/lifecycle.md).

    A ReadWriteOnce volume attaches to one node: a surge pod scheduled elsewhere waits forever for the volume
    while an old pod holds it, so the old pods are stopped first (Recreate; ReadWriteOncePod admits one pod at
    all). With ReadWriteMany a GPU server surges one pod and may stop one: a cluster with no spare GPU still
    rolls (one replica is then briefly down); a CPU server surges without stopping any. An update without any
    downtime on GPUs is ``rollout: {maxSurge: 1, maxUnavailable: 0}``, when a spare GPU is known to exist.
    """
    rollout = spec.serving.rollout
    if rollout is None:
        if spec.storage.access_mode != "ReadWriteMany" and spec.storage.mode != "PerPod":
            return {"type": "Recreate"}
        return {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": min(spec.serving.gpus, 1)}}
    if rollout.strategy == "Recreate":
        return {"type": "Recreate"}
    surge: int | str = rollout.max_surge if rollout.max_surge is not None else 1
    surge_count = _count_or_percent("maxSurge", surge)
    unavailable = rollout.max_unavailable
    if unavailable is None:
        unavailable = 1 if surge_count == 0 else 0
    if surge_count == 0 and _count_or_percent("maxUnavailable", unavailable) == 0:
        raise ChildrenError(
            "spec.serving.rollout: maxSurge and maxUnavailable cannot both be 0 (the rollout could never start); "
            "set maxSurge: 1 for an update without downtime"
        )
    if isinstance(unavailable, str) and _count_or_percent("maxUnavailable", unavailable) > 100:
        raise ChildrenError(f"spec.serving.rollout.maxUnavailable {unavailable!r} is more than 100%")
    return {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": surge, "maxUnavailable": unavailable}}


def _count_or_percent(field: str, value: int | str) -> int:
    """A rollout count or percentage as the Deployment API reads it (its number), or a ChildrenError naming
    the field: refused here, the content already serving keeps serving (a spec the CRD admitted)."""
    text = str(value)
    if not _COUNT_OR_PERCENT.fullmatch(text):
        raise ChildrenError(
            f"spec.serving.rollout.{field} {printable(text, 40)!r} is neither a pod count (e.g. 1) nor a "
            "percentage (e.g. 25%)"
        )
    return int(text.rstrip("%"))


def reads_source_claim(spec: OpenModelSpec) -> bool:
    """A ``pvc://`` source is served where it lies: its claim, read-only, re-hashed at every pod start (no pull Job,
    no copy, no claim of the model's own; ``spec.storage`` does not apply)."""
    return spec.source.uri.startswith("pvc://")


def weights_volume(ref: ModelRef, spec: OpenModelSpec) -> str:
    """The volume a revision is pulled into: the model's own claim, the shared one, or each pod's own (a
    ``pvc://`` source: the source itself, nothing is pulled)."""
    if reads_source_claim(spec):
        return spec.source.uri
    if spec.storage.mode == "PerPod":
        return "per-pod"
    return spec.storage.claim_name or own_claim_name(ref)


def weights_layout(ref: ModelRef, spec: OpenModelSpec, digest: str) -> str:
    """What the pods of one revision read: its slot of a claim (which claim included), or their own volume. A
    template of the layout before slots has none, and one of another claim differs, so neither is ever taken
    for a template that reads the verified slot of the current volume."""
    volume = weights_volume(ref, spec)
    return volume if volume == "per-pod" or reads_source_claim(spec) else f"{volume}/{slot_dir(digest)}"


def deployment(
    ref: ModelRef,
    spec: OpenModelSpec,
    pinned: PinnedManifest,
    settings: ChildSettings,
    scale_to_zero: bool = False,
    recreate: bool = False,
    adapters: Sequence[ServedAdapter] = (),
    signature_digest: str | None = None,
) -> dict[str, Any] | None:
    """Deployment ``<name>`` running the vLLM OpenAI server on the verified, read-only volume.

    None for ``runtime: none``. ``scale_to_zero`` keeps the Deployment (for forensics) with no pods,
    for a model that is no longer trusted. The revision and manifest digest annotations sit on the
    pod template too, so new verified content is a rollout. ``recreate`` stops every old pod before a new
    one starts, whatever ``serving.rollout`` says (the previous revision was revoked mid-rollout). With
    ``verifyOnStart`` an init container re-hashes the volume against the manifest (and the digest this
    template was made for) before the server may read it. ``adapters``: the verified LoRA adapters to load,
    each its own slot mounted read-only at ``/adapters/<name>`` and checked like the model at start.
    ``signature_digest``: a ``pvc://`` source served in place may hold its signature file beside the manifest's
    files only when it is this verified bundle (``sha256:<hex>``); without it, no file may be there besides.
    """
    serving = spec.serving
    if serving.runtime == "none":
        return None
    content = _content_annotations(pinned)
    in_place = pinned.source.startswith("pvc://") and reads_source_claim(spec)
    source_claim, slot = pvc_source(pinned.source) if in_place else ("", slot_dir(pinned.manifest_digest))
    per_pod = spec.storage.mode == "PerPod" and not in_place
    weights_mount: dict[str, Any] = {"name": "weights", "mountPath": MODELS_DIR, "readOnly": True}
    if not per_pod and slot:
        weights_mount["subPath"] = slot
    server: dict[str, Any] = {"name": "server"}
    _image(server, serving.image or settings.vllm_image, settings)
    server.update(
        command=["vllm", "serve"],
        args=server_args(ref, spec, adapters),
        ports=[{"name": "http", "containerPort": serving.port, "protocol": "TCP"}],
        env=_server_env(ref, spec, settings),
        resources=_server_resources(spec),
        volumeMounts=[
            weights_mount,
            *(_adapter_mount(a) for a in adapters),
            {"name": "dshm", "mountPath": "/dev/shm"},
            {"name": "tmp", "mountPath": TMP_DIR},
        ],
        **_probes(settings),
        securityContext=_container_security_context(settings.server_read_only_root),
    )
    if in_place:
        weights = {"name": "weights", "persistentVolumeClaim": {"claimName": source_claim, "readOnly": True}}
    else:
        weights = _pod_volume(ref, spec) if per_pod else _weights_volume(ref, True, spec.storage.claim_name)
    volumes: list[dict[str, Any]] = [
        weights,
        # NCCL and vLLM's worker processes exchange tensors through /dev/shm; the runtime default is 64Mi.
        # Memory-backed: counts against the pod's memory limit.
        {"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": settings.shm_size}},
        {"name": "tmp", "emptyDir": {}},
    ]
    pod_spec: dict[str, Any] = {
        **_pod_common(settings),
        "securityContext": _pod_security_context(settings.server_run_as_user),
    }
    if per_pod:
        # the pod's own volume starts empty: its init container pulls and checks every byte, every start
        pull, pull_volumes = _pull_container(ref, spec, pinned, settings, per_pod=True)
        if settings.server_run_as_user is None:
            pull["securityContext"] = {**pull["securityContext"], **_NONROOT_CONTAINER}
        pod_spec["initContainers"] = [pull]
        volumes += [v for v in pull_volumes if v["name"] != "tmp"]
    elif serving.verify_on_start or in_place:
        # a claim the operator did not fill is checked at every start, whatever verifyOnStart says: the report its
        # examination Job sent is the tenant's to forge, this check is what binds the bytes the server reads
        check = _fetch_command(pinned, settings, verify_only=True)
        if in_place and signature_digest:
            check += ["--signature-file", spec.trust.signature.path or "model.sig"]
            check += ["--signature-digest", signature_digest]
        verify = _operator_container(
            "verify",
            check,
            _env([("HOME", TMP_DIR), ("PYTHONUNBUFFERED", "1")]),
            [
                {"name": "manifest", "mountPath": MANIFEST_DIR, "readOnly": True},
                {**weights_mount, "name": "weights"},
                {"name": "tmp", "mountPath": TMP_DIR},
            ],
            settings,
        )
        if settings.server_run_as_user is None:
            # the pod runs as the image's user; the check itself needs no root
            verify["securityContext"] = {**verify["securityContext"], **_NONROOT_CONTAINER}
        pod_spec["initContainers"] = [verify, *_adapter_checks(ref, adapters, settings)]
        volumes.append(_manifest_volume(ref, pinned.manifest_digest))
        volumes += [_adapter_manifest_volume(ref, index, a) for index, a in enumerate(adapters)]
    pod_spec["containers"] = [server]
    pod_spec["volumes"] = volumes
    if serving.node_selector:
        pod_spec["nodeSelector"] = dict(serving.node_selector)
    if serving.tolerations:
        pod_spec["tolerations"] = [toleration.to_wire() for toleration in serving.tolerations]
    if serving.runtime_class_name:
        pod_spec["runtimeClassName"] = serving.runtime_class_name

    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _metadata(ref, child_name(ref.name), "server", {**content, SOURCE_ANNOTATION: pinned.source}),
        "spec": {
            "replicas": 0 if scale_to_zero else serving.replicas,
            "selector": {"matchLabels": selector_labels(ref, "server")},
            "strategy": {"type": "Recreate"} if recreate else _strategy(spec),
            "revisionHistoryLimit": 3,
            # the default 600 s would mark a rollout failed while the weights are still loading
            "progressDeadlineSeconds": settings.server_startup_seconds + 600,
            "template": {
                "metadata": {
                    "labels": labels(ref, "server"),
                    "annotations": {
                        **content,
                        LAYOUT_ANNOTATION: weights_layout(ref, spec, pinned.manifest_digest),
                        DEFAULT_CONTAINER_ANNOTATION: "server",
                        **({ADAPTERS_ANNOTATION: adapters_annotation(adapters)} if adapters else {}),
                    },
                },
                "spec": pod_spec,
            },
        },
    }


def _adapter_mount(adapter: ServedAdapter) -> dict[str, Any]:
    """The adapter's slot, read-only, where ``--lora-modules`` points the server."""
    path = f"{ADAPTERS_DIR}/{adapter.name}"
    return {"name": "weights", "mountPath": path, "subPath": slot_dir(adapter.digest), "readOnly": True}


def _adapter_manifest_volume(ref: ModelRef, index: int, adapter: ServedAdapter) -> dict[str, Any]:
    return {"name": f"adapter-manifest-{index}", "configMap": {"name": manifest_configmap_name(ref, adapter.digest)}}


def _adapter_checks(ref: ModelRef, adapters: Sequence[ServedAdapter], settings: ChildSettings) -> list[dict[str, Any]]:
    """One verify-on-start init container per adapter: its slot re-hashed against its own manifest (and the
    digest this template was made for) before the server may load it."""
    checks = []
    for index, adapter in enumerate(adapters):
        command = [
            "openmodel", "fetch", "--verify-only",
            "--manifest", MANIFEST_PATH,
            "--dest", MODELS_DIR,
            "--expect-digest", adapter.digest,
            "--workers", str(settings.fetch_workers),
        ]  # fmt: skip
        check = _operator_container(
            f"verify-adapter-{index}",
            command,
            _env([("HOME", TMP_DIR), ("PYTHONUNBUFFERED", "1")]),
            [
                {"name": f"adapter-manifest-{index}", "mountPath": MANIFEST_DIR, "readOnly": True},
                {"name": "weights", "mountPath": MODELS_DIR, "subPath": slot_dir(adapter.digest), "readOnly": True},
                {"name": "tmp", "mountPath": TMP_DIR},
            ],
            settings,
        )
        if settings.server_run_as_user is None:
            check["securityContext"] = {**check["securityContext"], **_NONROOT_CONTAINER}
        checks.append(check)
    return checks


def service(
    ref: ModelRef, spec: OpenModelSpec, pinned: PinnedManifest, settings: ChildSettings
) -> dict[str, Any] | None:
    """ClusterIP Service ``<name>``: port 80 to the server's ``http`` port. None for ``runtime: none``."""
    if spec.serving.runtime == "none":
        return None
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _metadata(ref, child_name(ref.name), "server"),
        "spec": {
            "type": "ClusterIP",
            "selector": selector_labels(ref, "server"),
            "ports": [{"name": "http", "port": SERVICE_PORT, "targetPort": "http", "protocol": "TCP"}],
        },
    }


API_KEY = "api-key"  # the key of the generated Secret
API_KEY_ENV = "VLLM_API_KEY"  # vLLM requires it as a bearer token on every /v1 route (not on /health)
GENERATED_ANNOTATION = "openmodel.io/generated"  # on the API key Secret: its data is made by the operator


def api_key_secret_name(ref: ModelRef) -> str:
    """``<name>-api-key``: the Secret that holds the model's generated API key."""
    return child_name(ref.name, "-api-key")


def api_key_secret(ref: ModelRef) -> dict[str, Any]:
    """The API key Secret without its data: the shell adds a fresh random key when it creates it (the core draws
    no random numbers), once; the operator never reads it back nor rewrites it, so deleting it rotates the key."""
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "metadata": _metadata(ref, api_key_secret_name(ref), "access", {GENERATED_ANNOTATION: API_KEY}),
    }


def network_policy(ref: ModelRef, spec: OpenModelSpec) -> dict[str, Any] | None:
    """NetworkPolicy ``<name>``: only the allowed callers reach the serving pods' port (None for ``runtime: none``).

    Default: pods of the model's own namespace. A tenant namespace is the unit a cluster admin grants and
    audits; the endpoint serves whatever verified model it runs without asking who calls, so another namespace
    (another tenant, an ingress controller) must be named. With no NetworkPolicy controller in the cluster
    the object is inert (the API key still applies).
    """
    if spec.serving.runtime == "none":
        return None
    access = spec.serving.access
    pods: dict[str, Any] = {"matchLabels": dict(access.pod_selector.match_labels)} if access.pod_selector else {}
    peers: list[dict[str, Any]] = [{"podSelector": pods}]  # the model's own namespace (the policy's namespace)
    if access.namespaces:
        names = {"key": "kubernetes.io/metadata.name", "operator": "In", "values": sorted(access.namespaces)}
        peers.append({"namespaceSelector": {"matchExpressions": [names]}, "podSelector": pods})
    if access.namespace_selector is not None:
        peers.append(
            {"namespaceSelector": {"matchLabels": dict(access.namespace_selector.match_labels)}, "podSelector": pods}
        )
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": _metadata(ref, child_name(ref.name), "access"),
        "spec": {
            "podSelector": {"matchLabels": selector_labels(ref, "server")},
            "policyTypes": ["Ingress"],
            "ingress": [{"from": peers, "ports": [{"protocol": "TCP", "port": spec.serving.port}]}],
        },
    }


def endpoint_url(ref: ModelRef, spec: OpenModelSpec, cluster_domain: str = "cluster.local") -> str | None:
    """The in-cluster OpenAI-compatible base URL (``.../v1``); None when nothing is served."""
    if spec.serving.runtime == "none":
        return None
    return f"http://{child_name(ref.name)}.{ref.namespace}.svc.{cluster_domain}/v1"


def all_children(
    ref: ModelRef,
    spec: OpenModelSpec,
    pinned: PinnedManifest,
    settings: ChildSettings,
    scale_to_zero: bool = False,
) -> list[dict[str, Any]]:
    """Every child in apply order: the manifest and the volume before the Job that uses them (no claim and no
    Job with ``storage.mode: PerPod``: each serving pod pulls into its own volume)."""
    claim = spec.storage.mode != "PerPod" and not reads_source_claim(spec)  # a pvc:// source is read in place
    objects: list[dict[str, Any] | None] = [
        pinned_manifest_configmap(ref, spec, pinned, settings),
        weights_pvc(ref, spec, pinned, settings) if claim else None,
        fetch_job(ref, spec, pinned, settings) if claim else None,
        deployment(ref, spec, pinned, settings, scale_to_zero=scale_to_zero),
        service(ref, spec, pinned, settings),
    ]
    return [obj for obj in objects if obj is not None]
