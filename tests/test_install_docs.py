"""The install documentation: every apply is server-side, every path and link it names exists."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "docs" / name for name in ("install.md", "gitops.md", "rbac.md", "troubleshooting.md", "air-gapped.md")]
_FENCE = re.compile(r"```[a-z]*\n(.*?)```", re.DOTALL)
_PATH = re.compile(r"(?<![\w/.-])((?:manifests|charts|deploy/argocd|examples|crds|docs)/[\w./-]*[\w/])")
_LINK = re.compile(r"\]\(([^)#\s]+\.md)?(?:#([\w-]+))?\)")


def _commands(text: str) -> list[str]:
    """Shell commands in fenced blocks, continuation lines joined."""
    commands = []
    for block in _FENCE.findall(text):
        commands.extend(block.replace("\\\n", " ").splitlines())
    return commands


def _slug(heading: str) -> str:
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_every_apply_is_server_side(doc: Path) -> None:
    text = doc.read_text()
    applies = 0
    for command in _commands(text):
        if re.search(r"\bkubectl apply\b", command):
            applies += 1
            assert "--server-side" in command, f"{doc.name}: {command.strip()}"
        if re.search(r"\bkubectl create\b", command):
            assert "--dry-run=client" in command and "kubectl apply --server-side" in command, command
    prose = _FENCE.sub("", text)
    for line in prose.splitlines():
        for match in re.finditer(r"`(kubectl apply[^`]*)`", line):
            assert "--server-side" in match.group(1), f"{doc.name}: {match.group(1)}"
    if doc.name in ("install.md", "air-gapped.md", "gitops.md"):
        assert applies > 0


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_named_paths_and_links_exist(doc: Path) -> None:
    text = doc.read_text()
    for path in set(_PATH.findall(text)):
        assert (ROOT / path).exists(), f"{doc.name} names {path}, which does not exist"
    for target, anchor in _LINK.findall(text):
        linked = doc.parent / target if target else doc
        assert linked.exists(), f"{doc.name} links to {target}"
        if anchor:
            headings = {_slug(h) for h in re.findall(r"^#+ (.*)$", linked.read_text(), re.MULTILINE)}
            assert anchor in headings, f"{doc.name} links to {target}#{anchor}, a heading that does not exist"
