"""`openmodel run`: the operator process (Kopf) with health and Prometheus endpoints."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import logging
import os
import random
import sys
import time
from typing import Any

from openmodel_operator.controller.settings import POLICY_STATUS_MODES, policy_status_mode
from openmodel_operator.evidence.text import printable


def _policy_status(value: str) -> str:
    mode = policy_status_mode(value)
    if mode not in POLICY_STATUS_MODES:
        raise argparse.ArgumentTypeError(f"{value!r} is not one of {', '.join(POLICY_STATUS_MODES)}")
    return mode


def settings_from(args: argparse.Namespace) -> Any:
    """Environment first, flags on top: a Deployment sets env, a developer types flags."""
    from openmodel_operator.controller.settings import OperatorSettings

    settings = OperatorSettings.from_env()
    overrides: dict[str, Any] = {}
    if args.namespace:
        overrides["namespaces"] = tuple(args.namespace)
    if args.all_namespaces:
        overrides["namespaces"] = ()
    for flag, field in (
        ("reverify_interval", "reverify_interval"),
        ("resync_interval", "resync_interval"),
        ("operator_image", "operator_image"),
        ("vllm_image", "vllm_image"),
        ("concurrency", "max_concurrent_verifications"),
        ("workers", "reconcile_workers"),
        ("trusted_root", "trusted_root_path"),
        ("metrics_port", "metrics_port"),
        ("health_port", "health_port"),
        ("metrics_address", "metrics_address"),
        ("health_address", "health_address"),
        ("claim_report_port", "claim_report_port"),
        ("claim_report_address", "claim_report_address"),
        ("claim_report_url", "claim_report_url"),
    ):
        value = getattr(args, flag)
        if value is not None:
            overrides[field] = value
    if args.log_format:
        overrides["json_logs"] = args.log_format == "json"
    if args.policy_status:
        overrides["policy_status"] = args.policy_status
    return dataclasses.replace(settings, **overrides)


def webhook_settings_from(args: argparse.Namespace) -> Any:
    """The admission webhooks' settings: ``OPENMODEL_WEBHOOK*`` variables, flags on top."""
    from openmodel_operator.controller.webhook_settings import WebhookSettings

    hooks = WebhookSettings.from_env()
    overrides: dict[str, Any] = {}
    if args.webhooks:
        overrides["enabled"] = args.webhooks == "on"
    for flag, field in (
        ("webhook_address", "address"),
        ("webhook_port", "port"),
        ("webhook_url_host", "url_host"),
        ("webhook_service", "service"),
        ("webhook_cert_dir", "cert_dir"),
    ):
        value = getattr(args, flag)
        if value is not None:
            overrides[field] = value
    if args.operator_user:
        overrides["operator_users"] = tuple(args.operator_user)
    return dataclasses.replace(hooks, **overrides)


NO_CLUSTER = (
    "error: no Kubernetes cluster configuration: not in a pod with a ServiceAccount, and no kubeconfig "
    "(KUBECONFIG or ~/.kube/config): {why}. Run it in the cluster, set KUBECONFIG, or pass --server URL"
)
UNREACHABLE = (
    "error: the Kubernetes API server did not answer within {seconds:g} s ({why}); check the kubeconfig's server "
    "address and the network, or --server (--connect-timeout sets the wait)"
)


def reach_cluster(server: str | None, seconds: float) -> str | None:
    """None once the API server answers, else the message to exit 2 with: Kopf itself retries a missing or
    unreachable cluster forever, which a person starting the operator by hand never sees the end of."""
    from openmodel_operator.controller.kube import Kube, client_for

    try:
        client = client_for(server)
    except Exception as exc:  # lightkube's ConfigError and the parse errors of a broken kubeconfig
        return NO_CLUSTER.format(why=printable(str(exc), 200))

    async def probe() -> str | None:
        kube = Kube(client)
        deadline = time.monotonic() + seconds
        why: str | None = "no attempt"
        while time.monotonic() < deadline:
            try:
                why = await asyncio.wait_for(kube.reachable(), max(0.1, deadline - time.monotonic()))
            except TimeoutError:
                why = "no answer"
            if why is None:
                return None
            await asyncio.sleep(min(1.0, max(0.0, deadline - time.monotonic())))
        return UNREACHABLE.format(seconds=seconds, why=why)

    return asyncio.run(probe())


