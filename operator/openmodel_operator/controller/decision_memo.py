"""Offline decisions of the last seconds, reused for passes with the very same inputs.

After a restart or a policy change every model is decided again from its recorded evidence (issue 13:
10,000 decisions, ~1.4 ms each: a signature check, policy rules, openness). Models of one content share one
evidence object and the same resolved policies, so most of those decisions are one decision repeated. A
decision is reused only for the *same objects* (evidence and each policy compared by identity, and held
here so that an identity cannot be reused by another object), the same serving spec, image and endpoint,
and only within ``TTL_SECONDS`` of the time it was made at: certificates are judged at the pass's time,
so an expiry is seen at most that late (a settled model's next full pass came minutes later anyway).
"""

from __future__ import annotations

import collections
import datetime
from collections.abc import Callable, Sequence
from typing import Any

from openmodel_operator.trust.decision import Evidence, Verdict
from openmodel_operator.trust.policies import Policy

TTL_SECONDS = 5.0
MAX_HELD = 256


class DecisionMemo:
    """``decided(...)``: the verdict ``decide`` gives for these inputs at ``now``, computed at most once per
    ``TTL_SECONDS`` for equal inputs."""

    def __init__(self) -> None:
        self._held: collections.OrderedDict[
            tuple[Any, ...], tuple[datetime.datetime, Evidence, tuple[Policy, ...], Verdict]
        ] = collections.OrderedDict()
        self.hits = 0

    def decided(
        self,
        evidence: Evidence,
        policies: Sequence[Policy],
        context: tuple[str | None, ...],
        now: datetime.datetime,
        decide: Callable[[], Verdict],
    ) -> Verdict:
        """``context``: every other input of the decision as strings (the serving spec's JSON, the runtime
        image, the default endpoint)."""
        held_policies = tuple(policies)
        key = (id(evidence), tuple(id(policy) for policy in held_policies), context)
        held = self._held.get(key)
        if held is not None:
            made, held_evidence, same_policies, verdict = held
            fresh = datetime.timedelta(0) <= now - made < datetime.timedelta(seconds=TTL_SECONDS)
            if fresh and held_evidence is evidence and all(
                a is b for a, b in zip(same_policies, held_policies, strict=True)
            ):
                self.hits += 1
                return verdict
        verdict = decide()
        self._held[key] = (now, evidence, held_policies, verdict)
        self._held.move_to_end(key)
        while len(self._held) > MAX_HELD:
            self._held.popitem(last=False)
        return verdict
