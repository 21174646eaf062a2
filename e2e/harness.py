"""The e2e suite's view of a cluster: kubectl only (no client library), the Hub stand-in, the operator process.

Everything here talks to the cluster named by ``E2E_KUBECONFIG`` through ``kubectl --kubeconfig``; the
user's ``KUBECONFIG`` is never read (it is removed from kubectl's environment, and the operator process gets
``KUBECONFIG=$E2E_KUBECONFIG`` explicitly). See docs/e2e.md for the modes and variables.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import json
import os
import pathlib
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from http.server import ThreadingHTTPServer
from typing import Any, TypeVar

import yaml

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

# tests/ helpers: the Hub stand-in and signing (re-exported for conftest.py)
from hubstub import HubStub, _Handler  # noqa: E402
from signing_fixtures import KeyPair, new_key, sign_with_key, write_model  # noqa: E402

__all__ = ["KeyPair", "new_key", "sign_with_key", "write_model"]

JsonDict = dict[str, Any]
T = TypeVar("T")

GROUP_VERSION = "openmodel.io/v1alpha1"
RUN_LABEL = "e2e.openmodel.io/run"
CASE_LABEL = "e2e.openmodel.io/case"
NAME_LABEL = "openmodel.io/name"
MANAGED_BY = "app.kubernetes.io/managed-by=openmodel-operator"
CHILD_KINDS = "deployments,services,jobs,configmaps,persistentvolumeclaims,networkpolicies,secrets"
RBAC_KINDS = {"Namespace", "ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"}
OPERATOR_NAMESPACE = "openmodel-system"
OPERATOR_DEPLOYMENT = "openmodel-operator"
OPERATOR_SERVICE_ACCOUNT = "openmodel-operator"  # manifests/base/serviceaccount.yaml
OPERATOR_USER = f"system:serviceaccount:{OPERATOR_NAMESPACE}:{OPERATOR_SERVICE_ACCOUNT}"
OPERATOR_TOKEN_SECONDS = 4 * 3600  # the session's TokenRequest (the API server may shorten it, never below 10 min)
# Operator log lines after which it can never become useful: fail at once instead of waiting for a timeout.
FATAL_LOG_LINES = {
    "Ran out of valid credentials": (
        "the operator could not authenticate with E2E_KUBECONFIG: no Kopf login handler returned credentials "
        "(a bare kopf.OperatorRegistry has none of Kopf's default ones, e.g. kopf.login_with_kubeconfig)"
    ),
    # the API server's words for an RBAC refusal; seen only when the operator runs as its ServiceAccount
    f'is forbidden: User "{OPERATOR_USER}"': (
        f"the API server refused a request of the operator running as {OPERATOR_USER}: the shipped RBAC "
        "(manifests/) lacks a grant the operator uses (docs/rbac.md; tests/test_rbac_derived.py derives them)"
    ),
}


def truthy(value: str | None) -> bool:
    return (value or "").strip().lower() in ("1", "true", "yes", "on")


def rfc3339(moment: datetime.datetime | None = None) -> str:
    return (moment or datetime.datetime.now(datetime.UTC)).strftime("%Y-%m-%dT%H:%M:%SZ")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# ---------------------------------------------------------------- configuration


@dataclasses.dataclass(frozen=True)
class E2EConfig:
    """What the environment asks for (docs/e2e.md lists every variable)."""

    kubeconfig: pathlib.Path
    in_cluster: bool
    simulate: bool
    image: str | None
    hub_endpoint: str | None
    hub_bind: tuple[str, int]
    timeout: float
    keep: bool
    operator_args: tuple[str, ...]
    kubectl: str
    openmodel: str
    # "serviceaccount": a local operator runs as the shipped ServiceAccount where the server authorizes;
    # "kubeconfig": always with E2E_KUBECONFIG's own credentials
    operator_identity: str = "serviceaccount"
    # Where the API server reaches a local operator's admission webhooks (by URL): this machine's address as the
    # API server sees it. None: it cannot (a kind cluster without E2E_WEBHOOK_HOST), the webhooks are off.
    webhook_host: str | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> E2EConfig:
        endpoint = (env.get("E2E_HUB_ENDPOINT") or "").rstrip("/") or None
        bind_text = env.get("E2E_HUB_BIND") or ""
        if bind_text:
            host, _, port = bind_text.rpartition(":")
            bind = (host or "0.0.0.0", int(port))
        elif endpoint:
            # reachable from pods: listen on every interface, on the endpoint's port
            port_match = re.search(r":(\d+)$", endpoint.split("//", 1)[-1].split("/", 1)[0])
            bind = ("0.0.0.0", int(port_match.group(1)) if port_match else 80)
        else:
            bind = ("127.0.0.1", 0)
        return cls(
            kubeconfig=pathlib.Path(env.get("E2E_KUBECONFIG", "")).expanduser().resolve(),
            in_cluster=truthy(env.get("E2E_IN_CLUSTER")),
            simulate=truthy(env.get("E2E_SIMULATE_WORKLOADS")),
            image=env.get("E2E_IMAGE") or None,
            hub_endpoint=endpoint,
            hub_bind=bind,
            timeout=float(env.get("E2E_TIMEOUT") or 120),
            keep=truthy(env.get("E2E_KEEP")),
            operator_args=tuple((env.get("E2E_OPERATOR_ARGS") or "").split()),
            kubectl=env.get("E2E_KUBECTL") or "kubectl",
            openmodel=env.get("E2E_OPENMODEL") or "openmodel",
            operator_identity=(env.get("E2E_OPERATOR_IDENTITY") or "serviceaccount").strip().lower(),
            # a control-plane-only cluster (envtest, the emulator) runs its API server on this machine: loopback
            webhook_host=env.get("E2E_WEBHOOK_HOST")
            or ("127.0.0.1" if truthy(env.get("E2E_SIMULATE_WORKLOADS")) else None),
        )

    def webhooks_reachable(self) -> str | None:
        """Why the API server cannot call the operator's webhooks here, or None when it can."""
        if self.in_cluster or self.webhook_host:
            return None
        return (
            "the API server cannot reach a webhook on this machine: a local operator serves its webhooks by URL "
            "(clientConfig.url); set E2E_WEBHOOK_HOST to this machine's address as the API server sees it (kind: "
            "the docker network's gateway, e.g. 172.18.0.1), or use E2E_IN_CLUSTER=1 (through the Service)"
        )

    def webhook_args(self, operator_user: str) -> list[str]:
        """``openmodel run`` flags for a local operator's webhooks: by URL on ``webhook_host``, else off."""
        if not self.webhook_host:
            return ["--webhooks", "off"]
        loopback = self.webhook_host in ("127.0.0.1", "localhost", "::1")
        return [
            "--webhook-url-host",
            self.webhook_host,
            "--webhook-address",
            "127.0.0.1" if loopback else "0.0.0.0",
            "--webhook-port",
            str(free_port()),
            "--operator-user",
            operator_user,
        ]

    @property
    def operator_image(self) -> str:
        """The image of the fetch Jobs (and, in-cluster, of the operator)."""
        return self.image or "ghcr.io/openmodel-operator/openmodel-operator:e2e"

    @property
    def serving_replicas(self) -> int:
        """1 where the suite plays the Deployment controller; 0 on real nodes (no vLLM, no GPU needed)."""
        return 1 if self.simulate else 0

    def skip_reason(self) -> str | None:
        """Why this environment cannot run the suite, or None."""
        if self.operator_identity not in ("serviceaccount", "kubeconfig"):
            return f"E2E_OPERATOR_IDENTITY={self.operator_identity!r} is neither serviceaccount nor kubeconfig"
        if not self.kubeconfig.is_file():
            return f"E2E_KUBECONFIG={self.kubeconfig} is not a file"
        for tool in {self.kubectl} | (set() if self.in_cluster else {self.openmodel}):
            if shutil.which(tool) is None:
                return f"{tool!r} is not on PATH (put the project's venv on PATH: source .venv/bin/activate)"
        if self.in_cluster and self.simulate:
            return (
                "E2E_IN_CLUSTER=1 runs the operator as a pod, which a control-plane-only cluster "
                "(E2E_SIMULATE_WORKLOADS=1) cannot start; unset one of them"
            )
        if self.in_cluster and not (ROOT / "manifests").is_dir():
            return "E2E_IN_CLUSTER=1 installs manifests/, which this checkout does not have"
        if (self.in_cluster or not self.simulate) and not self.image:
            return (
                "pods run here (no E2E_SIMULATE_WORKLOADS): set E2E_IMAGE to the operator image the nodes can "
                "pull (kind load docker-image ...), which runs the fetch Jobs" + (" and the operator" * self.in_cluster)
            )
        if (self.in_cluster or not self.simulate) and not self.hub_endpoint:
            return (
                "pods run here and download from the Hub stand-in: set E2E_HUB_ENDPOINT to a URL where pods "
                "(and this machine) reach it, e.g. http://172.18.0.1:8765 for kind's docker network; or use "
                "E2E_SIMULATE_WORKLOADS=1 on a control-plane-only cluster"
            )
        return None


