"""The part of the trust decision that needs no network: the policies themselves, the endpoint, serving.

Why before anything else: a tenant chooses ``spec.source.endpoint`` and the serving fields, so an
endpoint no policy allows must never be contacted, and a model whose serving would route around
verification (another image, ``--tokenizer``, ``HF_ENDPOINT``) or that is governed by an unusable
policy is refused without a single request. ``decide`` runs the same checks again on full evidence,
so the operator, the CLI and admission agree.
"""

from __future__ import annotations

from collections.abc import Sequence

from openmodel_operator.api.openmodel import OpenModelSpec
from openmodel_operator.evidence.records import Violation
from openmodel_operator.trust.decision import (
    endpoint_violations,
    policy_violations,
    serving_violations,
    source_allowed,
)
from openmodel_operator.trust.policies import Policy


def pre_network_violations(
    policies: Sequence[Policy], spec: OpenModelSpec, runtime_image: str, default_endpoint: str | None = None
) -> list[Violation]:
    """Violations decided from the spec and the policies alone, enforced ones first.

    ``default_endpoint`` is the cluster admin's Hub (operator setting), used when the spec names none.
    """
    found: list[Violation] = []
    for policy in policies:
        found.extend(policy_violations(policy))
    if spec.source.uri.startswith("hf://"):
        found.extend(endpoint_violations(policies, spec.source.endpoint, default_endpoint))
    for policy in policies:
        if (violation := source_allowed(policy, spec.source.uri)) is not None:
            found.append(violation)
    for policy in policies:
        found.extend(serving_violations(policy, spec.serving, runtime_image))
    return sorted(found, key=lambda v: not v.enforced)
