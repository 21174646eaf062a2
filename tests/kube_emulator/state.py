"""The state of the emulator: kmock's :class:`kmock.KubernetesEmulator` (discovery, ``objects`` with their
version history, the request log, DSL reactions) plus the fields the emulation keeps. Every piece of
:class:`~kube_emulator.KubeEmulator` (the ``*Mixin`` classes of this package) is a subclass of it, so
they all see the same attributes; :class:`~kube_emulator.KubeEmulator` puts the pieces together.
"""

from __future__ import annotations

import asyncio
import collections
import ipaddress
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

import attrs
import kmock

from .json_values import JsonDict
from .resources import ResourceDef

if TYPE_CHECKING:  # annotations only (these modules build on this one)
    from .routing import RequestRecord
    from .watch import Watcher, WatchEvent


@attrs.define(kw_only=True)
class EmulatorState(kmock.KubernetesEmulator):
    """The fields of :class:`~kube_emulator.KubeEmulator` (configuration first, then the emulated state)."""

    crds: Iterable[JsonDict] = ()  # CRD manifests to install on top of (and instead of) DEFAULT_CRDS
    default_crds: bool = True
    # bearer token -> (user name, groups): who a request is from (webhooks.py); any other request is the admin
    users: dict[str, tuple[str, tuple[str, ...]]] = attrs.field(factory=dict)
    keep_alive: bool = False  # False: "Connection: close", so Kopf's shutdown never waits for idle sockets

    _defs: dict[kmock.resource, ResourceDef] = attrs.field(factory=dict, init=False)
    _rv: int = attrs.field(default=1000, init=False)
    _log: dict[kmock.resource, list[WatchEvent]] = attrs.field(
        factory=lambda: collections.defaultdict(list), init=False)
    _compacted_rv: int = attrs.field(default=0, init=False)
    # the keys of ``_objects`` of each resource (storage.py): a list reads its resource's objects, not all objects
    # (every write asks for the webhook configurations: scanning every object made each write cost the cluster's size)
    _keys: dict[kmock.resource, dict[tuple[Any, str | None, str], None]] = attrs.field(
        factory=lambda: collections.defaultdict(dict), init=False)
    _watchers: dict[kmock.resource, list[Watcher]] = attrs.field(
        factory=lambda: collections.defaultdict(list), init=False)
    _conflicts: dict[tuple[kmock.resource, str | None, str], list[Any]] = attrs.field(factory=dict, init=False)
    # the matched objects of recent paged listings, by (resource, list rv, scope, selectors): a continued page is
    # cut from its listing's snapshot, as an API server reads it from etcd at that revision (storage.py)
    _list_snapshots: collections.OrderedDict[tuple[Any, ...], tuple[list[tuple[str, str]], list[JsonDict]]] = (
        attrs.field(factory=collections.OrderedDict, init=False))
    _cluster_ips: Iterator[ipaddress.IPv4Address] = attrs.field(
        factory=lambda: iter(ipaddress.IPv4Network('10.96.0.0/12').hosts()), init=False)
    _node_ports: Iterator[int] = attrs.field(factory=lambda: iter(range(30000, 32768)), init=False)
    _changed: asyncio.Event | None = attrs.field(default=None, init=False)
    _closing: bool = attrs.field(default=False, init=False)
    _finishing_crds: bool = attrs.field(default=False, init=False)
    request_counts: collections.Counter[str] = attrs.field(factory=collections.Counter, init=False)
    request_log: list[RequestRecord] = attrs.field(factory=list, init=False)
