"""Property 22 under attack: LoRA adapters routing around the base model's trust (review of spec.adapters).

Each hostile case sits next to its legitimate control:
- a positional value in ``serving.args`` joins vLLM's ``--lora-modules`` list (argparse ``nargs='+'``);
- a pull Job the operator made for another content whose name coincides (the first 10 hex of the digest) is
  taken as the adapter's verified slot;
- after a restart, a periodic re-verification that cannot reach a verified adapter's source revokes it and
  restarts every serving pod (Recreate), though the base model keeps serving in the same outage;
- under ``updatePolicy: Manual`` an adapter recorded as refused (or not examined) follows its branch to a newer
  commit;
- after a restart, a policy change goes to the source for an adapter a previous pass held from its record;
- an adapter's endpoint is contacted before the policies' endpoint allow-list is checked (the base model's is
  checked first), and an endpoint edited after the adapter was decided is where its next pull Job goes;
- one adapter waiting for an examination slot ends the whole pass, revocations decided offline included;
- a loaded adapter renamed (its rollout held back) and then revoked keeps old pods serving it;
- a tampered ``openmodel.io/adapters`` pod-template annotation makes every settled pass fail;
- after a restart, an adapter whose content is a kept revision of the model deletes that revision's Job.
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import threading
from pathlib import Path
from typing import Any

from kube_fixtures import kube, run_operator
from kubelet_player import Kubelet
from openmodel_operator.api.openmodel import OpenModelSpec, OpenModelStatus, Provenance
from openmodel_operator.controller.adapter_trust import decide_adapters
from openmodel_operator.controller.memory import ModelMemory
from openmodel_operator.evidence.errors import SourceError, TrustError
from openmodel_operator.evidence.pinned import PinnedManifest
from openmodel_operator.evidence.records import Reason
from openmodel_operator.planning import children, revision_slots
from openmodel_operator.planning.examination_plan import Due
from openmodel_operator.planning.planner import Observed
from openmodel_operator.planning.trust_result import TrustResult
from openmodel_operator.trust.decision import serving_violations
from openmodel_operator.trust.policies import BUILTIN_DEFAULT
from test_adapter_planning import (
    LORA,
    LORA2,
    NOW,
    REFUSED,
    _rolled,
    adapter_job,
    adapter_spec,
    adapter_trusted,
    conds,
    decisions,
    plan,
    serving_base,
    status_serving,
)
from test_adapters import LORA_FILES, adapter_jobs, adapters_of, serve_base
from test_operator import World, operator, world
from test_planner import PROVENANCE, REF, SETTINGS
from test_revision_slots import NEW, trusted

__all__ = ["kube", "operator", "run_operator", "world"]  # the fixtures this module uses

# ---------------------------------------------------------------- vLLM's arguments


def lora_modules(args: list[str]) -> list[str]:
    """What vLLM's argparse makes of ``--lora-modules`` (``nargs='+'``: every value up to the next flag)."""
    parser = argparse.ArgumentParser(allow_abbrev=False)
    parser.add_argument("model_tag", nargs="?")
    parser.add_argument("--served-model-name", nargs="+")
    parser.add_argument("--host")
    parser.add_argument("--port")
    parser.add_argument("--enable-lora", action="store_true")
    parser.add_argument("--lora-modules", nargs="+", default=[])
    parser.add_argument("--max-loras", type=int)
    parser.add_argument("--max-model-len", type=int)
    known, _ = parser.parse_known_args(args)
    return list(known.lora_modules)


def served_args(extra: list[str]) -> list[str]:
    the_spec = OpenModelSpec.model_validate(
        {
            "source": {"uri": "hf://org/granite"},
            "serving": {"args": extra},
            "adapters": [{"name": "sql", "source": {"uri": "hf://org/sql-lora"}}],
        }
    )
    deployment = children.deployment(
        REF, the_spec, NEW, SETTINGS, adapters=[children.ServedAdapter("sql", LORA.manifest_digest)]
    )
    assert deployment is not None
    return list(deployment["spec"]["template"]["spec"]["containers"][0]["args"])


