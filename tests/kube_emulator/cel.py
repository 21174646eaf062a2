"""``x-kubernetes-validations``: CEL rules run with cel-python (standard CEL: no Kubernetes CEL libraries,
no cost limits), ``self`` and, on updates, ``oldSelf`` (transition rules; correlated through maps only).
"""

from __future__ import annotations

import collections
import json
from typing import Any

from .errors import FieldError
from .json_values import MISSING, JsonDict
from .schema import format_path, json_type

_CEL_PROGRAMS: dict[str, Any] = {}
# (rule, its message and reason, self as JSON, oldSelf as JSON) -> the rule's outcome: CEL has no clock and
# no I/O, so equal inputs give equal outcomes. cel-python interprets a parse tree; at 10,000 models every
# status patch ran each spec rule again on an unchanged spec: a third of the emulator's time in the operator
# benchmark.
_OUTCOMES: collections.OrderedDict[tuple[Any, ...], tuple[str, str] | None] = collections.OrderedDict()
_OUTCOMES_HELD = 16384


def _cel_rules(value: Any, schema: JsonDict, path: str, errors: list[FieldError], old: Any) -> None:
    """``x-kubernetes-validations``: CEL rules with ``self`` (and ``oldSelf`` on updates: transition rules)."""
    rules = schema.get('x-kubernetes-validations') or []
    if not rules:
        return
    this, before = _canonical(value), None if old is MISSING else _canonical(old)
    for rule in rules:
        text = rule['rule']
        if 'oldSelf' in text and old is MISSING:
            continue  # transition rules run on updates only
        key = (text, rule.get('message'), rule.get('reason'), this, before)
        if key in _OUTCOMES:
            _OUTCOMES.move_to_end(key)
            outcome = _OUTCOMES[key]
        else:
            outcome = _OUTCOMES[key] = _evaluate(text, rule, value, old)
            while len(_OUTCOMES) > _OUTCOMES_HELD:
                _OUTCOMES.popitem(last=False)
        if outcome is not None:
            # a real apiserver (v1.28) shows the schema's type, not the value: `Invalid value: "string": <message>`
            shown = schema.get('type') or json_type(value)
            errors.append(FieldError(path + (rule.get('fieldPath') or ''), outcome[0], outcome[1], shown))


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(',', ':'))


def _evaluate(text: str, rule: JsonDict, value: Any, old: Any) -> tuple[str, str] | None:
    """One rule on one value: None when it holds, else the error's (type, message)."""
    import celpy  # cel-python: a test dependency of the project
    from celpy.adapter import json_to_cel

    program = _CEL_PROGRAMS.get(text)
    if program is None:
        env = celpy.Environment()
        program = _CEL_PROGRAMS[text] = env.program(env.compile(text))
    activation = {'self': json_to_cel(value)}
    if old is not MISSING:
        activation['oldSelf'] = json_to_cel(old)
    try:
        result = program.evaluate(activation)
    except celpy.evaluation.CELEvalError as e:
        return 'Invalid', f'{e.args[0] if e.args else e} evaluating rule: {text}'
    if isinstance(result, celpy.evaluation.CELEvalError):
        return 'Invalid', f'{result.args[0]} evaluating rule: {text}'
    if not (isinstance(result, celpy.celtypes.BoolType) and bool(result)):
        message = rule.get('message') or f'failed rule: {text}'
        kind = {'FieldValueForbidden': 'Forbidden', 'FieldValueRequired': 'Required',
                'FieldValueDuplicate': 'Duplicate'}.get(rule.get('reason', ''), 'Invalid')
        return kind, message
    return None

def schema_cel(value: Any, schema: JsonDict | None, path: str, errors: list[FieldError], old: Any = MISSING) -> None:
    """Run the CEL rules of every node of the schema (``oldSelf`` correlates through maps only)."""
    if schema is None or value is None:
        return
    _cel_rules(value, schema, path, errors, old)
    if isinstance(value, dict):
        props = schema.get('properties') or {}
        additional = schema.get('additionalProperties')
        for key, sub in value.items():
            old_sub = old.get(key, MISSING) if isinstance(old, dict) else MISSING
            if key in props:
                schema_cel(sub, props[key], format_path(path, key), errors, old_sub)
            elif isinstance(additional, dict):
                schema_cel(sub, additional, format_path(path, key, is_map=True), errors, old_sub)
    elif isinstance(value, list) and isinstance(schema.get('items'), dict):
        for i, item in enumerate(value):
            schema_cel(item, schema['items'], f'{path}[{i}]', errors)
