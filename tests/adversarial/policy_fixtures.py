"""Small builders shared by the policy-side adversarial tests: policies as kubectl would apply them, evidence."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from openmodel_operator.trust.decision import Evidence
from openmodel_operator.trust.evidence import ResolvedSource
from openmodel_operator.trust.licenses import card_license
from openmodel_operator.trust.openness import assess_openness
from openmodel_operator.trust.policies import Policy, policy_from_manifest
from signing_fixtures import TINY_MODEL, file_entries

CARD: Mapping[str, Any] = {"license": "apache-2.0"}


def manifest(name: str = "p", mode: str = "Enforce", **spec: Any) -> dict[str, Any]:
    """A ModelTrustPolicy document as kubectl would apply it."""
    return {
        "apiVersion": "openmodel.io/v1alpha1",
        "kind": "ModelTrustPolicy",
        "metadata": {"name": name, "generation": 1},
        "spec": {"mode": mode, **spec},
    }


def open_policy(name: str = "p", mode: str = "Enforce", **spec: Any) -> Policy:
    """A policy that admits an unsigned, Apache-2.0 model: any refusal in a test comes from the rule under test."""
    spec.setdefault("signature", {"required": False})
    return policy_from_manifest(manifest(name, mode, **spec))


def model_evidence(
    uri: str = "hf://example/tiny",
    endpoint: str | None = None,
    card: Mapping[str, Any] = CARD,
) -> Evidence:
    """Evidence of the tiny test model, unsigned, resolved from ``endpoint`` (None: the public Hub)."""
    kind = uri.split("://", 1)[0]
    source = ResolvedSource(
        uri=uri,
        kind=kind,
        files=tuple(file_entries(TINY_MODEL)),
        revision="a" * 40 if kind == "hf" else None,
        requested_revision="main" if kind == "hf" else None,
        endpoint=endpoint,
        card=card,
    )
    return Evidence(
        source=source, openness=assess_openness(card, None, card_license(card)), bundle=None, signature_path=None
    )
