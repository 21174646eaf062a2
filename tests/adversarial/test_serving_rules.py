"""Property 10: spec.serving cannot route around verification.

The tenant writes spec.serving. An image the cluster admin did not choose, a flag naming another model,
tokenizer, config or code, or an environment variable redirecting downloads or injecting code into the
interpreter would make the server run something other than the verified volume. Enforce rejects, Audit
records; ordinary tuning flags pass.
"""

from __future__ import annotations

from typing import Any

import pytest
from policy_fixtures import model_evidence, open_policy

from openmodel_operator.api.openmodel import ServingSpec
from openmodel_operator.controller.settings import DEFAULT_VLLM_IMAGE
from openmodel_operator.evidence.records import Reason
from openmodel_operator.trust.decision import decide, serving_violations
from openmodel_operator.trust.policies import BUILTIN_DEFAULT

RUNTIME = DEFAULT_VLLM_IMAGE


def serving(**fields: Any) -> ServingSpec:
    return ServingSpec.model_validate(fields)


HOSTILE = [
    pytest.param({"args": ["--trust-remote-code"]}, id="trust-remote-code"),
    pytest.param({"args": ["--trust_remote_code"]}, id="underscore-spelling"),
    pytest.param({"args": ["--Trust-Remote-Code=true"]}, id="case-and-value"),
    pytest.param({"args": ["--trust-remote"]}, id="argparse-abbreviation"),
    pytest.param({"args": ["--tokenizer=evil/repo"]}, id="tokenizer"),
    pytest.param({"args": ["--model", "x"]}, id="model"),
    pytest.param({"args": ["--max-model-len", "4096", "--model=x"]}, id="model-after-ordinary-args"),
    pytest.param({"args": ["--hf-overrides", '{"architectures": ["Evil"]}']}, id="hf-overrides"),
    pytest.param({"args": ["--download-dir", "/tmp/x"]}, id="download-dir"),
    pytest.param({"args": ["--speculative-config", '{"model": "evil/draft"}']}, id="speculative"),
    # vLLM's dotted spelling sets one key of a JSON flag: the flag is the name before the dot
    pytest.param({"args": ["--speculative-config.model", "evil/draft"]}, id="dotted-key"),
    pytest.param({"args": ["--speculative_config.model=evil/draft"]}, id="dotted-key-underscore"),
    pytest.param({"args": ["--hf-overrides.architectures+", "Evil"]}, id="dotted-append"),
    pytest.param({"args": ["--kv-transfer-config.kv_connector_module_path", "evil"]}, id="dotted-module-path"),
    pytest.param({"args": ["--tokenizer-revision=abc"]}, id="tokenizer-revision"),
    pytest.param({"args": ["--lora-modules", "a=evil/lora"]}, id="lora"),
    pytest.param({"args": ["--port", "9000"]}, id="operator-forced-port"),
    pytest.param({"env": [{"name": "HF_ENDPOINT", "value": "http://evil"}]}, id="HF_ENDPOINT"),
    pytest.param({"env": [{"name": "hf_endpoint", "value": "http://evil"}]}, id="hf_endpoint-lowercase"),
    pytest.param(
        {"env": [{"name": "LD_PRELOAD", "valueFrom": {"configMapKeyRef": {"name": "x", "key": "so"}}}]},
        id="LD_PRELOAD-valueFrom",
    ),
    pytest.param({"env": [{"name": "PYTHONPATH", "value": "/models"}]}, id="PYTHONPATH"),
    pytest.param({"env": [{"name": "VLLM_USE_MODELSCOPE", "value": "1"}]}, id="modelscope"),
    pytest.param({"env": [{"name": "VLLM_PLUGINS", "value": "evil"}]}, id="vllm-plugins"),
    pytest.param({"env": [{"name": "HF_HUB_OFFLINE", "value": "0"}]}, id="forced-offline-switch"),
    pytest.param({"image": "evil/vllm:latest"}, id="image"),
    pytest.param({"image": RUNTIME + "-evil"}, id="image-lookalike"),
]


