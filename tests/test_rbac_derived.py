"""The shipped RBAC grants what the operator's code paths use, derived from them, and nothing else.

What the operator needs is derived, not listed by hand:

1. every request the real operator made against the emulator while a scenario walked every flow that talks
   to the API (with production Kopf settings: CRD scanning on, peering on), mapped from method and path to
   (apiGroup, resource[/subresource], verb) and the namespace it was made in;
2. every call ``controller/kube.py`` can make, read from its source: the reconciler reaches some only on
   rare paths (a child name taken by a stranger, a Job that drifted), and a call the scenario missed still
   needs its grant;
3. ``REAL_CLUSTER_ONLY``: what only a real cluster needs, each entry with its reason.

Every shipped install (kustomize base, ``namespaced`` and ``ha`` overlays; the Helm chart in both watch
scopes, with and without ``ha.enabled``) must grant all of it in the right scope, and nothing else: a new API
call without a grant fails here, and so does a grant no code path uses.
"""

from __future__ import annotations

import ast
import asyncio
import base64
import collections
import dataclasses
import inspect
import pathlib
import re
import warnings
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager
from typing import Any

import kmock
import kopf
import pytest
import pytest_asyncio
from lightkube.core.resource import NamespacedResource

from hubstub import DEFAULT_TOKEN, HubStub
from kube_emulator import KubeEmulator
from kube_fixtures import repo_crds, serve_emulator, tuned_settings
from openmodel_operator.controller import kube as kube_module
from openmodel_operator.controller.handlers import build_registry
from openmodel_operator.controller.kube import Kube, client_for
from openmodel_operator.controller.settings import OperatorSettings
from openmodel_operator.controller.webhook_settings import WebhookSettings
from signing_fixtures import new_key, sign_with_key, write_model
from test_install_manifests import MANIFESTS, PEERING_CRDS, Obj, _rule_perms, by_kind, kustomize, parse_docs
from test_operator import FILES, NS, World

OPERATOR_NS, SERVICE_ACCOUNT = "openmodel-system", "openmodel-operator"
Perm = tuple[str, str, str]  # (apiGroup, resource[/subresource], verb)
Scoped = tuple[str | None, str, str, str]  # (namespace or None for cluster-wide, apiGroup, resource, verb)

# What only a real cluster needs and the emulator cannot show. Empty today: Kopf's peering, CRD scanning and
# the operator's Events all run against the emulator, so they are derived like everything else. An entry
# here is (apiGroup, resource, verb) with a comment saying which component needs it and why it cannot be
# observed (e.g. an admission plugin's extra check).
REAL_CLUSTER_ONLY: set[Perm] = set()
# Resources granted by name only (resourceNames): a request on them needs ``resource[name]``.
NAMED = {("admissionregistration.k8s.io", "validatingwebhookconfigurations")}

# lightkube client methods and the verbs they need (apply-patches are handled below)
CLIENT_VERBS = {
    "get": {"get"},
    "list": {"list"},
    "watch": {"watch"},
    "create": {"create"},
    "patch": {"patch"},
    "replace": {"update"},
    "delete": {"delete"},
    "deletecollection": {"deletecollection"},
}


# ---------------------------------------------------------------- requests -> permissions


def request_verb(request: kmock.Request) -> set[str]:
    """The RBAC verbs a request is authorized against, as the apiserver's request-info resolver names them."""
    method = str(request.method.value if hasattr(request.method, "value") else request.method).upper()
    watching = request.params.get("watch") in ("true", "1") or "/watch/" in request.url.path
    if method == "GET":
        return {"watch" if watching else "get" if request.name else "list"}
    if method == "PATCH":
        # server-side apply creates the object when it is absent: the apiserver then checks create as well
        content_type = (request.headers.get("Content-Type") or "").split(";")[0].strip()
        return {"patch", "create"} if content_type == "application/apply-patch+yaml" else {"patch"}
    return {
        "POST": {"create"},
        "PUT": {"update"},
        "DELETE": {"delete" if request.name else "deletecollection"},
    }[method]


@dataclasses.dataclass(frozen=True)
class Observed:
    """Permissions the scenario's requests needed: by Kopf and by the operator's own client."""

    kopf: frozenset[Scoped]
    ours: frozenset[Scoped]

    @property
    def all(self) -> frozenset[Scoped]:
        return self.kopf | self.ours


