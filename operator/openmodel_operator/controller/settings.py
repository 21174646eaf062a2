"""Operator settings, from flags or ``OPENMODEL_*`` environment variables (flags win)."""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import re
from collections.abc import Mapping

DEFAULT_OPERATOR_IMAGE = "ghcr.io/openmodel-operator/openmodel-operator:0.1.0"
DEFAULT_VLLM_IMAGE = "vllm/vllm-openai:v0.11.0"
# Who writes the status of the (cluster-scoped) ModelTrustPolicies (docs/install.md, "Scaling out"):
#   on    this process reconciles its models and writes policy status (one operator for the cluster)
#   off   this process reconciles its models only (a shard: another process writes policy status)
#   only  this process writes policy status only, counting the models of every namespace; it reconciles nothing
POLICY_STATUS_MODES = ("on", "off", "only")
_NAMESPACED_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?/[a-z0-9]([-.a-z0-9]*[a-z0-9])?$")
_POLICY_STATUS_ALIASES = {"true": "on", "1": "on", "yes": "on", "false": "off", "0": "off", "no": "off"}


@dataclasses.dataclass(frozen=True)
class OperatorSettings:
    """What an admin tunes: where to watch, how often to re-verify, which images to run."""

    namespaces: tuple[str, ...] = ()  # empty: all namespaces
    reverify_interval: float = 3600.0  # seconds between re-verifications against the source and policies
    resync_interval: float = 30.0  # policy-key reads and failed-pass retries; a settled model's full pass every 10
    operator_image: str = DEFAULT_OPERATOR_IMAGE  # runs the fetch Job and the verify-on-start check
    vllm_image: str = DEFAULT_VLLM_IMAGE
    fetch_backoff_limit: int = 3
    # examinations are network-bound (a few Hub round trips each): 16 keeps 500 models under a minute at 100 ms
    max_concurrent_verifications: int = 16
    # reconcile passes in flight over all models (each model has at most one): the rest wait their turn in
    # the work queue; above the verifications, so offline passes go on while 16 examinations wait on the Hub
    reconcile_workers: int = 32
    trusted_root_path: str | None = None  # Sigstore trusted_root.json for offline keyless checks
    # the cluster's Hub (an air-gapped mirror): sources without spec.source.endpoint use it, and it counts as
    # the default endpoint that policies allow without listing it; None is the public Hub
    default_endpoint: str | None = None
    examination_deadline: float = 120.0  # seconds for all Hub requests of one examination
    json_logs: bool = False
    metrics_port: int = 8080
    health_port: int = 8081
    # where the listeners bind: loopback for a local `openmodel run`; in a pod the manifests set 0.0.0.0,
    # because the kubelet probes (and Prometheus scrapes) the pod IP, not the pod's loopback
    metrics_address: str = "127.0.0.1"
    health_address: str = "127.0.0.1"
    policy_status: str = "on"  # one of POLICY_STATUS_MODES
    # the listener claim examination Jobs (pvc:// sources) report to; 0 turns it off (pvc:// sources then fail)
    claim_report_port: int = 8082
    claim_report_address: str = "127.0.0.1"  # 0.0.0.0 in a pod: the Jobs reach it through the operator's Service
    # the URL the Jobs POST to (``/<nonce>`` is appended); unset: http://<address>:<port>/claim-reports, which
    # only a Job on the operator's own host could reach (the manifests set the Service's name)
    claim_report_url: str | None = None
    # seconds a claim examination Job may run (its activeDeadlineSeconds); the report is waited for a minute longer
    claim_examination_deadline: float = 3600.0
    # ``namespace/name`` of the Secret holding the operator's attestation key (``private.pem``, ECDSA P-256):
    # every trust decision is then signed and kept per model (docs/provenance.md); made once if absent.
    # None: no attestations (a local `openmodel run`); the manifests and the chart set it
    attestation_key_secret: str | None = None
    attestation_history: int = 20  # signed decisions kept per model, newest first (and at most ~900 KiB)

    def __post_init__(self) -> None:
        for name in ("max_concurrent_verifications", "reconcile_workers"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} is {getattr(self, name)}: at least 1 is needed")
        if self.policy_status not in POLICY_STATUS_MODES:
            raise ValueError(f"policy status {self.policy_status!r} is not one of {', '.join(POLICY_STATUS_MODES)}")
        if self.policy_status == "only" and self.namespaces:
            raise ValueError(
                "policy status 'only' counts the models of every namespace: it cannot watch only some namespaces"
            )
        if self.attestation_key_secret is not None and not _NAMESPACED_NAME.fullmatch(self.attestation_key_secret):
            raise ValueError(
                f"attestation key Secret {self.attestation_key_secret!r} is not namespace/name (e.g. "
                "openmodel-system/openmodel-attestation-key)"
            )
        if not 1 <= self.attestation_history <= 1000:
            raise ValueError(f"attestation history {self.attestation_history} is not between 1 and 1000 decisions")
        if self.claim_report_url is not None and not self.claim_report_url.startswith(("http://", "https://")):
            raise ValueError(f"claim report URL {self.claim_report_url!r} is not an http(s) URL")
        for name in ("metrics_address", "health_address", "claim_report_address"):
            value = getattr(self, name)
            try:
                ipaddress.ip_address(value)
            except ValueError:
                raise ValueError(f"{name} {value!r} is not an IP address (e.g. 127.0.0.1, 0.0.0.0, ::)") from None

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> OperatorSettings:
        """Settings from ``OPENMODEL_*`` variables; unset ones keep their defaults."""
        env = os.environ if env is None else env
        base = cls()

        def num(name: str, default: float) -> float:
            raw = env.get(name)
            if raw is None or raw == "":
                return default
            try:
                value = float(raw)
            except ValueError:
                raise ValueError(f"{name}={raw!r} is not a number of seconds") from None
            if value <= 0:
                raise ValueError(f"{name}={raw!r} must be positive")
            return value

        namespaces = namespace_patterns(env.get("OPENMODEL_NAMESPACES", ""))
        return cls(
            namespaces=namespaces,
            reverify_interval=num("OPENMODEL_REVERIFY_INTERVAL", base.reverify_interval),
            resync_interval=num("OPENMODEL_RESYNC_INTERVAL", base.resync_interval),
            operator_image=env.get("OPENMODEL_OPERATOR_IMAGE", base.operator_image),
            vllm_image=env.get("OPENMODEL_VLLM_IMAGE", base.vllm_image),
            fetch_backoff_limit=int(num("OPENMODEL_FETCH_BACKOFF_LIMIT", base.fetch_backoff_limit)),
            max_concurrent_verifications=int(num("OPENMODEL_CONCURRENCY", base.max_concurrent_verifications)),
            reconcile_workers=int(num("OPENMODEL_RECONCILE_WORKERS", base.reconcile_workers)),
            trusted_root_path=env.get("OPENMODEL_TRUSTED_ROOT") or None,
            default_endpoint=env.get("OPENMODEL_HUB_ENDPOINT") or None,
            examination_deadline=num("OPENMODEL_EXAMINATION_DEADLINE", base.examination_deadline),
            json_logs=env.get("OPENMODEL_LOG_FORMAT", "text") == "json",
            metrics_port=int(num("OPENMODEL_METRICS_PORT", base.metrics_port)),
            health_port=int(num("OPENMODEL_HEALTH_PORT", base.health_port)),
            metrics_address=env.get("OPENMODEL_METRICS_ADDRESS") or base.metrics_address,
            health_address=env.get("OPENMODEL_HEALTH_ADDRESS") or base.health_address,
            policy_status=policy_status_mode(env.get("OPENMODEL_POLICY_STATUS") or base.policy_status),
            claim_report_port=int(env.get("OPENMODEL_CLAIM_REPORT_PORT") or base.claim_report_port),
            claim_report_address=env.get("OPENMODEL_CLAIM_REPORT_ADDRESS") or base.claim_report_address,
            claim_report_url=env.get("OPENMODEL_CLAIM_REPORT_URL") or None,
            claim_examination_deadline=num("OPENMODEL_CLAIM_EXAMINATION_DEADLINE", base.claim_examination_deadline),
            attestation_key_secret=env.get("OPENMODEL_ATTESTATION_KEY_SECRET") or None,
            attestation_history=int(num("OPENMODEL_ATTESTATION_HISTORY", base.attestation_history)),
        )


def policy_status_mode(value: str) -> str:
    """``on``, ``off`` or ``only``; ``true``/``false`` (and 1/0, yes/no) are ``on``/``off``."""
    mode = value.strip().lower()
    return _POLICY_STATUS_ALIASES.get(mode, mode)


def namespace_patterns(text: str) -> tuple[str, ...]:
    """``OPENMODEL_NAMESPACES`` as Kopf's namespace patterns: the comma-separated names or globs each a
    pattern of their own, and each exclusion (``!glob``) kept with the inclusion before it (or, leading, with
    Kopf's implied ``*``). Kopf reads ``!team-x`` alone as "nothing" and ORs its patterns, so splitting
    ``team-*,!team-x`` at every comma would silently watch ``team-x`` too: a shard overlapping another."""
    patterns: list[str] = []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        if part.startswith("!") and patterns:
            patterns[-1] = f"{patterns[-1]},{part}"
        else:
            patterns.append(part)
    return tuple(patterns)
