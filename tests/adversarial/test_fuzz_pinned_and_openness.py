"""Fuzz the parsers of tenant- and publisher-controlled documents (issue 8: hostile input is bounded).

``PinnedManifest.from_json`` reads a ConfigMap a tenant can edit: whatever it holds, the only
exception is PinnedManifestError, and what it accepts is safe (relative names without controls,
sizes that are byte counts, digests that add up). ``parse_declaration`` and ``assess_files`` read a
publisher's ``openness.yaml`` and README: they never raise. Bounded so the suite stays fast.
"""

from __future__ import annotations

import hashlib
import json
import unicodedata
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from openmodel_operator.evidence.manifest import manifest_digest_of
from openmodel_operator.evidence.pinned import FORMAT, PinnedManifest, PinnedManifestError
from openmodel_operator.evidence.records import FileEntry
from openmodel_operator.trust.openness import COMPONENTS, assess_files, assess_openness, parse_declaration

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# names an attacker would try: traversal, absolute, controls, bidi overrides and isolates, separators
HOSTILE_NAMES = st.sampled_from(
    [
        "../x",
        "a/../../etc/passwd",
        "/etc/passwd",
        "a//b",
        "./a",
        "a\\b",
        "model\u202esrotensafes.exe",
        "config\u2066.json",
        "a\u200fb",
        "line\u2028break",
        "c1\x85control",
        "nul\x00byte",
        "",
        "x" * 5000,
        "\ud800",
    ]
)
JSON_SCALARS = st.none() | st.booleans() | st.integers(min_value=-(2**200), max_value=2**200) | st.floats() | st.text()
JSON_VALUES = st.recursive(
    JSON_SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20,
)
HEX64 = st.text(alphabet="0123456789abcdef", min_size=64, max_size=64)


@st.composite
def file_items(draw: st.DrawFn) -> Any:
    """A files[] entry, well-formed or not, with a fair share of hostile names and numbers."""
    item: dict[str, Any] = {
        "path": draw(st.one_of(HOSTILE_NAMES, st.text(min_size=1, max_size=30), JSON_VALUES)),
        "size": draw(st.one_of(st.integers(min_value=-5, max_value=2**70), JSON_VALUES)),
        "sha256": draw(st.one_of(HEX64, JSON_VALUES)),
    }
    if draw(st.booleans()):
        item[draw(st.text(max_size=6))] = draw(JSON_VALUES)
    return draw(st.one_of(st.just(item), JSON_VALUES))


@st.composite
def manifests(draw: st.DrawFn) -> str:
    files = draw(st.lists(file_items(), max_size=5))
    doc: dict[str, Any] = {
        "format": draw(st.one_of(st.just(FORMAT), JSON_VALUES)),
        "source": draw(st.one_of(st.just("hf://org/m"), JSON_VALUES)),
        "revision": draw(st.one_of(st.none(), st.just("a" * 40), JSON_VALUES)),
        "endpoint": draw(st.one_of(st.none(), JSON_VALUES)),
        "files": draw(st.one_of(st.just(files), JSON_VALUES)),
    }
    if draw(st.booleans()):  # make the digest add up, so parsing goes all the way
        try:
            doc["manifestDigest"] = manifest_digest_of(
                FileEntry(f["path"], f["size"], f["sha256"]) for f in files if isinstance(f, dict)
            )
        except (ValueError, KeyError, TypeError, AttributeError):
            doc["manifestDigest"] = "sha256:" + "0" * 64
    else:
        doc["manifestDigest"] = draw(st.one_of(st.just("sha256:" + "0" * 64), JSON_VALUES))
    for key in draw(st.lists(st.sampled_from(sorted(doc)), max_size=2, unique=True)):
        del doc[key]
    return json.dumps(doc)


def _check(text: str) -> None:
    try:
        pinned = PinnedManifest.from_json(text)
    except PinnedManifestError:
        return
    # accepted: everything in it is safe and self-consistent
    for f in pinned.files:
        assert isinstance(f.path, str) and isinstance(f.size, int) and 0 <= f.size < 2**63
        assert ".." not in f.path.split("/") and not f.path.startswith("/")
        assert not any(unicodedata.category(ch) in {"Cc", "Cf", "Cs", "Zl", "Zp"} for ch in f.path)
    assert manifest_digest_of(pinned.files) == pinned.manifest_digest
    assert PinnedManifest.from_json(pinned.to_json()) == pinned


@FUZZ
@given(manifests())
def test_pinned_manifest_from_hostile_json(text: str) -> None:
    _check(text)