def observed_permissions(kube: KubeEmulator) -> Observed:
    kopf_perms: set[Scoped] = set()
    ours: set[Scoped] = set()
    for request in kube:
        resource = request.resource
        if resource is None or resource.plural is None:
            continue  # discovery (/api, /apis/...) and /version: non-resource URLs every account may read
        name = resource.plural + (f"/{request.subresource}" if request.subresource else "")
        if (resource.group, resource.plural) in NAMED and request.name:
            name += f"[{request.name}]"  # granted for that one object only (resourceNames)
        agent = request.headers.get("User-Agent") or ""
        target = kopf_perms if agent.startswith("kopf/") else ours
        for verb in request_verb(request):
            target.add((request.namespace, resource.group or "", name, verb))
    return Observed(frozenset(kopf_perms), frozenset(ours))


# ---------------------------------------------------------------- controller/kube.py -> permissions


@dataclasses.dataclass(frozen=True)
class KubeCall:
    method: str  # the Kube method making the call
    perm: Perm
    namespaced: bool


def _resources(node: ast.expr, method: ast.FunctionDef | ast.AsyncFunctionDef) -> list[Any]:
    """The lightkube resource classes an argument can be."""
    if isinstance(node, ast.Name) and isinstance(getattr(kube_module, node.id, None), type):
        return [getattr(kube_module, node.id)]
    if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):  # OpenModelResource.Status
        return [getattr(getattr(kube_module, node.value.id), node.attr)]
    if isinstance(node, ast.Subscript) and isinstance(node.value, ast.Name) and node.value.id == "KINDS":
        return list(kube_module.KINDS.values())  # any child kind
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "cast":
        return _resources(node.args[0], method)
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "from_dict":
        return _resources(node.func.value, method)  # Event.from_dict(...)
    if isinstance(node, ast.Name) and method.name == "create" and node.id == "resource":
        # Kube.create builds the typed object of a child from its dict (codecs.from_dict): any child kind
        return list(kube_module.KINDS.values())
    raise AssertionError(f"Kube.{method.name}: cannot tell which resource {ast.unparse(node)} is; teach _resources")


def kube_py_calls() -> list[KubeCall]:
    """Every ``self.client.<op>(resource, ...)`` in class Kube, as permissions (no call is left unmapped)."""
    tree = ast.parse(inspect.getsource(kube_module))
    (kube_class,) = [n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "Kube"]
    calls = []
    for method in [n for n in kube_class.body if isinstance(n, ast.AsyncFunctionDef | ast.FunctionDef)]:
        for node in ast.walk(method):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
                continue
            owner = node.func.value
            if not (isinstance(owner, ast.Attribute) and owner.attr == "client"):
                continue
            op = node.func.attr
            if op == "close":
                continue
            assert op in CLIENT_VERBS, f"Kube.{method.name} calls client.{op}: add it to CLIENT_VERBS"
            verbs = set(CLIENT_VERBS[op])
            if any(k.arg == "patch_type" and ast.unparse(k.value) == "PatchType.APPLY" for k in node.keywords):
                verbs.add("create")  # server-side apply creates an absent object
            for resource in _resources(node.args[0], method):
                info = resource._api_info
                name = info.plural + (f"/{info.action}" if info.action else "")
                namespaced = issubclass(resource, NamespacedResource)
                calls.extend(KubeCall(method.name, (info.resource.group, name, verb), namespaced) for verb in verbs)
    return calls


# ---------------------------------------------------------------- the scenario


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _peering(namespaces: tuple[str, ...]) -> Obj:
    if namespaces:
        return {"apiVersion": "kopf.dev/v1", "kind": "KopfPeering", "metadata": {"name": "default", "namespace": NS}}
    return {"apiVersion": "kopf.dev/v1", "kind": "ClusterKopfPeering", "metadata": {"name": "default"}}


@pytest_asyncio.fixture()
async def kube() -> AsyncIterator[KubeEmulator]:
    """The emulator with the project's CRDs and the shipped peering CRDs (not the emulator's own stand-ins)."""
    async with serve_emulator(crds=repo_crds() + parse_docs(PEERING_CRDS.read_text())) as emulator:
        yield emulator


@pytest.fixture()
def world(kube: KubeEmulator, hub: HubStub, tmp_path: pathlib.Path) -> World:
    kube.create_namespace(NS)
    return World(kube, hub, new_key(), tmp_path)


