"""Property 22 under attack: LoRA adapters routing around the base model's trust (review of spec.adapters).

Each hostile case sits next to its legitimate control:
- a positional value in ``serving.args`` joins vLLM's ``--lora-modules`` list (argparse ``nargs='+'``).
"""

from __future__ import annotations

import argparse

from openmodel_operator.api.openmodel import OpenModelSpec
from openmodel_operator.planning import children
from openmodel_operator.trust.decision import serving_violations
from openmodel_operator.trust.policies import BUILTIN_DEFAULT
from test_adapter_planning import (
    LORA,
)
from test_planner import REF, SETTINGS
from test_revision_slots import NEW

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
