#!/usr/bin/env bash
# The README's main job, offline on a fresh machine: verify the signed example model, then watch a
# tampered copy and an unsigned one be refused.
set -uo pipefail
cd "$(dirname "$0")/.."
OM=.venv/bin/openmodel
MODEL=examples/models/tiny-signed
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

step() { printf '\n\033[1m== %s\033[0m\n$ %s\n' "$1" "$2"; }

step "1. Verify the signed example model against the strict policy (exit 0: trusted)" \
     "openmodel verify $MODEL --policy examples/policy-strict.yaml"
$OM verify "$MODEL" --policy examples/policy-strict.yaml
echo "exit code: $?"

cp -r "$MODEL" "$work/tampered"
printf '\x01' | dd of="$work/tampered/model.safetensors" bs=1 seek=100 conv=notrunc status=none
step "2. Flip one byte of the weights: the signature no longer covers the content (exit 1: rejected)" \
     "openmodel verify <tampered copy> --policy examples/policy-strict.yaml"
$OM verify "$work/tampered" --policy examples/policy-strict.yaml
echo "exit code: $?"

cp -r "$MODEL" "$work/unsigned" && rm "$work/unsigned/model.sig"
step "3. The same files unsigned, under the audit policy: admitted, violations recorded (exit 0)" \
     "openmodel verify <unsigned copy> --policy examples/policy-audit.yaml"
$OM verify "$work/unsigned" --policy examples/policy-audit.yaml
echo "exit code: $?"

step "4. The digest a reviewer pins in spec.source.digest (the Pinned tier)" "openmodel digest $MODEL"
$OM digest "$MODEL"
