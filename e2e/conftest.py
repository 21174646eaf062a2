"""Fixtures of the e2e suite: a cluster named by ``E2E_KUBECONFIG``, the operator, a Hub stand-in (docs/e2e.md).

Without ``E2E_KUBECONFIG`` every test is skipped. The suite never reads ``KUBECONFIG``.
"""

from __future__ import annotations

import itertools
import os
import pathlib
import secrets
import shutil
import subprocess
import warnings
from collections.abc import Callable, Generator, Iterator

import pytest
import yaml
from harness import (
    CASE_LABEL,
    RBAC_KINDS,
    ROOT,
    RUN_LABEL,
    Case,
    E2EConfig,
    E2EHub,
    InClusterOperator,
    Installation,
    KeyPair,
    Kubectl,
    LocalOperator,
    Operator,
    OperatorIdentity,
    new_key,
    operator_identity,
    sign_with_key,
    wait_for,
    write_model,
)

OPERATOR_KEY = pytest.StashKey[Operator]()
IDENTITY_KEY = pytest.StashKey[OperatorIdentity]()
README = b"---\nlicense: apache-2.0\ndatasets: [example/corpus]\n---\n# e2e test model\n"
Publish = Callable[..., str]
_numbers = itertools.count(1)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if os.environ.get("E2E_KUBECONFIG"):
        return
    skip = pytest.mark.skip(
        reason="E2E_KUBECONFIG is not set: the e2e suite runs against the cluster it names (docs/e2e.md)"
    )
    for item in items:
        item.add_marker(skip)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, config: pytest.Config) -> None:
    """Whose credentials the operator had: the shipped ServiceAccount, or why not."""
    identity = config.stash.get(IDENTITY_KEY, None)
    if identity is not None:
        terminalreporter.write_line(f"e2e: {identity.description}")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """A failed test's report ends with the operator's log."""
    report = yield
    operator = item.stash.get(OPERATOR_KEY, None)
    if report.failed and operator is not None:
        report.sections.append(("operator log (last lines)", operator.logs()))
    return report


# ---------------------------------------------------------------- session


@pytest.fixture(scope="session")
def e2e_config() -> E2EConfig:
    config = E2EConfig.from_env(os.environ)
    reason = config.skip_reason()
    if reason:
        pytest.skip(reason)
    return config


@pytest.fixture(scope="session")
def kubectl(e2e_config: E2EConfig, tmp_path_factory: pytest.TempPathFactory) -> Kubectl:
    kubectl = Kubectl(e2e_config, tmp_path_factory.mktemp("kubectl-cache"))
    proc = kubectl.run("version", "-o", "yaml", check=False, timeout=60)
    if proc.returncode != 0 or "serverVersion" not in proc.stdout:
        pytest.fail(f"cannot reach the API server of E2E_KUBECONFIG={e2e_config.kubeconfig}: {proc.stderr.strip()}")
    if e2e_config.simulate and kubectl.run("get", "nodes", "-o", "name", check=False).stdout.strip():
        warnings.warn(
            "E2E_SIMULATE_WORKLOADS=1 on a cluster with nodes: its Job and Deployment controllers may overwrite "
            "the status the suite writes (simulation is meant for control-plane-only clusters)",
            stacklevel=1,
        )
    return kubectl


@pytest.fixture(scope="session")
def run_id() -> str:
    """Names this run's namespaces and policies, so two runs on one cluster do not collide.

    Starts with a letter: an all-hex id such as ``12e456`` is a number to kubectl's YAML reader, and a label
    value must be a string (a run with such an id failed to apply its objects).
    """
    return "r" + secrets.token_hex(3)


@pytest.fixture(scope="session")
def installed(kubectl: Kubectl, e2e_config: E2EConfig) -> Installation:
    """The CRDs (``openmodel crds | kubectl apply --server-side -f -``) and manifests/' RBAC when present."""
    if shutil.which(e2e_config.openmodel):
        crds = _run_openmodel_crds(e2e_config)
    else:  # in-cluster mode may run without the CLI: the generated files are the same (a unit test says so)
        crds = "".join(f"---\n{path.read_text()}" for path in sorted((ROOT / "crds").glob("*.yaml")))
    # --force-conflicts: the suite owns the CRDs of the cluster it was given (a fresh one)
    kubectl.run("apply", "--server-side", "--force-conflicts", "-f", "-", input=crds)
    names = tuple(d["metadata"]["name"] for d in yaml.safe_load_all(crds) if isinstance(d, dict))
    kubectl.run("wait", "--for=condition=Established", *[f"crd/{n}" for n in names], "--timeout=60s")
    _wait_until_schema_enforced(kubectl, e2e_config.timeout)
    rbac = False
    if (ROOT / "manifests").is_dir() and not e2e_config.in_cluster:
        rendered = kubectl.run("kustomize", str(ROOT / "manifests")).stdout
        # the RBAC, and the (empty) webhook configuration the operator patches its webhooks into
        kinds = RBAC_KINDS | {"ValidatingWebhookConfiguration"}
        docs = [d for d in yaml.safe_load_all(rendered) if isinstance(d, dict) and d.get("kind") in kinds]
        if docs:
            kubectl.apply(*docs, force=True)
            rbac = any(d["kind"] in ("ClusterRole", "Role") for d in docs)
    return Installation(crds=names, rbac=rbac or e2e_config.in_cluster)


