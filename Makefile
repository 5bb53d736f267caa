# planpolicy — the two commands of the README, plus helpers.
# Only Python 3.11, git and make are assumed on the machine.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
TSTAMP := $(VENV)/.installed-test

.PHONY: demo test lint typecheck unit schemas bench clean help synth lambda-deps

help:
	@echo "make demo   - create the venv, install, lint the bundled policies and simulate a renewal plan"
	@echo "make test   - install test extras, run ruff, mypy --strict, and the whole test suite"
	@echo "make bench  - run the benchmarks under tools/bench"
	@echo "make synth  - write the AWS CloudFormation template to cdk.out/ (no AWS credentials)"

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(TSTAMP): $(STAMP) pyproject.toml
	$(BIN)/python -m pip install --quiet -e '.[test,deploy]'
	touch $@

demo: $(STAMP)
	$(BIN)/planpolicy lint policies plan_types
	$(BIN)/planpolicy simulate examples/scenarios/renewal_saved.yaml

lint: $(TSTAMP)
	$(BIN)/ruff check src tests tools infra
	$(BIN)/ruff format --check src tests tools

typecheck: $(TSTAMP)
	$(BIN)/mypy --strict src/planpolicy src/orchestrator

unit: $(TSTAMP)
	$(BIN)/python -m pytest -q

# The test session fixture starts (and stops) the DynamoDB-compatible server;
# ensure_chromium.sh installs Debian's Chromium for the Active Plans page's browser test.
test: $(TSTAMP)
	bash tools/ensure_chromium.sh
	$(BIN)/ruff check src tests tools infra
	$(BIN)/mypy --strict src/planpolicy src/orchestrator
	$(BIN)/planpolicy schema --check
	$(BIN)/planpolicy lint --strict policies plan_types
	$(BIN)/planpolicy test tests/policies
	$(BIN)/python -m pytest -q

schemas: $(STAMP)
	$(BIN)/planpolicy schema --write

bench: $(TSTAMP)
	$(BIN)/python tools/bench/run_all.py

# AWS deployment (docs/deploy.md). `synth` needs no credentials and no layer;
# `lambda-deps` builds the functions' dependency layer that `cdk deploy` uploads.
JWT_ISSUER    ?= https://issuer.example.com/
EXECUTOR_URL  ?= https://executor.example.com/
SCHEDULE_RATE ?= rate(5 minutes)
TABLE_PREFIX  ?= planpolicy-

synth: $(TSTAMP)
	PLANPOLICY_SYNTH_ONLY=1 PLANPOLICY_JWT_ISSUER='$(JWT_ISSUER)' \
	  PLANPOLICY_EXECUTOR_URL='$(EXECUTOR_URL)' PLANPOLICY_SCHEDULE_RATE='$(SCHEDULE_RATE)' \
	  PLANPOLICY_TABLE_PREFIX='$(TABLE_PREFIX)' $(BIN)/python -m infra.app

lambda-deps: $(TSTAMP)
	$(BIN)/python -m infra.layer --out build/lambda-deps

clean:
	rm -rf $(VENV) build dist src/*.egg-info .pytest_cache .mypy_cache .ruff_cache
