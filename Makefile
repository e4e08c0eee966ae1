# Taskline developer commands. `make run` and `make test` set everything up on a fresh machine.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= $(shell command -v python3.13 2>/dev/null || echo python3)
VENV := .venv
BIN := $(VENV)/bin
SAM_VENV := .venv-sam
SCAN_VENV := .venv-scan
CFN_VENV := .venv-cfn
STAMP := $(VENV)/.installed
export PYTHONPATH := $(CURDIR)/shared:$(CURDIR)
export SAM_CLI_TELEMETRY := 0

FUNCTION ?= TasksFunction
EVENT ?= events/tasks-list.json

.PHONY: help install run test fuzz load lint fmt openapi ca-bundle invoke sam-install sam-validate \
	sam-build cfn-lint security-scan bench bench-deadlines bench-lists ci clean rds-proxy smoke prune-versions cost cost-docs \
	artifact-check stop browser-install browser-test web-tools web-size screenshots deploy-web

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-16s %s\n", $$1, $$2}'

CHECK_PYTHON := $(PYTHON) -c 'import sys; sys.exit(sys.version_info[:2] != (3, 13))' || \
	  { echo "Taskline needs Python 3.13 (pyenv install 3.13, or PYTHON=/path/to/python3.13)"; exit 1; }

# Everything (make test, lint, ...): requirements.txt, which includes make run's set.
$(STAMP): requirements.txt requirements-run.txt shared/requirements.txt
	@$(CHECK_PYTHON)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.txt
	@touch $@

# make run's own set (requirements-run.txt), into the same .venv: serving the API does not need
# the test and lint toolchain, so a fresh clone's first `make run` installs only this.
RUN_STAMP := $(VENV)/.run-installed
$(RUN_STAMP): requirements-run.txt shared/requirements.txt
	@$(CHECK_PYTHON)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -r requirements-run.txt
	@touch $@

install: $(STAMP) ## Create .venv with every dependency

run: $(RUN_STAMP) ## Serve the API at http://127.0.0.1:3000 on an embedded PostgreSQL (AURORA=1: behind the auto-pausing Aurora stand-in)
	AURORA="$(AURORA)" $(BIN)/python -m localdev.server

stop: $(RUN_STAMP) ## Stop the embedded PostgreSQL (make test leaves it running; make run stops its own)
	$(BIN)/python -m localdev.database stop $(if $(FORCE),--force)

test: $(STAMP) $(CFN_VENV)/.installed ## Run the whole test suite against a real PostgreSQL
	$(BIN)/python -m pytest $(PYTEST_ARGS)

SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

browser-install: ## Install Debian's chromium and chromium-driver (for make browser-test)
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null || { \
	  $(SUDO) apt-get update -qq && \
	  $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
	    chromium chromium-driver; }

browser-test: $(STAMP) browser-install web-tools ## Headless Chromium: the web app's journeys, examples/web/, Swagger UI
	TASKLINE_BROWSER_TESTS=1 $(BIN)/python -m pytest tests/local/test_browser.py tests/local/test_web_app.py $(PYTEST_ARGS)

# Test-only tools for the web app (axe-core, pinned in web-tools/package-lock.json), in a
# git-ignored folder. Running the app needs none of them (no Node.js): web/ is served as is.
web-tools/node_modules/.installed: web-tools/package.json web-tools/package-lock.json
	cd web-tools && npm ci --no-audit --no-fund --silent
	@touch $@

web-tools: web-tools/node_modules/.installed ## Install axe-core (npm, pinned) for the web app's accessibility scan

web-size: $(STAMP) ## The web app's first load (gzip JS + CSS) against its 100 KB budget
	$(BIN)/python -m bench.web_size

screenshots: $(STAMP) browser-install web-tools ## Re-render docs/screenshots/*.png from the app (headless Chromium)
	TASKLINE_BROWSER_TESTS=1 TASKLINE_SCREENSHOTS=1 $(BIN)/python -m pytest tests/local/test_web_app.py \
	  -k test_render_the_screenshots -q $(PYTEST_ARGS)

deploy-web: $(STAMP) ## Upload web/ to the stack's private bucket, then invalidate CloudFront: make deploy-web STACK=taskline
	$(BIN)/python -m localdev.deploy_web "$(STACK)"

fuzz: $(STAMP) ## Longer OpenAPI fuzzing, in process and against a local server (FUZZ_* knobs)
	$(BIN)/python -m localdev.fuzz

load: $(STAMP) ## Bounded load test: several local servers, concurrent clients, nothing lost
	$(BIN)/python bench/load.py $(LOAD_ARGS)

smoke: $(RUN_STAMP) ## Post-deploy smoke test: make smoke API_URL=https://... [ORIGIN=https://app.example.com] [APP_URL=https://.../app/]
	$(BIN)/python -m localdev.smoke "$(API_URL)"

prune-versions: $(STAMP) ## After sam deploy: delete old SnapStart versions (STACK=taskline KEEP_PREVIOUS=1 DRY_RUN=)
	$(BIN)/python -m localdev.prune_versions

rds-proxy: $(STAMP) ## Strict RDS Proxy stand-in on 127.0.0.1:6432 (prints the DATABASE_URL for make run)
	$(BIN)/python -m localdev.rdsproxy $(PROXY_ARGS)

lint: $(STAMP) ## ruff (lint and format check) and mypy --strict
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy shared functions localdev tests

