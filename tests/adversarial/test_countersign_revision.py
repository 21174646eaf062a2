"""Issue 8, property 11: `openmodel countersign` signs the reviewed commit, never a moving branch or tag.

Attack: an organisation countersigns `main` after reviewing it; the publisher pushes new weights to `main`;
the countersignature must not have been made over a name that moves. A branch, a tag, a short or
upper-case id, or no --revision at all is refused (exit 2) before anything is resolved or signed.
"""

from __future__ import annotations

import pathlib

import pytest
import yaml

from hubstub import HubStub
from openmodel_operator.cli import main
from signing_fixtures import TINY_MODEL, new_key


def countersign(hub: HubStub, key_file: pathlib.Path, *revision: str) -> int:
    return main(["countersign", "hf://thirdparty/model", "--endpoint", hub.url, "--key", str(key_file), *revision])


@pytest.mark.parametrize(
    "revision",
    [["--revision", "main"], ["--revision", "v1.0"], [], ["--revision", "short"], ["--revision", "upper"]],
    ids=["branch", "tag", "missing", "short-sha", "upper-case-sha"],
)
def test_a_name_that_can_move_is_refused(
    hub: HubStub, tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str], revision: list[str]
) -> None:
    commit = hub.add_model("thirdparty/model", TINY_MODEL, tag="v1.0")
    if revision[1:] == ["short"]:
        revision = ["--revision", commit[:7]]
    elif revision[1:] == ["upper"]:
        revision = ["--revision", commit.upper()]
    key_file = new_key().write_private(tmp_path / "org.pem")
    assert countersign(hub, key_file, *revision) == 2
    out, err = capsys.readouterr()
    assert out == ""  # nothing signed, no ConfigMap printed
    assert "40-character lowercase hex" in err and "--revision" in err


def test_the_reviewed_commit_is_countersigned(
    hub: HubStub, tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Control: the full commit id works, and the ConfigMap records that commit."""
    commit = hub.add_model("thirdparty/model", TINY_MODEL)
    key_file = new_key().write_private(tmp_path / "org.pem")
    assert countersign(hub, key_file, "--revision", commit) == 0
    configmap = yaml.safe_load(capsys.readouterr().out)
    assert configmap["metadata"]["annotations"]["openmodel.io/revision"] == commit
