"""LoRA adapters (issue 9), planned by the pure core from plain decisions.

An adapter is loaded only when its decision admits it and a pull Job the operator created checked every byte
into its own slot; a refused one is never loaded and the base model keeps serving; one the pods load that is
refused later makes the pods restart without it. Hostile cases sit next to the ordinary flow.
"""

from __future__ import annotations

import datetime
from typing import Any

import pytest
from pydantic import ValidationError

from apiserver_validation import admit
from openmodel_operator.api.openmodel import OpenModelSpec, OpenModelStatus, Provenance
from openmodel_operator.crd.definitions import openmodel_crd
from openmodel_operator.evidence.manifest import manifest_digest
from openmodel_operator.evidence.pinned import PinnedManifest
from openmodel_operator.evidence.records import FileEntry
from openmodel_operator.planning import children, planner, revision_slots
from openmodel_operator.planning.adapters import AdapterDecision
from openmodel_operator.planning.conditions import RESOLVED, TRUSTED, Cond
from openmodel_operator.planning.planner import Observed
from openmodel_operator.planning.trust_result import TrustResult
from test_planner import PROVENANCE, REF, SETTINGS, TRUSTED_CONDS, completed
from test_revision_slots import NEW, OLD, deployment_of, manifests, pull_job, trusted

NOW = datetime.datetime(2026, 12, 1, tzinfo=datetime.UTC)

LORA_FILES = (FileEntry("adapter_config.json", 10, "c" * 64), FileEntry("adapter_model.safetensors", 99, "d" * 64))
LORA = PinnedManifest("hf://org/sql-lora", "3" * 40, manifest_digest(LORA_FILES, None), LORA_FILES)
LORA2_FILES = (FileEntry("adapter_config.json", 10, "c" * 64), FileEntry("adapter_model.safetensors", 99, "e" * 64))
LORA2 = PinnedManifest("hf://org/sql-lora", "4" * 40, manifest_digest(LORA2_FILES, None), LORA2_FILES)


def adapter_spec(*names: str, **storage: Any) -> OpenModelSpec:
    return OpenModelSpec.model_validate(
        {
            "source": {"uri": "hf://org/granite"},
            "storage": storage,
            "adapters": [{"name": n, "source": {"uri": f"hf://org/{n}-lora"}} for n in names],
        }
    )


def adapter_trusted(pinned: PinnedManifest) -> TrustResult:
    provenance = {
        **PROVENANCE,
        "source": pinned.source,
        "manifestDigest": pinned.manifest_digest,
        "resolvedRevision": pinned.revision,
    }
    return TrustResult(True, TRUSTED_CONDS, Provenance.model_validate(provenance), pinned)


REFUSED = TrustResult(
    False,
    (
        Cond(RESOLVED, "True", "Resolved", "ok"),
        Cond(TRUSTED, "False", "SignatureInvalid", "the bundle was signed by a key no policy trusts"),
    ),
)


def plan(
    the_spec: OpenModelSpec,
    status: OpenModelStatus,
    trust: TrustResult,
    observed: Observed,
    adapters: list[AdapterDecision] | None = None,
) -> planner.Plan:
    return planner.plan(REF, the_spec, status, trust, observed, SETTINGS, NOW, None, adapters or [])


def conds(result: planner.Plan) -> dict[str, tuple[str, str, str]]:
    return {c.type: (c.status, c.reason, c.message) for c in result.status.conditions or []}


def decisions(the_spec: OpenModelSpec, *results: TrustResult | None) -> list[AdapterDecision]:
    return [AdapterDecision(a, r) for a, r in zip(the_spec.adapters or [], results, strict=True)]


