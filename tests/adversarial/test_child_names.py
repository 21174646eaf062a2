"""Threat: two OpenModels of one namespace share a child (issue 8, property 12)."""

from __future__ import annotations

import itertools

from hypothesis import given, settings
from hypothesis import strategies as st

from openmodel_operator.evidence.pinned import PinnedManifest
from openmodel_operator.evidence.records import FileEntry
from openmodel_operator.planning.children import ModelRef, child_name, child_names

_PINNED = PinnedManifest("hf://o/m", "a" * 40, "sha256:" + "b" * 64, (FileEntry("f", 1, "c" * 64),))


def _names(owner: str) -> set[tuple[str, str]]:
    ref = ModelRef(owner, "ns", "uid", 1)
    return {(kind, name) for kind, name in child_names(ref, _PINNED).items()}


def test_a_shortened_name_and_a_verbatim_lookalike_do_not_collide() -> None:
    dotted = "a.b"
    lookalike = child_name(dotted)  # what a.b's Deployment is called: a-b-<hash>
    assert lookalike != dotted
    assert not (_names(dotted) & _names(lookalike))


def test_control_ordinary_names_are_kept_verbatim() -> None:
    assert child_name("granite") == "granite"
    assert child_name("granite", "-manifest") == "granite-manifest"


_DNS = st.from_regex(r"[a-z0-9]([-a-z0-9.]{0,40}[a-z0-9])?", fullmatch=True)


@settings(max_examples=200, deadline=None)
@given(st.lists(_DNS, min_size=2, max_size=6, unique=True))
def test_no_two_models_share_a_child(owners: list[str]) -> None:
    for first, second in itertools.combinations(owners, 2):
        assert not (_names(first) & _names(second)), (first, second)


def test_labels_of_a_long_name_and_its_lookalike_differ() -> None:
    """The labels select children and pods (Service selectors, deletion): they must be injective too."""
    from openmodel_operator.planning.children import label_value

    long = "granite-3-1-8b-instruct-quantized-w4a16-for-the-customer-support-team-production"
    lookalike = label_value(long)
    assert len(lookalike) <= 63 and lookalike != long
    assert label_value(lookalike) != lookalike  # the shortened form, written as a name, is hashed again
    assert label_value("granite") == "granite"  # control
