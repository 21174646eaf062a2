#!/usr/bin/env bash
# Smoke test of the built image, run the way the pods run it: UID/GID 65532, read-only root filesystem with
# a /tmp tmpfs, no network, no capabilities. A static check of the Dockerfile cannot tell whether the venv's
# interpreter link resolves, whether the CLI starts as an unknown-to-root user, or whether verification
# really accepts the signed example and refuses a tampered copy inside the image; this does. It exercises
# the three roles of the image: `openmodel verify`, the fetch Job (`openmodel fetch` from a claim) and the
# serving pods' verify-on-start check (`openmodel fetch --verify-only`), each trusted and tampered.
# Called by scripts/image/build.sh (`make image`); alone: `make image-smoke` or IMAGE=... bash this file.
set -euo pipefail
cd "$(dirname "$0")/../.."
export CONTAINERS_CONF="$PWD/scripts/image/containers.conf"
IMAGE=${IMAGE:-localhost/openmodel-operator:dev}
MODEL=examples/models/tiny-signed
NONROOT=65532
TIMEOUT=${SMOKE_TIMEOUT:-120} # seconds per container

die() {
    echo "smoke: $*" >&2
    exit 1
}
command -v podman > /dev/null || die "podman is not installed: run 'bash scripts/image/install-tools.sh'"
podman image exists "$IMAGE" || die "no image $IMAGE: build it first with 'make image'"
[ -f "$MODEL/model.safetensors" ] || die "$MODEL/model.safetensors is missing: run from a full checkout"