def adapter_job(the_spec: OpenModelSpec, index: int, pinned: PinnedManifest, ok: bool | None = True) -> tuple[str, Any]:
    """An adapter's pull Job as the watch shows it (made by this process), finished when ``ok`` is not None."""
    own = the_spec.model_copy(update={"source": (the_spec.adapters or [])[index].source})
    job = children.fetch_job(REF, own, pinned, SETTINGS)
    meta = {**job["metadata"], "uid": "uid-adapter-" + pinned.manifest_digest[7:15]}
    meta["annotations"] = {**meta["annotations"], children.ADAPTER_ANNOTATION: (the_spec.adapters or [])[index].name}
    return job["metadata"]["name"], {"metadata": meta, **(completed(ok) if ok is not None else {})}


def serving_base(the_spec: OpenModelSpec, jobs: dict[str, Any], deployment: Any = None, **extra: Any) -> Observed:
    """The base model NEW pulled and serving; ``jobs`` adds the adapters' Jobs."""
    name, body = pull_job(NEW, "2026-01-02T00:00:00Z")
    all_jobs = {name: body, **jobs}
    made = frozenset(str(j["metadata"]["uid"]) for j in all_jobs.values())
    return Observed(
        deployment=deployment if deployment is not None else deployment_of(NEW, of=the_spec),
        jobs=all_jobs,
        configmaps=manifests(NEW),
        made_jobs=made,
        **extra,
    )


def status_serving() -> OpenModelStatus:
    return OpenModelStatus(phase="Ready", served=revision_slots.content_record(NEW.manifest_digest, NEW.revision))