@asynccontextmanager
async def production_operator(world: World, namespaces: tuple[str, ...]) -> AsyncIterator[None]:
    """The operator as `openmodel run` starts it: Kopf's CRD scanning and peering on (the tests turn them off)."""
    settings = OperatorSettings(
        namespaces=namespaces,
        resync_interval=0.5,
        metrics_port=0,
        health_port=0,
        claim_report_port=0,
        operator_image="op:test",
        vllm_image="vllm:test",
        default_endpoint=world.hub.url,
        attestation_key_secret=f"{OPERATOR_NS}/openmodel-attestation-key",  # as every shipped install sets it
    )
    # with its admission webhooks, as `openmodel run` starts (their registration is derived like the rest)
    hooks = WebhookSettings(
        port=_free_port(), operator_users=(f"system:serviceaccount:{OPERATOR_NS}:{SERVICE_ACCOUNT}",)
    )
    registry = build_registry(settings, lambda: Kube(client_for(world.kube.base_url)), webhooks=hooks)

    @kopf.on.login(registry=registry)
    def login(**_: Any) -> kopf.ConnectionInfo:
        return kopf.ConnectionInfo(server=world.kube.base_url, insecure=True)

    kopf_settings = tuned_settings()
    kopf_settings.scanning.disabled = False
    stop, ready = asyncio.Event(), asyncio.Event()
    task = asyncio.create_task(
        kopf.operator(
            registry=registry,
            settings=kopf_settings,
            standalone=False,
            priority=100,
            clusterwide=not namespaces,
            namespaces=list(namespaces),
            stop_flag=stop,
            ready_flag=ready,
        )
    )
    try:
        await asyncio.wait_for(ready.wait(), timeout=10)
        yield
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout=15)


async def walk_every_flow(world: World, namespaces: tuple[str, ...]) -> Observed:
    """A private model (Hub token in a Secret) under a policy whose key lives in a ConfigMap of the operator's
    namespace: verified, pulled, served, revoked (scaled to zero), deleted; the policy's status written."""
    kube = world.kube
    kube.create_namespace(OPERATOR_NS)
    kube.create_object(_peering(namespaces))
    # the install makes the webhook configuration (manifests/base/webhook.yaml); the operator only patches it
    kube.create_object(
        {
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "ValidatingWebhookConfiguration",
            "metadata": {"name": "openmodel.io"},
        }
    )
    world.policy_with_key_in_configmap(OPERATOR_NS)
    files = dict(FILES)
    files["model.sig"] = sign_with_key(write_model(world.tmp / "src", files), world.key, world.tmp / "sig")
    world.hub.add_model("org/private", files, private=True)
    kube.create_object(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "hub-token", "namespace": NS},
            "data": {"token": base64.b64encode(DEFAULT_TOKEN.encode()).decode()},
        }
    )
    world.model(source={"uri": "hf://org/private", "tokenSecretRef": {"name": "hub-token", "key": "token"}})

    def policy_status() -> dict[str, Any]:
        return (kube.get("modeltrustpolicies", None, "org") or {}).get("status") or {}

    async with production_operator(world, namespaces):
        await world.serve()
        await world.until(lambda: policy_status().get("governedModels") == 1, timeout=10)
        world.trust_only(new_key())  # the signer's key is revoked: rejected and scaled to zero
        await world.until(lambda: (world.child("deployments", "m") or {}).get("spec", {}).get("replicas") == 0, 10)
        kube.delete_object("openmodels", NS, "m")
        await world.until(lambda: kube.get("openmodels", NS, "m") is None, timeout=10)
        assert world.jobs() == [] and world.child("services", "m") is None
    return observed_permissions(kube)


# ---------------------------------------------------------------- the installs


def _chart(values: dict[str, Any] | None) -> list[Obj]:
    helm = pytest.importorskip("helm_python", reason="helm-python-sdk (Helm's Go SDK for Python) is not installed")
    from test_install_helm import CHART, NAMESPACE, RELEASE, render

    assert (NAMESPACE, RELEASE) == (OPERATOR_NS, SERVICE_ACCOUNT)
    return render(helm.Chart.load(str(CHART)), values)


