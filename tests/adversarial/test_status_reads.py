"""Threat: a stored status the typed core reads differently from what it means (review of issue 12).

Status is read once into typed values. Two things must hold: a timestamp the API server accepts is
compared without crashing the pass (a crash each pass means the periodic re-verification never runs),
and a status written by another version of the operator (a field it does not know, during an upgrade or a
rollback with the newer CRD in place) does not read as "never examined": that would move a Manual pin to
the branch head, re-ask the source and post every Event again on every pass.
"""

from __future__ import annotations

import asyncio
import copy
import datetime
import os
from typing import Any

import pytest
from operator_world import FILES, NS, World

from openmodel_operator.api.time import utcnow
from openmodel_operator.planning.examination_plan import Due, examination_due
from openmodel_operator.planning.model_state import read_status
from signing_fixtures import new_key

pytest_plugins = ["operator_world"]

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


def test_a_status_with_a_field_of_a_newer_version_still_reads() -> None:
    stored = _status("2026-12-01T10:00:00Z", attestation="sha256:" + "b" * 64)
    status = read_status(stored)
    assert status.provenance is not None and status.provenance.manifest_digest == DIGEST
    assert examination_due(1, status, [], True, utcnow(), 10**9) is not Due.SPEC_CHANGED


def test_control_a_status_of_this_version_reads() -> None:
    status = read_status(_status("2026-12-01T10:00:00Z"))
    assert status.provenance is not None and status.provenance.manifest_digest == DIGEST


def _newer_crd(world: World) -> None:
    """The next version's CRD, applied before its operator (GitOps syncs CRDs first) or kept on a rollback:
    status.provenance has one more field."""
    crd = world.kube.get("customresourcedefinitions", None, "openmodels.openmodel.io")
    assert crd is not None
    crd = copy.deepcopy(crd)
    for version in crd["spec"]["versions"]:
        provenance = version["schema"]["openAPIV3Schema"]["properties"]["status"]["properties"]["provenance"]
        provenance["properties"]["attestation"] = {"type": "string"}
    crd["metadata"] = {"name": crd["metadata"]["name"]}
    world.kube.install_crd(crd)


@pytest.mark.parametrize("newer_field", [True, False], ids=["newer-field", "control"])
async def test_a_manual_pin_does_not_move_when_status_has_a_newer_field(
    world: World, operator: Any, newer_field: bool
) -> None:
    first = world.publish()
    world.policy()
    world.model()
    async with operator():
        await world.serve()
        if newer_field:
            _newer_crd(world)
            world.kube.patch_status("openmodels", NS, "m", {"provenance": {"attestation": "sha256:" + "b" * 64}})
        world.publish(files={**FILES, "model.safetensors": os.urandom(4096)})  # upstream main moves
        await asyncio.sleep(1)  # the Events of the rollout are posted
        asked = sum(world.hub.requests.values())
        events = len(world.kube.events_for("m", namespace=NS))
        await asyncio.sleep(2.5)  # five resync periods; the periodic re-verification is an hour away
        assert world.status()["provenance"]["resolvedRevision"] == first, world.summary()  # Manual: nothing rolls
        assert sum(world.hub.requests.values()) == asked  # nothing due: the source is not asked
        assert len(world.kube.events_for("m", namespace=NS)) == events  # nothing changed: no Event


def _older_crd_without_a_replicas_bound(world: World) -> None:
    """The CRD of an older release (or one a cluster admin loosened): spec.serving.replicas has no maximum,
    so the API server stores a spec the operator's model refuses."""
    crd = copy.deepcopy(world.kube.get("customresourcedefinitions", None, "openmodels.openmodel.io"))
    assert crd is not None
    for version in crd["spec"]["versions"]:
        spec = version["schema"]["openAPIV3Schema"]["properties"]["spec"]
        spec["properties"]["serving"]["properties"]["replicas"].pop("maximum")
    crd["metadata"] = {"name": crd["metadata"]["name"]}
    world.kube.install_crd(crd)


@pytest.mark.parametrize("invalid_spec", [True, False], ids=["invalid-spec", "control"])
async def test_a_spec_the_operator_cannot_read_does_not_shield_served_content_from_revocation(
    world: World, operator: Any, invalid_spec: bool
) -> None:
    world.publish()
    world.policy()
    world.model()
    async with operator():
        await world.serve()
        if invalid_spec:
            _older_crd_without_a_replicas_bound(world)
            world.kube.patch_object("openmodels", NS, "m", {"spec": {"serving": {"replicas": 5000}}})
            await world.until(lambda: world.cond("Resolved") == ("False", "InvalidSpec"), timeout=10)
        world.trust_only(new_key())  # the signer's key is revoked
        await world.until(lambda: world.child("deployments", "m")["spec"]["replicas"] == 0, timeout=10)
