"""ModelTrustPolicies carry no finalizer (their deletion needs no cleanup) and still get their status.

A finalizer on a policy makes deleting it hang while the operator is down, and needs `patch` on policies;
the operator writes only their status subresource. Each hostile case runs next to its control.
"""

from __future__ import annotations

from typing import Any

from test_operator import NS, World, operator, world

pytest_plugins = ["kube_fixtures"]
FIXTURES = (operator, world)  # the operator test world of tests/test_operator.py


def _policy(world: World, name: str = "org") -> dict[str, Any] | None:
    return world.kube.get("modeltrustpolicies", None, name)


def _status(world: World, name: str = "org") -> dict[str, Any]:
    return (_policy(world, name) or {}).get("status") or {}


def _accepted(world: World, name: str = "org") -> tuple[str, str] | None:
    for cond in _status(world, name).get("conditions") or []:
        if cond["type"] == "Accepted":
            return cond["status"], cond["reason"]
    return None


async def test_a_policy_gets_its_status_and_no_finalizer(world: World, operator: Any) -> None:
    world.publish()
    world.policy()
    world.model()
    world.model("second")
    async with operator():
        await world.until(lambda: _status(world).get("governedModels") == 2, timeout=10)
        assert _accepted(world) == ("True", "Valid")
        assert _status(world)["observedGeneration"] == 1
        await world.phase("Pulling")
        assert not _policy(world)["metadata"].get("finalizers")
        # control: an OpenModel has children to remove, so it carries the operator's finalizer
        assert world.get()["metadata"]["finalizers"] == ["openmodel.io/cleanup"]

        # the status follows an edit of the policy and a new model, with no event on the policy for the model
        world.kube.patch_object("modeltrustpolicies", None, "org", {"spec": {"mode": "Audit"}})
        await world.until(lambda: _status(world).get("observedGeneration") == 2, timeout=10)
        world.model("third")
        await world.until(lambda: _status(world).get("governedModels") == 3, timeout=10)
        assert not _policy(world)["metadata"].get("finalizers")


async def test_deleting_a_policy_while_the_operator_is_down_does_not_hang(world: World, operator: Any) -> None:
    world.publish()
    world.policy()
    world.model()
    async with operator():
        await world.phase("Pulling")
        await world.until(lambda: _status(world).get("governedModels") == 1, timeout=10)
    # the operator is down: the policy goes at once
    assert world.kube.delete_object("modeltrustpolicies", None, "org") is None
    # control: an OpenModel waits for the operator to remove its children
    remaining = world.kube.delete_object("openmodels", NS, "m")
    assert remaining is not None and remaining["metadata"].get("deletionTimestamp")
    async with operator():
        await world.until(lambda: world.kube.get("openmodels", NS, "m") is None, timeout=10)
        assert world.jobs() == [] and world.manifests() == []


async def test_a_refused_status_write_is_retried_not_given_up(world: World, operator: Any) -> None:
    """The apiserver refuses the first status writes (403, as without the grant): the writer keeps trying."""
    world.publish()
    world.policy()
    world.model()
    forbidden = {"kind": "Status", "apiVersion": "v1", "code": 403, "reason": "Forbidden"}
    world.kube["patch /apis/openmodel.io/v1alpha1/modeltrustpolicies/org/status"][:25] << 403 << forbidden
    async with operator():
        await world.phase("Pulling")  # control: the models are unaffected
        await world.until(lambda: _status(world).get("governedModels") == 1, timeout=30)
        assert _accepted(world) == ("True", "Valid")
        refused = [r for r in world.kube.request_log if r.resource == "modeltrustpolicies" and r.code == 403]
        assert len(refused) == 25
