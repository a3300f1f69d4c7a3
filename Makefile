# The two commands a newcomer needs: `make run` and `make test`. Everything else is below them.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
CHROMIUM ?= /usr/bin/chromium
PROTO_SRC := $(shell find protos/portal -name '*.proto' | sort)

.PHONY: help install run test lint typecheck pytest protos protos-check bench browser fonts clean fuzz verify-audit

help:
	@echo "make run    - start the whole stack (embedded PostgreSQL and NATS unless URLs are set)"
	@echo "make test   - lint, type-check and run every test"
	@echo "make bench  - performance measurements (ratios to raw baselines)"
	@echo "make fuzz   - fuzz /api/v1 longer than make test does (SEED=n, FUZZ_SECONDS=600)"
	@echo "make protos - regenerate Python code from protos/"
	@echo "make verify-audit - check the audit logs' hash chains (make run's databases)"

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	@touch $@

install: $(STAMP)

APT_INSTALL = SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); $$SUDO apt-get update -qq \
  && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq
# The credentials letter PDF embeds these fonts (services/gateway/letters.py).
LETTER_FONTS := /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf \
  /usr/share/fonts/truetype/droid/DroidSansFallbackFull.ttf

# Browser tests drive the system Chromium, and PDF tests read letters with poppler's pdftotext;
# install them from the system package manager if missing.
browser: fonts
	@if [ ! -x $(CHROMIUM) ] || [ ! -x /usr/bin/pdftotext ]; then \
	  echo "Installing Chromium and poppler-utils with apt-get (browser and PDF tests need them)"; \
	  $(APT_INSTALL) chromium poppler-utils >/dev/null; \
	fi

fonts:
	@if ! ls $(LETTER_FONTS) >/dev/null 2>&1; then \
	  echo "Installing the credentials letter's fonts with apt-get"; \
	  $(APT_INSTALL) fonts-dejavu-core fonts-droid-fallback >/dev/null; \
	fi

run: install fonts
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

# The fuzz step of `make test` with a random seed (or SEED=n) and a larger budget
SEED ?=
FUZZ_SECONDS ?= 600
fuzz: install
	PORTAL_FUZZ_SEED=$(if $(SEED),$(SEED),$$RANDOM$$RANDOM) PORTAL_FUZZ_SECONDS=$(FUZZ_SECONDS) PORTAL_FUZZ_EXAMPLES=500 \
	  $(BIN)/python -m pytest tests/system/test_fuzz.py -s --timeout=$$(( $(FUZZ_SECONDS) * 3 + 300 ))

# Exit 1 and the first broken row when an audit log was tampered with (README: Audit log).
verify-audit: install
	$(BIN)/python -m services.devstack.verify_audit

bench: install
	$(BIN)/python -m tests.bench

clean:
	rm -rf $(VENV) build *.egg-info .mypy_cache .ruff_cache .pytest_cache
