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
import re
from collections.abc import Mapping
from typing import Any, Final

from openmodel_operator.api.time import as_utc
from openmodel_operator.evidence.attestation import EXTENSION
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


_ENTRY_KEY = re.compile(r"^(\d{8}T\d{6}Z)(?:\.\d{3,})?-(passed|failed)-([0-9a-f]{10})\.json$")


def names_statement(key: str, statement: Mapping[str, Any], namespace: str, model: str) -> bool:
    """The entry key is the one the operator gives this Statement (its time, verdict and subject digest), and
    the Statement is about this model: a genuine entry moved under a later key (a replayed admit read as
    "admitted again") or copied from another model's history does not name itself."""
    match = _ENTRY_KEY.fullmatch(key)
    predicate = statement.get("predicate")
    subject = statement.get("subject")
    if match is None or not isinstance(predicate, Mapping) or not isinstance(subject, list) or not subject:
        return False
    ext = predicate.get(EXTENSION)
    who = (ext.get("model") if isinstance(ext, Mapping) else None) or {}
    if not isinstance(who, Mapping) or (who.get("namespace"), who.get("name")) != (namespace, model):
        return False
    try:
        moment = datetime.datetime.fromisoformat(str(predicate.get("timeVerified")))
    except ValueError:
        return False
    digest = str(((subject[0] if isinstance(subject[0], Mapping) else {}).get("digest") or {}).get("sha256") or "")
    verdict = {"PASSED": "passed", "FAILED": "failed"}.get(str(predicate.get("verificationResult")))
    return (match.group(1), match.group(2), match.group(3)) == (
        as_utc(moment).strftime("%Y%m%dT%H%M%SZ"),
        verdict,
        digest[:10],
    )


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


def bounded_own_first(
    own: Mapping[str, str],
    newest: str,
    others: Mapping[str, str],
    max_count: int,
    max_bytes: int = MAX_HISTORY_BYTES,
) -> dict[str, str]:
    """The history to write: ``own`` (entries this operator key signed under their own names, ``newest``
    among them) bounded first, then ``others`` (an earlier key's, after a rotation; or planted) in what
    room is left, and only those older than ``newest``: an entry nobody can check never pushes out one the
    operator made, and none claims a decision after the one just made."""
    kept = bounded(own, max_count, max_bytes)
    size = sum(len(k.encode()) + len(v.encode()) for k, v in kept.items())
    for key in sorted((k for k in others if k < newest and k not in kept), reverse=True):
        cost = len(key.encode()) + len(others[key].encode())
        if len(kept) >= max_count or size + cost > max_bytes:
            break
        kept[key] = others[key]
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
