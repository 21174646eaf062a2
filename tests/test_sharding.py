"""Scaling out: the cluster's namespaces split across operator shards (docs/install.md, "Scaling out").

Two shards run against one emulator, each with its own namespace set (a glob and an exact name), beside a
policy-status writer (``--policy-status only``); each operator talks to the emulator through its own port,
so every request the emulator served is attributed to exactly one operator by its Host header. The shards run
standalone: two operators sharing a peering deadlocked on kmock (dependency notes), and shards with disjoint
namespace sets have nothing to share (a namespaced operator's peering objects live in its own namespaces).
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import functools
import pathlib
from collections.abc import AsyncIterator, Iterable
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

import kmock
import kopf
import pytest

from hubstub import HubStub
from kube_emulator import KubeEmulator
from kube_fixtures import EMULATOR_LOGIN_ID, operator_running
from openmodel_operator.controller import handlers
from openmodel_operator.controller.kube import Kube, client_for
from openmodel_operator.controller.policy_status import PolicyStatusWriter
from openmodel_operator.controller.policy_status_only import build_policy_status_registry
from openmodel_operator.controller.settings import OperatorSettings
from signing_fixtures import new_key
from test_install_manifests import (
    CLUSTER_PERMS,
    MANIFESTS,
    NAMESPACED_PERMS,
    POLICY_REF_PERMS,
    Obj,
    Perm,
    assert_least_privilege,
    assert_operator_pod,
    by_kind,
    effective_permissions,
    kustomize,
    metrics_services,
    one,
    operator_container,
    validate_objects,
)
from test_operator import World, operator_settings_for
from test_rbac_derived import compare, kube_py_calls, request_verb

pytest_plugins = ["kube_fixtures"]

WRITES = {"create", "update", "patch", "delete", "deletecollection"}
SHARD_A = ("team-a-*",)  # a glob: namespaces created later join the shard
SHARD_B = ("team-b",)  # an exact name
CONTROL = "unsharded"  # matched by no shard: nothing acts on its models
OPERATOR_NS = "openmodel-system"


@dataclasses.dataclass
class Running:
    name: str
    host: str  # host:port of its own entry point into the emulator
    namespaces: tuple[str, ...]  # Kopf patterns; () is cluster-wide


@pytest.fixture
def world(kube: KubeEmulator, hub: HubStub, tmp_path: pathlib.Path) -> World:
    return World(kube, hub, new_key(), tmp_path)


def settings_for(world: World, namespaces: Iterable[str] = (), policy_status: str = "on") -> OperatorSettings:
    # decisions are signed with the operator's key, as every shipped install sets it (docs/provenance.md)
    key = f"{OPERATOR_NS}/openmodel-attestation-key"
    return operator_settings_for(
        world, namespaces=tuple(namespaces), policy_status=policy_status, attestation_key_secret=key
    )


def shard_registry(settings: OperatorSettings, url: str) -> kopf.OperatorRegistry:
    """The operator's registry for one shard.

    Until handlers.py passes ``enabled=settings.policy_status == "on"`` to its PolicyStatusWriter (the wiring
    line of this branch's report), a shard's ``policy_status="off"`` is applied here, exactly as that line
    would. With the line in place this substitution changes nothing (the explicit keyword wins).
    """
    writer = functools.partial(PolicyStatusWriter, enabled=settings.policy_status == "on")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(handlers, "PolicyStatusWriter", writer)
        return handlers.build_registry(settings, lambda: Kube(client_for(url)))


def login_to(registry: kopf.OperatorRegistry, url: str) -> None:
    """Kopf's own requests go through the same entry point as the operator's (the fixture's login is skipped)."""

    @kopf.on.login(id=EMULATOR_LOGIN_ID, registry=registry)
    def login(**_: Any) -> kopf.ConnectionInfo:
        return kopf.ConnectionInfo(server=url, insecure=True, default_namespace="default")


@asynccontextmanager
async def entry_point(kube: KubeEmulator) -> AsyncIterator[tuple[str, str]]:
    """A second HTTP server in front of the same emulator: (its URL, its Host header)."""
    async with kmock.Server(kube) as server:
        yield str(server.url).rstrip("/"), f"{server.host}:{server.port}"


def scanning_on(settings: kopf.OperatorSettings) -> None:
    settings.scanning.disabled = False


def model(world: World, namespace: str, name: str = "m") -> None:
    world.kube.create_object(
        {
            "apiVersion": "openmodel.io/v1alpha1",
            "kind": "OpenModel",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"source": {"uri": "hf://org/model", "endpoint": world.hub.url}},
        }
    )


def trusted(world: World, namespace: str, name: str = "m") -> bool:
    status = (world.kube.get("openmodels", namespace, name) or {}).get("status") or {}
    conditions = {c["type"]: c["status"] for c in status.get("conditions") or []}
    return status.get("phase") == "Pulling" and conditions.get("Trusted") == "True"


def describe(world: World) -> str:
    """Phase and conditions of every model, for the message of a failed wait."""
    lines = []
    for obj in world.kube.list("openmodels"):
        status = obj.get("status") or {}
        conds = ", ".join(f"{c['type']}={c['status']}/{c.get('reason')}" for c in status.get("conditions") or [])
        lines.append(f"{obj['metadata']['namespace']}/{obj['metadata']['name']}: {status.get('phase')} [{conds}]")
    return "; ".join(lines) + f"; governedModels {governed(world)}"


def governed(world: World, policy: str = "org") -> Any:
    return ((world.kube.get("modeltrustpolicies", None, policy) or {}).get("status") or {}).get("governedModels")


def requests_by_operator(kube: KubeEmulator, operators: list[Running]) -> dict[str, list[kmock.Request]]:
    """Every request the emulator served, by the operator whose entry point it came through."""
    by_host = {op.host: op.name for op in operators}
    result: dict[str, list[kmock.Request]] = collections.defaultdict(list)
    for request in list(kube._requests):
        result[by_host.get(request.headers.get("Host", ""), "someone else")].append(request)
    return result


def verb(request: kmock.Request) -> str:
    method = str(getattr(request.method, "value", request.method)).upper()
    if method == "GET":
        return "watch" if request.params.get("watch") in ("true", "1") else "get/list"
    return {"POST": "create", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}.get(method, method.lower())


def plural(request: kmock.Request) -> str:
    resource = request.resource
    return str(getattr(resource, "plural", None) or "") if resource is not None else ""


def policy_with_key_in_operator_namespace(world: World) -> None:
    """Policy ``org``, no namespaceSelector (it governs every namespace), its key in a ConfigMap of the
    operator's namespace: every shard reads that one ConfigMap (the policy-refs grant)."""
    world.kube.create_namespace(OPERATOR_NS)
    world.policy_with_key_in_configmap(OPERATOR_NS)


async def run_shards(world: World) -> dict[str, list[kmock.Request]]:
    """Shards a (team-a-*) and b (team-b) and the policy-status writer until every model of a shard is
    Trusted and counted, a namespace created later included; every request served, by operator."""
    kube = world.kube
    for namespace in ("team-a-1", "team-a-2", "team-b", CONTROL):
        kube.create_namespace(namespace)
    world.publish()
    policy_with_key_in_operator_namespace(world)
    for namespace in ("team-a-1", "team-a-2", "team-b", CONTROL):
        model(world, namespace)

    operators: list[Running] = []
    async with AsyncExitStack() as stack:
        flags: list[asyncio.Event] = []
        for name, namespaces, mode in (("a", SHARD_A, "off"), ("b", SHARD_B, "off"), ("writer", (), "only")):
            url, host = await stack.enter_async_context(entry_point(kube))
            settings = settings_for(world, namespaces, mode)
            if mode == "only":
                registry = build_policy_status_registry(settings, functools.partial(Kube, client_for(url)))
            else:
                registry = shard_registry(settings, url)
            login_to(registry, url)
            # Kopf resolves globs by watching Namespaces, part of its scanning (on in production, off in tests)
            running = operator_running(kube, registry, namespaces=namespaces, startup=scanning_on)
            flags.append((await stack.enter_async_context(running)).stop_flag)
            operators.append(Running(name, host, namespaces))

        ours = [("team-a-1", "m"), ("team-a-2", "m"), ("team-b", "m")]
        await kube.wait_for(lambda: all(trusted(world, ns, n) for ns, n in ours), 20, lambda: describe(world))
        # the writer counts the models of every namespace the policy selects, the unsharded one included
        await kube.wait_for(lambda: governed(world) == 4, 10, lambda: describe(world))

        # a namespace created later that matches the glob joins shard a (Kopf watches the namespaces)
        kube.create_namespace("team-a-3")
        model(world, "team-a-3")
        await kube.wait_for(lambda: trusted(world, "team-a-3"), 20, lambda: describe(world))
        await kube.wait_for(lambda: governed(world) == 5, 10, lambda: describe(world))
        await asyncio.sleep(1.0)  # two more resync passes of every shard: the control model would have moved
        for flag in flags:  # all stop at once (each takes seconds), then the stack waits for each
            flag.set()
    return requests_by_operator(kube, operators)


OWNER = {"team-a-1": "a", "team-a-2": "a", "team-a-3": "a", "team-b": "b"}


async def test_two_shards_split_the_namespaces_and_one_writer_counts_every_model(world: World) -> None:
    kube = world.kube
    requests = await run_shards(world)
    assert set(requests) <= {"a", "b", "writer"}, "a request came from none of the three operators"
    for op in ("a", "b"):
        mine = {ns for ns, o in OWNER.items() if o == op}
        touched = {r.namespace for r in requests[op] if r.namespace}
        # every namespaced request of a shard (reads, watches, writes) stays in its own namespaces, but for the
        # one ConfigMap the policy names and the attestation key Secret (read by name; made by the first shard)
        assert touched == mine | {OPERATOR_NS}, (op, touched)
        outside = {(verb(r), plural(r), r.name) for r in requests[op] if r.namespace == OPERATOR_NS}
        key = ("get/list", "secrets", "openmodel-attestation-key")
        assert outside - {("create", "secrets", None)} == {("get/list", "configmaps", "release-keys"), key}, outside
        # it watched OpenModels namespace by namespace, never cluster-wide
        watched = {r.namespace for r in requests[op] if plural(r) == "openmodels" and verb(r) == "watch"}
        assert watched == mine, (op, watched)
        # and never wrote a policy's status: the writer does
        assert not [r for r in requests[op] if plural(r) == "modeltrustpolicies" and verb(r) in WRITES]
    # one attestation key for all shards: both may try to make it at start; the one refused (409) reads the other's
    assert any(verb(r) == "create" and plural(r) == "secrets" for op in ("a", "b") for r in requests[op])
    assert kube.get("secrets", OPERATOR_NS, "openmodel-attestation-key") is not None

    # each model's children and status were written by exactly one operator: the shard that owns its namespace
    writers: dict[str, set[str]] = collections.defaultdict(set)
    for op, reqs in requests.items():
        for r in reqs:
            if r.namespace and r.namespace != OPERATOR_NS and verb(r) in WRITES:  # (the attestation key: above)
                writers[r.namespace].add(op)
    assert dict(writers) == {ns: {o} for ns, o in OWNER.items()}
    for namespace, op in OWNER.items():
        assert kube.list("jobs", namespace) and kube.list("persistentvolumeclaims", namespace), namespace
        status_writes = [r for r in requests[op] if r.namespace == namespace and r.subresource == "status"]
        assert status_writes, f"shard {op} wrote no status in {namespace}"

    # the writer wrote policy status and nothing else (no finalizer, no model, no child)
    writes = {(plural(r), r.subresource) for r in requests["writer"] if verb(r) in WRITES}
    assert writes == {("modeltrustpolicies", "status")}, writes
    assert "finalizers" not in (kube.get("modeltrustpolicies", None, "org") or {}).get("metadata", {})
    assert ("openmodels", None) in {(plural(r), r.namespace) for r in requests["writer"] if verb(r) == "watch"}

    # the control model, in a namespace no shard matches, was left alone: no status, no children, no request
    control = kube.get("openmodels", CONTROL, "m") or {}
    assert not control.get("status") and not control["metadata"].get("finalizers")
    assert kube.list("jobs", CONTROL) == [] and kube.list("persistentvolumeclaims", CONTROL) == []
    assert not [r for op in ("a", "b") for r in requests[op] if r.namespace == CONTROL]


async def test_a_shard_built_by_build_registry_with_policy_status_off_writes_no_policy_status(
    world: World, run_operator: Any
) -> None:
    world.kube.create_namespace("team-b")
    world.publish()
    world.policy()
    model(world, "team-b")
    settings = settings_for(world, SHARD_B, "off")
    registry = handlers.build_registry(settings, lambda: Kube(client_for(world.kube.base_url)))
    async with run_operator(registry, namespaces=SHARD_B):
        await world.kube.wait_for(lambda: trusted(world, "team-b"), 20, lambda: describe(world))
        await asyncio.sleep(4 * settings.resync_interval)  # the status loop's interval: several passes
    assert governed(world) is None, "a shard with policy status off wrote a policy's status"


async def test_a_disabled_writer_returns_at_once_and_writes_nothing() -> None:
    sent: list[str] = []

    async def patch(name: str, status: Any) -> bool:
        sent.append(name)
        return True

    writer = PolicyStatusWriter(0.1, enabled=False)
    writer.policy_changed()
    await asyncio.wait_for(writer.run(lambda: [], lambda: [], lambda _: 0, patch), timeout=1)
    assert sent == []
    assert PolicyStatusWriter(0.1).enabled  # the default: a single operator writes


def test_policy_status_comes_from_env_and_the_flag_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    from openmodel_operator.cli import build_parser
    from openmodel_operator.commands.run import settings_from

    def settings(*argv: str) -> OperatorSettings:
        return settings_from(build_parser().parse_args(["run", *argv]))

    monkeypatch.delenv("OPENMODEL_POLICY_STATUS", raising=False)
    monkeypatch.delenv("OPENMODEL_NAMESPACES", raising=False)
    assert settings().policy_status == "on"
    monkeypatch.setenv("OPENMODEL_POLICY_STATUS", "false")  # booleans read as on/off
    assert settings().policy_status == "off"
    assert settings("--policy-status", "only").policy_status == "only"
    monkeypatch.setenv("OPENMODEL_POLICY_STATUS", "sometimes")
    with pytest.raises(ValueError, match="not one of on, off, only"):
        settings()
    monkeypatch.setenv("OPENMODEL_POLICY_STATUS", "off")
    # the writer counts every namespace: it refuses a namespace set
    with pytest.raises(ValueError, match="cannot watch only some namespaces"):
        settings("--policy-status", "only", "-n", "team-b")
    with pytest.raises(SystemExit):
        settings("--policy-status", "sometimes")


def test_a_catch_all_shard_takes_every_namespace_the_others_do_not() -> None:
    """Kopf's own namespace matching (what `--namespace PATTERN` means): with a last shard of negations every
    namespace has exactly one shard; without it, a namespace nobody named has none."""
    from kopf._cogs.structs.references import match_namespace  # the matcher Kopf applies to --namespace

    def shards_of(namespace: str, shards: dict[str, list[str]]) -> list[str]:
        return [shard for shard, patterns in shards.items() if any(match_namespace(namespace, p) for p in patterns)]

    shards = {"a": ["team-a-*"], "b": ["team-b"]}
    names = ["team-a-1", "team-a-xyz", "team-a", "team-b", "team-bb", "default", CONTROL]
    assert {n: shards_of(n, shards) for n in names} == {
        "team-a-1": ["a"],
        "team-a-xyz": ["a"],
        "team-a": [],  # the glob needs the dash
        "team-b": ["b"],
        "team-bb": [],
        "default": [],
        CONTROL: [],
    }
    shards["rest"] = ["!team-a-*,!team-b"]  # one pattern: every namespace but those
    assert all(len(shards_of(n, shards)) == 1 for n in names), {n: shards_of(n, shards) for n in names}


# ---------------------------------------------------------------- the installs of a sharded cluster

STATUS_PERM: Perm = ("openmodel.io", "modeltrustpolicies/status", "patch")
# neither a shard nor the writer serves the admission webhooks (the cluster-wide operator does): no grant on them
WEBHOOK_PERM = ("admissionregistration.k8s.io", "validatingwebhookconfigurations[openmodel.io]", "patch")
SHARD_CLUSTER_PERMS = CLUSTER_PERMS - {STATUS_PERM, WEBHOOK_PERM}  # reads only: never a policy's status
WRITER_PERMS = (CLUSTER_PERMS - {WEBHOOK_PERM}) | {
    ("openmodel.io", "openmodels", "list"),
    ("openmodel.io", "openmodels", "watch"),
}


def _chart(values: dict[str, Any], release: str) -> list[Obj]:
    helm = pytest.importorskip("helm_python", reason="helm-python-sdk (Helm's Go SDK for Python) is not installed")
    from test_install_helm import CHART, render

    return render(helm.Chart.load(str(CHART)), values, release=release)


CHART_SHARD_A = {"role": "shard", "watch": {"scope": "patterns", "namespaces": list(SHARD_A)}}
CHART_SHARD_B = {"role": "shard", "watch": {"scope": "namespaces", "namespaces": list(SHARD_B)}}
CHART_WRITER = {"role": "policyStatus"}
# name: (render, ServiceAccount, the operator of run_shards whose requests it must grant)
INSTALLS: dict[str, tuple[Any, str, str]] = {
    "manifests/overlays/shard": (
        lambda: kustomize(MANIFESTS / "overlays" / "shard"),
        "openmodel-operator-shard-a",
        "a",
    ),
    "manifests/overlays/policy-status": (
        lambda: kustomize(MANIFESTS / "overlays" / "policy-status"),
        "openmodel-operator",
        "writer",
    ),
    "chart role=shard, patterns": (lambda: _chart(CHART_SHARD_A, "openmodel-a"), "openmodel-a-openmodel-operator", "a"),
    "chart role=shard, namespaces": (
        lambda: _chart(CHART_SHARD_B, "openmodel-b"),
        "openmodel-b-openmodel-operator",
        "b",
    ),
    "chart role=policyStatus": (
        lambda: _chart(CHART_WRITER, "openmodel-policies"),
        "openmodel-policies-openmodel-operator",
        "writer",
    ),
}


def test_kustomize_shard_and_policy_status_overlays() -> None:
    shard, writer = kustomize(MANIFESTS / "overlays" / "shard"), kustomize(MANIFESTS / "overlays" / "policy-status")
    for objs in (shard, writer):
        assert validate_objects(objs) == []
        assert_least_privilege(objs)
    # the shard brings no CRD and no namespace (the writer's overlay does), and names everything its own
    assert sorted(o["kind"] for o in shard) == sorted(
        ["ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Deployment", "Service", "Service"]
    )
    assert all(o["metadata"]["name"].endswith("-shard-a") for o in shard)
    assert len(by_kind(writer, "CustomResourceDefinition")) == 4 and one(writer, "Namespace")

    shard_settings = assert_operator_pod(shard, "openmodel-operator-shard-a")
    assert (shard_settings.namespaces, shard_settings.policy_status) == (SHARD_A, "off")
    writer_settings = assert_operator_pod(writer, "openmodel-operator")
    assert (writer_settings.namespaces, writer_settings.policy_status) == ((), "only")
    assert effective_permissions(shard, OPERATOR_NS, "openmodel-operator-shard-a") == {
        None: NAMESPACED_PERMS | SHARD_CLUSTER_PERMS
    }
    assert effective_permissions(writer, OPERATOR_NS, "openmodel-operator") == {None: WRITER_PERMS}

    # neither selects the other's pods: not the Deployments, not the metrics Services
    (shard_deployment, _), (writer_deployment, _) = operator_container(shard), operator_container(writer)
    shard_pods = shard_deployment["spec"]["template"]["metadata"]["labels"]
    writer_pods = writer_deployment["spec"]["template"]["metadata"]["labels"]
    writer_service = one(metrics_services(writer), "Service")
    for selector in (writer_deployment["spec"]["selector"]["matchLabels"], writer_service["spec"]["selector"]):
        assert not selector.items() <= shard_pods.items()
    for service in by_kind(shard, "Service"):  # the metrics and the claim reports Services
        assert not service["spec"]["selector"].items() <= writer_pods.items()
    for selector in (shard_deployment["spec"]["selector"]["matchLabels"],):
        assert not selector.items() <= writer_pods.items()


def test_chart_releases_for_two_shards_and_the_writer() -> None:
    shard_a = _chart(CHART_SHARD_A, "openmodel-a")
    shard_b = _chart(CHART_SHARD_B, "openmodel-b")
    writer = _chart(CHART_WRITER, "openmodel-policies")
    for objs in (shard_a, shard_b, writer):
        assert validate_objects(objs) == []
        assert_least_privilege(objs)
    a = assert_operator_pod(shard_a, "openmodel-a-openmodel-operator")
    b = assert_operator_pod(shard_b, "openmodel-b-openmodel-operator")
    w = assert_operator_pod(writer, "openmodel-policies-openmodel-operator")
    assert (a.namespaces, a.policy_status) == (SHARD_A, "off")
    assert (b.namespaces, b.policy_status) == (SHARD_B, "off")
    assert (w.namespaces, w.policy_status) == ((), "only")
    # a pattern cannot be a Role's namespace: cluster-wide; exact names: a Role in each, plus the policy refs
    assert effective_permissions(shard_a, OPERATOR_NS, "openmodel-a-openmodel-operator") == {
        None: NAMESPACED_PERMS | SHARD_CLUSTER_PERMS
    }
    assert effective_permissions(shard_b, OPERATOR_NS, "openmodel-b-openmodel-operator") == {
        None: SHARD_CLUSTER_PERMS,
        "team-b": NAMESPACED_PERMS,
        OPERATOR_NS: POLICY_REF_PERMS,
    }
    assert effective_permissions(writer, OPERATOR_NS, "openmodel-policies-openmodel-operator") == {None: WRITER_PERMS}
    # each release owns distinct cluster-scoped names (no release overwrites another's ClusterRole)
    names = [o["metadata"]["name"] for objs in (shard_a, shard_b, writer) for o in by_kind(objs, "ClusterRole")]
    assert len(set(names)) == 3


@pytest.mark.parametrize(
    ("values", "complaint"),
    [
        ({"role": "policyStatus", "watch": {"scope": "namespaces", "namespaces": ["team-b"]}}, "needs watch.scope=all"),
        (
            {"watch": {"scope": "patterns", "namespaces": ["team-a-*"]}, "replicas": 2, "ha": {"enabled": True}},
            "cannot have ha.enabled",
        ),
    ],
)
def test_chart_refuses_a_writer_of_some_namespaces_and_peering_on_patterns(
    values: dict[str, Any], complaint: str
) -> None:
    helm = pytest.importorskip("helm_python", reason="helm-python-sdk (Helm's Go SDK for Python) is not installed")
    with pytest.raises(helm.HelmError, match=complaint):
        _chart(values, "openmodel-x")


@pytest.mark.parametrize(
    ("values", "complaint"),
    [
        ({"watch": {"scope": "namespaces", "namespaces": ["team-a-*"]}}, "/watch/namespaces/0"),  # a Role needs a name
        ({"watch": {"scope": "patterns"}}, "/watch/namespaces"),
        ({"role": "leader"}, "/role"),
    ],
)
def test_chart_schema_refuses_bad_shard_values(values: dict[str, Any], complaint: str) -> None:
    helm = pytest.importorskip("helm_python", reason="helm-python-sdk (Helm's Go SDK for Python) is not installed")
    with pytest.raises(helm.HelmValuesError, match=complaint):
        _chart(values, "openmodel-x")


def _needed(requests: list[kmock.Request], op: str) -> set[tuple[str | None, str, str, str]]:
    """(namespace or None, group, resource, verb) one operator of run_shards needed: its requests, plus every
    call of controller/kube.py in its namespaces (rare paths the scenario does not walk); a shard never makes
    Kube.patch_policy_status, and the writer makes no other call."""
    result: set[tuple[str | None, str, str, str]] = set()
    for r in requests:
        if r.resource is None or r.resource.plural is None:
            continue  # discovery: non-resource URLs every account may read
        name = r.resource.plural + (f"/{r.subresource}" if r.subresource else "")
        result |= {(r.namespace, r.resource.group or "", name, v) for v in request_verb(r)}
    namespaces = {ns for ns, o in OWNER.items() if o == op}
    if op != "writer":  # whichever shard starts first makes the attestation key: each may need to
        result |= {(OPERATOR_NS, "", "secrets", v) for v in ("get", "create")}
    for call in kube_py_calls():
        if (call.method == "patch_policy_status") != (op == "writer"):
            continue
        for scope in sorted(namespaces) if call.namespaced else [None]:
            result.add((scope, *call.perm))
    return result


async def test_each_sharded_install_grants_exactly_what_its_operator_used(world: World) -> None:
    """Derived, as tests/test_rbac_derived.py does for a single operator: the requests each operator of
    run_shards made (Kopf's CRD and namespace scanning on), plus kube.py's calls, against what each install
    grants its ServiceAccount; a grant nobody used fails as a missing one does."""
    requests = await run_shards(world)
    problems = {}
    for install, (render, account, op) in INSTALLS.items():
        try:
            grants = effective_permissions(render(), OPERATOR_NS, account)
        except pytest.skip.Exception as exc:
            problems[install] = f"skipped: {exc}"
            continue
        missing, unused = compare(_needed(requests[op], op), grants)
        if missing or unused:
            problems[install] = f"not granted: {missing}; granted but never used: {unused}"
    failures = {k: v for k, v in problems.items() if not v.startswith("skipped")}
    assert failures == {}, "\n".join(f"{k}: {v}" for k, v in failures.items())
    if len(problems) == len(INSTALLS):
        pytest.skip(f"no install could be rendered: {problems}")