def test_a_positional_in_serving_args_does_not_join_the_verified_lora_modules() -> None:
    hostile = ["evil=/models", "--max-loras", "2"]  # no flag the policy refuses: it admits these args
    assert (
        serving_violations(
            BUILTIN_DEFAULT,
            OpenModelSpec.model_validate({"source": {"uri": "hf://org/granite"}, "serving": {"args": hostile}}).serving,
            None,
        )
        == []
    )
    assert lora_modules(served_args(hostile)) == ["sql=/adapters/sql"]
    # control: ordinary tuning flags leave the verified modules as they are, and --max-loras is the user's
    assert lora_modules(served_args(["--max-model-len", "4096"])) == ["sql=/adapters/sql"]
    args = served_args(["--max-loras", "4"])
    assert lora_modules(args) == ["sql=/adapters/sql"] and args.count("--max-loras") == 1


# ---------------------------------------------------------------- the pull Job that proves the slot


def test_an_operator_job_for_other_content_with_the_same_name_does_not_load_an_adapter() -> None:
    """Job and ConfigMap names keep only 10 hex of the digest (40 bits: a birthday collision is ~2^20 manifests
    the tenant can craft offline). The Job's success proves its own digest's slot, not the adapter's."""
    the_spec = adapter_spec("sql")
    name, body = adapter_job(the_spec, 0, LORA2)  # the operator pulled LORA2 (e.g. this adapter's older content)
    colliding = {**body, "metadata": {**body["metadata"], "name": children.pull_job_name(REF, LORA.manifest_digest)}}
    observed = serving_base(the_spec, {colliding["metadata"]["name"]: colliding})
    result = plan(
        the_spec, status_serving(), trusted(NEW), observed, adapters=decisions(the_spec, adapter_trusted(LORA))
    )
    deployment = next(o for o in result.apply if o["kind"] == "Deployment")
    assert "--lora-modules" not in deployment["spec"]["template"]["spec"]["containers"][0]["args"]
    configmap = children.manifest_configmap_name(REF, LORA.manifest_digest)
    assert not any(o["kind"] == "ConfigMap" and o["metadata"]["name"] == configmap for o in result.apply)
    status, reason, message = conds(result)["AdaptersReady"]
    assert (status, reason) == ("False", "JobFailed") and "another content" in message
    assert not result.status.provenance.adapters[0].pull_job_uid  # type: ignore[index,union-attr]
    # control: the operator's Job for the adapter's own digest loads it
    name, body = adapter_job(the_spec, 0, LORA)
    observed = serving_base(the_spec, {name: body})
    result = plan(
        the_spec, status_serving(), trusted(NEW), observed, adapters=decisions(the_spec, adapter_trusted(LORA))
    )
    deployment = next(o for o in result.apply if o["kind"] == "Deployment")
    assert "--lora-modules" in deployment["spec"]["template"]["spec"]["containers"][0]["args"]


# ---------------------------------------------------------------- decisions after a restart


def _record(verdict: str, **extra: Any) -> dict[str, Any]:
    return {
        **PROVENANCE,
        "name": "sql",
        "source": LORA.source,
        "requestedRevision": "main",
        "resolvedRevision": LORA.revision,
        "manifestDigest": LORA.manifest_digest,
        "verdict": verdict,
        "loaded": verdict == "Trusted",
        **extra,
    }


def _status(record: dict[str, Any]) -> OpenModelStatus:
    provenance = Provenance.model_validate({**PROVENANCE, "adapters": [record]})
    return status_serving().model_copy(update={"provenance": provenance})


