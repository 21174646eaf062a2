"""Exceptions of the source adapters, each carrying one machine-readable reason.

The operator turns ``reason`` into a condition reason and ``message`` into the condition message,
so messages are written for the person who owns the OpenModel: they name the field, the value and
the fix, and never contain a credential.
"""

from __future__ import annotations

from openmodel_operator.evidence.records import Reason
from openmodel_operator.evidence.text import redact, remembered_secrets


class TrustError(Exception):
    """Base of the adapters' errors: a reason code plus a message fit for a condition."""

    def __init__(self, reason: Reason, message: str) -> None:
        # a backstop: whatever server text a message quotes, no credential this process holds goes out
        message = redact(message, remembered_secrets())
        super().__init__(message)
        self.reason = reason
        self.message = message

    def __str__(self) -> str:
        return f"{self.reason.value}: {self.message}"


class SourceError(TrustError):
    """A source could not be resolved or examined (not found, denied, unreachable, hostile listing)."""


class PullError(TrustError):
    """A pinned file could not be placed in the target directory with the expected digest.

    ``path`` names the file (relative POSIX path inside the model) so the CLI and the operator
    can say which one failed.
    """

    def __init__(self, reason: Reason, path: str, message: str) -> None:
        super().__init__(reason, message)
        self.path = path
