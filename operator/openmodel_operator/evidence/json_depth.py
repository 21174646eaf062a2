"""The nesting depth of parsed JSON: every answer and report the operator parses is refused past a bound
depth, and measuring it must not itself recurse (a deep document would exhaust the stack)."""

from __future__ import annotations

from typing import Any


def json_depth(value: Any) -> int:
    """The nesting depth of a parsed JSON value, computed without recursion."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            deepest = max(deepest, depth)
            stack.extend((child, depth + 1) for child in item.values())
        elif isinstance(item, list):
            deepest = max(deepest, depth)
            stack.extend((child, depth + 1) for child in item)
    return deepest
