"""Threat: status shows what an earlier decision recorded, not what the current one says (review of issue 12).

Status is written with a JSON merge patch (RFC 7386): a field left out of the patch is kept by the server.
A field the new decision no longer sets (the signer of content that is no longer signed by a trusted
key, the license of a card that no longer declares one) must be removed, or `kubectl get` (the SIGNER and
LICENSE columns) and every tool that reads provenance believe a stale record. Each case has its control.
"""

from __future__ import annotations

import datetime
from typing import Any

from operator_world import NS, World

from kube_emulator.patches import merge_patch
from openmodel_operator.api.openmodel import OpenModelStatus, OpennessRecord, PolicyRecord, Provenance, SignatureRecord
from openmodel_operator.api.vocabulary import TrustTier
from openmodel_operator.planning.planner import status_patch
from signing_fixtures import new_key

pytest_plugins = ["operator_world"]

T0 = datetime.datetime(2026, 12, 1, 12, 0, tzinfo=datetime.UTC)


def _provenance(**changes: Any) -> Provenance:
    base = Provenance(
        source="hf://org/model",
        endpoint="https://hub.example",
        repository="org/model",
        requested_revision="main",
        resolved_revision="c" * 40,
        manifest_digest="sha256:" + "a" * 64,
        file_count=3,
        total_bytes=10,
        trust_tier=TrustTier.SIGNED,
        signature=SignatureRecord(
            method="key",
            identity="org-release",
            key_fingerprint="SHA256:abc",
            bundle_digest="sha256:" + "b" * 64,
            verified_at=T0,
        ),
        license="Apache-2.0",
        openness=OpennessRecord(mof_class="ClassIII", osaid=False, open_components=["model"], missing=[]),
        policies=[PolicyRecord(name="org", generation=1, mode="Enforce", verdict="Pass", anchor="key:org-release")],
        verified_at=T0,
    )
    return base.model_copy(update=changes)


def _stored_after(before: OpenModelStatus, after: OpenModelStatus) -> dict[str, Any]:
    """What the API server stores when the operator's patch for ``after`` lands on ``before``."""
    result: dict[str, Any] = merge_patch(before.to_wire(), status_patch(after))
    return result


def test_a_signer_no_longer_trusted_is_removed_from_status() -> None:
    before = OpenModelStatus(phase="Ready", provenance=_provenance())
    unsigned = _provenance(trust_tier=TrustTier.UNVERIFIED, signature=SignatureRecord(method="none"))
    stored = _stored_after(before, OpenModelStatus(phase="Ready", provenance=unsigned))
    assert stored["provenance"]["signature"] == {"method": "none"}


def test_a_license_no_longer_declared_is_removed_from_status() -> None:
    before = OpenModelStatus(phase="Ready", provenance=_provenance())
    stored = _stored_after(before, OpenModelStatus(phase="Ready", provenance=_provenance(license=None)))
    assert "license" not in stored["provenance"]


def test_an_anchor_no_longer_used_is_removed_from_a_policy_record() -> None:
    before = OpenModelStatus(phase="Ready", provenance=_provenance())
    records = [PolicyRecord(name="org", generation=2, mode="Audit", verdict="Fail", reasons=["UntrustedSigner"])]
    stored = _stored_after(before, OpenModelStatus(phase="Ready", provenance=_provenance(policies=records)))
    assert stored["provenance"]["policies"] == [
        {"name": "org", "generation": 2, "mode": "Audit", "verdict": "Fail", "reasons": ["UntrustedSigner"]}
    ]  # a list is replaced whole, and an item carries no nulls


def test_control_fields_still_set_are_written_and_a_cleared_top_level_field_goes() -> None:
    before = OpenModelStatus(phase="Ready", endpoint="http://m/v1", update_available="d" * 40, provenance=_provenance())
    after = OpenModelStatus(phase="Rejected", provenance=_provenance(license="MIT"))
    stored = _stored_after(before, after)
    assert stored["phase"] == "Rejected" and stored["provenance"]["license"] == "MIT"
    assert "endpoint" not in stored and "updateAvailable" not in stored
    assert stored["provenance"]["signature"]["identity"] == "org-release"
    assert OpenModelStatus.model_validate(stored) == after  # what is stored reads back as what was planned


async def test_audit_admits_content_whose_signer_was_revoked_without_showing_that_signer(
    world: World, operator: Any
) -> None:
    """The key is revoked but the policy only audits: the model still runs, and its SIGNER is gone."""
    world.publish()
    world.policy()
    world.model()
    async with operator():
        await world.serve()
        assert world.status()["provenance"]["signature"]["identity"] == "org-release"  # control: signed
        world.kube.patch_object(
            "modeltrustpolicies",
            None,
            "org",
            {
                "spec": {
                    "mode": "Audit",
                    "signature": {"keys": [{"name": "rotated", "publicKey": new_key().public_pem.decode()}]},
                }
            },
        )
        await world.until(lambda: world.cond("Trusted") == ("True", "AuditViolations"), timeout=10)
        signature = world.status()["provenance"]["signature"]
        assert signature == {"method": "none"}, signature


def _refuse_deployment_patches(world: World) -> None:
    """An admission policy (or a missing RBAC verb) refuses every change of the Deployment from now on."""
    denied = {"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "Forbidden", "code": 403}
    world.kube[f"patch /apis/apps/v1/namespaces/{NS}/deployments/m"] << 403 << {**denied, "message": "denied"}


async def test_a_revocation_the_api_server_refuses_to_carry_out_is_not_shown_as_trusted(
    world: World, operator: Any
) -> None:
    """The key is revoked but the Deployment cannot be scaled to zero: the pass fails (Reconciled=False),
    and status must not keep saying the content is trusted and ready."""
    world.publish()
    world.policy()
    world.model()
    async with operator():
        await world.serve()
        _refuse_deployment_patches(world)
        world.trust_only(new_key())
        await world.until(lambda: (world.cond("Reconciled") or ("", ""))[0] == "False", timeout=10)
        assert world.cond("Trusted") != ("True", "PoliciesPassed"), world.summary()
        assert (world.cond("Ready") or ("", ""))[0] != "True", world.summary()


async def test_control_a_failed_pass_of_trusted_content_keeps_its_trust_conditions(world: World, operator: Any) -> None:
    """Nothing was decided differently: a refused write leaves the trust record as it was."""
    world.publish()
    world.policy()
    world.model()
    async with operator():
        await world.serve()
        _refuse_deployment_patches(world)
        world.kube.patch_object("openmodels", NS, "m", {"spec": {"serving": {"replicas": 2}}})
        await world.until(lambda: (world.cond("Reconciled") or ("", ""))[0] == "False", timeout=10)
        assert world.cond("Trusted") == ("True", "PoliciesPassed"), world.summary()