def test_a_trusted_adapter_gets_its_own_slot_and_job_and_is_loaded_only_once_pulled() -> None:
    the_spec = adapter_spec("sql")
    result = plan(
        the_spec,
        status_serving(),
        trusted(NEW),
        serving_base(the_spec, {}),
        adapters=decisions(the_spec, adapter_trusted(LORA)),
    )
    jobs = {o["metadata"]["name"]: o for o in result.apply if o["kind"] == "Job"}
    job_name = children.pull_job_name(REF, LORA.manifest_digest)
    assert job_name in jobs  # pulled into the slot named by its own content
    job = jobs[job_name]
    assert job["metadata"]["annotations"][children.ADAPTER_ANNOTATION] == "sql"
    assert (
        f"/volume/{children.slot_dir(LORA.manifest_digest)}"
        in job["spec"]["template"]["spec"]["containers"][0]["command"]
    )
    maps = [o for o in result.apply if o["kind"] == "ConfigMap"]
    assert children.manifest_configmap_name(REF, LORA.manifest_digest) in {m["metadata"]["name"] for m in maps}
    # not pulled yet: the Deployment does not load it, the base model serves; AdaptersReady says it is coming
    deployment = next(o for o in result.apply if o["kind"] == "Deployment")
    assert "--lora-modules" not in deployment["spec"]["template"]["spec"]["containers"][0]["args"]
    assert result.status.phase == "Ready"
    assert conds(result)["AdaptersReady"][:2] == ("False", "AdaptersLoading")
    (record,) = result.status.provenance.adapters  # type: ignore[union-attr]
    assert record.name == "sql" and record.verdict == "Trusted" and not record.loaded
    assert record.manifest_digest == LORA.manifest_digest and record.source == "hf://org/sql-lora"

    # its Job succeeded: the pods load it from its slot, read-only, checked at start against its own manifest
    name, body = adapter_job(the_spec, 0, LORA)
    result = plan(
        the_spec,
        status_serving(),
        trusted(NEW),
        serving_base(the_spec, {name: body}),
        adapters=decisions(the_spec, adapter_trusted(LORA)),
    )
    deployment = next(o for o in result.apply if o["kind"] == "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    args = pod["containers"][0]["args"]
    assert args[args.index("--lora-modules") + 1] == "sql=/adapters/sql" and "--enable-lora" in args
    mount = next(m for m in pod["containers"][0]["volumeMounts"] if m["mountPath"] == "/adapters/sql")
    assert mount == {
        "name": "weights",
        "mountPath": "/adapters/sql",
        "subPath": children.slot_dir(LORA.manifest_digest),
        "readOnly": True,
    }
    check = next(c for c in pod["initContainers"] if c["name"] == "verify-adapter-0")
    assert LORA.manifest_digest in check["command"] and "--verify-only" in check["command"]
    volume = next(v for v in pod["volumes"] if v["name"] == "adapter-manifest-0")
    assert volume["configMap"]["name"] == children.manifest_configmap_name(REF, LORA.manifest_digest)
    annotations = deployment["spec"]["template"]["metadata"]["annotations"]
    assert annotations[children.ADAPTERS_ANNOTATION] == f"sql={LORA.manifest_digest}"
    assert conds(result)["AdaptersReady"][:2] == ("False", "AdaptersLoading")  # the rollout has not run yet

    # the Deployment rolled out with it: loaded
    observed = serving_base(the_spec, {name: body}, deployment=_rolled(deployment))
    result = plan(
        the_spec, status_serving(), trusted(NEW), observed, adapters=decisions(the_spec, adapter_trusted(LORA))
    )
    assert conds(result)["AdaptersReady"][:2] == ("True", "AdaptersLoaded")
    assert result.status.provenance.adapters[0].loaded  # type: ignore[index,union-attr]
    assert result.status.provenance.adapters[0].pull_job_uid == body["metadata"]["uid"]  # type: ignore[index,union-attr]


def _rolled(deployment: dict[str, Any]) -> dict[str, Any]:
    live = {**deployment, "metadata": {**deployment["metadata"], "generation": 3}}
    live["status"] = {
        "observedGeneration": 3,
        "replicas": 1,
        "updatedReplicas": 1,
        "availableReplicas": 1,
        "readyReplicas": 1,
        "conditions": [{"type": "Available", "status": "True", "reason": "R"}],
    }
    return live


def test_a_refused_adapter_is_never_loaded_and_the_base_keeps_serving() -> None:
    the_spec = adapter_spec("sql", "evil")
    name, body = adapter_job(the_spec, 0, LORA)
    result = plan(
        the_spec,
        status_serving(),
        trusted(NEW),
        serving_base(the_spec, {name: body}),
        adapters=decisions(the_spec, adapter_trusted(LORA), REFUSED),
    )
    deployment = next(o for o in result.apply if o["kind"] == "Deployment")
    args = deployment["spec"]["template"]["spec"]["containers"][0]["args"]
    assert args[args.index("--lora-modules") + 1 :][:1] == ["sql=/adapters/sql"]
    assert not any("evil" in a for a in args)
    assert not any(o["kind"] == "Job" and "evil" in str(o["metadata"].get("annotations")) for o in result.apply)
    status, reason, message = conds(result)["AdaptersReady"]
    assert (status, reason) == ("False", "AdapterRejected")
    assert "adapter evil: SignatureInvalid" in message and "base model keeps serving" in message
    assert conds(result)["Ready"][0] == "True"  # the base model serves
    assert result.status.phase == "Degraded"  # ... but not everything asked for
    evil = next(a for a in result.status.provenance.adapters or [] if a.name == "evil")  # type: ignore[union-attr]
    assert (evil.verdict, evil.reason, evil.loaded) == ("Untrusted", "SignatureInvalid", False)
    warning = next(e for e in result.events if e.reason == "AdapterRejected")
    assert warning.type == "Warning"
    # control: without the refused one, everything is ready and nothing is degraded
    only = adapter_spec("sql")
    observed = serving_base(only, {name: body}, deployment=_rolled(deployment))
    calm = plan(only, status_serving(), trusted(NEW), observed, adapters=decisions(only, adapter_trusted(LORA)))
    assert calm.status.phase == "Ready" and conds(calm)["AdaptersReady"][0] == "True"


def test_a_loaded_adapter_refused_later_restarts_the_pods_without_it() -> None:
    the_spec = adapter_spec("sql")
    name, body = adapter_job(the_spec, 0, LORA)
    loading = children.deployment(
        REF, the_spec, NEW, SETTINGS, adapters=[children.ServedAdapter("sql", LORA.manifest_digest)]
    )
    assert loading is not None
    observed = serving_base(the_spec, {name: body}, deployment=_rolled(loading))
    result = plan(the_spec, status_serving(), trusted(NEW), observed, adapters=decisions(the_spec, REFUSED))
    deployment = next(o for o in result.apply if o["kind"] == "Deployment")
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}  # no old pod keeps serving the refused adapter
    assert "--lora-modules" not in deployment["spec"]["template"]["spec"]["containers"][0]["args"]
    assert children.ADAPTERS_ANNOTATION not in deployment["spec"]["template"]["metadata"]["annotations"]
    # control: still trusted, the strategy is the model's own and the adapter stays
    kept = plan(the_spec, status_serving(), trusted(NEW), observed, adapters=decisions(the_spec, adapter_trusted(LORA)))
    deployment = next(o for o in kept.apply if o["kind"] == "Deployment")
    assert deployment["spec"]["strategy"]["type"] == "Recreate"  # ReadWriteOnce default
    assert "--lora-modules" in deployment["spec"]["template"]["spec"]["containers"][0]["args"]
    rwx = adapter_spec("sql", accessMode="ReadWriteMany")
    observed = serving_base(rwx, {name: body}, deployment=_rolled(loading))
    result = plan(rwx, status_serving(), trusted(NEW), observed, adapters=decisions(rwx, REFUSED))
    assert next(o for o in result.apply if o["kind"] == "Deployment")["spec"]["strategy"] == {"type": "Recreate"}
    result = plan(rwx, status_serving(), trusted(NEW), observed, adapters=decisions(rwx, adapter_trusted(LORA)))
    assert next(o for o in result.apply if o["kind"] == "Deployment")["spec"]["strategy"]["type"] == "RollingUpdate"


