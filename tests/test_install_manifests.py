"""The kustomize install (manifests/): renders, matches the generated CRDs, passes the Kubernetes 1.28
schemas, grants exactly the permissions the operator uses, and runs the operator the way its CLI expects.

The helpers at the top are shared with tests/test_install_helm.py, which holds the chart to the same rules.
"""

from __future__ import annotations

import ipaddress
import os
import shutil
import subprocess
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any
from unittest import mock

import kubernetes_validate
import pytest
import yaml

from apiserver_validation import admit
from openmodel_operator.cli import build_parser
from openmodel_operator.commands.run import settings_from
from openmodel_operator.controller.handlers import CHILD_KINDS
from openmodel_operator.controller.settings import DEFAULT_OPERATOR_IMAGE, DEFAULT_VLLM_IMAGE, OperatorSettings
from openmodel_operator.crd.definitions import all_crds, crd_filename, render_yaml
from openmodel_operator.planning.children import ModelRef, owner_reference

ROOT = Path(__file__).resolve().parent.parent
MANIFESTS = ROOT / "manifests"
PEERING_CRDS = MANIFESTS / "base" / "crds" / "kopf.dev_peerings.yaml"
K8S_VERSION = "1.28"
NONROOT_UID = 65532  # the Dockerfile's USER
# Kinds kubernetes-validate has no schema for; each is checked another way below.
CUSTOM_KINDS = {"ClusterKopfPeering", "KopfPeering", "ServiceMonitor", "Certificate", "Issuer"}

Obj = dict[str, Any]
Perm = tuple[str, str, str]  # (apiGroup, resource, verb)

_CHILD_VERBS = ("get", "list", "watch", "create", "patch", "delete")
# Secrets by name only: a Hub token read, the generated API key created and deleted; never listed, watched or
# changed (a list or watch of Secrets would read every credential of the namespace)
SECRET_VERBS = ("get", "create", "delete")


def _perms(group: str, resources: Iterable[str], verbs: Iterable[str]) -> set[Perm]:
    return {(group, resource, verb) for resource in resources for verb in verbs}


# What the operator does in the namespaces it watches (derived from controller/kube.py and Kopf's requests by
# tests/test_rbac_derived.py; spelled out here so that a change of the shipped RBAC is a visible change).
NAMESPACED_PERMS: set[Perm] = (
    _perms("openmodel.io", ["openmodels"], ["list", "watch", "patch"])
    | _perms("openmodel.io", ["openmodels/status"], ["patch"])
    | _perms("", ["events"], ["create"])
    | _perms("", ["configmaps", "services", "persistentvolumeclaims"], _CHILD_VERBS)
    | _perms("apps", ["deployments"], _CHILD_VERBS)
    | _perms("apps", ["replicasets"], ["get"])  # read by the serving pods' admission guard, never written
    | _perms("batch", ["jobs"], _CHILD_VERBS)
    | _perms("networking.k8s.io", ["networkpolicies"], _CHILD_VERBS)
    | _perms("", ["secrets"], SECRET_VERBS)
)
# Cluster-scoped, needed whatever the watch scope: reads, and the policies' status.
CLUSTER_PERMS: set[Perm] = (
    _perms("openmodel.io", ["modeltrustpolicies"], ["list", "watch"])
    | _perms("openmodel.io", ["modeltrustpolicies/status"], ["patch"])
    | _perms("", ["namespaces"], ["list", "watch"])
    | _perms("apiextensions.k8s.io", ["customresourcedefinitions"], ["list", "watch"])
    # the admission webhooks are written into the one configuration the install made (webhook.yaml)
    | _perms("admissionregistration.k8s.io", ["validatingwebhookconfigurations[openmodel.io]"], ["patch"])
)
CLUSTER_PEERING_PERMS = _perms("kopf.dev", ["clusterkopfpeerings"], ["list", "watch", "patch"])
NAMESPACED_PEERING_PERMS = _perms("kopf.dev", ["kopfpeerings"], ["list", "watch", "patch"])
# in the operator's namespace: the ConfigMaps policies reference, and the attestation key Secret (read, made once)
POLICY_REF_PERMS = _perms("", ["configmaps"], ["get"]) | _perms("", ["secrets"], ["get", "create"])

