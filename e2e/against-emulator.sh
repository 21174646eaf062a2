#!/usr/bin/env bash
# Run the e2e suite against the project's API emulator (no cluster needed): proves the suite itself and the
# real `openmodel run` process (kubeconfig login, lightkube, Kopf) end to end. Used by `make test`.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
work=$(mktemp -d)
trap 'kill "$emu" 2>/dev/null || true; wait "$emu" 2>/dev/null || true; rm -rf "$work"' EXIT
"$PY" e2e/serve_emulator.py --no-crds --kubeconfig "$work/kubeconfig" >"$work/emulator.log" 2>&1 &
emu=$!
for _ in $(seq 1 100); do [ -s "$work/kubeconfig" ] && break; sleep 0.1; done
[ -s "$work/kubeconfig" ] || { echo "the emulator did not start:"; cat "$work/emulator.log"; exit 1; }
PATH="$(dirname "$PY"):$PATH" E2E_KUBECONFIG="$work/kubeconfig" E2E_SIMULATE_WORKLOADS=1 \
    "$PY" -m pytest -q -c e2e/pytest.ini e2e
