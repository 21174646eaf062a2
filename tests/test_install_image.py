"""The Dockerfile, .dockerignore and the image scripts, checked statically (no container engine needed).

A build is what really proves an image (`make image` builds and smoke-tests it, CI runs it); these checks
catch what review misses: a root user, build tools or pip left in the final stage, an entrypoint that is
not `openmodel`, a context that leaks `.venv` or omits the files the build copies, a UID the manifests do
not run as, pip's CA mounted in a way that reaches a layer, a smoke test that runs the image otherwise than
the pods do.
"""

from __future__ import annotations

import dataclasses
import json
import re
import shlex
import subprocess
from pathlib import Path

import pytest

from test_install_manifests import NONROOT_UID

ROOT = Path(__file__).resolve().parent.parent
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
IMAGE_SCRIPTS = ROOT / "scripts" / "image"
BUILD_TOOLS = ("gcc", "g++", "clang", "make", "build-essential", "cargo", "rustc", "git", "curl", "wget")


@dataclasses.dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[tuple[str, str]]  # (INSTRUCTION, arguments), continuation lines joined

    def all(self, instruction: str) -> list[str]:
        return [args for ins, args in self.instructions if ins == instruction]

    def last(self, instruction: str) -> str:
        found = self.all(instruction)
        assert found, f"stage {self.name or self.base} has no {instruction}"
        return found[-1]


def parse_dockerfile(text: str) -> tuple[dict[str, str], list[Stage]]:
    """Global ARG defaults and the stages, each a list of instructions (comments dropped)."""
    logical: list[str] = []
    current = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not current and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):
            continue
        if line.endswith("\\"):
            current += line[:-1] + " "
            continue
        logical.append(current + line)
        current = ""
    args: dict[str, str] = {}
    stages: list[Stage] = []
    for line in logical:
        instruction, _, rest = line.partition(" ")
        instruction = instruction.upper()
        rest = rest.strip()
        if instruction == "FROM":
            match = re.fullmatch(r"(?:--platform=\S+\s+)?(\S+)(?:\s+AS\s+(\S+))?", rest, re.IGNORECASE)
            assert match, f"unparsed FROM {rest!r}"
            stages.append(Stage(match.group(1), match.group(2), []))
        elif not stages and instruction == "ARG":
            name, _, default = rest.partition("=")
            args[name] = default
        else:
            assert stages, f"{instruction} before the first FROM"
            stages[-1].instructions.append((instruction, rest))
    return args, stages


def expand(value: str, args: dict[str, str]) -> str:
    return re.sub(r"\$\{?(\w+)\}?", lambda m: args.get(m.group(1), m.group(0)), value)


@pytest.fixture(scope="module")
def dockerfile() -> tuple[dict[str, str], list[Stage]]:
    return parse_dockerfile(DOCKERFILE.read_text())


def test_multi_stage_with_a_slim_final_stage_on_the_builders_python(
    dockerfile: tuple[dict[str, str], list[Stage]],
) -> None:
    args, stages = dockerfile
    assert len(stages) >= 2, "multi-stage: a builder and a runtime stage"
    builder, final = stages[0], stages[-1]
    assert builder.name == "builder"
    base = expand(final.base, args)
    assert re.fullmatch(r"python:3\.1[1-9]-slim(-\w+)?(@sha256:[0-9a-f]{64})?", base), base
    # the venv links to the base image's interpreter: both stages must share it
    assert expand(builder.base, args) == base
    copies = final.all("COPY")
    assert copies == ["--from=builder /opt/venv /opt/venv"], copies


def test_final_stage_runs_openmodel_as_the_nonroot_uid(dockerfile: tuple[dict[str, str], list[Stage]]) -> None:
    _, stages = dockerfile
    final = stages[-1]
    user = final.last("USER")
    uid, _, gid = user.partition(":")
    assert uid == str(NONROOT_UID) and gid in ("", str(NONROOT_UID)), "numeric, so runAsNonRoot can verify it"
    assert json.loads(final.last("ENTRYPOINT")) == ["openmodel"], "the fetch Job runs `openmodel fetch`"
    assert json.loads(final.last("CMD")) == ["run", "--all-namespaces"]
    # USER comes after every RUN: nothing after it runs as root
    instructions = [ins for ins, _ in final.instructions]
    assert "RUN" not in instructions[instructions.index("USER") :]


def test_final_stage_has_no_build_tools_and_no_installs(dockerfile: tuple[dict[str, str], list[Stage]]) -> None:
    _, stages = dockerfile
    final = stages[-1]
    for run in final.all("RUN"):
        for command in re.split(r"&&|;|\|\|", run):
            words = shlex.split(command)
            if "install" in words:
                assert words[words.index("install") - 1] not in ("apt-get", "apt", "apk", "pip", "pip3"), command
            for tool in BUILD_TOOLS:
                assert tool not in words, f"{tool} in the final stage: {command}"


