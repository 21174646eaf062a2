"""Small builders shared by the policy-side adversarial tests: policies as kubectl would apply them, evidence."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from openmodel_operator.evidence.manifest import manifest_digest
from openmodel_operator.evidence.records import ResolvedSource
from openmodel_operator.trust.decision import Evidence
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
    pinned: bool = True,
) -> Evidence:
    """Evidence of the tiny test model, unsigned, resolved from ``endpoint`` (None: the public Hub).

    Its README carries ``card``; the model is pinned (``spec.source.digest`` matches) so that card is covered
    evidence: any refusal in a test comes from the rule under test, not from an unknown license.
    """
    kind = uri.split("://", 1)[0]
    front = "".join(f"{key}: {value}\n" for key, value in card.items())
    files = {**TINY_MODEL, "README.md": f"---\n{front}---\n# tiny\n".encode()}
    source = ResolvedSource(
        uri=uri,
        kind=kind,
        files=tuple(file_entries(files)),
        revision="a" * 40 if kind == "hf" else None,
        requested_revision="main" if kind == "hf" else None,
        endpoint=endpoint,
        card=card,
        readme=files["README.md"],
    )
    digest = manifest_digest(source.files, None) if pinned else None
    return Evidence(source=source, bundle=None, signature_path=None, pinned_digest=digest)
