"""The Helm chart, rendered by Helm's own engine (helm-python-sdk embeds Helm's Go SDK; no cluster, no binary).

Default and non-default values render objects that pass the Kubernetes 1.28 schemas, grant exactly the
permissions the operator uses in each watch scope, and match the kustomize install; values.schema.json
refuses bad values; the chart's crds/ are the generated CRDs.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from test_install_manifests import (
    CLUSTER_PEERING_PERMS,
    CLUSTER_PERMS,
    MANIFESTS,
    NAMESPACED_PEERING_PERMS,
    NAMESPACED_PERMS,
    PEERING_CRDS,
    POLICY_REF_PERMS,
    Obj,
    assert_least_privilege,
    assert_metrics_service,
    assert_operator_pod,
    by_kind,
    container_settings,
    effective_permissions,
    generated_crds,
    kustomize,
    one,
    operator_container,
    parse_docs,
    validate_objects,
)

helm = pytest.importorskip("helm_python", reason="helm-python-sdk (Helm's Go SDK for Python) is not installed")

ROOT = Path(__file__).resolve().parent.parent
CHART = ROOT / "charts" / "openmodel-operator"
RELEASE, NAMESPACE = "openmodel-operator", "openmodel-system"
NON_DEFAULT: dict[str, Any] = {
    "image": {"repository": "registry.internal/openmodel-operator", "tag": "0.1.0-rc1", "pullPolicy": "Always"},
    "watch": {"scope": "namespaces", "namespaces": ["team-a", "team-b"]},
    "replicas": 2,
    "ha": {"enabled": True},
    # every replica serves the webhooks: one certificate for all, from cert-manager
    "webhooks": {"certManager": {"enabled": True}},
    "reverifyInterval": 900,
    "defaultRuntimeImage": "registry.internal/vllm-openai:v0.11.0",
    "trustedRoot": {"configMap": "sigstore-trusted-root"},
    "logFormat": "text",
    "resources": {"requests": {"cpu": "200m", "memory": "512Mi"}, "limits": {"cpu": None, "memory": "2Gi"}},
    "nodeSelector": {"kubernetes.io/os": "linux"},
    "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "control", "effect": "NoSchedule"}],
    "imagePullSecrets": [{"name": "registry-creds"}],
    "metrics": {"serviceMonitor": {"enabled": True, "labels": {"release": "prometheus"}}},
}


@pytest.fixture(scope="module")
def chart() -> Any:
    return helm.Chart.load(str(CHART))


def render(chart: Any, values: dict[str, Any] | None = None, release: str = RELEASE) -> list[Obj]:
    rendered: dict[str, str] = chart.render(values, name=release, namespace=NAMESPACE)
    return [doc for name, text in sorted(rendered.items()) if name.endswith(".yaml") for doc in parse_docs(text)]


@pytest.fixture(scope="module")
def default(chart: Any) -> list[Obj]:
    return render(chart)


@pytest.fixture(scope="module")
def custom(chart: Any) -> list[Obj]:
    return render(chart, NON_DEFAULT)


def test_chart_metadata(chart: Any) -> None:
    meta = chart.metadata
    assert meta["apiVersion"] == "v2"
    assert meta["name"] == "openmodel-operator"
    assert meta["appVersion"] == meta["version"] == "0.1.0"


def test_chart_crds_are_the_generated_ones(chart: Any) -> None:
    shipped = {Path(c["name"]).name: c["data"] for c in chart.crds}
    generated = generated_crds()
    for name, text in generated.items():
        assert (CHART / "crds" / name).read_text() == text, f"charts/.../crds/{name} is stale: cp crds/{name}"
        assert shipped[name] == text
    assert (CHART / "crds" / PEERING_CRDS.name).read_text() == PEERING_CRDS.read_text()
    assert set(shipped) == {*generated, PEERING_CRDS.name}


def test_values_schema_is_draft_07_and_accepts_the_defaults(chart: Any) -> None:
    schema = json.loads((CHART / "values.schema.json").read_text())
    assert schema["$schema"] == "http://json-schema.org/draft-07/schema#"
    jsonschema.Draft7Validator.check_schema(schema)
    defaults = yaml.safe_load((CHART / "values.yaml").read_text())
    jsonschema.Draft7Validator(schema).validate(defaults)
    jsonschema.Draft7Validator(schema).validate(chart.merge_values(NON_DEFAULT))
    assert set(schema["properties"]) - {"global"} == set(defaults), "every value is in the schema and vice versa"


@pytest.mark.parametrize(
    ("values", "complaint"),
    [
        ({"replicas": "two"}, "/replicas"),
        ({"watch": {"scope": "some"}}, "/watch/scope"),
        ({"watch": {"scope": "namespaces"}}, "/watch/namespaces"),
        ({"watch": {"scope": "namespaces", "namespaces": ["Bad_Name"]}}, "/watch/namespaces/0"),
        ({"reverifyInterval": 0}, "/reverifyInterval"),
        ({"logFormat": "xml"}, "/logFormat"),
        ({"image": {"pullPolicy": "Sometimes"}}, "/image/pullPolicy"),
        ({"metrics": {"serviceMonitor": {"interval": "soon"}}}, "/metrics/serviceMonitor/interval"),
        ({"reverifyIntervall": 60}, "reverifyIntervall"),
    ],
)
def test_values_schema_refuses_bad_values(chart: Any, values: dict[str, Any], complaint: str) -> None:
    with pytest.raises(helm.HelmValuesError, match=complaint):
        chart.render(values, name=RELEASE, namespace=NAMESPACE)


@pytest.mark.parametrize(
    ("values", "complaint"),
    [
        ({"replicas": 2}, "needs ha.enabled"),
        ({"metrics": {"enabled": False, "serviceMonitor": {"enabled": True}}}, "needs metrics.enabled"),
    ],
)
def test_templates_refuse_inconsistent_values(chart: Any, values: dict[str, Any], complaint: str) -> None:
    with pytest.raises(helm.HelmError, match=complaint):
        chart.render(values, name=RELEASE, namespace=NAMESPACE)


def test_lint_is_clean_for_kubernetes_1_28() -> None:
    for values in (None, NON_DEFAULT):
        report = helm.lint(str(CHART), values, strict=True, kube_version="v1.28.0")
        problems = [m for m in report["messages"] if m["severity"] >= 2]
        assert report["errors"] == [] and problems == [], report


@pytest.mark.parametrize("case", ["default", "custom"])
def test_every_rendered_object_passes_the_kubernetes_schemas(case: str, request: pytest.FixtureRequest) -> None:
    objs: list[Obj] = request.getfixturevalue(case)
    skipped = validate_objects(objs)
    if case == "custom":
        assert sorted(skipped) == [
            "Certificate", "Certificate", "Issuer", "Issuer", "KopfPeering", "KopfPeering", "ServiceMonitor"
        ]
    else:
        assert skipped == []


def test_default_values_match_the_kustomize_install(default: list[Obj]) -> None:
    """Same objects, same permissions, same pod as `kubectl apply -k manifests/` (names aside)."""
    base = [o for o in kustomize(MANIFESTS) if o["kind"] not in ("Namespace", "CustomResourceDefinition")]
    assert sorted(o["kind"] for o in default) == sorted(o["kind"] for o in base)
    assert_least_privilege(default)
    assert effective_permissions(default, NAMESPACE, RELEASE) == {None: NAMESPACED_PERMS | CLUSTER_PERMS}
    settings = assert_operator_pod(default, RELEASE)
    (helm_deployment, helm_container), (kustomize_deployment, kustomize_container) = (
        operator_container(default),
        operator_container(base),
    )
    assert container_settings(helm_container) == container_settings(kustomize_container)
    for key in ("securityContext", "resources", "livenessProbe", "startupProbe", "ports", "env", "volumeMounts"):
        assert helm_container[key] == kustomize_container[key], key
    helm_pod = helm_deployment["spec"]["template"]["spec"]
    kustomize_pod = kustomize_deployment["spec"]["template"]["spec"]
    for key in ("securityContext", "volumes", "automountServiceAccountToken", "enableServiceLinks"):
        assert helm_pod[key] == kustomize_pod[key], key
    assert helm_deployment["spec"]["strategy"] == kustomize_deployment["spec"]["strategy"] == {"type": "Recreate"}
    assert settings.namespaces == () and helm_deployment["spec"]["replicas"] == 1
    assert_metrics_service(default)
    for obj in default:
        if obj["kind"] not in ("ClusterRole", "ClusterRoleBinding", "ValidatingWebhookConfiguration"):
            assert obj["metadata"]["namespace"] == NAMESPACE


def test_non_default_values_render_namespaced_ha_with_a_service_monitor(custom: list[Obj]) -> None:
    assert_least_privilege(custom)
    granted = effective_permissions(custom, NAMESPACE, RELEASE)
    assert granted == {
        None: CLUSTER_PERMS,
        "team-a": NAMESPACED_PERMS | NAMESPACED_PEERING_PERMS,
        "team-b": NAMESPACED_PERMS | NAMESPACED_PEERING_PERMS,
        NAMESPACE: POLICY_REF_PERMS,
    }
    assert not any(perm in CLUSTER_PEERING_PERMS for perms in granted.values() for perm in perms)

    settings = assert_operator_pod(custom, RELEASE)
    deployment, container = operator_container(custom)
    args, _ = container_settings(container)
    assert settings.namespaces == ("team-a", "team-b") and not args.standalone
    assert container["image"] == "registry.internal/openmodel-operator:0.1.0-rc1"
    assert container["imagePullPolicy"] == "Always"
    assert settings.operator_image == container["image"]
    assert settings.vllm_image == "registry.internal/vllm-openai:v0.11.0"
    assert settings.reverify_interval == 900 and not settings.json_logs
    assert settings.trusted_root_path == "/etc/openmodel-operator/trust/trusted_root.json"
    # null removes a default (Helm merges maps): no CPU limit here
    assert container["resources"] == {"requests": {"cpu": "200m", "memory": "512Mi"}, "limits": {"memory": "2Gi"}}

    spec = deployment["spec"]
    pod = spec["template"]["spec"]
    assert spec["replicas"] == 2 and spec["strategy"]["type"] == "RollingUpdate"
    assert pod["nodeSelector"] == NON_DEFAULT["nodeSelector"]
    assert pod["tolerations"] == NON_DEFAULT["tolerations"]
    assert pod["imagePullSecrets"] == [{"name": "registry-creds"}]
    assert "podAntiAffinity" in pod["affinity"]
    trust_volume = next(v for v in pod["volumes"] if v["name"] == "trusted-root")
    assert trust_volume["configMap"]["name"] == "sigstore-trusted-root"

    peerings = by_kind(custom, "KopfPeering")
    assert sorted((p["metadata"]["namespace"], p["metadata"]["name"]) for p in peerings) == [
        ("team-a", "default"),
        ("team-b", "default"),
    ]
    assert by_kind(custom, "ClusterKopfPeering") == []
    pdb = one(custom, "PodDisruptionBudget")
    assert pdb["spec"]["selector"]["matchLabels"] == spec["selector"]["matchLabels"]

    service = assert_metrics_service(custom)
    monitor = one(custom, "ServiceMonitor")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert monitor["metadata"]["labels"]["release"] == "prometheus"
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    assert monitor["spec"]["namespaceSelector"] == {"matchNames": [NAMESPACE]}
    assert [e["port"] for e in monitor["spec"]["endpoints"]] == [service["spec"]["ports"][0]["name"]]


def test_cluster_wide_ha_uses_the_cluster_peering(chart: Any) -> None:
    objs = render(chart, {"replicas": 2, "ha": {"enabled": True}, "webhooks": {"certManager": {"enabled": True}}})
    validate_objects(objs)
    assert effective_permissions(objs, NAMESPACE, RELEASE) == {
        None: NAMESPACED_PERMS | CLUSTER_PERMS | CLUSTER_PEERING_PERMS
    }
    assert one(objs, "ClusterKopfPeering")["metadata"]["name"] == "default"


def test_metrics_off_disables_the_endpoint_and_the_service(chart: Any) -> None:
    objs = render(chart, {"metrics": {"enabled": False}})
    assert sorted(s["metadata"]["name"] for s in by_kind(objs, "Service")) == sorted(
        [f"{RELEASE}-claim-reports", "openmodel-operator-webhook"]
    )
    _, container = operator_container(objs)
    _, settings = container_settings(container)
    assert settings.metrics_port == 0
    assert [p["name"] for p in container["ports"]] == ["health", "claim-reports", "webhook"]


def test_image_digest_wins_and_release_names_scope_cluster_objects(chart: Any) -> None:
    digest = "sha256:" + "ab" * 32
    objs = render(chart, {"image": {"digest": digest}}, release="om")
    _, container = operator_container(objs)
    assert container["image"] == f"ghcr.io/openmodel-operator/openmodel-operator@{digest}"
    assert one(objs, "ClusterRole")["metadata"]["name"] == "om-openmodel-operator"
