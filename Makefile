# Two entry points for a newcomer: `make demo` (the main job) and `make test` (every check CI runs).
# Both create and fill .venv on first use, so they work on a fresh clone. `make image` builds and
# smoke-tests the container image without a Docker engine (podman, as root; CI runs it after `make test`).

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: demo test lint layers typecheck unit e2e-emulator crds bench image image-smoke clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

demo: $(STAMP)
	@bash scripts/demo.sh

test: lint layers typecheck unit e2e-emulator

lint: $(STAMP)
	$(BIN)/ruff check operator tests scripts e2e bench

# the import contracts in .importlinter: the layers in order, the functional core free of I/O libraries
layers: $(STAMP)
	PYTHONPATH=operator $(BIN)/lint-imports

typecheck: $(STAMP)
	$(BIN)/mypy
	cd bench && MYPYPATH=../operator:../tests $(abspath $(BIN))/mypy --strict --ignore-missing-imports --follow-imports=silent \
	    bench_trust.py bench_pull_versions.py bench_operator.py bench_update_downtime.py benchlib.py fasthub.py

unit: $(STAMP)
	$(BIN)/pytest -q

# the e2e suite against the in-repo API emulator; against a real cluster see docs/e2e.md
e2e-emulator: $(STAMP)
	bash e2e/against-emulator.sh

# the Dockerfile built with podman (an offline Debian base when python:3.11-slim-bookworm cannot be pulled),
# then smoke-tested as the pods run it; prints the image's size. See docs/install.md, "The image".
image:
	bash scripts/image/build.sh

# the smoke test alone, on the image `make image` built (or IMAGE=...)
image-smoke:
	bash scripts/image/smoke.sh

crds: $(STAMP)
	$(BIN)/openmodel crds --output-dir crds
	$(BIN)/openmodel crds --output-dir manifests/base/crds
	$(BIN)/openmodel crds --output-dir charts/openmodel-operator/crds

clean:
	rm -rf $(VENV) build *.egg-info
