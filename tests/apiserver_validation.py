"""What a kube-apiserver does to a custom object on create: default, refuse unknown fields, validate, run CEL.

Error strings follow the apiserver's phrasing so tests assert on the message a user sees after
``kubectl apply``. CEL rules run through cel-python (standard CEL; the CRDs use no Kubernetes-only
CEL library functions for that reason).
"""

from __future__ import annotations

import copy
import re
from typing import Any

import celpy

Schema = dict[str, Any]

_CEL = celpy.Environment()
_PROGRAMS: dict[str, Any] = {}


def version_schema(crd: dict[str, Any]) -> Schema:
    """The openAPIV3Schema of the CRD's storage version."""
    for version in crd["spec"]["versions"]:
        if version.get("storage"):
            schema: Schema = version["schema"]["openAPIV3Schema"]
            return schema
    raise AssertionError("CRD has no storage version")


def go_pattern_match(pattern: str, value: str) -> bool:
    """OpenAPI ``pattern`` as the apiserver runs it (Go RE2): unanchored search, ``\\s``/``\\d``/``\\w`` ASCII, and
    ``$`` the end of the text (Python's ``$`` also matches before a final newline). The CRD patterns use ``$``
    only as an anchor (tests/adversarial/test_policy_invalid.py checks it)."""
    return re.search(pattern.replace("$", r"\Z"), value, flags=re.ASCII) is not None


def apply_defaults(schema: Schema, value: Any) -> Any:
    """Fill in schema defaults the way the apiserver does (parents first, then their fields)."""
    if isinstance(value, dict) and "properties" in schema:
        for name, child in schema["properties"].items():
            if name not in value and "default" in child:
                value[name] = copy.deepcopy(child["default"])
            if name in value:
                value[name] = apply_defaults(child, value[name])
    elif isinstance(value, dict) and isinstance(schema.get("additionalProperties"), dict):
        for key in value:
            value[key] = apply_defaults(schema["additionalProperties"], value[key])
    elif isinstance(value, list) and "items" in schema:
        return [apply_defaults(schema["items"], item) for item in value]
    return value


def _type_ok(schema: Schema, value: Any) -> bool:
    if value is None:
        return bool(schema.get("nullable"))
    if schema.get("x-kubernetes-int-or-string"):
        return isinstance(value, int | str) and not isinstance(value, bool)
    expected = schema.get("type")
    return {
        None: True,
        "object": isinstance(value, dict),
        "array": isinstance(value, list),
        "string": isinstance(value, str),
        "integer": isinstance(value, int) and not isinstance(value, bool),
        "number": isinstance(value, int | float) and not isinstance(value, bool),
        "boolean": isinstance(value, bool),
    }[expected]


def _quote(value: Any) -> str:
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, dict):
        return '"object"'
    if isinstance(value, list):
        return '"array"'
    return str(value).lower() if isinstance(value, bool) else str(value)


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def _validate(schema: Schema, value: Any, path: str, errors: list[str]) -> None:
    if not _type_ok(schema, value):
        errors.append(f"{path}: Invalid value: {_quote(value)}: {path} in body must be of type {schema.get('type')}")
        return
    if value is None:
        return
    if "enum" in schema and value not in schema["enum"]:
        supported = ", ".join(f'"{v}"' for v in schema["enum"])
        errors.append(f"{path}: Unsupported value: {_quote(value)}: supported values: {supported}")
    if isinstance(value, str):
        if "pattern" in schema and not go_pattern_match(schema["pattern"], value):
            errors.append(f"{path}: Invalid value: {_quote(value)}: {path} in body should match '{schema['pattern']}'")
        if "maxLength" in schema and len(value) > schema["maxLength"]:
            errors.append(f"{path}: Too long: may not be longer than {schema['maxLength']}")
        if "minLength" in schema and len(value) < schema["minLength"]:
            errors.append(
                f"{path}: Invalid value: {_quote(value)}: {path} in body should be at least "
                f"{schema['minLength']} chars long"
            )
    if isinstance(value, int) and not isinstance(value, bool):
        if "minimum" in schema and value < schema["minimum"]:
            errors.append(
                f"{path}: Invalid value: {value}: {path} in body should be greater than or equal to {schema['minimum']}"
            )
        if "maximum" in schema and value > schema["maximum"]:
            errors.append(
                f"{path}: Invalid value: {value}: {path} in body should be less than or equal to {schema['maximum']}"
            )
    if isinstance(value, list):
        if "maxItems" in schema and len(value) > schema["maxItems"]:
            errors.append(f"{path}: Too many: {len(value)}: must have at most {schema['maxItems']} items")
        for index, item in enumerate(value):
            _validate(schema.get("items", {}), item, f"{path}[{index}]", errors)
    if isinstance(value, dict):
        props = schema.get("properties")
        for name in schema.get("required", []):
            if name not in value:
                errors.append(f"{_join(path, name)}: Required value")
        if props is not None:
            for key, item in value.items():
                if key in props:
                    _validate(props[key], item, _join(path, key), errors)
                elif not schema.get("x-kubernetes-preserve-unknown-fields"):
                    errors.append(f'unknown field "{_join(path, key)}"')
        elif isinstance(schema.get("additionalProperties"), dict):
            for key, item in value.items():
                _validate(schema["additionalProperties"], item, f"{path}[{key}]", errors)
    for rule in schema.get("x-kubernetes-validations", []):
        program = _PROGRAMS.get(rule["rule"])
        if program is None:
            program = _PROGRAMS[rule["rule"]] = _CEL.program(_CEL.compile(rule["rule"]))
        result = program.evaluate({"self": celpy.json_to_cel(value)})
        if not (isinstance(result, celpy.celtypes.BoolType) and bool(result)):
            # as a v1.28 apiserver reports a CEL failure: the schema's type in place of the value
            errors.append(f"{path}: Invalid value: \"{schema.get('type') or 'object'}\": {rule['message']}")


def admit(crd: dict[str, Any], obj: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """Default and validate ``obj`` like the apiserver would on create; returns the stored object and errors."""
    schema = version_schema(crd)
    stored = apply_defaults(schema, copy.deepcopy(obj))
    errors: list[str] = []
    body = {k: v for k, v in stored.items() if k not in ("apiVersion", "kind", "metadata")}
    props = {k: v for k, v in schema["properties"].items() if k not in ("apiVersion", "kind", "metadata")}
    _validate({**schema, "properties": props}, body, "", errors)
    return stored, errors