def test_an_adapter_job_the_operator_did_not_create_is_replaced_and_proves_nothing() -> None:
    the_spec = adapter_spec("sql")
    name, body = adapter_job(the_spec, 0, LORA)
    observed = serving_base(the_spec, {name: body})
    forged = Observed(**{**observed.__dict__, "made_jobs": observed.made_jobs - {body["metadata"]["uid"]}})
    result = plan(the_spec, status_serving(), trusted(NEW), forged, adapters=decisions(the_spec, adapter_trusted(LORA)))
    assert ("Job", name) in result.delete
    deployment = next(o for o in result.apply if o["kind"] == "Deployment")
    assert "--lora-modules" not in deployment["spec"]["template"]["spec"]["containers"][0]["args"]
    assert "did not create" in conds(result)["AdaptersReady"][2]
    # control: the uid recorded on status counts after a restart (this process made nothing)
    status = status_serving().model_copy(
        update={
            "provenance": Provenance.model_validate(
                {
                    **PROVENANCE,
                    "adapters": [
                        {"name": "sql", "source": "x", "verdict": "Trusted", "pullJobUid": body["metadata"]["uid"]}
                    ],
                }
            )
        }
    )
    result = plan(the_spec, status, trusted(NEW), forged, adapters=decisions(the_spec, adapter_trusted(LORA)))
    assert ("Job", name) not in result.delete
    deployment = next(o for o in result.apply if o["kind"] == "Deployment")
    assert "--lora-modules" in deployment["spec"]["template"]["spec"]["containers"][0]["args"]


