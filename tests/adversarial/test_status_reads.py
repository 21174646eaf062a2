"""Threat: a stored status the typed core reads differently from what it means (review of issue 12).

Status is read once into typed values. Two things must hold: a timestamp the API server accepts is
compared without crashing the pass (a crash each pass means the periodic re-verification never runs),
and a status written by another version of the operator (a field it does not know, during an upgrade or a
rollback with the newer CRD in place) does not read as "never examined": that would move a Manual pin to
the branch head, re-ask the source and post every Event again on every pass.
"""

from __future__ import annotations

import datetime
from typing import Any

import pytest

from openmodel_operator.planning.examination_plan import Due, examination_due
from openmodel_operator.planning.model_state import read_status

DIGEST = "sha256:" + "a" * 64


def _status(verified_at: str, **provenance: Any) -> dict[str, Any]:
    return {
        "phase": "Ready",
        "observedGeneration": 1,
        "provenance": {"source": "hf://org/m", "manifestDigest": DIGEST, "verifiedAt": verified_at, **provenance},
        "conditions": [
            {"type": "Trusted", "status": "True", "reason": "PoliciesPassed", "lastTransitionTime": verified_at}
        ],
    }


@pytest.mark.parametrize(
    "stamp",
    [
        "2026-12-01T10:00:00Z",  # control: as the operator writes it
        "2026-12-01T11:00:00+01:00",
        "2026-12-01T10:00:00.123456Z",
        "2026-12-01T10:00:00",  # no offset: RFC 3339 wants one, the apiserver's date-time format takes it
    ],
)
def test_a_stored_verification_time_is_compared_whatever_its_form(stamp: str) -> None:
    status = read_status(_status(stamp))
    assert status.provenance is not None and status.provenance.verified_at is not None
    now = datetime.datetime(2026, 12, 1, 10, 30, tzinfo=datetime.UTC)
    assert examination_due(1, status, [], True, now, 3600) is None
    assert examination_due(1, status, [], True, now, 600) is Due.PERIODIC
