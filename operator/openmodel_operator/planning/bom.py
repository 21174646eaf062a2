"""The AI-BOMs of a decided revision, kept in the cluster: one ConfigMap per revision, named on status.

Built when a pass decides (an examination, or a re-decision from recorded evidence), from that decision's
provenance, pinned manifest and verified card (``evidence.bom``): a pass that only reuses what status recorded
has no card to build from and leaves the ConfigMap as it is. A decision that states what the kept documents
state, but for their times and the policies' generations (a re-verification, a policy edit that changes no
verdict), keeps them too (``kept_record``): they are the documents of the decision that first stated it, and
status and the attestation history record every later one. At 10,000 models a policy change had rebuilt and
re-applied every BOM (issue 13): half the writes of the wave and 40 % of its CPU.

Both documents are gzip-compressed into ``binaryData``. A ConfigMap holds 1 MiB in all: a revision with more
than ``MAX_BOM_FILES`` files is not built (the cost grows with the files; it would rarely fit anyway), and
documents larger than ``MAX_BOM_BYTES`` compressed are not kept. Status then says so, and ``openmodel bom``
prints them from the same decision.
"""

from __future__ import annotations

import collections
import dataclasses
import gzip
import hashlib
import json
from collections.abc import Mapping
from typing import Any

from openmodel_operator import __version__
from openmodel_operator.api.openmodel import BomRecord
from openmodel_operator.evidence.bom import BomInput, cyclonedx_document, render, spdx3_document
from openmodel_operator.planning import children
from openmodel_operator.planning.trust_result import TrustResult

SPDX3_KEY = "bom.spdx.json.gz"
CYCLONEDX_KEY = "bom.cdx.json.gz"
MAX_BOM_FILES = 4096  # ~2.5 s of building on one core, ~0.4 MiB compressed with random digests
MAX_BOM_BYTES = 900 * 1024  # both documents compressed; the ConfigMap's metadata needs the rest of its 1 MiB
CLI_HINT = "print them with `openmodel bom -f <this OpenModel's manifest> --format spdx3|cyclonedx`"
HELD_DOCUMENTS = 16  # decisions whose documents are kept for models decided alike (see ``_documents``)
HELD_BYTES = 4 * 1024 * 1024  # and never more than this many compressed bytes in all


def bom_input(trust: TrustResult) -> BomInput | None:
    """The decision of this pass as BOM input; None when the pass decided nothing new or admitted nothing."""
    if not trust.trusted or trust.pinned is None or trust.provenance is None or trust.card is None:
        return None
    return BomInput(trust.provenance, trust.pinned, trust.card)


def _compressed(text: str) -> bytes:
    return gzip.compress(text.encode(), compresslevel=9, mtime=0)  # mtime 0: the same BOM, the same bytes


def bom_child(
    ref: children.ModelRef, bom: BomInput, max_files: int | None = None, max_bytes: int | None = None
) -> tuple[dict[str, Any] | None, BomRecord]:
    """The BOM ConfigMap of the decided revision (None when too large) and the status record naming it.

    The bounds default to ``MAX_BOM_FILES`` and ``MAX_BOM_BYTES`` as they are when called.
    """
    max_files = MAX_BOM_FILES if max_files is None else max_files
    max_bytes = MAX_BOM_BYTES if max_bytes is None else max_bytes
    digest = bom.pinned.manifest_digest
    count = len(bom.pinned.files)
    if count > max_files:
        message = f"not kept in the cluster: {count} files, more than the {max_files} a BOM ConfigMap is built for; "
        return None, BomRecord(manifest_digest=digest, message=message + CLI_HINT)
    documents, spdx3_digest, cyclonedx_digest = _documents(bom)
    size = sum(len(data) for data in documents.values())
    if size > max_bytes:
        message = (
            f"not kept in the cluster: the documents are {size} bytes compressed, more than the {max_bytes} a "
            f"ConfigMap can hold beside its metadata; "
        )
        return None, BomRecord(manifest_digest=digest, message=message + CLI_HINT)
    configmap = children.bom_configmap(ref, bom.pinned, documents, _documents_digest(spdx3_digest, cyclonedx_digest))
    record = BomRecord(
        manifest_digest=digest,
        config_map=configmap["metadata"]["name"],
        spdx3_key=SPDX3_KEY,
        cyclonedx_key=CYCLONEDX_KEY,
        spdx3_digest=spdx3_digest,
        cyclonedx_digest=cyclonedx_digest,
        statement_digest=statement_digest(bom),
    )
    return configmap, record


