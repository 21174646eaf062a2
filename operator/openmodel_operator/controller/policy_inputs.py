"""What a policy references outside itself: keys, CAs and a Sigstore trusted root kept in ConfigMaps.

Why a module of its own: these references are the trust anchors, so an unreadable one must make the
policy unusable (``problem`` set, every model it governs fails with PolicyInvalid) rather than be
skipped, and a change of their content (a key ConfigMap edited or deleted) must reach the models as
fast as a change of the policy itself. Reads are cached for a few seconds and shared by every model
(one GET per referenced ConfigMap per interval, however many models a policy governs).
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from openmodel_operator.api.common import NamespacedConfigMapKeyRef
from openmodel_operator.controller.kube import KubeError
from openmodel_operator.trust.policies import Policy

ConfigMapReader = Callable[[str, str, str], Awaitable[bytes]]
CACHE_SECONDS = 10.0
MAX_MEMO = 1024  # resolved policies kept (a handful of policies, each at a few generations)


@dataclasses.dataclass(frozen=True)
class ResolvedPolicy:
    """A policy with its references inlined, and a digest of everything it was evaluated with."""

    policy: Policy
    inputs_digest: str


class PolicyInputs:
    """Inlines each policy's referenced PEMs and trusted root; a reference that cannot be read fails closed."""

    def __init__(
        self,
        read_configmap_key: ConfigMapReader,
        default_trusted_root: bytes | None = None,
        clock: Callable[[], float] = time.monotonic,
        cache_seconds: float = CACHE_SECONDS,
    ) -> None:
        self._read = read_configmap_key
        self._default_root = default_trusted_root
        self._clock = clock
        self._ttl = cache_seconds
        self._cache: dict[tuple[str, str, str], tuple[float, asyncio.Task[bytes]]] = {}
        self._memo: dict[tuple[Any, ...], ResolvedPolicy] = {}

    async def _get(self, ref: NamespacedConfigMapKeyRef) -> bytes:
        key = (ref.namespace, ref.name, ref.key)
        now = self._clock()
        cached = self._cache.get(key)
        if cached is None or now - cached[0] > self._ttl:
            task = asyncio.ensure_future(self._read(ref.namespace, ref.name, ref.key))
            cached = (now, task)
            self._cache[key] = cached
        return await asyncio.shield(cached[1])

    async def resolve(self, policies: Sequence[Policy]) -> list[ResolvedPolicy]:
        """Every policy with PEMs and trusted root inlined, or with ``problem`` set when one is unreadable."""
        return [await self._resolve_one(policy) for policy in policies]

    async def _resolve_one(self, policy: Policy) -> ResolvedPolicy:
        rules = policy.spec.signature
        refs: list[tuple[str, NamespacedConfigMapKeyRef]] = [
            (f"spec.signature.keys[{k.name!r}].configMapRef", k.config_map_ref)
            for k in rules.keys or []
            if k.config_map_ref is not None
        ]
        refs += [
            (f"spec.signature.certificates[{c.name!r}].configMapRef", c.config_map_ref)
            for c in rules.certificates or []
            if c.config_map_ref is not None
        ]
        if rules.trusted_root is not None:
            refs.append(("spec.signature.trustedRoot", rules.trusted_root))
        problems: list[str] = []
        contents = tuple([await self._read_ref(ref, field, problems) for field, ref in refs])
        # one resolution per policy generation and referenced content, shared by every model it governs
        # (a policy deleted and created again starts at generation 1 again: its uid tells them apart)
        memo_key = (policy.name, policy.uid, policy.generation, policy.problem, contents)
        cacheable = policy.uid is not None and policy.generation is not None
        if cacheable and (hit := self._memo.get(memo_key)) is not None:
            return hit
        resolved = self._inline(policy, contents, problems)
        if cacheable:
            if len(self._memo) > MAX_MEMO:
                self._memo.clear()
            self._memo[memo_key] = resolved
        return resolved

    def _inline(self, policy: Policy, contents: tuple[bytes | None, ...], problems: list[str]) -> ResolvedPolicy:
        """The policy with the read contents in place of its references (in the order ``_resolve_one`` read them)."""
        spec = policy.spec.model_copy(deep=True)
        hasher = hashlib.sha256(spec.model_dump_json(by_alias=True).encode())
        values = iter(contents)
        for key in spec.signature.keys or []:
            if key.config_map_ref is not None:
                pem = next(values)
                if pem is not None:
                    key.public_key, key.config_map_ref = pem.decode("utf-8", "replace"), None
        for ca in spec.signature.certificates or []:
            if ca.config_map_ref is not None:
                pem = next(values)
                if pem is not None:
                    ca.ca_bundle, ca.config_map_ref = pem.decode("utf-8", "replace"), None
        root = self._default_root if spec.signature.trusted_root is None else next(values)
        hasher.update(spec.model_dump_json(by_alias=True).encode())
        hasher.update(root or b"")
        resolved = dataclasses.replace(policy, spec=spec, trusted_root_json=root)
        if problems and policy.problem is None:
            resolved = dataclasses.replace(resolved, problem="; ".join(problems))
        hasher.update((resolved.problem or "").encode())
        return ResolvedPolicy(resolved, f"sha256:{hasher.hexdigest()}")

    async def _read_ref(self, ref: NamespacedConfigMapKeyRef, field: str, problems: list[str]) -> bytes | None:
        try:
            return await self._get(ref)
        except KubeError as exc:
            problems.append(
                f"{field}: key {ref.key!r} of ConfigMap {ref.namespace}/{ref.name} cannot be read "
                f"(HTTP {exc.status}); create the ConfigMap or fix the reference"
            )
            return None
