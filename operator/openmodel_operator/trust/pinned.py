"""The pinned manifest: what the operator verified, handed to the fetch Job and the verify-on-start check.

It travels as JSON in a ConfigMap owned by the OpenModel, so the Job needs no API access: it downloads
exactly these files at exactly this commit and accepts only these digests.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from openmodel_operator.trust.evidence import FileEntry
from openmodel_operator.trust.manifest import manifest_digest_of

CONFIGMAP_KEY = "manifest.json"
FORMAT = "openmodel.io/pinned-manifest/v1"


class PinnedManifestError(ValueError):
    """The pinned manifest is malformed or inconsistent with its own digest."""


@dataclasses.dataclass(frozen=True)
class PinnedManifest:
    """Source, commit and the expected sha256 of every file to place on the volume."""

    source: str
    revision: str | None
    manifest_digest: str
    files: tuple[FileEntry, ...]
    endpoint: str | None = None

    @property
    def expected(self) -> dict[str, str]:
        """``{path: sha256 hex}``, the form ``trust.pull`` takes."""
        return {f.path: f.sha256 for f in self.files}

    @property
    def total_bytes(self) -> int:
        return sum(f.size for f in self.files)

    def to_json(self) -> str:
        """Stable JSON (sorted files) so re-applying the ConfigMap is a no-op."""
        doc = {
            "format": FORMAT,
            "source": self.source,
            "revision": self.revision,
            "endpoint": self.endpoint,
            "manifestDigest": self.manifest_digest,
            "files": [{"path": f.path, "size": f.size, "sha256": f.sha256} for f in sorted(self.files)],
        }
        return json.dumps(doc, separators=(",", ":"), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> PinnedManifest:
        """Parse and check that the file digests add up to the recorded manifest digest."""
        try:
            doc: dict[str, Any] = json.loads(text)
            if doc.get("format") != FORMAT:
                raise PinnedManifestError(f"format is {doc.get('format')!r}, expected {FORMAT}")
            files = tuple(FileEntry(str(f["path"]), int(f["size"]), str(f["sha256"])) for f in doc["files"])
            pinned = cls(
                source=str(doc["source"]),
                revision=doc.get("revision"),
                manifest_digest=str(doc["manifestDigest"]),
                files=files,
                endpoint=doc.get("endpoint"),
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise PinnedManifestError(f"pinned manifest is malformed: {exc}") from None
        actual = manifest_digest_of(pinned.expected)
        if actual != pinned.manifest_digest:
            raise PinnedManifestError(
                f"pinned manifest lists files whose digest is {actual}, not the recorded {pinned.manifest_digest}"
            )
        return pinned
