"""Standard Kubernetes conditions: change only when their state changes, keep lastTransitionTime honest."""

from __future__ import annotations

import dataclasses
import datetime
from collections.abc import Iterable, Sequence

from pydantic import ValidationError

from openmodel_operator.api.common import Condition, ConditionStatus
from openmodel_operator.api.vocabulary import ConditionType

RESOLVED = ConditionType.RESOLVED
SIGNATURE_VERIFIED = ConditionType.SIGNATURE_VERIFIED
OPENNESS_VERIFIED = ConditionType.OPENNESS_VERIFIED
TRUSTED = ConditionType.TRUSTED
WEIGHTS_READY = ConditionType.WEIGHTS_READY
AVAILABLE = ConditionType.AVAILABLE
UPDATE_AVAILABLE = ConditionType.UPDATE_AVAILABLE
READY = ConditionType.READY
SOURCE_AVAILABLE = ConditionType.SOURCE_AVAILABLE
RECONCILED = ConditionType.RECONCILED
ADAPTERS_READY = ConditionType.ADAPTERS_READY

# the order `kubectl describe` shows them in: the trust chain first, the summary Ready last
ORDER: tuple[str, ...] = (
    RESOLVED,
    SIGNATURE_VERIFIED,
    OPENNESS_VERIFIED,
    TRUSTED,
    WEIGHTS_READY,
    AVAILABLE,
    ADAPTERS_READY,
    UPDATE_AVAILABLE,
    SOURCE_AVAILABLE,
    RECONCILED,
    READY,
)
MAX_MESSAGE_CHARS = 32768  # metav1.Condition's limit


@dataclasses.dataclass(frozen=True)
class Cond:
    """A condition as the planner decides it; time and generation are added when merged."""

    type: str
    status: ConditionStatus
    reason: str
    message: str

    @property
    def is_true(self) -> bool:
        return self.status == "True"


def merge_conditions(
    previous: Sequence[Condition] | None,
    desired: Iterable[Cond],
    generation: int | None,
    now: datetime.datetime,
) -> list[Condition]:
    """The new conditions list: lastTransitionTime moves only when a condition's status changes.

    Conditions the planner no longer reports (e.g. UpdateAvailable once rolled) are dropped.
    """
    old = {c.type: c for c in previous or []}
    merged: list[Condition] = []
    for cond in sorted(desired, key=lambda c: ORDER.index(c.type) if c.type in ORDER else len(ORDER)):
        before = old.get(cond.type)
        kept = before.last_transition_time if before is not None and before.status == cond.status else None
        merged.append(
            Condition(
                type=cond.type,
                status=cond.status,
                reason=cond.reason,
                message=cond.message[:MAX_MESSAGE_CHARS],
                last_transition_time=kept or now,
                observed_generation=generation,
            )
        )
    return merged


def transitions(previous: Sequence[Condition] | None, current: Sequence[Condition]) -> list[Condition]:
    """Conditions whose status or reason changed: each deserves an Event, nothing else does."""
    old = {c.type: c for c in previous or []}
    changed = []
    for cond in current:
        before = old.get(cond.type)
        if before is None or (before.status, before.reason) != (cond.status, cond.reason):
            changed.append(cond)
    return changed


def find(conditions: Sequence[Condition] | None, cond_type: str) -> Condition | None:
    """The condition of a type, or None."""
    return next((c for c in conditions or [] if c.type == cond_type), None)


def is_true(conditions: Sequence[Condition] | None, cond_type: str) -> bool:
    """Whether the condition of a type is present and True."""
    found = find(conditions, cond_type)
    return found is not None and found.status == "True"


def read_conditions(raw: object) -> list[Condition]:
    """Stored conditions as typed values; an entry that does not parse is left out (it is rewritten)."""
    out: list[Condition] = []
    for item in raw if isinstance(raw, list) else []:
        try:
            out.append(Condition.model_validate(item))
        except ValidationError:
            continue
    return out
