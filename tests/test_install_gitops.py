"""The Argo CD integration: the OpenModel health check runs in a real Lua 5.1 interpreter (Argo CD's
gopher-lua implements 5.1) against status samples; the argocd-cm snippet embeds the same script; the
example Applications sync with server-side apply and point at paths that exist.
"""

from __future__ import annotations

import copy
import importlib
from pathlib import Path
from typing import Any

import pytest
import yaml

from openmodel_operator.controller.metrics import PHASES

lupa = pytest.importorskip("lupa", reason="lupa (a Lua interpreter for Python) is not installed")

ROOT = Path(__file__).resolve().parent.parent
ARGOCD = ROOT / "deploy" / "argocd"
HEALTH_LUA = ARGOCD / "openmodel-health.lua"
HEALTH_KEY = "resource.customizations.health.openmodel.io_OpenModel"
ARGO_STATUSES = {"Healthy", "Progressing", "Degraded", "Suspended", "Missing", "Unknown"}


def _runtime() -> Any:
    try:
        return importlib.import_module("lupa.lua51").LuaRuntime(unpack_returned_tuples=True)
    except ImportError:  # a lupa wheel without the 5.1 runtime: the script is plain 5.1, any 5.x runs it
        return lupa.LuaRuntime(unpack_returned_tuples=True)


def health(obj: dict[str, Any]) -> tuple[str, str]:
    """Run the health script as Argo CD does: ``obj`` global, the chunk returns ``hs``."""
    lua = _runtime()
    lua.globals().obj = lua.table_from(obj, recursive=True)
    hs = lua.execute(HEALTH_LUA.read_text())
    assert hs is not None, "the script must return hs"
    status, message = hs["status"], hs["message"]
    assert status in ARGO_STATUSES
    assert isinstance(message, str) and message
    return status, message


def cond(ctype: str, status: str, reason: str, message: str) -> dict[str, Any]:
    return {
        "type": ctype,
        "status": status,
        "reason": reason,
        "message": message,
        "lastTransitionTime": "2025-01-01T00:00:00Z",
        "observedGeneration": 3,
    }


def model(
    phase: str | None, *conditions: dict[str, Any], generation: int = 3, observed: int | None = 3
) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "apiVersion": "openmodel.io/v1alpha1",
        "kind": "OpenModel",
        "metadata": {"name": "granite", "namespace": "models", "generation": generation},
        "spec": {"source": {"uri": "hf://ibm-granite/granite-3.3-2b-instruct"}},
    }
    if phase is not None:
        obj["status"] = {"phase": phase, "conditions": list(conditions)}
        if observed is not None:
            obj["status"]["observedGeneration"] = observed
    return obj


TRUSTED = cond("Trusted", "True", "PoliciesPassed", "tier Signed, admitted by strict")
READY = cond("Ready", "True", "Serving", "serving sha256:abc at http://granite.models.svc/v1")


def test_ready_is_healthy_with_the_ready_message() -> None:
    assert health(model("Ready", TRUSTED, READY)) == (
        "Healthy",
        "Ready Serving: serving sha256:abc at http://granite.models.svc/v1",
    )


def test_ready_phase_without_a_true_ready_condition_is_not_healthy() -> None:
    status, _ = health(model("Ready", TRUSTED, cond("Ready", "False", "Starting", "waiting")))
    assert status == "Progressing"


@pytest.mark.parametrize("phase", ["Pending", "Resolving", "Verifying", "Pulling", "Deploying"])
def test_work_in_progress_is_progressing(phase: str) -> None:
    pulling = cond("Ready", "False", "WeightsNotReady", "waiting for verified weights on the volume")
    assert health(model(phase, TRUSTED, pulling)) == (
        "Progressing",
        "Ready WeightsNotReady: waiting for verified weights on the volume",
    )
    assert health(model(phase)) == ("Progressing", f"phase {phase}")


def test_rejected_is_degraded_with_the_trusted_message() -> None:
    obj = model(
        "Rejected",
        cond("SignatureVerified", "False", "UntrustedSigner", "signed by mallory (key), not a trusted signer"),
        cond("Trusted", "False", "UntrustedSigner", "signed by mallory, whom no Enforce policy trusts"),
        cond("Ready", "False", "UntrustedSigner", "the model is not trusted; see the Trusted condition"),
    )
    assert health(obj) == ("Degraded", "Trusted UntrustedSigner: signed by mallory, whom no Enforce policy trusts")


def test_failed_pull_is_degraded_with_the_weights_message() -> None:
    obj = model(
        "Failed",
        TRUSTED,
        cond("WeightsReady", "False", "PodFailurePolicy", "container fetch exited with code 1: PulledDigestMismatch"),
        cond("Ready", "False", "WeightsNotReady", "waiting for verified weights on the volume"),
    )
    assert health(obj) == (
        "Degraded",
        "WeightsReady PodFailurePolicy: container fetch exited with code 1: PulledDigestMismatch",
    )


def test_failed_resolution_is_degraded_with_the_resolved_message() -> None:
    obj = model(
        "Failed",
        cond("Resolved", "False", "RevisionNotFound", "revision v9 does not exist in hf://org/model"),
        cond("Trusted", "Unknown", "RevisionNotFound", "the source could not be examined; see Resolved"),
        cond("Ready", "False", "RevisionNotFound", "the model is not trusted; see the Trusted condition"),
    )
    assert health(obj) == ("Degraded", "Resolved RevisionNotFound: revision v9 does not exist in hf://org/model")


