# planpolicy — the two commands of the README, plus helpers.
# Only Python 3.11, git and make are assumed on the machine.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
TSTAMP := $(VENV)/.installed-test

.PHONY: demo test lint typecheck unit schemas bench clean help

help:
	@echo "make demo   - create the venv, install, run the demo on the bundled policies"
	@echo "make test   - install test extras, run ruff, mypy --strict, and the whole test suite"
	@echo "make bench  - run the benchmarks under tools/bench"

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(TSTAMP): $(STAMP) pyproject.toml
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@

demo: $(STAMP)
	$(BIN)/planpolicy lint policies plan_types
	$(BIN)/planpolicy bundle policies plan_types

lint: $(TSTAMP)
	$(BIN)/ruff check src tests tools
	$(BIN)/ruff format --check src tests tools

typecheck: $(TSTAMP)
	$(BIN)/mypy --strict src/planpolicy src/orchestrator

unit: $(TSTAMP)
	$(BIN)/python -m pytest -q

# The test session fixture starts (and stops) the DynamoDB-compatible server;
# ensure_chromium.sh installs Debian's Chromium for the Active Plans page's browser test.
test: $(TSTAMP)
	bash tools/ensure_chromium.sh
	$(BIN)/ruff check src tests tools
	$(BIN)/mypy --strict src/planpolicy src/orchestrator
	$(BIN)/planpolicy schema --check
	$(BIN)/planpolicy lint --strict policies plan_types
	$(BIN)/planpolicy test tests/policies
	$(BIN)/python -m pytest -q

schemas: $(STAMP)
	$(BIN)/planpolicy schema --write

bench: $(TSTAMP)
	$(BIN)/python tools/bench/run_all.py

clean:
	rm -rf $(VENV) build dist src/*.egg-info .pytest_cache .mypy_cache .ruff_cache
