"""What the operator remembers of one OpenModel between passes, kept in Kopf's per-object memo.

Kopf drops an object's memo when the object leaves its cache (deleted), so nothing here is cleared by
hand; an operator restart starts empty, and every entry is only a shortcut: without it a pass reads the
same facts again (the watch, the manifest ConfigMap, the source).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from openmodel_operator.api.openmodel import OpenModelSpec, OpenModelStatus
from openmodel_operator.evidence.pinned import PinnedManifest
from openmodel_operator.planning.retry import RetryState
from openmodel_operator.trust.examination import Examination

MEMO_KEY = "openmodel"


@dataclasses.dataclass(frozen=True)
class KeptExamination:
    """An examination a decision was made from, for one incarnation (uid) of a model, with the digest it
    pinned; for the content a Deployment serves, also the spec it was rolled with."""

    uid: str | None
    exam: Examination
    digest: str
    spec: OpenModelSpec | None = None


@dataclasses.dataclass
class ModelMemory:
    """The per-model shortcuts of the reconciler."""

    # our last status write: (resourceVersion after it, the status written), until the watch shows it
    written: tuple[str | None, OpenModelStatus] | None = None
    # the pinned manifest this process last applied (the watch may not show its ConfigMap yet)
    pinned: PinnedManifest | None = None
    # the manifest ConfigMap parsed at a resourceVersion (a 10k-file manifest is not re-parsed each pass)
    parsed: tuple[str, PinnedManifest] | None = None
    # children applied in the last seconds and not yet shown by the watch: (kind, name) -> (monotonic, object)
    applied: dict[tuple[str, str], tuple[float, Mapping[str, Any]]] = dataclasses.field(default_factory=dict)
    # the examination the recorded decision came from, to re-decide offline when the policies change
    recorded: KeptExamination | None = None
    # the examination of the content the Deployment serves (differs from ``recorded`` during a rollout)
    served: KeptExamination | None = None
    # the last failed examination and when the source may be asked again
    retry: RetryState | None = None


def memory_in(memo: Any) -> ModelMemory:
    """The model's memory in its Kopf memo (created on first use)."""
    found = memo.get(MEMO_KEY) if isinstance(memo, Mapping) else None
    if isinstance(found, ModelMemory):
        return found
    memory = ModelMemory()
    memo[MEMO_KEY] = memory
    return memory
