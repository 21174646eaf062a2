"""Prometheus metrics an SRE dashboards and alerts on: models by phase, verification failures by reason,
reconcile and verification durations, bytes of verified weights."""

from __future__ import annotations

import dataclasses

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from openmodel_operator.api.vocabulary import Phase

PHASES = tuple(phase.value for phase in Phase)


@dataclasses.dataclass
class Metrics:
    """One registry per process, so tests and the /metrics endpoint see the same numbers."""

    registry: CollectorRegistry = dataclasses.field(default_factory=lambda: CollectorRegistry(auto_describe=True))

    def __post_init__(self) -> None:
        r = self.registry
        self.models_by_phase = Gauge("openmodel_models", "OpenModels by phase.", ["phase"], registry=r)
        self.verification_failures = Counter(
            "openmodel_verification_failures",
            "Trust verifications that found a violation, by reason code.",
            ["reason"],
            registry=r,
        )
        self.verification_seconds = Histogram(
            "openmodel_verification_duration_seconds",
            "Time to resolve and verify a model (no weights read).",
            registry=r,
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
        )
        self.reconcile_seconds = Histogram(
            "openmodel_reconcile_duration_seconds",
            "Time of one reconcile pass.",
            registry=r,
            buckets=(0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
        )
        self.passes_skipped = Counter(
            "openmodel_reconcile_skipped",
            "Resyncs that ran no pass: nothing the last pass read had changed (controller/memory.pass_skippable).",
            registry=r,
        )
        self.claim_reports = Counter(
            "openmodel_claim_reports",
            "Requests to the claim report listener by outcome: accepted, or why refused (nonce, size, slow, rate...).",
            ["outcome"],
            registry=r,
        )
        self.bytes_verified = Counter(
            "openmodel_weights_verified_bytes", "Bytes of weights pulled and verified on volumes.", registry=r
        )


METRICS = Metrics()
