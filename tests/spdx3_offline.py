"""SPDX 3.0.1 validation without the network: ``spdx3-validate``'s own JSON-schema and SHACL checks, fed local copies.

``spdx3_validate.validate`` downloads the context, schema and SHACL model from spdx.org on every run (and rdflib
fetches the ``@context`` URL while parsing JSON-LD). Here the same pieces run on ``tests/data/spdx-3.0.1``
(provenance in its README): the document is checked against the JSON schema as written, then parsed into RDF with
the context inlined and checked against the SHACL shapes with ``spdx3_validate.core.check_graph``.
"""

from __future__ import annotations

import functools
import json
import warnings
from pathlib import Path
from typing import Any

import rdflib
from spdx3_validate.core import check_graph, schema_validator
from spdx3_validate.spdx_versions import find_version

DATA = Path(__file__).parent / "data" / "spdx-3.0.1"
CONTEXT_URL = "https://spdx.org/rdf/3.0.1/spdx-context.jsonld"


@functools.cache
def _validation_data() -> tuple[Any, rdflib.Graph, Any]:
    schema = json.loads((DATA / "spdx-json-schema.json").read_text())
    shacl = rdflib.Graph()
    shacl.parse(DATA / "spdx-model.ttl", format="turtle")
    context = json.loads((DATA / "spdx-context.jsonld").read_text())["@context"]
    return schema_validator(schema), shacl, context


def spdx3_errors(document: dict[str, Any]) -> list[str]:
    """Every schema and SHACL violation of an SPDX 3.0.1 JSON-LD document (empty: valid)."""
    if document.get("@context") != CONTEXT_URL:
        return [f"@context is {document.get('@context')!r}, not {CONTEXT_URL}"]
    version = find_version(CONTEXT_URL)
    assert version is not None
    validator, shacl, context = _validation_data()
    errors = [f"schema: {e.json_path}: {e.message}" for e in validator.iter_errors(document)]
    graph = rdflib.Graph()
    with warnings.catch_warnings():  # rdflib's JSON-LD parser uses its own deprecated ConjunctiveGraph
        warnings.simplefilter("ignore", DeprecationWarning)
        graph.parse(data=json.dumps({**document, "@context": context}), format="json-ld")
    errors.extend(f"shacl: {message}" for message in check_graph(graph, shacl, version, True))
    return errors
