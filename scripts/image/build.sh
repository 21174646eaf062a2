#!/usr/bin/env bash
# `make image`: build the repository's Dockerfile without a Docker engine, then smoke-test the image the way
# the pods run it. There may be no registry to pull python:3.11-slim-bookworm from, so when it cannot be
# pulled the build makes its own Python base from Debian's packages (debootstrap) and caches it under a tag
# derived from its recipe: the second run reuses it. pip inside the build gets this machine's index and CA as
# build secrets, never as a layer. Prints the image's size and the time each part took.
#
# Settings (environment):
#   IMAGE          the tag to build (default localhost/openmodel-operator:dev)
#   IMAGE_BASE     auto (default: the official base if it can be pulled, else the offline one),
#                  official, or offline
#   PYTHON_IMAGE   the official base (default python:3.11-slim-bookworm, as the Dockerfile's ARG)
#   DEBIAN_MIRROR  where debootstrap and apt get Debian's packages (default http://deb.debian.org/debian)
#   IMAGE_CA       the CA bundle pip trusts inside the build (default: pip's own setting on this machine)
#   IMAGE_REFRESH_BASE=1  rebuild the cached offline base (it takes Debian's security updates when built)
#   IMAGE_SMOKE    0 skips the smoke test (scripts/image/smoke.sh)
set -euo pipefail
cd "$(dirname "$0")/../.."
HERE=scripts/image
export CONTAINERS_CONF="$PWD/$HERE/containers.conf"

IMAGE=${IMAGE:-localhost/openmodel-operator:dev}
IMAGE_BASE=${IMAGE_BASE:-auto}
PYTHON_IMAGE=${PYTHON_IMAGE:-python:3.11-slim-bookworm}
DEBIAN_MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
SUITE=bookworm
PACKAGES=python3,python3-venv,python-is-python3,ca-certificates
BASE_REPO=localhost/openmodel-python-base

die() {
    echo "image: $*" >&2
    exit 1
}
say() { printf '\033[1m== %s\033[0m\n' "$*"; }
since() { echo "$(($(date +%s) - $1)) s"; }

case "$IMAGE_BASE" in
    auto | official | offline) ;;
    *) die "IMAGE_BASE=$IMAGE_BASE: use auto, official or offline" ;;
esac
for tool in podman runc; do
    command -v "$tool" > /dev/null || die "$tool is not installed: run 'bash $HERE/install-tools.sh' (apt-get, as root)"
done
[ "$(id -u)" -eq 0 ] || die "run as root: the offline base needs debootstrap, and only root's podman was tested here"

