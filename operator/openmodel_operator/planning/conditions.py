"""Standard Kubernetes conditions: change only when their state changes, keep lastTransitionTime honest."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

RESOLVED = "Resolved"
SIGNATURE_VERIFIED = "SignatureVerified"
OPENNESS_VERIFIED = "OpennessVerified"
TRUSTED = "Trusted"
WEIGHTS_READY = "WeightsReady"
AVAILABLE = "Available"
UPDATE_AVAILABLE = "UpdateAvailable"
READY = "Ready"
SOURCE_AVAILABLE = "SourceAvailable"  # False while the source cannot be re-examined (content still verified)
RECONCILED = "Reconciled"  # False when a pass failed (an API refusal, an internal error); gone once one succeeds

ORDER = (
    RESOLVED,
    SIGNATURE_VERIFIED,
    OPENNESS_VERIFIED,
    TRUSTED,
    WEIGHTS_READY,
    AVAILABLE,
    UPDATE_AVAILABLE,
    SOURCE_AVAILABLE,
    RECONCILED,
    READY,
)


@dataclasses.dataclass(frozen=True)
class Cond:
    """A condition as the planner decides it; time and generation are added when merged."""

    type: str
    status: str  # "True" | "False" | "Unknown"
    reason: str
    message: str

    @property
    def is_true(self) -> bool:
        return self.status == "True"


def merge_conditions(
    previous: Sequence[Mapping[str, Any]] | None, desired: Iterable[Cond], generation: int | None, now: str
) -> list[dict[str, Any]]:
    """The new conditions list: lastTransitionTime moves only when a condition's status changes.

    Conditions the planner no longer reports (e.g. UpdateAvailable once rolled) are dropped.
    """
    old = {c.get("type"): c for c in previous or []}
    merged: list[dict[str, Any]] = []
    for cond in sorted(desired, key=lambda c: ORDER.index(c.type) if c.type in ORDER else len(ORDER)):
        before = old.get(cond.type) or {}
        kept = before.get("lastTransitionTime") if before.get("status") == cond.status else None
        merged.append(
            {
                "type": cond.type,
                "status": cond.status,
                "reason": cond.reason,
                "message": cond.message[:32768],
                "lastTransitionTime": kept or now,
                "observedGeneration": generation,
            }
        )
    return merged


def transitions(
    previous: Sequence[Mapping[str, Any]] | None, current: Sequence[Mapping[str, Any]]
) -> list[dict[str, Any]]:
    """Conditions whose status or reason changed: each deserves an Event, nothing else does."""
    old = {c.get("type"): c for c in previous or []}
    changed = []
    for cond in current:
        before = old.get(cond["type"])
        if before is None or (before.get("status"), before.get("reason")) != (cond["status"], cond["reason"]):
            changed.append(dict(cond))
    return changed


def find(conditions: Sequence[Mapping[str, Any]] | None, cond_type: str) -> Mapping[str, Any] | None:
    """The condition of a type, or None."""
    return next((c for c in conditions or [] if c.get("type") == cond_type), None)
