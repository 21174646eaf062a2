"""The words the operator writes to status and Events: phases, condition types, condition reasons, tiers.

One enum each, so a phase or a reason is spelled in one place and a typo is a type error, not a status
that `kubectl get` users and alerting rules silently never match. Decision reason codes (why a model was
refused) are ``evidence.records.Reason``; the reasons here name lifecycle steps and states.
"""

from __future__ import annotations

from enum import StrEnum


class Phase(StrEnum):
    """``status.phase``: where a model is in its lifecycle (the PHASE column of `kubectl get openmodels`)."""

    PENDING = "Pending"
    RESOLVING = "Resolving"
    VERIFYING = "Verifying"
    REJECTED = "Rejected"
    PULLING = "Pulling"
    DEPLOYING = "Deploying"
    UPDATING = "Updating"  # the previous revision serves while the new one is pulled or rolled out
    READY = "Ready"
    DEGRADED = "Degraded"
    FAILED = "Failed"


SERVING_PHASES = frozenset({Phase.READY, Phase.UPDATING, Phase.DEGRADED})


class ConditionType(StrEnum):
    """The condition types of an OpenModel (and ``Accepted`` of a ModelTrustPolicy)."""

    RESOLVED = "Resolved"
    SIGNATURE_VERIFIED = "SignatureVerified"
    OPENNESS_VERIFIED = "OpennessVerified"
    TRUSTED = "Trusted"
    WEIGHTS_READY = "WeightsReady"
    AVAILABLE = "Available"
    UPDATE_AVAILABLE = "UpdateAvailable"
    SOURCE_AVAILABLE = "SourceAvailable"  # False while the source cannot be re-examined (content still verified)
    RECONCILED = "Reconciled"  # False when a pass failed (an API refusal, an internal error)
    ADAPTERS_READY = "AdaptersReady"  # every LoRA adapter of spec.adapters verified and loaded
    READY = "Ready"
    ACCEPTED = "Accepted"  # ModelTrustPolicy: whether its spec is usable


class ConditionReason(StrEnum):
    """Reasons of lifecycle conditions; a refusal's reason is the decision's ``Reason`` code instead."""

    # trust conditions
    RESOLVED = "Resolved"
    SIGNED = "Signed"
    PINNED = "Pinned"
    ACCEPTED = "Accepted"
    POLICIES_PASSED = "PoliciesPassed"
    AUDIT_VIOLATIONS = "AuditViolations"
    NOT_TRUSTED = "NotTrusted"
    INVALID_SPEC = "InvalidSpec"
    EXAMINING = "Examining"  # a claim examination Job runs (pvc:// sources)
    # weights
    VERIFIED = "Verified"
    PULLING = "Pulling"
    COMPLETE = "Complete"
    JOB_FAILED = "JobFailed"
    WEIGHTS_VERIFIED = "WeightsVerified"
    WEIGHTS_NOT_READY = "WeightsNotReady"
    # serving
    NOT_CREATED = "NotCreated"
    ROLLOUT_PENDING = "RolloutPending"
    STARTING = "Starting"
    AVAILABLE = "Available"
    UNAVAILABLE = "Unavailable"
    SERVING = "Serving"
    SCALED_TO_ZERO = "ScaledToZero"
    SERVED_CONTENT_REVOKED = "ServedContentRevoked"
    ROLLING_OUT = "RollingOut"
    ROLLOUT_STALLED = "RolloutStalled"
    # LoRA adapters
    ADAPTERS_LOADED = "AdaptersLoaded"
    ADAPTER_REJECTED = "AdapterRejected"
    ADAPTERS_LOADING = "AdaptersLoading"
    # upstream
    NEW_REVISION = "NewRevision"
    UPDATE_REJECTED = "UpdateRejected"
    # ModelTrustPolicy
    VALID = "Valid"
    INVALID_ANCHORS = "InvalidAnchors"


class TrustTier(StrEnum):
    """How strongly the pinned content is tied to someone who vouches for it."""

    SIGNED = "Signed"
    PINNED = "Pinned"
    UNVERIFIED = "Unverified"


class EventType(StrEnum):
    """A Kubernetes Event's type: a Warning is something a person should look at, Normal is progress."""

    NORMAL = "Normal"
    WARNING = "Warning"