def run(args: argparse.Namespace) -> int:
    import kopf
    from prometheus_client import start_http_server

    from openmodel_operator.controller.handlers import build_registry
    from openmodel_operator.controller.health import Health
    from openmodel_operator.controller.kube import Kube, client_for
    from openmodel_operator.controller.logs import configure_logging
    from openmodel_operator.controller.metrics import METRICS
    from openmodel_operator.controller.policy_status_only import build_policy_status_registry

    try:
        settings = settings_from(args)
        hooks = webhook_settings_from(args)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    configure_logging(settings.json_logs, logging.DEBUG if args.verbose else logging.INFO)
    unreachable = reach_cluster(args.server, args.connect_timeout)
    if unreachable is not None:
        print(unreachable, file=sys.stderr)
        return 2
    if settings.policy_status == "only":  # a policy-status writer beside namespace shards: no models
        registry = build_policy_status_registry(settings, lambda: Kube(client_for(args.server)))
    else:
        registry = build_registry(settings, lambda: Kube(client_for(args.server)), webhooks=hooks)
    if args.server:
        server = args.server

        @kopf.on.login(registry=registry)
        def login(**_: Any) -> kopf.ConnectionInfo:
            return kopf.ConnectionInfo(server=server, insecure=True)

    else:
        # A plain OperatorRegistry has none of Kopf's default logins: in a pod the ServiceAccount, outside
        # a kubeconfig (KUBECONFIG or ~/.kube/config).
        @kopf.on.login(registry=registry)
        def login_default(**kwargs: Any) -> kopf.ConnectionInfo | None:
            return kopf.login_with_service_account(**kwargs) or kopf.login_with_kubeconfig(**kwargs)

    try:
        if settings.metrics_port:
            start_http_server(settings.metrics_port, addr=settings.metrics_address, registry=METRICS.registry)
        # /healthz from a thread, not Kopf's in-loop endpoint: it answers during a catch-up (controller/health.py)
        health = Health()
        server = health.serve(settings.health_address, settings.health_port) if settings.health_port else None
    except OSError as exc:  # the address is not this host's, or the port is taken
        print(f"error: cannot listen: {exc}", file=sys.stderr)
        return 2
    logging.getLogger(__name__).info(
        "starting",
        extra={
            "namespaces": list(settings.namespaces) or "all",
            "standalone": args.standalone,
            "policy_status": settings.policy_status,
        },
    )
    # Kopf pauses every replica that sees a live peer of the same priority: each replica draws its own.
    priority = args.priority if args.priority is not None else random.randint(1, 32767)

    async def operate() -> None:
        heartbeat = asyncio.create_task(health.heartbeat(), name="heartbeat")
        try:
            await kopf.operator(
                registry=registry,
                standalone=args.standalone,
                priority=priority,
                clusterwide=not settings.namespaces,
                namespaces=list(settings.namespaces),
                ready_flag=health.ready,
            )
        finally:
            heartbeat.cancel()

    try:
        asyncio.run(operate())
    finally:
        if server is not None:
            server.close()
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "run",
        help="run the operator",
        description=(
            "Run the operator: every OpenModel is resolved, verified against the ModelTrustPolicies of its "
            "namespace, pulled by a Job that checks every byte, and served; untrusted models stop being served. "
            "Settings come from OPENMODEL_* environment variables, overridden by these flags."
        ),
    )
    scope = parser.add_mutually_exclusive_group()
    scope.add_argument("--namespace", "-n", action="append", help="watch this namespace (repeatable)")
    scope.add_argument("--all-namespaces", "-A", action="store_true", help="watch every namespace (default)")
    parser.add_argument("--standalone", action="store_true", help="no peering: run without the KopfPeering CRDs")
    parser.add_argument(
        "--policy-status",
        type=_policy_status,
        metavar="{on,off,only}",
        help=(
            "who writes the ModelTrustPolicies' status (OPENMODEL_POLICY_STATUS): on (default) this process; "
            "off a shard that leaves it to another process; only this process writes it for every namespace and "
            "reconciles no models (docs/install.md, 'Scaling out')"
        ),
    )
    parser.add_argument(
        "--priority",
        type=int,
        default=int(os.environ["OPENMODEL_PEERING_PRIORITY"]) if os.environ.get("OPENMODEL_PEERING_PRIORITY") else None,
        help="peering priority of this replica (default: random, so exactly one replica of an HA pair is active)",
    )
    parser.add_argument("--reverify-interval", type=float, help="seconds between re-verifications (default 3600)")
    parser.add_argument(
        "--resync-interval",
        type=float,
        help="seconds between reads of the ConfigMaps policies reference and retries of failed passes; a settled "
        "model's safety-net pass comes every ten (default 30)",
    )
    parser.add_argument("--operator-image", help="image of the fetch Job and verify-on-start check")
    parser.add_argument("--vllm-image", help="default image for runtime vllm")
    parser.add_argument("--concurrency", type=int, help="verifications run at once (default 16)")
    parser.add_argument("--workers", type=int, help="reconcile passes run at once, over all models (default 32)")
    parser.add_argument("--trusted-root", help="Sigstore trusted_root.json for offline keyless verification")
    parser.add_argument("--metrics-port", type=int, help="Prometheus /metrics port (default 8080, 0 disables)")
    parser.add_argument("--health-port", type=int, help="liveness /healthz port (default 8081, 0 disables)")
    parser.add_argument(
        "--metrics-address", help="address /metrics listens on (default 127.0.0.1; 0.0.0.0 in a pod, to be scraped)"
    )
    parser.add_argument(
        "--health-address",
        help="address /healthz listens on (default 127.0.0.1; 0.0.0.0 in a pod: the kubelet probes the pod IP)",
    )
    parser.add_argument(
        "--claim-report-port", type=int, help="port claim examination Jobs report to (default 8082, 0 disables pvc://)"
    )
    parser.add_argument(
        "--claim-report-address", help="address the claim report listener binds (default 127.0.0.1; 0.0.0.0 in a pod)"
    )
    parser.add_argument(
        "--claim-report-url",
        help="URL the claim examination Jobs POST to, e.g. http://openmodel-operator.openmodel-system.svc:8082/"
        "claim-reports (default: the listener's own address)",
    )
    parser.add_argument(
        "--webhooks",
        choices=["on", "off"],
        help="validating admission webhooks (OPENMODEL_WEBHOOKS, default on): off validates only at reconcile",
    )
    parser.add_argument(
        "--webhook-address", help="address the webhook listens on (default 127.0.0.1; 0.0.0.0 in a pod)"
    )
    parser.add_argument("--webhook-port", type=int, help="webhook port (default 9443)")
    parser.add_argument(
        "--webhook-url-host",
        help="host the API server reaches the webhook at by URL (a control-plane-only cluster, a local operator)",
    )
    parser.add_argument(
        "--webhook-service", help="namespace/name[:port] of the Service the API server reaches the webhook through"
    )
    parser.add_argument(
        "--webhook-cert-dir", help="directory with tls.crt, tls.key (and ca.crt); default: self-signed at start"
    )
    parser.add_argument(
        "--operator-user",
        action="append",
        help="the operator's own user name (repeatable; OPENMODEL_OPERATOR_USER): the only one the children guard "
        "lets change managed children (default: system:serviceaccount:<pod namespace>:<OPENMODEL_SERVICE_ACCOUNT>)",
    )
    parser.add_argument("--log-format", choices=["text", "json"], help="log format (default text)")
    parser.add_argument("--server", help="API server URL without credentials (development against an emulator)")
    parser.add_argument(
        "--connect-timeout",
        type=float,
        default=30.0,
        help="seconds to wait for the API server at start before exiting 2 (default 30)",
    )
    parser.add_argument("--verbose", "-v", action="store_true", help="debug logging")
    parser.set_defaults(func=run)
