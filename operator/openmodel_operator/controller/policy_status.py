"""ModelTrustPolicy status: how many models each policy governs and whether its spec is usable.

What `kubectl get mtp` shows (`governedModels`, `Accepted`). One loop for every policy, not a Kopf timer
per policy: Kopf puts its finalizer on every object that has a timer or a daemon, and a policy needs no
cleanup when it is deleted. With that finalizer, deleting a policy while the operator is down hangs, and the
operator would need `patch` on the policies themselves; this loop needs only `patch` on their status.

The loop waits for the first policy event before it writes anything: Kopf delivers events only once every
watch index is complete, so a count is never taken from a half-listed cluster.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Any

from openmodel_operator.api.common import LabelSelector
from openmodel_operator.api.time import utcnow
from openmodel_operator.api.vocabulary import ConditionReason, ConditionType
from openmodel_operator.controller.kopf_indexes import namespace_labels, store_values
from openmodel_operator.planning.conditions import Cond, merge_conditions, read_conditions
from openmodel_operator.trust.decision import policy_violations
from openmodel_operator.trust.policies import selector_matches, usable_policy, without_references

log = logging.getLogger(__name__)

StatusPatch = Callable[[str, Mapping[str, Any]], Awaitable[bool]]  # (policy name, status) -> still exists


@dataclasses.dataclass(frozen=True)
class PolicyFacts:
    """What the status of one policy depends on, kept in a watch index (no API call to compute it)."""

    name: str
    uid: str | None
    generation: int | None
    selector: LabelSelector
    accepted: Cond
    status: Mapping[str, Any]  # the status the apiserver holds now


def policy_facts(body: Mapping[str, Any]) -> PolicyFacts:
    """The facts of a policy manifest; never raises (an unusable policy is reported, not skipped)."""
    policy = usable_policy(body)
    invalid = policy_violations(without_references(policy))  # inline PEMs; references are read per model
    if invalid:
        reason = ConditionReason.INVALID_SPEC if policy.problem is not None else ConditionReason.INVALID_ANCHORS
        accepted = Cond(ConditionType.ACCEPTED, "False", reason, invalid[0].message)
    else:
        accepted = Cond(ConditionType.ACCEPTED, "True", ConditionReason.VALID, "the policy is in force")
    meta = body.get("metadata") or {}
    return PolicyFacts(
        name=str(meta.get("name") or policy.name),
        uid=meta.get("uid"),
        generation=meta.get("generation"),
        selector=policy.spec.namespace_selector,
        accepted=accepted,
        status=dict(body.get("status") or {}),
    )


def desired_status(
    facts: PolicyFacts,
    namespaces: Iterable[tuple[str, Mapping[str, str]]],
    models_in: Callable[[str], int],
    now: datetime.datetime,
) -> dict[str, Any]:
    """The status fields the operator owns. An unusable policy governs too: its models fail with PolicyInvalid."""
    governed = sum(models_in(name) for name, labels in namespaces if selector_matches(facts.selector, labels))
    previous = read_conditions(facts.status.get("conditions"))
    conditions = merge_conditions(previous, [facts.accepted], facts.generation, now)
    return {
        "governedModels": governed,
        "observedGeneration": facts.generation,
        "conditions": [c.to_wire() for c in conditions],
    }


def status_patch(facts: PolicyFacts, desired: Mapping[str, Any]) -> dict[str, Any]:
    """The fields that differ from what the apiserver holds (empty: nothing to write)."""
    return {key: value for key, value in desired.items() if facts.status.get(key) != value}


class PolicyStatusWriter:
    """Writes the status of every policy every ``interval`` seconds, and soon after a policy changes."""

    def __init__(self, interval: float, enabled: bool = True) -> None:
        self.interval = interval
        # False in a shard that leaves policy status to another process (settings.policy_status "off"): one
        # writer per cluster, or shards that count different models would overwrite each other's governedModels
        self.enabled = enabled
        self._wake = asyncio.Event()
        self._ready = asyncio.Event()
        # what was last sent per policy uid, and when: a watch event that has not arrived yet is not a reason to
        # send the same patch again; after one interval it is (somebody else may have changed the status)
        self._sent: dict[str | None, tuple[float, dict[str, Any]]] = {}

    def policy_changed(self) -> None:
        """A policy event: the watch indexes are complete (Kopf delivers no event before); write soon."""
        self._ready.set()
        self._wake.set()

    async def run(
        self,
        policies: Callable[[], list[PolicyFacts]],
        namespaces: Callable[[], Sequence[tuple[str, Mapping[str, str]]]],
        models_in: Callable[[str], int],
        patch: StatusPatch,
        active: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        """Write every policy's status each interval and soon after a policy changes; ``active`` returns when
        this replica may write (a replica paused by Kopf peering waits there)."""
        if not self.enabled:
            log.info("policy status is written by another process (policy status: off)")
            return
        await self._ready.wait()
        while True:
            if active is not None:
                await active()
            self._wake.clear()
            try:
                await self.write_all(policies(), namespaces(), models_in, patch)
            except Exception:  # never dies: the next pass tries again
                log.exception("policy status pass failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=self.interval)

    async def write_all(
        self,
        policies: list[PolicyFacts],
        namespaces: Sequence[tuple[str, Mapping[str, str]]],
        models_in: Callable[[str], int],
        patch: StatusPatch,
    ) -> None:
        now, clock = utcnow(), time.monotonic()
        live = {facts.uid for facts in policies}
        for uid in [uid for uid in self._sent if uid not in live]:
            del self._sent[uid]
        for facts in policies:
            changes = status_patch(facts, desired_status(facts, namespaces, models_in, now))
            if not changes:
                self._sent.pop(facts.uid, None)
                continue
            sent = self._sent.get(facts.uid)
            if sent is not None and sent[1] == changes and clock - sent[0] < self.interval:
                continue
            try:
                exists = await patch(facts.name, changes)
            except Exception as exc:  # a refusal (403, 422) is logged; the next pass tries again
                log.warning("cannot write the status of a policy", extra={"policy": facts.name, "error": str(exc)})
                continue
            if exists:
                self._sent[facts.uid] = (clock, changes)


def start_writer(
    writer: PolicyStatusWriter,
    indexes: Mapping[str, Any],
    models_in: Callable[[str], int],
    patch: StatusPatch,
    active: Callable[[], Awaitable[None]] | None = None,
) -> asyncio.Task[None]:
    """Run ``writer`` over Kopf's policy-facts and namespace indexes (``indexes``: a handler's kwargs) and the
    model counts ``models_in`` gives per namespace."""
    return asyncio.create_task(
        writer.run(
            lambda: store_values(indexes["policy_facts_index"], "all"),
            lambda: namespace_labels(indexes["namespace_index"]),
            models_in,
            patch,
            active,
        ),
        name="policy-status",
    )
