"""The model card a BOM may quote: only the README the decision itself read as evidence.

The decision reads ``README.md`` only where a signature its policy trusts, or the matched pin, covers the
card's listed sha256 and the bytes hash to it (``decision.covered_files``); ``Verdict.evidence_files``
names what it read. A BOM reports datasets, base model, intended use and evaluation results from that same
card or not at all, so unsigned metadata (a README the signer ignored, a changed one, the Hub's ``cardData``)
never reaches an auditor as if it had been verified.
"""

from __future__ import annotations

from openmodel_operator.evidence.model_card import CardFacts, card_facts
from openmodel_operator.trust.decision import README_FILE, Evidence, Verdict


def verified_card(evidence: Evidence, verdict: Verdict) -> CardFacts:
    """The card facts of the README the verdict was read from; empty when it read none."""
    if README_FILE not in verdict.evidence_files:
        return CardFacts()
    data = evidence.evidence_bytes().get(README_FILE)
    return card_facts(data) if data is not None else CardFacts()
