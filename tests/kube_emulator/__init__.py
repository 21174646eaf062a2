"""
A stateful, deliberately strict emulator of a bare kube-apiserver v1.28, for the offline tests.

It imitates a kube-apiserver backed by etcd with NO kubelet, scheduler or kube-controller-manager (the
"envtest" setup), built on :class:`kmock.KubernetesEmulator`: where the real API server is strict, this
emulator is strict too, so tests do not pass here and fail there. The operator's integration tests
(``tests/kube_fixtures.py``: the ``kube`` fixture), ``tests/test_kube_emulator.py`` (the proof of each
emulated behaviour), ``e2e/serve_emulator.py`` (``e2e/against-emulator.sh``: kubectl and the real
``openmodel run`` process) and ``bench/`` all run against it.

README.md, next to this file, lists what is emulated, what is knowingly not, and the known differences
from a real v1.28 apiserver. The modules hold one concept each; :class:`KubeEmulator` (``emulator.py``)
puts the pieces of the class (the ``*Mixin`` classes over the shared state of ``state.py``) together.
"""
from __future__ import annotations

from .cel import schema_cel
from .crds import DEFAULT_CRDS
from .emulator import SYSTEM_NAMESPACES, KubeEmulator
from .errors import ApiError, FieldError
from .patches import JsonPatchError, json_patch, merge_patch, strategic_merge_patch
from .paths import ApiTarget, parse_api_path
from .resources import ResourceDef
from .routing import KUBE_VERSION, RequestRecord
from .schema import schema_default, schema_prune, schema_validate
from .selectors import parse_field_selector, parse_label_selector

__all__ = [
    'DEFAULT_CRDS',
    'KUBE_VERSION',
    'SYSTEM_NAMESPACES',
    'ApiError',
    'ApiTarget',
    'FieldError',
    'JsonPatchError',
    'KubeEmulator',
    'RequestRecord',
    'ResourceDef',
    'json_patch',
    'merge_patch',
    'parse_api_path',
    'parse_field_selector',
    'parse_label_selector',
    'schema_cel',
    'schema_default',
    'schema_prune',
    'schema_validate',
    'strategic_merge_patch',
]
