"""The ``OpenModel`` API: one resource that says which model to run and how it must be trusted."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import Field, StringConstraints, field_validator, model_validator

from openmodel_operator.api.common import (
    DNS_SUBDOMAIN,
    SHA256_REF,
    ApiModel,
    Condition,
    ConfigMapKeyRef,
    SecretKeyRef,
    StatusModel,
    cel,
    k8s,
)
from openmodel_operator.api.time import UtcDateTime
from openmodel_operator.api.vocabulary import Phase, TrustTier

HF_URI = r"^hf://[A-Za-z0-9][A-Za-z0-9._-]{0,95}/[A-Za-z0-9][A-Za-z0-9._-]{0,95}$"
# Path segments: anything but "/", NUL, other C0 controls and DEL (the same in Go RE2, Rust regex and Python re).
# path segments: any but "." and ".." (a segment may not climb out of the claim's path; written without lookahead,
# which neither the API server's nor pydantic's regex engine has)
_PVC_SEGMENT = r"([^./\x00-\x1f\x7f][^/\x00-\x1f\x7f]*|\.[^./\x00-\x1f\x7f][^/\x00-\x1f\x7f]*|\.\.[^/\x00-\x1f\x7f]+)"
PVC_URI = rf"^pvc://[a-z0-9]([-a-z0-9]*[a-z0-9])?(/{_PVC_SEGMENT})*/?$"
SOURCE_URI = f"({HF_URI})|({PVC_URI})"
# A git branch or tag name (no "..", no leading "-" or "/", no spaces or control characters) or a commit.
REVISION = r"^[A-Za-z0-9_][A-Za-z0-9._/+-]{0,254}$"
QUANTITY = r"^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$"
# A URL of printable ASCII (no spaces, no controls, no Unicode look-alikes); the host starts with a letter,
# digit or "[" (IPv6). Policies then compare its origin (spec.sources.endpoints of a ModelTrustPolicy).
ENDPOINT_URL = r"^https?://[A-Za-z0-9\[][!-~]*$"

MofClass = Literal["ClassI", "ClassII", "ClassIII", "None"]

QuantityValue = int | str
RECREATE_TAKES_NO_COUNTS = (
    "serving.rollout: maxSurge and maxUnavailable apply to strategy RollingUpdate only; remove them"
)
CLAIM_OF_A_MODEL = (
    "storage.claimName must not name a claim ending in -weights: that is how the operator names a model's own "
    "claim, which it deletes with the model; create a claim of another name for the shared cache"
)
SHARED_CLAIM_IS_NOT_PER_POD = (
    "storage.claimName names a claim shared by the namespace's models; with mode PerPod each pod has its own "
    "volume: set one or the other"
)
PER_POD_NEEDS_PODS = (
    "storage.mode PerPod fills a volume per serving pod: with serving.runtime none there is no pod; use mode Claim"
)
ROLLOUT_ON_ONE_POD_VOLUME = (
    "serving.rollout.strategy must be Recreate with storage.accessMode ReadWriteOncePod: the claim admits one pod, "
    "so a new pod could never start beside an old one"
)


class ModelSource(ApiModel):
    """Where the model comes from and which revision of it."""

    model_config = {
        "json_schema_extra": k8s(
            validations=[
                cel(
                    "!has(self.tokenSecretRef) || self.uri.startsWith('hf://')",
                    "tokenSecretRef applies only to hf:// sources; remove it for pvc:// sources",
                ),
                cel(
                    "!has(self.endpoint) || self.uri.startsWith('hf://')",
                    "endpoint applies only to hf:// sources; remove it for pvc:// sources",
                ),
            ]
        )
    }

    uri: str = Field(
        description=(
            "The model to run: hf://<org>/<name> for a Hugging Face Hub repository (or the mirror named by "
            "endpoint), or pvc://<claim>/<path> for weights already staged on a PersistentVolumeClaim."
        ),
        max_length=512,
        pattern=SOURCE_URI,
    )
    revision: str = Field(
        "main",
        description=(
            "Branch, tag or 40-hex commit. A branch or tag is pinned to a commit, recorded in "
            "status.provenance.resolvedRevision; only that commit is served."
        ),
        max_length=255,
        pattern=REVISION,
        json_schema_extra=k8s(
            validations=[
                cel(
                    "!self.contains('..') && !self.endsWith('/') && !self.endsWith('.lock')",
                    "revision must be a valid git branch, tag or commit: no '..', no trailing '/' or '.lock'",
                )
            ]
        ),
    )
    endpoint: str | None = Field(
        None,
        description=(
            "A Hugging Face Hub mirror to resolve and download from (air-gapped clusters). Default: huggingface.co."
        ),
        max_length=2048,
        pattern=ENDPOINT_URL,
    )
    token_secret_ref: SecretKeyRef | None = Field(
        None, description="A Secret holding a Hub token, for gated or private repositories. Never logged."
    )
    digest: str | None = Field(
        None,
        description=(
            "The expected manifest digest (sha256:<64 hex>, as printed by `openmodel digest`). When set, the "
            "resolved content must match it; with a policy that allows it, this is the Pinned trust tier."
        ),
        pattern=SHA256_REF,
    )


class SignatureSource(ApiModel):
    """Where the model-signing bundle lives."""

    model_config = {
        "json_schema_extra": k8s(
            validations=[
                cel(
                    "!(has(self.path) && has(self.configMapRef))",
                    "set either signature.path (a file in the repository) or signature.configMapRef "
                    "(a bundle kept in the cluster), not both",
                )
            ]
        )
    }

    path: str | None = Field(
        None,
        description="Path of the bundle inside the model repository. Default: model.sig.",
        max_length=1024,
        pattern=r"^[^/\x00-\x1f\x7f][^\x00-\x1f\x7f]*$",
        json_schema_extra=k8s(validations=[cel("!self.contains('..')", "signature.path must not contain '..'")]),
    )
    config_map_ref: ConfigMapKeyRef | None = Field(
        None,
        description=(
            "A bundle kept in the cluster, e.g. an organisation's countersignature over a third-party "
            "revision it reviewed."
        ),
    )


class TrustSpec(ApiModel):
    """How the model proves where it comes from."""

    signature: SignatureSource = Field(
        default_factory=SignatureSource, description="Where the signature bundle over the model's files lives."
    )


ADAPTER_NAME = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
ADAPTERS_NEED_A_CLAIM = (
    "spec.adapters are pulled into slots of a claim: storage.mode PerPod has none; use mode Claim (or a shared "
    "claimName) for a model with adapters"
)
ADAPTERS_NEED_A_PULLED_BASE = (
    "spec.adapters are pulled beside the base model on its volume: a pvc:// model is served in place from its "
    "claim and has none; stage the adapters with the model, or use an hf:// source"
)
ADAPTER_NAMES_UNIQUE = "spec.adapters: each adapter needs its own name (it is the model name clients ask for)"


class AdapterSpec(ApiModel):
    """A LoRA adapter served beside the base model: resolved, verified and pulled like a model of its own."""

    model_config = {
        "json_schema_extra": k8s(
            validations=[
                cel(
                    "self.source.uri.startsWith('hf://')",
                    "adapters[].source.uri must be an hf://<org>/<name> repository (or one on a mirror endpoint)",
                ),
            ]
        )
    }

    name: str = Field(
        description=(
            "The name clients ask for (the `model` of an OpenAI request) and vLLM's LoRA module name; a DNS label, "
            "different from the OpenModel's own name."
        ),
        min_length=1,
        max_length=40,
        pattern=ADAPTER_NAME,
    )
    source: ModelSource = Field(description="Where the adapter comes from: a repository and revision, like a model's.")
    trust: TrustSpec = Field(default_factory=TrustSpec, description="Where the adapter's signature lives.")


class Toleration(ApiModel):
    """A pod toleration, passed through to the serving pods."""

    key: str | None = Field(None, description="Taint key; empty with operator Exists matches all taints.")
    operator: Literal["Exists", "Equal"] | None = Field(None, description="Exists or Equal (default Equal).")
    value: str | None = Field(None, description="Taint value for operator Equal.")
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = Field(
        None, description="Taint effect to match; empty matches all effects."
    )
    toleration_seconds: int | None = Field(None, description="How long a NoExecute taint is tolerated.")


class EnvKeyRef(ApiModel):
    """A key of a Secret or ConfigMap in the OpenModel's namespace (a Kubernetes SecretKeySelector or
    ConfigMapKeySelector)."""

    name: str = Field(description="Name of the Secret or ConfigMap.", max_length=253, pattern=DNS_SUBDOMAIN)
    key: str = Field(description="Key in it.", max_length=253)
    optional: bool | None = Field(None, description="Whether the key may be missing.")


class EnvFieldRef(ApiModel):
    """A field of the pod (a Kubernetes ObjectFieldSelector)."""

    field_path: str = Field(description="e.g. status.podIP.", max_length=256)
    api_version: str | None = Field(None, description="Schema version of the path (default v1).", max_length=64)


class EnvResourceFieldRef(ApiModel):
    """A resource of the container (a Kubernetes ResourceFieldSelector)."""

    resource: str = Field(description="e.g. limits.memory.", max_length=256)
    container_name: str | None = Field(None, description="Container name.", max_length=63)
    divisor: QuantityValue | None = Field(None, description="Output unit, e.g. 1Mi.")


class EnvVarSource(ApiModel):
    """A Kubernetes EnvVarSource, typed: a free-form field would let a tenant store JSON nested deeper than
    a JSON decoder recurses, and the OpenModel watch of every tenant would fail on it."""

    secret_key_ref: EnvKeyRef | None = Field(None, description="A key of a Secret.")
    config_map_key_ref: EnvKeyRef | None = Field(None, description="A key of a ConfigMap.")
    field_ref: EnvFieldRef | None = Field(None, description="A field of the pod.")
    resource_field_ref: EnvResourceFieldRef | None = Field(None, description="A resource of the container.")


class EnvVar(ApiModel):
    """An environment variable for the inference server container."""

    name: str = Field(description="Variable name.", max_length=256, pattern=r"^[-._a-zA-Z][-._a-zA-Z0-9]*$")
    value: str | None = Field(None, description="Literal value.")
    value_from: EnvVarSource | None = Field(
        None, description="A Kubernetes EnvVarSource (secretKeyRef, configMapKeyRef, fieldRef, resourceFieldRef)."
    )


class ResourceRequirements(ApiModel):
    """Compute resources for the inference server; nvidia.com/gpu comes from serving.gpus."""

    limits: dict[str, QuantityValue] | None = Field(None, description="Resource limits, e.g. memory: 32Gi.")
    requests: dict[str, QuantityValue] | None = Field(None, description="Resource requests, e.g. cpu: '4'.")


class RolloutSpec(ApiModel):
    """How the serving Deployment moves to newly verified content (a Deployment's rollout strategy).

    Left out, the operator picks a strategy that cannot deadlock: Recreate on a volume that attaches to one node
    (ReadWriteOnce, ReadWriteOncePod) and a rolling update that never needs a spare GPU otherwise. Set
    ``maxSurge: 1, maxUnavailable: 0`` for an update without downtime when a spare GPU (or node) exists.
    """

    model_config = {
        "json_schema_extra": k8s(
            validations=[
                cel(
                    "self.strategy == 'Recreate' ? !has(self.maxSurge) && !has(self.maxUnavailable) : true",
                    RECREATE_TAKES_NO_COUNTS,
                ),
            ]
        )
    }

    strategy: Literal["RollingUpdate", "Recreate"] = Field(
        "RollingUpdate",
        description="RollingUpdate replaces pods a few at a time; Recreate stops every old pod first.",
    )
    max_surge: int | str | None = Field(
        None,
        description="Pods above spec.serving.replicas during a rolling update: a count or a percentage (e.g. 1, 25%).",
    )
    max_unavailable: int | str | None = Field(
        None,
        description="Pods that may be unavailable during a rolling update: a count or a percentage (e.g. 0, 25%).",
    )

    @model_validator(mode="after")
    def _counts_need_rolling(self) -> RolloutSpec:
        """The same rule as the schema's (CEL), for a spec read without the API server (``openmodel render``)."""
        if self.strategy == "Recreate" and (self.max_surge is not None or self.max_unavailable is not None):
            raise ValueError(RECREATE_TAKES_NO_COUNTS)
        return self


DNS_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
_DNS_SEGMENT = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
_LABEL_NAME = re.compile(r"[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?")
LABEL_VALUE = r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$"
NamespaceName = Annotated[str, StringConstraints(max_length=63, pattern=DNS_LABEL)]
LabelValue = Annotated[str, StringConstraints(max_length=63, pattern=LABEL_VALUE)]


class MatchLabels(ApiModel):
    """A label selector by equality (a Kubernetes LabelSelector's matchLabels)."""

    match_labels: dict[str, LabelValue] = Field(
        description="Labels the selected objects carry, all of them.", min_length=1, max_length=16
    )

    @field_validator("match_labels")
    @classmethod
    def _label_keys(cls, value: dict[str, str]) -> dict[str, str]:
        """Keys are checked here, not by a CEL rule: a regex over each key of a map costs more than a real
        apiserver's CEL budget estimate admits; the NetworkPolicy's own validation is the backstop."""
        for key in value:
            prefix, slash, name = key.rpartition("/")
            ok = 0 < len(name) <= 63 and len(prefix) <= 253 and _LABEL_NAME.fullmatch(name) is not None
            if ok and slash:
                ok = all(_DNS_SEGMENT.fullmatch(part) for part in prefix.split("."))
            if not ok:
                raise ValueError(f"matchLabels key {key[:80]!r} is not a label key ([prefix/]name, name <= 63)")
        return value


class AccessSpec(ApiModel):
    """Who may call the served model: a NetworkPolicy per model and an optional API key."""

    namespaces: list[NamespaceName] | None = Field(
        None,
        description=(
            "Other namespaces whose pods may call the endpoint, by name. The model's own namespace is always "
            "allowed; nothing else is unless listed here or selected by namespaceSelector."
        ),
        max_length=64,
        json_schema_extra=k8s(list_type="set"),
    )
    namespace_selector: MatchLabels | None = Field(
        None, description="Namespaces whose pods may call the endpoint, by label (e.g. an ingress controller's)."
    )
    pod_selector: MatchLabels | None = Field(
        None,
        description="Only pods with these labels may call the endpoint (in every allowed namespace). Default: any pod.",
    )
    api_key: bool = Field(
        False,
        description=(
            "Generate an API key (Secret <name>-api-key, key api-key) that the server requires on every /v1 "
            "request (vLLM's VLLM_API_KEY); status.access names the Secret. Delete the Secret to rotate it."
        ),
    )


class ServingSpec(ApiModel):
    """How the verified weights are served."""

    model_config = {
        "json_schema_extra": k8s(
            validations=[
                cel(
                    "!has(self.runtime) || self.runtime != 'none' || !has(self.image)",
                    "serving.image has no effect with runtime: none (pull and verify only); remove it",
                )
            ]
        )
    }

    runtime: Literal["vllm", "none"] = Field(
        "vllm", description="vllm: a vLLM OpenAI-compatible server. none: pull and verify only, serve nothing."
    )
    image: str | None = Field(
        None, description="Inference server image; defaulted per runtime by the operator.", max_length=512
    )
    replicas: int = Field(1, description="Number of inference server replicas.", ge=0, le=1000)
    gpus: int = Field(1, description="nvidia.com/gpu per replica; 0 runs on CPU.", ge=0, le=64)
    verify_on_start: bool = Field(
        True,
        description="Re-check every file on the volume against the signed digests before the server starts.",
    )
    port: int = Field(8000, description="Port the server listens on and the Service exposes.", ge=1, le=65535)
    resources: ResourceRequirements | None = Field(None, description="Extra compute resources for the server.")
    node_selector: dict[str, str] | None = Field(None, description="Node labels the serving pods must run on.")
    tolerations: list[Toleration] | None = Field(None, description="Tolerations for the serving pods.", max_length=64)
    runtime_class_name: str | None = Field(
        None, description="RuntimeClass for the serving pods, e.g. nvidia.", max_length=253, pattern=DNS_SUBDOMAIN
    )
    args: list[str] | None = Field(
        None, description="Extra arguments appended to the server command line.", max_length=128
    )
    env: list[EnvVar] | None = Field(
        None,
        description="Extra environment variables for the server.",
        max_length=128,
        json_schema_extra=k8s(list_type="map", list_map_keys=["name"]),
    )
    access: AccessSpec = Field(
        default_factory=AccessSpec,
        description=(
            "Who may call the endpoint: by default only pods of the model's own namespace (a NetworkPolicy), "
            "with no API key."
        ),
    )
    rollout: RolloutSpec | None = Field(
        None,
        description=(
            "How the server moves to newly verified content. Default: Recreate on a ReadWriteOnce(Pod) volume, "
            "otherwise a rolling update that needs no spare GPU (maxSurge 1, maxUnavailable 1; on CPU "
            "maxUnavailable 0)."
        ),
    )


class StorageSpec(ApiModel):
    """Where the verified weights live: one claim of the model's (default), or a fresh volume per serving pod."""

    size: str = Field(
        "20Gi",
        description="Requested volume size, e.g. 20Gi; must hold every file of the model.",
        max_length=64,
        pattern=QUANTITY,
    )
    storage_class_name: str | None = Field(
        None, description="StorageClass of the claim; empty uses the cluster default.", max_length=253
    )
    access_mode: Literal["ReadWriteOnce", "ReadWriteMany", "ReadWriteOncePod"] = Field(
        "ReadWriteOnce", description="Access mode of the claim; ReadWriteMany lets replicas spread across nodes."
    )
    retain: bool = Field(False, description="Keep the claim (and the weights) when the OpenModel is deleted.")
    mode: Literal["Claim", "PerPod"] = Field(
        "Claim",
        description=(
            "Claim: one PersistentVolumeClaim of the model, filled by a pull Job, shared by its serving pods. "
            "PerPod: no shared claim; each serving pod gets its own ephemeral volume, filled and checked byte "
            "for byte by an init container, so replicas spread over nodes without ReadWriteMany."
        ),
    )
    claim_name: str | None = Field(
        None,
        description=(
            "An existing PersistentVolumeClaim of the namespace used as a content-addressed cache shared by "
            "OpenModels: a revision another model already pulled there is not downloaded again. The operator never "
            "creates, resizes or deletes it (size, storageClassName, accessMode and retain do not apply)."
        ),
        max_length=253,
        pattern=DNS_SUBDOMAIN,
        json_schema_extra=k8s(validations=[cel("!self.endsWith('-weights')", CLAIM_OF_A_MODEL)]),
    )
    keep_revisions: int = Field(
        1,
        description=(
            "Verified revisions kept on the volume besides the one served, for a rollback without a download; "
            "older ones are removed once a new revision serves."
        ),
        ge=0,
        le=5,
    )


class OpenModelSpec(ApiModel):
    """Desired state: which model, how it is trusted, how it is served."""

    model_config = {
        "json_schema_extra": k8s(
            validations=[
                cel(
                    "!has(self.storage) || !has(self.storage.claimName) || !has(self.storage.mode) || "
                    "self.storage.mode != 'PerPod'",
                    SHARED_CLAIM_IS_NOT_PER_POD,
                ),
                cel(
                    "!has(self.storage) || !has(self.storage.mode) || self.storage.mode != 'PerPod' || "
                    "!has(self.serving) || !has(self.serving.runtime) || self.serving.runtime != 'none'",
                    PER_POD_NEEDS_PODS,
                ),
                cel(
                    "!has(self.adapters) || size(self.adapters) == 0 || !has(self.storage) || "
                    "!has(self.storage.mode) || self.storage.mode != 'PerPod'",
                    ADAPTERS_NEED_A_CLAIM,
                ),
                cel(
                    "!has(self.adapters) || size(self.adapters) == 0 || self.source.uri.startsWith('hf://')",
                    ADAPTERS_NEED_A_PULLED_BASE,
                ),
                cel(
                    "!has(self.serving) || !has(self.serving.rollout) || !has(self.storage) || "
                    "self.storage.accessMode != 'ReadWriteOncePod' || "
                    "(has(self.storage.mode) && self.storage.mode == 'PerPod') || "
                    "self.serving.rollout.strategy == 'Recreate'",
                    ROLLOUT_ON_ONE_POD_VOLUME,
                ),
            ]
        )
    }

    source: ModelSource = Field(description="Where the model comes from.")
    trust: TrustSpec = Field(default_factory=TrustSpec, description="Where the model's signature lives.")
    serving: ServingSpec = Field(default_factory=ServingSpec, description="How the model is served.")
    storage: StorageSpec = Field(default_factory=StorageSpec, description="The volume that holds the weights.")
    adapters: list[AdapterSpec] | None = Field(
        None,
        description=(
            "LoRA adapters served with the base model (vLLM --lora-modules). Each is verified under the same "
            "policies; one that fails is not loaded and the base model keeps serving."
        ),
        max_length=8,
        json_schema_extra=k8s(list_type="map", list_map_keys=["name"]),
    )
    update_policy: Literal["Manual", "Auto"] = Field(
        "Manual",
        description=(
            "What to do when the source branch moves upstream. Manual: report UpdateAvailable. "
            "Auto: verify the new commit, then roll to it; a commit that fails verification never replaces "
            "the running one."
        ),
    )

    @model_validator(mode="after")
    def _rollout_fits_volume(self) -> OpenModelSpec:
        """A ReadWriteOncePod claim admits one pod: a surge pod would wait for it forever."""
        rollout = self.serving.rollout
        per_pod = self.storage.mode == "PerPod"
        if (self.storage.claim_name or "").endswith("-weights"):
            raise ValueError(CLAIM_OF_A_MODEL)
        if per_pod and self.storage.claim_name is not None:
            raise ValueError(SHARED_CLAIM_IS_NOT_PER_POD)
        if per_pod and self.serving.runtime == "none":
            raise ValueError(PER_POD_NEEDS_PODS)
        if per_pod and self.adapters:
            raise ValueError(ADAPTERS_NEED_A_CLAIM)
        if self.adapters and not self.source.uri.startswith("hf://"):
            raise ValueError(ADAPTERS_NEED_A_PULLED_BASE)
        names = [adapter.name for adapter in self.adapters or []]
        if len(set(names)) != len(names):
            raise ValueError(ADAPTER_NAMES_UNIQUE)
        one_pod = self.storage.access_mode == "ReadWriteOncePod" and not per_pod
        if rollout is not None and rollout.strategy != "Recreate" and one_pod:
            raise ValueError(ROLLOUT_ON_ONE_POD_VOLUME)
        return self


# ---------------------------------------------------------------- status


class SignatureRecord(StatusModel):
    """Who signed the pinned content and how it was checked."""

    method: Literal["key", "certificate", "keyless", "none"] = Field(description="How the signature was verified.")
    identity: str | None = Field(
        None, description="The signer: the policy's key name, the certificate subject, or the keyless identity."
    )
    key_fingerprint: str | None = Field(None, description="SHA256 fingerprint of the signing public key.")
    issuer: str | None = Field(None, description="Certificate issuer or OIDC issuer of a keyless signature.")
    bundle_digest: str | None = Field(None, description="sha256 of the signature bundle that was verified.")
    verified_at: UtcDateTime | None = Field(None, description="When the signature was verified (RFC 3339).")


class OpennessRecord(StatusModel):
    """Openness assessed against the OSI Open Source AI Definition and the Model Openness Framework."""

    mof_class: MofClass = Field(description="Model Openness Framework class: ClassI (Open Science) .. ClassIII.")
    osaid: bool = Field(description="Whether the Open Source AI Definition v1.0 components are all open.")
    open_components: list[str] | None = Field(None, description="Components found open.")
    missing: list[str] | None = Field(None, description="Components missing for OSAID or the next class.")


class PolicyRecord(StatusModel):
    """One ModelTrustPolicy that governed this model, and what it said."""

    name: str = Field(description="Policy name; 'builtin-default' when no policy selects the namespace.")
    generation: int | None = Field(None, description="The policy's metadata.generation that was evaluated.")
    mode: Literal["Enforce", "Audit"] = Field(description="Enforce rejects; Audit only records.")
    verdict: Literal["Pass", "Fail"] = Field(description="Whether the model satisfied this policy.")
    reasons: list[str] | None = Field(None, description="Reason codes of the violations, if any.")
    anchor: str | None = Field(
        None,
        description="The trust anchor of this policy that verified the signature (key, CA or keyless identity).",
        max_length=1024,
    )
    inputs_digest: str | None = Field(
        None,
        description=(
            "sha256 over the keys, CAs and trusted root this policy referenced when it was evaluated; a change "
            "(a key ConfigMap edited or deleted) triggers a re-decision."
        ),
        max_length=80,
    )


class ContentProvenance(StatusModel):
    """Where one content (a model or an adapter) comes from and why it is trusted."""

    source: str = Field(description="The source URI that was resolved.")
    endpoint: str | None = Field(
        None, description="The Hub endpoint (origin) the source was resolved from; unset for volumes.", max_length=2048
    )
    repository: str | None = Field(
        None, description="The canonical repository id the endpoint answered for the source.", max_length=256
    )
    requested_revision: str | None = Field(
        None, description="The spec.source.revision (branch, tag or commit) the pinned commit was resolved from."
    )
    resolved_revision: str | None = Field(None, description="The full 40-hex commit that is pinned.")
    manifest_digest: str | None = Field(
        None,
        description=(
            "The name-bound manifest digest: sha256 over every file's path, size and sha256 (docs/api.md), "
            "as `openmodel digest` prints it."
        ),
    )
    file_count: int | None = Field(None, description="Number of files in the manifest.")
    total_bytes: int | None = Field(None, description="Total size of the files in the manifest.")
    trust_tier: TrustTier | None = Field(None, description="Signed, Pinned or Unverified.")
    signature: SignatureRecord | None = Field(None, description="The verified signature, when there is one.")
    license: str | None = Field(None, description="SPDX license id read from the model card.")
    openness: OpennessRecord | None = Field(None, description="Openness class and components.")
    policies: list[PolicyRecord] | None = Field(
        None, description="Every policy that governed the model.", max_length=256
    )
    verified_at: UtcDateTime | None = Field(None, description="When the trust decision was last made (RFC 3339).")


class AdapterProvenance(ContentProvenance):
    """One LoRA adapter: its own decision, and whether the serving pods load it."""

    name: str = Field(description="The adapter's name (spec.adapters[].name).", max_length=40)
    verdict: Literal["Trusted", "Untrusted", "Unknown"] = Field(
        description="Trusted: passes every Enforce policy. Untrusted: refused. Unknown: not examined yet."
    )
    reason: str | None = Field(None, description="Why it is not loaded (a reason code), when it is not.", max_length=64)
    message: str | None = Field(None, description="The decision's explanation.", max_length=1024)
    pull_job_uid: str | None = Field(
        None, description="uid of the pull Job the operator created for the adapter's slot.", max_length=64
    )
    loaded: bool = Field(False, description="Whether every serving pod runs with this adapter's verified content.")


class BomRecord(StatusModel):
    """Where the AI-BOMs (SPDX 3 and CycloneDX) of the decided content are kept (docs/provenance.md)."""

    manifest_digest: str = Field(description="The content the BOMs describe (its manifest digest).", max_length=71)
    config_map: str | None = Field(
        None,
        description="The ConfigMap (owned by the OpenModel) holding both documents; unset when they are too large.",
        max_length=253,
    )
    spdx3_key: str | None = Field(None, description="binaryData key of the gzip-compressed SPDX 3.0.1 JSON-LD.")
    cyclonedx_key: str | None = Field(None, description="binaryData key of the gzip-compressed CycloneDX 1.6 JSON.")
    spdx3_digest: str | None = Field(
        None,
        description="sha256 of the uncompressed SPDX 3 document (check the ConfigMap, the tenant's to edit, with it).",
        max_length=71,
    )
    cyclonedx_digest: str | None = Field(
        None, description="sha256 of the CycloneDX document (uncompressed), as spdx3Digest.", max_length=71
    )
    message: str | None = Field(
        None, description="Why the BOMs are not kept in the cluster, and how to get them.", max_length=1024
    )
    statement_digest: str | None = Field(
        None,
        description=(
            "sha256 of what the documents state but their time and the policies' generations: a later decision "
            "stating the same keeps them."
        ),
        max_length=71,
    )


class Provenance(ContentProvenance):
    """What runs and why it is trusted."""

    bom: BomRecord | None = Field(None, description="The AI-BOMs of this decision, kept beside the model.")
    adapters: list[AdapterProvenance] | None = Field(
        None, description="The decision on each LoRA adapter of spec.adapters.", max_length=8
    )


class ContentRecord(StatusModel):
    """One verified revision by its content: what the serving pods run, what replaces it, what is kept."""

    revision: str | None = Field(None, description="The pinned commit (none for a volume source).")
    short_revision: str | None = Field(None, description="The commit, abbreviated for display.")
    manifest_digest: str = Field(description="sha256 of the pinned manifest: names the revision's slot.")
    stage: Literal["Pulling", "PullFailed", "RollingOut", "RolloutStalled"] | None = Field(
        None, description="Incoming content only: where its preparation is."
    )
    pull_job_uid: str | None = Field(
        None,
        description="uid of the pull Job the operator created for this revision's slot: only its success counts.",
        max_length=64,
    )


class AccessRecord(StatusModel):
    """The objects that guard the endpoint, by reference only (never the key)."""

    network_policy: str | None = Field(None, description="The NetworkPolicy that admits the allowed callers.")
    allowed_namespaces: list[str] | None = Field(
        None, description="Namespaces allowed by name (the model's own first).", max_length=65
    )
    api_key_secret: SecretKeyRef | None = Field(
        None, description="The Secret and key holding the API key clients send as 'Authorization: Bearer <key>'."
    )


class AttestationsRecord(StatusModel):
    """Where the signed history of this model's trust decisions is kept (docs/provenance.md)."""

    config_map: str = Field(description="The ConfigMap holding the last decisions, one signed bundle per key.")
    count: int = Field(description="How many decisions it holds (bounded by OPENMODEL_ATTESTATION_HISTORY).")
    latest: str = Field(description="The key of the newest decision.", max_length=253)
    key_fingerprint: str | None = Field(
        None, description="SHA256 fingerprint of the operator key that signed the newest decision.", max_length=80
    )


class OpenModelStatus(ApiModel):
    """Observed state, written by the operator only."""

    model_config = {"extra": "ignore"}

    phase: Phase | None = Field(None, description="Where the model is in its lifecycle.")
    observed_generation: int | None = Field(None, description="The metadata.generation last acted on.")
    short_revision: str | None = Field(None, description="The pinned commit, abbreviated for display.")
    conditions: list[Condition] | None = Field(
        None,
        description=(
            "Resolved, SignatureVerified, OpennessVerified, Trusted, WeightsReady, Available, UpdateAvailable "
            "and the summary Ready."
        ),
        max_length=32,
        json_schema_extra=k8s(list_type="map", list_map_keys=["type"]),
    )
    provenance: Provenance | None = Field(
        None, description="The content the operator decided to trust and serve, and why it is trusted."
    )
    served: ContentRecord | None = Field(
        None,
        description=(
            "What the serving pods run now (runtime none: what is verified on the volume); during an update "
            "the previous revision, until every pod runs the new one."
        ),
    )
    incoming: ContentRecord | None = Field(
        None, description="Verified content being pulled or rolled out to replace what is served; none when settled."
    )
    kept_revisions: list[ContentRecord] | None = Field(
        None,
        description="Previous revisions kept on the volume (spec.storage.keepRevisions): a rollback needs no download.",
        max_length=8,
    )
    endpoint: str | None = Field(None, description="In-cluster OpenAI-compatible base URL of the served model.")
    access: AccessRecord | None = Field(
        None, description="What guards the endpoint: the NetworkPolicy and, with an API key, the Secret that holds it."
    )
    update_available: str | None = Field(
        None, description="A newer commit on the source branch, not yet verified or rolled."
    )
    attestations: AttestationsRecord | None = Field(
        None, description="The signed history of trust decisions (in-toto SLSA verification summaries)."
    )
    operator: dict[str, Any] | None = Field(
        None,
        description="The operator's own bookkeeping; not part of the API.",
        json_schema_extra=k8s(preserve_unknown_fields=True),
    )
