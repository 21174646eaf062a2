"""Retryable versus terminal failures of an examination, and when to ask the source again.

As controller-runtime's ``TerminalError``: a repository that does not exist, a revision that is not there
or a listing the operator refuses will not fix itself in 30 s, so the source is not asked again until the
spec or the policies change, or the periodic re-verification comes round. A network failure, a deadline or
a missing Secret may: those are retried with exponential backoff. Either way the failure is already on
status (a condition with its reason); this only decides when the next examination may contact the source.
"""

from __future__ import annotations

import dataclasses
import datetime
from collections.abc import Sequence
from typing import Any

from openmodel_operator.evidence.records import Reason

TERMINAL_REASONS = frozenset(
    {
        Reason.INVALID_SOURCE,
        Reason.REPOSITORY_NOT_FOUND,
        Reason.REVISION_NOT_FOUND,
        Reason.UNSAFE_PATH,
        Reason.UNSAFE_FILE_NAME,
        Reason.SYMLINK_NOT_ALLOWED,
        Reason.TOO_MANY_FILES,
        Reason.FILE_TOO_LARGE,
        Reason.SOURCE_REDIRECTED,
        Reason.RESPONSE_TOO_LARGE,
        Reason.WEIGHTS_OUTSIDE_LFS,
    }
)
FIRST_RETRY_SECONDS = 30.0
MAX_RETRY_SECONDS = 900.0  # a retryable failure is asked again at least every 15 minutes


def is_terminal(reason: Reason) -> bool:
    """A failure the source will answer the same way until someone changes the spec, the policy or the repo."""
    return reason in TERMINAL_REASONS


@dataclasses.dataclass(frozen=True)
class RetryState:
    """The last failed examination of one model: what failed, how often, and under which inputs."""

    reason: Reason
    attempts: int
    not_before: datetime.datetime
    # the spec generation and policy fingerprint it failed under: a change of either retries at once
    generation: int | None
    fingerprint: tuple[Any, ...]


def backoff_seconds(attempts: int, reverify_interval: float) -> float:
    """30 s, 60 s, 120 s ... for the n-th consecutive retryable failure, at most 15 minutes."""
    doubled = FIRST_RETRY_SECONDS * float(2 ** min(max(attempts - 1, 0), 16))
    return min(doubled, MAX_RETRY_SECONDS, max(reverify_interval, 1.0))


def after_failure(
    previous: RetryState | None,
    reason: Reason,
    now: datetime.datetime,
    generation: int | None,
    fingerprint: Sequence[Any],
    reverify_interval: float,
) -> RetryState:
    """The retry state after one more failed examination: terminal ones wait for the periodic re-verification."""
    same = (
        previous is not None
        and previous.generation == generation
        and previous.fingerprint == tuple(fingerprint)
        and previous.reason == reason
    )
    attempts = previous.attempts + 1 if same and previous is not None else 1
    wait = reverify_interval if is_terminal(reason) else backoff_seconds(attempts, reverify_interval)
    return RetryState(reason, attempts, now + datetime.timedelta(seconds=wait), generation, tuple(fingerprint))


def postponed(
    state: RetryState | None, now: datetime.datetime, generation: int | None, fingerprint: Sequence[Any]
) -> bool:
    """Whether an examination due now waits for its backoff: only while the spec and policies are unchanged."""
    return (
        state is not None
        and now < state.not_before
        and state.generation == generation
        and state.fingerprint == tuple(fingerprint)
    )