class Source:
    """The adapter's source: raises ``error`` when set; records the revisions asked for."""

    def __init__(self, error: TrustError | None = None) -> None:
        self.error = error
        self.asked: list[str] = []
        self.rebuilt: list[str] = []  # adapters decided again from the evidence their ConfigMap recorded

    async def examine(self, own: OpenModelSpec, revision: str) -> Any:
        self.asked.append(revision)
        if self.error is not None:
            raise self.error
        raise AssertionError("not expected to succeed in these tests")


def _decide(
    the_spec: OpenModelSpec, status: OpenModelStatus, due: Due | None, source: Source, memory: ModelMemory
) -> Any:
    def manifest_of(digest: str) -> PinnedManifest | None:
        return LORA if digest == LORA.manifest_digest else None

    async def rebuild(record: Any, own: Any) -> None:
        source.rebuilt.append(record.name)
        return None  # e.g. evidence the ConfigMap no longer holds: then the source is asked

    def redecide(kept: Any, own: Any) -> Any:
        raise AssertionError("nothing is kept after a restart")

    return asyncio.run(
        decide_adapters(the_spec, status, due, memory, REF.uid, manifest_of, source.examine, redecide, rebuild, NOW)
    )


def test_a_source_outage_after_a_restart_does_not_revoke_a_verified_adapter_nor_restart_the_pods() -> None:
    the_spec = adapter_spec("sql")
    status = _status(_record("Trusted"))
    down = Source(SourceError(Reason.ENDPOINT_UNREACHABLE, "connection refused"))
    # the restarted operator's periodic re-verification under unchanged policies: the source is down
    (decision,) = _decide(the_spec, status, Due.PERIODIC, down, ModelMemory())
    assert down.asked  # the source was asked (periodic)
    assert decision.result is not None and decision.result.trusted  # ... its outage alone revokes nothing
    name, body = adapter_job(the_spec, 0, LORA)
    loading = children.deployment(
        REF, the_spec, NEW, SETTINGS, adapters=[children.ServedAdapter("sql", LORA.manifest_digest)]
    )
    assert loading is not None
    observed = serving_base(the_spec, {name: body}, deployment=_rolled(loading))
    result = plan(the_spec, status, trusted(NEW), observed, adapters=[decision])
    deployment = next(o for o in result.apply if o["kind"] == "Deployment")
    assert "--lora-modules" in deployment["spec"]["template"]["spec"]["containers"][0]["args"]
    assert result.status.phase == "Ready"
    assert conds(result)["AdaptersReady"][0] == "True"
    # control: after a policy change nothing recorded can be decided offline here, and the source is down:
    # the adapter is not loaded (fail closed)
    (decision,) = _decide(the_spec, status, Due.POLICIES_CHANGED, down, ModelMemory())
    assert decision.result is not None and not decision.result.trusted
    # control: an adapter recorded as refused stays refused in the outage
    (decision,) = _decide(
        the_spec, _status(_record("Untrusted", reason="UntrustedSigner")), Due.PERIODIC, down, ModelMemory()
    )
    assert decision.result is not None and not decision.result.trusted


def test_manual_keeps_the_recorded_commit_of_an_adapter_whatever_its_last_verdict() -> None:
    the_spec = adapter_spec("sql")
    down = Source(SourceError(Reason.ENDPOINT_UNREACHABLE, "connection refused"))
    # refused when last decided (e.g. a key not yet trusted); the policy changes after a restart: the recorded
    # commit is examined again, not whatever the branch points to now
    status = _status(_record("Untrusted", reason="UntrustedSigner"))
    _decide(the_spec, status, Due.POLICIES_CHANGED, down, ModelMemory())
    assert down.asked == [LORA.revision]
    # control: under Auto the branch is followed
    auto = the_spec.model_copy(update={"update_policy": "Auto"})
    down.asked.clear()
    _decide(auto, status, Due.POLICIES_CHANGED, down, ModelMemory())
    assert down.asked == ["main"]
    # control: a Trusted record under Manual examines its commit (as before)
    down.asked.clear()
    _decide(the_spec, _status(_record("Trusted")), Due.POLICIES_CHANGED, down, ModelMemory())
    assert down.asked == [LORA.revision]


