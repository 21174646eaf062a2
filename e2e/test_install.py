"""The install as a cluster admin meets it: CRDs served and printed, examples admitted or refused, RBAC."""

from __future__ import annotations

import pathlib
import re
from collections.abc import Iterator

import pytest
import yaml
from harness import (
    OPERATOR_NAMESPACE,
    OPERATOR_USER,
    ROOT,
    E2EConfig,
    Installation,
    JsonDict,
    Kubectl,
    OperatorIdentity,
    iter_docs,
)

INVALID = sorted((ROOT / "examples" / "invalid").glob("*.yaml"))
VALID = sorted(p for p in (ROOT / "examples").glob("*.yaml"))
SERVICE_ACCOUNT = OPERATOR_USER


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
    assert columns[:6] == ["Phase", "Serving", "Incoming", "Trusted", "Tier", "Ready"], columns
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


ALLOWED = [
    ("patch", "openmodels.openmodel.io", "--subresource=status"),
    ("watch", "modeltrustpolicies.openmodel.io"),
    ("patch", "modeltrustpolicies.openmodel.io", "--subresource=status"),
    ("create", "events"),
    ("patch", "deployments.apps", "-n", "default"),
    ("delete", "jobs.batch", "-n", "default"),
    ("get", "secrets", "-n", "default"),
]
DENIED = [
    ("list", "secrets", "-n", "default"),
    ("create", "pods", "-n", "default"),
    ("create", "pods", "--subresource=exec", "-n", "default"),
    ("update", "openmodels.openmodel.io"),
    ("delete", "openmodels.openmodel.io"),  # a user deletes models; the operator only removes its finalizer
    ("patch", "modeltrustpolicies.openmodel.io"),  # a policy carries no finalizer: never written
    ("update", "modeltrustpolicies.openmodel.io", "--subresource=status"),  # status is patched, never replaced
    ("patch", "namespaces"),
    ("create", "serviceaccounts", "--subresource=token", "-n", OPERATOR_NAMESPACE),  # no tokens of its own
    ("impersonate", "serviceaccounts"),
    ("create", "rolebindings.rbac.authorization.k8s.io", "-n", "default"),
    ("delete", "customresourcedefinitions.apiextensions.k8s.io"),
]


def test_operator_rbac_allows_what_the_operator_does_and_no_more(
    kubectl: Kubectl, installed: Installation, identity: OperatorIdentity
) -> None:
    """Asked twice: impersonating the ServiceAccount (``--as``), and with the token the local operator runs with,
    which must authenticate as exactly that account."""
    if not installed.rbac:
        pytest.skip("manifests/ is absent: no RBAC installed")
    if not kubectl.evaluates_access_reviews() or not kubectl.can_i("get", "namespaces"):
        pytest.skip("this API server evaluates no access reviews (no authorizer, e.g. an emulator)")
    askers = {f"--as={SERVICE_ACCOUNT}": (kubectl, (f"--as={SERVICE_ACCOUNT}",))}
    if identity.kubeconfig is not None:
        askers["the operator's own token"] = (kubectl.with_kubeconfig(identity.kubeconfig), ())
        whoami = askers["the operator's own token"][0].run(
            "auth", "whoami", "-o", "jsonpath={.status.userInfo.username}", check=False
        )
        if whoami.returncode == 0:  # SelfSubjectReview: GA in 1.28
            assert whoami.stdout.strip() == SERVICE_ACCOUNT, whoami.stdout
    for asker, (client, extra) in askers.items():
        for check in ALLOWED:
            assert client.can_i(*check, *extra), f"the operator may not {' '.join(check)} ({asker})"
        for check in DENIED:
            assert not client.can_i(*check, *extra), f"the operator may {' '.join(check)} ({asker})"
