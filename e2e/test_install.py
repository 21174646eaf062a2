"""The install as a cluster admin meets it: CRDs served and printed, examples admitted or refused, RBAC."""

from __future__ import annotations

import pathlib
import re
from collections.abc import Iterator

import pytest
import yaml
from harness import ROOT, E2EConfig, Installation, JsonDict, Kubectl, iter_docs

INVALID = sorted((ROOT / "examples" / "invalid").glob("*.yaml"))
VALID = sorted(p for p in (ROOT / "examples").glob("*.yaml"))
SERVICE_ACCOUNT = "system:serviceaccount:openmodel-system:openmodel-operator"


@pytest.fixture(scope="module")
def scratch(kubectl: Kubectl, installed: Installation, run_id: str, e2e_config: E2EConfig) -> Iterator[str]:
    """One namespace for the server-side dry runs of this module (nothing is created in it)."""
    name = f"e2e-{run_id}-examples"
    kubectl.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
    yield name
    if not e2e_config.keep:
        kubectl.delete("namespace", name)


def _in_namespace(path: pathlib.Path, namespace: str) -> list[JsonDict]:
    """The example's objects, namespaced ones moved into the test namespace."""
    docs = list(iter_docs(path))
    for doc in docs:
        meta = doc.get("metadata")
        if isinstance(meta, dict) and "namespace" in meta:
            meta["namespace"] = namespace
    return docs


def test_crds_are_established_and_print_the_lifecycle(kubectl: Kubectl, installed: Installation) -> None:
    assert set(installed.crds) >= {"openmodels.openmodel.io", "modeltrustpolicies.openmodel.io"}
    crd = kubectl.json("get", "customresourcedefinitions", "openmodels.openmodel.io")
    conditions = {c["type"]: c["status"] for c in crd["status"]["conditions"]}
    assert conditions.get("Established") == "True", conditions
    columns = [c["name"] for c in kubectl.printer_columns("openmodels") if not c.get("priority")]
    assert columns[:5] == ["Phase", "Revision", "Trusted", "Tier", "Ready"], columns
    assert "om" in crd["spec"]["names"].get("shortNames", [])


@pytest.mark.parametrize("path", VALID, ids=[p.stem for p in VALID])
def test_examples_are_admitted(kubectl: Kubectl, scratch: str, path: pathlib.Path) -> None:
    docs = _in_namespace(path, scratch)
    out = kubectl.apply(*docs, extra=["--dry-run=server"])
    assert "serverside-applied" in out, out


@pytest.mark.parametrize("path", INVALID, ids=[p.stem for p in INVALID])
def test_invalid_examples_are_refused_with_their_documented_message(
    kubectl: Kubectl, scratch: str, path: pathlib.Path
) -> None:
    match = re.match(r"#\s*expect:\s*(.+)", path.read_text())
    assert match, f"{path.name} has no '# expect:' first line"
    text = yaml.safe_dump_all(_in_namespace(path, scratch), sort_keys=False)
    proc = kubectl.run("apply", "--server-side", "--dry-run=server", "-f", "-", input=text, check=False)
    assert proc.returncode != 0, f"{path.name} was admitted: {proc.stdout}"
    # "A || B": the wording differs between API server versions (server-side apply reports unknown fields its own way)
    alternatives = [alt.strip() for alt in match.group(1).split("||")]
    assert any(alt in proc.stderr for alt in alternatives), proc.stderr


def _can_i(kubectl: Kubectl, *args: str) -> bool:
    proc = kubectl.run("auth", "can-i", *args, check=False)
    return proc.stdout.strip() == "yes"


def test_operator_rbac_allows_what_the_operator_does_and_no_more(kubectl: Kubectl, installed: Installation) -> None:
    if not installed.rbac:
        pytest.skip("manifests/ is absent: no RBAC installed")
    if not _can_i(kubectl, "get", "namespaces"):
        pytest.skip("this API server evaluates no access reviews (no authorizer, e.g. an emulator)")
    allowed = [
        ("patch", "openmodels.openmodel.io", "--subresource=status"),
        ("watch", "modeltrustpolicies.openmodel.io"),
        ("patch", "modeltrustpolicies.openmodel.io", "--subresource=status"),
        ("create", "events"),
        ("patch", "deployments.apps", "-n", "default"),
        ("delete", "jobs.batch", "-n", "default"),
        ("get", "secrets", "-n", "default"),
    ]
    denied = [
        ("list", "secrets", "-n", "default"),
        ("create", "pods", "-n", "default"),
        ("create", "pods", "--subresource=exec", "-n", "default"),
        ("update", "openmodels.openmodel.io"),
        ("patch", "modeltrustpolicies.openmodel.io"),  # a policy carries no finalizer: never written
        ("delete", "customresourcedefinitions.apiextensions.k8s.io"),
    ]
    for check in allowed:
        assert _can_i(kubectl, *check, f"--as={SERVICE_ACCOUNT}"), f"the operator may not {' '.join(check)}"
    for check in denied:
        assert not _can_i(kubectl, *check, f"--as={SERVICE_ACCOUNT}"), f"the operator may {' '.join(check)}"
