#!/usr/bin/env bash
# The README's main job: what a newcomer sees on a fresh machine, offline.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=.venv/bin
echo "== The CRDs this operator serves (install: openmodel crds | kubectl apply --server-side -f -)"
$BIN/openmodel crds | grep -E '^  name: |^    kind: |shortNames' -A1 | grep -vE '^--$'
