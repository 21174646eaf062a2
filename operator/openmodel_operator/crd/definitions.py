"""The CustomResourceDefinitions, generated from the pydantic API models (the single source of truth)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from openmodel_operator.api.common import GROUP, VERSION
from openmodel_operator.api.openmodel import OpenModelSpec, OpenModelStatus
from openmodel_operator.api.trustpolicy import ModelTrustPolicySpec, ModelTrustPolicyStatus
from openmodel_operator.api.vocabulary import ConditionType
from openmodel_operator.crd.schema import JsonSchema, structural_schema

OPENMODEL_PLURAL = "openmodels"
POLICY_PLURAL = "modeltrustpolicies"

_CONDITION = '.status.conditions[?(@.type=="{}")].status'

OPENMODEL_COLUMNS: list[dict[str, Any]] = [
    {"name": "Phase", "type": "string", "jsonPath": ".status.phase", "description": "Lifecycle phase."},
    {
        "name": "Serving",
        "type": "string",
        "jsonPath": ".status.served.shortRevision",
        "description": "The commit the serving pods run now (abbreviated); empty while nothing runs.",
    },
    {
        "name": "Incoming",
        "type": "string",
        "jsonPath": ".status.incoming.shortRevision",
        "description": "The verified commit being pulled or rolled out to replace it.",
    },
    {
        "name": "Trusted",
        "type": "string",
        "jsonPath": _CONDITION.format(ConditionType.TRUSTED),
        "description": "Whether every enforcing policy admits the model.",
    },
    {
        "name": "Tier",
        "type": "string",
        "jsonPath": ".status.provenance.trustTier",
        "description": "Signed, Pinned or Unverified.",
    },
    {
        "name": "Ready",
        "type": "string",
        "jsonPath": _CONDITION.format(ConditionType.READY),
        "description": "Whether the model is verified and serving (or pulled, for runtime none).",
    },
    {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
    {
        "name": "Pinned",
        "type": "string",
        "priority": 1,
        "jsonPath": ".status.shortRevision",
        "description": "The commit the trust decision pinned (abbreviated).",
    },
    {
        "name": "Signer",
        "type": "string",
        "priority": 1,
        "jsonPath": ".status.provenance.signature.identity",
        "description": "Who signed the pinned content.",
    },
    {
        "name": "License",
        "type": "string",
        "priority": 1,
        "jsonPath": ".status.provenance.license",
        "description": "SPDX license id from the model card.",
    },
    {
        "name": "Class",
        "type": "string",
        "priority": 1,
        "jsonPath": ".status.provenance.openness.mofClass",
        "description": "Model Openness Framework class.",
    },
]

POLICY_COLUMNS: list[dict[str, Any]] = [
    {"name": "Mode", "type": "string", "jsonPath": ".spec.mode", "description": "Enforce or Audit."},
    {
        "name": "Signature-Required",
        "type": "boolean",
        "jsonPath": ".spec.signature.required",
        "description": "Whether only signed models pass.",
    },
    {
        "name": "Models",
        "type": "integer",
        "jsonPath": ".status.governedModels",
        "description": "OpenModels this policy governs.",
    },
    {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
]


CATEGORY = "openmodel-all"  # `kubectl get openmodel-all -A`: every OpenModel and ModelTrustPolicy


def _root_schema(kind: str, description: str, spec: JsonSchema, status: JsonSchema) -> JsonSchema:
    return {
        "type": "object",
        "description": description,
        "required": ["spec"],
        "properties": {
            "apiVersion": {"type": "string", "description": "APIVersion: openmodel.io/v1alpha1."},
            "kind": {"type": "string", "description": f"Kind: {kind}."},
            # the apiserver forbids anything but a type (and name rules) on the root metadata
            "metadata": {"type": "object"},
            "spec": spec,
            "status": status,
        },
    }


def _crd(
    *,
    kind: str,
    plural: str,
    short: str,
    scope: str,
    description: str,
    spec: JsonSchema,
    status: JsonSchema,
    columns: list[dict[str, Any]],
) -> dict[str, Any]:
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": f"{plural}.{GROUP}",
            "labels": {"app.kubernetes.io/name": "openmodel-operator", "app.kubernetes.io/part-of": "openmodel"},
        },
        "spec": {
            "group": GROUP,
            "scope": scope,
            "names": {
                "kind": kind,
                "listKind": f"{kind}List",
                "plural": plural,
                "singular": kind.lower(),
                "shortNames": [short],
                # kubectl expands a category before a resource name: a category must never equal a singular,
                # plural or short name (``openmodel`` did, and ``kubectl get openmodel NAME`` acted on both kinds)
                "categories": [CATEGORY, "ai"],
            },
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": columns,
                    "schema": {"openAPIV3Schema": _root_schema(kind, description, spec, status)},
                }
            ],
        },
    }


def openmodel_crd() -> dict[str, Any]:
    """The OpenModel CRD (namespaced, short name om)."""
    return _crd(
        kind="OpenModel",
        plural=OPENMODEL_PLURAL,
        short="om",
        scope="Namespaced",
        description=(
            "An open AI model that is resolved, verified against the namespace's ModelTrustPolicies, pulled, "
            "checked byte for byte and served, with its provenance recorded on status."
        ),
        spec=structural_schema(OpenModelSpec),
        status=structural_schema(OpenModelStatus, status=True),
        columns=OPENMODEL_COLUMNS,
    )


def policy_crd() -> dict[str, Any]:
    """The ModelTrustPolicy CRD (cluster-scoped, short name mtp)."""
    return _crd(
        kind="ModelTrustPolicy",
        plural=POLICY_PLURAL,
        short="mtp",
        scope="Cluster",
        description=(
            "Rules that every OpenModel in the selected namespaces must satisfy: allowed sources, trusted "
            "signers, licenses and openness. Bound to namespaces, never chosen by a model."
        ),
        spec=structural_schema(ModelTrustPolicySpec),
        status=structural_schema(ModelTrustPolicyStatus, status=True),
        columns=POLICY_COLUMNS,
    )


def all_crds() -> list[dict[str, Any]]:
    """Every CRD the operator serves, in install order."""
    return [openmodel_crd(), policy_crd()]


def crd_filename(crd: dict[str, Any]) -> str:
    """The checked-in file name of a CRD: ``<group>_<plural>.yaml``, as controller-gen names them."""
    return f"{GROUP}_{crd['spec']['names']['plural']}.yaml"


def render_yaml(crd: dict[str, Any]) -> str:
    """Stable YAML for a CRD (key order kept, so diffs of the checked-in files stay readable)."""
    header = "# Generated by `openmodel crds` from the pydantic models; do not edit by hand.\n"
    return header + yaml.safe_dump(crd, sort_keys=False, width=120, allow_unicode=True)


def write_crds(directory: Path) -> list[Path]:
    """Write every CRD into ``directory`` and return the paths written."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for crd in all_crds():
        path = directory / crd_filename(crd)
        path.write_text(render_yaml(crd), encoding="utf-8")
        paths.append(path)
    return paths