work=$(mktemp -d "${TMPDIR:-/tmp}/openmodel-image.XXXXXX")
bootstrap_image=""
cleanup() {
    if [ -n "$bootstrap_image" ]; then
        podman rmi --force "$bootstrap_image" > /dev/null 2>&1 || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT

# ---------------------------------------------------------------- the base

make_offline_base() { # $1: the tag to create
    local rootfs="$work/rootfs"
    command -v debootstrap > /dev/null || die "debootstrap is not installed: run 'bash $HERE/install-tools.sh'"
    if ! debootstrap --variant=minbase --include="$PACKAGES" "$SUITE" "$rootfs" "$DEBIAN_MIRROR" \
        > "$work/debootstrap.log" 2>&1; then
        tail -n 20 "$work/debootstrap.log" >&2
        die "debootstrap $SUITE from $DEBIAN_MIRROR failed (log above): is the mirror reachable? set DEBIAN_MIRROR"
    fi
    # this machine's resolver and hostname, the downloaded .debs and apt's lists stay out of the image;
    # /dev is filled by the runtime
    rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/* "$rootfs/etc/hostname"
    : > "$rootfs/etc/resolv.conf"
    bootstrap_image="$BASE_REPO-bootstrap:$$"
    tar -C "$rootfs" --exclude='./dev/*' --numeric-owner -c . | podman import --quiet - "$bootstrap_image" > /dev/null \
        || die "podman import of the debootstrap tree failed"
    rm -rf "$rootfs"
    # updates and trimming in one squashed layer (base.Containerfile says what and why)
    if ! podman build --quiet --isolation chroot --network host --squash-all \
        --build-arg BOOTSTRAP="$bootstrap_image" --build-arg DEBIAN_MIRROR="$DEBIAN_MIRROR" \
        --label "org.opencontainers.image.description=Debian $SUITE minbase with $PACKAGES (offline base of openmodel-operator)" \
        -f "$HERE/base.Containerfile" -t "$1" "$HERE" > "$work/base-build.log" 2>&1; then
        tail -n 30 "$work/base-build.log" >&2
        die "building the offline base from $HERE/base.Containerfile failed (log above)"
    fi
    podman rmi --force "$bootstrap_image" > /dev/null 2>&1 || true
    bootstrap_image=""
}

offline_base_tag() {
    # the recipe: this function's steps, the Containerfile, the suite and the packages; a change to any of them
    # makes a new tag (and a rebuild). Security updates alone do not: IMAGE_REFRESH_BASE=1 takes them.
    local recipe
    recipe=$({ declare -f make_offline_base; cat "$HERE/base.Containerfile"; echo "$SUITE $PACKAGES"; } | sha256sum)
    echo "$BASE_REPO:$SUITE-${recipe:0:12}"
}

pull_official() {
    podman image exists "$PYTHON_IMAGE" && return 0
    timeout 120 podman pull --quiet "$PYTHON_IMAGE" > "$work/pull.log" 2>&1
}

started=$(date +%s)
base=""
if [ "$IMAGE_BASE" != offline ]; then
    say "base: pulling $PYTHON_IMAGE"
    if pull_official; then
        base=$PYTHON_IMAGE
    elif [ "$IMAGE_BASE" = official ]; then
        cat "$work/pull.log" >&2
        die "cannot pull $PYTHON_IMAGE (above); IMAGE_BASE=auto builds on an offline base instead"
    else
        echo "   cannot pull it ($(tail -n 1 "$work/pull.log" | cut -c1-120)): using the offline base"
    fi
fi
if [ -z "$base" ]; then
    base=$(offline_base_tag)
    if podman image exists "$base" && [ "${IMAGE_REFRESH_BASE:-0}" != 1 ]; then
        say "base: $base (cached; IMAGE_REFRESH_BASE=1 rebuilds it with today's Debian updates)"
    else
        say "base: making $base from Debian $SUITE (debootstrap, about a minute)"
        make_offline_base "$base"
        echo "   done in $(since "$started")"
    fi
fi
base_seconds=$(($(date +%s) - started))

# ---------------------------------------------------------------- pip's settings, as build secrets

pip_setting() { # the last value pip on this machine reports for KEY (environment over files), or nothing
    python3 -m pip config list 2>/dev/null | sed -n "s/^[^=]*\.$1='\(.*\)'\$/\1/p" | tail -n 1
}
http_only() { # the http(s) URLs of a space-separated list; file:// indexes of this machine do not exist inside
    local url kept=()
    for url in $1; do
        case "$url" in
            http://* | https://*) kept+=("$url") ;;
            *) echo "   pip: leaving out $url (not reachable from inside the build)" >&2 ;;
        esac
    done
    echo "${kept[*]:-}"
}

ca=${IMAGE_CA:-}
if [ -z "$ca" ]; then
    for candidate in "${PIP_CERT:-}" "$(pip_setting cert)" "${SSL_CERT_FILE:-}" /etc/ssl/certs/ca-certificates.crt; do
        if [ -n "$candidate" ] && [ -f "$candidate" ]; then
            ca=$candidate
            break
        fi
    done
fi
[ -z "$ca" ] || { [ -f "$ca" ] && [ -r "$ca" ]; } || die "IMAGE_CA=$ca is not a readable file"
index=$(http_only "${PIP_INDEX_URL:-$(pip_setting index-url)}")
extra=$(http_only "${PIP_EXTRA_INDEX_URL:-$(pip_setting extra-index-url)}")
{
    echo "[global]"
    if [ -n "$ca" ]; then echo "cert = /run/secrets/pip-ca"; fi
    if [ -n "$index" ]; then echo "index-url = $index"; fi
    if [ -n "$extra" ]; then echo "extra-index-url = $extra"; fi
} > "$work/pip.conf"
secrets=(--secret "id=pip.conf,src=$work/pip.conf")
if [ -n "$ca" ]; then secrets+=(--secret "id=pip-ca,src=$ca"); fi

# ---------------------------------------------------------------- the image

say "image: building $IMAGE from the Dockerfile on $base (pip: CA ${ca:-pip default}, index ${index:-PyPI})"
build_started=$(date +%s)
old_id=$(podman image inspect --format '{{.Id}}' "$IMAGE" 2>/dev/null || true)
if ! podman build --isolation chroot --network host --layers \
    --build-arg PYTHON_IMAGE="$base" "${secrets[@]}" \
    -f Dockerfile -t "$IMAGE" . > "$work/build.log" 2>&1; then
    tail -n 40 "$work/build.log" >&2
    die "podman build of the Dockerfile failed (log above)"
fi
build_seconds=$(($(date +%s) - build_started))
new_id=$(podman image inspect --format '{{.Id}}' "$IMAGE")
if [ -n "$old_id" ] && [ "$old_id" != "$new_id" ]; then
    # the previous build, now untagged; kept if a container or another tag still uses it
    podman rmi "$old_id" > /dev/null 2>&1 || true
fi

# the CA bundle pip was given stays out of the image: the image's bundle is still the base's own
bundle=/etc/ssl/certs/ca-certificates.crt
in_image=$(podman run --rm --network none --user 0 --entrypoint sha256sum "$IMAGE" "$bundle") \
    || die "cannot read $bundle in $IMAGE"
in_base=$(podman run --rm --network none --user 0 --entrypoint sha256sum "$base" "$bundle") \
    || die "cannot read $bundle in $base"
if [ "${in_image%% *}" != "${in_base%% *}" ]; then
    die "$bundle in $IMAGE is not the one of its base $base: did the build's CA reach a layer?"
fi

if [ "${IMAGE_SMOKE:-1}" != 0 ]; then
    IMAGE=$IMAGE bash "$HERE/smoke.sh"
fi

size=$(podman image inspect --format '{{.Size}}' "$IMAGE")
say "image: $IMAGE ($(awk -v b="$size" 'BEGIN { printf "%.0f MB", b / 1e6 }'), ${size} bytes), base $base"
echo "   base ${base_seconds} s, build ${build_seconds} s, total $(since "$started")"
