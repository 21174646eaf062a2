""":class:`KubeEmulator`: the pieces of this package put together on top of kmock.
"""

from __future__ import annotations

import attrs
import kmock

from .admission import AdmissionMixin
from .controllers import ControllersMixin
from .crds import DEFAULT_CRDS, CrdMixin
from .deletion import DeleteMixin
from .direct_api import DirectApiMixin
from .kind_rules import KindRulesMixin
from .patch_requests import PatchMixin
from .registry import RegistryMixin
from .routing import RoutingMixin
from .storage import StorageMixin
from .watch import WatchMixin
from .webhooks import WebhookMixin
from .writes import WriteMixin

# Namespaces that kube-apiserver itself creates on bootstrap (the controller-manager creates nothing here).
SYSTEM_NAMESPACES = ('default', 'kube-system', 'kube-public', 'kube-node-lease')


@attrs.define(kw_only=True)
class KubeEmulator(
    RoutingMixin,
    WebhookMixin,
    WatchMixin,
    PatchMixin,
    WriteMixin,
    DeleteMixin,
    AdmissionMixin,
    KindRulesMixin,
    CrdMixin,
    StorageMixin,
    RegistryMixin,
    DirectApiMixin,
    ControllersMixin,
):
    """
    kmock's Kubernetes emulator made stateful and strict like a bare kube-apiserver v1.28 (see README.md).

    Serve it with ``kmock.Server(emulator)`` inside ``async with emulator:``; the ``kube`` fixture in
    ``tests/kube_fixtures.py`` does both. kmock's DSL reactions with a normal priority still take
    precedence (``kube['patch', kube.resource('v1/configmaps')] << 500`` injects a failure).
    The fields are declared in :class:`~kube_emulator.state.EmulatorState`.
    """

    def __attrs_post_init__(self) -> None:
        # Only the scaffold's discovery & /version; kmock's own (lenient) object handling is replaced.
        kmock.KubernetesScaffold.__attrs_post_init__(self)
        self._declare_builtins()
        crds = list(DEFAULT_CRDS) if self.default_crds else []
        names = {crd['metadata']['name'] for crd in self.crds}
        for crd in [c for c in crds if c['metadata']['name'] not in names] + list(self.crds):
            self.install_crd(crd)
        for namespace in SYSTEM_NAMESPACES:
            self.create_namespace(namespace)
        self._create('v1/services', 'default', {
            'metadata': {'name': 'kubernetes', 'labels': {'component': 'apiserver', 'provider': 'kubernetes'}},
            'spec': {'ports': [{'name': 'https', 'port': 443, 'targetPort': 6443}]}}, manager='kube-apiserver')
