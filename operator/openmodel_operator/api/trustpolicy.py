"""The ``ModelTrustPolicy`` API: cluster-scoped rules bound to namespaces, never chosen by a model."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, StringConstraints

from openmodel_operator.api.common import (
    ApiModel,
    Condition,
    LabelSelector,
    NamespacedConfigMapKeyRef,
    cel,
    k8s,
)
from openmodel_operator.api.openmodel import MofClass

# Every pattern is written with explicit ASCII classes so that the apiserver (Go RE2: ``\s``/``\d``/``\w``
# are ASCII, ``$`` is the end of text), pydantic (Rust regex: Unicode classes) and Python ``re`` (``$`` also
# matches before a final newline) give the same answer: a policy the CRD admits is a policy the operator can use.
# tests/adversarial/test_policy_invalid.py checks every pattern of the generated CRDs against tricky strings.
_WS = r"[ \t\n\r\f\v]"
PEM_PUBLIC_KEY = rf"^{_WS}*-----BEGIN PUBLIC KEY-----[^\x00]+-----END PUBLIC KEY-----{_WS}*$"
PEM_CERTIFICATES = rf"^{_WS}*-----BEGIN CERTIFICATE-----[^\x00]+-----END CERTIFICATE-----{_WS}*$"
# Source globs: printable ASCII without space and without ``[``/``]``. Only ``*`` (any run of characters,
# ``/`` included) and ``?`` (one character) are wildcards; there are no character classes, so a glob never
# means something else to the matcher than to its author (fnmatch would read ``[...]`` as a class).
SOURCE_PATTERN = r"^(\*|(hf|pvc)://[!-Z\x5c^-~]+)$"
SPDX_ID = r"^[A-Za-z0-9][A-Za-z0-9.+-]*$"
# An origin: scheme://host[:port], lower-case, no path, no trailing slash, no userinfo. Host: a DNS name,
# an IPv4 address or a bracketed IPv6 address; port 1-65535 without leading zeros.
_DNS = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*"
_IPV6 = r"\[[0-9a-f:.]+\]"
_PORT = r"(6553[0-5]|655[0-2][0-9]|65[0-4][0-9]{2}|6[0-4][0-9]{3}|[1-5][0-9]{4}|[1-9][0-9]{0,3})"
ORIGIN_PATTERN = rf"^https?://({_DNS}|{_IPV6})(:{_PORT})?$"
# Serving rules: command-line flags, image globs and environment-variable name globs.
FLAG_PATTERN = r"^--?[A-Za-z0-9][A-Za-z0-9_-]*$"
IMAGE_GLOB = r"^[A-Za-z0-9*?][A-Za-z0-9._/:@*?+-]*$"
ENV_GLOB = r"^[-._a-zA-Z0-9*?]+$"

SourceGlob = Annotated[str, StringConstraints(pattern=SOURCE_PATTERN, max_length=512)]
SpdxId = Annotated[str, StringConstraints(pattern=SPDX_ID, max_length=128)]
Origin = Annotated[str, StringConstraints(pattern=ORIGIN_PATTERN, max_length=300)]
FlagPrefix = Annotated[str, StringConstraints(pattern=FLAG_PATTERN, max_length=128)]
ImageGlob = Annotated[str, StringConstraints(pattern=IMAGE_GLOB, max_length=512)]
EnvGlob = Annotated[str, StringConstraints(pattern=ENV_GLOB, max_length=256)]


class TrustedKeySpec(ApiModel):
    """A public key whose signatures are trusted."""

    model_config = {
        "json_schema_extra": k8s(
            validations=[
                cel(
                    "has(self.publicKey) != has(self.configMapRef)",
                    "each signature.keys entry needs exactly one of publicKey (PEM) or configMapRef",
                )
            ]
        )
    }

    name: str = Field(description="A name for the key, shown as the signer in status.", max_length=128, min_length=1)
    public_key: str | None = Field(
        None,
        description="The PEM-encoded public key (-----BEGIN PUBLIC KEY-----).",
        max_length=16384,
        pattern=PEM_PUBLIC_KEY,
    )
    config_map_ref: NamespacedConfigMapKeyRef | None = Field(None, description="A ConfigMap key holding the PEM key.")


class TrustedCertificateSpec(ApiModel):
    """A certificate authority whose issued signing certificates are trusted."""

    model_config = {
        "json_schema_extra": k8s(
            validations=[
                cel(
                    "has(self.caBundle) != has(self.configMapRef)",
                    "each signature.certificates entry needs exactly one of caBundle (PEM) or configMapRef",
                )
            ]
        )
    }

    name: str = Field(description="A name for the CA, shown in status.", max_length=128, min_length=1)
    ca_bundle: str | None = Field(
        None,
        description="PEM certificates: the root CA and any intermediates.",
        max_length=65536,
        pattern=PEM_CERTIFICATES,
    )
    config_map_ref: NamespacedConfigMapKeyRef | None = Field(
        None, description="A ConfigMap key holding the PEM bundle."
    )
    identities: list[Annotated[str, StringConstraints(min_length=1, max_length=1024)]] | None = Field(
        None,
        description=(
            "Optional: the signers this CA is trusted for. The signing certificate must carry one of these values "
            "exactly, as a subject alternative name (email, URI or DNS name) or as its subject common name. "
            "Default: every code-signing certificate the CA issues."
        ),
        max_length=32,
    )


class KeylessIdentitySpec(ApiModel):
    """A Sigstore keyless identity: the OIDC issuer and the certificate subject it vouched for."""

    issuer: str = Field(
        description="OIDC issuer URL, e.g. https://accounts.google.com or https://token.actions.githubusercontent.com.",
        max_length=512,
        pattern=r"^https://[!-~]+$",
    )
    subject: str = Field(
        description="The exact identity: an email, or a workflow URI for CI signing.", max_length=1024, min_length=1
    )


class SignatureRules(ApiModel):
    """Which signatures a model needs and who may make them."""

    model_config = {
        "json_schema_extra": k8s(
            validations=[
                # has(): the apiserver also checks these rules against the schema default {} of this object
                cel(
                    "!(has(self.required) && self.required) || "
                    "!(has(self.allowPinnedDigest) && self.allowPinnedDigest)",
                    "allowPinnedDigest only applies with required: false; with required: true only Signed models pass",
                ),
                cel(
                    "!(has(self.required) && self.required) || (has(self.keys) && size(self.keys) > 0) || "
                    "(has(self.certificates) && size(self.certificates) > 0) || "
                    "(has(self.keyless) && size(self.keyless) > 0)",
                    "signature.required is true but no keys, certificates or keyless identities are configured: "
                    "no model could ever pass; add a trusted signer or set required: false",
                ),
            ]
        )
    }

    required: bool = Field(True, description="true: only the Signed tier passes.")
    allow_pinned_digest: bool = Field(
        False,
        description=(
            "With required: false, true admits Signed or Pinned models (spec.source.digest equals the resolved "
            "manifest digest); false admits Unverified models too (recorded in status)."
        ),
    )
    keys: list[TrustedKeySpec] | None = Field(None, description="Trusted public keys.", max_length=32)
    certificates: list[TrustedCertificateSpec] | None = Field(
        None, description="Trusted certificate authorities.", max_length=32
    )
    keyless: list[KeylessIdentitySpec] | None = Field(
        None, description="Trusted Sigstore keyless identities.", max_length=32
    )
    trusted_root: NamespacedConfigMapKeyRef | None = Field(
        None,
        description=(
            "A Sigstore trusted_root.json for keyless verification without network access. "
            "Default: the public-good Sigstore root shipped with the operator."
        ),
    )


class EndpointRules(ApiModel):
    """Which Hugging Face Hub endpoints (origins) a model may be resolved and downloaded from."""

    allow: list[Origin] | None = Field(
        None,
        description=(
            "Origins (scheme://host[:port], lower-case, no path) of Hub mirrors models may use, e.g. "
            "https://hf-mirror.example.com. The public Hub (https://huggingface.co) is always allowed unless "
            "denied; any other endpoint needs an entry here in at least one policy governing the namespace."
        ),
        max_length=64,
    )
    deny: list[Origin] | None = Field(
        None,
        description="Origins refused even if another policy allows them; may name https://huggingface.co.",
        max_length=64,
    )


class SourceRules(ApiModel):
    """Which sources may be used at all."""

    allow: list[SourceGlob] = Field(
        ["*"],
        description=(
            "Glob patterns of allowed source URIs, e.g. hf://ibm-granite/*, matched case-insensitively; "
            "* matches any characters (/ included), ? one character. Default: all."
        ),
        max_length=128,
    )
    deny: list[SourceGlob] | None = Field(
        None,
        description="Glob patterns of denied source URIs; deny wins over allow.",
        max_length=128,
    )
    endpoints: EndpointRules = Field(
        default_factory=EndpointRules,
        description="Allowed Hub endpoints (spec.source.endpoint of an OpenModel). Default: only the public Hub.",
    )


class LicenseRules(ApiModel):
    """Which model licenses are acceptable (SPDX ids)."""

    allow_osi_approved: bool = Field(True, alias="allowOSIApproved", description="Accept every OSI-approved license.")
    allow: list[SpdxId] | None = Field(
        None,
        description="Further SPDX ids accepted after legal review, e.g. CC-BY-4.0.",
        max_length=256,
    )
    deny: list[SpdxId] | None = Field(
        None,
        description="SPDX ids refused even if otherwise allowed; deny wins.",
        max_length=256,
    )


class OpennessRules(ApiModel):
    """How open a model must be."""

    minimum_class: MofClass | None = Field(
        None,
        description=(
            "Minimum Model Openness Framework class: ClassIII (open model), ClassII (open tooling), "
            "ClassI (open science). Unset: no minimum."
        ),
    )
    require_osaid: bool = Field(
        False,
        alias="requireOSAID",
        description="Require the Open Source AI Definition v1.0 components: weights, code and data information.",
    )


class ServingRules(ApiModel):
    """What an OpenModel's spec.serving may change about the server that runs the verified weights.

    The lists add to built-in defaults that refuse every argument and variable known to make the server
    load other weights, tokenizers, configuration or code than the verified files; they cannot remove them.
    """

    allowed_images: list[ImageGlob] | None = Field(
        None,
        description=(
            "Glob patterns of inference server images a model may set in spec.serving.image. The runtime image "
            "the operator is configured with is always allowed; unset: only that one."
        ),
        max_length=64,
    )
    denied_args: list[FlagPrefix] | None = Field(
        None,
        description=(
            "Further server flags refused in spec.serving.args, matched as --flag, --flag=value, longer "
            "--flag-... spellings, abbreviations and with _ for -. Added to the built-in list."
        ),
        max_length=128,
    )
    denied_env: list[EnvGlob] | None = Field(
        None,
        description=(
            "Further environment variable name globs refused in spec.serving.env (value or valueFrom), "
            "matched case-insensitively. Added to the built-in list."
        ),
        max_length=128,
    )
    allow_trust_remote_code: bool = Field(
        False,
        description="true: admit --trust-remote-code (runs Python code shipped with the model).",
    )
    require_api_key: bool = Field(
        False,
        alias="requireAPIKey",
        description=(
            "true: a model must set spec.serving.access.apiKey, so its /v1 routes answer only callers with the key. "
            "vLLM does not check the key outside /v1 (/metrics, /tokenize and, in recent versions, /invocations, "
            "/pooling, /score, /classify, /rerank, which run the model): the NetworkPolicy every served model gets is "
            "what keeps those to the admitted callers."
        ),
    )


class ModelTrustPolicySpec(ApiModel):
    """Rules every OpenModel in the selected namespaces must satisfy."""

    mode: Literal["Enforce", "Audit"] = Field(
        "Enforce", description="Enforce: violating models are not served. Audit: violations are only recorded."
    )
    namespace_selector: LabelSelector = Field(
        default_factory=LabelSelector,
        description="Namespaces this policy governs, by label; empty selects all namespaces.",
    )
    sources: SourceRules = Field(default_factory=SourceRules, description="Allowed model sources.")
    signature: SignatureRules = Field(default_factory=SignatureRules, description="Signature requirements.")
    licenses: LicenseRules = Field(default_factory=LicenseRules, description="License requirements.")
    openness: OpennessRules = Field(default_factory=OpennessRules, description="Openness requirements.")
    serving: ServingRules = Field(
        default_factory=ServingRules, description="Constraints on the image, arguments and environment of the server."
    )


class ModelTrustPolicyStatus(ApiModel):
    """Observed state of the policy."""

    model_config = {"extra": "ignore"}

    observed_generation: int | None = Field(None, description="The metadata.generation last evaluated.")
    governed_models: int | None = Field(None, description="Number of OpenModels this policy currently governs.")
    conditions: list[Condition] | None = Field(
        None,
        description="Accepted: whether the policy's keys and references could be loaded.",
        max_length=16,
        json_schema_extra=k8s(list_type="map", list_map_keys=["type"]),
    )
    operator: dict[str, object] | None = Field(
        None,
        description="The operator's own bookkeeping; not part of the API.",
        json_schema_extra=k8s(preserve_unknown_fields=True),
    )