def test_adapter_slots_are_not_revisions_and_the_prune_keeps_them() -> None:
    the_spec = adapter_spec("sql")
    name, body = adapter_job(the_spec, 0, LORA)
    old_name, old_body = pull_job(OLD, "2026-01-01T00:00:00Z")
    older_name, older_body = adapter_job(the_spec, 0, LORA2)  # the adapter's previous content
    deployment = children.deployment(
        REF, the_spec, NEW, SETTINGS, adapters=[children.ServedAdapter("sql", LORA.manifest_digest)]
    )
    assert deployment is not None
    observed = serving_base(
        the_spec,
        {name: body, old_name: old_body, older_name: older_body},
        deployment=_rolled(deployment),
    )
    observed = Observed(**{**observed.__dict__, "configmaps": manifests(NEW, OLD, LORA, LORA2)})
    result = plan(
        the_spec, status_serving(), trusted(NEW), observed, adapters=decisions(the_spec, adapter_trusted(LORA))
    )
    kept = [r.manifest_digest for r in result.status.kept_revisions or []]
    assert kept == [OLD.manifest_digest]  # the adapter's slot is not a revision of the model
    assert ("Job", older_name) in result.delete and ("Job", name) not in result.delete
    assert ("ConfigMap", children.manifest_configmap_name(REF, LORA2.manifest_digest)) in result.delete
    assert ("ConfigMap", children.manifest_configmap_name(REF, LORA.manifest_digest)) not in result.delete
    prune = next(
        o for o in result.apply if o["kind"] == "Job" and o["metadata"]["labels"][children.COMPONENT_LABEL] == "prune"
    )
    command = prune["spec"]["template"]["spec"]["containers"][0]["command"]
    assert children.slot_dir(LORA.manifest_digest) in command and children.slot_dir(NEW.manifest_digest) in command
    assert children.slot_dir(LORA2.manifest_digest) not in command


@pytest.mark.parametrize(
    ("name", "content", "reason"),
    [
        ("granite", LORA, "InvalidSpec"),  # the OpenModel's own name: clients could not tell the two apart
        ("sql", NEW, "AdapterIsBaseModel"),  # the base model's own content presented as an adapter
    ],
)
def test_an_adapter_that_would_shadow_the_base_model_is_refused(
    name: str, content: PinnedManifest, reason: str
) -> None:
    the_spec = OpenModelSpec.model_validate(
        {"source": {"uri": "hf://org/granite"}, "adapters": [{"name": name, "source": {"uri": "hf://org/x"}}]}
    )
    result = plan(
        the_spec,
        status_serving(),
        trusted(NEW),
        serving_base(the_spec, {}),
        adapters=decisions(the_spec, adapter_trusted(content)),
    )
    assert conds(result)["AdaptersReady"][:2] == ("False", "AdapterRejected")
    assert reason in conds(result)["AdaptersReady"][2]
    assert not any(
        o["kind"] == "Job" and children.ADAPTER_ANNOTATION in o["metadata"].get("annotations", {}) for o in result.apply
    )


def test_no_adapter_is_decided_or_pulled_for_an_untrusted_base() -> None:
    the_spec = adapter_spec("sql")
    untrusted = TrustResult(False, REFUSED.conditions)
    result = plan(the_spec, OpenModelStatus(), untrusted, Observed(), adapters=decisions(the_spec, None))
    assert result.apply == ()
    assert conds(result)["AdaptersReady"][:2] == ("False", "NotTrusted")


def test_runtime_none_verifies_adapters_on_the_volume_without_serving() -> None:
    the_spec = OpenModelSpec.model_validate(
        {
            "source": {"uri": "hf://org/granite"},
            "serving": {"runtime": "none"},
            "adapters": [{"name": "sql", "source": {"uri": "hf://org/sql-lora"}}],
        }
    )
    name, body = adapter_job(the_spec, 0, LORA)
    base_name, base_body = pull_job(NEW, "2026-01-02T00:00:00Z")
    jobs = {base_name: base_body, name: body}
    made = frozenset(str(j["metadata"]["uid"]) for j in jobs.values())
    observed = Observed(jobs=jobs, configmaps=manifests(NEW), made_jobs=made)
    result = plan(
        the_spec, OpenModelStatus(), trusted(NEW), observed, adapters=decisions(the_spec, adapter_trusted(LORA))
    )
    assert not any(o["kind"] == "Deployment" for o in result.apply)
    assert conds(result)["AdaptersReady"][:2] == ("True", "AdaptersLoaded")
    assert "verified on the volume" in conds(result)["AdaptersReady"][2]


