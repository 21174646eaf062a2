"""The evidence a decision was made from, kept so that the next decision needs no network.

Why: revocation must never wait for the source. When a policy changes (a key removed, a license
denied), the operator re-decides from what it verified before: the pinned manifest, the signature
bundle and the covered model card and openness declaration. The operator keeps them in memory and
in the pinned-manifest ConfigMap (``binaryData``), so a restarted operator can re-decide too.

That ConfigMap lives in the tenant's namespace, so nothing read back from it is believed on its own:
the manifest must hash to the digest on status, the bundle to the bundle digest on status, and the
card and declaration to the sha256 the manifest lists for them (status is written by the operator
only). A tenant who edits the ConfigMap can only make the evidence unusable, which fails closed.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Mapping
from typing import Any

from openmodel_operator.api.openmodel import ContentProvenance
from openmodel_operator.evidence.pinned import PinnedManifest
from openmodel_operator.evidence.records import ResolvedSource
from openmodel_operator.trust.decision import Evidence

BUNDLE_KEY = "signature-bundle"
README_KEY = "readme"
OPENNESS_KEY = "openness"
_FILES = {README_KEY: "README.md", OPENNESS_KEY: "openness.yaml"}
MAX_RECORDED_BYTES = 256 * 1024  # what may be added to the manifest in one ConfigMap (1 MiB in all)


def recorded_data(evidence: Evidence) -> dict[str, bytes]:
    """The bytes to keep beside the pinned manifest: bundle, card, declaration (those that exist)."""
    out: dict[str, bytes] = {}
    if evidence.bundle is not None:
        out[BUNDLE_KEY] = evidence.bundle
    if evidence.source.readme is not None:
        out[README_KEY] = evidence.source.readme
    if evidence.source.openness_bytes is not None:
        out[OPENNESS_KEY] = evidence.source.openness_bytes
    if sum(len(v) for v in out.values()) > MAX_RECORDED_BYTES:
        return {}  # kept in memory only; a restarted operator re-examines the source
    return out


def as_binary_data(recorded: Mapping[str, bytes]) -> dict[str, str]:
    """``binaryData`` of a ConfigMap: base64 values."""
    return {key: base64.b64encode(value).decode() for key, value in sorted(recorded.items())}


def recorded_digest(recorded: Mapping[str, bytes]) -> str:
    """One digest of the recorded bytes, kept as an annotation so a change of them is seen without them."""
    hasher = hashlib.sha256()
    for key, value in sorted(recorded.items()):
        hasher.update(b"%d:%s%d:" % (len(key), key.encode(), len(value)))
        hasher.update(value)
    return f"sha256:{hasher.hexdigest()}"


def from_binary_data(binary: Mapping[str, Any] | None) -> dict[str, bytes]:
    """The recorded bytes back from a ConfigMap's ``binaryData``; undecodable entries are dropped."""
    out: dict[str, bytes] = {}
    for key in (BUNDLE_KEY, README_KEY, OPENNESS_KEY):
        value = (binary or {}).get(key)
        if isinstance(value, str):
            try:
                out[key] = base64.b64decode(value, validate=True)
            except (binascii.Error, ValueError):
                continue
    return out


def matches_provenance(pinned: PinnedManifest, provenance: ContentProvenance | None) -> bool:
    """Whether a pinned manifest read back from the ConfigMap is what status records in every field.

    The manifest digest binds the files only; its source, commit and endpoint are bound here to the
    operator's own record, so a tenant cannot move the pin (another commit, another endpoint) by editing it.
    """
    return (
        provenance is not None
        and provenance.manifest_digest == pinned.manifest_digest
        and provenance.source == pinned.source
        and provenance.resolved_revision == pinned.revision
        and (provenance.endpoint is None or provenance.endpoint == pinned.endpoint)
    )


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def rebuild_evidence(
    pinned: PinnedManifest,
    recorded: Mapping[str, bytes],
    provenance: ContentProvenance | None,
    signature_path: str,
    pinned_digest: str | None,
) -> Evidence | None:
    """Evidence rebuilt from the ConfigMap, or None when it cannot be trusted to be what was verified.

    ``provenance`` is the operator's own record on status: the manifest digest and the bundle digest.
    """
    if provenance is None or not matches_provenance(pinned, provenance):
        return None
    bundle = recorded.get(BUNDLE_KEY)
    bundle_digest = provenance.signature.bundle_digest if provenance.signature is not None else None
    if bundle_digest:
        if bundle is None or f"sha256:{_sha256(bundle)}" != bundle_digest:
            return None
    elif bundle is not None:
        return None  # a bundle status does not vouch for (never verified): only the source can say
    listed = {f.path: f.sha256 for f in pinned.files}
    files: dict[str, bytes | None] = {}
    for key, path in _FILES.items():
        data = recorded.get(key)
        files[path] = data if data is not None and listed.get(path) == _sha256(data) else None
    if any(path in listed and files[path] is None for path in _FILES.values()):
        return None  # a card or declaration the manifest lists went missing or changed: re-examine
    source = ResolvedSource(
        uri=pinned.source,
        kind="hf" if pinned.source.startswith("hf://") else "pvc",
        files=pinned.files,
        revision=pinned.revision,
        requested_revision=provenance.requested_revision,
        repo_id=provenance.repository,
        endpoint=pinned.endpoint,
        readme=files["README.md"],
        openness_bytes=files["openness.yaml"],
    )
    return Evidence(source=source, bundle=bundle, signature_path=signature_path, pinned_digest=pinned_digest)