def test_an_adapter_that_could_not_be_examined_keeps_its_pinned_commit_on_status() -> None:
    """An examination that fails records the adapter as Unknown; the commit it was pinned to must survive, or the
    next examination under Manual follows the branch."""
    the_spec = adapter_spec("sql")
    status = _status(_record("Trusted"))
    down = Source(SourceError(Reason.REPOSITORY_NOT_FOUND, "gone"))
    decided = _decide(the_spec, status, Due.POLICIES_CHANGED, down, ModelMemory())
    result = plan(the_spec, status, trusted(NEW), serving_base(the_spec, {}), adapters=decided)
    (record,) = result.status.provenance.adapters  # type: ignore[union-attr]
    assert record.verdict == "Unknown"
    assert record.resolved_revision == LORA.revision
    down.asked.clear()
    _decide(the_spec, result.status, Due.PERIODIC, down, ModelMemory())
    assert down.asked == [LORA.revision]


def test_a_policy_change_after_a_restart_decides_an_adapter_held_from_its_record_offline() -> None:
    """After a restart the first pass holds the adapter's recorded decision (nothing kept to decide again from);
    a policy change later must still be decided from the evidence its ConfigMap recorded, not from the source."""
    the_spec = adapter_spec("sql")
    status = _status(_record("Trusted"))
    down = Source(SourceError(Reason.REPOSITORY_NOT_FOUND, "the publisher deleted the repository"))
    memory = ModelMemory()
    (decision,) = _decide(the_spec, status, None, down, memory)  # the first pass after the restart: as recorded
    assert decision.result is not None and decision.result.trusted and not down.asked
    _decide(the_spec, status, Due.POLICIES_CHANGED, down, memory)
    assert down.rebuilt == ["sql"]
    # control: a restart straight into a policy change did so already
    fresh = Source(down.error)
    _decide(the_spec, status, Due.POLICIES_CHANGED, fresh, ModelMemory())
    assert fresh.rebuilt == ["sql"]


# ---------------------------------------------------------------- what the operator contacts for an adapter


class Listener:
    """A TCP port that counts who connects (an internal service a tenant names as an adapter's endpoint)."""

    def __init__(self) -> None:
        self.server = socket.socket()
        self.server.bind(("127.0.0.1", 0))
        self.server.listen(8)
        self.server.settimeout(0.2)
        self.connections = 0
        self.running = True
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.getsockname()[1]}"

    def _serve(self) -> None:
        while self.running:
            try:
                conn, _ = self.server.accept()
            except OSError:
                continue
            self.connections += 1
            conn.close()

    def close(self) -> None:
        self.running = False
        self.thread.join()
        self.server.close()


async def test_an_adapter_on_an_endpoint_no_policy_allows_is_refused_before_the_operator_contacts_it(
    world: World, operator: Any, tmp_path: Path
) -> None:
    """The base model's endpoint is checked against the policies before any request (pre_network_violations); an
    adapter's must be too, or a tenant makes the operator (and its pull Jobs) call any host it names."""
    kubelet = Kubelet(world.kube, tmp_path / "node")
    internal = Listener()
    try:
        world.publish()
        world.publish("org/sql-lora", LORA_FILES)
        world.policy()  # allows the Hub stand-in's endpoint only
        lora = {"uri": "hf://org/sql-lora", "endpoint": world.hub.url}
        hidden = {"uri": "hf://org/sql-lora", "endpoint": internal.url}
        world.model(adapters=[{"name": "sql", "source": lora}, {"name": "probe", "source": hidden}])
        async with operator():
            await serve_base(world, kubelet)
            await world.until(lambda: "probe" in adapters_of(world) and "sql" in adapter_jobs(world), timeout=10)
            probe = adapters_of(world)["probe"]
            assert (probe["verdict"], probe["reason"]) == ("Untrusted", "EndpointNotAllowed")
            assert "probe" not in adapter_jobs(world)
            assert internal.connections == 0  # nobody asked it anything
            # control: the allowed endpoint's adapter was examined and is being pulled
            assert adapters_of(world)["sql"]["verdict"] == "Trusted"
    finally:
        internal.close()