def statement_digest(bom: BomInput) -> str:
    """What the documents state, without the times and the policies' generations (``sha256:<hex>``, as status
    records it in ``bom.statementDigest``).

    Everything else of the decision counts: the content, the signature and its signer, the license, the
    openness, every policy's name, mode, verdict, reasons and anchor, the card, and the operator version that
    builds them (a fixed builder states more, or otherwise), so a decision that states anything else gets new
    documents.
    """
    record = bom.provenance
    signature = record.signature.model_copy(update={"verified_at": None}) if record.signature is not None else None
    policies = [p.model_copy(update={"generation": None, "inputs_digest": None}) for p in record.policies or []]
    stated = record.model_copy(update={"verified_at": None, "signature": signature, "policies": policies, "bom": None})
    card = json.dumps(dataclasses.asdict(bom.card), sort_keys=True, default=str)
    text = "\n".join((__version__, stated.model_dump_json(), bom.pinned.manifest_digest, card))
    return "sha256:" + hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def kept_record(
    ref: children.ModelRef,
    bom: BomInput,
    previous: BomRecord | None,
    live: Mapping[str, Mapping[str, str]],
) -> BomRecord | None:
    """The status record of the documents already in the cluster when they state this decision; else None.

    ``previous`` is what status recorded (written by the operator only: what the documents state is compared
    there, never on the ConfigMap, which is the tenant's to edit), ``live`` the annotations of the model's AI-BOM
    ConfigMaps by name (the watch shows them; the documents themselves are not kept). A ConfigMap whose digest
    annotation is not the one status recorded (edited, deleted, or another decision's) is built again; an edit of
    its ``binaryData`` alone is not seen (as before: status's digests let a reader check a copy).
    """
    name = children.bom_configmap_name(ref, bom.pinned.manifest_digest)
    annotations = live.get(name)
    if (
        previous is None
        or annotations is None
        or previous.config_map != name
        or previous.manifest_digest != bom.pinned.manifest_digest
        or not previous.spdx3_digest
        or not previous.cyclonedx_digest
    ):
        return None
    if annotations.get(children.BOM_ANNOTATION) != _documents_digest(previous.spdx3_digest, previous.cyclonedx_digest):
        return None
    return previous if previous.statement_digest == statement_digest(bom) else None


def _documents_digest(spdx3_digest: str, cyclonedx_digest: str) -> str:
    """The ConfigMap's digest annotation: status (written by the operator only) binds the documents through it,
    since the ConfigMap lives in the tenant's namespace."""
    return "sha256:" + hashlib.sha256(f"{spdx3_digest} {cyclonedx_digest}".encode()).hexdigest()


# (provenance JSON, manifest digest) -> (the input, compressed documents, SPDX 3 digest, CycloneDX digest)
_HELD: collections.OrderedDict[tuple[Any, ...], tuple[BomInput, dict[str, bytes], str, str]] = collections.OrderedDict()


def _documents(bom: BomInput) -> tuple[dict[str, bytes], str, str]:
    """Both documents of a decision, compressed, with the digests of their text.

    They are a function of the decision alone (its provenance, pinned manifest and card; no model name): after a
    restart or a policy change every model of one content is decided again in the same seconds, with equal
    inputs (``verifiedAt`` is whole seconds), and building the documents was most of a restart's CPU (issue 13:
    ~18 ms per model). Equal inputs are found by the provenance's JSON and then compared whole, so only the
    documents of an equal decision are ever handed out.
    """
    key = (bom.provenance.model_dump_json(), bom.pinned.manifest_digest)  # the card is compared below
    held = _HELD.get(key)
    if held is not None and held[0] == bom:
        _HELD.move_to_end(key)
        return dict(held[1]), held[2], held[3]
    spdx3, cyclonedx = render(spdx3_document(bom)), render(cyclonedx_document(bom))
    documents = {SPDX3_KEY: _compressed(spdx3), CYCLONEDX_KEY: _compressed(cyclonedx)}
    spdx3_digest, cyclonedx_digest = (
        f"sha256:{hashlib.sha256(text.encode()).hexdigest()}" for text in (spdx3, cyclonedx)
    )
    _HELD[key] = (bom, documents, spdx3_digest, cyclonedx_digest)
    _HELD.move_to_end(key)
    while len(_HELD) > HELD_DOCUMENTS or sum(len(d) for e in _HELD.values() for d in e[1].values()) > HELD_BYTES:
        _HELD.popitem(last=False)
    return documents, spdx3_digest, cyclonedx_digest