WATCHED = {"watch": {"scope": "namespaces", "namespaces": [NS]}}
CERT_MANAGER = {"webhooks": {"certManager": {"enabled": True}}}  # replicas share one webhook certificate
INSTALLS: dict[str, tuple[tuple[str, ...], bool, Callable[[], list[Obj]]]] = {
    # name: (watched namespaces, peering, render)
    "manifests": ((), False, lambda: kustomize(MANIFESTS)),
    "manifests/overlays/ha": ((), True, lambda: kustomize(MANIFESTS / "overlays" / "ha")),
    "manifests/overlays/namespaced": ((NS,), False, lambda: kustomize(MANIFESTS / "overlays" / "namespaced")),
    "chart": ((), False, lambda: _chart(None)),
    "chart ha": ((), True, lambda: _chart({"replicas": 2, "ha": {"enabled": True}, **CERT_MANAGER})),
    "chart namespaced": ((NS,), False, lambda: _chart(WATCHED)),
    "chart namespaced ha": (
        (NS,),
        True,
        lambda: _chart({**WATCHED, "replicas": 2, "ha": {"enabled": True}, **CERT_MANAGER}),
    ),
}


def granted(objs: list[Obj]) -> dict[str | None, set[Perm]]:
    """What the ServiceAccount may do: key None is cluster-wide, other keys are namespaces."""
    roles = {(o["kind"], o["metadata"].get("namespace"), o["metadata"]["name"]): o for o in objs if "rules" in o}
    result: dict[str | None, set[Perm]] = collections.defaultdict(set)
    for binding in by_kind(objs, "ClusterRoleBinding") + by_kind(objs, "RoleBinding"):
        assert binding["subjects"] == [{"kind": "ServiceAccount", "name": SERVICE_ACCOUNT, "namespace": OPERATOR_NS}]
        scope = binding["metadata"].get("namespace") if binding["kind"] == "RoleBinding" else None
        ref = binding["roleRef"]
        role = roles[(ref["kind"], scope if ref["kind"] == "Role" else None, ref["name"])]
        for rule in role["rules"]:
            assert not rule.get("nonResourceURLs"), rule
            result[scope] |= _rule_perms(rule)
    return dict(result)


def needed(observed: Observed, calls: Iterable[KubeCall], watched: tuple[str, ...], peering: bool) -> set[Scoped]:
    """Scoped permissions: observed requests plus kube.py's calls (in every watched namespace) plus the
    allow-list; the peering requests only where the install runs peering."""
    scopes: tuple[str | None, ...] = watched or (None,)
    result = {p for p in observed.all if p[1] != "kopf.dev" or peering}
    for call in calls:
        for scope in scopes if call.namespaced else (None,):
            result.add((scope, *call.perm))
    result |= {(None, *perm) for perm in REAL_CLUSTER_ONLY}
    return result


def check(install: str, observed: Observed, calls: list[KubeCall]) -> tuple[list[str], list[str]]:
    """(needed but not granted, granted but not needed) for one install."""
    watched, peering, render = INSTALLS[install]
    return compare(needed(observed, calls, watched, peering), granted(render()))


def compare(need: Any, grants: Any) -> tuple[list[str], list[str]]:
    """(needed but not granted, granted but not needed): ``need`` holds (namespace or None, group, resource,
    verb), ``grants`` maps a namespace (None: cluster-wide) to its (group, resource, verb) set."""
    missing = sorted(
        f"{verb} {group}/{resource} in {scope or 'the cluster'}"
        for scope, group, resource, verb in need
        if (group, resource, verb) not in grants.get(None, set()) | grants.get(scope, set())
    )
    unused = sorted(
        f"{verb} {group}/{resource} in {scope or 'the cluster'}"
        for scope, perms in grants.items()
        for group, resource, verb in perms
        # a cluster-wide grant is used by a request in any namespace; a Role's only by one in its namespace
        if not any(p[1:] == (group, resource, verb) and (scope is None or p[0] == scope) for p in need)
    )
    return missing, unused


# ---------------------------------------------------------------- the tests


