# The two commands a newcomer needs: `make run` and `make test`. Everything else is below them.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
CHROMIUM ?= /usr/bin/chromium
PROTO_SRC := $(shell find protos/portal -name '*.proto' | sort)

.PHONY: help install run test lint typecheck pytest protos protos-check bench browser clean fuzz

help:
	@echo "make run    - start the whole stack (embedded PostgreSQL and NATS unless URLs are set)"
	@echo "make test   - lint, type-check and run every test"
	@echo "make bench  - performance measurements (ratios to raw baselines)"
	@echo "make fuzz   - fuzz /api/v1 longer than make test does (SEED=n, FUZZ_SECONDS=600)"
	@echo "make protos - regenerate Python code from protos/"

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	@touch $@

install: $(STAMP)

# Browser tests drive the system Chromium; install it from the system package manager if missing.
browser:
	@if [ ! -x $(CHROMIUM) ]; then \
	  echo "Installing Chromium with apt-get (browser tests need it)"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium fonts-dejavu-core >/dev/null; \
	fi

run: install
	$(BIN)/python -m services.devstack

protos: install
	$(BIN)/python -m services.devstack.protogen protos

protos-check: install
	$(BIN)/python -m services.devstack.protogen --check protos

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: install
	$(BIN)/mypy services tests

pytest: install browser
	$(BIN)/python -m pytest

test: protos-check lint typecheck pytest

# The fuzz step of `make test`, with a seed and a longer budget: make fuzz SEED=42
SEED ?=
FUZZ_SECONDS ?= 600
fuzz: install
	PORTAL_FUZZ_SEED=$(SEED) PORTAL_FUZZ_SECONDS=$(FUZZ_SECONDS) PORTAL_FUZZ_EXAMPLES=500 \
	  $(BIN)/python -m pytest tests/system/test_fuzz.py -s --timeout=$$(( $(FUZZ_SECONDS) * 3 + 300 ))

bench: install
	$(BIN)/python -m tests.bench

clean:
	rm -rf $(VENV) build *.egg-info .mypy_cache .ruff_cache .pytest_cache
