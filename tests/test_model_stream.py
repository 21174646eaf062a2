"""OpenModels reach the operator's own cache, not Kopf's per-object machinery (``ModelStream``, issue 13), so
what Kopf did for each model the operator now does itself, and each is shown here against the emulator:

* the ``openmodel.io/cleanup`` finalizer goes on before any child exists and comes off after the children
  went, and another controller's finalizer is never dropped (both writes are conditional on the
  resourceVersion);
* a deletion that arrives during a pass waits for that pass: nothing it applied outlives the model;
* no pass runs before Kopf has listed every kind it watches: a model listed before the policies would be
  judged by the built-in default alone;
* a replica paused by Kopf peering runs no pass at all (Kopf stopped its daemons; the workers now wait);
* a settled model has no resync, so what another actor changes in it wakes it: a status it did not write is
  put back, its finalizer taken off is put back on, within a second and not at the safety-net pass.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from kube_fixtures import kube, run_operator
from openmodel_operator.controller import handlers, kopf_watch
from openmodel_operator.controller.kube import Kube, KubeError
from openmodel_operator.controller.metrics import METRICS
from openmodel_operator.controller.model_cache import ModelCache, ModelStream
from openmodel_operator.controller.reconciler import Reconciler
from signing_fixtures import new_key
from test_operator import NS, World, operator, world

__all__ = ["kube", "operator", "run_operator", "world"]

FOREIGN = "backup.example.com/snapshot"


def body(namespace: str, name: str) -> dict[str, Any]:
    return {"metadata": {"namespace": namespace, "name": name, "resourceVersion": "1"}}


def test_a_listing_forgets_the_models_of_its_scope_it_no_longer_holds() -> None:
    cache = ModelCache()
    gone: list[tuple[str, str]] = []
    stream = ModelStream(cache, cache.put, gone.append)
    for namespace, name in [("a", "kept"), ("a", "deleted-meanwhile"), ("b", "other-scope")]:
        stream.event("a", None, body(namespace, name))
    stream.listed("a", {("a", "kept")})
    assert gone == [("a", "deleted-meanwhile")]  # ("b", ...) is another stream's scope: untouched
    stream.listed(None, {("a", "kept")})  # a cluster-wide listing covers every namespace
    assert ("b", "other-scope") in gone
    stream.event(None, "DELETED", body("a", "kept"))
    assert gone[-1] == ("a", "kept")


async def test_the_finalizer_goes_on_first_and_off_last_and_another_controllers_stays(
    world: World, operator: Any
) -> None:
    world.publish()
    world.policy()
    world.model()
    world.kube.patch_object("openmodels", NS, "m", {"metadata": {"finalizers": [FOREIGN]}})
    async with operator():
        await world.serve()
        assert world.get()["metadata"]["finalizers"] == [FOREIGN, handlers.FINALIZER]
        world.kube.delete_object("openmodels", NS, "m")
        await world.until(lambda: handlers.FINALIZER not in world.get()["metadata"]["finalizers"], timeout=10)
        model = world.get()  # still there: the other controller's finalizer holds it
        assert model["metadata"]["finalizers"] == [FOREIGN] and model["metadata"]["deletionTimestamp"]
        assert world.child("deployments", "m") is None and world.child("services", "m") is None
        assert world.jobs() == [] and world.child("persistentvolumeclaims", "m-weights") is None
        # control: the other controller lets go, and the model is gone
        world.kube.patch_object("openmodels", NS, "m", {"metadata": {"finalizers": []}})
        await world.until(lambda: world.kube.get("openmodels", NS, "m") is None, timeout=10)


async def test_a_deletion_during_a_pass_removes_what_that_pass_applied(
    world: World, operator: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    original = Reconciler.reconcile
    passes: list[str] = []

    async def slow(self: Reconciler, *args: Any, **kwargs: Any) -> Any:
        passes.append("started")
        await asyncio.sleep(1.0)  # the deletion arrives now; this pass then applies its children
        return await original(self, *args, **kwargs)

    monkeypatch.setattr(Reconciler, "reconcile", slow)
    world.publish()
    world.policy()
    world.model()
    async with operator():
        await world.until(lambda: handlers.FINALIZER in (world.get()["metadata"].get("finalizers") or []))
        await world.until(lambda: passes, timeout=5)
        world.kube.delete_object("openmodels", NS, "m")
        await world.until(lambda: world.kube.get("openmodels", NS, "m") is None, timeout=15)
        await asyncio.sleep(1.5)  # a pass still running would apply now
        assert world.jobs() == [] and world.child("persistentvolumeclaims", "m-weights") is None
        assert world.manifests() == []


async def test_no_pass_runs_before_the_policies_are_listed(
    world: World, operator: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An unsigned model under an Audit policy is admitted; judged before the policy listing ended, the
    built-in default would reject it first (and revoke what it serves)."""
    phases: list[str | None] = []
    original = Kube.patch_status

    async def recorded(self: Kube, namespace: str, name: str, status: Any) -> Any:
        phases.append(status.get("phase"))
        return await original(self, namespace, name, status)

    monkeypatch.setattr(Kube, "patch_status", recorded)

    async def slow_listing() -> None:
        await asyncio.sleep(1.5)  # then the emulator answers as usual

    world.kube["list", world.kube.resource("openmodel.io/v1alpha1/modeltrustpolicies")] << slow_listing
    world.publish(sign=False)
    world.policy(mode="Audit")
    world.model()
    async with operator():
        await world.phase("Pulling", timeout=15)
        assert world.cond("Trusted") == ("True", "AuditViolations")
    assert "Rejected" not in phases and phases[0] == "Pulling", phases