async def test_an_adapter_waiting_for_an_examination_slot_does_not_end_the_pass() -> None:
    """Every examination slot taken (other tenants' slow mirrors): a pass that needs one ends (ExaminationsBusy)
    so its worker is not held. An adapter's examination must not end the whole pass: what the pass decided
    offline (the base model's revocation of its served content, other adapters' revocations) is carried out, the
    adapter without a slot is not loaded on a decision it could not make (fail closed), and the model is woken
    again when a slot frees."""
    from openmodel_operator.controller.reconciler import ChildInventory, Reconciler
    from openmodel_operator.controller.settings import OperatorSettings

    class NoConfigMaps:
        async def get(self, kind: str, namespace: str, name: str) -> None:
            return None

    examined: list[str] = []

    def examiner(request: Any, policies: Any) -> Any:
        examined.append(request.uri)
        raise SourceError(Reason.ENDPOINT_UNREACHABLE, "down")

    reconciler = Reconciler(
        NoConfigMaps(),  # type: ignore[arg-type]
        OperatorSettings(max_concurrent_verifications=1),
        lambda *_: None,
        examiner=examiner,
    )
    reconciler.on_slot_free = lambda: None
    the_spec = adapter_spec("sql")
    status = _status(_record("Trusted"))
    memory = ModelMemory()
    async with reconciler._verifications:  # another model's examination holds the only slot
        decided, busy = await reconciler._adapters(
            REF, the_spec, status, trusted(NEW), Due.POLICIES_CHANGED, memory, [], ChildInventory(), {}
        )
    assert busy and examined == []
    (decision,) = decided
    assert decision.result is not None and not decision.result.trusted  # not decided: not loaded
    assert "sql" not in memory.adapters  # asked again as soon as a slot frees, not after the retry delay
    # control: with a free slot the adapter is examined, and nothing is deferred
    decided, busy = await reconciler._adapters(
        REF, the_spec, status, trusted(NEW), Due.POLICIES_CHANGED, ModelMemory(), [], ChildInventory(), {}
    )
    assert not busy and examined == ["hf://org/sql-lora"]


def test_a_revoked_adapter_the_pods_load_under_its_old_name_is_removed_with_a_recreate() -> None:
    """The tenant renames a loaded adapter (sql -> sql2, the same content) and keeps the new pods from becoming
    ready, so a rolling update leaves the old pods serving it; the content is then revoked. The pods load it under
    the old name: the refusal of the renamed adapter must still stop them (Recreate)."""
    renamed = adapter_spec("sql2")
    renamed = renamed.model_copy(
        update={
            "adapters": [
                a.model_copy(update={"source": a.source.model_copy(update={"uri": LORA.source})})
                for a in renamed.adapters or []
            ]
        }
    )
    revoked = TrustResult(False, REFUSED.conditions, adapter_trusted(LORA).provenance, LORA)
    loading = children.deployment(
        REF, renamed, NEW, SETTINGS, adapters=[children.ServedAdapter("sql", LORA.manifest_digest)]
    )
    assert loading is not None
    rwx = renamed.model_copy(update={"storage": renamed.storage.model_copy(update={"access_mode": "ReadWriteMany"})})
    observed = serving_base(rwx, {}, deployment=_rolled(loading))
    result = plan(rwx, status_serving(), trusted(NEW), observed, adapters=decisions(rwx, revoked))
    deployment = next(o for o in result.apply if o["kind"] == "Deployment")
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}
    # control: the renamed adapter still trusted: an ordinary rolling update
    result = plan(rwx, status_serving(), trusted(NEW), observed, adapters=decisions(rwx, adapter_trusted(LORA)))
    deployment = next(o for o in result.apply if o["kind"] == "Deployment")
    assert deployment["spec"]["strategy"]["type"] == "RollingUpdate"


