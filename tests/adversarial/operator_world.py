"""The operator test world (emulated apiserver + Hub stand-in + the real operator) for adversarial tests.

Re-exported from ``tests/test_operator.py`` so the hostile cases run the same flows as the functional tests.
"""

from __future__ import annotations

from kube_fixtures import kube, run_operator
from test_operator import FILES, NS, World, operator, world

__all__ = ["FILES", "NS", "World", "kube", "operator", "run_operator", "world"]
