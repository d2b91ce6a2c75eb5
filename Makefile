# The one front door. `make help` lists the targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV        := .venv
PY          := $(VENV)/bin/python
PYTEST      := $(VENV)/bin/pytest
COMPOSE     := docker-compose -f demo/docker-compose.yml
DEMO_SCALE  ?= 0.1
BENCH_SCALE ?= 1
RUNNER      ?= postgres

.PHONY: help setup engine base-image images image demo demo-down test test-unit test-integration \
        test-contract lint schemas bench bench-dbt bench-dags clean

help: ## Show this help
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  \033[36m%-18s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

setup: $(VENV)/.installed ## Create the development venv (.venv) with pinned tools

$(VENV)/.installed: requirements-dev.txt base-image/constraints.txt runners/*/constraints.txt \
		orchestration/constraints.txt datakits/*/pyproject.toml orchestration/pyproject.toml
	@test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements-dev.txt
	@touch $@

engine: ## Make sure a Docker engine runs (installs Debian's docker.io when root and missing)
	base-image/ensure-docker-engine.sh

base-image: engine ## Build etl/runner-base (upstream python image if pullable, else air-gapped)
	base-image/build.sh

image: engine ## Build one runner image: make image RUNNER=postgres
	runners/build.sh $(RUNNER)

images: engine ## Build every runner image and the local PostgreSQL server image
	@for dir in runners/*/; do runners/build.sh $$(basename $$dir) >/dev/null || exit 1; done
	demo/postgres/build.sh

demo: setup images ## Set everything up and run the demo tenant end to end (DEMO_SCALE=0.1)
	DEMO_SCALE=$(DEMO_SCALE) demo/run.sh

demo-down: ## Stop the demo databases and delete their data
	$(COMPOSE) -p dk-demo down -v

test: setup images lint ## Run the full test suite: unit, integration, contract, e2e
	$(PYTEST) tests/unit tests/integration tests/contract tests/e2e

test-unit: setup ## Unit tests only (no services)
	$(PYTEST) tests/unit

test-integration: setup images ## Integration tests against real PostgreSQL servers
	$(PYTEST) tests/integration

test-contract: setup images ## Contract tests: the built images, run with docker run
	$(PYTEST) tests/contract

lint: setup ## ruff (lint + format check) and mypy
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(PY) -m datakit_orchestration.schema --check
	$(PY) -m datakit_orchestration.dagfiles --check

schemas: setup ## Regenerate orchestration/tenant.schema.json from the tenant spec models
	$(PY) -m datakit_orchestration.schema

.PHONY: dags
dags: setup ## Write one thin DAG file per tenant in orchestration/dags (after adding a tenant)
	$(PY) -m datakit_orchestration.dagfiles

bench: setup images ## Runner image vs raw psql COPY pipe on TPC-H lineitem (BENCH_SCALE=1)
	BENCH_SCALE=$(BENCH_SCALE) benchmarks/run.sh runner

bench-dbt: setup images ## Full vs incremental dbt build after a 1% change batch (BENCH_SCALE=1)
	BENCH_SCALE=$(BENCH_SCALE) benchmarks/run.sh dbt

bench-dags: setup ## Airflow parse time of the DAG folder for 1, 10 and 100 tenants of 40 tables
	$(PY) benchmarks/bench_dag_parse.py

clean: ## Remove the venv and caches (images and demo data stay; see demo-down)
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
