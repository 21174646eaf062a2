#!/usr/bin/env bash
# `make image` builds without a Docker engine, with Debian's podman, runc and debootstrap; a fresh machine
# (CI's included) has none of them. This installs whatever of them is missing, non-interactively, and
# does nothing when all are there. Needs root (apt-get); run it as `bash scripts/image/install-tools.sh`.
set -euo pipefail

# command -> the Debian package that provides it (fuse-overlayfs, uidmap and slirp4netns are what podman
# needs for rootless use and overlay storage on filesystems without native overlay support)
declare -A PROVIDES=(
    [podman]=podman
    [runc]=runc
    [debootstrap]=debootstrap
    [fuse-overlayfs]=fuse-overlayfs
    [newuidmap]=uidmap
    [slirp4netns]=slirp4netns
)

missing=()
for command in "${!PROVIDES[@]}"; do
    command -v "$command" > /dev/null 2>&1 || missing+=("${PROVIDES[$command]}")
done
if [ "${#missing[@]}" -eq 0 ]; then
    exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
    echo "install-tools.sh: missing ${missing[*]}; installing them needs root:" >&2
    echo "  sudo apt-get install -y ${missing[*]}" >&2
    exit 1
fi
echo "install-tools.sh: installing ${missing[*]} with apt-get"
export DEBIAN_FRONTEND=noninteractive
log=$(mktemp)
trap 'rm -f "$log"' EXIT
if ! { apt-get update -qq && apt-get install -y -qq "${missing[@]}"; } > "$log" 2>&1; then
    tail -n 30 "$log" >&2
    echo "install-tools.sh: apt-get could not install ${missing[*]} (log above); check the Debian mirror in /etc/apt/sources.list*" >&2
    exit 1
fi
