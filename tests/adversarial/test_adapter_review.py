"""Property 22 under attack: LoRA adapters routing around the base model's trust (review of spec.adapters).

Each hostile case sits next to its legitimate control:
- a positional value in ``serving.args`` joins vLLM's ``--lora-modules`` list (argparse ``nargs='+'``);
- a pull Job the operator made for another content whose name coincides (the first 10 hex of the digest) is
  taken as the adapter's verified slot.
"""

from __future__ import annotations

import argparse

from openmodel_operator.api.openmodel import OpenModelSpec
from openmodel_operator.planning import children
from openmodel_operator.trust.decision import serving_violations
from openmodel_operator.trust.policies import BUILTIN_DEFAULT
from test_adapter_planning import (
    LORA,
    LORA2,
    adapter_job,
    adapter_spec,
    adapter_trusted,
    conds,
    decisions,
    plan,
    serving_base,
    status_serving,
)
from test_planner import REF, SETTINGS
from test_revision_slots import NEW, trusted

# ---------------------------------------------------------------- vLLM's arguments


def lora_modules(args: list[str]) -> list[str]:
    """What vLLM's argparse makes of ``--lora-modules`` (``nargs='+'``: every value up to the next flag)."""
    parser = argparse.ArgumentParser(allow_abbrev=False)
    parser.add_argument("model_tag", nargs="?")
    parser.add_argument("--served-model-name", nargs="+")
    parser.add_argument("--host")
    parser.add_argument("--port")
    parser.add_argument("--enable-lora", action="store_true")
    parser.add_argument("--lora-modules", nargs="+", default=[])
    parser.add_argument("--max-loras", type=int)
    parser.add_argument("--max-model-len", type=int)
    known, _ = parser.parse_known_args(args)
    return list(known.lora_modules)


def served_args(extra: list[str]) -> list[str]:
    the_spec = OpenModelSpec.model_validate(
        {
            "source": {"uri": "hf://org/granite"},
            "serving": {"args": extra},
            "adapters": [{"name": "sql", "source": {"uri": "hf://org/sql-lora"}}],
        }
    )
    deployment = children.deployment(
        REF, the_spec, NEW, SETTINGS, adapters=[children.ServedAdapter("sql", LORA.manifest_digest)]
    )
    assert deployment is not None
    return list(deployment["spec"]["template"]["spec"]["containers"][0]["args"])


def test_a_positional_in_serving_args_does_not_join_the_verified_lora_modules() -> None:
    hostile = ["evil=/models", "--max-loras", "2"]  # no flag the policy refuses: it admits these args
    assert (
        serving_violations(
            BUILTIN_DEFAULT,
            OpenModelSpec.model_validate({"source": {"uri": "hf://org/granite"}, "serving": {"args": hostile}}).serving,
            None,
        )
        == []
    )
    assert lora_modules(served_args(hostile)) == ["sql=/adapters/sql"]
    # control: ordinary tuning flags leave the verified modules as they are, and --max-loras is the user's
    assert lora_modules(served_args(["--max-model-len", "4096"])) == ["sql=/adapters/sql"]
    args = served_args(["--max-loras", "4"])
    assert lora_modules(args) == ["sql=/adapters/sql"] and args.count("--max-loras") == 1


# ---------------------------------------------------------------- the pull Job that proves the slot


def test_an_operator_job_for_other_content_with_the_same_name_does_not_load_an_adapter() -> None:
    """Job and ConfigMap names keep only 10 hex of the digest (40 bits: a birthday collision is ~2^20 manifests
    the tenant can craft offline). The Job's success proves its own digest's slot, not the adapter's."""
    the_spec = adapter_spec("sql")
    name, body = adapter_job(the_spec, 0, LORA2)  # the operator pulled LORA2 (e.g. this adapter's older content)
    colliding = {**body, "metadata": {**body["metadata"], "name": children.pull_job_name(REF, LORA.manifest_digest)}}
    observed = serving_base(the_spec, {colliding["metadata"]["name"]: colliding})
    result = plan(
        the_spec, status_serving(), trusted(NEW), observed, adapters=decisions(the_spec, adapter_trusted(LORA))
    )
    deployment = next(o for o in result.apply if o["kind"] == "Deployment")
    assert "--lora-modules" not in deployment["spec"]["template"]["spec"]["containers"][0]["args"]
    configmap = children.manifest_configmap_name(REF, LORA.manifest_digest)
    assert not any(o["kind"] == "ConfigMap" and o["metadata"]["name"] == configmap for o in result.apply)
    status, reason, message = conds(result)["AdaptersReady"]
    assert (status, reason) == ("False", "JobFailed") and "another content" in message
    assert not result.status.provenance.adapters[0].pull_job_uid  # type: ignore[index,union-attr]
    # control: the operator's Job for the adapter's own digest loads it
    name, body = adapter_job(the_spec, 0, LORA)
    observed = serving_base(the_spec, {name: body})
    result = plan(
        the_spec, status_serving(), trusted(NEW), observed, adapters=decisions(the_spec, adapter_trusted(LORA))
    )
    deployment = next(o for o in result.apply if o["kind"] == "Deployment")
    assert "--lora-modules" in deployment["spec"]["template"]["spec"]["containers"][0]["args"]
