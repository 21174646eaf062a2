"""Build and sign the tiny example model in examples/models/tiny-signed (a few KB, offline).

Run again only to re-sign after changing the example files: `python scripts/make_example_model.py`.
The bundle is signed with examples/keys/example-signing-key.pem, whose public half sits in
examples/policy-strict.yaml.
"""

from __future__ import annotations

import json
import shutil
import struct
from pathlib import Path

from openmodel_operator.signing.signer import sign_directory

ROOT = Path(__file__).resolve().parent.parent
MODEL = ROOT / "examples" / "models" / "tiny-signed"
KEY = ROOT / "examples" / "keys" / "example-signing-key.pem"

README = """---
license: apache-2.0
datasets:
  - example/tiny-corpus
base_model: example/tiny-base
tags: [text-generation, example]
---
# tiny-signed

A 4x4 toy "model" that exists to show the OpenModel Operator's verification offline. It generates
nothing useful. Its files are signed with the example key in examples/keys.
"""

OPENNESS = """apiVersion: openmodel.io/v1alpha1
kind: OpennessDeclaration
components:
  weights: {license: Apache-2.0}
  modelArchitecture: {license: Apache-2.0, url: https://example.com/tiny/src}
  modelCard: {license: Apache-2.0}
  dataCard: {license: CC-BY-4.0, url: https://example.com/tiny/data-card}
  technicalReport: {license: CC-BY-4.0, url: https://example.com/tiny/report}
  evaluationResults: {license: CC-BY-4.0, path: README.md}
"""


def safetensors(values: list[float], shape: list[int]) -> bytes:
    """A valid safetensors file holding one float32 tensor (no torch needed)."""
    data = struct.pack(f"<{len(values)}f", *values)
    header = json.dumps(
        {"weight": {"dtype": "F32", "shape": shape, "data_offsets": [0, len(data)]}, "__metadata__": {"format": "pt"}},
        separators=(",", ":"),
    ).encode()
    header += b" " * (-len(header) % 8)
    return struct.pack("<Q", len(header)) + header + data


def main() -> None:
    if MODEL.exists():
        shutil.rmtree(MODEL)
    MODEL.mkdir(parents=True)
    (MODEL / "README.md").write_text(README)
    (MODEL / "openness.yaml").write_text(OPENNESS)
    config = {"architectures": ["TinyForCausalLM"], "hidden_size": 4, "num_hidden_layers": 1, "vocab_size": 4}
    (MODEL / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    tokenizer = {"version": "1.0", "model": {"type": "WordLevel", "vocab": {"a": 0, "b": 1, "c": 2, "d": 3}}}
    (MODEL / "tokenizer.json").write_text(json.dumps(tokenizer, indent=2) + "\n")
    (MODEL / "model.safetensors").write_bytes(safetensors([i / 16 for i in range(16)], [4, 4]))
    sign_directory(MODEL, KEY, MODEL / "model.sig")
    print(f"signed {MODEL}")


if __name__ == "__main__":
    main()