@dataclasses.dataclass(frozen=True)
class Installation:
    """What the session installed."""

    crds: tuple[str, ...]
    rbac: bool  # manifests/ RBAC (ServiceAccount, ClusterRole, binding) is installed


# ---------------------------------------------------------------- kubectl


class KubectlError(AssertionError):
    def __init__(self, args: Sequence[str], proc: subprocess.CompletedProcess[str]) -> None:
        super().__init__(f"kubectl {' '.join(args)} failed ({proc.returncode}): {proc.stderr.strip() or proc.stdout}")
        self.proc = proc

    @property
    def not_found(self) -> bool:
        return "NotFound" in self.proc.stderr or "not found" in self.proc.stderr


def parse_table(text: str) -> list[dict[str, str]]:
    """Rows of kubectl's column output, cut at the header's column starts (so empty cells stay empty)."""
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines:
        return []
    starts = [(m.start(), m.group()) for m in re.finditer(r"\S+", lines[0])]
    rows = []
    for line in lines[1:]:
        row = {}
        for i, (start, name) in enumerate(starts):
            end = starts[i + 1][0] if i + 1 < len(starts) else None
            cell = line[start:end].strip()
            row[name] = "" if cell in ("<none>", "<nil>") else cell
        rows.append(row)
    return rows


