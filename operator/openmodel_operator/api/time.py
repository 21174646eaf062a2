"""Time as the Kubernetes API writes it: UTC, whole seconds, RFC 3339 with a ``Z``.

Status carries real datetimes (``metav1.Time`` has second precision); these two functions are the only
place a clock reading or its text form is made, so a comparison never parses a string back.
"""

from __future__ import annotations

import datetime
from typing import Annotated

from pydantic import AfterValidator


def utcnow() -> datetime.datetime:
    """Now, in UTC, truncated to whole seconds as the API server stores it."""
    return datetime.datetime.now(datetime.UTC).replace(microsecond=0)


def rfc3339(moment: datetime.datetime) -> str:
    """The wire form of a time: ``2026-12-01T18:57:25Z``."""
    return moment.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def as_utc(moment: datetime.datetime) -> datetime.datetime:
    """A stored time without an offset (which the API server's date-time format accepts) is UTC."""
    return moment.replace(tzinfo=datetime.UTC) if moment.tzinfo is None else moment


# a time read from status: always aware, so comparing it with the clock never raises
UtcDateTime = Annotated[datetime.datetime, AfterValidator(as_utc)]
