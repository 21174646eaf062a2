"""Each model's signed decisions kept in one ConfigMap: the last N, oldest dropped, within a byte budget.

Events expire within the hour and status holds the latest decision only; this history is what an auditor
reads months later. It is bounded twice: by count (``OPENMODEL_ATTESTATION_HISTORY``, the newest N) and by
bytes (a ConfigMap holds at most 1 MiB; ``MAX_HISTORY_BYTES`` leaves room for metadata), so a model whose
decisions flip does not grow an object without end. Entry keys begin with the decision time, so their
order is the order of decisions.

The ConfigMap has no ownerReference and the operator does not delete it with the model: "what ran here last
month" includes models deleted since. A model created again under the same name continues the same history
(each entry names the model's namespace and name). Remove histories by label when no longer needed
(docs/provenance.md).
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from typing import Any, Final

from openmodel_operator.api.time import as_utc
from openmodel_operator.planning import children

SUFFIX = "-attestations"
COMPONENT: Final = "attestations"
DECISION_ANNOTATION = "openmodel.io/attested-decision"  # decision key of the newest entry
KEY_ANNOTATION = "openmodel.io/attestation-key"  # fingerprint of the operator key that signed the newest entry
PUBLIC_KEY_ENTRY = "public-key.pem"  # a copy for convenience; auditors pin the operator's published key instead
MAX_HISTORY_BYTES = 900 * 1024
DEFAULT_HISTORY = 20


def configmap_name(ref: children.ModelRef) -> str:
    """``<model>-attestations``."""
    return children.child_name(ref.name, SUFFIX)


def entry_key(moment: datetime.datetime, passed: bool, subject_hex: str, taken: Mapping[str, Any]) -> str:
    """``<UTC time>-<passed|failed>-<digest10>.json``, unique within ``taken``: another decision in the same
    second is ``<UTC time>.002-...``, which sorts after the first (``-`` < ``.``), keeping keys in decision order."""
    stamp = as_utc(moment).strftime("%Y%m%dT%H%M%SZ")
    tail = f"-{'passed' if passed else 'failed'}-{subject_hex[:10]}.json"
    key, n = stamp + tail, 1
    while key in taken:
        n += 1
        key = f"{stamp}.{n:03d}{tail}"
    return key


def entries(data: Mapping[str, str] | None) -> dict[str, str]:
    """The attestation entries of a history's ``data`` (the public key copy and foreign keys left out)."""
    return {k: v for k, v in (data or {}).items() if k.endswith(".json") and isinstance(v, str)}


def bounded(history: Mapping[str, str], max_count: int, max_bytes: int = MAX_HISTORY_BYTES) -> dict[str, str]:
    """The newest entries that fit ``max_count`` and ``max_bytes`` (keys and values counted); the newest
    entry is always kept, whatever its size, so the latest decision is never lost to the budget."""
    kept: dict[str, str] = {}
    size = 0
    for key in sorted(history, reverse=True):
        cost = len(key.encode()) + len(history[key].encode())
        if kept and (len(kept) >= max_count or size + cost > max_bytes):
            break
        kept[key] = history[key]
        size += cost
    return dict(sorted(kept.items()))


def history_configmap(
    ref: children.ModelRef,
    history: Mapping[str, str],
    decision: str,
    key_fingerprint: str,
    public_key_pem: str,
) -> dict[str, Any]:
    """The history ConfigMap to apply: labelled like the model's children (so the watch sees its metadata and
    ``-l app.kubernetes.io/component=attestations`` finds them all), without an ownerReference."""
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": configmap_name(ref),
            "namespace": ref.namespace,
            "labels": children.labels(ref, COMPONENT),
            "annotations": {DECISION_ANNOTATION: decision, KEY_ANNOTATION: key_fingerprint},
        },
        "data": {**history, PUBLIC_KEY_ENTRY: public_key_pem},
    }