def test_degraded_is_degraded_with_the_ready_message() -> None:
    obj = model(
        "Degraded",
        TRUSTED,
        cond("Available", "False", "MinimumReplicasUnavailable", "Deployment does not have minimum availability."),
        cond("Ready", "False", "MinimumReplicasUnavailable", "Deployment does not have minimum availability."),
    )
    assert health(obj) == (
        "Degraded",
        "Ready MinimumReplicasUnavailable: Deployment does not have minimum availability.",
    )


def test_scaled_to_zero_on_purpose_is_suspended() -> None:
    obj = model("Deploying", TRUSTED, cond("Ready", "False", "ScaledToZero", "spec.serving.replicas is 0"))
    assert health(obj) == ("Suspended", "Ready ScaledToZero: spec.serving.replicas is 0")


@pytest.mark.parametrize("observed", [2, None])
def test_a_generation_the_operator_has_not_acted_on_is_progressing(observed: int | None) -> None:
    # even a stale Ready or Rejected says nothing about the new spec
    for phase, conditions in (("Ready", (TRUSTED, READY)), ("Rejected", (cond("Trusted", "False", "X", "y"),))):
        status, message = health(model(phase, *conditions, generation=3, observed=observed))
        assert status == "Progressing"
        assert "generation 3" in message and f"from generation {observed or 'none'}" in message


def test_no_status_yet_is_progressing() -> None:
    assert health(model(None)) == ("Progressing", "waiting for the operator to reconcile this OpenModel")
    obj = model(None)
    obj["status"] = {}
    assert health(obj)[0] == "Progressing"


def test_deletion_in_progress_is_progressing() -> None:
    obj = model("Ready", TRUSTED, READY)
    obj["metadata"]["deletionTimestamp"] = "2025-01-01T00:00:00Z"
    obj["metadata"]["finalizers"] = ["openmodel.io/cleanup"]
    status, message = health(obj)
    assert status == "Progressing" and "openmodel.io/cleanup" in message


def test_an_unknown_phase_is_unknown() -> None:
    assert health(model("Hibernating")) == ("Unknown", "unknown phase Hibernating")


def test_every_phase_the_operator_reports_has_a_health() -> None:
    expected = {"Ready": "Healthy", "Rejected": "Degraded", "Failed": "Degraded", "Degraded": "Degraded"}
    for phase in PHASES:
        status, _ = health(model(phase, TRUSTED, READY if phase == "Ready" else cond("Ready", "False", "R", "m")))
        assert status == expected.get(phase, "Progressing"), phase


def test_the_script_does_not_modify_obj() -> None:
    obj = model("Ready", TRUSTED, READY)
    before = copy.deepcopy(obj)
    health(obj)
    assert obj == before


def test_argocd_cm_embeds_the_same_script() -> None:
    cm = yaml.safe_load((ARGOCD / "argocd-cm-patch.yaml").read_text())
    assert (cm["apiVersion"], cm["kind"]) == ("v1", "ConfigMap")
    assert cm["metadata"] == {
        "name": "argocd-cm",
        "namespace": "argocd",
        "labels": {"app.kubernetes.io/name": "argocd-cm", "app.kubernetes.io/part-of": "argocd"},
    }
    assert cm["data"][HEALTH_KEY] == HEALTH_LUA.read_text(), "argocd-cm-patch.yaml is stale: re-embed the .lua"
    ignored = yaml.safe_load(cm["data"]["resource.customizations.ignoreResourceUpdates.openmodel.io_OpenModel"])
    assert ignored == {"jsonPointers": ["/status/operator"]}


def _applications() -> list[dict[str, Any]]:
    apps = []
    for path in sorted(ARGOCD.glob("*application.yaml")):
        apps.extend(doc for doc in yaml.safe_load_all(path.read_text()) if doc)
    return apps


def test_example_applications_sync_server_side_from_existing_paths() -> None:
    apps = {app["metadata"]["name"]: app for app in _applications()}
    assert set(apps) == {"openmodel-examples", "openmodel-operator"}
    for app in apps.values():
        assert (app["apiVersion"], app["kind"]) == ("argoproj.io/v1alpha1", "Application")
        options = app["spec"]["syncPolicy"]["syncOptions"]
        assert "ServerSideApply=true" in options, "the CRDs and OpenModels are applied server-side"
        source = app["spec"]["source"]
        assert (ROOT / source["path"]).is_dir()

    examples = apps["openmodel-examples"]["spec"]
    include = examples["source"]["directory"]["include"].strip("{}").split(",")
    assert include and all((ROOT / "examples" / name).is_file() for name in include)
    kinds = {yaml.safe_load((ROOT / "examples" / name).read_text())["kind"] for name in include}
    assert kinds == {"OpenModel", "ModelTrustPolicy"}
    assert examples["source"]["directory"]["recurse"] is False, "examples/invalid/ must never be synced"
    assert "CreateNamespace=true" in examples["syncPolicy"]["syncOptions"]
    assert examples["destination"]["namespace"] == "models"

    operator = apps["openmodel-operator"]["spec"]
    assert operator["source"]["path"] == "manifests"
    patch = operator["source"]["kustomize"]["patches"][0]
    assert patch["target"]["kind"] == "CustomResourceDefinition"
    assert "Prune=false" in patch["patch"] and "Delete=false" in patch["patch"]
