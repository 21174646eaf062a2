"""Turn a pydantic JSON schema into a Kubernetes structural OpenAPI v3 schema.

A raw ``model_json_schema()`` is not a CRD schema: the apiserver refuses ``$ref``, ``anyOf`` with
``null``, ``const``, ``additionalProperties: false`` beside ``properties`` and numeric
``exclusiveMinimum``. This converter rewrites each of them into the structural equivalent.
"""

from __future__ import annotations

import copy
from typing import Any

from pydantic import BaseModel

JsonSchema = dict[str, Any]

# Keys a structural CRD schema may contain (OpenAPI v3 subset plus Kubernetes extensions).
ALLOWED_KEYS = frozenset(
    {
        "type",
        "format",
        "description",
        "properties",
        "required",
        "items",
        "additionalProperties",
        "enum",
        "default",
        "nullable",
        "pattern",
        "minLength",
        "maxLength",
        "minimum",
        "maximum",
        "exclusiveMinimum",
        "exclusiveMaximum",
        "multipleOf",
        "minItems",
        "maxItems",
        "minProperties",
        "maxProperties",
        "anyOf",
        "x-kubernetes-preserve-unknown-fields",
        "x-kubernetes-int-or-string",
        "x-kubernetes-list-type",
        "x-kubernetes-list-map-keys",
        "x-kubernetes-map-type",
        "x-kubernetes-validations",
        "x-kubernetes-embedded-resource",
    }
)


class SchemaConversionError(ValueError):
    """The pydantic schema uses a construct that has no structural equivalent."""


def _resolve(node: JsonSchema, defs: dict[str, JsonSchema]) -> JsonSchema:
    """Inline a ``$ref`` (and pydantic's single-element ``allOf`` wrapper), keeping sibling keys."""
    node = dict(node)
    if "allOf" in node and len(node["allOf"]) == 1:
        inner = node.pop("allOf")[0]
        node = {**inner, **node}
    if "$ref" in node:
        name = node.pop("$ref").rsplit("/", 1)[-1]
        target = copy.deepcopy(defs[name])
        # Field-level keys (description, default) win over the referenced model's own.
        target.update(node)
        node = _resolve(target, defs)
    return node


def _convert(node: JsonSchema, defs: dict[str, JsonSchema], *, in_status: bool) -> JsonSchema:
    node = _resolve(node, defs)

    if "anyOf" in node:
        branches = [_resolve(b, defs) for b in node.pop("anyOf")]
        non_null = [b for b in branches if b.get("type") != "null"]
        nullable = len(non_null) != len(branches)
        if len(non_null) == 1:
            merged = {**non_null[0], **node}
            node = _convert(merged, defs, in_status=in_status)
            if nullable:
                node["nullable"] = True
            return node
        types = sorted(b.get("type", "") for b in non_null)
        if types == ["integer", "string"]:
            either = _convert({k: v for k, v in node.items() if k != "default"}, defs, in_status=in_status)
            either["x-kubernetes-int-or-string"] = True
            if nullable:
                either["nullable"] = True
            return either
        raise SchemaConversionError(f"unsupported union of types {types}: use one type or int-or-string")

    out: JsonSchema = {}
    for key, value in node.items():
        if key in ("title", "examples", "$defs"):
            continue
        if key == "const":
            out["enum"] = [value]
        elif key == "properties":
            out["properties"] = {name: _convert(child, defs, in_status=in_status) for name, child in value.items()}
        elif key == "items":
            out["items"] = _convert(value, defs, in_status=in_status)
        elif key == "additionalProperties":
            if isinstance(value, dict):
                out["additionalProperties"] = _convert(value, defs, in_status=in_status)
            # booleans: false beside properties is forbidden, true is expressed by preserve-unknown-fields
        elif key == "uniqueItems":
            if value:
                out["x-kubernetes-list-type"] = "set"
        elif key in ("exclusiveMinimum", "exclusiveMaximum") and not isinstance(value, bool):
            bound = "minimum" if key == "exclusiveMinimum" else "maximum"
            out[bound] = value
            out[key] = True
        else:
            out[key] = value

    if out.get("default", 0) is None or in_status:
        out.pop("default", None)

    if out.get("type") == "object" and "properties" in out:
        # Objects whose fields all have defaults default to {} so the apiserver fills them in.
        for name, child in out["properties"].items():
            required = set(out.get("required", []))
            if (
                not in_status
                and name not in required
                and "default" not in child
                and child.get("type") == "object"
                and "properties" in child
                and not child.get("required")
                and not child.get("nullable")
            ):
                child["default"] = {}
    if out.get("x-kubernetes-preserve-unknown-fields"):
        out.setdefault("type", "object")
        out.pop("additionalProperties", None)

    unknown = set(out) - ALLOWED_KEYS
    if unknown:
        raise SchemaConversionError(f"schema keys {sorted(unknown)} are not allowed in a structural CRD schema")
    # type and description first keeps the checked-in YAML readable
    return {key: out[key] for key in sorted(out, key=_key_rank)}


_LEADING_KEYS = ("type", "description")


def _key_rank(key: str) -> tuple[int, str]:
    return (_LEADING_KEYS.index(key), "") if key in _LEADING_KEYS else (len(_LEADING_KEYS), key)


def structural_schema(model: type[BaseModel], *, status: bool = False) -> JsonSchema:
    """The structural schema of a pydantic model, camelCase field names, descriptions kept.

    ``status=True`` drops defaults: the apiserver must never invent status values.
    """
    raw = model.model_json_schema(by_alias=True, mode="validation", ref_template="#/$defs/{model}")
    defs = raw.get("$defs", {})
    return _convert(raw, defs, in_status=status)


def forbidden_keys(schema: Any, path: str = "") -> list[str]:
    """Every place a schema still uses a construct a structural CRD schema forbids (for tests and CI)."""
    problems: list[str] = []
    if isinstance(schema, dict):
        for key, value in schema.items():
            here = f"{path}.{key}" if path else key
            if key in ("$ref", "$defs", "const", "examples", "title", "uniqueItems", "allOf", "oneOf"):
                problems.append(here)
            if key == "additionalProperties" and value is False:
                problems.append(here)
            if key == "additionalProperties" and isinstance(value, dict) and "properties" in schema:
                problems.append(here)
            if key in ("exclusiveMinimum", "exclusiveMaximum") and not isinstance(value, bool):
                problems.append(here)
            if key == "anyOf" and not schema.get("x-kubernetes-int-or-string"):
                problems.append(here)
            if key == "type" and value == "null":
                problems.append(here)
            if key == "properties":
                for name, child in value.items():
                    if "description" not in child and f"{here}.{name}" != "properties.metadata":
                        problems.append(f"{here}.{name} (no description)")
                    problems.extend(forbidden_keys(child, f"{here}.{name}"))
            elif key in ("items", "additionalProperties") and isinstance(value, dict):
                problems.extend(forbidden_keys(value, here))
        if "type" not in schema and not (
            schema.get("x-kubernetes-int-or-string") or schema.get("x-kubernetes-preserve-unknown-fields")
        ):
            problems.append(f"{path or '<root>'} (no type)")
    return problems