@pytest.mark.parametrize("fields", HOSTILE)
def test_hostile_serving_is_refused_under_enforce_and_recorded_under_audit(fields: dict[str, Any]) -> None:
    spec = serving(**fields)
    [violation] = serving_violations(BUILTIN_DEFAULT, spec, RUNTIME)
    assert violation.reason is Reason.SERVING_NOT_ALLOWED and violation.enforced
    assert "spec.serving." in violation.message

    enforce = decide([open_policy()], model_evidence(), serving=spec, runtime_image=RUNTIME)
    assert not enforce.trusted and enforce.reasons == (Reason.SERVING_NOT_ALLOWED,)
    audit = decide([open_policy(mode="Audit")], model_evidence(), serving=spec, runtime_image=RUNTIME)
    assert audit.trusted
    assert [(v.reason, v.enforced) for v in audit.violations] == [(Reason.SERVING_NOT_ALLOWED, False)]


@pytest.mark.parametrize(
    "fields",
    [
        {},
        {"image": RUNTIME},
        {"args": ["--max-model-len", "4096", "--dtype", "bfloat16", "--gpu-memory-utilization=0.85"]},
        {"args": ["--enforce-eager", "--tensor-parallel-size", "2", "--served-model-name", "alias"]},
        {"args": ["--tokenizer-mode", "mistral", "--config-format=mistral", "--reasoning-parser", "deepseek_r1"]},
        {"env": [{"name": "VLLM_LOGGING_LEVEL", "value": "DEBUG"}, {"name": "OMP_NUM_THREADS", "value": "4"}]},
        {"runtime": "none"},
    ],
)
def test_ordinary_serving_passes(fields: dict[str, Any]) -> None:
    spec = serving(**fields)
    assert serving_violations(BUILTIN_DEFAULT, spec, RUNTIME) == []
    assert decide([open_policy()], model_evidence(), serving=spec, runtime_image=RUNTIME).trusted


def test_policy_may_allow_trust_remote_code() -> None:
    spec = serving(args=["--trust-remote-code"])
    allowing = open_policy(serving={"allowTrustRemoteCode": True})
    assert decide([allowing], model_evidence(), serving=spec, runtime_image=RUNTIME).trusted
    # only that flag: the rest of the built-in list still applies
    other = serving(args=["--trust-remote-code", "--tokenizer", "evil/repo"])
    assert not decide([allowing], model_evidence(), serving=other, runtime_image=RUNTIME).trusted
    # and another governing policy that does not allow it still refuses
    verdict = decide([allowing, open_policy("strict")], model_evidence(), serving=spec, runtime_image=RUNTIME)
    assert [(v.policy, v.reason) for v in verdict.violations] == [("strict", Reason.SERVING_NOT_ALLOWED)]


def test_policy_lists_images_and_adds_denials() -> None:
    pol = open_policy(
        serving={"allowedImages": ["registry.corp/vllm:*"], "deniedArgs": ["--enable-lora"], "deniedEnv": ["MY_*"]}
    )
    assert serving_violations(pol, serving(image="registry.corp/vllm:v1"), RUNTIME) == []
    assert serving_violations(pol, serving(), RUNTIME) == []  # the runtime image is always allowed
    assert serving_violations(pol, serving(image="registry.corp/vllm-evil:v1"), RUNTIME) != []
    assert serving_violations(pol, serving(args=["--enable_lora"]), RUNTIME) != []
    assert serving_violations(pol, serving(env=[{"name": "MY_HOOK", "value": "x"}]), RUNTIME) != []
    strict = open_policy(serving={"deniedArgs": ["--tokenizer-mode"]})
    assert serving_violations(strict, serving(args=["--tokenizer_mode=slow"]), RUNTIME) != []


def test_without_runtime_image_only_allowed_images_admit_an_explicit_image() -> None:
    assert serving_violations(BUILTIN_DEFAULT, serving(image=RUNTIME), None) != []
    assert serving_violations(BUILTIN_DEFAULT, serving(), None) == []


def test_cli_without_serving_skips_the_check() -> None:
    assert decide([open_policy()], model_evidence()).trusted


def test_many_offences_make_one_bounded_message() -> None:
    spec = serving(args=["--trust-remote-code"] * 100, env=[{"name": f"LD_X{i}", "value": "x"} for i in range(100)])
    [violation] = serving_violations(BUILTIN_DEFAULT, spec, RUNTIME)
    assert "and 195 more" in violation.message and len(violation.message) < 2000
