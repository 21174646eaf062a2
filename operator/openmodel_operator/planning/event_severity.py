"""Which condition transitions are Warning Events and which are Normal ones.

A Warning is something a person should look at: a failure, a rejection, a revocation, an outage. The steps
every healthy model goes through are Normal, even when the condition they set is False: WeightsReady=False
while the fetch Job pulls (Pulling), Ready=False until the weights are verified (WeightsNotReady), and a
server that is being rolled out or is starting (RolloutPending, NotCreated, Starting, and the Deployment
controller's own MinimumReplicasUnavailable). A server that was available and is no longer (NotCreated,
Starting, MinimumReplicasUnavailable after True) is an outage: Warning.

Pure: the planner calls :func:`event_type_of` for each changed condition.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from openmodel_operator.api.vocabulary import ConditionReason, EventType

WARNING = EventType.WARNING
NORMAL = EventType.NORMAL
# the Deployment controller's reason while replicas are missing (its vocabulary, not ours)
MINIMUM_REPLICAS_UNAVAILABLE = "MinimumReplicasUnavailable"

# False on the way to Ready, whatever came before: the operator's own progress
PROGRESS = frozenset(
    {
        ConditionReason.PULLING,
        ConditionReason.WEIGHTS_NOT_READY,
        ConditionReason.ROLLOUT_PENDING,
        ConditionReason.ADAPTERS_LOADING,
    }
)
# False while a server starts; after the condition was True the same reason means the server went away
STARTING = frozenset({ConditionReason.NOT_CREATED, ConditionReason.STARTING, MINIMUM_REPLICAS_UNAVAILABLE})
# False but admitted: unsigned content pinned by spec.source.digest (a trust tier, not a failure)
ADMITTED = frozenset({ConditionReason.PINNED})
# True and yet worth a look: an upstream commit that failed verification. An admission under an Audit policy
# is Normal: it is what the admin chose; its violations are on status and in provenance.
WARNING_WHEN_TRUE = frozenset({ConditionReason.UPDATE_REJECTED})


def event_type(cond_type: str, status: str, reason: str | None, was: str | None = None) -> EventType:
    """``Warning`` or ``Normal`` for a condition of type ``cond_type`` that changed to ``status``/``reason``;
    ``was`` is its previous status (None when the condition is new). Today's rule reads the reasons; the type
    is part of the transition so that a rule for one condition type needs no change of the callers."""
    if status == "True":
        return WARNING if reason in WARNING_WHEN_TRUE else NORMAL
    if status != "False":
        return NORMAL  # Unknown: not examined yet; the False condition beside it says why, once
    if reason in PROGRESS or reason in ADMITTED:
        return NORMAL
    if reason in STARTING:
        return WARNING if was == "True" else NORMAL
    return WARNING  # a failure reason, a rejection, a revocation, an outage


def event_type_of(previous: Sequence[Any] | None, cond: Any) -> EventType:
    """:func:`event_type` of a changed condition (a dict or an object with ``type``/``status``/``reason``),
    given the conditions before the change."""
    cond_type = str(_field(cond, "type"))
    was = next((_field(p, "status") for p in previous or () if _field(p, "type") == cond_type), None)
    return event_type(cond_type, str(_field(cond, "status")), _field(cond, "reason"), was)


def _field(cond: Any, name: str) -> Any:
    return cond.get(name) if isinstance(cond, Mapping) else getattr(cond, name, None)
