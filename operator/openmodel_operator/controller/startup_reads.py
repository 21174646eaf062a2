"""What a pass reads from the API server while the operator's start-up listing is still running.

After a start the caches (policies, namespaces, children) are complete only once Kopf has listed every kind:
on a slow API server and 10,000 models, a minute (issue 13). A model created or edited then need not wait: its
pass reads the same facts directly, a few requests each: every ModelTrustPolicy (a pass must never be decided
by some policies only: that would fail open), its namespace's labels (they select the policies) and its own
children (so a child made before the restart is found, never created twice or taken for somebody else's). The
policy list is shared by the passes of one second; at most ``EARLY_PASSES`` such passes run at once, so they
cannot crowd out the listing itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any

from openmodel_operator.controller.kube import Kube
from openmodel_operator.planning.children import MANAGED_BY
from openmodel_operator.trust.policies import Policy, usable_policy

EARLY_PASSES = 4  # passes at once before the start-up listing ended
POLICIES_FOR = 1.0  # seconds one direct policy list serves the passes that ask


class StartupReads:
    """Direct reads standing in for the caches until the start-up listing ends."""

    def __init__(
        self, kube: Callable[[], Kube], child_kinds: tuple[str, ...], clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._kube = kube
        self._kinds = child_kinds
        self._clock = clock
        self._policies: tuple[float, list[Policy]] | None = None
        self._listing: asyncio.Lock = asyncio.Lock()
        self._slots = asyncio.Semaphore(EARLY_PASSES)
        self._ended = asyncio.Event()

    def listing_ended(self) -> None:
        """The caches are complete: passes waiting for a slot stop waiting (``slot``)."""
        self._ended.set()

    @contextlib.asynccontextmanager
    async def slot(self) -> AsyncIterator[bool]:
        """One of ``EARLY_PASSES`` slots (True), or none (False) when the listing ends first: that pass then
        reads the caches, and is not held to four at a time behind the early ones."""
        acquiring = asyncio.ensure_future(self._slots.acquire())
        ended = asyncio.ensure_future(self._ended.wait())
        try:
            await asyncio.wait({acquiring, ended}, return_when=asyncio.FIRST_COMPLETED)
        except BaseException:  # cancelled while waiting: a slot acquired meanwhile goes back
            ended.cancel()
            if not acquiring.cancel():
                self._slots.release()
            raise
        ended.cancel()
        granted = not acquiring.cancel()  # a slot acquired meanwhile is this pass's (cancel() is False when done)
        try:
            yield granted
        finally:
            if granted:
                self._slots.release()

    async def policies(self) -> list[Policy]:
        """Every ModelTrustPolicy, as the policy index turns them into policies (an invalid one fails closed)."""
        async with self._listing:  # one list in flight; the passes waiting for it share its answer
            held = self._policies
            if held is not None and self._clock() - held[0] < POLICIES_FOR:
                return held[1]
            docs = await self._kube().list_policies()
            found = [usable_policy(doc, origin=f"ModelTrustPolicy {_name(doc)}") for doc in docs]
            self._policies = (self._clock(), found)
            return found

    async def labels(self, namespace: str) -> dict[str, str]:
        """The namespace's labels ({} when it is gone: its models are being deleted with it)."""
        return await self._kube().namespace_labels(namespace) or {}

    async def children(self, namespace: str, owner: str) -> list[Mapping[str, Any]]:
        """The model's children the child watch would hold: its owner label and the operator's managed-by label."""
        kube = self._kube()
        found: list[Mapping[str, Any]] = []
        for kind in self._kinds:
            found.extend({"kind": kind, **obj} for obj in await kube.list_children(kind, namespace, owner, MANAGED_BY))
        return found


def _name(doc: Mapping[str, Any]) -> str:
    return str((doc.get("metadata") or {}).get("name") or "")
