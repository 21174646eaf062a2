"""The generated CRDs: structural, in sync with the checked-in files, and strict about bad input."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from apiserver_validation import admit, version_schema
from openmodel_operator.api.openmodel import OpenModelSpec
from openmodel_operator.api.trustpolicy import ModelTrustPolicySpec
from openmodel_operator.cli import main
from openmodel_operator.crd.definitions import all_crds, crd_filename, openmodel_crd, policy_crd, render_yaml
from openmodel_operator.crd.schema import forbidden_keys

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
CRDS = {"OpenModel": openmodel_crd(), "ModelTrustPolicy": policy_crd()}


def _docs(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def _valid_examples() -> list[Path]:
    return sorted(p for p in EXAMPLES.glob("*.yaml") if p.is_file())


def _invalid_examples() -> list[Path]:
    return sorted((EXAMPLES / "invalid").glob("*.yaml"))


@pytest.mark.parametrize("crd", all_crds(), ids=lambda c: c["spec"]["names"]["kind"])
def test_crd_schema_is_structural(crd: dict[str, Any]) -> None:
    assert forbidden_keys(version_schema(crd)) == []


@pytest.mark.parametrize("crd", all_crds(), ids=lambda c: c["spec"]["names"]["kind"])
def test_every_default_passes_its_own_cel_rules(crd: dict[str, Any]) -> None:
    """A v1.28 apiserver refuses a CRD whose schema default fails a CEL rule at that node (checked as written,
    before nested defaults apply)."""
    import celpy

    env = celpy.Environment()
    failures: list[str] = []

    def walk(node: Any, path: str) -> None:
        if not isinstance(node, dict):
            return
        if "default" in node:
            for rule in node.get("x-kubernetes-validations", []):
                program = env.program(env.compile(rule["rule"]))
                result = program.evaluate({"self": celpy.json_to_cel(node["default"])})
                if not (isinstance(result, celpy.celtypes.BoolType) and bool(result)):
                    failures.append(f"{path}: {rule['rule']} -> {result!r}")
        for key, child in node.get("properties", {}).items():
            walk(child, f"{path}.{key}")
        walk(node.get("items"), f"{path}[]")

    walk(version_schema(crd), "")
    assert failures == []


def test_checked_in_crds_are_current() -> None:
    for crd in all_crds():
        path = ROOT / "crds" / crd_filename(crd)
        assert path.exists(), f"{path} missing: run `openmodel crds --output-dir crds`"
        assert path.read_text() == render_yaml(crd), f"{path} is stale: run `openmodel crds --output-dir crds`"


def test_cli_prints_every_crd(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["crds"]) == 0
    printed = [d for d in yaml.safe_load_all(capsys.readouterr().out) if d]
    assert [d["metadata"]["name"] for d in printed] == ["openmodels.openmodel.io", "modeltrustpolicies.openmodel.io"]


def test_status_subresource_and_kopf_bookkeeping_survive_pruning() -> None:
    for crd in all_crds():
        version = crd["spec"]["versions"][0]
        assert version["subresources"] == {"status": {}}
        operator = version["schema"]["openAPIV3Schema"]["properties"]["status"]["properties"]["operator"]
        assert operator["x-kubernetes-preserve-unknown-fields"] is True


def test_printer_columns_for_sres() -> None:
    columns = openmodel_crd()["spec"]["versions"][0]["additionalPrinterColumns"]
    plain = [c["name"] for c in columns if not c.get("priority")]
    wide = [c["name"] for c in columns if c.get("priority") == 1]
    # what the pods run and what replaces it, never only what was decided (issue 9)
    assert plain == ["Phase", "Serving", "Incoming", "Trusted", "Tier", "Ready", "Age"]
    assert wide == ["Pinned", "Signer", "License", "Class"]
    paths = {c["name"]: c["jsonPath"] for c in columns}
    assert paths["Serving"] == ".status.served.shortRevision"
    assert paths["Incoming"] == ".status.incoming.shortRevision"


def test_names_and_scopes() -> None:
    om, mtp = openmodel_crd()["spec"], policy_crd()["spec"]
    assert (om["scope"], om["names"]["shortNames"]) == ("Namespaced", ["om"])
    assert (mtp["scope"], mtp["names"]["shortNames"]) == ("Cluster", ["mtp"])


def test_no_category_equals_a_name_kubectl_would_resolve() -> None:
    """kubectl expands a category before a resource name (a real apiserver showed ``kubectl get openmodel NAME``
    acting on both kinds while ``openmodel`` was a category): a category never equals a singular, plural or
    short name of any of the operator's kinds."""
    names: set[str] = set()
    categories: set[str] = set()
    for crd in all_crds():
        spec_names = crd["spec"]["names"]
        names |= {spec_names["singular"], spec_names["plural"], *spec_names.get("shortNames", [])}
        categories |= set(spec_names.get("categories", []))
    assert categories and not categories & names, categories & names
    assert all(set(c["spec"]["names"]["categories"]) == categories for c in all_crds())  # one command lists both