@pytest.mark.parametrize(
    ("adapters", "storage", "error"),
    [
        ([{"name": "a", "source": {"uri": "hf://o/a"}}, {"name": "a", "source": {"uri": "hf://o/b"}}], {}, "own name"),
        ([{"name": "a", "source": {"uri": "hf://o/a"}}], {"mode": "PerPod"}, "PerPod"),
        ([{"name": "Not_A_Label", "source": {"uri": "hf://o/a"}}], {}, "pattern"),
        ([{"name": "a", "source": {"uri": "hf://o/a"}}], {"base": "pvc://staged/model"}, "served in place"),
    ],
)
def test_adapters_the_operator_could_not_serve_are_refused_by_the_api(
    adapters: list[dict[str, Any]], storage: dict[str, Any], error: str
) -> None:
    base = storage.pop("base", "hf://org/granite")
    with pytest.raises(ValidationError, match=error):
        OpenModelSpec.model_validate({"source": {"uri": base}, "adapters": adapters, "storage": storage})
    control = [{"name": "a", "source": {"uri": "hf://o/a"}}, {"name": "b", "source": {"uri": "hf://o/b"}}]
    OpenModelSpec.model_validate({"source": {"uri": "hf://org/granite"}, "adapters": control})


def test_the_schema_refuses_a_volume_adapter_and_an_adapter_on_per_pod_storage() -> None:
    body: dict[str, Any] = {
        "apiVersion": "openmodel.io/v1alpha1",
        "kind": "OpenModel",
        "metadata": {"name": "m", "namespace": "ns"},
        "spec": {
            "source": {"uri": "hf://org/granite"},
            "adapters": [{"name": "sql", "source": {"uri": "pvc://loras/sql"}}],
        },
    }
    assert any("hf://" in str(e) for e in admit(openmodel_crd(), body)[1])
    body["spec"]["adapters"][0]["source"]["uri"] = "hf://org/sql-lora"
    assert admit(openmodel_crd(), body)[1] == []  # control
    body["spec"]["storage"] = {"mode": "PerPod"}
    assert any("PerPod" in str(e) for e in admit(openmodel_crd(), body)[1])


@pytest.mark.parametrize("removed", [False, True], ids=["updated", "removed"])
def test_content_the_pods_still_load_is_revoked_when_the_policies_change_and_nothing_vouches_for_it(
    removed: bool,
) -> None:
    """An adapter updated to other content (or removed from the spec) while its rollout is held back: the old
    pods still load the previous content. Unchanged rules keep the ordinary rollout; changed rules cannot
    decide that content again (nothing of this pass vouches for it), so its pods go first (Recreate)."""
    the_spec = (
        OpenModelSpec.model_validate(
            {"source": {"uri": "hf://org/granite"}, "storage": {"accessMode": "ReadWriteMany"}}
        )
        if removed
        else adapter_spec("sql", accessMode="ReadWriteMany")
    )
    name, body = adapter_job(adapter_spec("sql"), 0, LORA)
    loading = children.deployment(
        REF, the_spec, NEW, SETTINGS, adapters=[children.ServedAdapter("sql", LORA.manifest_digest)]
    )
    assert loading is not None
    observed = serving_base(the_spec, {name: body}, deployment=_rolled(loading))
    new = [] if removed else decisions(the_spec, adapter_trusted(LORA2))
    calm = planner.plan(REF, the_spec, status_serving(), trusted(NEW), observed, SETTINGS, NOW, None, new, False)
    deployment = next(o for o in calm.apply if o["kind"] == "Deployment")
    assert deployment["spec"]["strategy"]["type"] == "RollingUpdate"  # control: the rules did not move
    moved = planner.plan(REF, the_spec, status_serving(), trusted(NEW), observed, SETTINGS, NOW, None, new, True)
    deployment = next(o for o in moved.apply if o["kind"] == "Deployment")
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}
    # control: the content the pods load is still vouched for by this pass: no Recreate
    if not removed:
        same = decisions(the_spec, adapter_trusted(LORA))
        kept = planner.plan(REF, the_spec, status_serving(), trusted(NEW), observed, SETTINGS, NOW, None, same, True)
        assert next(o for o in kept.apply if o["kind"] == "Deployment")["spec"]["strategy"]["type"] == "RollingUpdate"