def test_every_kube_py_call_is_mapped_to_a_permission() -> None:
    # every API call of the operator's own goes through class Kube: no other module holds a Kubernetes client
    package = pathlib.Path(kube_module.__file__).parent.parent
    clients = sorted(
        str(path.relative_to(package))
        for path in package.rglob("*.py")
        if re.search(r"^\s*(from|import) (lightkube|kubernetes|kubernetes_asyncio|kr8s)\b", path.read_text(), re.M)
    )
    assert clients == ["controller/kube.py"], clients
    tree = ast.parse(inspect.getsource(kube_module))
    in_module = [n for n in ast.walk(tree) if isinstance(n, ast.Attribute) and n.attr == "client"]
    (kube_class,) = [n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "Kube"]
    in_class = [n for n in ast.walk(kube_class) if isinstance(n, ast.Attribute) and n.attr == "client"]
    assert len(in_module) == len(in_class), "a client is used outside class Kube"

    calls = kube_py_calls()
    methods = {c.method for c in calls}
    public = {name for name, _ in inspect.getmembers(Kube, inspect.iscoroutinefunction) if not name.startswith("_")}
    assert public - {"close"} <= methods, f"Kube methods without an API call: {public - methods}"
    perms = {c.perm for c in calls}
    # spot checks of the mapping itself (a hostile reading would grant more than the code does)
    assert ("", "secrets", "get") in perms and ("", "secrets", "list") not in perms
    assert ("openmodel.io", "modeltrustpolicies/status", "patch") in perms
    assert ("openmodel.io", "modeltrustpolicies", "patch") not in perms
    assert ("apps", "deployments", "create") in perms  # server-side apply of an absent Deployment


@pytest.mark.parametrize("namespaces", [(), (NS,)], ids=["cluster-wide", "namespaced"])
async def test_shipped_rbac_grants_exactly_what_the_operator_uses(world: World, namespaces: tuple[str, ...]) -> None:
    observed = await walk_every_flow(world, namespaces)
    calls = kube_py_calls()
    ours = {(g, r, v) for _, g, r, v in observed.ours}
    # the operator's own requests are the ones kube.py's source predicts: the static mapping is right
    assert ours <= {c.perm for c in calls}, ours - {c.perm for c in calls}
    # the scenario reached the flows it is there for
    assert ("", "secrets", "get") in ours and ("apps", "deployments", "patch") in ours
    assert (OPERATOR_NS, "", "configmaps", "get") in observed.ours  # the policy's key ConfigMap
    assert any(p[1] == "kopf.dev" for p in observed.kopf), "peering ran"
    assert any(p[2] == "customresourcedefinitions" for p in observed.kopf), "Kopf's CRD scanning ran"
    problems = {}
    for install, (watched, _, _) in INSTALLS.items():
        if watched != namespaces:
            continue
        try:
            missing, unused = check(install, observed, calls)
        except pytest.skip.Exception as exc:  # no kubectl or no Helm SDK: the other installs are still checked
            problems[install] = f"skipped: {exc}"
            continue
        if missing or unused:
            problems[install] = f"not granted: {missing}; granted but never used: {unused}"
    failures = {k: v for k, v in problems.items() if not v.startswith("skipped")}
    assert failures == {}, "\n".join(f"{k}: {v}" for k, v in failures.items())
    skipped = sorted(k for k, v in problems.items() if v.startswith("skipped"))
    if skipped:
        checked = [k for k, (w, _, _) in INSTALLS.items() if w == namespaces and k not in skipped]
        if not checked:
            pytest.skip(f"no install could be rendered: {problems}")
        warnings.warn(f"not checked (cannot render): {skipped}", stacklevel=1)


def test_a_new_call_without_a_grant_or_a_grant_without_a_call_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    """The check itself: an extra request (hostile: a call nobody granted) and an extra grant are both caught,
    next to the control where the shipped base and the derived needs agree."""
    calls = [KubeCall("get", ("", "configmaps", "get"), True)]
    observed = Observed(frozenset({(None, "", "configmaps", "list")}), frozenset({(NS, "", "configmaps", "get")}))
    base = [
        {
            "kind": "ClusterRole",
            "metadata": {"name": "r"},
            "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "list"]}],
        },
        {
            "kind": "ClusterRoleBinding",
            "metadata": {"name": "r"},
            "roleRef": {"kind": "ClusterRole", "name": "r"},
            "subjects": [{"kind": "ServiceAccount", "name": SERVICE_ACCOUNT, "namespace": OPERATOR_NS}],
        },
    ]
    monkeypatch.setitem(INSTALLS, "test", ((), False, lambda: base))
    assert check("test", observed, calls) == ([], [])
    more = Observed(observed.kopf, observed.ours | {(NS, "", "pods", "create")})
    assert check("test", more, calls)[0] == [f"create /pods in {NS}"]
    base[0]["rules"].append({"apiGroups": [""], "resources": ["secrets"], "verbs": ["list"]})
    assert check("test", observed, calls)[1] == ["list /secrets in the cluster"]