def test_no_free_form_fields_beyond_the_documented_ones() -> None:
    found: list[str] = []

    def walk(node: Any, path: str) -> None:
        if isinstance(node, dict):
            if node.get("x-kubernetes-preserve-unknown-fields"):
                found.append(path)
            for key, child in node.get("properties", {}).items():
                walk(child, f"{path}.{key}")
            if "items" in node:
                walk(node["items"], f"{path}[]")

    for crd in all_crds():
        walk(version_schema(crd), crd["spec"]["names"]["kind"])
    assert sorted(found) == [
        "ModelTrustPolicy.status.operator",
        "OpenModel.status.operator",
    ]


@pytest.mark.parametrize("path", _valid_examples(), ids=lambda p: p.name)
def test_examples_are_admitted(path: Path) -> None:
    for doc in _docs(path):
        stored, errors = admit(CRDS[doc["kind"]], doc)
        assert errors == [], f"{path.name}: {errors}"
        model = OpenModelSpec if doc["kind"] == "OpenModel" else ModelTrustPolicySpec
        model.model_validate(stored["spec"])


@pytest.mark.parametrize("path", _invalid_examples(), ids=lambda p: p.name)
def test_invalid_examples_are_refused_with_a_clear_message(path: Path) -> None:
    # "A || B": the apiserver words some refusals differently for client- and server-side apply
    alternatives = [a.strip() for a in path.read_text().splitlines()[0].removeprefix("# expect: ").split("||")]
    (doc,) = _docs(path)
    _, errors = admit(CRDS[doc["kind"]], doc)
    assert any(e.startswith(a) for e in errors for a in alternatives), (
        f"{path.name}: expected {alternatives}, got {errors}"
    )


def test_minimal_openmodel_gets_documented_defaults() -> None:
    (doc,) = _docs(EXAMPLES / "openmodel-minimal.yaml")
    stored, errors = admit(openmodel_crd(), doc)
    assert errors == []
    spec = stored["spec"]
    assert spec["source"]["revision"] == "main"
    assert spec["serving"] == {
        "runtime": "vllm",
        "replicas": 1,
        "gpus": 1,
        "verifyOnStart": True,
        "port": 8000,
        "access": {"apiKey": False},  # the own namespace only (a NetworkPolicy), no key
    }
    assert spec["storage"] == {
        "size": "20Gi",
        "accessMode": "ReadWriteOnce",
        "retain": False,
        "mode": "Claim",
        "keepRevisions": 1,
    }
    assert spec["updatePolicy"] == "Manual"
    assert spec["trust"] == {"signature": {}}


def test_schema_defaults_match_pydantic_defaults() -> None:
    """The apiserver and the operator must agree on what an omitted field means."""
    (doc,) = _docs(EXAMPLES / "openmodel-minimal.yaml")
    stored, _ = admit(openmodel_crd(), doc)
    from_schema = OpenModelSpec.model_validate(stored["spec"])
    from_pydantic = OpenModelSpec.model_validate(doc["spec"])
    assert from_schema == from_pydantic

    stored_policy, _ = admit(policy_crd(), {"kind": "ModelTrustPolicy", "spec": {"signature": {"required": False}}})
    assert ModelTrustPolicySpec.model_validate(stored_policy["spec"]) == ModelTrustPolicySpec.model_validate(
        {"signature": {"required": False}}
    )


def test_status_has_no_defaults() -> None:
    def defaults(node: Any) -> int:
        if not isinstance(node, dict):
            return 0
        own = 1 if "default" in node else 0
        children = [*node.get("properties", {}).values(), node.get("items")]
        return own + sum(defaults(c) for c in children)

    for crd in all_crds():
        assert defaults(version_schema(crd)["properties"]["status"]) == 0


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"source": {"uri": "hf://a/b", "revision": "-rf"}}, "spec.source.revision in body should match"),
        (
            {"source": {"uri": "hf://a/b"}, "serving": {"runtime": "none", "image": "x"}},
            "serving.image has no effect with runtime: none",
        ),
        ({"source": {"uri": "hf://a/b"}, "storage": {"accessMode": "ReadOnlyMany"}}, "Unsupported value"),
        ({"source": {"uri": "hf://a/b"}, "updatePolicy": "Always"}, 'supported values: "Manual", "Auto"'),
        ({"source": {"uri": "hf://../b"}}, "spec.source.uri in body should match"),
    ],
)
def test_more_typos_are_refused(spec: dict[str, Any], message: str) -> None:
    _, errors = admit(openmodel_crd(), {"kind": "OpenModel", "spec": spec})
    assert any(message in e for e in errors), errors


def test_commit_sha_revision_is_admitted() -> None:
    spec = {"source": {"uri": "hf://a/b", "revision": "0123456789abcdef0123456789abcdef01234567"}}
    assert admit(openmodel_crd(), {"kind": "OpenModel", "spec": spec})[1] == []
