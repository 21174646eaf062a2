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

PEM_PUBLIC_KEY = r"^\s*-----BEGIN PUBLIC KEY-----[\s\S]+-----END PUBLIC KEY-----\s*$"
PEM_CERTIFICATES = r"^\s*-----BEGIN CERTIFICATE-----[\s\S]+-----END CERTIFICATE-----\s*$"
SOURCE_PATTERN = r"^(hf|pvc)://[A-Za-z0-9*?._/\[\]-]+$"
SPDX_ID = r"^[A-Za-z0-9][A-Za-z0-9.+-]*$"

SourceGlob = Annotated[str, StringConstraints(pattern=r"^(\*|(hf|pvc)://\S+)$", max_length=512)]
SpdxId = Annotated[str, StringConstraints(pattern=SPDX_ID, max_length=128)]


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
        pattern=r"^https://\S+$",
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


class SourceRules(ApiModel):
    """Which sources may be used at all."""

    allow: list[SourceGlob] = Field(
        ["*"],
        description="Glob patterns of allowed source URIs, e.g. hf://ibm-granite/*. Default: all.",
        max_length=128,
    )
    deny: list[SourceGlob] | None = Field(
        None,
        description="Glob patterns of denied source URIs; deny wins over allow.",
        max_length=128,
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