async def test_a_paused_replica_runs_no_pass(world: World, operator: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(handlers, "FULL_PASS_EVERY", 0)  # every resync is a full pass: passes keep coming
    original = Reconciler.reconcile
    passes = [0]

    async def counted(self: Reconciler, *args: Any, **kwargs: Any) -> Any:
        passes[0] += 1
        return await original(self, *args, **kwargs)

    monkeypatch.setattr(Reconciler, "reconcile", counted)
    world.publish()
    world.policy()
    world.model()
    async with operator() as running:
        await world.phase("Pulling")
        paused = kopf_watch._PAUSED[id(running.settings)]
        toggle = await paused.make_toggle(True, name="a peer with a higher priority")  # as Kopf peering does
        await asyncio.sleep(0.6)  # a pass that had started ends
        before = passes[0]
        await asyncio.sleep(2.0)  # four resync intervals
        assert passes[0] == before
        await paused.drop_toggle(toggle)  # the peer is gone: this replica works again (control)
        await world.until(lambda: passes[0] > before + 1, timeout=5)


async def test_a_status_or_finalizer_changed_by_another_wakes_a_settled_model(
    world: World, operator: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(handlers, "FULL_PASS_EVERY", 10_000)  # no safety-net pass: only the wake-up can tell
    world.publish(sign=False)
    world.policy()
    world.model()
    async with operator():
        await world.phase("Rejected")
        await asyncio.sleep(1.0)  # settled
        world.kube.patch_status("openmodels", NS, "m", {"phase": "Ready"})  # forged
        await world.phase("Rejected", timeout=2)
        world.kube.patch_object("openmodels", NS, "m", {"metadata": {"finalizers": [FOREIGN]}})
        await world.until(lambda: world.get()["metadata"]["finalizers"] == [FOREIGN, handlers.FINALIZER], timeout=2)
        await asyncio.sleep(1.0)  # the pass that put it back ends
        # control: the label edit of a GitOps tool changes nothing a pass reads and wakes nothing
        passes = METRICS.registry.get_sample_value("openmodel_reconcile_duration_seconds_count") or 0.0
        skipped = METRICS.registry.get_sample_value("openmodel_reconcile_skipped_total") or 0.0
        world.kube.patch_object("openmodels", NS, "m", {"metadata": {"labels": {"team": "a"}}})
        await asyncio.sleep(1.0)
        assert METRICS.registry.get_sample_value("openmodel_reconcile_duration_seconds_count") == passes
        assert (METRICS.registry.get_sample_value("openmodel_reconcile_skipped_total") or 0.0) == skipped


@pytest.mark.parametrize("held", [True, False], ids=["held-by-a-tenant-finalizer", "gone-at-once"])
async def test_a_model_deleted_after_its_finalizer_was_taken_off_still_loses_its_children(
    world: World, operator: Any, held: bool
) -> None:
    """Attack (review of issue 13): the tenant replaces our finalizer with its own (or with none) and deletes
    the model; the Deployment it served must not keep serving where no revocation reaches it any more."""
    world.publish()
    world.policy()
    world.model()
    async with operator():
        await world.serve()
        world.kube.patch_object("openmodels", NS, "m", {"metadata": {"finalizers": [FOREIGN] if held else []}})
        world.kube.delete_object("openmodels", NS, "m")
        await world.until(
            lambda: world.child("deployments", "m") is None
            and world.child("services", "m") is None
            and world.jobs() == []
            and world.child("persistentvolumeclaims", "m-weights") is None,
            timeout=10,
        )
        if held:  # the tenant's finalizer is the tenant's: kept, and the model waits for it
            assert world.get()["metadata"]["finalizers"] == [FOREIGN]
        # control: a model created again under the same name is served with children of its own
        if held:
            world.kube.patch_object("openmodels", NS, "m", {"metadata": {"finalizers": []}})
            await world.until(lambda: world.kube.get("openmodels", NS, "m") is None, timeout=10)
        world.model()
        await world.serve()


async def test_a_refused_finalizer_write_does_not_hold_back_the_decision(
    world: World, operator: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Attack: the finalizer cannot be added (a tenant keeps the model changing, or an admission webhook
    refuses metadata writes); the model is still decided and a revocation still scales it to zero."""

    async def refused(self: Kube, *args: Any, **kwargs: Any) -> bool | None:
        raise KubeError(403, "admission webhook denied the request")

    world.publish()
    world.policy()
    world.model()
    async with operator():
        await world.serve()
        monkeypatch.setattr(Kube, "set_finalizers", refused)
        world.kube.patch_object("openmodels", NS, "m", {"metadata": {"finalizers": []}})
        world.trust_only(new_key())  # the signer's key is revoked
        await world.phase("Rejected")
        assert world.cond("Trusted") == ("False", "UntrustedSigner")
        assert world.child("deployments", "m")["spec"]["replicas"] == 0


def test_a_kopf_without_the_hooked_arguments_is_refused_at_start(monkeypatch: pytest.MonkeyPatch) -> None:
    from kopf._core.reactor import queueing

    async def renamed(**kwargs: Any) -> None:  # a Kopf whose watcher takes other keyword arguments
        return None

    monkeypatch.setattr(queueing, "watcher", renamed)
    with pytest.raises(RuntimeError, match="unsupported Kopf version"):
        kopf_watch.install()
