"""One OpenModel read once into typed values: its reference, its spec (or why it is unusable) and its status.

Everything after this works on these models, with real datetimes; the wire dictionaries are parsed here
and written back only by ``planner.status_patch``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from openmodel_operator.api.openmodel import OpenModelSpec, OpenModelStatus
from openmodel_operator.planning.children import ModelRef


@dataclasses.dataclass(frozen=True)
class ModelState:
    """An OpenModel as one pass sees it."""

    ref: ModelRef
    spec: OpenModelSpec | None  # None when the stored spec does not validate (``spec_error`` says why)
    status: OpenModelStatus
    spec_error: str | None = None


def read_status(raw: Mapping[str, Any] | None) -> OpenModelStatus:
    """The stored status as typed values; one that does not parse (another version's, a hand edit) reads as empty,
    which only makes the next pass examine again."""
    try:
        return OpenModelStatus.model_validate(dict(raw or {}))
    except ValidationError:
        return OpenModelStatus()


def spec_problem(exc: ValidationError) -> str:
    """The first validation error as a message that names the field and the fix."""
    err = exc.errors()[0]
    where = "spec." + ".".join(str(p) for p in err["loc"])
    return f"{where}: {err['msg']}; fix the manifest (the CRD schema should have refused it)"


def read_model(body: Mapping[str, Any], status: OpenModelStatus | None = None) -> ModelState:
    """Read an OpenModel body; ``status`` replaces the body's when the caller knows a newer one (its own write)."""
    meta = body["metadata"]
    ref = ModelRef(name=meta["name"], namespace=meta["namespace"], uid=meta["uid"], generation=meta.get("generation"))
    current = status if status is not None else read_status(body.get("status"))
    try:
        spec = OpenModelSpec.model_validate(body.get("spec") or {})
    except ValidationError as exc:
        return ModelState(ref, None, current, spec_problem(exc))
    return ModelState(ref, spec, current)
