# The one front door. `make help` lists the targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV        := .venv
PY          := $(VENV)/bin/python
PYTEST      := $(VENV)/bin/pytest
COMPOSE     := docker-compose -f stack/docker-compose.yml
DEMO_SCALE  ?= 0.1
BENCH_SCALE ?= 1
BENCH_RECORDS ?= 1000000
RUNNER      ?= postgres
TENANTS     ?= acme

.PHONY: help setup engine base-image images image demo demo-down test test-unit test-integration \
        test-contract lint schemas bench bench-dbt bench-cdc bench-dags bench-spark bench-http clean

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

.PHONY: prometheus
prometheus: ## Make sure Prometheus and promtool are installed (Debian's package; make up, make test)
	stack/ensure-prometheus.sh

base-image: engine ## Build etl/runner-base (upstream python image if pullable, else air-gapped)
	base-image/build.sh

image: engine ## Build one runner image: make image RUNNER=postgres
	runners/build.sh $(RUNNER)

.PHONY: tenant-image
tenant-image: setup engine ## Build a tenant's own dbt image etl/dbt-<tenant>:<version>: make tenant-image TENANT=globex
	@test -n "$(TENANT)" || { echo "Name the tenant: make tenant-image TENANT=globex" >&2; exit 2; }
	$(PY) -m datakit_orchestration.tenant_image $(TENANT)

images: setup engine ## Build every runner image, the tenants' own dbt images and the stack's images
	@for dir in runners/*/; do runners/build.sh $$(basename $$dir) >/dev/null || exit 1; done
	$(PY) -m datakit_orchestration.tenant_image --all >/dev/null
	demo/postgres/build.sh
	stack/build-images.sh

demo: setup images ## Set everything up; Airflow runs the demo tenant's DAG end to end, twice (DEMO_SCALE=0.1, TENANTS=all for acme and globex)
	$(PY) -m demo.airflow_demo --scale $(DEMO_SCALE) --tenants $(TENANTS)

demo-down: ## Stop the demo databases and delete their data
	$(COMPOSE) -p dk-demo down -v

test: setup images lint prometheus ## Run the full test suite: unit, integration, contract, e2e
	$(PYTEST) tests/unit tests/integration tests/contract tests/e2e

test-unit: setup prometheus ## Unit tests only (no services; promtool checks the alert rules)
	$(PYTEST) tests/unit

test-integration: setup images ## Integration tests against real PostgreSQL servers
	$(PYTEST) tests/integration

test-contract: setup images ## Contract tests: the built images, run with docker run
	$(PYTEST) tests/contract

lint: setup ## ruff (lint + format check) and mypy
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(VENV)/bin/mypy registry/release.py  # a script, not a package: mypy takes it on its own
	$(VENV)/bin/mypy stack
	$(VENV)/bin/mypy demo benchmarks  # the demo's and the benchmarks' scripts, packages of their own
	$(PY) -m datakit_orchestration.schema --check
	$(PY) -m datakit_orchestration.dagfiles --check

schemas: setup ## Regenerate orchestration/tenant.schema.json from the tenant spec models
	$(PY) -m datakit_orchestration.schema

.PHONY: dags
dags: setup ## Write one thin DAG file per tenant in orchestration/dags (after adding a tenant)
	$(PY) -m datakit_orchestration.dagfiles

.PHONY: helm-values
warehouse-init: setup ## A tenant's warehouse roles, schemas and grants (admin login: PGUSER/PGPASSWORD): make warehouse-init TENANT=acme [DRY_RUN=1]
	@test -n "$(TENANT)" || { echo "Name the tenant: make warehouse-init TENANT=acme" >&2; exit 2; }
	$(PY) -m datakit_orchestration.warehouse $(TENANT) $(if $(DRY_RUN),--dry-run)

helm-values: setup ## Values of the tenant-namespace Helm chart for one tenant: make helm-values TENANT=acme
	@test -n "$(TENANT)" || { echo "Name the tenant: make helm-values TENANT=acme" >&2; exit 2; }
	$(PY) -m datakit_orchestration.helm $(TENANT) --output values-$(TENANT).yaml
	@echo "secret values to fill in: $(PY) -m datakit_orchestration.helm $(TENANT) --secret-values" >&2

bench: setup images ## Runner image vs raw psql COPY pipe on TPC-H lineitem (BENCH_SCALE=1)
	BENCH_SCALE=$(BENCH_SCALE) benchmarks/run.sh runner

bench-dbt: setup images ## Full vs incremental dbt build after a 1% change batch (BENCH_SCALE=1)
	BENCH_SCALE=$(BENCH_SCALE) benchmarks/run.sh dbt

bench-cdc: setup images ## Source to Gold after a 1% change: full, cursor and cdc Bronze loads, full and incremental dbt builds (BENCH_SCALE=1)
	BENCH_SCALE=$(BENCH_SCALE) benchmarks/run.sh cdc

bench-spark: setup images ## Spark runner vs Postgres runner on TPC-H lineitem (BENCH_SCALE=1)
	BENCH_SCALE=$(BENCH_SCALE) benchmarks/run.sh spark

bench-http: setup images ## HTTP runner image vs dlt rest_api from a local API (BENCH_RECORDS=1000000)
	BENCH_RECORDS=$(BENCH_RECORDS) benchmarks/run.sh http

bench-dags: setup ## Airflow parse time of the DAG folder for 1, 10 and 100 tenants of 40 tables
	$(PY) -m benchmarks.bench_dag_parse

.PHONY: registry registry-down release
registry: setup engine ## Start the local image registry on 127.0.0.1:5000 (registry/README.md)
	$(PY) -m stack up registry

registry-down: ## Stop the local image registry (released images stay in registry/data)
	$(PY) -m stack down registry

# A release is never the default runner's by accident: RUNNER must be given.
ifneq ($(filter release,$(MAKECMDGOALS)),)
ifeq ($(origin RUNNER),file)
$(error make release: name the runner: make release RUNNER=<tech> (one of: $(notdir $(patsubst %/Dockerfile,%,$(wildcard runners/*/Dockerfile)))), or RUNNER=dbt-<tenant> for a tenant's dbt image)
endif
endif
release: setup engine registry ## Build, label and push a runner (or dbt-<tenant>) once, record its digest: make release RUNNER=postgres
	$(PY) registry/release.py $(RUNNER)

.PHONY: up down proxy proxy-down astro
up: setup engine prometheus ## Local stack on 127.0.0.1: registry, demo databases, Airflow UI :8080, Prometheus :9090, dbt docs :8089 (python -m stack)
	$(PY) -m stack up

down: ## Stop what `make up` started (and say what)
	$(PY) -m stack down

proxy: setup engine ## Traefik: https://airflow.localhost, registry., docs., prometheus.localhost (traefik/README.md)
	$(PY) -m stack up proxy

proxy-down: ## Stop Traefik
	$(PY) -m stack down proxy

astro: setup ## Stage the tenants, DAG files and orchestration wheel into astro/ for `astro dev start`
	astro/stage.sh

clean: ## Remove the venv and caches (images and demo data stay; see demo-down)
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
