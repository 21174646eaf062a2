# syntax=docker/dockerfile:1.7
# The one image of the project: it runs the operator (`openmodel run`), the fetch Job (`openmodel fetch`)
# and the serving pods' verify-on-start check. Build it from the repository root, with a Docker engine:
#
#   docker build -t ghcr.io/openmodel-operator/openmodel-operator:0.1.0 .
#
# or without one: `make image` (podman; scripts/image/build.sh), which builds FROM a Python base made from
# Debian's packages when python:3.11-slim-bookworm cannot be pulled, and smoke-tests the result.
#
# Both stages use the same Python base so the venv's interpreter link (/usr/local/bin/python3 in the
# official image, /usr/bin/python3 in Debian's) resolves in the final stage. Pin the base by digest in a
# release build:
#   --build-arg PYTHON_IMAGE=python:3.11-slim-bookworm@sha256:<digest>
#
# pip settings the build needs (a private index, a proxy's CA) come as build secrets, so they never land in a
# layer: `--secret id=pip.conf,src=<a pip.conf>` (mounted as /etc/pip.conf) and `--secret id=pip-ca,src=<CA
# bundle>` (at /run/secrets/pip-ca, for the pip.conf's `cert =`). Without them pip uses its defaults.
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# ---------------------------------------------------------------- builder: wheel + venv
FROM ${PYTHON_IMAGE} AS builder

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1

WORKDIR /src
# Only what the wheel needs: metadata, the README it references, and the package.
COPY pyproject.toml README.md ./
COPY operator ./operator

# Every runtime dependency ships manylinux wheels; --only-binary keeps compilers out of the build.
# setuptools goes with pip: no runtime dependency imports it (it came with the venv, for building only).
RUN --mount=type=secret,id=pip.conf,target=/etc/pip.conf \
    --mount=type=secret,id=pip-ca \
    python -m venv /opt/venv \
 && /opt/venv/bin/pip install --upgrade pip \
 && /opt/venv/bin/pip wheel --no-deps --wheel-dir /wheels . \
 && /opt/venv/bin/pip install --only-binary=:all: /wheels/*.whl \
 && /opt/venv/bin/openmodel --help > /dev/null \
 && /opt/venv/bin/pip uninstall --yes --quiet pip setuptools \
 && /opt/venv/bin/python -m compileall -q /opt/venv/lib

# ---------------------------------------------------------------- final: runtime only
FROM ${PYTHON_IMAGE} AS final

LABEL org.opencontainers.image.title="openmodel-operator" \
      org.opencontainers.image.description="Verifies, pins and serves open AI models on Kubernetes" \
      org.opencontainers.image.source="https://github.com/openmodel-operator/openmodel-operator" \
      org.opencontainers.image.licenses="Apache-2.0"

# A passwd entry for UID 65532 (the "nonroot" user of distroless images, as the children's pods use):
# Kopf names itself after the user when POD_ID is unset, and getpass fails for an unknown UID.
# The base image's own pip/setuptools/wheel are removed: nothing is installed at run time (Debian's
# Python, the offline base, has no pip to remove).
RUN groupadd --system --gid 65532 nonroot \
 && useradd --system --uid 65532 --gid 65532 --home-dir /tmp --no-create-home --shell /usr/sbin/nologin nonroot \
 && if python -m pip --version > /dev/null 2>&1; then python -m pip uninstall --yes --quiet pip setuptools wheel; fi \
 && rm -rf /root/.cache

COPY --from=builder /opt/venv /opt/venv

# Read-only root filesystem: HOME and every cache live under /tmp (an emptyDir in the pod specs).
# HF_HUB_DISABLE_XET: downloads go through plain HTTPS so every byte passes the digest check.
ENV PATH=/opt/venv/bin:$PATH \
    HOME=/tmp \
    HF_HOME=/tmp/hf \
    HF_HUB_DISABLE_XET=1 \
    HF_HUB_DISABLE_TELEMETRY=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1

USER 65532:65532
WORKDIR /tmp
# 8080: Prometheus /metrics; 8081: liveness /healthz
EXPOSE 8080 8081
ENTRYPOINT ["openmodel"]
CMD ["run", "--all-namespaces"]