def test_environment_is_read_only_root_friendly(dockerfile: tuple[dict[str, str], list[Stage]]) -> None:
    _, stages = dockerfile
    env: dict[str, str] = {}
    for line in stages[-1].all("ENV"):
        for pair in shlex.split(line):
            name, _, value = pair.partition("=")
            env[name] = value
    assert env["HF_HUB_DISABLE_XET"] == "1", "downloads through plain HTTPS so every byte is digest-checked"
    assert env["HOME"] == "/tmp" and env["HF_HOME"].startswith("/tmp/")
    assert env["PYTHONDONTWRITEBYTECODE"] == "1"
    assert env["PATH"].startswith("/opt/venv/bin:")
    assert stages[-1].last("WORKDIR") == "/tmp"


def test_builder_builds_a_wheel_from_the_copied_sources_only(dockerfile: tuple[dict[str, str], list[Stage]]) -> None:
    _, stages = dockerfile
    builder = stages[0]
    run = " ".join(builder.all("RUN"))
    assert "pip wheel" in run and "/opt/venv" in run
    assert "--only-binary=:all:" in run, "dependencies come as wheels: no compiler anywhere"
    sources = [shlex.split(copy)[:-1] for copy in builder.all("COPY")]
    for source in (s for group in sources for s in group):
        assert (ROOT / source).exists(), f"COPY {source}: missing from the repository"
        assert not ignored(source), f"COPY {source}: excluded by .dockerignore"


def _ignore_patterns() -> list[tuple[bool, str]]:
    patterns = []
    for raw in DOCKERIGNORE.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        negated = line.startswith("!")
        patterns.append((negated, line.lstrip("!").strip("/")))
    return patterns


def _glob_regex(pattern: str) -> str:
    """Docker's globs: ``*`` and ``?`` stay within one path segment, ``**`` spans any number."""
    out = ""
    i = 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out, i = out + "(?:.*/)?", i + 3
        elif pattern.startswith("**", i):
            out, i = out + ".*", i + 2
        elif pattern[i] == "*":
            out, i = out + "[^/]*", i + 1
        elif pattern[i] == "?":
            out, i = out + "[^/]", i + 1
        elif pattern[i] == "[":
            end = pattern.index("]", i)
            out, i = out + pattern[i : end + 1], end + 1
        else:
            out, i = out + re.escape(pattern[i]), i + 1
    return out


def ignored(path: str) -> bool:
    """Docker's rule: the last pattern that matches the path or one of its parents wins."""
    parts = Path(path).parts
    candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    result = False
    for negated, pattern in _ignore_patterns():
        if any(re.fullmatch(_glob_regex(pattern), candidate) for candidate in candidates):
            result = not negated
    return result


@pytest.mark.parametrize(
    "path",
    [
        "pyproject.toml",
        "README.md",
        "operator/openmodel_operator/cli.py",
        "operator/openmodel_operator/py.typed",
        "operator/openmodel_operator/data/osi_licenses.json",
    ],
)
def test_dockerignore_keeps_what_the_wheel_needs(path: str) -> None:
    assert (ROOT / path).exists()
    assert not ignored(path)


@pytest.mark.parametrize(
    "path",
    [
        ".venv/bin/python",
        ".git/config",
        "tests/conftest.py",
        "examples/models/tiny-signed/model.safetensors",
        "examples/keys/example-signing-key.pem",
        "operator/openmodel_operator/__pycache__/cli.cpython-311.pyc",
        "bench/results/x.json",
        ".env",
    ],
)
def test_dockerignore_keeps_secrets_weights_and_caches_out(path: str) -> None:
    assert ignored(path)


# ---------------------------------------------------------------- make image: the scripts around the Dockerfile


def test_pip_settings_reach_only_the_builders_run_as_build_secrets(
    dockerfile: tuple[dict[str, str], list[Stage]],
) -> None:
    """A secret mount is never committed to a layer (a bind mount leaves its mount point behind)."""
    _, stages = dockerfile
    builder, final = stages[0], stages[-1]
    pip_run = next(run for run in builder.all("RUN") if "pip install" in run)
    assert "--mount=type=secret,id=pip.conf,target=/etc/pip.conf" in pip_run
    assert "--mount=type=secret,id=pip-ca" in pip_run
    assert not any("--mount" in run for run in final.all("RUN")), "the final stage needs no pip settings"
    build = (IMAGE_SCRIPTS / "build.sh").read_text()
    assert '--secret "id=pip.conf,src=' in build and '--secret "id=pip-ca,src=' in build
    assert "cert = /run/secrets/pip-ca" in build, "the pip.conf points at the CA secret's default path"
    build_command = build[build.index("podman build --isolation chroot --network host --layers") :]
    build_command = build_command[: build_command.index("-f Dockerfile")]
    assert "--volume" not in build_command and " -v " not in build_command, "a bind mount leaves a file behind"