def test_a_tampered_adapters_annotation_on_the_pod_template_does_not_stop_the_operator() -> None:
    """``openmodel.io/adapters`` on the live pod template is read back (what the pods load, which slots to keep);
    the tenant can edit it. A value that is not ``name=sha256:<hex>`` made every settled pass fail (the prune
    names slots by it), so the operator stopped reconciling the model: no drift repaired, no status written."""
    the_spec = adapter_spec("sql")
    name, body = adapter_job(the_spec, 0, LORA)
    loading = children.deployment(
        REF, the_spec, NEW, SETTINGS, adapters=[children.ServedAdapter("sql", LORA.manifest_digest)]
    )
    assert loading is not None
    annotations = loading["spec"]["template"]["metadata"]["annotations"]
    annotations[children.ADAPTERS_ANNOTATION] += " x=garbage ../up=sha256:../../etc"
    observed = serving_base(the_spec, {name: body}, deployment=_rolled(loading))
    result = plan(
        the_spec, status_serving(), trusted(NEW), observed, adapters=decisions(the_spec, adapter_trusted(LORA))
    )
    deployment = next(o for o in result.apply if o["kind"] == "Deployment")
    assert deployment["spec"]["template"]["metadata"]["annotations"][children.ADAPTERS_ANNOTATION] == (
        f"sql={LORA.manifest_digest}"
    )
    assert children.loaded_adapters(_rolled(loading)) == {"sql": LORA.manifest_digest}  # control: what is real


def test_an_adapter_whose_content_is_a_kept_revision_of_the_base_does_not_delete_its_pull_job() -> None:
    """The adapter's content is a revision of the base model kept for a rollback (same digest: same Job name).
    After a restart the Job's uid is on status as the kept revision's, not as the adapter's: it is the operator's
    own Job for that very content, so it proves the adapter's slot, and must not be deleted as a stranger's."""
    the_spec = adapter_spec("sql")
    kept_name, kept_body = adapter_job(the_spec, 0, LORA)
    kept_body = {
        **kept_body,
        "metadata": {
            **kept_body["metadata"],
            "annotations": {
                k: v for k, v in kept_body["metadata"]["annotations"].items() if k != children.ADAPTER_ANNOTATION
            },
        },
    }
    observed = serving_base(the_spec, {kept_name: kept_body})
    restarted = Observed(**{**observed.__dict__, "made_jobs": frozenset()})  # this process made nothing
    kept = revision_slots.content_record(LORA.manifest_digest, LORA.revision, None, kept_body["metadata"]["uid"])
    base_uid = observed.jobs[children.pull_job_name(REF, NEW.manifest_digest)]["metadata"]["uid"]
    status = OpenModelStatus(
        phase="Ready",
        served=revision_slots.content_record(NEW.manifest_digest, NEW.revision, None, base_uid),
        kept_revisions=[kept],
    )
    result = plan(the_spec, status, trusted(NEW), restarted, adapters=decisions(the_spec, adapter_trusted(LORA)))
    assert ("Job", kept_name) not in result.delete
    deployment = next(o for o in result.apply if o["kind"] == "Deployment")
    assert "--lora-modules" in deployment["spec"]["template"]["spec"]["containers"][0]["args"]
    # control: a Job of that name nobody recorded is still a stranger's
    result = plan(
        the_spec,
        status.model_copy(update={"kept_revisions": None}),
        trusted(NEW),
        restarted,
        adapters=decisions(the_spec, adapter_trusted(LORA)),
    )
    assert ("Job", kept_name) in result.delete
