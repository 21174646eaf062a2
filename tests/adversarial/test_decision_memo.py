"""Offline decisions are reused across models of one content (controller/decision_memo.py, issue 13), never
across anything the decision reads: another evidence object (even an equal one), another policy object,
another serving spec, image or endpoint, or a time outside the short window (a certificate that expired
must be seen). Each hostile variation is decided afresh and gets its own verdict; the control, the very same
inputs a second later, is decided once.
"""

from __future__ import annotations

import dataclasses
import datetime
from collections.abc import Callable

from policy_fixtures import model_evidence, open_policy
from test_serving_rules import serving

from openmodel_operator.api.openmodel import ServingSpec
from openmodel_operator.controller.decision_memo import TTL_SECONDS, DecisionMemo
from openmodel_operator.trust.decision import Evidence, Verdict, decide
from openmodel_operator.trust.policies import Policy

T0 = datetime.datetime(2026, 12, 1, tzinfo=datetime.UTC)


class Counted:
    """Makes the ``decide`` call the memo runs on a miss, and counts the misses."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, policies: list[Policy], evidence: Evidence, serving: ServingSpec) -> Callable[[], Verdict]:
        def run() -> Verdict:
            self.calls += 1
            return decide(policies, evidence, serving=serving, runtime_image="vllm:1", now=T0)

        return run


def test_equal_inputs_in_the_window_are_decided_once_and_anything_else_again() -> None:
    memo, counted = DecisionMemo(), Counted()
    evidence, policies = model_evidence(), [open_policy()]
    plain = ServingSpec()
    context = (plain.model_dump_json(), "vllm:1", None)
    first = memo.decided(evidence, policies, context, T0, counted(policies, evidence, plain))
    later = T0 + datetime.timedelta(seconds=1)
    again = memo.decided(evidence, list(policies), context, later, counted(policies, evidence, plain))
    assert counted.calls == 1 and again is first  # control: one decision for the same inputs

    equal_copy = dataclasses.replace(evidence)  # equal by value, another object: never trusted by identity
    memo.decided(equal_copy, policies, context, T0, counted(policies, equal_copy, plain))
    assert counted.calls == 2

    strict = [open_policy("strict")]  # an equal policy, another object (a policy edited and reverted)
    memo.decided(evidence, strict, context, T0, counted(strict, evidence, plain))
    assert counted.calls == 3

    hostile = serving(args=["--trust-remote-code"])
    other = (hostile.model_dump_json(), "vllm:1", None)
    refused = memo.decided(evidence, strict, other, T0, counted(strict, evidence, hostile))
    assert counted.calls == 4 and not refused.trusted, "a hostile serving spec got the verdict of a plain one"
    assert first.trusted  # control

    late = T0 + datetime.timedelta(seconds=TTL_SECONDS)
    memo.decided(evidence, policies, context, late, counted(policies, evidence, plain))
    earlier = T0 - datetime.timedelta(seconds=1)  # a clock set back is no reason to trust an older verdict
    memo.decided(evidence, policies, context, earlier, counted(policies, evidence, plain))
    assert counted.calls == 6
