"""The operator process around the reconciler: settings, structured logs without secrets, `openmodel render`."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import pathlib

import pytest
import yaml
from kopf._cogs.structs import references

from kube_emulator import KubeEmulator
from kube_fixtures import kube
from openmodel_operator.cli import build_parser, main
from openmodel_operator.commands.run import reach_cluster, settings_from
from openmodel_operator.controller.logs import JsonFormatter, RedactingFormatter
from openmodel_operator.controller.settings import OperatorSettings

ROOT = pathlib.Path(__file__).resolve().parent.parent
__all__ = ["kube"]  # the fixture this module uses


def run_args(*argv: str) -> argparse.Namespace:
    return build_parser().parse_args(["run", *argv])


def test_settings_come_from_env_and_flags_win(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENMODEL_REVERIFY_INTERVAL", "600")
    monkeypatch.setenv("OPENMODEL_VLLM_IMAGE", "registry.local/vllm:1")
    monkeypatch.setenv("OPENMODEL_NAMESPACES", "a, b")
    settings = settings_from(run_args("--reverify-interval", "120"))
    assert settings.reverify_interval == 120
    assert settings.vllm_image == "registry.local/vllm:1"
    assert settings.namespaces == ("a", "b")
    assert settings_from(run_args("--all-namespaces")).namespaces == ()
    assert settings_from(run_args("-n", "models")).namespaces == ("models",)


@pytest.mark.parametrize(
    ("value", "inside", "outside"),
    [
        ("a, b", {"a", "b"}, {"c"}),
        ("team-*,!team-x", {"team-a", "team-b"}, {"team-x", "other"}),  # the exclusion is kept
        ("!team-a-*,!team-b-*", {"other", "team-c-1"}, {"team-a-1", "team-b-1"}),  # the last shard's pattern
        ("team-*,!team-x,models", {"team-a", "models"}, {"team-x", "other"}),
    ],
)
def test_namespace_patterns_from_the_environment_mean_what_the_flag_means(
    value: str, inside: set[str], outside: set[str]
) -> None:
    """``OPENMODEL_NAMESPACES`` splits at commas, but an exclusion stays with the pattern it narrows: Kopf
    reads a lone ``!team-x`` as "nothing" and ORs the patterns, so a split one would watch ``team-x`` too."""
    patterns = OperatorSettings.from_env({"OPENMODEL_NAMESPACES": value}).namespaces

    def watched(namespace: str) -> bool:
        return any(references.match_namespace(namespace, p) for p in patterns)

    assert {n for n in inside | outside if watched(n)} == inside


@pytest.mark.parametrize("value", ["soon", "-5", "0"])
def test_bad_interval_is_refused_with_the_variable_named(value: str) -> None:
    with pytest.raises(ValueError, match="OPENMODEL_REVERIFY_INTERVAL"):
        OperatorSettings.from_env({"OPENMODEL_REVERIFY_INTERVAL": value})


def _record(message: str, **extra: object) -> logging.LogRecord:
    record = logging.LogRecord("openmodel", logging.INFO, __file__, 1, message, None, None)
    for key, value in extra.items():
        setattr(record, key, value)
    return record


def test_json_logs_are_structured_and_never_carry_secrets() -> None:
    pem = "-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZI\n-----END PUBLIC KEY-----"
    line = JsonFormatter().format(
        _record("resolved with hf_abcdefghijklmnop", openmodel="m", namespace="models", header=f"Bearer tok.en {pem}")
    )
    doc = json.loads(line)
    assert doc["level"] == "info" and doc["openmodel"] == "m" and doc["namespace"] == "models"
    assert "hf_abcdefghijklmnop" not in line and "MFkwEwYHKoZI" not in line and "tok.en" not in line
    text = RedactingFormatter("%(message)s").format(_record("token hf_abcdefghijklmnop"))
    assert text == "token [REDACTED]"


def render_example(*extra: str) -> int:
    """``openmodel render`` of the minimal example OpenModel over the signed example model."""
    examples = ROOT / "examples"
    model, source = examples / "openmodel-minimal.yaml", examples / "models" / "tiny-signed"
    return main(["render", "-f", str(model), "--source-dir", str(source), *extra])


def test_render_shows_the_objects_before_they_exist(capsys: pytest.CaptureFixture[str]) -> None:
    code = render_example("--policy", str(ROOT / "examples" / "policy-strict.yaml"))
    out = capsys.readouterr().out
    assert code == 0
    objects = {(o["kind"], o["metadata"]["name"]): o for o in yaml.safe_load_all(out)}
    digest = objects[next(k for k in objects if k[0] == "Deployment")]["metadata"]["annotations"][
        "openmodel.io/manifest-digest"
    ]
    assert set(objects) == {
        ("ConfigMap", f"granite-3b-manifest-{digest[7:17]}"),
        ("ConfigMap", f"granite-3b-bom-{digest[7:17]}"),  # the revision's AI-BOMs (docs/provenance.md)
        ("PersistentVolumeClaim", "granite-3b-weights"),
        ("NetworkPolicy", "granite-3b"),  # the endpoint answers its own namespace only
        ("Deployment", "granite-3b"),
        ("Service", "granite-3b"),
        *[k for k in objects if k[0] == "Job"],
    }
    deployment = objects[("Deployment", "granite-3b")]
    server = next(c for c in deployment["spec"]["template"]["spec"]["containers"] if c["name"] == "server")
    assert server["resources"]["limits"]["nvidia.com/gpu"] == "1"
    job = next(o for k, o in objects.items() if k[0] == "Job")
    manifest = json.loads(objects[("ConfigMap", f"granite-3b-manifest-{digest[7:17]}")]["data"]["manifest.json"])
    assert manifest["source"] == "hf://ibm-granite/granite-3.3-2b-instruct"  # the Job pulls from the spec's source
    assert job["spec"]["template"]["spec"]["automountServiceAccountToken"] is False


def test_render_of_a_rejected_model_prints_nothing(capsys: pytest.CaptureFixture[str]) -> None:
    code = render_example()
    out, err = capsys.readouterr()
    assert code == 1 and out == ""
    assert "SignatureMissing" in err or "UntrustedSigner" in err


@pytest.mark.parametrize("extra", [[], ["--server", "http://127.0.0.1:1"]])
def test_run_can_log_in_to_a_real_cluster(monkeypatch: pytest.MonkeyPatch, extra: list[str]) -> None:
    """A bare registry has no login handlers: without one the operator cannot authenticate anywhere."""
    import kopf

    registries: list[kopf.OperatorRegistry] = []

    async def fake_operator(**kwargs: object) -> None:
        registries.append(kwargs["registry"])  # type: ignore[arg-type]

    monkeypatch.setattr(kopf, "operator", fake_operator)
    monkeypatch.setattr("openmodel_operator.controller.logs.configure_logging", lambda *_a, **_k: None)
    monkeypatch.setattr("openmodel_operator.commands.run.reach_cluster", lambda *_a: None)
    assert main(["run", "--standalone", "--metrics-port", "0", "--health-port", "0", *extra]) == 0
    activities = registries[0]._activities.get_all_handlers()
    assert any(str(h.activity) == "authentication" for h in activities)


def _no_cluster(monkeypatch: pytest.MonkeyPatch, tmp_path: pathlib.Path) -> None:
    monkeypatch.delenv("KUBECONFIG", raising=False)
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setattr("openmodel_operator.controller.logs.configure_logging", lambda *_a, **_k: None)


def test_run_without_any_cluster_configuration_exits_2_and_says_what_to_set(
    monkeypatch: pytest.MonkeyPatch, tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Kopf alone would retry forever; a person starting the operator by hand gets the reason at once."""
    _no_cluster(monkeypatch, tmp_path)
    assert main(["run", "--standalone", "--metrics-port", "0", "--health-port", "0"]) == 2
    err = capsys.readouterr().err
    assert "no Kubernetes cluster configuration" in err and "KUBECONFIG" in err and "--server" in err


def test_run_against_a_server_that_never_answers_exits_2_after_the_connect_timeout(
    monkeypatch: pytest.MonkeyPatch, tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _no_cluster(monkeypatch, tmp_path)
    kubeconfig = tmp_path / "config"
    kubeconfig.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: x\n"
        "clusters: [{name: c, cluster: {server: 'https://127.0.0.1:1'}}]\n"
        "users: [{name: u, user: {}}]\ncontexts: [{name: x, context: {cluster: c, user: u}}]\n"
    )
    monkeypatch.setenv("KUBECONFIG", str(kubeconfig))
    argv = ["run", "--standalone", "--metrics-port", "0", "--health-port", "0", "--connect-timeout", "1"]
    assert main(argv) == 2
    assert "did not answer within 1 s" in capsys.readouterr().err


async def test_a_server_that_answers_is_reached(kube: KubeEmulator) -> None:
    """Control: the emulator answers (even a 404 or 403 is an answer), so the operator starts."""
    assert await asyncio.to_thread(reach_cluster, kube.base_url, 5) is None
    assert await asyncio.to_thread(reach_cluster, "http://127.0.0.1:1", 0.5) is not None