work=$(mktemp -d "${TMPDIR:-/tmp}/openmodel-smoke.XXXXXX")
chmod 755 "$work"
containers=()
client=""
cleanup() {
    # killing `podman run` (a timeout, Ctrl-C) does not stop its container: remove each one by name
    if [ -n "$client" ]; then kill "$client" 2> /dev/null || true; fi
    if [ "${#containers[@]}" -gt 0 ]; then
        podman rm --force --ignore --time 0 "${containers[@]}" > /dev/null 2>&1 || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

passed=0
# in_pod NAME EXPECTED_EXIT PATTERN [podman run options...] -- IMAGE ARGS...
# Runs the image as the pods do; fails unless the exit code is EXPECTED_EXIT and the output matches PATTERN
# (an extended regular expression). The output is kept in $work/NAME.out.
in_pod() {
    local name=$1 want=$2 pattern=$3 container code=0
    shift 3
    container="openmodel-smoke-$$-$name"
    containers+=("$container")
    # in the background: `wait` returns on a signal, so the EXIT trap runs at once, not after the container
    timeout "$TIMEOUT" podman run --rm --name "$container" \
        --user "$NONROOT:$NONROOT" --read-only --tmpfs /tmp:rw,size=64m,mode=1777 --network none \
        --cap-drop ALL --security-opt no-new-privileges \
        "$@" > "$work/$name.out" 2>&1 &
    client=$!
    wait "$client" || code=$?
    client=""
    if [ "$code" -ne "$want" ]; then
        sed 's/^/    | /' "$work/$name.out" >&2
        die "$name: exit $code, expected $want (output above; 124 is a timeout after ${TIMEOUT}s)"
    fi
    if ! grep -Eq -- "$pattern" "$work/$name.out"; then
        sed 's/^/    | /' "$work/$name.out" >&2
        die "$name: exit $code as expected, but the output (above) does not match /$pattern/"
    fi
    passed=$((passed + 1))
    printf '  ok  %-16s exit %s  /%s/\n' "$name" "$code" "$pattern"
}

flip_one_byte() { # like scripts/demo.sh: the weights no longer match their signed digest
    printf '\x01' | dd of="$1" bs=1 seek=100 conv=notrunc status=none
}

echo "smoke test of $IMAGE (as $NONROOT:$NONROOT, read-only root, --network none, --cap-drop ALL)"
examples=(--volume "$PWD/examples:/examples:ro")

# 1. the image's own user and entrypoint, and nothing left to install or configure pip with
in_pod help 0 '^usage: openmodel .*COMMAND' -- "$IMAGE" --help
code=0
containers+=("openmodel-smoke-$$-user")
timeout "$TIMEOUT" podman run --rm --name "openmodel-smoke-$$-user" --network none --entrypoint id "$IMAGE" -u \
    > "$work/user.out" 2>&1 || code=$?
if [ "$code" -ne 0 ] || [ "$(cat "$work/user.out")" != "$NONROOT" ]; then
    die "the image's USER is not $NONROOT: 'id -u' printed $(cat "$work/user.out") (exit $code)"
fi
passed=$((passed + 1))
echo "  ok  user             the image runs as $NONROOT without --user"
in_pod no-pip 0 '^clean$' --entrypoint sh -- "$IMAGE" -c \
    'test ! -e /etc/pip.conf && test ! -e /run/secrets && ! python -c "import pip" 2> /dev/null \
     && ! python -c "import setuptools" 2> /dev/null && echo clean'

# 2. `openmodel verify`: the signed example under the strict policy, then a tampered copy
in_pod verify-trusted 0 'Verdict +TRUSTED' "${examples[@]}" -- "$IMAGE" \
    verify /examples/models/tiny-signed --policy /examples/policy-strict.yaml
grep -Eq 'Signature +verified: example-release-key' "$work/verify-trusted.out" \
    || die "verify-trusted: TRUSTED, but not by the example key: $(cat "$work/verify-trusted.out")"
cp -r "$MODEL" "$work/tampered"
flip_one_byte "$work/tampered/model.safetensors"
in_pod verify-tampered 1 'Verdict +REJECTED' "${examples[@]}" --volume "$work/tampered:/model:ro" -- "$IMAGE" \
    verify /model --policy /examples/policy-strict.yaml
grep -q 'model.safetensors (DigestMismatch)' "$work/verify-tampered.out" \
    || die "verify-tampered: REJECTED, but not for the flipped byte: $(cat "$work/verify-tampered.out")"

# 3. the fetch Job and verify-on-start, with the manifest the operator would put in the model's ConfigMap
#    (`openmodel render` of an OpenModel whose source is a claim holding the example model)
mkdir -p "$work/in" "$work/manifest" "$work/volume"
cat > "$work/in/openmodel.yaml" << 'EOF'
apiVersion: openmodel.io/v1alpha1
kind: OpenModel
metadata: {name: tiny, namespace: models}
spec:
  source: {uri: "pvc://example-weights/tiny-signed"}
EOF
in_pod digest 0 '^sha256:[0-9a-f]{64}$' "${examples[@]}" -- "$IMAGE" digest /examples/models/tiny-signed
digest=$(cat "$work/digest.out")
in_pod render 0 'name: tiny-manifest' "${examples[@]}" --volume "$work/in:/in:ro" -- "$IMAGE" \
    render -f /in/openmodel.yaml --policy /examples/policy-strict.yaml --source-dir /examples/models/tiny-signed
cp "$work/render.out" "$work/in/rendered.yaml"
in_pod manifest 0 "\"manifestDigest\": *\"$digest\"" --volume "$work/in:/in:ro" --entrypoint python -- "$IMAGE" -c \
    'import yaml; docs = yaml.safe_load_all(open("/in/rendered.yaml"));
print(next(d for d in docs if d and d["kind"] == "ConfigMap")["data"]["manifest.json"])'
cp "$work/manifest.out" "$work/manifest/manifest.json"

# the weights volume belongs to the pod's user, as fsGroup makes it in a cluster
chown "$NONROOT:$NONROOT" "$work/volume"
fetch=(--volume "$work/manifest:/etc/openmodel:ro" --volume "$PWD/$MODEL:/source:ro")
in_pod fetch-job 0 '"event": *"done"' "${fetch[@]}" --volume "$work/volume:/models" -- "$IMAGE" \
    fetch --manifest /etc/openmodel/manifest.json --dest /models --source-dir /source --expect-digest "$digest"
expected_files="README.md config.json model.safetensors openness.yaml tokenizer.json"
[ "$(cd "$work/volume" && echo *)" = "$expected_files" ] \
    || die "fetch-job: the volume holds $(cd "$work/volume" && echo *), expected exactly $expected_files (no model.sig)"
cmp -s "$work/volume/model.safetensors" "$MODEL/model.safetensors" \
    || die "fetch-job: the weights on the volume differ from $MODEL/model.safetensors"

in_pod verify-on-start 0 '"event": *"verified"' --volume "$work/manifest:/etc/openmodel:ro" \
    --volume "$work/volume:/models:ro" -- "$IMAGE" \
    fetch --verify-only --manifest /etc/openmodel/manifest.json --dest /models --expect-digest "$digest"
flip_one_byte "$work/volume/model.safetensors"
in_pod verify-tampered-volume 1 '"reason": *"PulledDigestMismatch"' --volume "$work/manifest:/etc/openmodel:ro" \
    --volume "$work/volume:/models:ro" -- "$IMAGE" \
    fetch --verify-only --manifest /etc/openmodel/manifest.json --dest /models --expect-digest "$digest"
grep -q 'the server will not start on it' "$work/verify-tampered-volume.out" \
    || die "verify-tampered-volume: exit 1, but no refusal message: $(cat "$work/verify-tampered-volume.out")"

# 4. the operator itself, with no cluster to talk to: a clear message and exit 2, not retries forever
in_pod run-no-cluster 2 'no Kubernetes cluster configuration' -- "$IMAGE" run --standalone

echo "smoke: all $passed checks of $IMAGE passed"