def _wait_until_schema_enforced(kubectl: Kubectl, timeout: float) -> None:
    """An Established CRD may admit anything for a few seconds (kubernetes#104090): wait for its schema."""
    invalid = {
        "apiVersion": "openmodel.io/v1alpha1",
        "kind": "OpenModel",
        "metadata": {"name": "e2e-schema-probe", "namespace": "default"},
        "spec": {"source": {"uri": "hf://e2e/probe"}, "serving": {"replicas": -1}},
    }
    text = yaml.safe_dump(invalid)

    def refused() -> bool:
        proc = kubectl.run("apply", "--server-side", "--dry-run=server", "-f", "-", input=text, check=False)
        return proc.returncode != 0 and "spec.serving.replicas" in proc.stderr

    wait_for("the OpenModel schema to be enforced", refused, timeout)


def _run_openmodel_crds(config: E2EConfig) -> str:
    proc = subprocess.run([config.openmodel, "crds"], check=True, capture_output=True, text=True)
    return str(proc.stdout)


@pytest.fixture(scope="session")
def identity(
    request: pytest.FixtureRequest,
    kubectl: Kubectl,
    e2e_config: E2EConfig,
    installed: Installation,
    tmp_path_factory: pytest.TempPathFactory,
) -> OperatorIdentity:
    """The operator's credentials: a token of the shipped ServiceAccount where the server authorizes requests."""
    found = operator_identity(kubectl, e2e_config, installed.rbac, tmp_path_factory.mktemp("operator-identity"))
    request.config.stash[IDENTITY_KEY] = found
    return found


@pytest.fixture(scope="session")
def cluster_operator(installed: Installation, kubectl: Kubectl, e2e_config: E2EConfig) -> Iterator[Operator | None]:
    """In-cluster mode: the operator from manifests/ for the whole session (watching every namespace)."""
    if not e2e_config.in_cluster:
        yield None
        return
    operator = InClusterOperator(kubectl, e2e_config)
    operator.install()
    yield operator
    if not e2e_config.keep:
        operator.stop()


@pytest.fixture(scope="session")
def hub(e2e_config: E2EConfig) -> Iterator[E2EHub]:
    """The Hub stand-in of tests/hubstub.py, reachable from pods at E2E_HUB_ENDPOINT when that is set."""
    stub = E2EHub(e2e_config.hub_bind, e2e_config.hub_endpoint).start()
    try:
        yield stub
    finally:
        stub.stop()


@pytest.fixture(scope="session")
def signing_key() -> KeyPair:
    """The key the test models are signed with and the test policies trust."""
    return new_key()


@pytest.fixture(scope="session")
def publish(hub: E2EHub, signing_key: KeyPair, tmp_path_factory: pytest.TempPathFactory) -> Publish:
    """``publish(repo, signed=True)``: a small model on the Hub stand-in; returns the commit."""

    def publish(repo: str, signed: bool = True) -> str:
        files = {
            "README.md": README,
            "config.json": b'{"hidden_size": 8}\n',
            "model.safetensors": os.urandom(4096),
            "tokenizer.json": b'{"version": "1.0"}\n',
        }
        if signed:
            work = tmp_path_factory.mktemp("model")
            files["model.sig"] = sign_with_key(write_model(work / "src", files), signing_key, work / "sig")
        return hub.add_model(repo, files)

    return publish


# ---------------------------------------------------------------- per test


@pytest.fixture
def namespace(kubectl: Kubectl, e2e_config: E2EConfig, installed: Installation, run_id: str) -> Iterator[str]:
    """A fresh namespace for one test, labelled so that only this test's policy governs it."""
    name = f"e2e-{run_id}-{next(_numbers)}"
    labels = {RUN_LABEL: run_id, CASE_LABEL: name}
    kubectl.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": labels}})
    yield name
    if not e2e_config.keep:
        kubectl.delete("namespace", name)  # never waited on: envtest has no namespace controller


@pytest.fixture
def case(
    request: pytest.FixtureRequest,
    kubectl: Kubectl,
    e2e_config: E2EConfig,
    hub: E2EHub,
    cluster_operator: Operator | None,
    identity: OperatorIdentity,
    namespace: str,
    run_id: str,
    tmp_path: pathlib.Path,
) -> Iterator[Case]:
    """A namespace with an operator watching it (a local ``openmodel run`` per test, or the in-cluster one).

    A local operator runs as the shipped ServiceAccount where the API server authorizes (``identity``): a
    refusal in its log fails the test (harness.FATAL_LOG_LINES), during the test and once more after it.
    """
    if cluster_operator is not None:
        operator, owns = cluster_operator, False
    else:
        local = LocalOperator(e2e_config, [namespace], tmp_path / "operator.log", identity.kubeconfig, identity.user)
        operator, owns = local, True
        request.node.stash[OPERATOR_KEY] = local
        try:
            local.wait_ready(e2e_config.timeout)
        except BaseException:
            local.stop()
            raise
    request.node.stash[OPERATOR_KEY] = operator
    case = Case(kubectl, e2e_config, hub, namespace, run_id, operator, owns)
    try:
        yield case
        operator.check()  # what the operator did after the test's last wait (a refused request, an exit)
    finally:
        if e2e_config.keep:
            if owns:
                operator.stop()
        else:
            case.cleanup()