class Kubectl:
    """``kubectl --kubeconfig $E2E_KUBECONFIG`` with a private discovery cache."""

    def __init__(self, config: E2EConfig, cache_dir: pathlib.Path) -> None:
        self.config = config
        self.cache_dir = cache_dir
        self.env = {k: v for k, v in os.environ.items() if k != "KUBECONFIG"}
        self._table_fallback_warned = False

    def run(
        self, *args: str, input: str | None = None, check: bool = True, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        command = [
            self.config.kubectl,
            "--kubeconfig",
            str(self.config.kubeconfig),
            "--cache-dir",
            str(self.cache_dir),
            *args,
        ]
        proc = subprocess.run(command, input=input, capture_output=True, text=True, env=self.env, timeout=timeout)
        if check and proc.returncode != 0:
            raise KubectlError(args, proc)
        return proc

    def json(self, *args: str) -> Any:
        return json.loads(self.run(*args, "-o", "json").stdout)

    def with_kubeconfig(self, kubeconfig: pathlib.Path) -> Kubectl:
        """The same kubectl with other credentials (its own discovery cache)."""
        config = dataclasses.replace(self.config, kubeconfig=kubeconfig)
        return Kubectl(config, self.cache_dir.with_name(self.cache_dir.name + "-" + kubeconfig.stem))

    def can_i(self, *args: str) -> bool:
        """``kubectl auth can-i ...`` answered yes."""
        return self.run("auth", "can-i", *args, check=False).stdout.strip() == "yes"

    def evaluates_access_reviews(self) -> bool:
        """The API server answers SelfSubjectAccessReviews (it has an authorizer); the emulator refuses them."""
        return self.run("auth", "can-i", "get", "namespaces", check=False).stdout.strip() in ("yes", "no")

    def get(self, kind: str, name: str, namespace: str | None = None) -> JsonDict | None:
        """The object, or None when it does not exist."""
        scope = ["-n", namespace] if namespace else []
        try:
            obj: JsonDict = self.json("get", kind, name, *scope)
        except KubectlError as exc:
            if exc.not_found:
                return None
            raise
        return obj

    def items(self, kind: str, namespace: str, *selectors: str) -> list[JsonDict]:
        items: list[JsonDict] = self.json("get", kind, "-n", namespace, *selectors)["items"]
        return items

    def apply(self, *docs: JsonDict, force: bool = False, extra: Sequence[str] = ()) -> str:
        """``kubectl apply --server-side`` of manifests given as dicts."""
        flags = ["--force-conflicts"] if force else []
        text = yaml.safe_dump_all(docs, sort_keys=False)
        return self.run("apply", "--server-side", *flags, *extra, "-f", "-", input=text).stdout

    def patch(self, kind: str, name: str, namespace: str | None, patch: JsonDict, subresource: str = "") -> None:
        scope = ["-n", namespace] if namespace else []
        sub = [f"--subresource={subresource}"] if subresource else []
        self.run("patch", kind, name, *scope, *sub, "--type=merge", "-p", json.dumps(patch))

    def delete(self, kind: str, name: str, namespace: str | None = None) -> None:
        """Delete without waiting (finalizers may be pending; namespaces never finish on envtest)."""
        scope = ["-n", namespace] if namespace else []
        self.run("delete", kind, name, *scope, "--wait=false", "--ignore-not-found")

    # ------------------------------------------------------------ server-side printing

    def table(self, resource: str, namespace: str, *args: str) -> list[dict[str, str]]:
        """``kubectl get <resource>`` as rows keyed by column header, as a user reads it.

        A server without server-side printing answers plain JSON, which kubectl prints as NAME and AGE only;
        then the columns come from the CRD's ``additionalPrinterColumns`` through ``-o custom-columns``
        (a warning says so). Every real kube-apiserver prints tables.
        """
        out = self.run("get", resource, "-n", namespace, *args).stdout
        rows = parse_table(out)
        header = out.split("\n", 1)[0].split()
        if header != ["NAME", "AGE"]:
            return rows
        if not self._table_fallback_warned:
            warnings.warn(
                "the API server does not print Tables for custom resources (kubectl shows NAME and AGE only); "
                "printer columns are read with -o custom-columns instead",
                stacklevel=2,
            )
            self._table_fallback_warned = True
        wide = "wide" in args or "-owide" in args
        plain = [a for a in args if a not in ("-o", "wide", "-owide")]
        columns = ["NAME:.metadata.name"] + [
            f"{c['name'].upper()}:{c['jsonPath']}"
            for c in self.printer_columns(resource)
            if wide or not c.get("priority")
        ]
        return parse_table(
            self.run("get", resource, "-n", namespace, *plain, "-o", "custom-columns=" + ",".join(columns)).stdout
        )

    def printer_columns(self, resource: str) -> list[JsonDict]:
        crd = self.json("get", "customresourcedefinitions", f"{resource}.openmodel.io")
        version = next(v for v in crd["spec"]["versions"] if v.get("storage"))
        columns: list[JsonDict] = version.get("additionalPrinterColumns") or []
        return columns


# ---------------------------------------------------------------- waiting


def wait_for(
    what: str,
    probe: Callable[[], T | None],
    timeout: float,
    check: Callable[[], None] | None = None,
    interval: float = 0.5,
) -> T:
    """Poll ``probe`` until it returns something truthy; ``check`` fails fast (the operator died)."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        if check is not None:
            check()
        result = probe()
        last = result
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what} (last: {last!r})")
        time.sleep(interval)


# ---------------------------------------------------------------- the Hub stand-in


class E2EHub(HubStub):
    """tests/hubstub.HubStub on a chosen address, announced under ``public_url`` (pods' view) when given.

    With a public URL, LFS files are served directly: the stub's CDN redirect points at ``localhost``, which
    inside a pod is the pod itself.
    """

    def __init__(self, bind: tuple[str, int], public_url: str | None) -> None:
        super().__init__(lfs_redirect=public_url is None)
        self.bind = bind
        self.public_url = public_url

    def start(self) -> E2EHub:
        handler = type("BoundHandler", (_Handler,), {"stub": self})
        self._server = ThreadingHTTPServer(self.bind, handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name="e2e-hub", daemon=True
        )
        self._thread.start()
        return self

    @property
    def url(self) -> str:
        return self.public_url or f"http://127.0.0.1:{self.port}"


# ---------------------------------------------------------------- the operator


class Operator:
    """What the tests need of a running operator, wherever it runs."""

    def check(self) -> None:
        """Raise if the operator can no longer make progress."""

    def logs(self, lines: int = 120) -> str:
        return ""

    def metrics(self) -> str | None:
        """The Prometheus exposition, where this machine can reach it."""
        return None

    def stop(self) -> None:
        """Stop the operator."""


@dataclasses.dataclass(frozen=True)
class OperatorIdentity:
    """Whose credentials a local operator runs with, and why (the session's summary prints ``description``)."""

    kubeconfig: pathlib.Path | None  # None: E2E_KUBECONFIG itself
    user: str | None  # the Kubernetes user it authenticates as, when known
    description: str


def operator_identity(
    kubectl: Kubectl, config: E2EConfig, rbac_installed: bool, directory: pathlib.Path
) -> OperatorIdentity:
    """The shipped ServiceAccount wherever the API server authorizes requests, else E2E_KUBECONFIG's user.

    Neither Kopf's ``login_with_kubeconfig`` nor lightkube's ``KubeConfig`` reads a kubeconfig's impersonation
    fields (``as``, ``as-groups``): with them both clients would silently stay the admin. So the operator gets a
    kubeconfig of its own with a TokenRequest token of the ServiceAccount (``kubectl create token``), and every
    request it makes, Kopf's and its own, is authorized as that account against the shipped RBAC.
    """
    if config.in_cluster:
        return OperatorIdentity(None, OPERATOR_USER, f"the in-cluster operator pod runs as {OPERATOR_USER}")
    own = "the local operator ran with E2E_KUBECONFIG's own credentials"
    if config.operator_identity == "kubeconfig":
        return OperatorIdentity(
            None, None, f"{own} (E2E_OPERATOR_IDENTITY=kubeconfig): the shipped RBAC is not exercised"
        )
    if not kubectl.evaluates_access_reviews():
        return OperatorIdentity(
            None,
            None,
            f"{own}: this API server evaluates no access reviews (no authorizer, e.g. the project's emulator), "
            "so there is no RBAC to run it under",
        )
    if not rbac_installed:
        return OperatorIdentity(None, None, f"{own}: manifests/ is absent, so there is no ServiceAccount to run as")
    proc = kubectl.run(
        "create",
        "token",
        OPERATOR_SERVICE_ACCOUNT,
        "-n",
        OPERATOR_NAMESPACE,
        f"--duration={OPERATOR_TOKEN_SECONDS}s",
        check=False,
    )
    token = proc.stdout.strip()
    if proc.returncode != 0 or not token:
        raise AssertionError(
            f"cannot get a token for {OPERATOR_USER} (kubectl create token: {proc.stderr.strip()}); the operator must "
            "run under the shipped RBAC where the server authorizes requests. E2E_OPERATOR_IDENTITY=kubeconfig runs it "
            "with E2E_KUBECONFIG's credentials instead"
        )
    view: JsonDict = kubectl.json("config", "view", "--raw", "--minify", "--flatten")
    (context,) = view["contexts"]
    context["context"]["user"] = OPERATOR_SERVICE_ACCOUNT
    view["users"] = [{"name": OPERATOR_SERVICE_ACCOUNT, "user": {"token": token}}]
    path = directory / "operator.kubeconfig"
    path.touch(mode=0o600)
    path.write_text(yaml.safe_dump(view, sort_keys=False))
    return OperatorIdentity(
        path,
        OPERATOR_USER,
        f"the local operator ran as {OPERATOR_USER} (a TokenRequest token in a kubeconfig of its own): every request "
        "it made was authorized against the shipped RBAC",
    )


class LocalOperator(Operator):
    """``openmodel run --standalone --namespace NS`` as a subprocess, with ``KUBECONFIG`` naming its credentials:
    E2E_KUBECONFIG, or the shipped ServiceAccount's (``operator_identity``)."""

    def __init__(
        self,
        config: E2EConfig,
        namespaces: Sequence[str],
        log_path: pathlib.Path,
        kubeconfig: pathlib.Path | None = None,
        operator_user: str | None = None,
    ) -> None:
        self.config = config
        self.log_path = log_path
        self.health_port = free_port()
        self.metrics_port = free_port()
        command = [config.openmodel, "run", "--standalone"]
        for namespace in namespaces:
            command += ["--namespace", namespace]
        command += [
            "--resync-interval",
            "5",
            "--operator-image",
            config.operator_image,
            "--health-port",
            str(self.health_port),
            "--metrics-port",
            str(self.metrics_port),
            # pvc:// sources: a port of its own per process (the Jobs' pods report to it where they can run)
            "--claim-report-port",
            str(free_port()),
            "--verbose",
            # the children guard lets only this user change managed children; when the operator runs with
            # E2E_KUBECONFIG's own (admin) credentials, those pass as break-glass (system:masters)
            *config.webhook_args(operator_user or OPERATOR_USER),
            *config.operator_args,
        ]
        self.command = command
        env = {k: v for k, v in os.environ.items() if not k.startswith("OPENMODEL_")}
        env.update(KUBECONFIG=str(kubeconfig or config.kubeconfig), PYTHONUNBUFFERED="1")
        self._log = log_path.open("w")
        self.process = subprocess.Popen(
            command, stdout=self._log, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )

    def wait_ready(self, timeout: float) -> None:
        """Until Kopf's liveness endpoint answers (the operator logged in and started its watches)."""

        def healthy() -> bool:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.health_port}/healthz", timeout=2) as rsp:
                    return bool(rsp.status == 200)
            except (urllib.error.URLError, OSError):
                return False

        wait_for("the operator's /healthz", healthy, timeout, self.check)

    def check(self) -> None:
        code = self.process.poll()
        if code is not None:
            raise AssertionError(f"the operator exited with {code}; its log:\n{self.logs()}")
        text = self.log_path.read_text(errors="replace")
        for line, meaning in FATAL_LOG_LINES.items():
            if line in text:
                raise AssertionError(f"{meaning} (the operator log follows the test report)")

    def logs(self, lines: int = 120) -> str:
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def metrics(self) -> str | None:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5) as rsp:
            return str(rsp.read().decode())

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        self._log.close()


class InClusterOperator(Operator):
    """The operator installed from manifests/ (``kubectl kustomize``), with ``E2E_IMAGE``."""

    def __init__(self, kubectl: Kubectl, config: E2EConfig) -> None:
        self.kubectl = kubectl
        self.config = config

    def install(self) -> None:
        rendered = self.kubectl.run("kustomize", str(ROOT / "manifests")).stdout
        docs = [doc for doc in yaml.safe_load_all(rendered) if isinstance(doc, dict)]
        for doc in docs:
            if doc.get("kind") == "Deployment" and doc["metadata"]["name"] == OPERATOR_DEPLOYMENT:
                configure_operator_deployment(doc, self.config.operator_image)
        self.kubectl.apply(*docs, force=True)
        try:
            self.kubectl.run(
                "rollout",
                "status",
                f"deployment/{OPERATOR_DEPLOYMENT}",
                "-n",
                OPERATOR_NAMESPACE,
                f"--timeout={int(self.config.timeout)}s",
                timeout=self.config.timeout + 30,
            )
        except AssertionError as exc:
            raise AssertionError(f"{exc}\nthe operator's log:\n{self.logs()}") from None

    def check(self) -> None:
        deployment = self.kubectl.get("deployment", OPERATOR_DEPLOYMENT, OPERATOR_NAMESPACE)
        if deployment is None:
            raise AssertionError(f"the operator Deployment {OPERATOR_NAMESPACE}/{OPERATOR_DEPLOYMENT} is gone")

    def logs(self, lines: int = 120) -> str:
        proc = self.kubectl.run(
            "logs", f"deployment/{OPERATOR_DEPLOYMENT}", "-n", OPERATOR_NAMESPACE, f"--tail={lines}", check=False
        )
        return proc.stdout + proc.stderr

    def stop(self) -> None:
        self.kubectl.delete("deployment", OPERATOR_DEPLOYMENT, OPERATOR_NAMESPACE)


def configure_operator_deployment(deployment: JsonDict, image: str) -> None:
    """Point the manifests' operator at the e2e image (it also runs the fetch Jobs) and resync faster."""
    container = next(c for c in deployment["spec"]["template"]["spec"]["containers"] if c["name"] == "operator")
    container["image"] = image
    container["imagePullPolicy"] = "IfNotPresent"
    env = {e["name"]: e for e in container.get("env") or []}
    env["OPENMODEL_OPERATOR_IMAGE"] = {"name": "OPENMODEL_OPERATOR_IMAGE", "value": image}
    env["OPENMODEL_RESYNC_INTERVAL"] = {"name": "OPENMODEL_RESYNC_INTERVAL", "value": "5"}
    container["env"] = list(env.values())


# ---------------------------------------------------------------- one test's namespace


@dataclasses.dataclass
class Case:
    """One test's namespace, policy and models, and the user-visible state of them."""

    kubectl: Kubectl
    config: E2EConfig
    hub: E2EHub
    namespace: str
    run_id: str
    operator: Operator
    owns_operator: bool  # a per-test local operator, stopped with the case
    policies: list[str] = dataclasses.field(default_factory=list)

    # ------------------------------------------------------------ writing

    def policy(self, mode: str = "Enforce", public_pem: bytes = b"", allow: Sequence[str] = ("hf://e2e/*",)) -> str:
        """A ModelTrustPolicy that governs only this namespace and trusts the test's signing key."""
        name = self.namespace
        self.kubectl.apply(
            {
                "apiVersion": GROUP_VERSION,
                "kind": "ModelTrustPolicy",
                "metadata": {"name": name, "labels": {RUN_LABEL: self.run_id}},
                "spec": {
                    "mode": mode,
                    "namespaceSelector": {"matchLabels": {CASE_LABEL: self.namespace}},
                    # the Hub stand-in is a mirror, not the public Hub: allow its origin
                    "sources": {"allow": list(allow), "endpoints": {"allow": [self.hub.url]}},
                    "signature": {
                        "required": True,
                        "keys": [{"name": "e2e-release", "publicKey": public_pem.decode()}],
                    },
                    "licenses": {"allowOSIApproved": True},
                },
            }
        )
        if name not in self.policies:
            self.policies.append(name)
        return name

    def model(
        self,
        repo: str,
        name: str = "m",
        retain: bool = False,
        revision: str | None = None,
        storage: JsonDict | None = None,
        adapters: dict[str, str] | None = None,
        serving: JsonDict | None = None,
    ) -> None:
        """An OpenModel of ``repo`` on the Hub stand-in; ``adapters``: LoRA adapter name -> its repo there."""
        source = {"uri": f"hf://{repo}", "endpoint": self.hub.url, **({"revision": revision} if revision else {})}
        loras = [
            {"name": adapter, "source": {"uri": f"hf://{where}", "endpoint": self.hub.url}}
            for adapter, where in (adapters or {}).items()
        ]
        self.kubectl.apply(
            {
                "apiVersion": GROUP_VERSION,
                "kind": "OpenModel",
                "metadata": {"name": name, "namespace": self.namespace},
                "spec": {
                    "source": source,
                    "serving": {"replicas": self.config.serving_replicas, "gpus": 0, **(serving or {})},
                    "storage": {"size": "1Gi", "retain": retain, **(storage or {})},
                    **({"adapters": loras} if loras else {}),
                },
            }
        )

    # ------------------------------------------------------------ reading

    def get(self, name: str = "m") -> JsonDict | None:
        return self.kubectl.get("openmodels", name, self.namespace)

    def status(self, name: str = "m") -> JsonDict:
        obj = self.get(name)
        return dict((obj or {}).get("status") or {})

    def condition(self, cond_type: str, name: str = "m") -> tuple[str, str] | None:
        for cond in self.status(name).get("conditions") or []:
            if cond.get("type") == cond_type:
                return str(cond["status"]), str(cond["reason"])
        return None

    def row(self, name: str = "m", wide: bool = False) -> dict[str, str]:
        """This model's line of ``kubectl get openmodels`` (``-o wide`` adds the priority columns)."""
        rows = self.kubectl.table("openmodels", self.namespace, *(["-o", "wide"] if wide else []))
        found = [r for r in rows if r.get("NAME") == name]
        assert found, f"kubectl get openmodels -n {self.namespace} shows no {name}: {rows}"
        return found[0]

    def events(self, name: str = "m") -> list[JsonDict]:
        """Events about the OpenModel, oldest first."""
        items = self.kubectl.items("events", self.namespace, f"--field-selector=involvedObject.name={name}")
        ours = [e for e in items if (e.get("involvedObject") or {}).get("kind") == "OpenModel"]
        return sorted(ours, key=lambda e: int(e["metadata"].get("resourceVersion") or 0))

    def children(self, name: str = "m") -> dict[str, list[JsonDict]]:
        """The model's children by kind, found by the label every child carries."""
        items = self.kubectl.items(CHILD_KINDS, self.namespace, "-l", f"{NAME_LABEL}={name}")
        found: dict[str, list[JsonDict]] = {}
        for item in items:
            found.setdefault(item["kind"], []).append(item)
        return found

    def child(self, kind: str, name: str) -> JsonDict | None:
        return self.kubectl.get(kind, name, self.namespace)

    # ------------------------------------------------------------ waiting

    def wait(self, what: str, probe: Callable[[], T | None], timeout: float | None = None) -> T:
        return wait_for(what, probe, timeout or self.config.timeout, self.operator.check)

    def wait_phase(self, *phases: str, name: str = "m") -> JsonDict:
        def in_phase() -> JsonDict | None:
            status = self.status(name)
            return status if status.get("phase") in phases else None

        return self.wait(f"{self.namespace}/{name} in phase {' or '.join(phases)}", in_phase)

    # ------------------------------------------------------------ playing kubelet and controllers

    def complete_job(self, name: str) -> None:
        """Mark a Job succeeded as v1.28's Job controller does (startTime and completionTime are required)."""
        now = rfc3339()
        status = {
            "startTime": now,
            "completionTime": now,
            "active": 0,
            "ready": 0,
            "succeeded": 1,
            "conditions": [{"type": "Complete", "status": "True", "lastProbeTime": now, "lastTransitionTime": now}],
        }
        self.kubectl.patch("job", name, self.namespace, {"status": status}, subresource="status")

    def make_available(self, name: str) -> None:
        """Report a Deployment rolled out and available, as the Deployment controller and kubelet would."""
        deployment = self.kubectl.get("deployment", name, self.namespace)
        assert deployment is not None, f"deployment {name} does not exist"
        replicas = int(deployment["spec"].get("replicas", 1))
        now = rfc3339()
        status = {
            "observedGeneration": deployment["metadata"].get("generation", 1),
            "replicas": replicas,
            "updatedReplicas": replicas,
            "readyReplicas": replicas,
            "availableReplicas": replicas,
            "conditions": [
                {
                    "type": "Available",
                    "status": "True",
                    "reason": "MinimumReplicasAvailable",
                    "message": "Deployment has minimum availability.",
                    "lastUpdateTime": now,
                    "lastTransitionTime": now,
                },
                {
                    "type": "Progressing",
                    "status": "True",
                    "reason": "NewReplicaSetAvailable",
                    "message": f'ReplicaSet "{name}" has successfully progressed.',
                    "lastUpdateTime": now,
                    "lastTransitionTime": now,
                },
            ],
        }
        self.kubectl.patch("deployment", name, self.namespace, {"status": status}, subresource="status")

    def simulate_once(self, name: str = "m") -> None:
        """One step of the absent controllers: finish the fetch Job, then roll the Deployment out."""
        if not self.config.simulate:
            return
        kids = self.children(name)
        for job in kids.get("Job", []):
            conditions = (job.get("status") or {}).get("conditions") or []
            if not any(c.get("type") in ("Complete", "Failed") and c.get("status") == "True" for c in conditions):
                self.complete_job(job["metadata"]["name"])
        for deployment in kids.get("Deployment", []):
            status = deployment.get("status") or {}
            current = status.get("observedGeneration") == deployment["metadata"].get("generation")
            available = any(
                c.get("type") == "Available" and c.get("status") == "True" for c in status.get("conditions") or []
            )
            if not (current and available):
                self.make_available(deployment["metadata"]["name"])

    def bring_to_ready(self, name: str = "m") -> JsonDict:
        """Wait for Ready, playing the Job and Deployment controllers where the cluster has none."""

        def ready() -> JsonDict | None:
            status = self.status(name)
            if status.get("phase") == "Ready":
                return status
            if status.get("phase") in ("Rejected", "Failed"):
                raise AssertionError(f"{self.namespace}/{name} is {status.get('phase')}: {status.get('conditions')}")
            self.simulate_once(name)
            return None

        return self.wait(f"{self.namespace}/{name} Ready", ready)

    # ------------------------------------------------------------ cleanup

    def cleanup(self) -> None:
        """Delete what the test made, object by object (a namespace never finishes deleting on envtest).

        Models and policies go first, while the operator still runs to remove its finalizers.
        """
        models = [m["metadata"]["name"] for m in self.kubectl.items("openmodels", self.namespace)]
        for name in models:
            self.kubectl.delete("openmodels", name, self.namespace)
        for policy in self.policies:
            self.kubectl.delete("modeltrustpolicies", policy)
        with contextlib.suppress(AssertionError):
            wait_for(
                "the operator to remove its finalizers",
                lambda: (
                    not self.kubectl.items("openmodels", self.namespace)
                    and not any(self.kubectl.get("modeltrustpolicies", p) for p in self.policies)
                ),
                timeout=30,
                check=self.operator.check,  # a dead operator removes nothing: do not wait for it
            )
        if self.owns_operator:
            self.operator.stop()
        # whatever is left (the operator died, or a retained claim): strip finalizers, delete
        for name in [m["metadata"]["name"] for m in self.kubectl.items("openmodels", self.namespace)]:
            self.kubectl.patch("openmodels", name, self.namespace, {"metadata": {"finalizers": None}})
        for policy in self.policies:
            if self.kubectl.get("modeltrustpolicies", policy) is not None:
                self.kubectl.patch("modeltrustpolicies", policy, None, {"metadata": {"finalizers": None}})
        self.kubectl.run(
            "delete", CHILD_KINDS, "-n", self.namespace, "-l", MANAGED_BY, "--wait=false", "--ignore-not-found"
        )  # the namespace itself goes with the `namespace` fixture, without waiting


def iter_docs(path: pathlib.Path) -> Iterator[JsonDict]:
    for doc in yaml.safe_load_all(path.read_text()):
        if isinstance(doc, dict):
            yield doc