def test_final_stage_works_on_a_base_without_pip(dockerfile: tuple[dict[str, str], list[Stage]]) -> None:
    _, stages = dockerfile
    run = " ".join(stages[-1].all("RUN"))
    assert "if python -m pip --version > /dev/null 2>&1; then python -m pip uninstall" in run
    builder_run = " ".join(stages[0].all("RUN"))
    assert "/opt/venv/bin/pip uninstall --yes --quiet pip setuptools" in builder_run, "no pip left in the venv"


def test_build_script_defaults_to_the_dockerfiles_base_and_builds_without_an_engine(
    dockerfile: tuple[dict[str, str], list[Stage]],
) -> None:
    args, _ = dockerfile
    build = (IMAGE_SCRIPTS / "build.sh").read_text()
    assert f"PYTHON_IMAGE=${{PYTHON_IMAGE:-{args['PYTHON_IMAGE']}}}" in build
    assert "--isolation chroot" in build and "--build-arg PYTHON_IMAGE=" in build
    assert "debootstrap --variant=minbase" in build and "podman import" in build
    assert re.search(r"PACKAGES=.*python3-venv", build) and "ca-certificates" in build
    # the offline base is cached by a hash of its recipe, and built as one layer so deletions count
    assert "sha256sum" in build and "podman image exists" in build and "--squash-all" in build
    assert "{{.Size}}" in build, "make image prints the image's size"
    base = (IMAGE_SCRIPTS / "base.Containerfile").read_text()
    for trimmed in ("/var/lib/apt/lists/*", "/usr/share/man/*", "/usr/share/doc", "/usr/share/locale"):
        assert trimmed in base, f"the offline base keeps {trimmed}"
    assert "bookworm-security" in base, "the offline base takes Debian's security updates"


def _podman_run_options(script: str) -> str:
    start = script.index('podman run --rm --name "$container"')
    return script[start : script.index('"$@"', start)]


def test_smoke_test_runs_the_image_as_the_pods_do() -> None:
    smoke = (IMAGE_SCRIPTS / "smoke.sh").read_text()
    assert f"NONROOT={NONROOT_UID}" in smoke
    options = _podman_run_options(smoke)
    for option in ('--user "$NONROOT:$NONROOT"', "--read-only", "--tmpfs /tmp", "--network none", "--cap-drop ALL"):
        assert option in options, f"the smoke test's containers run without {option}"
    assert '"$PWD/examples:/examples:ro"' in smoke, "the examples are mounted read-only"
    # every role of the image, trusted and tampered, with exit codes asserted
    for check in (
        "in_pod help 0 ",
        "in_pod verify-trusted 0 ",
        "in_pod verify-tampered 1 ",
        "in_pod fetch-job 0 ",
        "in_pod verify-on-start 0 ",
        "in_pod verify-tampered-volume 1 ",
    ):
        assert check in smoke, f"the smoke test lost its check {check.strip()!r}"
    assert smoke.count("fetch --verify-only --manifest") == 2
    # containers outlive a killed `podman run`: removed by name on every exit path
    assert "trap cleanup EXIT" in smoke and "podman rm --force --ignore" in smoke


def test_make_image_runs_in_ci_after_the_unchanged_make_test() -> None:
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"^image:.*\n\tbash scripts/image/build\.sh$", makefile, re.MULTILINE)
    test_target = re.search(r"^test: (.*)$", makefile, re.MULTILINE)
    assert test_target is not None and "unit" in test_target.group(1).split()
    assert "image" not in test_target.group(1).split(), "make test (the README's) stays quick: the image runs in CI"
    ci = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()]
    assert "make test" in ci and "make image" in ci
    assert ci.index("bash scripts/image/install-tools.sh") < ci.index("make image")
    assert ci.index("make test") < ci.index("make image"), "the quick checks fail first"


@pytest.mark.parametrize("script", sorted(p.name for p in IMAGE_SCRIPTS.glob("*.sh")))
def test_image_scripts_say_why_and_stop_on_errors(script: str) -> None:
    lines = (IMAGE_SCRIPTS / script).read_text().splitlines()
    assert lines[0] == "#!/usr/bin/env bash"
    assert lines[1].startswith("# ") and len(lines[1]) > 20, "the script starts by saying why it exists"
    assert "set -euo pipefail" in lines
    checked = subprocess.run(["bash", "-n", str(IMAGE_SCRIPTS / script)], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stderr
