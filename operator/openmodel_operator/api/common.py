"""Building blocks shared by the OpenModel and ModelTrustPolicy APIs.

Fields carry Kubernetes-specific schema extras (``x-kubernetes-*``) through ``json_schema_extra``;
the CRD generator (``openmodel_operator.crd``) turns the pydantic schema into a structural one.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from openmodel_operator.api.time import UtcDateTime

GROUP = "openmodel.io"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"

DNS_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
DNS_SUBDOMAIN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
CONFIG_KEY = r"^[-._a-zA-Z0-9]+$"
SHA256_REF = r"^sha256:[0-9a-f]{64}$"


def cel(rule: str, message: str, field_path: str | None = None) -> dict[str, str]:
    """One ``x-kubernetes-validations`` entry; ``message`` is what ``kubectl apply`` prints."""
    entry = {"rule": rule, "message": message}
    if field_path:
        entry["fieldPath"] = field_path
    return entry


def k8s(**extra: Any) -> dict[str, Any]:
    """Schema extras for a field, spelled with the Kubernetes ``x-kubernetes-`` prefix."""
    return {f"x-kubernetes-{key.replace('_', '-')}": value for key, value in extra.items()}


class ApiModel(BaseModel):
    """Base for API objects: camelCase on the wire, unknown fields refused (as ``kubectl --validate=strict``)."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")

    def to_wire(self) -> dict[str, Any]:
        """The object as Kubernetes stores it: camelCase keys, unset optional fields omitted."""
        return self.model_dump(by_alias=True, exclude_none=True, mode="json")


class SecretKeyRef(ApiModel):
    """A key in a Secret of the OpenModel's own namespace."""

    name: str = Field(description="Name of the Secret.", max_length=253, pattern=DNS_SUBDOMAIN)
    key: str = Field("token", description="Key within the Secret.", max_length=253, pattern=CONFIG_KEY)


class ConfigMapKeyRef(ApiModel):
    """A key in a ConfigMap of the OpenModel's own namespace."""

    name: str = Field(description="Name of the ConfigMap.", max_length=253, pattern=DNS_SUBDOMAIN)
    key: str = Field(description="Key within the ConfigMap.", max_length=253, pattern=CONFIG_KEY)


class NamespacedConfigMapKeyRef(ApiModel):
    """A key in a ConfigMap named with its namespace (cluster-scoped policies have no namespace of their own)."""

    name: str = Field(description="Name of the ConfigMap.", max_length=253, pattern=DNS_SUBDOMAIN)
    namespace: str = Field(
        description="Namespace of the ConfigMap, usually the operator's own namespace.",
        max_length=63,
        pattern=DNS_LABEL,
    )
    key: str = Field(description="Key within the ConfigMap.", max_length=253, pattern=CONFIG_KEY)


ConditionStatus = Literal["True", "False", "Unknown"]


class StatusModel(ApiModel):
    """Base for what the operator writes to status: a field it does not know (another version of the operator
    wrote it, and the CRD kept it) is ignored, so the rest of the record still reads."""

    model_config = ConfigDict(extra="ignore")


class Condition(StatusModel):
    """A standard Kubernetes condition (metav1.Condition)."""

    type: str = Field(description="Type of the condition, e.g. Trusted or Available.", max_length=316)
    status: ConditionStatus = Field(description="True, False or Unknown.")
    reason: str = Field("", description="A CamelCase reason code, stable for automation.", max_length=1024)
    message: str = Field("", description="A human-readable explanation.", max_length=32768)
    last_transition_time: UtcDateTime | None = Field(
        None, description="When the condition last changed status (RFC 3339)."
    )
    observed_generation: int | None = Field(
        None, description="The metadata.generation this condition was computed from.", ge=0
    )


class LabelSelectorRequirement(ApiModel):
    """One ``matchExpressions`` entry of a label selector."""

    key: str = Field(description="The label key the selector applies to.", max_length=317)
    operator: Literal["In", "NotIn", "Exists", "DoesNotExist"] = Field(
        description="How the key relates to the values: In, NotIn, Exists or DoesNotExist."
    )
    values: list[str] | None = Field(
        None,
        description="Values for In and NotIn; must be empty for Exists and DoesNotExist.",
        max_length=64,
    )


class LabelSelector(ApiModel):
    """A standard Kubernetes label selector; an empty selector selects everything."""

    match_labels: dict[str, str] | None = Field(None, description="Labels that must all be present with these values.")
    match_expressions: list[LabelSelectorRequirement] | None = Field(
        None, description="Requirements that must all hold.", max_length=32
    )
