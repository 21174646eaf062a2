"""What one examination asks (``ModelRequest``) and what it found (``Examination``), as plain values.

Shared by the shell that gathers the evidence (``sources.examine``) and the pure code that records it
(``trust.provenance``, ``planning.trust_result``), so neither needs the other's I/O to name the result.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from openmodel_operator.api.openmodel import ServingSpec
from openmodel_operator.evidence.manifest import DEFAULT_SIGNATURE_PATH
from openmodel_operator.evidence.records import ResolvedSource
from openmodel_operator.trust.decision import Evidence, Verdict

DEFAULT_DEADLINE = 120.0  # wall-clock seconds for a whole examination's reads from its source


@dataclasses.dataclass(frozen=True)
class ModelRequest:
    """What to examine: the fields of ``spec.source`` and ``spec.trust`` as plain values.

    ``uri`` is ``hf://org/name`` or a local directory (``pvc://`` sources are examined as directories
    by whoever mounts the claim: ``local_path`` then names the mount).
    """

    uri: str
    revision: str = "main"
    endpoint: str | None = None
    token: str | None = dataclasses.field(default=None, repr=False)
    signature_path: str = DEFAULT_SIGNATURE_PATH
    external_bundle: bytes | None = None  # a bundle from a ConfigMap or --signature
    pinned_digest: str | None = None
    local_path: Path | None = None
    # one wall-clock budget for the whole examination (every Hub request of it), so a slow source
    # cannot hold a verification slot for long
    deadline_seconds: float = DEFAULT_DEADLINE
    # what the decision needs beyond the source (the operator's model): its serving fields, the runtime image
    # and the Hub the cluster admin configured; None for the CLI without a manifest
    serving: ServingSpec | None = None
    runtime_image: str | None = None
    default_endpoint: str | None = None

    @property
    def is_hub(self) -> bool:
        return self.uri.startswith("hf://")


@dataclasses.dataclass(frozen=True)
class Examination:
    """The resolved source, the evidence gathered about it and the verdict."""

    request: ModelRequest
    resolved: ResolvedSource
    evidence: Evidence
    verdict: Verdict
