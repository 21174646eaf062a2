"""Time as the Kubernetes API writes it: UTC, whole seconds, RFC 3339 with a ``Z``.

Status carries real datetimes (``metav1.Time`` has second precision); these two functions are the only
place a clock reading or its text form is made, so a comparison never parses a string back.
"""

from __future__ import annotations

import datetime


def utcnow() -> datetime.datetime:
    """Now, in UTC, truncated to whole seconds as the API server stores it."""
    return datetime.datetime.now(datetime.UTC).replace(microsecond=0)


def rfc3339(moment: datetime.datetime) -> str:
    """The wire form of a time: ``2026-12-01T18:57:25Z``."""
    return moment.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