fmt: $(STAMP) ## Format and autofix
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

openapi: $(STAMP) ## Regenerate shared/taskline/api/openapi.json from the handlers
	$(BIN)/python -m localdev.openapi

ca-bundle: $(STAMP) ## Regenerate the AWS CA bundle shipped in the layer (shared/taskline/certs)
	$(BIN)/python -m localdev.ca_bundle

invoke: $(RUN_STAMP) ## Docker-free `sam local invoke`: make invoke FUNCTION=TasksFunction EVENT=events/x.json
	$(BIN)/python -m localdev.invoke $(FUNCTION) --event $(EVENT) $(ARGS)

PROFILE ?= standard

cost: $(STAMP) $(CFN_VENV)/.installed ## Monthly bill from the template: make cost PROFILE=starter|standard|production|all
	$(BIN)/python -m localdev.cost --profile $(PROFILE)

cost-docs: $(STAMP) $(CFN_VENV)/.installed ## Regenerate the cost tables of docs/deploy.md and README.md (checked by tests/stack/test_cost.py)
	$(BIN)/python -m localdev.cost --write-docs

bench-deadlines: $(STAMP) ## Deadline check on 1,000,000 tasks (database taskline_bench): plan and timings
	$(BIN)/python bench/deadlines.py $(BENCH_ARGS)

bench-lists: $(STAMP) ## GET /tasks with shared lists on 1,000,000 tasks (database taskline_bench_lists)
	$(BIN)/python bench/lists.py $(BENCH_ARGS)

# aws-sam-translator for the template lifecycle tests, apart: it pins an older pydantic.
$(CFN_VENV)/.installed: requirements-cfn.txt
	$(PYTHON) -m venv $(CFN_VENV)
	$(CFN_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(CFN_VENV)/bin/python -m pip install --quiet -r requirements-cfn.txt
	@touch $@

$(SAM_VENV)/.installed: requirements-sam.txt
	$(PYTHON) -m venv $(SAM_VENV)
	$(SAM_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(SAM_VENV)/bin/python -m pip install --quiet -r requirements-sam.txt
	@touch $@

sam-install: $(SAM_VENV)/.installed ## Install the AWS SAM CLI into .venv-sam

sam-validate: $(SAM_VENV)/.installed ## sam validate --lint
	$(SAM_VENV)/bin/sam validate --lint --region us-east-1

sam-build: $(SAM_VENV)/.installed ## sam build (arm64, python3.13; no Docker)
	PATH="$(dir $(shell command -v python3.13 2>/dev/null || echo $(PYTHON))):$$PATH" \
	  $(SAM_VENV)/bin/sam build --region us-east-1

artifact-check: $(STAMP) ## Check .aws-sam/build: 3.13 unchecked-hash bytecode, aarch64 .so, sizes
	$(BIN)/python -m localdev.artifact_check

cfn-lint: $(SAM_VENV)/.installed ## cfn-lint on template.yaml (SAM transform included)
	$(SAM_VENV)/bin/cfn-lint --regions us-east-1 -- template.yaml

$(SCAN_VENV)/.installed: requirements-scan.txt
	$(PYTHON) -m venv $(SCAN_VENV)
	$(SCAN_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(SCAN_VENV)/bin/python -m pip install --quiet -r requirements-scan.txt
	@touch $@

security-scan: $(SCAN_VENV)/.installed ## checkov on template.yaml (accepted findings are justified inline)
	$(SCAN_VENV)/bin/checkov --file template.yaml --framework cloudformation \
	  --skip-download --compact --quiet

BENCH_BUILD := bench/.build

$(VENV)/.bench-installed: $(STAMP) bench/requirements.txt
	$(BIN)/python -m pip install --quiet -r bench/requirements.txt
	@touch $@

# What each side ships, installed apart so each benchmarked process imports only that. The
# layer's x86_64 twin is built by the artifact's own recipe (packaging/Makefile) and lends the
# bench its native extensions, which the arm64 artifact cannot run here. The peer is installed
# as `sam build` would package it: pip --no-compile, no bytecode.
$(BENCH_BUILD)/layer-x86_64/.installed: $(STAMP) shared/requirements.txt packaging/Makefile
	rm -rf $(BENCH_BUILD)/layer-x86_64
	$(MAKE) --no-print-directory -C shared -f ../packaging/Makefile build-TasklineLayer \
	  ARTIFACTS_DIR=$(CURDIR)/$(BENCH_BUILD)/layer-x86_64 WHEEL_PLATFORM=manylinux2014_x86_64
	@touch $@

$(BENCH_BUILD)/peer/.installed: $(STAMP) bench/peers/fastapi/requirements.txt
	rm -rf $(BENCH_BUILD)/peer
	$(BIN)/python -m pip install --quiet --no-compile --target $(BENCH_BUILD)/peer -r bench/peers/fastapi/requirements.txt
	@touch $@

bench: $(VENV)/.bench-installed $(BENCH_BUILD)/layer-x86_64/.installed $(BENCH_BUILD)/peer/.installed $(SAM_VENV)/.installed ## Benchmarks vs the FastAPI peer (writes bench/results/)
	$(BIN)/python -m bench.run

ci: lint test sam-validate cfn-lint security-scan sam-build artifact-check ## Everything CI runs

clean: ## Remove build output (keeps .local, the dev database)
	rm -rf .aws-sam .pytest_cache .mypy_cache .ruff_cache bench/.build