FORBIDDEN_RESOURCES = {
    "pods",
    "pods/exec",
    "pods/attach",
    "pods/portforward",
    "pods/log",
    "serviceaccounts",
    "serviceaccounts/token",
    "nodes",
    "nodes/proxy",
    "roles",
    "rolebindings",
    "clusterroles",
    "clusterrolebindings",
}
FORBIDDEN_VERBS = {"*", "update", "deletecollection", "escalate", "bind", "impersonate"}


# ---------------------------------------------------------------- shared helpers


def parse_docs(text: str) -> list[Obj]:
    return [doc for doc in yaml.safe_load_all(text) if doc]


def kustomize(path: Path) -> list[Obj]:
    """``kubectl kustomize`` output of a directory (the test is skipped without kubectl)."""
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl is not installed (its built-in kustomize renders manifests/)")
    done = subprocess.run([kubectl, "kustomize", str(path)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return parse_docs(done.stdout)


def by_kind(objs: Iterable[Obj], kind: str) -> list[Obj]:
    return [o for o in objs if o["kind"] == kind]


def one(objs: Iterable[Obj], kind: str) -> Obj:
    found = by_kind(objs, kind)
    assert len(found) == 1, f"expected one {kind}, found {len(found)}"
    return found[0]


def validate_objects(objs: Iterable[Obj]) -> list[str]:
    """Validate every object against the Kubernetes 1.28 schemas (strict: unknown fields fail).

    Returns the custom kinds that were skipped; peering objects are checked against our peering CRDs.
    """
    peering_crds = {crd["spec"]["names"]["kind"]: crd for crd in parse_docs(PEERING_CRDS.read_text())}
    skipped = []
    for obj in objs:
        kind, name = obj["kind"], obj["metadata"].get("name")
        if kind in CUSTOM_KINDS:
            skipped.append(kind)
            if kind in peering_crds:
                _, errors = admit(peering_crds[kind], obj)
                assert errors == [], f"{kind}/{name}: {errors}"
            continue
        try:
            kubernetes_validate.validate(obj, K8S_VERSION, strict=True)
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(f"{kind}/{name} at {list(exc.path)}: {exc.message}")
        except kubernetes_validate.SchemaNotFoundError:
            pytest.fail(f"{kind}/{name}: not a Kubernetes {K8S_VERSION} kind; add it to CUSTOM_KINDS with a check")
    return skipped


def _rule_perms(rule: Mapping[str, Any]) -> set[Perm]:
    """A rule's grants; one limited to some objects (``resourceNames``) grants ``resource[name]`` only."""
    assert "nonResourceURLs" not in rule, rule
    names = rule.get("resourceNames")
    if names:
        # RBAC cannot limit create, list or watch by name: such a rule would grant nothing, or more than it says
        assert not {"create", "list", "watch", "deletecollection"} & set(rule["verbs"]), rule
        return {
            (g, f"{r}[{n}]", v)
            for g in rule["apiGroups"]
            for r in rule["resources"]
            for n in names
            for v in rule["verbs"]
        }
    return {(g, r, v) for g in rule["apiGroups"] for r in rule["resources"] for v in rule["verbs"]}


def effective_permissions(objs: list[Obj], namespace: str, service_account: str) -> dict[str | None, set[Perm]]:
    """What the operator's ServiceAccount may do: key None is cluster-wide, other keys are namespaces."""
    cluster_roles = {o["metadata"]["name"]: o for o in by_kind(objs, "ClusterRole")}
    roles = {(o["metadata"]["namespace"], o["metadata"]["name"]): o for o in by_kind(objs, "Role")}
    subject = {"kind": "ServiceAccount", "name": service_account, "namespace": namespace}
    granted: dict[str | None, set[Perm]] = {}
    bound: set[tuple[str, str | None, str]] = set()
    for binding in by_kind(objs, "ClusterRoleBinding") + by_kind(objs, "RoleBinding"):
        assert binding["subjects"] == [subject], f"{binding['metadata']['name']} binds {binding['subjects']}"
        ref = binding["roleRef"]
        scope = binding["metadata"].get("namespace") if binding["kind"] == "RoleBinding" else None
        role = cluster_roles[ref["name"]] if ref["kind"] == "ClusterRole" else roles[(scope, ref["name"])]
        bound.add((ref["kind"], role["metadata"].get("namespace"), ref["name"]))
        for rule in role["rules"]:
            granted.setdefault(scope, set()).update(_rule_perms(rule))
    defined = {("ClusterRole", None, n) for n in cluster_roles} | {("Role", ns, n) for ns, n in roles}
    assert defined == bound, f"roles without a binding: {defined - bound}"
    return granted


def assert_least_privilege(objs: list[Obj]) -> None:
    """No wildcard, no pods or exec, no token requests, no privilege escalation, Secrets by name only (never
    listed or watched)."""
    for role in by_kind(objs, "ClusterRole") + by_kind(objs, "Role"):
        name = role["metadata"]["name"]
        for rule in role["rules"]:
            for group, resource, verb in _rule_perms(rule):
                assert "*" not in (group, resource), f"{name}: wildcard in {rule}"
                assert verb not in FORBIDDEN_VERBS, f"{name}: verb {verb} on {resource}"
                assert resource not in FORBIDDEN_RESOURCES, f"{name}: {resource} must not be granted"
                if resource == "secrets":
                    assert verb in SECRET_VERBS, f"{name}: secrets are handled by name only, never {verb}"


def operator_container(objs: list[Obj]) -> tuple[Obj, Obj]:
    """The operator Deployment and its container."""
    deployment = one(objs, "Deployment")
    containers = deployment["spec"]["template"]["spec"]["containers"]
    assert [c["name"] for c in containers] == ["operator"]
    return deployment, containers[0]


def container_settings(container: Obj) -> tuple[Any, OperatorSettings]:
    """Parse the container's args with the real CLI and its env with the real settings loader."""
    env = {e["name"]: e["value"] for e in container.get("env", []) if "value" in e}
    args = build_parser().parse_args(container["args"])
    assert args.command == "run"
    with mock.patch.dict(os.environ, env, clear=True):  # settings_from reads OPENMODEL_* from the environment
        return args, settings_from(args)


def assert_operator_pod(objs: list[Obj], service_account: str) -> OperatorSettings:
    """Restricted pod security, probes and ports that match the operator's settings, same-image fetch Jobs."""
    deployment, container = operator_container(objs)
    pod = deployment["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == service_account
    assert pod["automountServiceAccountToken"] is True, "the operator needs its API token"
    pod_sc = pod["securityContext"]
    assert pod_sc["runAsNonRoot"] is True
    assert pod_sc["runAsUser"] == NONROOT_UID
    assert pod_sc["seccompProfile"] == {"type": "RuntimeDefault"}
    sc = container["securityContext"]
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["capabilities"] == {"drop": ["ALL"]}
    assert sc.get("privileged", False) is False
    assert "hostNetwork" not in pod and "hostPID" not in pod
    tmp = next(m for m in container["volumeMounts"] if m["mountPath"] == "/tmp")
    volume = next(v for v in pod["volumes"] if v["name"] == tmp["name"])
    assert "emptyDir" in volume, "the read-only root needs a writable /tmp"
    resources = container["resources"]
    assert {"cpu", "memory"} <= set(resources["requests"]) and "memory" in resources["limits"]

    _, settings = container_settings(container)
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports["health"] == settings.health_port
    probe = container["livenessProbe"]["httpGet"]
    assert probe["path"] == "/healthz" and ports[probe["port"]] == settings.health_port
    # the kubelet probes the pod IP: a listener on loopback only would fail every probe
    assert not ipaddress.ip_address(settings.health_address).is_loopback, settings.health_address
    if settings.metrics_port:
        assert ports["metrics"] == settings.metrics_port
        assert not ipaddress.ip_address(settings.metrics_address).is_loopback, "Prometheus scrapes the pod IP"
    assert settings.operator_image == container["image"], "fetch Jobs must run the operator's own image"
    env_names = {e["name"] for e in container["env"]}
    assert "POD_ID" in env_names, "Kopf names itself after the pod (peering identity)"
    return settings


def assert_metrics_service(objs: list[Obj]) -> Obj:
    """The /metrics Service selects the operator pods on the container's metrics port."""
    deployment, container = operator_container(objs)
    service = one([o for o in by_kind(objs, "Service") if o["metadata"]["name"].endswith("-metrics")], "Service")
    assert_claim_reports_service(objs)
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= pod_labels.items()
    assert deployment["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    port = one([{"kind": "p", **p} for p in service["spec"]["ports"]], "p")
    assert port["name"] == "metrics" and port["targetPort"] == "metrics"
    assert any(p["name"] == "metrics" for p in container["ports"])
    return service


def metrics_services(objs: list[Obj]) -> list[Obj]:
    """The Services but the claim reports one (pvc:// sources)."""
    return [s for s in by_kind(objs, "Service") if "-claim-reports" not in s["metadata"]["name"]]


def assert_claim_reports_service(objs: list[Obj]) -> None:
    """The claim reports Service selects the operator pods on the listener's port, and the URL the Jobs are given
    names that Service and port (pvc:// sources)."""
    deployment, container = operator_container(objs)
    found = [s for s in by_kind(objs, "Service") if "-claim-reports" in s["metadata"]["name"]]
    _, settings = container_settings(container)
    if not found:  # a process that reconciles no model (the policy-status writer) serves no claim reports
        assert settings.claim_report_port == 0 and "claim-reports" not in {p["name"] for p in container["ports"]}
        return
    (service,) = found
    assert service["spec"]["selector"].items() <= deployment["spec"]["template"]["metadata"]["labels"].items()
    (port,) = service["spec"]["ports"]
    assert port["targetPort"] == "claim-reports"
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports["claim-reports"] == settings.claim_report_port
    assert not ipaddress.ip_address(settings.claim_report_address).is_loopback, "the Jobs reach the pod IP"
    name, namespace = service["metadata"]["name"], service["metadata"]["namespace"]
    assert settings.claim_report_url == f"http://{name}.{namespace}.svc:{port['port']}/claim-reports"


def generated_crds() -> dict[str, str]:
    """File name -> text of the CRDs `openmodel crds` generates."""
    return {crd_filename(crd): render_yaml(crd) for crd in all_crds()}


# ---------------------------------------------------------------- the base and its overlays


@pytest.fixture(scope="module")
def base() -> list[Obj]:
    return kustomize(MANIFESTS)


@pytest.fixture(scope="module")
def namespaced() -> list[Obj]:
    return kustomize(MANIFESTS / "overlays" / "namespaced")


@pytest.fixture(scope="module")
def ha() -> list[Obj]:
    return kustomize(MANIFESTS / "overlays" / "ha")


def test_crd_copies_match_the_generated_crds() -> None:
    for name, text in generated_crds().items():
        copy = MANIFESTS / "base" / "crds" / name
        assert copy.exists(), f"{copy} missing: cp crds/{name} {copy.parent}/"
        assert copy.read_text() == text, f"{copy} is stale: openmodel crds --output-dir {copy.parent}"


def test_root_renders_the_base(base: list[Obj]) -> None:
    assert base == kustomize(MANIFESTS / "base")
    kinds = sorted(o["kind"] for o in base)
    assert kinds == sorted(
        ["Namespace", "ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Deployment"]
        + ["Service"] * 3
        + ["ValidatingWebhookConfiguration"]
        + ["CustomResourceDefinition"] * 4
    )
    crds = {o["metadata"]["name"] for o in by_kind(base, "CustomResourceDefinition")}
    assert crds == {
        "openmodels.openmodel.io",
        "modeltrustpolicies.openmodel.io",
        "clusterkopfpeerings.kopf.dev",
        "kopfpeerings.kopf.dev",
    }
    namespace = one(base, "Namespace")
    assert namespace["metadata"]["name"] == "openmodel-system"
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    for obj in base:
        cluster_scoped = ("Namespace", "CustomResourceDefinition", "ClusterRole", "ClusterRoleBinding")
        if obj["kind"] not in (*cluster_scoped, "ValidatingWebhookConfiguration"):
            assert obj["metadata"]["namespace"] == "openmodel-system", obj["metadata"]["name"]


@pytest.mark.parametrize("overlay", ["base", "namespaced", "ha"])
def test_every_object_passes_the_kubernetes_schemas(overlay: str, request: pytest.FixtureRequest) -> None:
    objs: list[Obj] = request.getfixturevalue(overlay)
    skipped = validate_objects(objs)
    assert set(skipped) <= CUSTOM_KINDS


def test_rendered_crds_are_the_generated_ones(base: list[Obj]) -> None:
    rendered = {o["metadata"]["name"]: o for o in by_kind(base, "CustomResourceDefinition")}
    for crd in all_crds():
        # identical, labels included: `openmodel crds | kubectl apply --server-side` must not flip a field
        assert rendered[crd["metadata"]["name"]] == crd


def test_base_rbac_is_exactly_what_the_operator_uses(base: list[Obj]) -> None:
    assert_least_privilege(base)
    granted = effective_permissions(base, "openmodel-system", "openmodel-operator")
    assert granted == {None: NAMESPACED_PERMS | CLUSTER_PERMS}


def test_every_child_kind_the_operator_manages_is_granted() -> None:
    """Fails when the operator starts managing a new kind of child without an RBAC rule for it."""
    for group, _version, plural, _kind in CHILD_KINDS:
        for verb in _CHILD_VERBS:
            assert (group, plural, verb) in NAMESPACED_PERMS, (group, plural, verb)
    child_resources = {(g, r) for g, r, _ in NAMESPACED_PERMS if r not in ("openmodels", "openmodels/status")}
    assert child_resources - {(g, p) for g, _v, p, _k in CHILD_KINDS} == {
        ("", "events"),
        ("", "secrets"),
        ("apps", "replicasets"),
    }


def test_children_need_no_finalizers_permission() -> None:
    """blockOwnerDeletion: true would need `update` on openmodels/finalizers (OwnerReferencesPermissionEnforcement)."""
    assert owner_reference(ModelRef("m", "models", "uid", 1))["blockOwnerDeletion"] is False


def test_base_runs_one_standalone_operator_with_a_restricted_pod(base: list[Obj]) -> None:
    settings = assert_operator_pod(base, "openmodel-operator")
    deployment, container = operator_container(base)
    args, _ = container_settings(container)
    assert args.all_namespaces and args.standalone
    assert settings.namespaces == ()
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}, "never two standalone operators at once"
    assert settings.operator_image == DEFAULT_OPERATOR_IMAGE
    assert settings.vllm_image == DEFAULT_VLLM_IMAGE
    assert settings.json_logs
    service = assert_metrics_service(base)
    assert service["metadata"]["annotations"]["prometheus.io/port"] == str(settings.metrics_port)


def test_namespaced_overlay_uses_roles_in_the_watched_namespace(namespaced: list[Obj]) -> None:
    assert_least_privilege(namespaced)
    granted = effective_permissions(namespaced, "openmodel-system", "openmodel-operator")
    assert granted == {None: CLUSTER_PERMS, "models": NAMESPACED_PERMS, "openmodel-system": POLICY_REF_PERMS}
    _, container = operator_container(namespaced)
    args, settings = container_settings(container)
    assert settings.namespaces == ("models",) and args.standalone
    assert_operator_pod(namespaced, "openmodel-operator")


def test_ha_overlay_runs_two_peered_replicas(ha: list[Obj]) -> None:
    assert_least_privilege(ha)
    granted = effective_permissions(ha, "openmodel-system", "openmodel-operator")
    assert granted == {None: NAMESPACED_PERMS | CLUSTER_PERMS | CLUSTER_PEERING_PERMS}
    deployment, container = operator_container(ha)
    args, settings = container_settings(container)
    assert not args.standalone and settings.namespaces == ()
    assert deployment["spec"]["replicas"] == 2
    assert deployment["spec"]["strategy"]["rollingUpdate"] == {"maxUnavailable": 1, "maxSurge": 0}
    assert "podAntiAffinity" in deployment["spec"]["template"]["spec"]["affinity"]
    assert_operator_pod(ha, "openmodel-operator")
    peering = one(ha, "ClusterKopfPeering")
    assert peering["metadata"]["name"] == "default", "Kopf looks for the peering object named default"
    pdb = one(ha, "PodDisruptionBudget")
    assert pdb["spec"]["minAvailable"] == 1
    assert pdb["spec"]["selector"]["matchLabels"] == deployment["spec"]["selector"]["matchLabels"]


def test_an_images_entry_moves_the_fetch_job_image_with_the_operator(tmp_path: Path) -> None:
    """Mirroring the image for an air-gapped cluster must change OPENMODEL_OPERATOR_IMAGE too."""
    overlay = tmp_path / "mirror"
    overlay.mkdir()
    (overlay / "kustomization.yaml").write_text(
        yaml.safe_dump(
            {
                "resources": [os.path.relpath(MANIFESTS / "base", overlay)],
                "images": [
                    {
                        "name": "ghcr.io/openmodel-operator/openmodel-operator",
                        "newName": "registry.internal/openmodel-operator",
                        "newTag": "0.1.0",
                    },
                    {"name": "vllm/vllm-openai", "newName": "registry.internal/vllm-openai"},
                ],
            }
        )
    )
    objs = kustomize(overlay)
    _, container = operator_container(objs)
    _, settings = container_settings(container)
    assert container["image"] == "registry.internal/openmodel-operator:0.1.0"
    assert settings.operator_image == container["image"]
    assert settings.vllm_image == "registry.internal/vllm-openai:v0.11.0"


def test_peered_replicas_get_distinct_priorities(monkeypatch: pytest.MonkeyPatch) -> None:
    import kopf

    from openmodel_operator.cli import main

    calls: list[dict[str, Any]] = []

    async def fake_operator(**kwargs: Any) -> None:
        calls.append(kwargs)

    monkeypatch.setattr(kopf, "operator", fake_operator)

    monkeypatch.setattr("openmodel_operator.commands.run.reach_cluster", lambda *_a: None)  # no cluster here
    monkeypatch.setattr("openmodel_operator.controller.logs.configure_logging", lambda *_a, **_k: None)
    for _ in range(2):  # two replicas of the ha overlay: same args, same env
        assert main(["run", "--all-namespaces", "--metrics-port", "0", "--health-port", "0"]) == 0
    priorities = [call.get("priority") for call in calls]
    assert None not in priorities and priorities[0] != priorities[1], priorities


def webhook_settings_of(objs: list[Obj]) -> Any:
    """The operator's WebhookSettings as its pod gets them (downward-API values filled in as the kubelet does)."""
    from openmodel_operator.commands.run import webhook_settings_from

    deployment, container = operator_container(objs)
    pod = deployment["spec"]["template"]["spec"]
    fields = {
        "spec.serviceAccountName": pod["serviceAccountName"],
        "metadata.namespace": deployment["metadata"]["namespace"],
        "metadata.name": "openmodel-operator-0",
    }
    env = {
        e["name"]: e["value"] if "value" in e else fields[e["valueFrom"]["fieldRef"]["fieldPath"]]
        for e in container.get("env", [])
    }
    args = build_parser().parse_args(container["args"])
    with mock.patch.dict(os.environ, env, clear=True):
        return webhook_settings_from(args)


@pytest.mark.parametrize("overlay", ["base", "namespaced", "ha"])
def test_the_webhooks_are_reached_through_the_shipped_service(overlay: str, request: pytest.FixtureRequest) -> None:
    """The Service the operator registers exists, selects its pod on the webhook port; the configuration it
    patches is the one shipped (and the only one its RBAC names); the guard knows the pod's ServiceAccount."""
    objs: list[Obj] = request.getfixturevalue(overlay)
    hooks = webhook_settings_of(objs)
    assert hooks.enabled and hooks.guard
    namespace, name, port = hooks.service_ref()
    service = next(o for o in by_kind(objs, "Service") if o["metadata"]["name"] == name)
    assert service["metadata"]["namespace"] == namespace
    assert [(p["port"], p["targetPort"]) for p in service["spec"]["ports"]] == [(port, "webhook")]
    deployment, container = operator_container(objs)
    assert service["spec"]["selector"].items() <= deployment["spec"]["template"]["metadata"]["labels"].items()
    assert {"name": "webhook", "containerPort": hooks.port, "protocol": "TCP"} in container["ports"]
    assert hooks.address == "0.0.0.0"
    assert one(objs, "ValidatingWebhookConfiguration")["metadata"]["name"] == hooks.configuration
    assert "webhooks" not in one(objs, "ValidatingWebhookConfiguration")  # the operator's own: never GitOps-owned
    assert hooks.operator_users == ("system:serviceaccount:openmodel-system:openmodel-operator",)
    assert (hooks.cert_dir is not None) == (overlay == "ha")  # two replicas: one certificate, from cert-manager