@FUZZ
@given(st.one_of(st.text(max_size=200), JSON_VALUES.map(json.dumps)))
def test_pinned_manifest_from_arbitrary_text(text: str) -> None:
    _check(text)


def test_pinned_manifest_from_pathological_json() -> None:
    deep = "[" * 200_000 + "]" * 200_000
    huge_int = json.dumps({"format": FORMAT, "files": [{"path": "a", "size": 0, "sha256": "0" * 64}]}).replace(
        '"size": 0', '"size": ' + "9" * 5000
    )
    for text in (deep, huge_int, '{"files": NaN}', "\ud800", '"' + "\\ud800" + '"'):
        try:
            PinnedManifest.from_json(text)
        except PinnedManifestError:
            continue
        raise AssertionError(f"accepted {text[:40]!r}")


@FUZZ
@given(HOSTILE_NAMES)
def test_hostile_names_are_refused_even_when_the_digest_adds_up(name: str) -> None:
    entry = {"path": name, "size": 1, "sha256": "0" * 64}
    try:
        digest = manifest_digest_of([FileEntry(name, 1, "0" * 64)])
    except ValueError:
        digest = "sha256:" + "0" * 64
    doc = {"format": FORMAT, "source": "hf://o/m", "manifestDigest": digest, "files": [entry]}
    try:
        PinnedManifest.from_json(json.dumps(doc))
    except PinnedManifestError:
        return
    raise AssertionError(f"accepted the file name {name!r}")


def test_control_a_legitimate_manifest_round_trips() -> None:
    files = tuple(
        sorted(
            FileEntry(p, len(d), hashlib.sha256(d).hexdigest()) for p, d in {"a.json": b"{}", "b/c.bin": b"x"}.items()
        )
    )
    pinned = PinnedManifest("hf://o/m", "a" * 40, manifest_digest_of(files), files, "https://huggingface.co")
    assert PinnedManifest.from_json(pinned.to_json()) == pinned


# ------------------------------------------------------------------------------- openness.yaml and README

COMPONENT_KEYS = st.sampled_from([spec.component.value for spec in COMPONENTS] + ["trainingData", "weights", "bogus"])
LICENSES = st.sampled_from(
    ["Apache-2.0", "MIT", "apache-2.0", "GPL-2.0 WITH Classpath-exception-2.0", "unknown", "other", ""]
)
YAML_KEYS = st.one_of(st.text(max_size=10), st.integers(), st.booleans(), st.none())
YAML_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30) | LICENSES,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(YAML_KEYS, inner, max_size=4),
    max_leaves=25,
)


@st.composite
def declarations(draw: st.DrawFn) -> Any:
    entry = st.one_of(
        st.fixed_dictionaries(
            {"license": st.one_of(LICENSES, YAML_VALUES)},
            optional={
                "url": st.one_of(st.just("https://example.org/x"), YAML_VALUES),
                "path": st.one_of(st.just("docs/x.md"), st.just("../x"), YAML_VALUES),
                "information": YAML_VALUES,
                "datasets": st.one_of(st.lists(st.one_of(st.text(max_size=10), YAML_VALUES), max_size=3), YAML_VALUES),
                "informationLicense": LICENSES,
            },
        ),
        YAML_VALUES,
    )
    doc = {
        "apiVersion": draw(st.one_of(st.just("openmodel.io/v1alpha1"), YAML_VALUES)),
        "kind": draw(st.one_of(st.just("OpennessDeclaration"), YAML_VALUES)),
        "components": draw(st.one_of(st.dictionaries(COMPONENT_KEYS, entry, max_size=6), YAML_VALUES)),
    }
    return draw(st.one_of(st.just(doc), YAML_VALUES))


@FUZZ
@given(declarations())
def test_parse_declaration_never_raises(raw: Any) -> None:
    components, errors = parse_declaration(raw)
    for item in components:
        assert isinstance(item.license, str) and item.license
    for error in errors:
        assert isinstance(str(error), str)
    evidence = assess_openness({}, raw if isinstance(raw, dict) else None, None)
    assert evidence.mof_class in {"None", "ClassIII", "ClassII", "ClassI"}


@FUZZ
@given(
    st.one_of(
        st.none(), st.binary(max_size=300), st.text(max_size=300).map(lambda t: ("---\n" + t + "\n---\n").encode())
    ),
    st.one_of(st.none(), st.binary(max_size=300), st.text(max_size=300).map(str.encode)),
)
def test_assess_files_never_raises(readme: bytes | None, declaration: bytes | None) -> None:
    evidence = assess_files(readme, declaration, ["README.md"])
    assert evidence.license is None or isinstance(evidence.license, str)
