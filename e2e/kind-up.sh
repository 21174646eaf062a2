#!/usr/bin/env bash
# Create (or reuse) a kind cluster for the e2e suite, load the operator image into it, write its
# kubeconfig to a file and print the commands that run the suite against it. Needs Docker and kind.
#
#   e2e/kind-up.sh [--kubeconfig PATH] [--no-build]
#
# Environment: KIND_CLUSTER_NAME (openmodel-e2e), KIND_NODE_IMAGE (kindest/node:v1.28.15; use the image
# your kind release lists for v1.28, ideally with its @sha256 digest), E2E_IMAGE (openmodel-operator:e2e),
# E2E_HUB_PORT (8765). See docs/e2e.md.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(dirname "$here")"
name="${KIND_CLUSTER_NAME:-openmodel-e2e}"
node_image="${KIND_NODE_IMAGE:-kindest/node:v1.28.15}"
image="${E2E_IMAGE:-openmodel-operator:e2e}"
hub_port="${E2E_HUB_PORT:-8765}"
kubeconfig="${TMPDIR:-/tmp}/${name}.kubeconfig"
build=1

while [[ $# -gt 0 ]]; do
  case "$1" in
    --kubeconfig) kubeconfig="$2"; shift 2 ;;
    --no-build) build=0; shift ;;
    -h|--help) sed -n '2,9p' "$0"; exit 0 ;;
    *) echo "kind-up.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done

refuse() {
  echo "kind-up.sh: $1" >&2
  echo "Without Docker, run the suite against a control-plane-only cluster (envtest, a bare kube-apiserver)" >&2
  echo "with E2E_SIMULATE_WORKLOADS=1, or check it against the emulator: see docs/e2e.md." >&2
  exit 2
}
command -v docker >/dev/null 2>&1 || refuse "docker is not installed: kind runs Kubernetes nodes as Docker containers."
docker info >/dev/null 2>&1 || refuse "the Docker daemon does not answer (docker info failed): start it, or check your permissions."
command -v kind >/dev/null 2>&1 || refuse "kind is not installed: https://kind.sigs.k8s.io/docs/user/quick-start/#installation"

if kind get clusters 2>/dev/null | grep -qx "$name"; then
  echo "Reusing the kind cluster $name (the suite expects a fresh one: kind delete cluster --name $name)."
else
  kind create cluster --name "$name" --config "$here/kind-config.yaml" --image "$node_image" --wait 180s
fi
kind get kubeconfig --name "$name" > "$kubeconfig"
chmod 600 "$kubeconfig"

if [[ $build == 1 ]]; then
  # one image runs the operator (E2E_IN_CLUSTER=1) and the fetch Jobs (both modes)
  docker build -t "$image" "$root"
  kind load docker-image "$image" --name "$name"
fi

# Pods reach this machine at the kind network's gateway; the Hub stand-in listens there (all interfaces).
gateway="$(docker network inspect kind -f '{{range .IPAM.Config}}{{.Gateway}} {{end}}' | tr ' ' '\n' \
  | grep -E '^[0-9]+\.[0-9]+\.[0-9]+\.[0-9]+$' | head -n 1 || true)"
gateway="${gateway:-172.18.0.1}"

cat <<MSG

kind cluster "$name" is ready; kubeconfig: $kubeconfig
Run the suite from $root with the project's venv on PATH (source .venv/bin/activate):

  # the operator on this machine (openmodel run), fetch Jobs on the node
  E2E_KUBECONFIG=$kubeconfig E2E_IMAGE=$image E2E_HUB_ENDPOINT=http://$gateway:$hub_port \\
    pytest -c e2e/pytest.ini e2e

  # the operator in the cluster, installed from manifests/
  E2E_KUBECONFIG=$kubeconfig E2E_IMAGE=$image E2E_HUB_ENDPOINT=http://$gateway:$hub_port E2E_IN_CLUSTER=1 \\
    pytest -c e2e/pytest.ini e2e

The Hub stand-in listens on 0.0.0.0:$hub_port while the suite runs: a host firewall must let the kind
network reach it. Remove the cluster with: kind delete cluster --name $name
MSG
