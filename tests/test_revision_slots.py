"""Revision slots and rollouts (issue 9), decided by the pure planner from plain data.

Each revision is pulled into its own directory on the volume; the server moves to it only once every byte
is verified; the previous revision serves meanwhile, stays for a rollback without a download, and older
ones are removed once the new one serves. Hostile or unlucky cases sit next to the ordinary flow.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from pydantic import ValidationError

from apiserver_validation import admit
from openmodel_operator.api.openmodel import OpenModelSpec, Provenance
from openmodel_operator.crd.definitions import openmodel_crd
from openmodel_operator.evidence.manifest import manifest_digest
from openmodel_operator.evidence.pinned import PinnedManifest
from openmodel_operator.evidence.records import FileEntry
from openmodel_operator.planning import children
from openmodel_operator.planning.planner import Observed
from openmodel_operator.planning.trust_result import TrustResult
from test_planner import NOW, PROVENANCE, REF, SETTINGS, TRUSTED_CONDS, completed, conds, plan

OLD_FILES = (FileEntry("config.json", 10, "a" * 64), FileEntry("model.safetensors", 1000, "1" * 64))
NEW_FILES = (FileEntry("config.json", 10, "a" * 64), FileEntry("model.safetensors", 1000, "2" * 64))
OLDEST_FILES = (FileEntry("config.json", 10, "a" * 64), FileEntry("model.safetensors", 1000, "0" * 64))
OLD = PinnedManifest("hf://org/granite", "1" * 40, manifest_digest(OLD_FILES, None), OLD_FILES)
NEW = PinnedManifest("hf://org/granite", "2" * 40, manifest_digest(NEW_FILES, None), NEW_FILES)
OLDEST = PinnedManifest("hf://org/granite", "0" * 40, manifest_digest(OLDEST_FILES, None), OLDEST_FILES)


def trusted(pinned: PinnedManifest) -> TrustResult:
    provenance = {**PROVENANCE, "manifestDigest": pinned.manifest_digest, "resolvedRevision": pinned.revision}
    return TrustResult(True, TRUSTED_CONDS, Provenance.model_validate(provenance), pinned)


def spec(storage: dict[str, Any] | None = None, **serving: Any) -> OpenModelSpec:
    return OpenModelSpec.model_validate(
        {"source": {"uri": "hf://org/granite"}, "serving": serving, "storage": storage or {}}
    )


def pull_job(pinned: PinnedManifest, created: str, ok: bool | None = True) -> tuple[str, dict[str, Any]]:
    """A pull Job as the watch shows it (no spec: the cache keeps none), finished when ``ok`` is not None."""
    job = children.fetch_job(REF, spec(), pinned, SETTINGS)
    meta = {**job["metadata"], "creationTimestamp": created, "uid": "uid-" + pinned.manifest_digest[7:19]}
    body = {"metadata": meta, **(completed(ok) if ok is not None else {})}
    return job["metadata"]["name"], body


def seen(**observed: Any) -> Observed:
    """Children as the watch shows them, every Job among them made by this operator process."""
    jobs = observed.get("jobs") or {}
    made = frozenset(str(j["metadata"]["uid"]) for j in jobs.values() if "uid" in j["metadata"])
    return Observed(**observed, made_jobs=made)


def deployment_of(
    pinned: PinnedManifest, rolled_out: bool = True, available: bool = True, of: OpenModelSpec | None = None
) -> dict[str, Any]:
    """The Deployment for ``pinned`` as its controller reports it: every pod updated or a rollout under way."""
    obj = children.deployment(REF, of or spec(), pinned, SETTINGS)
    assert obj is not None
    obj["metadata"]["generation"] = 2
    obj["status"] = {
        "observedGeneration": 2,
        "replicas": 1 if rolled_out else 2,
        "updatedReplicas": 1 if rolled_out else 0,
        "availableReplicas": 1 if available else 0,
        "readyReplicas": 1 if available else 0,
        "conditions": [{"type": "Available", "status": "True" if available else "False", "reason": "R"}],
    }
    return obj


def manifests(*pinned: PinnedManifest) -> tuple[str, ...]:
    return tuple(children.manifest_configmap_name(REF, p.manifest_digest) for p in pinned)


def served_status(pinned: PinnedManifest) -> dict[str, Any]:
    return {
        "phase": "Ready",
        "served": {"manifestDigest": pinned.manifest_digest, "revision": pinned.revision},
    }


def names(objs: Any) -> list[tuple[str, str]]:
    return [(o["kind"], o["metadata"]["name"]) for o in objs]


# ---------------------------------------------------------------- the volume layout


def test_each_revision_is_pulled_into_its_own_directory_and_served_from_it_read_only() -> None:
    job = children.fetch_job(REF, spec(), NEW, SETTINGS)
    command = job["spec"]["template"]["spec"]["containers"][0]["command"]
    assert command[command.index("--dest") + 1] == "/volume/" + children.slot_dir(NEW.manifest_digest)
    obj = children.deployment(REF, spec(), NEW, SETTINGS)
    assert obj is not None
    pod = obj["spec"]["template"]["spec"]
    (server,) = pod["containers"]
    weights = next(m for m in server["volumeMounts"] if m["name"] == "weights")
    assert weights == {
        "name": "weights",
        "mountPath": "/models",
        "subPath": children.slot_dir(NEW.manifest_digest),
        "readOnly": True,
    }
    (verify,) = pod["initContainers"]
    checked = next(m for m in verify["volumeMounts"] if m["name"] == "weights")
    assert checked["subPath"] == weights["subPath"]  # the check reads exactly what the server will
    manifest = next(v for v in pod["volumes"] if v["name"] == "manifest")
    assert manifest["configMap"]["name"] == manifests(NEW)[0]  # this revision's manifest, not the latest one


def test_a_digest_that_is_not_sha256_names_no_directory() -> None:
    for digest in ("sha256:../../etc", "sha256:" + "A" * 64, "md5:" + "a" * 64, "sha256:" + "a" * 63):
        with pytest.raises(children.ChildrenError):
            children.slot_dir(digest)


# ---------------------------------------------------------------- an update


def test_while_a_new_revision_is_pulled_the_previous_one_keeps_serving_untouched() -> None:
    old_job, new_job = pull_job(OLD, "2026-11-01T00:00:00Z"), pull_job(NEW, "2026-11-02T00:00:00Z", ok=None)
    observed = seen(deployment=deployment_of(OLD), jobs=dict([old_job, new_job]), configmaps=manifests(OLD, NEW))
    result = plan(REF, spec(), served_status(OLD), trusted(NEW), observed, SETTINGS, NOW)
    assert ("Deployment", "granite") not in names(result.apply)  # the served pod template is left as it is
    assert result.delete == ()  # nothing goes during an update: the served revision's records stay
    assert result.status["phase"] == "Updating"
    assert conds(result.status)["Ready"] == ("True", "Serving")
    assert result.status["served"]["manifestDigest"] == OLD.manifest_digest
    assert result.status["incoming"] == {
        "revision": NEW.revision,
        "shortRevision": NEW.revision[:12],
        "manifestDigest": NEW.manifest_digest,
        "stage": "Pulling",
        "pullJobUid": "uid-" + NEW.manifest_digest[7:19],  # the operator's own Job: status keeps its uid
    }


def test_a_new_revision_that_fails_its_pull_never_replaces_the_one_serving() -> None:
    observed = seen(
        deployment=deployment_of(OLD),
        jobs=dict([pull_job(OLD, "2026-11-01T00:00:00Z"), pull_job(NEW, "2026-11-02T00:00:00Z", ok=False)]),
        configmaps=manifests(OLD, NEW),
    )
    result = plan(REF, spec(), served_status(OLD), trusted(NEW), observed, SETTINGS, NOW)
    assert ("Deployment", "granite") not in names(result.apply)
    assert result.status["phase"] == "Degraded"
    assert conds(result.status)["Ready"] == ("True", "Serving")  # the verified previous revision still serves
    assert result.status["incoming"]["stage"] == "PullFailed"
    assert result.status["served"]["manifestDigest"] == OLD.manifest_digest


def test_once_verified_the_server_rolls_and_shows_the_previous_revision_until_every_pod_runs_the_new() -> None:
    jobs = dict([pull_job(OLD, "2026-11-01T00:00:00Z"), pull_job(NEW, "2026-11-02T00:00:00Z")])
    observed = seen(deployment=deployment_of(NEW, rolled_out=False), jobs=jobs, configmaps=manifests(OLD, NEW))
    result = plan(REF, spec(), served_status(OLD), trusted(NEW), observed, SETTINGS, NOW)
    rolled = next(o for o in result.apply if o["kind"] == "Deployment")
    assert rolled["spec"]["template"]["metadata"]["annotations"][children.DIGEST_ANNOTATION] == NEW.manifest_digest
    assert result.status["phase"] == "Updating"
    assert result.status["served"]["manifestDigest"] == OLD.manifest_digest  # not Ready for content not yet running
    assert result.status["incoming"]["stage"] == "RollingOut"
    assert conds(result.status)["Ready"] == ("True", "RollingOut")
    assert result.delete == ()


def test_a_stalled_rollout_says_why_and_how_to_fix_it() -> None:
    jobs = dict([pull_job(OLD, "2026-11-01T00:00:00Z"), pull_job(NEW, "2026-11-02T00:00:00Z")])
    stalled = deployment_of(NEW, rolled_out=False)
    stalled["status"]["conditions"].append(
        {"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded", "message": "no GPU"}
    )
    observed = seen(deployment=stalled, jobs=jobs, configmaps=manifests(OLD, NEW))
    result = plan(REF, spec(), served_status(OLD), trusted(NEW), observed, SETTINGS, NOW)
    assert result.status["incoming"]["stage"] == "RolloutStalled"
    message = next(c["message"] for c in result.status["conditions"] if c["type"] == "Available")
    assert "maxUnavailable" in message and "ProgressDeadlineExceeded" in message


def test_when_every_pod_runs_the_new_revision_the_previous_is_kept_and_older_ones_go() -> None:
    jobs = dict(
        [
            pull_job(OLDEST, "2026-10-01T00:00:00Z"),
            pull_job(OLD, "2026-11-01T00:00:00Z"),
            pull_job(NEW, "2026-11-02T00:00:00Z"),
        ]
    )
    observed = seen(deployment=deployment_of(NEW), jobs=jobs, configmaps=manifests(OLDEST, OLD, NEW))
    result = plan(REF, spec(), served_status(OLD), trusted(NEW), observed, SETTINGS, NOW)
    assert result.status["phase"] == "Ready" and result.status["incoming"] is None
    assert result.status["served"]["manifestDigest"] == NEW.manifest_digest
    assert [r["manifestDigest"] for r in result.status["keptRevisions"]] == [OLD.manifest_digest]
    oldest_job = children.pull_job_name(REF, OLDEST.manifest_digest)
    assert set(result.delete) == {("Job", oldest_job), ("ConfigMap", manifests(OLDEST)[0])}
    prune = next(o for o in result.apply if o["metadata"]["labels"][children.COMPONENT_LABEL] == "prune")
    command = prune["spec"]["template"]["spec"]["containers"][0]["command"]
    kept = sorted(command[i + 1] for i, arg in enumerate(command) if arg == "--keep")
    assert kept == sorted(children.slot_dir(p.manifest_digest) for p in (OLD, NEW))


def test_keep_revisions_zero_keeps_only_what_serves() -> None:
    jobs = dict([pull_job(OLD, "2026-11-01T00:00:00Z"), pull_job(NEW, "2026-11-02T00:00:00Z")])
    observed = seen(deployment=deployment_of(NEW), jobs=jobs, configmaps=manifests(OLD, NEW))
    result = plan(REF, spec({"keepRevisions": 0}), served_status(OLD), trusted(NEW), observed, SETTINGS, NOW)
    assert set(result.delete) == {
        ("Job", children.pull_job_name(REF, OLD.manifest_digest)),
        ("ConfigMap", manifests(OLD)[0]),
    }
    assert result.status["keptRevisions"] is None


def test_a_settled_model_with_nothing_to_remove_makes_no_prune_job() -> None:
    jobs = dict([pull_job(OLD, "2026-11-01T00:00:00Z"), pull_job(NEW, "2026-11-02T00:00:00Z")])
    observed = seen(deployment=deployment_of(NEW), jobs=jobs, configmaps=manifests(OLD, NEW))
    result = plan(REF, spec(), served_status(NEW), trusted(NEW), observed, SETTINGS, NOW)
    assert result.delete == ()
    assert not [o for o in result.apply if o["metadata"]["name"].startswith("granite-prune-")]


def test_the_layout_before_slots_is_replaced_without_downtime_then_removed() -> None:
    """An operator upgrade: the old Job wrote into the top of the volume and the server reads it there."""
    legacy_job = {
        "metadata": {
            "name": f"granite-fetch-{NEW.manifest_digest[7:17]}",
            "labels": {children.COMPONENT_LABEL: "fetch"},
            "annotations": {children.DIGEST_ANNOTATION: NEW.manifest_digest},
            "creationTimestamp": "2026-10-01T00:00:00Z",
        },
        **completed(),
    }
    # the server reads the top of the claim: same digest, no slot in its template (and no subPath)
    legacy_deployment = deployment_of(NEW)
    template = legacy_deployment["spec"]["template"]
    del template["metadata"]["annotations"][children.LAYOUT_ANNOTATION]
    for container in template["spec"]["containers"] + template["spec"]["initContainers"]:
        for mount in container["volumeMounts"]:
            mount.pop("subPath", None)
    jobs = {legacy_job["metadata"]["name"]: legacy_job}
    legacy_records = seen(deployment=legacy_deployment, jobs=jobs, configmaps=("granite-manifest",))
    pulling = plan(REF, spec(), served_status(NEW), trusted(NEW), legacy_records, SETTINGS, NOW)
    # the same content is pulled again into its slot: the legacy Job is not taken for a slot's record
    assert ("Job", children.pull_job_name(REF, NEW.manifest_digest)) in names(pulling.apply)
    assert ("Deployment", "granite") not in names(pulling.apply)  # the old server keeps serving meanwhile
    assert pulling.delete == () and pulling.status["phase"] == "Updating"
    jobs.update([pull_job(NEW, "2026-11-02T00:00:00Z")])
    maps = ("granite-manifest", *manifests(NEW))
    # verified: the template moves to the slot; with the same digest it is still not the planned template, so
    # nothing of the old layout goes while its pods run
    rolling = plan(
        REF,
        spec(),
        served_status(NEW),
        trusted(NEW),
        seen(deployment=legacy_deployment, jobs=jobs, configmaps=maps, recorded=manifests(NEW)),
        SETTINGS,
        NOW,
    )
    rolled = next(o for o in rolling.apply if o["kind"] == "Deployment")
    assert rolled["spec"]["template"]["metadata"]["annotations"][children.LAYOUT_ANNOTATION] == (
        "granite-weights/" + children.slot_dir(NEW.manifest_digest)
    )
    assert rolling.delete == () and not any(o["metadata"]["name"].startswith("granite-prune-") for o in rolling.apply)
    settled = plan(
        REF,
        spec(),
        served_status(NEW),
        trusted(NEW),
        seen(deployment=deployment_of(NEW), jobs=jobs, configmaps=maps, recorded=manifests(NEW)),
        SETTINGS,
        NOW,
    )
    assert set(settled.delete) == {("Job", legacy_job["metadata"]["name"]), ("ConfigMap", "granite-manifest")}
    assert any(o["metadata"]["name"].startswith("granite-prune-") for o in settled.apply)
    # the old record keeps the only copy of the recorded evidence until the new one carries its own
    unrecorded = plan(
        REF,
        spec(),
        served_status(NEW),
        trusted(NEW),
        seen(deployment=deployment_of(NEW), jobs=jobs, configmaps=maps),
        SETTINGS,
        NOW,
    )
    assert ("ConfigMap", "granite-manifest") not in unrecorded.delete


def test_a_rollback_to_a_kept_revision_rolls_at_once_without_a_download() -> None:
    jobs = dict([pull_job(OLD, "2026-11-01T00:00:00Z"), pull_job(NEW, "2026-11-02T00:00:00Z")])
    observed = seen(deployment=deployment_of(NEW), jobs=jobs, configmaps=manifests(OLD, NEW))
    result = plan(REF, spec(), served_status(NEW), trusted(OLD), observed, SETTINGS, NOW)
    applied = names(result.apply)
    assert ("Job", children.pull_job_name(REF, OLD.manifest_digest)) not in applied  # its slot is verified already
    rolled = next(o for o in result.apply if o["kind"] == "Deployment")
    assert rolled["spec"]["template"]["metadata"]["annotations"][children.DIGEST_ANNOTATION] == OLD.manifest_digest
    assert result.status["incoming"]["manifestDigest"] == OLD.manifest_digest
    assert result.status["served"]["manifestDigest"] == NEW.manifest_digest
    assert result.delete == ()


def test_no_pull_starts_while_a_prune_job_runs() -> None:
    """The prune removes every directory it was not told to keep: one started beside it could lose its files."""
    prune = children.prune_job(REF, [OLD.manifest_digest], SETTINGS, ["x"])
    jobs = dict([pull_job(OLD, "2026-11-01T00:00:00Z")])
    jobs[prune["metadata"]["name"]] = {"metadata": prune["metadata"], "status": {"active": 1}}
    observed = seen(deployment=deployment_of(OLD), jobs=jobs, configmaps=manifests(OLD))
    result = plan(REF, spec(), served_status(OLD), trusted(NEW), observed, SETTINGS, NOW)
    assert ("Job", children.pull_job_name(REF, NEW.manifest_digest)) not in names(result.apply)
    assert prune["metadata"]["name"] in next(
        c["message"] for c in result.status["conditions"] if c["type"] == "WeightsReady"
    )
    jobs[prune["metadata"]["name"]] = {"metadata": prune["metadata"], **completed()}  # control: once it is done
    after = plan(
        REF,
        spec(),
        served_status(OLD),
        trusted(NEW),
        seen(deployment=deployment_of(OLD), jobs=jobs, configmaps=manifests(OLD)),
        SETTINGS,
        NOW,
    )
    assert ("Job", children.pull_job_name(REF, NEW.manifest_digest)) in names(after.apply)


def test_a_pull_job_the_operator_did_not_create_proves_nothing() -> None:
    """A tenant creates a Job with a pull Job's name and labels whose pod writes anything and succeeds: it is
    neither the current pull (replaced by the operator's own) nor a kept revision a rollback may use."""
    forged_name, forged = pull_job(NEW, "2026-11-03T00:00:00Z")
    forged["metadata"]["uid"] = "tenant-made"
    own = dict([pull_job(OLD, "2026-11-01T00:00:00Z")])
    mine = frozenset({str(own[next(iter(own))]["metadata"]["uid"])})
    observed = Observed(deployment=deployment_of(OLD), jobs={**own, forged_name: forged}, made_jobs=mine)
    result = plan(REF, spec(), served_status(OLD), trusted(NEW), observed, SETTINGS, NOW)
    assert ("Job", forged_name) in result.delete  # replaced by the operator's own pull
    assert ("Deployment", "granite") not in names(result.apply)  # nothing rolls onto its slot
    assert result.status["incoming"]["stage"] == "Pulling"
    # as a kept revision: a rollback to it pulls again instead of trusting the slot
    settled = Observed(deployment=deployment_of(OLD), jobs={**own, forged_name: forged}, made_jobs=mine)
    back = plan(REF, spec(), served_status(OLD), trusted(OLD), settled, SETTINGS, NOW)
    assert back.status["keptRevisions"] is None
    assert ("Job", forged_name) in back.delete
    # control: the same Job, made by the operator (its uid in status), is a slot a rollback uses
    recorded = {
        "phase": "Ready",
        "served": {"manifestDigest": OLD.manifest_digest, "revision": OLD.revision, "pullJobUid": next(iter(mine))},
        "keptRevisions": [{"manifestDigest": NEW.manifest_digest, "pullJobUid": "tenant-made"}],
    }
    trusted_back = plan(
        REF,
        spec(),
        recorded,
        trusted(OLD),
        Observed(deployment=deployment_of(OLD), jobs={**own, forged_name: forged}),
        SETTINGS,
        NOW,
    )
    assert [k["manifestDigest"] for k in trusted_back.status["keptRevisions"]] == [NEW.manifest_digest]


def test_a_revoked_served_revision_stops_even_while_its_replacement_is_pulled() -> None:
    jobs = dict([pull_job(OLD, "2026-11-01T00:00:00Z"), pull_job(NEW, "2026-11-02T00:00:00Z", ok=None)])
    observed = seen(deployment=deployment_of(OLD), jobs=jobs, configmaps=manifests(OLD, NEW))
    revoked = TrustResult(True, TRUSTED_CONDS, trusted(NEW).provenance, NEW, served_revoked="key revoked")
    result = plan(REF, spec(), served_status(OLD), revoked, observed, SETTINGS, NOW)
    assert result.scale_to_zero is True
    assert result.status["served"] is None and result.status["phase"] == "Pulling"


# ---------------------------------------------------------------- rollout strategy


@pytest.mark.parametrize(
    ("storage", "serving", "strategy"),
    [
        ({}, {}, {"type": "Recreate"}),  # one node's volume: never a surge pod waiting for it
        ({"accessMode": "ReadWriteOncePod"}, {}, {"type": "Recreate"}),
        (
            {"accessMode": "ReadWriteMany"},
            {},
            {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 1}},
        ),
        (
            {"accessMode": "ReadWriteMany"},
            {"gpus": 0},
            {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
        ),
        (
            {"accessMode": "ReadWriteMany"},
            {"rollout": {"maxSurge": 1, "maxUnavailable": 0}},
            {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
        ),
        (
            {},
            {"rollout": {"maxSurge": "25%"}},
            {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": 0}},
        ),
        (
            {},
            {"rollout": {"maxSurge": 0}},
            {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 0, "maxUnavailable": 1}},
        ),
        ({"accessMode": "ReadWriteMany"}, {"rollout": {"strategy": "Recreate"}}, {"type": "Recreate"}),
    ],
)
def test_the_rollout_strategy_is_settable_with_defaults_that_cannot_deadlock(
    storage: dict[str, Any], serving: dict[str, Any], strategy: dict[str, Any]
) -> None:
    obj = children.deployment(REF, spec(storage, **serving), NEW, SETTINGS)
    assert obj is not None and obj["spec"]["strategy"] == strategy


@pytest.mark.parametrize(
    ("storage", "rollout", "field"),
    [
        ({"accessMode": "ReadWriteOncePod"}, {"maxSurge": 1}, "ReadWriteOncePod"),
        ({}, {"strategy": "Recreate", "maxSurge": 1}, "RollingUpdate only"),
    ],
)
def test_a_rollout_that_could_never_happen_is_refused(
    storage: dict[str, Any], rollout: dict[str, Any], field: str
) -> None:
    with pytest.raises(ValidationError, match=field):
        spec(storage, rollout=rollout)


@pytest.mark.parametrize(
    ("rollout", "field"),
    [
        ({"maxSurge": 0, "maxUnavailable": "0%"}, "both be 0"),
        ({"maxSurge": "1.5"}, "maxSurge '1.5'"),
        ({"maxUnavailable": "-1"}, "maxUnavailable '-1'"),
        ({"maxUnavailable": "101%"}, "more than 100%"),
    ],
)
def test_rollout_values_the_deployment_api_would_refuse_name_the_field(rollout: dict[str, Any], field: str) -> None:
    """Admitted by the schema (an int-or-string), refused when the Deployment is planned: the pass fails with the
    field, and what serves keeps serving (tests/test_revision_rollout.py)."""
    with pytest.raises(children.ChildrenError, match=field):
        children.deployment(REF, spec(rollout=rollout), NEW, SETTINGS)


def test_a_rollout_on_a_one_pod_volume_is_refused_at_apply() -> None:
    body = {
        "apiVersion": "openmodel.io/v1alpha1",
        "kind": "OpenModel",
        "metadata": {"name": "m", "namespace": "ns"},
        "spec": {
            "source": {"uri": "hf://org/granite"},
            "storage": {"accessMode": "ReadWriteOncePod"},
            "serving": {"rollout": {"maxSurge": 1}},
        },
    }
    _, errors = admit(openmodel_crd(), body)
    assert any("ReadWriteOncePod" in str(e) for e in errors)
    body["spec"]["serving"]["rollout"] = {"strategy": "Recreate"}  # control
    assert admit(openmodel_crd(), body)[1] == []


# ---------------------------------------------------------------- storage.mode: PerPod


def per_pod(**serving: Any) -> OpenModelSpec:
    return spec({"mode": "PerPod", "size": "40Gi", "storageClassName": "local-nvme"}, **serving)


def test_per_pod_mode_has_no_claim_and_no_job_each_pod_pulls_into_its_own_volume() -> None:
    token_spec = OpenModelSpec.model_validate(
        {
            "source": {"uri": "hf://org/granite", "tokenSecretRef": {"name": "hf", "key": "token"}},
            "storage": {"mode": "PerPod"},
        }
    )
    objs = children.all_children(REF, token_spec, NEW, SETTINGS)
    assert [o["kind"] for o in objs] == ["ConfigMap", "Deployment", "Service"]
    pod = next(o for o in objs if o["kind"] == "Deployment")["spec"]["template"]["spec"]
    (pull,) = pod["initContainers"]
    command = pull["command"]
    assert command[:2] == ["openmodel", "fetch"] and "--verify-only" not in command
    assert command[command.index("--dest") + 1] == "/models"
    assert command[command.index("--expect-digest") + 1] == NEW.manifest_digest
    assert any(e["name"] == "HF_TOKEN" for e in pull["env"])
    (server,) = pod["containers"]
    assert not any(e["name"] == "HF_TOKEN" for e in server["env"])  # the token never reaches the server
    assert next(m for m in server["volumeMounts"] if m["name"] == "weights") == {
        "name": "weights",
        "mountPath": "/models",
        "readOnly": True,
    }
    volume = next(v for v in pod["volumes"] if v["name"] == "weights")
    assert "persistentVolumeClaim" not in volume
    assert volume["ephemeral"]["volumeClaimTemplate"]["spec"]["accessModes"] == ["ReadWriteOnce"]
    sized = children.deployment(REF, per_pod(), NEW, SETTINGS)
    assert sized is not None
    template = next(v for v in sized["spec"]["template"]["spec"]["volumes"] if v["name"] == "weights")
    claim = template["ephemeral"]["volumeClaimTemplate"]["spec"]
    assert (claim["resources"]["requests"]["storage"], claim["storageClassName"]) == ("40Gi", "local-nvme")
    # replicas spread over nodes: a rolling update needs no shared volume
    assert sized["spec"]["strategy"]["type"] == "RollingUpdate"


def test_per_pod_mode_rolls_at_once_and_is_ready_only_when_the_pods_verified_their_bytes() -> None:
    first = plan(REF, per_pod(), {}, trusted(NEW), seen(), SETTINGS, NOW)
    assert names(first.apply) == [
        ("ConfigMap", manifests(NEW)[0]),
        ("NetworkPolicy", "granite"),
        ("Deployment", "granite"),
        ("Service", "granite"),
    ]
    assert conds(first.status)["WeightsReady"] == ("False", "Pulling")
    assert conds(first.status)["Ready"][0] == "False"
    running = plan(
        REF,
        per_pod(),
        {},
        trusted(NEW),
        seen(deployment=deployment_of(NEW, of=per_pod()), configmaps=manifests(NEW)),
        SETTINGS, NOW,
    )  # fmt: skip
    assert running.status["phase"] == "Ready" and conds(running.status)["WeightsReady"] == ("True", "Verified")
    assert running.status["served"]["manifestDigest"] == NEW.manifest_digest


def test_switching_to_per_pod_removes_the_claim_and_the_pull_records_once_the_pods_run_without_them() -> None:
    jobs = dict([pull_job(OLD, "2026-11-01T00:00:00Z")])
    claim = {"metadata": {"name": "granite-weights"}}
    rolling = seen(deployment=deployment_of(OLD), jobs=jobs, pvc=claim, configmaps=manifests(OLD, NEW))
    during = plan(REF, per_pod(), served_status(OLD), trusted(NEW), rolling, SETTINGS, NOW)
    assert during.delete == () and during.status["phase"] == "Updating"
    settled = seen(deployment=deployment_of(NEW, of=per_pod()), jobs=jobs, pvc=claim, configmaps=manifests(OLD, NEW))
    after = plan(REF, per_pod(), served_status(OLD), trusted(NEW), settled, SETTINGS, NOW)
    assert set(after.delete) == {
        ("Job", children.pull_job_name(REF, OLD.manifest_digest)),
        ("ConfigMap", manifests(OLD)[0]),
        ("PersistentVolumeClaim", "granite-weights"),
    }
    assert not [o for o in after.apply if o["kind"] == "Job"]  # no volume of the model's to prune
    retained = spec({"mode": "PerPod", "retain": True})
    settled = dataclasses.replace(settled, deployment=deployment_of(NEW, of=retained))
    kept = plan(REF, retained, served_status(OLD), trusted(NEW), settled, SETTINGS, NOW)
    assert ("PersistentVolumeClaim", "granite-weights") not in kept.delete  # retain: the claim stays


def test_per_pod_mode_needs_a_serving_pod() -> None:
    with pytest.raises(ValidationError, match="PerPod"):
        spec({"mode": "PerPod"}, runtime="none")
    body = {
        "apiVersion": "openmodel.io/v1alpha1",
        "kind": "OpenModel",
        "metadata": {"name": "m", "namespace": "ns"},
        "spec": {"source": {"uri": "hf://org/granite"}, "storage": {"mode": "PerPod"}, "serving": {"runtime": "none"}},
    }
    _, errors = admit(openmodel_crd(), body)
    assert any("PerPod" in str(e) for e in errors)
    body["spec"]["serving"] = {"runtime": "vllm"}  # control
    assert admit(openmodel_crd(), body)[1] == []


def test_kept_revisions_are_shown_during_an_update_without_the_one_serving() -> None:
    jobs = dict(
        [
            pull_job(OLDEST, "2026-10-01T00:00:00Z"),
            pull_job(OLD, "2026-11-01T00:00:00Z"),
            pull_job(NEW, "2026-11-02T00:00:00Z", ok=None),
        ]
    )
    observed = seen(deployment=deployment_of(OLD), jobs=jobs, configmaps=manifests(OLDEST, OLD, NEW))
    result = plan(REF, spec(), served_status(OLD), trusted(NEW), observed, SETTINGS, NOW)
    assert result.status["served"]["manifestDigest"] == OLD.manifest_digest
    assert [k["manifestDigest"] for k in result.status["keptRevisions"]] == [OLDEST.manifest_digest]
    assert result.delete == ()  # shown, not removed: nothing goes during an update


# ---------------------------------------------------------------- storage.claimName: a shared claim


def test_a_shared_claim_is_used_never_made_and_its_jobs_carry_the_models_reference() -> None:
    shared = spec({"claimName": "model-cache"})
    first = plan(REF, shared, {}, trusted(NEW), seen(), SETTINGS, NOW)
    assert [kind for kind, _ in names(first.apply)] == ["ConfigMap", "NetworkPolicy", "Job"]  # no claim of its own
    job = next(o for o in first.apply if o["kind"] == "Job")
    pod = job["spec"]["template"]["spec"]
    assert next(v for v in pod["volumes"] if v["name"] == "weights")["persistentVolumeClaim"]["claimName"] == (
        "model-cache"
    )
    command = pod["containers"][0]["command"]
    assert command[command.index("--ref") + 1] == REF.uid
    prune = children.prune_job(REF, [NEW.manifest_digest], SETTINGS, ["x"], "model-cache")
    prune_command = prune["spec"]["template"]["spec"]["containers"][0]["command"]
    assert prune_command[prune_command.index("--ref") + 1] == REF.uid  # drops only this model's references
    release = children.release_job(REF, "model-cache", SETTINGS)
    assert "ownerReferences" not in release["metadata"]  # outlives the model
    assert children.NAME_LABEL not in release["metadata"]["labels"]  # not deleted with the model's children
    assert release["spec"]["ttlSecondsAfterFinished"] > 0
    own = plan(REF, spec(), {}, trusted(NEW), seen(), SETTINGS, NOW)  # control: the model's own claim
    assert ("PersistentVolumeClaim", "granite-weights") in names(own.apply)


def test_a_shared_claim_and_per_pod_volumes_exclude_each_other() -> None:
    with pytest.raises(ValidationError, match="claimName"):
        spec({"claimName": "model-cache", "mode": "PerPod"})
    body = {
        "apiVersion": "openmodel.io/v1alpha1",
        "kind": "OpenModel",
        "metadata": {"name": "m", "namespace": "ns"},
        "spec": {"source": {"uri": "hf://org/granite"}, "storage": {"claimName": "model-cache", "mode": "PerPod"}},
    }
    assert any("claimName" in str(e) for e in admit(openmodel_crd(), body)[1])
    body["spec"]["storage"] = {"claimName": "model-cache"}  # control
    assert admit(openmodel_crd(), body)[1] == []


# ---------------------------------------------------------------- the storage changes, the content does not


def test_moving_to_a_shared_claim_pulls_again_and_keeps_the_old_claim_until_the_pods_left_it() -> None:
    """Same content, other volume: the Job that filled the model's own claim says nothing about the shared one."""
    jobs = dict([pull_job(NEW, "2026-11-01T00:00:00Z")])
    claim = {"metadata": {"name": "granite-weights"}}
    shared = spec({"claimName": "model-cache"})
    before = seen(deployment=deployment_of(NEW), jobs=jobs, pvc=claim, configmaps=manifests(NEW))
    result = plan(REF, shared, served_status(NEW), trusted(NEW), before, SETTINGS, NOW)
    old_job = children.pull_job_name(REF, NEW.manifest_digest)
    assert ("Job", old_job) in result.delete  # replaced by a pull into the shared claim
    assert ("Deployment", "granite") not in names(result.apply)  # the pods stay on the old claim meanwhile
    assert ("PersistentVolumeClaim", "granite-weights") not in result.delete
    assert result.status["phase"] == "Updating"
    assert result.status["served"]["manifestDigest"] == NEW.manifest_digest  # what the old pods serve
    # the new pull (into the shared claim) succeeded: the template moves; nothing of the old claim goes yet
    new_job = {
        **pull_job(NEW, "2026-11-02T00:00:00Z")[1],
    }
    new_job["metadata"] = {
        **new_job["metadata"],
        "uid": "uid-shared",
        "annotations": {**new_job["metadata"]["annotations"], children.VOLUME_ANNOTATION: "model-cache"},
    }
    moving = Observed(
        deployment=deployment_of(NEW),
        jobs={old_job: new_job},
        pvc=claim,
        configmaps=manifests(NEW),
        made_jobs=frozenset({"uid-shared"}),
    )
    rolling = plan(REF, shared, served_status(NEW), trusted(NEW), moving, SETTINGS, NOW)
    rolled = next(o for o in rolling.apply if o["kind"] == "Deployment")
    assert rolled["spec"]["template"]["metadata"]["annotations"][children.LAYOUT_ANNOTATION].startswith("model-cache/")
    assert rolling.delete == ()  # the old template (same digest, old claim) is not taken for the new one
    settled = dataclasses.replace(moving, deployment=deployment_of(NEW, of=shared))
    done = plan(REF, shared, served_status(NEW), trusted(NEW), settled, SETTINGS, NOW)
    assert ("PersistentVolumeClaim", "granite-weights") in done.delete  # only once every pod left it


def test_a_claim_the_operator_makes_cannot_be_named_as_the_shared_one() -> None:
    with pytest.raises(ValidationError, match="-weights"):
        spec({"claimName": "other-model-weights"})
    body = {
        "apiVersion": "openmodel.io/v1alpha1",
        "kind": "OpenModel",
        "metadata": {"name": "m", "namespace": "ns"},
        "spec": {"source": {"uri": "hf://org/granite"}, "storage": {"claimName": "m-weights"}},
    }
    assert any("-weights" in str(e) for e in admit(openmodel_crd(), body)[1])
    body["spec"]["storage"] = {"claimName": "weights-cache"}  # control
    assert admit(openmodel_crd(), body)[1] == []


def test_an_outage_or_a_rejection_keeps_the_records_of_the_verified_slots() -> None:
    """Without them a later pass would take the operator's own Jobs for strangers' and pull into served slots."""
    from openmodel_operator.evidence.errors import SourceError
    from openmodel_operator.evidence.records import Reason
    from openmodel_operator.planning.trust_result import from_error

    recorded = {
        "phase": "Ready",
        "served": {"manifestDigest": NEW.manifest_digest, "revision": NEW.revision, "pullJobUid": "uid-new"},
        "keptRevisions": [{"manifestDigest": OLD.manifest_digest, "pullJobUid": "uid-old"}],
    }
    down = from_error(SourceError(Reason.ENDPOINT_UNREACHABLE, "down"), transient=True)
    observed = Observed(deployment=deployment_of(NEW))
    outage = plan(REF, spec(), recorded, down, observed, SETTINGS, NOW)
    assert outage.status["phase"] == "Degraded"
    assert outage.status["served"]["pullJobUid"] == "uid-new"
    assert outage.status["keptRevisions"][0]["pullJobUid"] == "uid-old"
    rejected = TrustResult(False, (), None, None)
    revoked = plan(REF, spec(), recorded, rejected, observed, SETTINGS, NOW)
    assert revoked.scale_to_zero and revoked.status["served"] is None
    assert [k["pullJobUid"] for k in revoked.status["keptRevisions"]] == ["uid-new", "uid-old"]


@pytest.mark.parametrize(
    "storage",
    [{}, {"mode": "PerPod"}, {"claimName": "model-cache", "accessMode": "ReadWriteMany"}],
)
def test_every_new_child_is_valid_for_a_1_28_api_server(storage: dict[str, Any]) -> None:
    """The pull, prune and release Jobs and the Deployment of each storage layout, against the Kubernetes 1.28
    OpenAPI schemas (unknown fields refused) and its name rules."""
    from test_children import check_valid

    of = spec(storage, rollout={"maxSurge": "25%", "maxUnavailable": 0})
    objects = [
        *children.all_children(REF, of, NEW, SETTINGS),
        children.prune_job(REF, [NEW.manifest_digest, OLD.manifest_digest], SETTINGS, ["a"], of.storage.claim_name),
        children.release_job(REF, "model-cache", SETTINGS),
    ]
    for obj in objects:
        check_valid(obj)


def test_a_failed_prune_job_stays_for_inspection_and_a_succeeded_one_goes() -> None:
    jobs = dict([pull_job(OLD, "2026-11-01T00:00:00Z"), pull_job(NEW, "2026-11-02T00:00:00Z")])
    failed = children.prune_job(REF, [OLD.manifest_digest, NEW.manifest_digest], SETTINGS, ["x"])
    done = children.prune_job(REF, [OLD.manifest_digest, NEW.manifest_digest], SETTINGS, ["y"])
    jobs[failed["metadata"]["name"]] = {"metadata": failed["metadata"], **completed(ok=False)}
    jobs[done["metadata"]["name"]] = {"metadata": done["metadata"], **completed()}
    observed = seen(deployment=deployment_of(NEW), jobs=jobs, configmaps=manifests(OLD, NEW))
    result = plan(REF, spec(), served_status(NEW), trusted(NEW), observed, SETTINGS, NOW)
    assert ("Job", done["metadata"]["name"]) in result.delete
    assert ("Job", failed["metadata"]["name"]) not in result.delete
